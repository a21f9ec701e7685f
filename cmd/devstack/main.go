// Command devstack runs the local development stack for `make run`: a mosquitto broker and an
// InfluxDB server with their data under .state/ in the repository, and optionally a command
// (the daemon) that uses them.
//
//	devstack [-mqtt-port 1883] [-influx-port 8086] [-state DIR] [-- command args...]
//
// Ctrl-C (or SIGTERM) is passed on to the command; once it has exited the services are stopped
// cleanly, so the daemon can drain into a broker and database that are still there. When the
// command exits on its own, devstack stops the services and exits with the command's code.
// Without a command, the services run until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fenceline/fenceline/internal/stack"
)

// startTimeout bounds starting both services; influxd with Flux takes several seconds.
const startTimeout = 2 * time.Minute

func main() { os.Exit(run()) }

func run() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "devstack")

	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	mqttPort := fs.Int("mqtt-port", 1883, "mosquitto port on 127.0.0.1")
	influxPort := fs.Int("influx-port", 8086, "InfluxDB HTTP port on 127.0.0.1")
	influxDB := fs.String("influx-db", "border", "InfluxDB database to create")
	stateDir := fs.String("state", "", "folder for the services' config, logs and data (default: .state in the repository)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: devstack [flags] [-- command args...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	command := fs.Args()

	if *stateDir == "" {
		root, err := stack.ModuleRoot()
		if err != nil {
			log.Error("cannot find the repository; pass -state", "err", err)
			return 1
		}
		*stateDir = filepath.Join(root, ".state")
	}

	// Registered before anything starts, so a Ctrl-C at any point is ours to handle rather than
	// killing devstack with the services still running.
	// A hangup (the terminal closed) stops the stack as Ctrl-C does: by default it would end
	// devstack at once, and the services with it (Pdeathsig) before the daemon drains.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	svc, err := startServices(log, sigs, *stateDir, *mqttPort, *influxPort, *influxDB)
	if err != nil {
		if errors.Is(err, stack.ErrBinaryNotFound) {
			log.Error("a service is not installed: run `make deps`", "err", err)
		} else {
			log.Error("could not start the stack", "err", err)
		}
		return 1
	}
	defer svc.stop(log)

	if len(command) == 0 {
		log.Info("no command given; the services run until Ctrl-C")
		s := <-sigs
		log.Info("stopping", "signal", s.String())
		return 0
	}
	return runCommand(log, sigs, command)
}

type services struct {
	mqtt   *stack.Mosquitto
	influx *stack.Influx
}

// startServices starts mosquitto, then InfluxDB. A signal while they start cancels the start
// and stops whatever had started.
func startServices(log *slog.Logger, sigs <-chan os.Signal, dir string, mqttPort, influxPort int, db string) (*services, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	caught := make(chan os.Signal, 1)
	stopWatching, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case s := <-sigs:
			caught <- s
			cancel()
		case <-stopWatching:
		}
	}()

	svc := &services{}
	var err error
	svc.mqtt, err = stack.StartMosquitto(ctx, stack.MosquittoOptions{
		Dir:         filepath.Join(dir, "mosquitto"),
		Port:        mqttPort,
		Persistence: true, // sessions and queued messages survive a restart of the stack
	})
	if err == nil {
		log.Info("mosquitto listening", "url", svc.mqtt.URL(), "log", svc.mqtt.LogPath())
		svc.influx, err = stack.StartInflux(ctx, stack.InfluxOptions{
			Dir:      filepath.Join(dir, "influxdb"),
			Port:     influxPort,
			Database: db,
			Flux:     true, // for trying dashboards' Flux queries against local data
		})
	}
	if err == nil {
		log.Info("influxdb listening", "url", svc.influx.URL(), "database", svc.influx.Database(),
			"bucket", svc.influx.Bucket(), "log", svc.influx.LogPath())
	}

	// Settle the watcher before deciding, so that a signal is never swallowed between the
	// services coming up and the command taking over signal handling.
	close(stopWatching)
	<-watchDone
	select {
	case s := <-caught:
		err = fmt.Errorf("interrupted by %s during start", s)
	default:
	}
	if err != nil {
		svc.stop(log)
		return nil, err
	}
	return svc, nil
}

// stop stops InfluxDB and mosquitto cleanly, in the reverse order of start; either may be
// missing after a failed start.
func (s *services) stop(log *slog.Logger) {
	if s.influx != nil {
		if err := s.influx.Stop(); err != nil {
			log.Error("stop influxdb", "err", err)
		} else {
			log.Info("influxdb stopped")
		}
	}
	if s.mqtt != nil {
		if err := s.mqtt.Stop(); err != nil {
			log.Error("stop mosquitto", "err", err)
		} else {
			log.Info("mosquitto stopped")
		}
	}
}

// runCommand runs the command with our stdout and stderr, passes SIGINT/SIGTERM on to it and
// returns its exit code (128+n when signal n ended it, as a shell reports it).
func runCommand(log *slog.Logger, sigs <-chan os.Signal, argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	// No stdin: the command runs in its own process group (see childSysProcAttr), and reading
	// the terminal from there would stop it.
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Error("could not start command", "command", argv, "err", err)
		return 127
	}
	log.Info("command started", "command", argv, "pid", cmd.Process.Pid)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				s = os.Interrupt // the command stops as on Ctrl-C; a hangup would end a shell script at once
			}
			log.Info("passing signal to command", "signal", s.String(), "pid", cmd.Process.Pid)
			if err := cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
				log.Error("could not signal command", "err", err)
			}
		case err := <-done:
			code := exitCode(err)
			log.Info("command exited", "code", code)
			return code
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
