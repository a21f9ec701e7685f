package pipelinebench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/influxwriter"
	"github.com/fenceline/fenceline/ingest/mqttsource"
	"github.com/fenceline/fenceline/ingest/pipeline"
	"github.com/fenceline/fenceline/ingest/tagcap"
	"github.com/fenceline/fenceline/internal/load"
	"github.com/fenceline/fenceline/internal/model"
)

// encodeWriter is the pipeline's writer without I/O: it encodes each batch
// into line protocol, as the real writer does, and drops the bytes.
type encodeWriter struct {
	enc   influxwriter.Encoder
	buf   []byte
	lines int
}

func (w *encodeWriter) Write(_ context.Context, b *model.Batch, done func(error)) error {
	var n int
	w.buf, n = w.enc.AppendBatch(w.buf[:0], b)
	w.lines += n
	done(nil)
	return nil
}

// nopDeadLetters and nopOutbox accept everything at once.
type nopDeadLetters struct{}

func (nopDeadLetters) Append(_ pipeline.DeadLetter, done func(error)) { done(nil) }
func (nopDeadLetters) Kept(pipeline.DeadLetter) bool                  { return false }

type nopOutbox struct{ alerts int }

func (o *nopOutbox) Append(alerts []model.Alert, done func(error)) {
	o.alerts += len(alerts)
	done(nil)
}

// tempDir holds the generated rules for the whole test binary: zone files
// are read again by every compile.
var tempDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if tempDir != "" {
		os.RemoveAll(tempDir)
	}
	os.Exit(code)
}

func makeTempDir() (string, error) {
	var err error
	tempDir, err = os.MkdirTemp("", "pipelinebench-")
	return tempDir, err
}

// The deployment is generated and compiled once per test binary: it takes
// seconds (1,000 zones, ten of them of 5,000 vertices), and every
// sub-benchmark evaluates against a fresh engine of its own anyway.
var (
	worldOnce sync.Once
	world     *load.World
	ruleset   func() *engine.Ruleset
	worldErr  error
)

func compiled(b *testing.B) (*load.World, *engine.Ruleset) {
	b.Helper()
	worldOnce.Do(func() {
		world, worldErr = load.GenerateWorld(load.DefaultWorld())
		if worldErr != nil {
			return
		}
		dir, err := makeTempDir()
		if err != nil {
			worldErr = err
			return
		}
		path, err := world.WriteRules(dir)
		if err != nil {
			worldErr = err
			return
		}
		r, err := config.LoadRules(path)
		if err != nil {
			worldErr = err
			return
		}
		// A ruleset belongs to one engine; compile once per sub-benchmark
		// from the parsed file.
		ruleset = func() *engine.Ruleset {
			rs, ps := engine.Compile(r, engine.Options{})
			if len(ps) > 0 {
				panic(ps)
			}
			return rs
		}
	})
	if worldErr != nil {
		b.Fatal(worldErr)
	}
	return world, ruleset()
}

// msg is one message of the benchmark's pool: its payload, where its seq's
// digits are, and whose seq counter it takes.
type msg struct {
	topic    string
	payload  []byte
	seqOff   int // -1: no seq to renumber
	counter  int
	readings int
}

// seqDigits is the width of every seq of the benchmark: they start at 10^12,
// so renumbering a message rewrites its digits in place.
const (
	seqStart  = 1_000_000_000_000
	seqDigits = 13
	poolSize  = 4096
)

// benchTime is the instant the traffic is stamped with: a night in the
// contract's time zone, so that the night-schedule rules are active.
var benchTime = time.Date(2026, 11, 26, 23, 10, 4, 120_000_000, time.FixedZone("CST", 8*3600))

func pool(b *testing.B, w *load.World, t load.Traffic) ([]msg, []int64) {
	b.Helper()
	g, err := load.NewGenerator(w, t)
	if err != nil {
		b.Fatal(err)
	}
	counters := map[string]int{}
	msgs := make([]msg, poolSize)
	for i := range msgs {
		m := g.Next(benchTime)
		off := -1
		if j := bytes.Index(m.Payload, []byte(`"seq":`)); j >= 0 && m.Keyed {
			off = j + len(`"seq":`)
		}
		key := m.Device
		if !m.Keyed {
			key = "" // never renumbered
		}
		c, ok := counters[key]
		if !ok {
			c = len(counters)
			counters[key] = c
		}
		msgs[i] = msg{topic: m.Topic, payload: m.Payload, seqOff: off, counter: c, readings: m.Readings}
	}
	seqs := make([]int64, len(counters))
	for i := range seqs {
		seqs[i] = seqStart
	}
	return msgs, seqs
}

