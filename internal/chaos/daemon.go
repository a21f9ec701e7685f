package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fenceline/fenceline/internal/load"
	"github.com/fenceline/fenceline/internal/stack"
)

// BuildDaemon builds cmd/fenceline into dir and returns the binary's path.
// $FENCELINE_BIN, when set, names a binary to use instead (a release build
// under test). bin/fenceline is not used as is: it may be older than the
// code under test.
func BuildDaemon(ctx context.Context, dir string) (string, error) {
	if p := os.Getenv("FENCELINE_BIN"); p != "" {
		return p, nil
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build fenceline: %w", err)
	}
	out := filepath.Join(dir, "fenceline")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmd/fenceline")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build fenceline: %w\n%s", err, msg)
	}
	return out, nil
}

// Daemon is `fenceline run` as a child process: it can be killed with
// SIGKILL, as the OOM killer or a power cut would, and started again on the
// same config and state folder.
type Daemon struct {
	bin      string
	cfgPath  string
	logPath  string
	httpAddr string
	client   *http.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	starts  int
}

// NewDaemon prepares a daemon; nothing runs before Start. httpAddr must be
// the config's http.listen, a fixed host:port (the same across restarts).
func NewDaemon(bin, cfgPath, logPath, httpAddr string) *Daemon {
	return &Daemon{bin: bin, cfgPath: cfgPath, logPath: logPath, httpAddr: httpAddr,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// Start runs the daemon and returns once it is subscribed to the broker.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.cmd != nil && !d.exited() {
		d.mu.Unlock()
		return errors.New("fenceline: already running")
	}
	lf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("fenceline log: %w", err)
	}
	d.starts++
	fmt.Fprintf(lf, "---- start %d at %s\n", d.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, "run", "--config", d.cfgPath, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = lf, lf
	err = cmd.Start()
	lf.Close() // the child has its own descriptor
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("start fenceline: %w", err)
	}
	done := make(chan struct{})
	d.cmd, d.done, d.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(done)
	}()
	d.mu.Unlock()
	return d.waitSubscribed(ctx)
}

// exited reports whether the current process has ended. Called with mu held.
func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitSubscribed polls /metrics until the daemon is subscribed, failing
// early if it exits.
func (d *Daemon) waitSubscribed(ctx context.Context) error {
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := d.Metrics(ctx)
		if err == nil && m.Sum("fenceline_mqtt_subscribed", nil) == 1 {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("fenceline exited during start: %v\n%s", d.exitErr(), stack.LogTail(d.logPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("fenceline not subscribed: %w (last: %v)\n%s", ctx.Err(), err, stack.LogTail(d.logPath, 30))
		case <-tick.C:
		}
	}
}

func (d *Daemon) exitErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitErr
}

// Kill ends the daemon with SIGKILL and waits for it: no deferred function,
// no drain, no flush runs.
func (d *Daemon) Kill() {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop asks the daemon to drain and exit (SIGTERM) and checks that it exits
// 0 within timeout, as the contract says.
func (d *Daemon) Stop(timeout time.Duration) error {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return fmt.Errorf("fenceline had exited on its own: %v", d.exitErr())
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop fenceline: %w", err)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("fenceline did not exit within %v of SIGTERM", timeout)
	}
	if err := d.exitErr(); err != nil {
		return fmt.Errorf("fenceline exited uncleanly after SIGTERM: %w\n%s", err, stack.LogTail(d.logPath, 30))
	}
	return nil
}

// PID is the current process's id (0 before Start).
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// LogPath is the daemon's log, appended to across restarts.
func (d *Daemon) LogPath() string { return d.logPath }

// Metrics scrapes the daemon's /metrics.
func (d *Daemon) Metrics(ctx context.Context) (load.Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return load.ParseMetrics(resp.Body)
}

// Ready reports /readyz's status code and body.
func (d *Daemon) Ready(ctx context.Context) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.httpAddr+"/readyz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

// Memory is what /proc says about a process's resident memory.
type Memory struct {
	RSS  int64 // now, bytes
	Peak int64 // VmHWM: the highest RSS since the process started, bytes
}

// ProcMemory reads VmRSS and VmHWM of pid.
func ProcMemory(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("process %d: %w", pid, err)
	}
	var m Memory
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.Peak = kb << 10
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("process %d: no VmRSS", pid)
	}
	return m, nil
}
