package influxwriter

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/influxdata/influxdb/models"
	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// refEncode is the reference for the hand-written hot path: the same schema
// through lineprotocol.Encoder in strict mode, which checks every key, tag
// value and the tag order. The fast path must produce the same bytes.
func refEncode(t testing.TB, b *model.Batch) []byte { return refEncodeBound(t, b, nil) }

// predBound is a TagBound whose answer is a function of the tag and the
// value alone, so that refEncodeBound can tell the same without asking: as
// a real bound's, its answer never changes. It counts what it is asked and
// told.
type predBound struct {
	over       func(tag, v string) bool
	asked      int
	overflowed map[string]int
}

func newPredBound(over func(tag, v string) bool) *predBound {
	return &predBound{over: over, overflowed: map[string]int{}}
}

func (p *predBound) Admit(tag, v string) bool { p.asked++; return !p.over(tag, v) }
func (p *predBound) Overflowed(tag, _ string) { p.overflowed[tag]++ }

// oddOver refuses the values of odd length, whatever the tag.
func oddOver(_, v string) bool { return len(v)%2 == 1 }

// refEncodeBound is refEncode with the tags bounded by over (nil: not
// bounded): a refused value is the tag "other" and the field <tag>_text.
func refEncodeBound(t testing.TB, b *model.Batch, over func(tag, v string) bool) []byte {
	bound := func(tag, v string) (string, string) {
		if over != nil && v != "" && over(tag, v) {
			return model.OverflowTag, v
		}
		return v, ""
	}
	var e lineprotocol.Encoder
	tag := func(k, v string) {
		if v != "" && !cleanTagString(v) {
			v = sanitizeTag(v)
		}
		if v != "" {
			e.AddTag(k, v)
		}
	}
	str := func(k, v string) {
		if v == "" {
			return
		}
		val, ok := lineprotocol.StringValue(string(sanitizeField(nil, v)))
		require.True(t, ok)
		e.AddField(k, val)
	}
	flt := func(k string, v float64) {
		if fv, ok := lineprotocol.FloatValue(v); ok {
			e.AddField(k, fv)
		}
	}
	opt := func(k string, v model.OptFloat) {
		if v.OK {
			flt(k, v.V)
		}
	}
	loc := func(p model.Point) {
		if p != (model.Point{}) {
			flt("lat", p.Lat)
			flt("lon", p.Lon)
		}
	}
	seq := lineprotocol.IntValue(b.Seq)
	for _, d := range b.Detections {
		mcc, mccText := bound("mcc", d.MCC)
		operator, operatorText := bound("operator", d.Operator)
		tech, techText := bound("tech", d.Tech)
		e.StartLine(MeasurementDetection)
		tag("device", b.Meta.Device)
		tag("mcc", mcc)
		tag("operator", operator)
		tag("site", b.Site)
		tag("tech", tech)
		e.AddField("seq", seq)
		str("imsi", d.IMSI)
		str("imei", d.IMEI)
		str("mac", d.MAC)
		str("tech_text", techText)
		str("mcc_text", mccText)
		str("operator_text", operatorText)
		if d.RSSI.OK {
			flt("rssi", float64(d.RSSI.V))
		}
		loc(d.Loc)
		e.EndLine(time.Unix(0, d.PointNS))
	}
	for _, p := range b.Passes {
		plateColor, plateColorText := bound("plate_color", p.PlateColor)
		vehicleType, vehicleTypeText := bound("vehicle_type", p.VehicleType)
		e.StartLine(MeasurementPass)
		tag("device", b.Meta.Device)
		tag("direction", p.Direction) // not bounded
		tag("plate_color", plateColor)
		tag("site", b.Site)
		tag("vehicle_type", vehicleType)
		e.AddField("seq", seq)
		str("plate", p.Plate)
		str("vehicle_color", p.VehicleColor)
		str("plate_color_text", plateColorText)
		str("vehicle_type_text", vehicleTypeText)
		opt("speed_kmh", p.SpeedKmh)
		if p.Lane.OK {
			e.AddField("lane", lineprotocol.IntValue(p.Lane.V))
		}
		opt("heading", p.Heading)
		opt("confidence", p.Confidence)
		str("image", p.Image)
		loc(p.Loc)
		e.EndLine(time.Unix(0, p.PointNS))
	}
	for _, p := range b.Positions {
		e.StartLine(MeasurementPosition)
		tag("device", b.Meta.Device)
		tag("site", b.Site)
		e.AddField("seq", seq)
		loc(p.Loc)
		opt("speed_kmh", p.SpeedKmh)
		opt("heading", p.Heading)
		opt("accuracy_m", p.AccuracyM)
		e.EndLine(time.Unix(0, p.PointNS))
	}
	for _, s := range b.Statuses {
		e.StartLine(MeasurementStatus)
		tag("device", b.Meta.Device)
		tag("kind", string(b.Kind))
		tag("site", b.Site)
		e.AddField("seq", seq)
		opt("battery_pct", s.BatteryPct)
		opt("temp_c", s.TempC)
		if s.UptimeS.OK {
			e.AddField("uptime_s", lineprotocol.IntValue(s.UptimeS.V))
		}
		if s.Tamper.OK {
			e.AddField("tamper", lineprotocol.BoolValue(s.Tamper.V))
		}
		str("power", s.Power)
		opt("signal_dbm", s.SignalDbm)
		if s.Queue.OK {
			e.AddField("queue", lineprotocol.IntValue(s.Queue.V))
		}
		str("fw", s.FW)
		e.EndLine(time.Unix(0, s.PointNS))
	}
	require.NoError(t, e.Err())
	return e.Bytes()
}