// renumber gives m the next seq of its device: the pool is replayed many
// times, and a repeated seq would be taken for a redelivery and skip the
// rules.
func renumber(m *msg, seqs []int64) {
	if m.seqOff < 0 {
		return
	}
	seqs[m.counter]++
	var d [20]byte
	s := strconv.AppendInt(d[:0], seqs[m.counter], 10)
	copy(m.payload[m.seqOff:m.seqOff+seqDigits], s)
}

// rig is the pipeline without I/O, as benchmarked, with a pool of traffic
// for it.
type rig struct {
	msgs   []msg
	eng    *engine.Engine
	wr     *encodeWriter
	handle func(m *msg) // renumbers m and takes it through the pipeline
}

func newRig(b *testing.B, t load.Traffic) *rig {
	b.Helper()
	w, rs := compiled(b)
	t.SeqStart = seqStart
	msgs, seqs := pool(b, w, t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(rs, engine.Options{}, log, prometheus.NewRegistry())
	now := func() time.Time { return benchTime.Add(time.Second) }
	// The tag bound, as the daemon has it: in the writer's encoder, without
	// its file (the daemon writes it only when a value is first admitted,
	// never in the steady state measured here).
	tags, err := tagcap.Open("", 256, log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	wr := &encodeWriter{}
	wr.enc.SetTagBound(tags)
	p := pipeline.New(pipeline.Options{Now: now}, rs.Registry, eng, wr, nopDeadLetters{}, &nopOutbox{}, log, prometheus.NewRegistry())
	ctx := context.Background()
	return &rig{msgs: msgs, eng: eng, wr: wr, handle: func(m *msg) {
		renumber(m, seqs)
		p.Handle(ctx, mqttsource.NewMessage(m.topic, m.payload, now(), nil))
	}}
}

func benchPipeline(b *testing.B, t load.Traffic) {
	rg := newRig(b, t)
	msgs, wr, handle := rg.msgs, rg.wr, rg.handle
	// Warm up: the engine's windows, the decoder's and encoder's buffers
	// reach their steady state.
	for i := range msgs {
		handle(&msgs[i])
	}
	wr.lines = 0

	readings := 0
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPU()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := &msgs[i%len(msgs)]
		handle(m)
		readings += m.readings
	}
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&ms1)
	if wr.lines == 0 {
		b.Fatal("nothing was encoded")
	}
	r := float64(readings)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/r, "ns/reading")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/r, "allocs/reading")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/r, "B/reading")
	b.ReportMetric(r/b.Elapsed().Seconds(), "readings/s")
	if cpu > 0 {
		// All of the process's CPU, the garbage collector's on the other
		// cores included: with -cpu 1 it is the one-core cost.
		b.ReportMetric(float64(cpu.Nanoseconds())/r, "cpu-ns/reading")
	}
	b.ReportMetric(float64(wr.lines)/r, "stored/reading")
}

// BenchmarkPipeline is the whole per-message path without I/O, per traffic
// shape: the 20-detection messages with and without per-reading
// times, passes, and the load tool's mixed traffic with 1% invalid messages
// and 0.1% alert-raising readings.
func BenchmarkPipeline(b *testing.B) {
	for _, c := range []struct {
		name string
		t    load.Traffic
	}{
		{"detections-20", load.Traffic{Mix: load.Mix{Detections: 1}, DetectionBatch: 20}},
		{"detections-20-reading-ts", load.Traffic{Mix: load.Mix{Detections: 1}, DetectionBatch: 20, ReadingTS: 1}},
		{"passes-5", load.Traffic{Mix: load.Mix{Passes: 1}, PassBatch: 5}},
		{"mixed", load.Traffic{Mix: load.Mix{Detections: 6, Passes: 2, Positions: 1, Statuses: 1}, DetectionBatch: 20, PassBatch: 5,
			ReadingTS: 0.2, InvalidShare: 0.01, AlertShare: 0.001}},
	} {
		b.Run(c.name, func(b *testing.B) { benchPipeline(b, c.t) })
	}
}
