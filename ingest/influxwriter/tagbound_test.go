package influxwriter

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/tagcap"
	"github.com/fenceline/fenceline/internal/model"
)

// maxBound admits the first max values of each tag it is asked about, as
// tagcap.Cap does (without its file and metrics), and counts.
type maxBound struct {
	max        int
	seen       map[string]map[string]bool
	asked      int
	overflowed map[string]int
}

func newMaxBound(max int) *maxBound {
	return &maxBound{max: max, seen: map[string]map[string]bool{}, overflowed: map[string]int{}}
}

func (m *maxBound) Admit(tag, v string) bool {
	m.asked++
	s := m.seen[tag]
	if s == nil {
		s = map[string]bool{}
		m.seen[tag] = s
	}
	if s[v] || v == model.OverflowTag {
		return true
	}
	if len(s) >= m.max {
		return false
	}
	s[v] = true
	return true
}

func (m *maxBound) Overflowed(tag, _ string) { m.overflowed[tag]++ }

const boundNS = 1795741804120000000

func boundDetections(ds ...model.Detection) *model.Batch {
	for i := range ds {
		ds[i].PointNS = boundNS + int64(i)
	}
	return &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindFence, Device: "F-1", Seq: 7}, Detections: ds}
}

func boundPasses(ps ...model.Pass) *model.Batch {
	for i := range ps {
		ps[i].PointNS = boundNS + int64(i)
	}
	return &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-7", Seq: 7}, Passes: ps}
}

func phone(imsi, tech string) model.Detection {
	return model.Detection{IMSI: imsi, MCC: imsi[:3], Operator: imsi[:5], Tech: tech}
}

// The bound is applied when a tag set is first encoded and remembered with
// it: a value past the bound is the tag "other" with its text in a field,
// on a cache hit as on a miss, counted for every reading; the uncached
// encoder (and so an evicted tag set) writes the same lines.
func TestEncodeTagBound(t *testing.T) {
	cases := []struct {
		name  string
		max   int
		batch *model.Batch
		want  string
		// overflows counted per encoding of batch
		overflows map[string]int
	}{
		{
			name:  "under the bound",
			max:   2,
			batch: boundDetections(phone("460001234567890", "lte"), phone("460001234567891", "nr"), phone("460001234567892", "")),
			want: `phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=lte seq=7i,imsi="460001234567890" 1795741804120000000
phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=nr seq=7i,imsi="460001234567891" 1795741804120000001
phone_detection,device=F-1,mcc=460,operator=46000,site=mdl seq=7i,imsi="460001234567892" 1795741804120000002
`,
			overflows: map[string]int{},
		},
		{
			name:  "tech past the bound",
			max:   1,
			batch: boundDetections(phone("460001234567890", "lte"), phone("460001234567891", "x-buggy"), phone("460001234567892", "lte")),
			want: `phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=lte seq=7i,imsi="460001234567890" 1795741804120000000
phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=other seq=7i,imsi="460001234567891",tech_text="x-buggy" 1795741804120000001
phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=lte seq=7i,imsi="460001234567892" 1795741804120000002
`,
			overflows: map[string]int{"tech": 1},
		},
		{
			name:  "mcc, operator and tech past the bound, texts in their order",
			max:   1,
			batch: boundDetections(phone("460001234567890", "lte"), phone("310150123456789", "nr x"), phone("310150123456780", "nr x")),
			want: `phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=lte seq=7i,imsi="460001234567890" 1795741804120000000
phone_detection,device=F-1,mcc=other,operator=other,site=mdl,tech=other seq=7i,imsi="310150123456789",tech_text="nr x",mcc_text="310",operator_text="31015" 1795741804120000001
phone_detection,device=F-1,mcc=other,operator=other,site=mdl,tech=other seq=7i,imsi="310150123456780",tech_text="nr x",mcc_text="310",operator_text="31015" 1795741804120000002
`,
			overflows: map[string]int{"mcc": 2, "operator": 2, "tech": 2},
		},
		{
			name:  "\"other\" sent by a device is no overflow",
			max:   1,
			batch: boundDetections(phone("460001234567890", "lte"), phone("460001234567891", "other")),
			want: `phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=lte seq=7i,imsi="460001234567890" 1795741804120000000
phone_detection,device=F-1,mcc=460,operator=46000,site=mdl,tech=other seq=7i,imsi="460001234567891" 1795741804120000001
`,
			overflows: map[string]int{},
		},
		{
			name: "passes: plate_color and vehicle_type bounded, direction never",
			max:  1,
			batch: boundPasses(
				model.Pass{Plate: "蒙B12345", Direction: "inbound", PlateColor: "blue", VehicleType: "K33", VehicleColor: "white"},
				model.Pass{Plate: "蒙B12346", Direction: "outbound", PlateColor: "yellow", VehicleType: "H11", VehicleColor: "white"},
				model.Pass{Plate: "蒙B12347", Direction: "unknown", PlateColor: "blue", VehicleType: "H11"}),
			want: `vehicle_pass,device=CP-7,direction=inbound,plate_color=blue,site=mdl,vehicle_type=K33 seq=7i,plate="蒙B12345",vehicle_color="white" 1795741804120000000
vehicle_pass,device=CP-7,direction=outbound,plate_color=other,site=mdl,vehicle_type=other seq=7i,plate="蒙B12346",vehicle_color="white",plate_color_text="yellow",vehicle_type_text="H11" 1795741804120000001
vehicle_pass,device=CP-7,direction=unknown,plate_color=blue,site=mdl,vehicle_type=other seq=7i,plate="蒙B12347",vehicle_type_text="H11" 1795741804120000002
`,
			overflows: map[string]int{"plate_color": 1, "vehicle_type": 2},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cached Encoder
			bound := newMaxBound(c.max)
			cached.SetTagBound(bound)
			got, n := cached.AppendBatch(nil, c.batch)
			require.Equal(t, c.batch.Len(), n)
			assert.Equal(t, c.want, string(got), "first encoding: every tag set a miss")
			assert.Equal(t, c.overflows, bound.overflowed)
			asked := bound.asked

			got, _ = cached.AppendBatch(nil, c.batch)
			assert.Equal(t, c.want, string(got), "again: every tag set a hit")
			assert.Equal(t, asked, bound.asked, "a hit asks the bound nothing")
			for tag, n := range c.overflows {
				assert.Equal(t, 2*n, bound.overflowed[tag], "a hit counts its overflows again: %s", tag)
			}

			// The uncached path, with the bound's state as it now is (the
			// tag sets the cached one would ask about again after eviction).
			uncached := Encoder{uncached: true}
			uncached.SetTagBound(bound)
			got, _ = uncached.AppendBatch(nil, c.batch)
			assert.Equal(t, c.want, string(got), "uncached")
			assert.Greater(t, bound.asked, asked, "uncached asks the bound every time")
			for tag, n := range c.overflows {
				assert.Equal(t, 3*n, bound.overflowed[tag], "uncached counts its overflows too: %s", tag)
			}
		})
	}
}