func cleanTagString(s string) bool {
	_, ok := appendTagValue(nil, s)
	return ok
}

// fuzzBatch builds a batch of every stream from arbitrary strings and numbers.
func fuzzBatch(s1, s2, s3 string, f1, f2 float64, i1 int64, flag bool) *model.Batch {
	t := time.Unix(0, i1).UTC()
	st := model.Stamp{Time: t, PointNS: i1}
	b := &model.Batch{Meta: model.Meta{Site: s1, Device: s2, Kind: model.Kind(s3), Seq: i1}}
	d := model.Detection{Stamp: st, IMSI: s1, IMEI: s2, MAC: s3, MCC: s3, Operator: s2, Tech: s1, Loc: model.Point{Lat: f1, Lon: f2}}
	d.RSSI.V, d.RSSI.OK = -71, flag
	// The last two share their position and time, as a message's readings
	// do: the second copies the first's tail.
	b.Detections = []model.Detection{d, {Stamp: st, IMSI: s2, Tech: s3, Loc: model.Point{Lat: f2, Lon: f1}}, d, d}
	b.Passes = []model.Pass{{Stamp: st, Plate: s1, PlateColor: s2, VehicleType: s3, VehicleColor: s3, Direction: s1,
		Image: s2, SpeedKmh: model.OptFloat{V: f1, OK: flag}, Lane: model.OptInt{V: i1, OK: !flag},
		Heading: model.Some(f2), Confidence: model.Some(f1 / 3), Loc: model.Point{Lat: f1}}}
	b.Positions = []model.Position{{Stamp: st, Loc: model.Point{Lat: f1, Lon: f2}, SpeedKmh: model.Some(f2),
		AccuracyM: model.OptFloat{V: f1, OK: flag}}}
	b.Statuses = []model.Status{{Stamp: st, BatteryPct: model.Some(f1), TempC: model.Some(-f2), UptimeS: model.SomeInt(i1),
		Tamper: model.SomeBool(flag), Power: s1, SignalDbm: model.Some(f2 * 1e6), Queue: model.SomeInt(-i1), FW: s3}}
	return b
}

