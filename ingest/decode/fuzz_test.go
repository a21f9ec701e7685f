package decode

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/fenceline/fenceline/internal/luhn"
	"github.com/fenceline/fenceline/internal/model"
)

// fuzzTopics are the topics FuzzDecode picks from.
var fuzzTopics = []string{
	topicFence, topicCheckpoint, topicPosition, topicStatus, topicNoPos,
	"border/bt/patrol/P-BT/position", "border/mdl/checkpoint/CP-07/status",
}

// seedTopic picks the topic for a testdata file by its name.
func seedTopic(name string) uint8 {
	switch {
	case strings.HasPrefix(name, "detections"):
		return 0
	case strings.HasPrefix(name, "passes"):
		return 1
	case strings.HasPrefix(name, "position"):
		return 2
	}
	return 3
}

// seedFiles adds the testdata files matching pattern to the corpus, through add.
func seedFiles(f *testing.F, pattern string, add func(name string, payload []byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(files) == 0 {
		f.Fatal("no seed corpus", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		add(filepath.Base(file), b)
	}
}

func FuzzDecode(f *testing.F) {
	seedFiles(f, "*.json", func(name string, b []byte) { f.Add(seedTopic(name), b) })
	f.Add(uint8(0), []byte(detMsg(`{"imsi":"460001234567890","ts":1795741804120}`, `{"mac":"A4-5E-60-12-34-56","rssi":-1e400}`)))
	f.Add(uint8(1), []byte(passMsg(`{"plate":"蒙Ｂ１２３４５","lane":1e2}`, `{"plate":"  ","direction":"Inbound"}`)))
	f.Add(uint8(5), []byte(posMsg(`"lat":40.6574,"lon":109.8412,"datum":"gcj02"`)))

	reg := testRegistry()
	d1 := New(Options{Now: fixedNow})
	d2 := New(Options{Now: fixedNow})
	var out1, out2 model.Batch
	f.Fuzz(func(t *testing.T, sel uint8, payload []byte) {
		topic := fuzzTopics[int(sel)%len(fuzzTopics)]
		rej := d1.Decode(topic, payload, testNow, reg, &out1)
		checkDecoded(t, topic, payload, &out1, rej)

		// Decoding is deterministic: a redelivered message yields the same
		// points and rejections.
		p1, r1 := pointTimes(&out1), slices.Clone(rej)
		rej2 := d2.Decode(topic, payload, testNow, reg, &out2)
		if !slices.Equal(p1, pointTimes(&out2)) || !slices.Equal(r1, rej2) {
			t.Fatalf("not deterministic: %v %v / %v %v", p1, r1, pointTimes(&out2), rej2)
		}
	})
}

func pointTimes(b *model.Batch) []int64 {
	var p []int64
	for _, r := range b.Detections {
		p = append(p, r.PointNS)
	}
	for _, r := range b.Passes {
		p = append(p, r.PointNS)
	}
	for _, r := range b.Positions {
		p = append(p, r.PointNS)
	}
	for _, r := range b.Statuses {
		p = append(p, r.PointNS)
	}
	return p
}

var (
	reIMSI = regexp.MustCompile(`^[0-9]{6,15}$`)
	reIMEI = regexp.MustCompile(`^[0-9]{14,16}$`)
	reMAC  = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	reTech = regexp.MustCompile(`^[a-z0-9 ._/+-]{1,32}$`)
	// Identifier-shaped values, which must never show up in a detail.
	reIdentLike = regexp.MustCompile(`^([0-9]{6,}|[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5})$`)
)

// checkDecoded checks the properties every Decode result must have.
func checkDecoded(t *testing.T, topic string, payload []byte, out *model.Batch, rej []Reject) {
	t.Helper()
	for _, r := range rej {
		if !slices.Contains(Reasons, r.Reason) {
			t.Fatalf("unknown reason %q", r.Reason)
		}
		if r.Detail == "" || strings.ContainsAny(r.Detail, "\n\r") || !utf8.ValidString(r.Detail) {
			t.Fatalf("bad detail %q", r.Detail)
		}
	}
	for _, id := range identifierValues(payload) {
		for _, r := range rej {
			if strings.Contains(r.Detail, id) {
				t.Fatalf("detail %q contains identifier %q", r.Detail, id)
			}
		}
	}
	if len(rej) > 0 && rej[0].Index == -1 {
		if len(rej) != 1 || out.Len() != 0 {
			t.Fatalf("whole-message reject with %d rejects and %d readings", len(rej), out.Len())
		}
		return
	}

	// Every reading is kept or rejected, once.
	_, _, _, stream, _ := ParseTopic(topic)
	n := 1
	if stream == model.StreamDetections || stream == model.StreamPasses {
		v, err := fastjson.ParseBytes(payload)
		if err != nil {
			t.Fatalf("accepted a payload fastjson cannot parse: %v", err)
		}
		n = len(v.GetArray(stream.String()))
	}
	if out.Len()+len(rej) != n {
		t.Fatalf("%d readings + %d rejects != %d in the message", out.Len(), len(rej), n)
	}
	seen := make(map[int]bool)
	for _, r := range rej {
		if r.Index < 0 || r.Index >= n || seen[r.Index] {
			t.Fatalf("reject index %d (of %d) out of range or repeated", r.Index, n)
		}
		seen[r.Index] = true
	}
	last := -1
	check := func(st model.Stamp) {
		if st.Index <= last || st.Index >= n || seen[st.Index] {
			t.Fatalf("reading index %d out of order, range, or also rejected", st.Index)
		}
		last = st.Index
		if st.Time.Before(minTime) || st.Time.After(testNow.Add(DefaultMaxFuture)) {
			t.Fatalf("reading time %v out of bounds", st.Time)
		}
		if st.PointNS != model.PointTime(st.Time, out.Seq, st.Index) {
			t.Fatalf("PointNS %d != PointTime", st.PointNS)
		}
	}
	if out.Seq < 0 || out.Seq > maxSafeInt {
		t.Fatalf("seq %d", out.Seq)
	}

	for _, r := range out.Detections {
		check(r.Stamp)
		checkPoint(t, r.Loc)
		if r.IMSI == "" && r.IMEI == "" && r.MAC == "" {
			t.Fatal("detection without identifier")
		}
		if r.IMSI != "" {
			if !reIMSI.MatchString(r.IMSI) || r.MCC != r.IMSI[:3] || r.Operator != r.MCC+r.MNC ||
				(len(r.MNC) != 2 && len(r.MNC) != 3) || !strings.HasPrefix(r.IMSI, r.Operator) {
				t.Fatalf("bad imsi fields %q %q %q %q", r.IMSI, r.MCC, r.MNC, r.Operator)
			}
		} else if r.MCC != "" || r.MNC != "" || r.Operator != "" {
			t.Fatal("MCC without IMSI")
		}
		if r.IMEI != "" && (!reIMEI.MatchString(r.IMEI) || len(r.IMEI) == 15 && !luhn.Valid(r.IMEI)) {
			t.Fatalf("bad imei %q", r.IMEI)
		}
		if r.MAC != "" && !reMAC.MatchString(r.MAC) {
			t.Fatalf("bad mac %q", r.MAC)
		}
		if r.RSSI.OK {
			checkRange(t, "rssi", r.RSSI.V, -150, 0)
		}
		if r.Tech != "" && !reTech.MatchString(r.Tech) {
			t.Fatalf("bad tech %q", r.Tech)
		}
	}
	for _, r := range out.Passes {
		check(r.Stamp)
		checkPoint(t, r.Loc)
		checkText(t, r.Plate, r.PlateColor, r.VehicleType, r.VehicleColor, r.Image)
		if r.Plate == "" || r.Plate != strings.TrimSpace(r.Plate) || strings.Contains(r.Plate, "  ") {
			t.Fatalf("plate not normalised: %q", r.Plate)
		}
		for _, c := range r.Plate {
			if unicode.ToUpper(c) != c || (c >= 0xFF01 && c <= 0xFF5E) || c == 0x3000 {
				t.Fatalf("plate not normalised: %q", r.Plate)
			}
		}
		switch r.Direction {
		case "", "inbound", "outbound", "unknown":
		default:
			t.Fatalf("direction %q", r.Direction)
		}
		if r.SpeedKmh.OK {
			checkRange(t, "speed", r.SpeedKmh.V, 0, 500)
		}
		if r.Heading.OK {
			checkRange(t, "heading", r.Heading.V, 0, 360)
		}
		if r.Confidence.OK {
			checkRange(t, "confidence", r.Confidence.V, 0, 1)
		}
		if r.Lane.OK && (r.Lane.V < 0 || r.Lane.V > maxSafeInt) {
			t.Fatalf("lane %d", r.Lane.V)
		}
	}
	for _, r := range out.Positions {
		check(r.Stamp)
		checkPoint(t, r.Loc)
		if r.SpeedKmh.OK {
			checkRange(t, "speed", r.SpeedKmh.V, 0, 500)
		}
		if r.Heading.OK {
			checkRange(t, "heading", r.Heading.V, 0, 360)
		}
		if r.AccuracyM.OK {
			checkRange(t, "accuracy", r.AccuracyM.V, 0, maxAccuracyM)
		}
	}
	for _, r := range out.Statuses {
		check(r.Stamp)
		checkText(t, r.Power, r.FW)
		if r.BatteryPct.OK {
			checkRange(t, "battery", r.BatteryPct.V, 0, 100)
		}
		if r.TempC.OK {
			checkRange(t, "temp", r.TempC.V, -100, 150)
		}
		if r.SignalDbm.OK {
			checkRange(t, "signal", r.SignalDbm.V, -200, 0)
		}
		if r.UptimeS.OK && r.UptimeS.V < 0 || r.Queue.OK && r.Queue.V < 0 {
			t.Fatal("negative counter")
		}
	}
}

func checkPoint(t *testing.T, p model.Point) {
	t.Helper()
	checkRange(t, "lat", p.Lat, -90, 90)
	checkRange(t, "lon", p.Lon, -180, 180)
}

func checkRange(t *testing.T, name string, v, lo, hi float64) {
	t.Helper()
	if math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi {
		t.Fatalf("%s %v out of [%v, %v]", name, v, lo, hi)
	}
}

func checkText(t *testing.T, ss ...string) {
	t.Helper()
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("bad text %q", s)
		}
	}
}

