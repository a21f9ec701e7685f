// Command fenceline-load puts a fenceline deployment under load and accounts
// for every reading: it publishes contract-valid traffic from simulated
// devices, then reports what was stored (once), dead-lettered, lost or
// duplicated, the throughput over time, publish→stored and publish→alert
// latencies, and the CPU and memory each process spent.
//
//	fenceline-load --stack --messages 20000 --batch 20
//	    starts mosquitto, InfluxDB 1.8 and bin/fenceline in a temp folder
//	    and runs the end-to-end profile against them
//	fenceline-load --write-rules DIR
//	    writes the generated deployment (rules.yaml, zones/) for a daemon
//	fenceline-load --broker tcp://… --influx http://… --metrics http://…/metrics
//	    loads a daemon already running with those rules
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
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/daemon"
	"github.com/fenceline/fenceline/internal/load"
	"github.com/fenceline/fenceline/internal/stack"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole program; its result is the exit code: 0 when every
// expected reading was stored once and nothing was lost, 1 when the run
// found loss or duplicates, 2 for usage errors, 3 when the run failed.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fenceline-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: fenceline-load [flags]

Publishes contract-valid traffic from simulated devices to a broker, at a rate or as fast as it
takes it, then reports what was stored (counted in InfluxDB), dead-lettered, lost and
duplicated, the latencies, and the daemon's CPU and memory (its metrics). With --stack it starts
mosquitto, InfluxDB and the daemon itself. Exit status: 0 when every expected reading was stored
once, 1 on loss or duplicates, 2 on a usage error, 3 when the run failed. make bench runs the
standard profiles (scripts/bench.sh).