func TestEncodeMatchesLineprotocol(t *testing.T) {
	cases := []struct{ s1, s2, s3 string }{
		{"mdl", "F-AOL-01", "fence"},
		{"a b", "c,d", "e=f"},
		{`q"uote\`, "line\nbreak\r\t", "\x00\x7f"},
		{"蒙B12345", "1598 УБА", "\xff\xfe"},
		{`\\`, `a\`, `\ `},
		{"", "", ""},
	}
	floats := []float64{0, math.Copysign(0, -1), 1, -71, 999999, 1e6, -1e6, 123456.5, 1e21, 1e-7, 41.9612, 110.4875,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(-1), 0.1 + 0.2}
	// The tags unbounded, and bounded so that the texts of the tags go
	// through the fields' escaping and sanitising.
	for _, over := range []func(tag, v string) bool{nil, oddOver} {
		var e Encoder // shared: its caches carry over from batch to batch
		if over != nil {
			e.SetTagBound(newPredBound(over))
		}
		for _, c := range cases {
			for i, f := range floats {
				b := fuzzBatch(c.s1, c.s2, c.s3, f, floats[(i+3)%len(floats)], int64(i)*1e15-7e17, i%2 == 0)
				got, n := e.AppendBatch(nil, b)
				require.Equal(t, b.Len(), n)
				assert.Equal(t, string(refEncodeBound(t, b, over)), string(got), "case %q float %v bounded %v", c, f, over != nil)
			}
		}
	}
}

// The tag-set cache across many devices and code values, colliding slots
// included.
func TestEncodeTagSetCache(t *testing.T) {
	var e Encoder
	for round := range 3 {
		for dev := range 40 {
			b := realisticDetections(int64(dev))
			b.Meta.Device = fmt.Sprintf("F-%02d", dev)
			b.Meta.Site = []string{"mdl", "bym", "erl"}[(dev+round)%3]
			want := string(refEncode(t, b))
			got, _ := e.AppendBatch(nil, b)
			require.Equal(t, want, string(got), "round %d device %d", round, dev)
		}
	}
}

// Tag sets whose strings differ in one byte, in their lengths, or only in
// which tag holds which bytes, and the same strings under both measurements:
// strings of up to eight bytes are compared as packed words, longer ones as
// strings.
func TestEncodeTagSetCacheKeys(t *testing.T) {
	var values []string
	for n := range 11 {
		v := "abcdefghij"[:n]
		values = append(values, v)
		for i := range n {
			values = append(values, v[:i]+"X"+v[i+1:])
		}
	}
	type set struct{ site, device, a, b, c string }
	var sets []set
	for _, v := range values {
		sets = append(sets, set{v, "F-1", "460", "46000", "lte"}, set{"mdl", v, "460", "46000", "lte"},
			set{"mdl", "F-1", v, "46000", "lte"}, set{"mdl", "F-1", "460", v, "lte"}, set{"mdl", "F-1", "460", "46000", v})
	}
	sets = append(sets, set{"mdl", "F-1", "46", "0", ""}, set{"mdl", "F-1", "4", "60", ""}, set{"mdl", "F-1", "", "460", ""},
		set{"mdl", "F-1", "460", "", ""}, set{"md", "lF-1", "", "", ""}, set{"mdlF", "-1", "", "", ""},
		set{"mdl", "F-1", "460", "46000", "\x00"})
	var e Encoder
	for round := range 2 {
		for i, ts := range sets {
			det := detectionBatch(int64(i), 1)
			det.Meta.Site, det.Meta.Device = ts.site, ts.device
			d := &det.Detections[0]
			d.MCC, d.Operator, d.Tech = ts.a, ts.b, ts.c
			pass := &model.Batch{Meta: det.Meta, Passes: []model.Pass{{Stamp: d.Stamp, Plate: "蒙B12345",
				Direction: ts.a, PlateColor: ts.b, VehicleType: ts.c}}}
			for _, b := range []*model.Batch{det, pass} {
				got, _ := e.AppendBatch(nil, b)
				require.Equal(t, string(refEncode(t, b)), string(got), "round %d set %q", round, ts)
			}
		}
	}
}

// A caller may hand strings over memory it reuses (zero-copy decoding):
// the cache must keep copies of its keys.
func TestEncodeTagSetCacheOwnsKeys(t *testing.T) {
	var e Encoder
	// Only the first byte differs: the hash reads lengths and last bytes,
	// so both tag sets look alike to it.
	mem := []byte("long-tech-name-lte")
	b := detectionBatch(1, 1)
	b.Detections[0].Tech = unsafe.String(&mem[0], len(mem))
	_, _ = e.AppendBatch(nil, b)
	copy(mem, "x")
	b2 := detectionBatch(2, 1)
	b2.Detections[0].Tech = "xong-tech-name-lte"
	got, _ := e.AppendBatch(nil, b2)
	assert.Contains(t, string(got), ",tech=xong-tech-name-lte ")
	b3 := detectionBatch(3, 1)
	b3.Detections[0].Tech = "long-tech-name-lte"
	got, _ = e.AppendBatch(nil, b3)
	assert.Contains(t, string(got), ",tech=long-tech-name-lte ")
}

// A deployment's few hundred tag sets all fit: once each has been seen,
// encoding them again allocates nothing and builds no tag set.
func TestEncodeTagSetCacheHoldsDeployment(t *testing.T) {
	var batches []*model.Batch
	for dev := range 50 {
		for _, op := range []string{"46000", "46001", "46011"} {
			for _, tech := range []string{"gsm", "umts", "lte", "nr"} {
				b := detectionBatch(int64(len(batches)+1), 1)
				b.Meta.Device = fmt.Sprintf("F-%03d", dev)
				d := &b.Detections[0]
				d.MCC, d.MNC, d.Operator, d.Tech = op[:3], op[3:], op, tech
				batches = append(batches, b)
			}
		}
	}
	var e Encoder
	buf := make([]byte, 0, 4096)
	for _, b := range batches {
		buf, _ = e.AppendBatch(buf[:0], b)
		require.Equal(t, string(refEncode(t, b)), string(buf))
	}
	cached := 0
	for s := range e.tagSets.tags {
		for _, tag := range e.tagSets.tags[s] {
			if tag != 0 {
				cached++
			}
		}
	}
	assert.Equal(t, len(batches), cached, "tag sets kept")
	allocs := testing.AllocsPerRun(5, func() {
		for _, b := range batches {
			buf, _ = e.AppendBatch(buf[:0], b)
		}
	})
	assert.Zero(t, allocs)
}

func FuzzEncode(f *testing.F) {
	f.Add("mdl", "F-AOL-01", "lte", 41.9612, 110.4875, int64(1795741804120000000), true)
	f.Add("a b,c=d", "蒙B 1\"2\\", "\n\xff", math.Copysign(0, -1), 1e21, int64(-1), false)
	f.Add(`\ \="`, `x\,y`, `q\=`, 41.9612, 110.4875, int64(1795741804120000000), true)
	var e, bounded Encoder
	bounded.SetTagBound(newPredBound(oddOver))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, f1, f2 float64, i1 int64, flag bool) {
		b := fuzzBatch(s1, s2, s3, f1, f2, i1, flag)
		got, n := e.AppendBatch(nil, b)
		require.Equal(t, b.Len(), n)
		require.Equal(t, string(refEncode(t, b)), string(got))
		requireInfluxParses(t, got, n)
		got, _ = bounded.AppendBatch(nil, b)
		require.Equal(t, string(refEncodeBound(t, b, oddOver)), string(got), "bounded")
		requireInfluxParses(t, got, n)
	})
}

