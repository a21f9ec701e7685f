package decode

import (
	"testing"

	"github.com/valyala/fastjson"

	"github.com/fenceline/fenceline/internal/model"
)

func benchDecode(b *testing.B, topic, file string, perMessage int) {
	payload := readTestdata(b, file)
	reg := testRegistry()
	d := New(Options{Now: fixedNow})
	var out model.Batch
	if rej := d.Decode(topic, payload, fixedNow(), reg, &out); len(rej) != 0 || out.Len() != perMessage {
		b.Fatalf("setup: %d readings, rejects %v", out.Len(), rej)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		d.Decode(topic, payload, fixedNow(), reg, &out)
	}
	readings := float64(b.N * perMessage)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/readings, "ns/reading")
	b.ReportMetric(readings/b.Elapsed().Seconds(), "readings/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		// With -cpu 1 this is the decoder's CPU time (plus GC's).
		b.ReportMetric(float64(cpu)/readings, "cpu-ns/reading")
	}
}

func BenchmarkDecodeDetections(b *testing.B) {
	b.Run("msg-ts", func(b *testing.B) { benchDecode(b, topicFence, "detections_20.json", 20) })
	b.Run("reading-ts", func(b *testing.B) { benchDecode(b, topicFence, "detections_20_ts.json", 20) })
}

func BenchmarkDecodePasses(b *testing.B) {
	benchDecode(b, topicCheckpoint, "passes_20.json", 20)
}

func BenchmarkDecodePosition(b *testing.B) {
	benchDecode(b, topicPosition, "position.json", 1)
}

func BenchmarkDecodeStatus(b *testing.B) {
	benchDecode(b, topicStatus, "status.json", 1)
}

// BenchmarkBaselineFastjsonParse only parses the 20-detection payload with
// fastjson: the floor of a fastjson-based decoder, to relate the numbers
// above to the machine they were measured on.
func BenchmarkBaselineFastjsonParse(b *testing.B) {
	payload := readTestdata(b, "detections_20.json")
	var p fastjson.Parser
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if _, err := p.ParseBytes(payload); err != nil {
			b.Fatal(err)
		}
	}
	readings := float64(b.N * 20)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/readings, "ns/reading")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu)/readings, "cpu-ns/reading")
	}
}