// identifierValues returns the identifier-shaped string values of imsi, imei
// and mac keys anywhere in a payload.
func identifierValues(payload []byte) []string {
	v, err := fastjson.ParseBytes(payload)
	if err != nil {
		return nil
	}
	var ids []string
	var walk func(v *fastjson.Value, depth int)
	walk = func(v *fastjson.Value, depth int) {
		if depth > 10 {
			return
		}
		switch v.Type() {
		case fastjson.TypeObject:
			o, _ := v.Object()
			o.Visit(func(k []byte, v *fastjson.Value) {
				switch string(k) {
				case "imsi", "imei", "mac":
					if b, err := v.StringBytes(); err == nil && reIdentLike.Match(b) {
						ids = append(ids, string(b))
					}
				}
				walk(v, depth+1)
			})
		case fastjson.TypeArray:
			a, _ := v.Array()
			for _, e := range a {
				walk(e, depth+1)
			}
		}
	}
	walk(v, 0)
	return ids
}

// TestDecodeTestdata runs the fuzz properties over every sample payload and
// over single-byte corruptions of them, as a quick stand-in for fuzzing.
func TestDecodeTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := testRegistry()
	d := New(Options{Now: fixedNow})
	var out model.Batch
	for _, file := range files {
		payload, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		topic := fuzzTopics[seedTopic(filepath.Base(file))]
		rej := d.Decode(topic, payload, testNow, reg, &out)
		checkDecoded(t, topic, payload, &out, rej)
		if out.Len() == 0 {
			t.Errorf("%s: no readings (%v)", file, rej)
		}
		for i := 0; i < len(payload); i += 11 {
			for _, c := range []byte{'"', '1', 'x', '}', 0xff} {
				bad := slices.Clone(payload)
				bad[i] = c
				rej := d.Decode(topic, bad, testNow.Add(time.Duration(i)), reg, &out)
				checkDecoded(t, topic, bad, &out, rej)
			}
		}
	}
}
