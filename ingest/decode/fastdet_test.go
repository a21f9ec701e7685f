package decode

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fenceline/fenceline/internal/model"
)

// fastCases are detections payloads for the fast path's differential test
// and the seeds of its fuzz target. fast says whether the fast path must
// take the payload (true) or decline it to the generic path (false).
var fastCases = []struct {
	name    string
	payload string
	fast    bool
}{
	{"plain", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte"}`, `{"imsi":"428991234567890","rssi":-88,"tech":"gsm"}`), true},
	{"reading ts string", detMsg(`{"imsi":"460001234567890","ts":"2026-11-26T23:10:03.900+08:00"}`, `{"mac":"a4:5e:60:12:34:56","ts":"2026-11-26T15:10:03Z"}`), true},
	{"reading ts millis", detMsg(`{"imsi":"460001234567890","ts":1795741804120}`), true},
	{"nulls are absent", detMsg(`{"imsi":"460001234567890","imei":null,"mac":null,"rssi":null,"tech":null,"ts":null}`), true},
	{"empty strings are absent", detMsg(`{"imsi":"","imei":"490154203237518","mac":"","tech":""}`), true},
	{"mac with dashes, upper case", detMsg(`{"mac":"A4-5E-60-12-34-56","tech":"LTE"}`), true},
	{"whitespace everywhere", "{ \"v\" : 1 , \"seq\" : 5 , \"ts\" : 1795741804120 , \"detections\" : [ { \"imsi\" : \"460001234567890\" , \"rssi\" : -71.5 } ,\n\t{ \"imei\" : \"490154203237518\" } ] }", true},
	{"empty array", detMsg(), true},
	{"short imsi, 16-digit imei", detMsg(`{"imsi":"460001","imei":"3540000000000001"}`), true},
	{"rssi -0 and 0", detMsg(`{"imsi":"460001234567890","rssi":-0}`, `{"imsi":"460001234567891","rssi":0}`), true},
	{"bad reading ts rejected alone", detMsg(`{"imsi":"460001234567890","ts":"yesterday"}`, `{"imsi":"460001234567891"}`), true},
	{"future reading ts", detMsg(`{"imsi":"460001234567890","ts":"2027-01-01T00:00:00Z"}`, `{"imsi":"460001234567891","ts":true}`), false},
	{"reading ts before 2000", detMsg(`{"imsi":"460001234567890","ts":946684799999}`, `{"imsi":"460001234567891","ts":1.5}`), true},
	{"no position, device has none", `{"v":1,"seq":5,"ts":1795741804120,"detections":[{"imsi":"460001234567890"}]}`, true},
	{"loc gcj02", `{"v":1,"seq":5,"ts":1795741804120,"loc":{"lat":40.6574,"lon":109.8412,"datum":"gcj02"},"detections":[{"imsi":"460001234567890"}]}`, true},
	{"bad envelope after the array", `{"detections":[{"imsi":"460001234567890"}],"v":2,"seq":5,"ts":1795741804120}`, true},
	{"mac in other forms, any case", detMsg(`{"mac":"0F-9a-Ff-00-99-aA"}`, `{"mac":"A45E60123456"}`, `{"mac":"a45e.6012.3456"}`), true},
	{"mac with mixed separators", detMsg(`{"mac":"a4:5e-60:12:34:56"}`), false},
	{"mac with a non-hex last digit", detMsg(`{"mac":"a4:5e:60:12:34:5g"}`), false},
	{"mac one byte long", detMsg(`{"mac":"a4:5e:60:12:34:56:"}`), false},
	{"14-digit imei, 15-digit imsi with a 3-digit mnc", detMsg(`{"imsi":"310150123456789","imei":"49015420323751"}`), true},
	{"16-digit imsi", detMsg(`{"imsi":"4600012345678901"}`), false},
	{"5-digit imsi", detMsg(`{"imsi":"46000"}`), false},
	{"imei with a letter", detMsg(`{"imei":"4901542032375l8"}`), false},
	{"space around a colon", detMsg(`{"imsi" :"460001234567890","imei": "490154203237518","mac"  :  "a4:5e:60:12:34:56"}`), true},
	{"key longer than a known one", detMsg(`{"imsi":"460001234567890","imsix":"460001234567890"}`), false},
	{"every known tech, canonical and key by key", detMsg(
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"gsm"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"umts"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"nr"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"NR"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"ltE"}`,
		`{"tech":"gsm","imsi":"460001234567890"}`, `{"tech":"umts","imsi":"460001234567890"}`,
		`{"tech":"lte","imsi":"460001234567890"}`, `{"tech":"nr","imsi":"460001234567890"}`,
		`{"tech":"Umts","imsi":"460001234567890"}`, `{"tech":"nr ","imsi":"460001234567890"}`), true},
	{"rssi at its bounds and in other forms", detMsg(`{"imsi":"460001234567890","rssi":-150}`, `{"imsi":"460001234567890","rssi":-0}`,
		`{"imsi":"460001234567890","rssi":-100.0}`, `{"imsi":"460001234567890","rssi":-9,"tech":"nr"}`), true},
	{"rssi below -150", detMsg(`{"imsi":"460001234567890","rssi":-151}`), false},
	{"rssi with four digits", detMsg(`{"imsi":"460001234567890","rssi":-1000}`), false},
	{"rssi with a leading zero", detMsg(`{"imsi":"460001234567890","rssi":-070}`), false},
	{"rssi a minus sign only", detMsg(`{"imsi":"460001234567890","rssi":-}`), false},
	{"canonical, with ts in each form", detMsg(
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"A4-5E-60-12-34-56","rssi":-71,"tech":" LTE ","ts":"2026-11-26T23:10:03.900+08:00"}`,
		`{"imsi":"310150123456789","imei":"49015420323751","mac":"a4:5e:60:12:34:56","rssi":-0,"tech":"","ts":1795741804120}`,
		`{"imsi":"460001","imei":"3540000000000001","mac":"a4:5e:60:12:34:56","rssi":-150,"tech":"nr","ts":null}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte","ts":"yesterday"}`), true},
	{"canonical but for a value", detMsg(
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71.5,"tech":"lte"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a45e60123456","rssi":-71,"tech":"lte"}`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte" }`,
		`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":null}`), true},
	{"canonical with a bad luhn", detMsg(`{"imsi":"460001234567890","imei":"490154203237519","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte"}`), false},
	{"canonical with a bad mac", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:5g","rssi":-71,"tech":"lte"}`), false},
	{"canonical with a bad tech", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"l*e"}`), false},
	{"canonical with a bad ts", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte","ts":true}`), false},
	{"canonical then an unknown key", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte","band":7}`), false},
	{"canonical then a repeated key", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"lte","ts":null,"ts":1795741804120}`), false},
	{"escape in a value", detMsg(`{"imsi":"46000123456789\u0030"}`), false},
	{"escape in a key", detMsg(`{"ims\u0069":"460001234567890"}`), false},
	{"non-ASCII value", detMsg(`{"imsi":"460001234567890","tech":"lté"}`), false},
	{"unknown key", detMsg(`{"imsi":"460001234567890","band":7}`), false},
	{"duplicate key", detMsg(`{"imsi":"460001234567890","imsi":"460001234567891"}`), false},
	{"no identifier", detMsg(`{"rssi":-70}`), false},
	{"empty object", detMsg(`{}`), false},
	{"bad imsi", detMsg(`{"imsi":"46000123456789X"}`, `{"imsi":"460001234567890"}`), false},
	{"bad luhn", detMsg(`{"imei":"490154203237519"}`), false},
	{"bad mac", detMsg(`{"mac":"a4:5e:60:12:34"}`), false},
	{"bad tech", detMsg(`{"imsi":"460001234567890","tech":"l*e"}`), false},
	{"tech with DEL", detMsg("{\"imsi\":\"460001234567890\",\"tech\":\"lt\x7f\"}"), false},
	{"rssi out of range", detMsg(`{"imsi":"460001234567890","rssi":5}`), false},
	{"rssi with exponent", detMsg(`{"imsi":"460001234567890","rssi":-7.1e1}`), false},
	{"rssi as string", detMsg(`{"imsi":"460001234567890","rssi":"-70"}`), false},
	{"imsi as number", detMsg(`{"imsi":460001234567890}`), false},
	{"element not an object", detMsg(`{"imsi":"460001234567890"}`, `7`), false},
	{"nested array", detMsg(`[{"imsi":"460001234567890"}]`), false},
	{"detections not an array", `{"v":1,"seq":5,"ts":1795741804120,"detections":{"imsi":"460001234567890"}}`, false},
	{"detections twice", `{"v":1,"seq":5,"ts":1795741804120,"detections":[{"imsi":"460001234567890"}],"detections":[]}`, false},
	{"detections twice, one escaped", `{"v":1,"seq":5,"ts":1795741804120,"detections":[{"imsi":"460001234567890"}],"detection\u0073":[]}`, true},
	{"detections in loc", `{"v":1,"seq":5,"ts":1795741804120,"loc":{"detections":[{"imsi":"1"}]},"detections":[{"imsi":"460001234567890"}]}`, true},
	{"truncated", detMsg(`{"imsi":"460001234567890"}`)[:40], false},
	{"trailing garbage", detMsg(`{"imsi":"460001234567890"}`) + "x", false},
	{"leading zero rssi", detMsg(`{"imsi":"460001234567890","rssi":-07}`), false},
	{"missing comma", detMsg(`{"imsi":"460001234567890" "imei":"490154203237518"}`), false},
	{"trailing comma", detMsg(`{"imsi":"460001234567890",}`), false},
	{"too many readings", detMsg(slices.Repeat([]string{`{"imsi":"460001234567890"}`}, model.MaxReadingsPerMessage+1)...), false},
	{"as many readings as allowed", detMsg(slices.Repeat([]string{`{"imsi":"460001234567890"}`}, model.MaxReadingsPerMessage)...), true},
	// Past maxString a tech is refused, spaces or not, whichever path
	// reads it (and whatever its neighbours make the fast path do).
	{"tech of 300 spaces and lte", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"`+strings.Repeat(" ", 300)+`lte"}`,
		`{"tech":"`+strings.Repeat(" ", 300)+`lte","imsi":"460001234567891"}`), false},
	{"tech of 300 spaces", detMsg(`{"imsi":"460001234567890","tech":"` + strings.Repeat(" ", 300) + `"}`), false},
	{"tech of 250 spaces and lte", detMsg(`{"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56","rssi":-71,"tech":"`+strings.Repeat(" ", 250)+`lte"}`,
		`{"tech":"`+strings.Repeat(" ", 250)+`lte","imsi":"460001234567891"}`), true},
}

