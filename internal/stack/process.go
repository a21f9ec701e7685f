// Package stack starts and stops the real services fenceline talks to — a mosquitto broker and
// an InfluxDB 1.8 server — as child processes on loopback ports, for integration tests and for
// the local development stack (cmd/devstack). It has no dependency on package testing; see
// internal/testenv for the test wrappers.
package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrBinaryNotFound is returned (wrapped) when a service's executable cannot be located.
// Callers match it with errors.Is to tell "not installed" apart from "failed to start".
var ErrBinaryNotFound = errors.New("binary not found")

const (
	// readyTimeout bounds how long a service may take to answer after it was started when the
	// caller's context has no deadline. influxd is the slow one: 0.1 s fresh without Flux, about
	// 6 s with Flux on an idle machine and over a minute on a busy one.
	readyTimeout = 60 * time.Second
	// stopTimeout is how long a service gets to shut down cleanly after SIGTERM before it is
	// killed. mosquitto writes its persistence file and InfluxDB closes its shards in this time.
	stopTimeout = 30 * time.Second
	// pollInterval is the pause between readiness probes.
	pollInterval = 20 * time.Millisecond
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The services need an
// explicit port in their config, so we cannot hand them port 0; the small window between
// closing our listener and the service binding is covered by retrying the start.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	return port, nil
}

// checkPortFree fails when something already listens on 127.0.0.1:port. Without this a service
// that cannot bind would exit, but a readiness probe could first reach the other listener (a
// system mosquitto on 1883, say) and report success.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d is in use: %w", port, err)
	}
	return l.Close()
}

// ModuleRoot walks up from the working directory to the folder holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// findBinary returns the first candidate path that is an executable file, or searches PATH for
// name when no candidate matches. envVar, when set in the environment, wins over everything and
// must point at an executable.
func findBinary(name, envVar string, candidates ...string) (string, error) {
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			if isExecutable(p) {
				return p, nil
			}
			return "", fmt.Errorf("%s: %s=%s is not an executable file: %w", name, envVar, p, ErrBinaryNotFound)
		}
	}
	for _, c := range candidates {
		if isExecutable(c) {
			return c, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	where := append([]string{}, candidates...)
	if envVar != "" {
		where = append([]string{"$" + envVar}, where...)
	}
	where = append(where, "PATH")
	return "", fmt.Errorf("%s: looked in %s: %w", name, strings.Join(where, ", "), ErrBinaryNotFound)
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// process is one running service instance. Its output goes to an append-only log file so that
// restarts keep the earlier history and a failed start can show what the service said.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited; waitErr is set before
	waitErr error

	mu        sync.Mutex
	signalled bool // we asked it to exit: its exit is expected
}

func startProcess(name, bin string, args []string, dir, logPath string, env []string) (*process, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	// The child gets its own copy of the descriptor; ours is only needed until Start returns.
	defer lf.Close()
	fmt.Fprintf(lf, "---- %s: starting %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = serviceSysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) markSignalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.signalled
	p.signalled = true
	return was
}

// stop asks the process to exit with SIGTERM and kills it if it is still there after timeout.
// It reports an exit we did not ask for (a crash before stop) and an exit status other than a
// clean one, so tests notice a service that died under them.
func (p *process) stop(timeout time.Duration) error {
	if p.exited() {
		if p.markSignalled() {
			return nil // already stopped or killed by us
		}
		return fmt.Errorf("%s had exited on its own: %v%s", p.name, p.waitErr, logTailSection(p.logPath))
	}
	p.markSignalled()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: send SIGTERM: %w", p.name, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed%s", p.name, timeout, logTailSection(p.logPath))
	}
	if !cleanExit(p.waitErr) {
		return fmt.Errorf("%s exited uncleanly after SIGTERM: %v%s", p.name, p.waitErr, logTailSection(p.logPath))
	}
	return nil
}

// kill ends the process at once (SIGKILL), as a crash or power loss would, and waits for it.
func (p *process) kill() {
	p.markSignalled()
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// cleanExit accepts exit status 0 and death by SIGTERM itself (a process that does not handle
// the signal); anything else after SIGTERM means shutdown went wrong.
func cleanExit(err error) bool {
	if err == nil {
		return true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return true
		}
	}
	return false
}

// waitReady polls probe until it succeeds, the process exits, or the deadline passes.
func waitReady(ctx context.Context, p *process, probe func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := probe(pctx)
		pcancel()
		if err == nil {
			// The probe may have reached another listener in the instant before our process
			// failed to bind; only a process that is still running counts as ready.
			if p.exited() {
				return fmt.Errorf("%s exited during start: %v", p.name, p.waitErr)
			}
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last probe: %v)", p.name, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// LogTail returns up to the last n lines of the file at path, or a note saying why it could not
// be read. It is meant for error messages.
func LogTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	defer f.Close()
	// Only the end matters; skip most of a long log instead of scanning it all.
	const maxBytes = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(log unavailable: %v)", err)
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(log is empty)"
	}
	return strings.Join(lines, "\n")
}

func logTailSection(path string) string {
	return fmt.Sprintf("\n--- last lines of %s ---\n%s\n---", path, LogTail(path, 30))
}

// serviceEnv returns the environment for a child service without variables whose prefix the
// service reads as configuration: influxd, for one, lets INFLUXDB_* override its config file,
// and a stray INFLUXDB_HTTP_BIND_ADDRESS in a developer's shell must not move our test server.
func serviceEnv(dropPrefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if dropPrefix != "" && strings.HasPrefix(kv, dropPrefix) {
			continue
		}
		env = append(env, kv)
	}
	return env
}