flags:
`)
		fs.PrintDefaults()
	}
	var (
		useStack   = fs.Bool("stack", false, "start mosquitto, InfluxDB and the daemon in a temp folder and load them")
		fenceline  = fs.String("fenceline", "", "daemon binary for --stack (default bin/fenceline in the module)")
		inProcess  = fs.Bool("inprocess", false, "with --stack: run the daemon inside this process (for --cpuprofile; its CPU then includes the load tool's)")
		dir        = fs.String("dir", "", "with --stack: working folder (default a new temp folder, removed unless --keep)")
		keep       = fs.Bool("keep", false, "with --stack: keep the working folder")
		batchSize  = fs.Int("influx-batch-size", 0, "with --stack: the daemon's influx.batch_size (0: its default)")
		conc       = fs.Int("influx-concurrency", 0, "with --stack: the daemon's influx.concurrency (0: its default)")
		flush      = fs.Duration("influx-flush", 0, "with --stack: the daemon's influx.flush_interval (0: its default)")
		gzip       = fs.String("influx-gzip", "", "with --stack: the daemon's influx.gzip, true or false (empty: its default)")
		persist    = fs.Bool("broker-persistence", false, "with --stack: mosquitto keeps sessions and queues on disk")
		broker     = fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker")
		influxURL  = fs.String("influx", "http://127.0.0.1:8086", "InfluxDB 1.x URL (InfluxQL /query)")
		db         = fs.String("db", "border", "InfluxDB database")
		authFile   = fs.String("influx-auth-file", "", "file holding user:password for InfluxDB")
		metrics    = fs.String("metrics", "http://127.0.0.1:9464/metrics", "the daemon's /metrics (empty: none)")
		daemonPID  = fs.Int("daemon-pid", 0, "the daemon's pid, for its CPU and memory from /proc (0: from its metrics)")
		pids       = fs.String("pids", "", "more processes to report CPU for: name=pid,name=pid")
		rulesFile  = fs.String("rules", "", "take the devices from this rules file instead of generating a world")
		writeRules = fs.String("write-rules", "", "write the generated world's rules.yaml and zones/ into this folder and exit")

		fences      = fs.Int("fences", 50, "generated world: phone fences")
		checkpoints = fs.Int("checkpoints", 100, "generated world: vehicle checkpoints")
		patrols     = fs.Int("patrols", 16, "generated world: patrols")
		zones       = fs.Int("zones", 1000, "generated world: zones")
		bigZones    = fs.Int("big-zones", 10, "generated world: zones of 5,000 vertices among them")
		worldSeed   = fs.Uint64("world-seed", 1, "generated world: seed")

		messages    = fs.Int("messages", 20000, "messages to publish (0: publish for --duration)")
		duration    = fs.Duration("duration", 0, "publish for this long (with --messages 0)")
		rate        = fs.Float64("rate", 0, "messages per second (0: as fast as the broker takes them)")
		inflight    = fs.Int("inflight", 200, "QoS 1 messages awaiting their PUBACK, over all connections")
		connections = fs.Int("connections", 1, "MQTT connections to publish over (each device keeps to one)")
		qos         = fs.Int("qos", 1, "publish QoS, 0 or 1")
		mix         = fs.String("mix", "detections=1", "stream weights: detections=W,passes=W,positions=W,statuses=W")
		batch       = fs.Int("batch", 20, "detections per detections message")
		passBatch   = fs.Int("pass-batch", 5, "passes per passes message")
		readingTS   = fs.Float64("reading-ts", 0, "share of detections/passes messages whose readings carry their own ts")
		invalid     = fs.Float64("invalid", 0, "share of messages with a defect (unknown device, malformed JSON, bad or future reading)")
		alerts      = fs.Float64("alerts", 0, "share of detections and passes that must raise an alert")
		seed        = fs.Uint64("seed", 1, "traffic seed")
		seqStart    = fs.Int64("seq-start", -1, "every device's first seq; -1: derived from the clock, so that runs against one daemon do not repeat seqs")
		alertStart  = fs.Int64("alert-subject-start", -1, "number of the first alert subject, IMSI or plate; -1: derived from the clock, so that runs against one daemon do not repeat subjects within a rule's cooldown")

		sampleEvery = fs.Duration("sample-every", 250*time.Millisecond, "period of metrics and /proc samples (each scrape costs the daemon about 1 ms of CPU)")
		settle      = fs.Duration("settle", 30*time.Second, "give up waiting once nothing was stored, rejected or alerted for this long")
		verify      = fs.String("verify", "points", "points (every point matched to its reading) or counts (per device)")
		name        = fs.String("name", "", "name of the run in the report")
		jsonPath    = fs.String("json", "", "write the report as JSON to this file")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the run (publishing to the end) to this file")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
	)
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "--h" }) {
		fs.SetOutput(stdout) // asked for: the answer, not an error (fenceline --help's too)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // asked for: the usage went to stderr, as flag's does
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fenceline-load: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "fenceline-load: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	traffic := load.Traffic{DetectionBatch: *batch, PassBatch: *passBatch, ReadingTS: *readingTS,
		InvalidShare: *invalid, AlertShare: *alerts, Seed: *seed, SeqStart: *seqStart}
	now := time.Now()
	if traffic.SeqStart < 0 {
		traffic.SeqStart = now.Unix() * 1000
	}
	if *alertStart < 0 {
		traffic.AlertSubjectStart = uint64(now.UnixMilli())
	} else {
		traffic.AlertSubjectStart = uint64(*alertStart)
	}
	var err error
	if traffic.Mix, err = parseMix(*mix); err != nil {
		fmt.Fprintln(stderr, "fenceline-load: --mix:", err)
		return 2
	}
	if *qos != 0 && *qos != 1 {
		fmt.Fprintln(stderr, "fenceline-load: --qos: 0 or 1")
		return 2
	}
	var gz *bool
	if *gzip != "" {
		v, err := strconv.ParseBool(*gzip)
		if err != nil {
			fmt.Fprintln(stderr, "fenceline-load: --influx-gzip:", err)
			return 2
		}
		gz = &v
	}

	spec := load.WorldSpec{Site: "ld", Fences: *fences, Checkpoints: *checkpoints, Patrols: *patrols,
		Zones: *zones, BigZones: *bigZones, Seed: *worldSeed}
	var world *load.World
	if *rulesFile != "" {
		world, err = load.WorldFromRules(*rulesFile)
	} else {
		world, err = load.GenerateWorld(spec)
	}
	if err != nil {
		fmt.Fprintln(stderr, "fenceline-load:", err)
		return 2
	}
	if *writeRules != "" {
		if err := os.MkdirAll(*writeRules, 0o755); err != nil {
			fmt.Fprintln(stderr, "fenceline-load:", err)
			return 3
		}
		p, err := world.WriteRules(*writeRules)
		if err != nil {
			fmt.Fprintln(stderr, "fenceline-load:", err)
			return 3
		}
		fmt.Fprintln(stdout, p)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var target load.Target
	if *useStack {
		if *rulesFile != "" {
			fmt.Fprintln(stderr, "fenceline-load: --stack generates its world; --rules is for a running daemon")
			return 2
		}
		bin := *fenceline
		if bin == "" && !*inProcess {
			root, err := stack.ModuleRoot()
			if err != nil {
				fmt.Fprintln(stderr, "fenceline-load: --fenceline not given and", err)
				return 2
			}
			bin = filepath.Join(root, "bin", "fenceline")
		}
		workDir := *dir
		if workDir == "" {
			if workDir, err = os.MkdirTemp("", "fenceline-load-"); err != nil {
				fmt.Fprintln(stderr, "fenceline-load:", err)
				return 3
			}
			if !*keep {
				defer os.RemoveAll(workDir)
			}
		}
		log.Info("starting mosquitto, InfluxDB and fenceline", "dir", workDir, "inprocess", *inProcess)
		var runInProcess func(context.Context, string, *slog.Logger) error
		if *inProcess {
			runInProcess = func(ctx context.Context, cfgPath string, log *slog.Logger) error {
				cfg, err := config.Load(cfgPath)
				if err != nil {
					return err
				}
				// Every goroutine the daemon starts inherits the label, so
				// `go tool pprof -tagfocus process=fenceline` shows the
				// daemon's share of the profile without the load tool's.
				pprof.Do(ctx, pprof.Labels("process", "fenceline"), func(ctx context.Context) {
					err = daemon.Run(ctx, cfg, daemon.Options{Log: log})
				})
				return err
			}
		}
		st, err := load.StartStack(ctx, load.StackOptions{Dir: workDir, World: world, Fenceline: bin, InProcess: runInProcess,
			BatchSize: *batchSize, Concurrency: *conc, FlushInterval: *flush, Gzip: gz, BrokerPersistence: *persist, Log: log})
		if err != nil {
			fmt.Fprintln(stderr, "fenceline-load:", err)
			return 3
		}
		defer func() {
			if err := st.Close(); err != nil {
				log.Error("stopping the stack", "err", err)
			}
		}()
		target = st.Target
	} else {
		target = load.Target{Broker: *broker, Influx: load.Influx{URL: *influxURL, Database: *db}, MetricsURL: *metrics, AlertPrefix: "border"}
		if *authFile != "" {
			if target.Influx.Auth, err = config.ReadSecret(*authFile); err != nil {
				fmt.Fprintln(stderr, "fenceline-load: --influx-auth-file:", err)
				return 2
			}
		}
		if *daemonPID > 0 {
			target.Daemon = load.Process{Name: "fenceline", PID: *daemonPID}
		}
		if target.Others, err = parsePIDs(*pids); err != nil {
			fmt.Fprintln(stderr, "fenceline-load: --pids:", err)
			return 2
		}
		target.Others = append(target.Others, load.Process{Name: "fenceline-load", PID: os.Getpid()})
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "fenceline-load:", err)
			return 3
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "fenceline-load: cpu profile:", err)
			return 3
		}
	}
	rep, err := load.Run(ctx, world, target, load.Options{
		Name: *name, Traffic: traffic, Messages: *messages, Duration: *duration, Rate: *rate,
		Inflight: *inflight, Connections: *connections, QoS: byte(*qos),
		SampleEvery: *sampleEvery, Settle: *settle, Verify: *verify, Log: log,
	})
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fmt.Fprintln(stderr, "fenceline-load:", err)
		return 3
	}
	if world.Spec.Zones == 0 {
		rep.Profile.World = load.WorldSpec{} // devices from a rules file: sizes unknown
	}
	rep.Print(stdout)
	if *jsonPath != "" {
		if err := load.WriteJSON(*jsonPath, rep); err != nil {
			fmt.Fprintln(stderr, "fenceline-load:", err)
			return 3
		}
	}
	a := rep.Accounting
	if a.LostReadings > 0 || a.Duplicated > 0 || a.Unexpected > 0 {
		return 1
	}
	return 0
}

// parseMix reads "detections=6,passes=2,…".
func parseMix(s string) (load.Mix, error) {
	var m load.Mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("%q is not stream=weight", part)
		}
		w, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
		switch k {
		case "detections":
			m.Detections = w
		case "passes":
			m.Passes = w
		case "positions", "position":
			m.Positions = w
		case "statuses", "status":
			m.Statuses = w
		default:
			return m, fmt.Errorf("unknown stream %q (detections, passes, positions, statuses)", k)
		}
	}
	return m, nil
}

// parsePIDs reads "name=pid,…".
func parsePIDs(s string) ([]load.Process, error) {
	var ps []load.Process
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		pid, err := strconv.Atoi(v)
		if !ok || err != nil || pid <= 0 {
			return nil, errors.New(part + " is not name=pid")
		}
		ps = append(ps, load.Process{Name: k, PID: pid})
	}
	return ps, nil
}