// decodeBoth decodes payload with the fast path and without it, fails the
// test if the results differ, and reports whether the fast path took it.
func decodeBoth(t *testing.T, fast, generic *Decoder, topic string, payload []byte) bool {
	t.Helper()
	reg := testRegistry()
	var out1, out2 model.Batch
	rej1 := slices.Clone(fast.Decode(topic, payload, testNow, reg, &out1))
	took := fast.t.fastArr != 0
	rej2 := generic.Decode(topic, payload, testNow, reg, &out2)
	if !slices.Equal(rej1, rej2) {
		t.Fatalf("rejections differ:\nfast    %v\ngeneric %v", rej1, rej2)
	}
	if out1.Meta != out2.Meta || out1.Device != out2.Device || out1.Len() != out2.Len() || len(out1.Detections) != len(out2.Detections) {
		t.Fatalf("batches differ:\nfast    %+v\ngeneric %+v", out1, out2)
	}
	for i := range out1.Detections {
		a, b := out1.Detections[i], out2.Detections[i]
		// Each decoder has its own *time.Location per offset: compare
		// instants and offsets, then the rest as values.
		_, offA := a.Time.Zone()
		_, offB := b.Time.Zone()
		if !a.Time.Equal(b.Time) || offA != offB {
			t.Fatalf("detection %d: time %v, generic %v", i, a.Time, b.Time)
		}
		a.Time = b.Time
		if a != b {
			t.Fatalf("detection %d differs:\nfast    %+v\ngeneric %+v", i, a, b)
		}
	}
	return took
}