// A tag set pushed out of the cache by many others is asked about again,
// and written as before.
func TestEncodeTagBoundEvicted(t *testing.T) {
	var e Encoder
	bound := newMaxBound(1)
	e.SetTagBound(bound)
	first := boundDetections(phone("460001234567890", "lte"))
	over := boundDetections(phone("460001234567891", "nr"))
	firstLine, _ := e.AppendBatch(nil, first)
	overLine, _ := e.AppendBatch(nil, over)
	require.Contains(t, string(overLine), ",tech=other ")
	require.Contains(t, string(overLine), `,tech_text="nr" `)

	// 16 times the cache's size: every set of ways is replaced many times over.
	for i := range 16 * tagSetSets * tagSetWays {
		b := boundDetections(phone("460001234567890", "lte"))
		b.Meta.Device = fmt.Sprintf("F-%05d", i)
		_, _ = e.AppendBatch(nil, b)
	}
	asked := bound.asked
	got, _ := e.AppendBatch(nil, first)
	assert.Equal(t, string(firstLine), string(got))
	got, _ = e.AppendBatch(nil, over)
	assert.Equal(t, string(overLine), string(got))
	assert.Equal(t, asked+6, bound.asked, "both tag sets were evicted and asked about again")
	assert.Equal(t, 2, bound.overflowed["tech"])
}

// With the bound, a deployment's tag sets in the steady state cost nothing
// more than without: no allocation, no question to the bound, only the count
// of the readings written as "other".
func TestEncodeTagBoundSteadyState(t *testing.T) {
	var batches []*model.Batch
	overflowing := 0
	for dev := range 50 {
		for _, op := range []string{"46000", "46001", "46011"} {
			for _, tech := range []string{"gsm", "umts", "lte", "nr", "x-junk"} {
				b := detectionBatch(int64(len(batches)+1), 1)
				b.Meta.Device = fmt.Sprintf("F-%03d", dev)
				d := &b.Detections[0]
				d.MCC, d.MNC, d.Operator, d.Tech = op[:3], op[3:], op, tech
				batches = append(batches, b)
				if tech == "x-junk" {
					overflowing++
				}
			}
		}
	}
	over := func(tag, v string) bool { return tag == "tech" && v == "x-junk" }
	bound := newPredBound(over)
	var e Encoder
	e.SetTagBound(bound)
	buf := make([]byte, 0, 4096)
	for _, b := range batches {
		buf, _ = e.AppendBatch(buf[:0], b)
		require.Equal(t, string(refEncodeBound(t, b, over)), string(buf))
	}
	asked := bound.asked
	runs := 0
	allocs := testing.AllocsPerRun(5, func() {
		runs++
		for _, b := range batches {
			buf, _ = e.AppendBatch(buf[:0], b)
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, asked, bound.asked, "no question to the bound")
	assert.Equal(t, (1+runs)*overflowing, bound.overflowed["tech"], "every reading written as \"other\" counted")
}

// The daemon's bound: *tagcap.Cap, whose counter counts the readings
// stored as "other", cached or not.
func TestEncodeTagBoundCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := tagcap.Open("", 2, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	require.NoError(t, err)
	var e Encoder
	e.SetTagBound(c)
	b := boundDetections(phone("460001234567890", "lte"), phone("460001234567891", "nr"), phone("460001234567892", "x-buggy-1"))
	first, _ := e.AppendBatch(nil, b)
	again, _ := e.AppendBatch(nil, b)
	assert.Equal(t, string(first), string(again))
	assert.Contains(t, string(first), `,tech=other seq=7i,imsi="460001234567892",tech_text="x-buggy-1" `)
	assert.Equal(t, 2.0, overflowReadings(t, reg, "tech"))
	assert.Equal(t, 0.0, overflowReadings(t, reg, "mcc"))
}

func overflowReadings(t *testing.T, reg *prometheus.Registry, tag string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "fenceline_ingest_tag_overflow_readings_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tag" && l.GetValue() == tag {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no overflow counter for %s", tag)
	return 0
}
