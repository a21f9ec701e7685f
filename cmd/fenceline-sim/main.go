// Command fenceline-sim plays a scenario of border sensors against an MQTT
// broker: the phone e-fence units, checkpoints and patrol teams of the
// scenario's rules file report ordinary traffic with a day/night rhythm, and
// scripted incidents happen at their times for the example rules to catch.
//
//	fenceline-sim [--scenario FILE] [--broker URL] [--speed 1|N|max]
//	              [--start RFC3339] [--duration 12h] [--seed N]
//	              [--watch-alerts] [--wait-ready URL] [--print-incidents]
//
// Time: messages carry simulated times. In real time (--speed 1, the
// default) the run starts now. Faster, it starts --duration ago, so that
// the simulated clock reaches the real one no earlier than the run's end:
// the daemon rejects readings more than 5 minutes in the future and accepts
// old ones (their alerts say "late": true). An explicit --start is checked
// against that limit. A seed and a start replay the same run exactly.
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
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/sim"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	scenario       string
	broker         string
	clientID       string
	seed           uint64
	speed          sim.Speed
	start          string
	duration       time.Duration
	durationSet    bool
	printIncidents bool
	watchAlerts    bool
	publish        bool
	thenLive       bool
	waitReady      string
	logLevel       string
}

func run(args []string, stdout, stderr io.Writer) int {
	o := options{speed: 1}
	fs := flag.NewFlagSet("fenceline-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", "config/examples/scenario.yaml", "scenario file")
	fs.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker to publish to")
	fs.StringVar(&o.clientID, "client-id", "fenceline-sim", "MQTT client id")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (0: the scenario's)")
	fs.Var(&o.speed, "speed", "simulated seconds per real second, or max: as fast as the broker acknowledges")
	fs.StringVar(&o.start, "start", "", "simulated start, RFC 3339 (default: now in real time; duration ago when faster)")
	fs.DurationVar(&o.duration, "duration", 0, "simulated length of the run, 0: until stopped (default: the scenario's)")
	fs.BoolVar(&o.printIncidents, "print-incidents", false, "list the scripted incidents with the rules they must fire, and exit")
	fs.BoolVar(&o.watchAlerts, "watch-alerts", false, "print the alerts arriving on "+sim.AlertTopics+", one line each, and keep watching after the run")
	fs.BoolVar(&o.publish, "publish", true, "publish the scenario (false with --watch-alerts: only watch)")
	fs.BoolVar(&o.thenLive, "then-live", false, "after a run faster than real time, go on in real time until stopped, so that the units keep reporting (else the daemon finds them all silent)")
	fs.StringVar(&o.waitReady, "wait-ready", "", "wait until this URL answers 200 (the daemon's /readyz) before publishing")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: fenceline-sim [flags]

Plays a scenario of border sensors (phone e-fence units, checkpoints, patrols) against an MQTT
broker, with scripted incidents for the rules to catch.

Messages carry simulated times. In real time (--speed 1) the run starts now. Faster, it starts
--duration ago, so that the simulated clock reaches the real one no earlier than the run's end:
the daemon rejects readings more than 5 minutes in the future (it accepts old ones and marks
their alerts late). An explicit --start is checked against that limit. A seed and a start
replay the same run exactly.

`)
		fs.PrintDefaults()
	}
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "--h" }) {
		fs.SetOutput(stdout) // asked for: the answer, not an error (fenceline --help's too)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.durationSet = o.durationSet || f.Name == "duration" })
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "fenceline-sim: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("component", "fenceline-sim")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := simulate(ctx, o, log, stdout); err != nil {
		if errors.Is(err, context.Canceled) {
			log.Info("stopped")
			return 0
		}
		log.Error("failed", "err", err)
		return 1
	}
	return 0
}

func simulate(ctx context.Context, o options, log *slog.Logger, stdout io.Writer) error {
	sc, err := sim.LoadScenario(o.scenario)
	if err != nil {
		return err
	}
	out := &lineWriter{w: stdout}
	duration := sc.Duration.D()
	if o.durationSet {
		duration = o.duration
	}
	now := time.Now()
	var start time.Time
	if o.start != "" {
		if start, err = time.Parse(time.RFC3339, o.start); err != nil {
			return fmt.Errorf("--start: %w", err)
		}
	} else if start, err = sim.DefaultStart(now, o.speed, duration); err != nil {
		return err
	}
	start = start.In(sc.Location)
	s, err := sim.New(sc, sim.Options{Seed: o.seed, Start: start, Duration: duration})
	if err != nil {
		return err
	}
	if o.printIncidents {
		printIncidents(stdout, o.scenario, s, sc.Location)
		return nil
	}
	if o.publish {
		if err := sim.CheckClock(start, duration, o.speed, now); err != nil {
			return err
		}
	}

	if o.waitReady != "" && o.publish {
		log.Info("waiting for the daemon to be ready", "url", o.waitReady)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := sim.WaitReady(wctx, o.waitReady)
		cancel()
		if err != nil {
			return err
		}
	}
	var subs []sim.Subscription
	if o.watchAlerts {
		subs = append(subs, sim.AlertWatch(sim.AlertTopics, func(a model.Alert) {
			out.println(sim.FormatAlert(a, sc.Location))
		}, func(topic string, err error) {
			log.Warn("not an alert", "topic", topic, "err", err)
		}))
	}
	c, err := sim.Connect(ctx, o.broker, o.clientID, 30*time.Second, subs...)
	if err != nil {
		return err
	}
	defer c.Disconnect(250)
	if o.publish {
		if err := publish(ctx, o, s, c, sc.Location, out, log); err != nil {
			return err
		}
		if o.thenLive && !s.End().IsZero() && (!o.speed.Paced() || o.speed > 1) {
			// The replay of the past is over; the units go on reporting
			// from now on, as a deployment's would, with the scenario's
			// incidents on its schedule again.
			live, err := sim.New(sc, sim.Options{Seed: o.seed, Start: time.Now().In(sc.Location)})
			if err != nil {
				return err
			}
			lo := o
			lo.speed = 1
			out.println("      (the replay is over: going on in real time, so that the units keep reporting)")
			if err := publish(ctx, lo, live, c, sc.Location, out, log); err != nil {
				return err
			}
		}
	}
	if !o.watchAlerts {
		return nil
	}
	out.println("      (still watching alerts; Ctrl-C stops)")
	<-ctx.Done()
	return ctx.Err()
}

func publish(ctx context.Context, o options, s *sim.Sim, c mqtt.Client, loc *time.Location, out *lineWriter, log *slog.Logger) error {
	end := "until stopped"
	if !s.End().IsZero() {
		end = "to " + s.End().In(loc).Format("Jan 2 15:04")
	}
	out.println(fmt.Sprintf("%s simulating %s, speed %s, seed %d, from %s %s",
		s.Start().In(loc).Format("15:04"), o.scenario, o.speed, s.Seed(), s.Start().In(loc).Format("Jan 2 15:04"), end))
	began := time.Now()
	n, err := sim.Publish(ctx, c, s, sim.PublishOptions{
		Speed: o.speed,
		OnIncident: func(in *sim.Incident) {
			out.println(fmt.Sprintf("%s ▶ incident %s: %s (expect %s)",
				in.At.In(loc).Format("15:04"), in.ID, in.What, expected(in)))
		},
		OnHour: func(t time.Time, published int) {
			out.println(fmt.Sprintf("%s · %d messages published", t.In(loc).Format("15:04"), published))
		},
	})
	if err != nil {
		return err
	}
	log.Info("scenario finished", "messages", n, "took", time.Since(began).Round(time.Millisecond))
	out.println(fmt.Sprintf("%s ■ scenario finished: %d messages acknowledged by the broker", s.End().In(loc).Format("15:04"), n))
	return nil
}

func printIncidents(w io.Writer, path string, s *sim.Sim, loc *time.Location) {
	end := "no end"
	if !s.End().IsZero() {
		end = s.End().In(loc).Format(time.RFC3339)
	}
	fmt.Fprintf(w, "scenario %s, seed %d, %s → %s\n\n", path, s.Seed(), s.Start().In(loc).Format(time.RFC3339), end)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tINCIDENT\tEXPECTED RULES\tSUBJECTS\tWHAT")
	for _, in := range s.Incidents() {
		at := in.At.In(loc).Format("Jan 2 15:04")
		if !in.InRun {
			at += " (after the end)"
		}
		subjects := strings.Join(in.Subjects, " ")
		if len(in.Subjects) > 3 {
			subjects = fmt.Sprintf("%s … (%d)", strings.Join(in.Subjects[:2], " "), len(in.Subjects))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", at, in.ID, expected(in), subjects, in.What)
	}
	tw.Flush()
}

// expected lists the rules an incident must fire, and those it may.
func expected(in *sim.Incident) string {
	s := strings.Join(in.Rules, ", ")
	if len(in.MayFire) > 0 {
		s += ", maybe " + strings.Join(in.MayFire, ", ")
	}
	return s
}

// lineWriter serialises lines from the publisher and the alert watcher.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) println(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, s)
}
