package pipelinebench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/ingest/mqttsource"
	"github.com/fenceline/fenceline/ingest/pipeline"
	"github.com/fenceline/fenceline/ingest/tagcap"
	"github.com/fenceline/fenceline/internal/load"
)

// statePasses is how many times the state benchmarks replay the pool of
// mixed traffic: ~20,000 messages, a state of ~18 MB of JSON.
const statePasses = 5

// busyEngine is an engine after statePasses passes of the load tool's mixed
// traffic through the pipeline: open incidents, cooldowns, count windows,
// dwell stays and velocity sightings of thousands of subjects.
func busyEngine(b *testing.B) *engine.Engine {
	b.Helper()
	w, rs := compiled(b)
	t := load.Traffic{Mix: load.Mix{Detections: 6, Passes: 2, Positions: 1, Statuses: 1}, DetectionBatch: 20, PassBatch: 5,
		ReadingTS: 0.2, InvalidShare: 0.01, AlertShare: 0.001, SeqStart: seqStart}
	msgs, seqs := pool(b, w, t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(rs, engine.Options{}, log, prometheus.NewRegistry())
	now := func() time.Time { return benchTime.Add(time.Second) }
	tags, err := tagcap.Open("", 256, log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	wr := &encodeWriter{}
	wr.enc.SetTagBound(tags)
	p := pipeline.New(pipeline.Options{Now: now}, rs.Registry, eng, wr, nopDeadLetters{}, &nopOutbox{}, log, prometheus.NewRegistry())
	ctx := context.Background()
	for range statePasses {
		for i := range msgs {
			m := &msgs[i]
			renumber(m, seqs)
			p.Handle(ctx, mqttsource.NewMessage(m.topic, m.payload, now(), nil))
		}
	}
	return eng
}

// BenchmarkStateSnapshot is the copy of the engine's state a save takes
// while the pipeline waits.
func BenchmarkStateSnapshot(b *testing.B) {
	eng := busyEngine(b)
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		eng.Snapshot()
	}
	reportCPU(b, processCPU()-cpu0)
}

// reportCPU reports the process's CPU time per operation, the garbage
// collector's included, next to wall time: on a shared machine wall time
// also counts the time other processes had the CPU.
func reportCPU(b *testing.B, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkStateSave is the encoding of that copy (sorting included), which
// alerts of incidents wait for.
func BenchmarkStateSave(b *testing.B) {
	eng := busyEngine(b)
	var buf bytes.Buffer
	if err := eng.Snapshot().Save(&buf); err != nil {
		b.Fatal(err)
	}
	size := buf.Len()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		s := eng.Snapshot()
		buf.Reset()
		b.StartTimer()
		cpu0 := processCPU()
		if err := s.Save(&buf); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - cpu0
	}
	b.ReportMetric(float64(size)/1e6, "MB")
	reportCPU(b, cpu)
}
