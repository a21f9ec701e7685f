package pipelinebench

import (
	"bytes"
	"testing"
	"time"

	"github.com/fenceline/fenceline/alerts/engine"
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
	r := newRig(b, load.Traffic{Mix: load.Mix{Detections: 6, Passes: 2, Positions: 1, Statuses: 1}, DetectionBatch: 20, PassBatch: 5,
		ReadingTS: 0.2, InvalidShare: 0.01, AlertShare: 0.001})
	for range statePasses {
		for i := range r.msgs {
			r.handle(&r.msgs[i])
		}
	}
	return r.eng
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
