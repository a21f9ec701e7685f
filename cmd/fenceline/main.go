// Command fenceline ingests border sensor readings from MQTT, stores them in
// InfluxDB and raises geofence alerts. See README.md and docs/.
//
//	fenceline run --config FILE          run the daemon until SIGINT/SIGTERM
//	fenceline check --config FILE        validate the config and every file it names
//	fenceline deadletters --config FILE  print the dead letters as JSON lines
//	fenceline version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/daemon"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: fenceline <command> [flags]

commands:
  run --config FILE           run the daemon until SIGINT/SIGTERM (SIGHUP reloads the rules)
  check --config FILE         validate the configuration and every file it names
  deadletters --config FILE   print dead letters as JSON lines (--since, --reason, --limit)
  version                     print the version
`

// run is the whole program; its result is the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("fenceline "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "fenceline.yaml", "configuration file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	// The dead-letter filters are flags of deadletters only: given to
	// another command they are an error, not ignored.
	var since time.Duration
	var reason string
	var limit int
	if cmd == "deadletters" {
		fs.DurationVar(&since, "since", 0, "only records received within this duration")
		fs.StringVar(&reason, "reason", "", "only records with this reason")
		fs.IntVar(&limit, "limit", 0, "at most this many records (0: all)")
	}
	switch cmd {
	case "version", "--version", "-version":
		if len(args) > 0 {
			fmt.Fprintf(stderr, "fenceline version: takes no flags or arguments (got %q)\n", args[0])
			return 2
		}
		fmt.Fprintln(stdout, daemon.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run", "check", "deadletters":
	default:
		fmt.Fprintf(stderr, "fenceline: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h asked for the flags; they went to stderr, as flag's do
		}
		return 2
	}
	if fs.NArg() > 0 {
		// `fenceline check /etc/fenceline/fenceline.yaml` would otherwise
		// check ./fenceline.yaml and say ok.
		fmt.Fprintf(stderr, "fenceline %s: unexpected argument %q: the configuration is given with --config FILE\n", cmd, fs.Arg(0))
		return 2
	}
	if since < 0 || limit < 0 {
		fmt.Fprintln(stderr, "fenceline: --since and --limit must not be negative")
		return 2
	}
	if err := daemon.CheckDeadLetterReason(reason); err != nil {
		fmt.Fprintln(stderr, "fenceline:", err) // a bad flag, as the others: 2
		return 2
	}
	var hup chan os.Signal
	if cmd == "run" {
		// SIGHUP's default is to end the process: a reload asked for while
		// the daemon starts (systemd's ExecReload right after a start) must
		// not kill it. Caught from here on, it is a reload once running.
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "fenceline:", err)
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil && cmd != "check" && *logFormat == "json" {
		// A log collector reading JSON lines would drop (or garble) a
		// plain line: the problems go out as one record, a line each.
		log.Error("fenceline stopped: configuration refused", "file", *cfgPath, "problems", strings.Split(err.Error(), "\n"))
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		if cmd == "check" && cfg != nil {
			// The file decoded: the files it names have problems of
			// their own to report (each once).
			printed := map[string]bool{}
			for _, l := range strings.Split(err.Error(), "\n") {
				printed[l] = true
			}
			// The files it names, what start-up would refuse in them
			// (secrets, certificates) and the rules; keys whose values are
			// reported above are not reported again.
			var found config.Problems
			errors.As(err, &found)
			if err := daemon.Check(cfg, found...); err != nil {
				for _, l := range strings.Split(err.Error(), "\n") {
					if !printed[l] {
						printed[l] = true
						fmt.Fprintln(stderr, l)
					}
				}
			}
		}
		return 1
	}
	switch cmd {
	case "check":
		if err := daemon.Check(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		// Valid, but a choice an operator should know the cost of.
		for _, w := range daemon.Warnings(cfg) {
			fmt.Fprintln(stderr, "warning:", w.Error())
		}
		fmt.Fprintf(stdout, "%s: ok\n", *cfgPath)
		return 0
	case "deadletters":
		var from time.Time
		if since > 0 {
			from = time.Now().Add(-since)
		}
		if err := daemon.PrintDeadLetters(cfg, from, reason, limit, stdout); err != nil {
			fmt.Fprintln(stderr, "fenceline:", err)
			return 1
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A burst of SIGHUPs is one reload: the channel holds one request.
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := daemon.Run(ctx, cfg, daemon.Options{Log: log, Reload: reload}); err != nil && !errors.Is(err, context.Canceled) {
		var ps config.Problems
		if errors.As(err, &ps) {
			// Where each problem is, not its text, which may quote an IMSI
			// or a plate (a `when`, a list entry): as a refused reload logs.
			log.Error("fenceline stopped: rules refused (fenceline check --config FILE prints each problem)", "problems", daemon.ProblemsForLog(err))
			return 1
		}
		log.Error("fenceline stopped", "err", err)
		return 1
	}
	log.Info("fenceline stopped")
	return 0
}

// loadConfig reads the daemon's configuration file (a test makes it slow).
var loadConfig = config.Load

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is none of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}