// requireInfluxParses checks lines with InfluxDB 1.8's own parser: n
// points, each line one. Byte equality with another encoder cannot see a
// body InfluxDB splits otherwise than line by line (its scanner skips
// backslash pairs: see model.TagFits).
func requireInfluxParses(t *testing.T, lines []byte, n int) {
	t.Helper()
	pts, err := models.ParsePointsWithPrecision(lines, time.Unix(0, 0), "n")
	require.NoError(t, err, "InfluxDB 1.8 parses %q", lines)
	require.Len(t, pts, n, "one point per line: %q", lines)
}

// The benchmarks' batches, encoded one after the other by one encoder as a
// writer does.
func TestEncodeRealisticMatchesLineprotocol(t *testing.T) {
	batches := []*model.Batch{realisticDetections(18231), realisticDetections(18232)}
	batches = append(batches, realisticPasses(551)...)
	batches = append(batches, realisticPositions(9)...)
	batches = append(batches, realisticStatuses(77)...)
	var e Encoder
	for i, b := range batches {
		got, n := e.AppendBatch(nil, b)
		require.Equal(t, b.Len(), n)
		require.Equal(t, string(refEncode(t, b)), string(got), "batch %d", i)
	}
}

// appendFloat against strconv on the values readings carry (decimals of a
// few digits, as JSON parses them), on the edges of the fast path and on
// random bit patterns.
func TestAppendFloatMatchesStrconv(t *testing.T) {
	check := func(v float64) {
		t.Helper()
		want := ""
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			want = ",x=" + strconv.FormatFloat(v, 'g', -1, 64)
		}
		if got := string(appendFloat(nil, ",x=", v)); got != want {
			t.Fatalf("appendFloat(%b = %v) = %q, want %q", math.Float64bits(v), v, got, want)
		}
	}
	edges := []float64{0, math.Copysign(0, -1), 1e-4, 1e-5, 9.999e-5, 1e6, 999999.999999999, 999999.9999999999,
		0.1, 0.2, 0.3, 0.1 + 0.2, 1.0 / 3, 2.0 / 3, 123456.5, 1e21, 1e-7, 41.9612, 110.4875, -71.5,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 524288, 524287.9999999999}
	for _, v := range edges {
		for _, w := range []float64{v, -v, math.Nextafter(v, 0), math.Nextafter(v, math.Inf(1)), math.Nextafter(-v, math.Inf(-1))} {
			check(w)
		}
	}
	for p := -30; p <= 30; p++ {
		x := math.Pow(10, float64(p))
		check(x)
		check(math.Nextafter(x, 0))
		check(math.Nextafter(x, math.Inf(1)))
	}
	// Every tenth below 1e4 (appendTenths) and beyond, and its neighbours.
	for i := -100_010; i <= 100_010; i++ {
		v := float64(i) / 10 // as ParseFloat: an IEEE division of exact values
		check(v)
		check(math.Nextafter(v, 0))
		check(math.Nextafter(v, math.Inf(1)))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		// A decimal of up to 7 integer digits and up to 12 decimals, parsed
		// as a JSON decoder would.
		s := strconv.FormatUint(r.Uint64N(1e7), 10) + "." + strconv.FormatUint(1e12+r.Uint64N(1e12), 10)[1:2+r.IntN(12)]
		if r.IntN(2) == 0 {
			s = "-" + s
		}
		v, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err)
		check(v)
		check(math.Nextafter(v, 0))
		check(v / 1e3)
		check(math.Float64frombits(r.Uint64()))
	}
}