func newDecoders() (fast, generic *Decoder) {
	// A payload limit that lets the cases reach MaxReadingsPerMessage.
	fast = New(Options{Now: fixedNow, MaxPayload: 4 << 20})
	generic = New(Options{Now: fixedNow, MaxPayload: 4 << 20})
	generic.noFastPath = true
	return fast, generic
}

func TestFastDetectionsMatchGeneric(t *testing.T) {
	fast, generic := newDecoders()
	for _, topic := range []string{topicFence, topicNoPos} {
		for _, c := range fastCases {
			t.Run(c.name, func(t *testing.T) {
				took := decodeBoth(t, fast, generic, topic, []byte(c.payload))
				if took != c.fast {
					t.Errorf("fast path taken: %v, want %v", took, c.fast)
				}
			})
		}
	}
}

// The sample payloads of the benchmarks and the load tool take the fast
// path: without this, a change that made it decline them all would pass
// every other test and only show as a slower decoder.
func TestFastDetectionsTakesTestdata(t *testing.T) {
	fast, generic := newDecoders()
	for _, name := range []string{"detections.json", "detections_20.json", "detections_20_ts.json", "detections_gcj02.json"} {
		t.Run(name, func(t *testing.T) {
			if !decodeBoth(t, fast, generic, topicFence, readTestdata(t, name)) {
				t.Error("declined by the fast path")
			}
		})
	}
}