// Point times on either side of the 1e6 and 1e12 ns steps whose digits the
// encoder reuses, and at the ends of int64, in an order that makes it reuse
// them: as positions, and as detections, whose lines keep their position and
// time digits together (two positions, to change one and not the other).
func TestEncodeTimes(t *testing.T) {
	var times []int64
	for _, base := range []int64{0, 1e12, 2e12, 1795741804e9, 1795741805e9, math.MaxInt64 - math.MaxInt64%1_000_000_000_000} {
		times = append(times, base, base+1, base+999_999, base+1e6, base+999_999_999_999, base-1, base+1e12, base)
	}
	times = append(times, math.MaxInt64, math.MinInt64, -1, -1e12, -1e12-1, 1e6, 999_999)
	var e Encoder
	for i, ns := range times {
		b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindPatrol, Device: "P-07", Seq: int64(i)},
			Positions: []model.Position{{Stamp: model.Stamp{PointNS: ns}, Loc: model.Point{Lat: 42.41, Lon: 110.12}}}}
		got, _ := e.AppendBatch(nil, b)
		require.Equal(t, string(refEncode(t, b)), string(got), "time %d", ns)
		for _, loc := range []model.Point{{Lat: 41.9612, Lon: 110.4875}, {}, {Lat: 41.9612, Lon: 110.4875}, {Lat: 41.9612, Lon: math.Copysign(0, -1)}} {
			d := &model.Batch{Meta: b.Meta, Detections: []model.Detection{{Stamp: model.Stamp{PointNS: ns}, IMSI: "460001234567890", Loc: loc},
				{Stamp: model.Stamp{PointNS: ns + 1}, IMSI: "460001234567891", Loc: loc}}}
			got, _ := e.AppendBatch(nil, d)
			require.Equal(t, string(refEncode(t, d)), string(got), "time %d, position %v", ns, loc)
		}
	}
}

// strSpecialWords and appendQuotedWords, eight bytes at a time, against
// strSpecial and appendQuoted a byte at a time: every byte at every place of strings of
// every length from one word to three, among neighbours that are not
// special (a word test must not carry from one byte into the next), and
// random strings of bytes near the edges of the classes.
func TestStrSpecialWordsMatchesTable(t *testing.T) {
	scan := func(v string) bool {
		for i := range len(v) {
			if strSpecial[v[i]] {
				return true
			}
		}
		return false
	}
	// appendQuotedWords must write what appendQuoted writes.
	quoted := func(v string) {
		if got, want := appendQuotedWords([]byte(`,x=`), v), appendQuoted([]byte(`,x=`), v); string(got) != string(want) {
			t.Fatalf("appendQuotedWords(%q) = %q, appendQuoted %q", v, got, want)
		}
	}
	for n := 8; n <= 24; n++ {
		for _, fill := range []byte{'a', '0', ' ', '!', '#', '[', ']', '~'} {
			buf := []byte(strings.Repeat(string(fill), n))
			require.False(t, strSpecialWords(string(buf)), "%q", buf)
			for p := range n {
				for c := range 256 {
					buf[p] = byte(c)
					if got := strSpecialWords(string(buf)); got != strSpecial[c] {
						t.Fatalf("strSpecialWords(%q) = %v", buf, got)
					}
					quoted(string(buf))
				}
				buf[p] = fill
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	edges := []byte{0, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']', 0x7e, 0x7f, 0x80, 0xff, 'a'}
	for range 200_000 {
		buf := make([]byte, 8+r.IntN(30))
		for i := range buf {
			buf[i] = edges[r.IntN(len(edges))]
			if r.IntN(4) != 0 {
				buf[i] = 'a' // mostly clean, so that clean strings are tested too
			}
		}
		want := scan(string(buf))
		if got := strSpecialWords(string(buf)); got != want {
			t.Fatalf("strSpecialWords(%q) = %v, want %v", buf, got, want)
		}
		quoted(string(buf))
	}
}