// FuzzFastDetections holds the fast path to the generic one: on any payload
// both give the same readings and the same rejections.
func FuzzFastDetections(f *testing.F) {
	for _, c := range fastCases {
		if len(c.payload) < 4096 {
			f.Add(false, []byte(c.payload))
		}
	}
	seedFiles(f, "detections*.json", func(_ string, b []byte) { f.Add(true, b) })
	fast, generic := newDecoders()
	f.Fuzz(func(t *testing.T, noPos bool, payload []byte) {
		topic := topicFence
		if noPos {
			topic = topicNoPos
		}
		decodeBoth(t, fast, generic, topic, payload)
	})
}

// plainRSSIRef is plainRSSI as the words say: a digit run of one to three
// digits without a leading zero, not followed by a fraction or an exponent.
func plainRSSIRef(b []byte, i int) (float64, int, bool) {
	if at(b, i) != '-' {
		return 0, i, false
	}
	n := digitRun(b, i+1)
	if n < 1 || n > 3 || n > 1 && b[i+1] == '0' {
		return 0, i, false
	}
	e := i + 1 + n
	if c := at(b, e); c == '.' || c == 'e' || c == 'E' {
		return 0, i, false
	}
	v, _ := strconv.Atoi(string(b[i+1 : e]))
	return -float64(v), e, v <= 150
}

// TestPlainRSSI compares plainRSSI with plainRSSIRef on every string of
// up to five bytes from an alphabet of digits, signs, the bytes that end
// or continue a number, and a byte above ASCII, at the end of the payload
// and before more of it.
func TestPlainRSSI(t *testing.T) {
	const alphabet = "-0159.eE,}\x80"
	var b []byte
	var walk func(n int)
	walk = func(n int) {
		for _, tail := range []string{"", ",", "7"} {
			in := append(slices.Clip(b), tail...)
			v, e, ok := plainRSSI(in, 0)
			rv, re, rok := plainRSSIRef(in, 0)
			if ok != rok || ok && (e != re || math.Float64bits(v) != math.Float64bits(rv)) {
				t.Fatalf("%q: (%v, %d, %v), want (%v, %d, %v)", in, v, e, ok, rv, re, rok)
			}
		}
		if n == 0 {
			return
		}
		for j := range len(alphabet) {
			b = append(b, alphabet[j])
			walk(n - 1)
			b = b[:len(b)-1]
		}
	}
	walk(5)
}

// TestKnownTech checks that a tech the fast path takes as one of techNames
// is what appendTech makes of it, and that the forms appendTech changes
// are not taken.
func TestKnownTech(t *testing.T) {
	for id, name := range techNames {
		if id == 0 {
			continue
		}
		if got := knownTech([]byte(name)); got != uint8(id) {
			t.Errorf("knownTech(%q) = %d, want %d", name, got, id)
		}
		out, msg := appendTech(nil, []byte(name))
		if msg != "" || string(out) != name {
			t.Errorf("appendTech(%q) = %q, %q", name, out, msg)
		}
		for _, other := range []string{strings.ToUpper(name), " " + name, name + " ", name[:len(name)-1], name + "x"} {
			if got := knownTech([]byte(other)); got != 0 {
				t.Errorf("knownTech(%q) = %d, want 0", other, got)
			}
		}
	}
	// knownTechAt takes a string, after its opening quote, exactly when
	// knownTech takes it, given 8 bytes to read.
	for _, v := range []string{"gsm", "umts", "lte", "nr", "LTE", "ltee", "lt", "n", "", "um", "umt", "umtss", "gsm ", " nr", "nr\\", "5g"} {
		for _, rest := range []string{`"}]}`, `"}]}    `, `","ts":1}`, `x"}`} {
			b := []byte(`"` + v + rest)
			id, e := knownTechAt(b, 1)
			want := uint8(0)
			if rest[0] == '"' && len(b)-1 >= 8 {
				want = knownTech([]byte(v))
			}
			if id != want || id != 0 && (string(b[1:e]) != techNames[id] || b[e] != '"') || id == 0 && e != 1 {
				t.Errorf("knownTechAt(%q) = %d, %d; want %d", b, id, e, want)
			}
		}
	}
}

// TestAppendWords16 checks the copy of up to 16 bytes as two words.
func TestAppendWords16(t *testing.T) {
	w := []byte("0123456789abcdefXYZ")
	for n := range 17 {
		got := appendWords16([]byte("pre"), w[:16], n)
		if string(got) != "pre"+string(w[:n]) {
			t.Errorf("n=%d: %q", n, got)
		}
	}
}
