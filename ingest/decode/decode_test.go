package decode

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// Message builders. The default message ts is 12 minutes before testNow.
const msgTS = `"2026-11-27T01:00:00Z"`

var msgTime = time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)

func detMsg(dets ...string) string {
	return `{"v":1,"seq":5,"ts":` + msgTS + `,"detections":[` + strings.Join(dets, ",") + `]}`
}

func passMsg(passes ...string) string {
	return `{"v":1,"seq":5,"ts":` + msgTS + `,"passes":[` + strings.Join(passes, ",") + `]}`
}

func posMsg(fields string) string {
	if fields != "" {
		fields = "," + fields
	}
	return `{"v":1,"seq":5,"ts":` + msgTS + fields + `}`
}

// envMsg is a detections message with the given envelope fields and one
// good detection.
func envMsg(env string) string {
	return `{` + env + `,"detections":[{"mac":"a4:5e:60:12:34:56"}]}`
}

func decode(t *testing.T, topic, payload string) (*model.Batch, []Reject) {
	t.Helper()
	d := New(Options{Now: fixedNow})
	var out model.Batch
	rej := d.Decode(topic, []byte(payload), testNow.Add(time.Second), testRegistry(), &out)
	return &out, rej
}

type wantRej struct {
	index  int
	reason Reason
}

func TestDecodeWholeMessageRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		topic   string
		payload string
		reason  Reason
	}{
		{"bad topic: prefix", "fence/mdl/fence/F-AOL-01/detections", detMsg(`{"imsi":"460001234567890"}`), BadTopic},
		{"bad topic: alerts", "border/mdl/alerts/night", detMsg(`{"imsi":"460001234567890"}`), BadTopic},
		{"bad topic: kind", "border/mdl/camera/F-AOL-01/detections", detMsg(`{"imsi":"460001234567890"}`), BadTopic},
		{"bad topic: stream", "border/mdl/fence/F-AOL-01/phones", detMsg(`{"imsi":"460001234567890"}`), BadTopic},
		{"unknown device", "border/mdl/fence/F-NOBODY/detections", detMsg(`{"imsi":"460001234567890"}`), UnknownDevice},
		{"device mismatch: site", "border/bt/fence/F-AOL-01/detections", detMsg(`{"imsi":"460001234567890"}`), DeviceMismatch},
		{"device mismatch: kind", "border/mdl/checkpoint/F-AOL-01/passes", passMsg(`{"plate":"蒙B12345"}`), DeviceMismatch},
		{"stream not allowed: passes from fence", "border/mdl/fence/F-AOL-01/passes", passMsg(`{"plate":"蒙B12345"}`), StreamNotAllowed},
		{"stream not allowed: detections from patrol", "border/mdl/patrol/P-07/detections", detMsg(`{"imsi":"460001234567890"}`), StreamNotAllowed},
		{"stream not allowed: position from checkpoint", "border/mdl/checkpoint/CP-07/position", posMsg(`"lat":42,"lon":110`), StreamNotAllowed},
		{"too large", topicFence, detMsg(`{"imsi":"460001234567890","x":"` + strings.Repeat("a", DefaultMaxPayload) + `"}`), TooLarge},
		{"malformed: not JSON", topicFence, `{"v":1,`, MalformedJSON},
		{"malformed: empty", topicFence, ``, MalformedJSON},
		{"malformed: invalid UTF-8", topicFence, "{\"v\":1,\"x\":\"\xff\"}", MalformedJSON},
		{"malformed: invalid UTF-8 in an identifier", topicFence, detMsg("{\"imsi\":\"46000\xc0\"}"), MalformedJSON},
		{"malformed: array", topicFence, `[1,2]`, MalformedJSON},
		{"malformed: string", topicFence, `"hello"`, MalformedJSON},
		{"malformed: NaN", topicFence, detMsg(`{"imsi":"460001234567890","rssi":NaN}`), MalformedJSON},
		{"malformed: Infinity in unknown key", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"x":-Infinity,"detections":[]}`, MalformedJSON},
		{"malformed: leading zero", topicFence, detMsg(`{"imsi":"460001234567890","rssi":-071}`), MalformedJSON},
		{"malformed: control char", topicFence, detMsg("{\"imsi\":\"46000123\t4567890\"}"), MalformedJSON},
		{"lone surrogate in a top-level field", topicFence, `{"v":1,"seq":1,"ts":"2026-11-26T23:10:04\ud800+08:00","detections":[]}`, BadTS},
		{"malformed: trailing data", topicFence, detMsg(`{"imsi":"460001234567890"}`) + `{}`, MalformedJSON},
		{"malformed: too deep", topicFence, `{"v":1,"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, MalformedJSON},
		{"duplicate v", topicFence, envMsg(`"v":1,"v":1,"seq":1,"ts":` + msgTS), BadField},
		{"duplicate detections", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"detections":[],"detections":[]}`, BadField},
		{"v missing", topicFence, envMsg(`"seq":1,"ts":` + msgTS), BadVersion},
		{"v null", topicFence, envMsg(`"v":null,"seq":1,"ts":` + msgTS), BadVersion},
		{"v 2", topicFence, envMsg(`"v":2,"seq":1,"ts":` + msgTS), BadVersion},
		{"v string", topicFence, envMsg(`"v":"1","seq":1,"ts":` + msgTS), BadVersion},
		{"v 1.5", topicFence, envMsg(`"v":1.5,"seq":1,"ts":` + msgTS), BadVersion},
		{"seq missing", topicFence, envMsg(`"v":1,"ts":` + msgTS), BadSeq},
		{"seq negative", topicFence, envMsg(`"v":1,"seq":-1,"ts":` + msgTS), BadSeq},
		{"seq fraction", topicFence, envMsg(`"v":1,"seq":1.5,"ts":` + msgTS), BadSeq},
		{"seq string", topicFence, envMsg(`"v":1,"seq":"5","ts":` + msgTS), BadSeq},
		{"seq above 2^53", topicFence, envMsg(`"v":1,"seq":9007199254740993,"ts":` + msgTS), BadSeq},
		{"seq huge exponent", topicFence, envMsg(`"v":1,"seq":1e400,"ts":` + msgTS), BadSeq},
		{"ts missing", topicFence, envMsg(`"v":1,"seq":1`), BadTS},
		{"ts null", topicFence, envMsg(`"v":1,"seq":1,"ts":null`), BadTS},
		{"ts no offset", topicFence, envMsg(`"v":1,"seq":1,"ts":"2026-11-27T01:00:00"`), BadTS},
		{"ts date only", topicFence, envMsg(`"v":1,"seq":1,"ts":"2026-11-27"`), BadTS},
		{"ts before 2000", topicFence, envMsg(`"v":1,"seq":1,"ts":"1999-12-31T23:59:59Z"`), BadTS},
		{"ts before 2000 by offset", topicFence, envMsg(`"v":1,"seq":1,"ts":"2000-01-01T07:59:59+08:00"`), BadTS},
		{"ts ms before 2000", topicFence, envMsg(`"v":1,"seq":1,"ts":946684799999`), BadTS},
		{"ts seconds, not ms", topicFence, envMsg(`"v":1,"seq":1,"ts":1795741804`), BadTS},
		{"ts ms fraction", topicFence, envMsg(`"v":1,"seq":1,"ts":1795741804120.5`), BadTS},
		{"ts ms past year 9999", topicFence, envMsg(`"v":1,"seq":1,"ts":253402300800000`), BadTS},
		{"ts bool", topicFence, envMsg(`"v":1,"seq":1,"ts":true`), BadTS},
		{"ts numeric string", topicFence, envMsg(`"v":1,"seq":1,"ts":"1795741804120"`), BadTS},
		{"ts future", topicFence, envMsg(`"v":1,"seq":1,"ts":"2026-11-27T01:17:01Z"`), FutureTS},
		{"ts future ms", topicFence, envMsg(`"v":1,"seq":1,"ts":1795742300000`), FutureTS},
		{"ts far future", topicFence, envMsg(`"v":1,"seq":1,"ts":"9999-12-31T23:59:59Z"`), FutureTS},
		{"no position", topicNoPos, detMsg(`{"imsi":"460001234567890"}`), NoPosition},
		{"no position, empty array", topicNoPos, detMsg(), NoPosition},
		{"loc 0,0 is no fix, none registered", topicNoPos, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":0,"lon":0},"detections":[{"imsi":"460001234567890"}]}`, NoPosition},
		{"loc -0.0,0 gcj02 is no fix, none registered", topicNoPos, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":-0.0,"lon":0,"datum":"gcj02"},"detections":[{"imsi":"460001234567890"}]}`, NoPosition},
		{"loc lat out of range", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":90.5,"lon":110},"detections":[]}`, BadPosition},
		{"loc lon out of range", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":41,"lon":-180.01},"detections":[]}`, BadPosition},
		{"loc lat missing", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lon":110},"detections":[]}`, BadPosition},
		{"loc lon null", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":41,"lon":null},"detections":[]}`, BadPosition},
		{"loc lat string", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":"41.9","lon":110},"detections":[]}`, BadPosition},
		{"loc lat overflow", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":1e400,"lon":110},"detections":[]}`, BadPosition},
		{"loc empty", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{},"detections":[]}`, BadPosition},
		{"loc not object", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":[41,110],"detections":[]}`, BadPosition},
		{"loc duplicate lat", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":41,"lat":42,"lon":110},"detections":[]}`, BadField},
		{"datum unknown", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":41,"lon":110,"datum":"bd09"},"detections":[]}`, BadDatum},
		{"datum number", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":41,"lon":110,"datum":84},"detections":[]}`, BadDatum},
		{"passes loc bad", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `,"loc":{"lat":41,"lon":200},"passes":[]}`, BadPosition},
		{"detections missing", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `}`, NoReadings},
		{"detections null", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"detections":null}`, NoReadings},
		{"detections not array", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"detections":{"imsi":"460001234567890"}}`, BadField},
		{"passes missing", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `}`, NoReadings},
		{"detections instead of passes", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `,"detections":[]}`, StreamNotAllowed},
		{"passes string", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `,"passes":"none"}`, BadField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, tc.topic, tc.payload)
			require.Len(t, rej, 1, "%v", rej)
			assert.Equal(t, tc.reason, rej[0].Reason, rej[0].Detail)
			assert.Equal(t, -1, rej[0].Index)
			assert.NotEmpty(t, rej[0].Detail)
			assert.NotContains(t, rej[0].Detail, "\n")
			assert.Zero(t, out.Len())
			assert.Equal(t, tc.topic, out.Topic)
			assert.Equal(t, testNow.Add(time.Second), out.Received)
		})
	}
}

func TestDecodeMaxPayloadOption(t *testing.T) {
	payload := []byte(detMsg(`{"imsi":"460001234567890"}`))
	var out model.Batch
	d := New(Options{Now: fixedNow, MaxPayload: len(payload)})
	assert.Empty(t, d.Decode(topicFence, payload, testNow, testRegistry(), &out))
	d = New(Options{Now: fixedNow, MaxPayload: len(payload) - 1})
	rej := d.Decode(topicFence, payload, testNow, testRegistry(), &out)
	require.Len(t, rej, 1)
	assert.Equal(t, TooLarge, rej[0].Reason)
}

func TestDecodeMaxFutureOption(t *testing.T) {
	payload := []byte(envMsg(`"v":1,"seq":1,"ts":"2026-11-27T01:17:00Z"`)) // exactly 5m after testNow
	var out model.Batch
	d := New(Options{Now: fixedNow})
	assert.Empty(t, d.Decode(topicFence, payload, testNow, testRegistry(), &out), "the limit itself is accepted")
	d = New(Options{Now: fixedNow, MaxFuture: time.Minute})
	rej := d.Decode(topicFence, payload, testNow, testRegistry(), &out)
	require.Len(t, rej, 1)
	assert.Equal(t, FutureTS, rej[0].Reason)
}

// A future ts says how far ahead it is; one centuries ahead (a garbled
// clock) says its date, not a Duration's 292-year ceiling.
func TestDecodeFutureTSDetail(t *testing.T) {
	for _, tc := range []struct{ name, ts, detail string }{
		{"minutes", `"2026-11-27T01:18:00Z"`, "ts: 6m0s after now, more than 5m0s in the future"},
		{"just past the limit, to the millisecond", `"2026-11-27T01:17:00.48Z"`, "ts: 5m0.48s after now, more than 5m0s in the future"},
		{"centuries", `99999999999999`, "ts: 5138-11-16 is more than 5m0s in the future"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out model.Batch
			rej := New(Options{Now: fixedNow}).Decode(topicFence, []byte(envMsg(`"v":1,"seq":1,"ts":`+tc.ts)), testNow, testRegistry(), &out)
			require.Len(t, rej, 1)
			assert.Equal(t, FutureTS, rej[0].Reason)
			assert.Equal(t, tc.detail, rej[0].Detail)
		})
	}
}

// A bad ts string is quoted when it looks like a date (spaces around it
// too), and otherwise said what it is without its text.
func TestDecodeBadTSDetail(t *testing.T) {
	for _, tc := range []struct{ name, ts, detail string }{
		{"no offset", `"2026-11-27T09:00:00.552"`, `ts: "2026-11-27T09:00:00.552" is not RFC 3339 with an offset`},
		{"a space before it", `" 2026-11-27T09:00:00Z"`, `ts: " 2026-11-27T09:00:00Z" is not RFC 3339 with an offset`},
		{"milliseconds in quotes", `"1795807775552"`, `ts: a number in quotes (13 digits: Unix milliseconds go unquoted) is not RFC 3339`},
		{"an identifier in the wrong place: its length only", `"460001234567890"`, `ts: a number in quotes (15 digits: Unix milliseconds go unquoted)`},
		{"microseconds in quotes", `"1795810447123000"`, `ts: a number in quotes (16 digits: Unix milliseconds go unquoted) is not RFC 3339`},
		{"an identifier after a date", `"2026-11-27T10:00:00 460001234567890"`, `ts: a 35-byte string is not RFC 3339`},
		{"a day the month does not have", `"2026-02-30T10:00:00+08:00"`, `ts: "2026-02-30T10:00:00+08:00": day out of range`},
		{"an hour past the day", `"2026-02-03T24:30:00Z"`, `ts: "2026-02-03T24:30:00Z": hour out of range`},
		{"nanoseconds are a date's", `"2026-11-27T10:00:00.123456789"`, `ts: "2026-11-27T10:00:00.123456789" is not RFC 3339 with an offset`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rej := decode(t, topicFence, envMsg(`"v":1,"seq":1,"ts":`+tc.ts))
			require.Len(t, rej, 1)
			assert.Equal(t, BadTS, rej[0].Reason)
			assert.Contains(t, rej[0].Detail, tc.detail)
		})
	}
}

func TestDecodeEnvelopeAccepted(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		seq  int64
		ts   time.Time
	}{
		{"v 1.0, seq exponent", `"v":1.0,"seq":1.8231e4,"ts":` + msgTS, 18231, msgTime},
		{"seq 0", `"v":1,"seq":0,"ts":` + msgTS, 0, msgTime},
		{"seq 2^53", `"v":1,"seq":9007199254740992,"ts":` + msgTS, 1 << 53, msgTime},
		{"ts ms", `"v":1,"seq":1,"ts":1795741804120`, 1, time.UnixMilli(1795741804120)},
		{"ts ms exponent", `"v":1,"seq":1,"ts":1.79574180412e12`, 1, time.UnixMilli(1795741804120)},
		{"ts offset", `"v":1,"seq":1,"ts":"2026-11-27T09:00:00.5+08:00"`, 1, msgTime.Add(500 * time.Millisecond)},
		{"ts very old", `"v":1,"seq":1,"ts":"2000-01-01T00:00:00Z"`, 1, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"unknown keys and escaped key", `"v":1,"\u0073eq":1,"ts":` + msgTS + `,"extra":{"a":[1,{"b":null}]},"note":"ignored"`, 1, msgTime},
		{"key order", `"ts":` + msgTS + `,"seq":1,"v":1`, 1, msgTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, topicFence, envMsg(tc.env))
			require.Empty(t, rej)
			require.Len(t, out.Detections, 1)
			assert.Equal(t, tc.seq, out.Seq)
			assert.True(t, tc.ts.Equal(out.Time), "%v", out.Time)
			assert.True(t, tc.ts.Equal(out.Detections[0].Time))
		})
	}
}

func TestDecodeDetectionRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		det    string
		reason Reason
	}{
		{"no identifier", `{"rssi":-50,"tech":"lte"}`, NoIdentifier},
		{"empty identifiers", `{"imsi":"","imei":null,"mac":""}`, NoIdentifier},
		{"imsi 5 digits", `{"imsi":"46000"}`, BadIMSI},
		{"imsi 16 digits", `{"imsi":"4600012345678901"}`, BadIMSI},
		{"imsi letter", `{"imsi":"46000123456789O"}`, BadIMSI},
		{"imsi number", `{"imsi":460001234567890}`, BadIMSI},
		{"imsi escaped non-digit", `{"imsi":"46000123456789\u0041"}`, BadIMSI},
		{"imsi full-width digits", `{"imsi":"４６０００１２３４５６７８９０"}`, BadIMSI},
		{"imei 13 digits", `{"imei":"4901542032375"}`, BadIMEI},
		{"imei 17 digits", `{"imei":"49015420323751800"}`, BadIMEI},
		{"imei Luhn", `{"imei":"490154203237517"}`, BadIMEI},
		{"imei number", `{"imei":490154203237518}`, BadIMEI},
		{"imei bad with good imsi", `{"imsi":"460001234567890","imei":"49015420323751x"}`, BadIMEI},
		{"mac 11 digits", `{"mac":"a45e6012345"}`, BadMAC},
		{"mac mixed separators", `{"mac":"a4:5e-60:12:34:56"}`, BadMAC},
		{"mac non-hex", `{"mac":"a4:5e:60:12:34:5g"}`, BadMAC},
		{"mac 5 octets", `{"mac":"a4:5e:60:12:34"}`, BadMAC},
		{"mac array", `{"mac":["a4","5e"]}`, BadMAC},
		{"rssi too low", `{"imsi":"460001234567890","rssi":-151}`, BadRSSI},
		{"rssi positive", `{"imsi":"460001234567890","rssi":0.5}`, BadRSSI},
		{"rssi string", `{"imsi":"460001234567890","rssi":"-71"}`, BadRSSI},
		{"rssi overflow", `{"imsi":"460001234567890","rssi":-1e400}`, BadRSSI},
		{"tech number", `{"imsi":"460001234567890","tech":4}`, BadField},
		{"tech too long", `{"imsi":"460001234567890","tech":"` + strings.Repeat("l", 33) + `"}`, BadField},
		{"tech bad character", `{"imsi":"460001234567890","tech":"lte;drop"}`, BadField},
		{"tech lone surrogate", `{"imsi":"460001234567890","tech":"\ud800"}`, BadField},
		{"imsi lone surrogate", `{"imsi":"46000123456789\udc00"}`, BadIMSI},
		{"not an object", `"460001234567890"`, BadField},
		{"null element", `null`, BadField},
		{"duplicate imsi", `{"imsi":"460001234567890","imsi":"460011234567890"}`, BadField},
		{"ts bad", `{"imsi":"460001234567890","ts":"yesterday"}`, BadTS},
		{"ts before 2000", `{"imsi":"460001234567890","ts":"1970-01-01T00:00:00Z"}`, BadTS},
		{"ts object", `{"imsi":"460001234567890","ts":{}}`, BadTS},
		{"ts future", `{"imsi":"460001234567890","ts":"2026-11-27T09:30:00+08:00"}`, FutureTS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := `{"imsi":"460001234567890"}`
			out, rej := decode(t, topicFence, detMsg(good, tc.det, good))
			require.Len(t, rej, 1, "%v", rej)
			assert.Equal(t, tc.reason, rej[0].Reason, rej[0].Detail)
			assert.Equal(t, 1, rej[0].Index)
			assert.True(t, strings.HasPrefix(rej[0].Detail, "detections[1]"), rej[0].Detail)
			for _, id := range []string{"460001234567890", "4600012345678901", "490154203237517", "a4:5e:60:12:34", "a45e60123456"} {
				assert.NotContains(t, rej[0].Detail, id, "detail must not carry identifiers")
			}
			require.Len(t, out.Detections, 2, "the good readings are kept")
			assert.Equal(t, 0, out.Detections[0].Index)
			assert.Equal(t, 2, out.Detections[1].Index)
			assert.Equal(t, model.PointTime(msgTime, 5, 2), out.Detections[1].PointNS)
			assert.Equal(t, "460001234567890", out.Detections[1].IMSI)
		})
	}
}

// A refused topic's detail names the level that is wrong.
func TestDecodeBadTopicSaysWhich(t *testing.T) {
	for _, tc := range []struct{ name, topic, problem string }{
		{"prefix", "fence/mdl/fence/F-AOL-01/detections", "it does not start with border/"},
		{"too few levels", "border/mdl/fence/detections", "it has 3 levels after border/, want 4: site, kind, device, stream"},
		{"extra level", "border/mdl/fence/F-AOL-01/detections/x", "it has 5 levels after border/, want 4: site, kind, device, stream"},
		{"site upper case", "border/MDL/fence/F-AOL-01/detections", `site "MDL" is not 1-32 of a-z, 0-9 and -`},
		{"empty site", "border//fence/F-AOL-01/detections", `site "" is not 1-32 of a-z, 0-9 and -`},
		{"kind", "border/mdl/camera/F-AOL-01/detections", `kind "camera" is not fence, checkpoint or patrol`},
		{"device too long", "border/mdl/fence/" + strings.Repeat("F", 65) + "/detections", `device "` + strings.Repeat("F", 65) + `" (65 bytes) is not 1-64 of A-Z, a-z, 0-9, - and _`},
		{"device with a dot", "border/mdl/fence/F.1/detections", `device "F.1" (3 bytes) is not 1-64 of A-Z, a-z, 0-9, - and _`},
		{"stream", "border/mdl/fence/F-AOL-01/phones", `stream "phones" is not detections, passes, position or status`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rej := decode(t, tc.topic, detMsg(`{"imsi":"460001234567890"}`))
			require.Len(t, rej, 1)
			assert.Equal(t, BadTopic, rej[0].Reason)
			assert.Contains(t, rej[0].Detail, ": "+tc.problem)
		})
	}
}

// A refused payload's detail says why and where: the operator looks for
// the unit's fault in the dead letter.
func TestDecodeMalformedSaysWhy(t *testing.T) {
	for _, tc := range []struct{ name, payload, detail string }{
		{"cut short", `{"v":1,`, "payload (7 bytes) is not valid JSON: it ends before its value does (cut short?)"},
		{"empty", ``, "payload (0 bytes) is not valid JSON: it ends before its value does (cut short?)"},
		{"invalid UTF-8", "{\"v\":1,\"x\":\"\xff\"}", "payload (15 bytes) is not valid UTF-8: from byte offset 12 (a byte of no UTF-8 character, or a character cut short)"}, {"UTF-16", "\xff\xfe{\x00}\x00", "starts with a UTF-16 byte-order mark: JSON is sent as UTF-8"},
		{"byte-order mark", "\xef\xbb\xbf" + detMsg(`{"imsi":"460001234567890"}`), "starts with a UTF-8 byte-order mark (EF BB BF), which JSON does not allow (RFC 8259, section 8.1)"},
		{"too deep", `{"v":1,"x":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, "payload (142 bytes) nests arrays and objects more than 64 deep"},
		{"NaN", `{"a":NaN}`, "payload (9 bytes) is not valid JSON: invalid character 'N' looking for beginning of value, at byte offset 5"},
		{"trailing comma", `{"a":1,}`, "payload (8 bytes) is not valid JSON: invalid character '}' looking for beginning of object key string, at byte offset 7"},
		{"trailing data", `{}{}`, "payload (4 bytes) is not valid JSON: invalid character '{' after top-level value, at byte offset 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rej := decode(t, topicFence, tc.payload)
			require.Len(t, rej, 1)
			assert.Equal(t, MalformedJSON, rej[0].Reason)
			assert.Contains(t, rej[0].Detail, tc.detail)
		})
	}
}

// A tech too long is refused with its own bound, 32 bytes, however long it
// is: past 256 bytes the scan of strings stops first, and its bound is not
// tech's (a unit trimmed to 256 would still be refused).
func TestDecodeTechTooLongNamesItsBound(t *testing.T) {
	for _, n := range []int{33, 256, 257, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			det := `{"imsi":"460001234567890","tech":"` + strings.Repeat("l", n) + `"}`
			_, rej := decode(t, topicFence, detMsg(det))
			require.Len(t, rej, 1)
			assert.Equal(t, "detections[0].tech: "+strconv.Itoa(n)+" bytes, longer than 32", rej[0].Detail)
		})
	}
}

func TestDecodeContractDetections(t *testing.T) {
	out, rej := decode(t, topicFence, string(readTestdata(t, "detections.json")))
	require.Empty(t, rej)
	msgT := time.Date(2026, 11, 26, 15, 10, 4, 120e6, time.UTC)
	assert.Equal(t, model.Meta{
		Topic: topicFence, Site: "mdl", Kind: model.KindFence, Device: "F-AOL-01",
		Stream: model.StreamDetections, Seq: 18231, Time: out.Time, Received: testNow.Add(time.Second),
	}, out.Meta)
	assert.True(t, msgT.Equal(out.Time))
	_, off := out.Time.Zone()
	assert.Equal(t, 8*3600, off, "the offset is kept")
	require.NotNil(t, out.Device)
	assert.Equal(t, "F-AOL-01", out.Device.ID)
	require.Len(t, out.Detections, 2)
	assert.Empty(t, out.Passes)

	loc := model.Point{Lat: 41.9612, Lon: 110.4875}
	t0 := time.Date(2026, 11, 26, 15, 10, 3, 900e6, time.UTC)
	d0 := out.Detections[0]
	assert.True(t, t0.Equal(d0.Time))
	assert.Equal(t, model.Detection{
		Stamp: model.Stamp{Time: d0.Time, PointNS: model.PointTime(t0, 18231, 0), Index: 0},
		Loc:   loc, IMSI: "460001234567890", IMEI: "490154203237518", MAC: "a4:5e:60:12:34:56",
		MCC: "460", MNC: "00", Operator: "46000", RSSI: model.Some(-71), Tech: "lte",
	}, d0)
	d1 := out.Detections[1]
	assert.True(t, msgT.Equal(d1.Time))
	assert.Equal(t, model.Detection{
		Stamp: model.Stamp{Time: d1.Time, PointNS: model.PointTime(msgT, 18231, 1), Index: 1},
		Loc:   loc, IMSI: "428991234567890", MCC: "428", MNC: "99", Operator: "42899",
		RSSI: model.Some(-88), Tech: "gsm",
	}, d1)
	assert.NotEqual(t, d0.PointNS, d1.PointNS)
}

func TestDecodeMixedDetections(t *testing.T) {
	out, rej := decode(t, topicFence, string(readTestdata(t, "detections_mixed.json")))
	assert.Equal(t, []wantRej{
		{1, BadIMSI}, {3, NoIdentifier}, {4, BadIMEI}, {6, FutureTS}, {7, BadRSSI}, {8, BadField},
	}, rejIndexes(rej))
	mt := time.Date(2026, 11, 26, 23, 11, 4, 0, time.UTC)
	regPos := model.Point{Lat: 41.9600, Lon: 110.4861} // no loc: the registered position
	var idx []int
	for _, det := range out.Detections {
		idx = append(idx, det.Index)
		assert.Equal(t, regPos, det.Loc)
		want := mt
		if det.Index == 5 {
			want = time.Date(2026, 11, 26, 15, 9, 59, 500e6, time.UTC)
		}
		assert.True(t, want.Equal(det.Time), "reading %d: %v", det.Index, det.Time)
		assert.Equal(t, model.PointTime(want, 18232, det.Index), det.PointNS)
	}
	assert.Equal(t, []int{0, 2, 5, 9}, idx)
	assert.Equal(t, "a4:5e:60:12:34:57", out.Detections[1].MAC)
	assert.Equal(t, "wifi", out.Detections[1].Tech)
	assert.Empty(t, out.Detections[1].IMSI)
	assert.Empty(t, out.Detections[1].MCC)
	assert.Empty(t, out.Detections[1].Operator)
	last := out.Detections[3]
	assert.Equal(t, "310260123456789", last.IMSI)
	assert.Equal(t, "310", last.MCC)
	assert.Equal(t, "260", last.MNC)
	assert.Equal(t, "310260", last.Operator)
	assert.Equal(t, "4901542032375180", last.IMEI)
	assert.Equal(t, model.Some(-90.5), last.RSSI)
	assert.False(t, out.Detections[1].RSSI.OK)
}

func rejIndexes(rej []Reject) []wantRej {
	var got []wantRej
	for _, r := range rej {
		got = append(got, wantRej{r.Index, r.Reason})
	}
	return got
}

func TestDecodeDetectionsGCJ02(t *testing.T) {
	out, rej := decode(t, topicFence, string(readTestdata(t, "detections_gcj02.json")))
	require.Empty(t, rej)
	require.Len(t, out.Detections, 1)
	wLat, wLon := GCJ02ToWGS84(41.9625, 110.4930)
	assert.Equal(t, model.Point{Lat: wLat, Lon: wLon}, out.Detections[0].Loc)
	gLat, gLon := WGS84ToGCJ02(wLat, wLon)
	assert.InDelta(t, 41.9625, gLat, 1e-9)
	assert.InDelta(t, 110.4930, gLon, 1e-9)
	assert.Greater(t, metres(41.9625, 110.4930, wLat, wLon), 100.0, "converted, not copied")

	// Upper-case datum, and an explicit wgs84 position is taken as is.
	out, rej = decode(t, topicFence, `{"v":1,"seq":1,"ts":`+msgTS+`,"loc":{"lat":41.5,"lon":110.5,"datum":"WGS84"},"detections":[{"imei":"49015420323751"}]}`)
	require.Empty(t, rej)
	assert.Equal(t, model.Point{Lat: 41.5, Lon: 110.5}, out.Detections[0].Loc)
}

// A detections or passes message may give its position as a patrol's fix
// does, lat and lon at the top level: it is used, not the registered one,
// and checked as loc is; with loc as well, it is refused (two positions).
func TestDecodeTopLevelLatLon(t *testing.T) {
	for _, tc := range []struct {
		name  string
		topic string
		msg   string
		want  model.Point
		rej   Reason
	}{
		{"detections", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":42.0,"lon":110.0,"detections":[{"imsi":"460001234567890"}]}`, model.Point{Lat: 42, Lon: 110}, ""},
		{"passes", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":42.3,"lon":110.2,"passes":[{"plate":"蒙B12345"}]}`, model.Point{Lat: 42.3, Lon: 110.2}, ""},
		{"loc and lat/lon both", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":42.0,"lon":110.0,"loc":{"lat":41.5,"lon":110.5},"detections":[{"imsi":"460001234567890"}]}`, model.Point{}, BadPosition},
		{"a bad datum alone", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"datum":"bogus","detections":[{"imsi":"460001234567890"}]}`, model.Point{}, BadDatum},
		{"a datum alone, wgs84", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"datum":"wgs84","detections":[{"imsi":"460001234567890"}]}`, model.Point{Lat: 41.96, Lon: 110.4861}, ""},
		{"gcj02", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":41.9625,"lon":110.4930,"datum":"gcj02","detections":[{"imsi":"460001234567890"}]}`, gcjWGS(41.9625, 110.4930), ""},
		{"lat without lon", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":42.0,"detections":[{"imsi":"460001234567890"}]}`, model.Point{}, BadPosition},
		{"lat not a number", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":"x","lon":110.0,"passes":[{"plate":"蒙B12345"}]}`, model.Point{}, BadPosition},
		{"lat out of range", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":91,"lon":110.0,"detections":[{"imsi":"460001234567890"}]}`, model.Point{}, BadPosition},
		{"bad datum", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":41.5,"lon":109.5,"datum":"xyz","detections":[{"imsi":"460001234567890"}]}`, model.Point{}, BadDatum},
		{"lat twice", topicFence, `{"v":1,"seq":1,"ts":` + msgTS + `,"lat":41.5,"lon":110.1,"lat":41.6,"detections":[{"imsi":"460001234567890"}]}`, model.Point{}, BadField},
		{"datum twice", topicCheckpoint, `{"v":1,"seq":1,"ts":` + msgTS + `,"datum":"wgs84","lat":41.4,"lon":110.5,"datum":"gcj02","passes":[{"plate":"蒙B12345"}]}`, model.Point{}, BadField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, tc.topic, tc.msg)
			if tc.rej != "" {
				require.Len(t, rej, 1)
				assert.Equal(t, tc.rej, rej[0].Reason, rej[0].Detail)
				return
			}
			require.Empty(t, rej)
			require.Equal(t, 1, out.Len())
			var loc model.Point
			if len(out.Detections) > 0 {
				loc = out.Detections[0].Loc
			} else {
				loc = out.Passes[0].Loc
			}
			assert.Equal(t, tc.want, loc)
		})
	}
}

// A receiver without a fix sends lat 0, lon 0: the message then takes the
// device's registered position, as if it had sent none, rather than being
// stored on the equator (or, as before, without any position).
func TestDecodeLocZeroIsNoFix(t *testing.T) {
	out, rej := decode(t, topicFence, `{"v":1,"seq":1,"ts":`+msgTS+`,"loc":{"lat":0,"lon":0},"detections":[{"imsi":"460001234567890"}]}`)
	require.Empty(t, rej)
	require.Len(t, out.Detections, 1)
	assert.Equal(t, model.Point{Lat: 41.9600, Lon: 110.4861}, out.Detections[0].Loc)
}

func TestDecodeEmptyDetections(t *testing.T) {
	out, rej := decode(t, topicFence, detMsg())
	assert.Empty(t, rej)
	assert.Zero(t, out.Len())
	assert.Equal(t, int64(5), out.Seq)
	assert.Equal(t, model.StreamDetections, out.Stream)
}

// A full default-sized payload of small detections holds more than 4096
// readings: every one is kept, with a point time of its own.
func TestDecodeManyReadings(t *testing.T) {
	dets := slices.Repeat([]string{`{"mac":"a4:5e:60:12:34:56"}`}, 9000)
	payload := detMsg(dets...)
	require.Less(t, len(payload), DefaultMaxPayload)
	out, rej := decode(t, topicFence, payload)
	require.Empty(t, rej)
	require.Len(t, out.Detections, len(dets))
	seen := map[int64]bool{}
	for _, det := range out.Detections {
		require.False(t, seen[det.PointNS], "distinct point times")
		seen[det.PointNS] = true
	}
}

func TestDecodeTooManyReadings(t *testing.T) {
	n := model.MaxReadingsPerMessage + 5
	dets := make([]string, n)
	for i := range dets {
		dets[i] = `{"imsi":"460001234567890"}`
	}
	dets[3] = `{"imsi":"1"}`
	d := New(Options{Now: fixedNow, MaxPayload: 4 << 20}) // past the bound only with a raised limit
	var batch model.Batch
	rej := d.Decode(topicFence, []byte(detMsg(dets...)), testNow, testRegistry(), &batch)
	out := &batch
	require.Len(t, rej, 6)
	assert.Equal(t, wantRej{3, BadIMSI}, wantRej{rej[0].Index, rej[0].Reason})
	for i, r := range rej[1:] {
		assert.Equal(t, wantRej{model.MaxReadingsPerMessage + i, TooManyReadings}, wantRej{r.Index, r.Reason})
	}
	assert.Len(t, out.Detections, model.MaxReadingsPerMessage-1)
	seen := map[int64]bool{}
	for _, det := range out.Detections {
		assert.False(t, seen[det.PointNS], "distinct point times")
		seen[det.PointNS] = true
	}
}

func TestDecodeContractPasses(t *testing.T) {
	out, rej := decode(t, topicCheckpoint, string(readTestdata(t, "passes.json")))
	require.Empty(t, rej)
	mt := time.UnixMilli(1795741804120).UTC()
	assert.Equal(t, mt, out.Time)
	assert.Equal(t, int64(551), out.Seq)
	assert.Equal(t, model.StreamPasses, out.Stream)
	require.Len(t, out.Passes, 1)
	assert.Equal(t, model.Pass{
		Stamp:        model.Stamp{Time: mt, PointNS: model.PointTime(mt, 551, 0), Index: 0},
		Loc:          model.Point{Lat: 42.30, Lon: 110.15}, // registered
		Plate:        "蒙B12345",
		PlateColor:   "blue",
		VehicleType:  "K33",
		VehicleColor: "white",
		Direction:    "outbound",
		Image:        "https://cp-07.local/img/551.jpg",
		SpeedKmh:     model.Some(64.5),
		Lane:         model.SomeInt(2),
		Heading:      model.Some(355),
		Confidence:   model.Some(0.97),
	}, out.Passes[0])
}

// No plate read, however the camera spaces it, is the contract's 无牌 (and
// so never a subject of the rules).
func TestDecodeNoPlateSpellings(t *testing.T) {
	for _, plate := range []string{"无牌", " 无牌 ", "无 牌", "无  牌", "　无　牌　", "", "  ", "無牌", "無 牌",
		// Separators alone: kept as plates, every such pass was one
		// vehicle, "seen" 200 km apart a minute later.
		"-", "--", ".", "·", " - ", "．",
		// 无牌 written with separators, dashes of other code points,
		// invisible characters, and placeholders without a letter or digit.
		"无-牌", "无牌·", "·无·牌·", "無-牌", "無牌.", "—", "–", "‐", "−", "ー", "․", "\u200b", "\ufeff", "无牌\u200b", "?", "*", "_", "#",
		// Any other mark between or around, marks that combine or fill,
		// one character alone.
		"无_牌", "无/牌", "(无牌)", "无牌。", "无―牌", "无﹣牌", "无〜牌", "无\u2800牌", "无牌\u0301", "无\u034f牌", "无\ufe0f牌",
		"\u3164", "\u3164\u3164", "\uffa0", "0", "B"} {
		t.Run(plate, func(t *testing.T) {
			out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"`+plate+`"}`))
			require.Empty(t, rej)
			require.Len(t, out.Passes, 1)
			assert.Equal(t, model.NoPlate, out.Passes[0].Plate)
		})
	}
	out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"无牌 1"}`))
	require.Empty(t, rej)
	assert.Equal(t, "无牌 1", out.Passes[0].Plate, "a plate that merely starts so")
}

func TestDecodePlates(t *testing.T) {
	out, rej := decode(t, topicCheckpoint, string(readTestdata(t, "passes_plates.json")))
	assert.Equal(t, []wantRej{{5, NoPlate}, {6, BadDirection}}, rejIndexes(rej))
	var plates, dirs []string
	for _, p := range out.Passes {
		plates = append(plates, p.Plate)
		dirs = append(dirs, p.Direction)
		assert.Equal(t, model.Point{Lat: 42.30, Lon: 110.15}, p.Loc)
	}
	assert.Equal(t, []string{"蒙B12345", "1598 УБА", model.NoPlate, model.NoPlate, "蒙B 7K3Q2"}, plates)
	assert.Equal(t, []string{"inbound", "outbound", "", "unknown", ""}, dirs)
	for _, r := range rej {
		assert.NotContains(t, r.Detail, "1598")
		assert.NotContains(t, r.Detail, "УБА")
	}
}

// Characters that show nothing are no part of a plate: a plate holding one
// is stored, and matched, without it.
func TestDecodePlateWithoutInvisibleCharacters(t *testing.T) {
	for _, plate := range []string{"蒙B9X8\u034fY7", "蒙B9X8Y7\ufe00", "蒙\u3164B9X8Y7", "蒙B9X8Y7\u200b", "\ufeff蒙B9X8Y7"} {
		out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"`+plate+`"}`))
		require.Empty(t, rej)
		require.Len(t, out.Passes, 1)
		assert.Equal(t, "蒙B9X8Y7", out.Passes[0].Plate, "%q", plate)
	}
}

// A direction with spaces around it, or in full-width letters, is read as
// plates are: the pass is not rejected over it (its plate with it).
func TestDecodeDirectionSpellings(t *testing.T) {
	for _, tc := range []struct{ sent, want string }{
		{"outbound ", "outbound"}, {" Inbound", "inbound"}, {"ｏｕｔｂｏｕｎｄ", "outbound"}, {"\u3000UNKNOWN\\t", "unknown"},
	} {
		t.Run(tc.sent, func(t *testing.T) {
			out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"蒙B12345","direction":"`+tc.sent+`"}`))
			require.Empty(t, rej)
			require.Len(t, out.Passes, 1)
			assert.Equal(t, tc.want, out.Passes[0].Direction)
		})
	}
}

// An ANPR camera's trailing newline, or a tab inside, is white space the
// plate's normal form trims or collapses, not a control character to refuse.
func TestDecodePlateWhiteSpace(t *testing.T) {
	out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"蒙B12345\n"}`, `{"plate":"蒙B12345\r\n"}`, `{"plate":"蒙B\t12345"}`,
		`{"plate":"\t1598 Уба\n"}`, `{"plate":"蒙B\u000112345"}`))
	assert.Equal(t, []wantRej{{4, BadField}}, rejIndexes(rej), "other control characters are still refused")
	var plates []string
	for _, p := range out.Passes {
		plates = append(plates, p.Plate)
	}
	assert.Equal(t, []string{"蒙B12345", "蒙B12345", "蒙B 12345", "1598 УБА"}, plates)
}

func TestDecodePassRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pass   string
		reason Reason
	}{
		{"plate missing", `{"direction":"inbound"}`, NoPlate},
		{"plate null", `{"plate":null}`, NoPlate},
		{"plate number", `{"plate":12345}`, NoPlate},
		{"plate too long", `{"plate":"` + strings.Repeat("B", 257) + `"}`, BadField},
		{"plate control char", `{"plate":"蒙B\u000012345"}`, BadField},
		{"direction bad", `{"plate":"蒙B12345","direction":"north"}`, BadDirection},
		{"direction bad, in full-width", `{"plate":"蒙B12345","direction":"ｎｏｒｔｈ"}`, BadDirection},
		{"direction number", `{"plate":"蒙B12345","direction":1}`, BadDirection},
		{"plate_color number", `{"plate":"蒙B12345","plate_color":1}`, BadField},
		{"plate_color too long", `{"plate":"蒙B12345","plate_color":"` + strings.Repeat("b", 257) + `"}`, BadField},
		{"vehicle_type control char", `{"plate":"蒙B12345","vehicle_type":"K\u007f33"}`, BadField},
		{"plate lone surrogate", `{"plate":"\ud800abc"}`, BadField},
		{"plate high surrogate before another escape", `{"plate":"蒙B\ud83d\u0041"}`, BadField},
		{"vehicle_color bool", `{"plate":"蒙B12345","vehicle_color":true}`, BadField},
		{"image too long", `{"plate":"蒙B12345","image":"` + strings.Repeat("i", 2049) + `"}`, BadField},
		{"speed negative", `{"plate":"蒙B12345","speed_kmh":-1}`, BadField},
		{"speed too high", `{"plate":"蒙B12345","speed_kmh":500.1}`, BadField},
		{"speed string", `{"plate":"蒙B12345","speed_kmh":"64"}`, BadField},
		{"lane negative", `{"plate":"蒙B12345","lane":-1}`, BadField},
		{"lane fraction", `{"plate":"蒙B12345","lane":1.5}`, BadField},
		{"heading 361", `{"plate":"蒙B12345","heading":361}`, BadField},
		{"confidence 1.01", `{"plate":"蒙B12345","confidence":1.01}`, BadField},
		{"duplicate plate", `{"plate":"蒙B12345","plate":"蒙B54321"}`, BadField},
		{"not object", `[]`, BadField},
		{"ts future", `{"plate":"蒙B12345","ts":1795742300000}`, FutureTS},
		{"ts bad", `{"plate":"蒙B12345","ts":-1}`, BadTS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := `{"plate":"蒙B12345"}`
			out, rej := decode(t, topicCheckpoint, passMsg(good, tc.pass))
			require.Len(t, rej, 1, "%v", rej)
			assert.Equal(t, tc.reason, rej[0].Reason, rej[0].Detail)
			assert.Equal(t, 1, rej[0].Index)
			assert.True(t, strings.HasPrefix(rej[0].Detail, "passes[1]"), rej[0].Detail)
			assert.NotContains(t, rej[0].Detail, "12345")
			require.Len(t, out.Passes, 1)
			assert.Equal(t, "蒙B12345", out.Passes[0].Plate)
		})
	}
}

func TestDecodePassBoundaries(t *testing.T) {
	out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"A","speed_kmh":0,"lane":0,"heading":0,"confidence":0}`,
		`{"plate":"B","speed_kmh":500,"lane":9007199254740992,"heading":360,"confidence":1,"image":"`+strings.Repeat("i", 2048)+`","plate_color":"`+strings.Repeat("c", 256)+`"}`))
	require.Empty(t, rej)
	require.Len(t, out.Passes, 2)
	assert.Equal(t, model.Some(0), out.Passes[0].SpeedKmh)
	assert.Equal(t, model.SomeInt(0), out.Passes[0].Lane)
	assert.Equal(t, model.Some(360), out.Passes[1].Heading)
	assert.Len(t, out.Passes[1].Image, 2048)
	assert.Len(t, out.Passes[1].PlateColor, 256)
}

// TestDecodePassCodes: the codes stored as tags have one form per code, so
// that a camera writing "Blue" makes no series apart from "blue".
func TestDecodePassCodes(t *testing.T) {
	for _, tc := range []struct {
		name, color, vtype  string
		wantColor, wantType string
	}{
		{"as the contract", "blue", "K33", "blue", "K33"},
		{"other case", "BLUE", "k33", "blue", "K33"},
		{"mixed case and spaces", " Blue ", " k33 ", "blue", "K33"},
		{"non-ASCII kept", "蓝", "小型轿车", "蓝", "小型轿车"},
		{"spaces only is absent", "   ", " ", "", ""},
		{"inner space kept", "Yellow Green", "x 1", "yellow green", "X 1"},
		{"full-width", "ＹＥＬＬＯＷ", "ｋ３３", "yellow", "K33"},
		{"ideographic and no-break spaces", "\u3000yellow\u00a0", "\u00a0k33\u3000", "yellow", "K33"},
		{"invisible characters", "yel\u200blow", "\ufeffK33", "yellow", "K33"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"A","plate_color":"`+tc.color+`","vehicle_type":"`+tc.vtype+`","vehicle_color":"White"}`))
			require.Empty(t, rej)
			require.Len(t, out.Passes, 1)
			assert.Equal(t, tc.wantColor, out.Passes[0].PlateColor)
			assert.Equal(t, tc.wantType, out.Passes[0].VehicleType)
			assert.Equal(t, "White", out.Passes[0].VehicleColor, "a field, not a tag: as sent")
		})
	}
}

func TestDecodeContractPosition(t *testing.T) {
	out, rej := decode(t, topicPosition, string(readTestdata(t, "position.json")))
	require.Empty(t, rej)
	mt := time.UnixMilli(1795741804120).UTC()
	require.Len(t, out.Positions, 1)
	assert.Equal(t, model.Position{
		Stamp:     model.Stamp{Time: mt, PointNS: model.PointTime(mt, 9, 0), Index: 0},
		Loc:       model.Point{Lat: 42.41, Lon: 110.12},
		SpeedKmh:  model.Some(38),
		Heading:   model.Some(10),
		AccuracyM: model.Some(6),
	}, out.Positions[0])
	assert.Equal(t, model.StreamPosition, out.Stream)
	assert.Equal(t, model.KindPatrol, out.Kind)
}

func TestDecodePosition(t *testing.T) {
	for _, tc := range []struct {
		name   string
		topic  string
		fields string
		reason Reason
		loc    model.Point
		// registered: the message had no fix, its position is the
		// device's registered one.
		registered bool
		checkFn    func(t *testing.T, p model.Position)
	}{
		{name: "no position", topic: topicPosition, fields: `"speed_kmh":3`, reason: NoPosition},
		{name: "registered position", topic: "border/bt/patrol/P-BT/position", fields: `"speed_kmh":3`, loc: model.Point{Lat: 40.656, Lon: 109.835}, registered: true},
		{name: "a fix at the registered position is a fix", topic: "border/bt/patrol/P-BT/position", fields: `"lat":40.656,"lon":109.835`, loc: model.Point{Lat: 40.656, Lon: 109.835}},
		{name: "0,0 is no fix", topic: topicPosition, fields: `"lat":0,"lon":0.0,"speed_kmh":3`, reason: NoPosition},
		{name: "0,0 is no fix: registered position", topic: "border/bt/patrol/P-BT/position", fields: `"lat":0,"lon":0`, loc: model.Point{Lat: 40.656, Lon: 109.835}, registered: true},
		{name: "an empty loc object is not the registered position", topic: "border/bt/patrol/P-BT/position", fields: `"loc":{}`, reason: BadPosition},
		{name: "lat 0 alone is a place", topic: topicPosition, fields: `"lat":0,"lon":110.5`, loc: model.Point{Lat: 0, Lon: 110.5}},
		{name: "lat only", topic: topicPosition, fields: `"lat":42`, reason: BadPosition},
		{name: "in a loc object", topic: topicPosition, fields: `"loc":{"lat":42.5,"lon":110.2},"speed_kmh":3`, loc: model.Point{Lat: 42.5, Lon: 110.2}},
		{name: "loc and top-level lat", topic: topicPosition, fields: `"loc":{"lat":42.5,"lon":110.2},"lat":42.5`, reason: BadPosition},
		{name: "empty loc", topic: topicPosition, fields: `"loc":{}`, reason: BadPosition},
		{name: "lon only", topic: "border/bt/patrol/P-BT/position", fields: `"lon":110`, reason: BadPosition},
		{name: "lat 91", topic: topicPosition, fields: `"lat":91,"lon":110`, reason: BadPosition},
		{name: "lon string", topic: topicPosition, fields: `"lat":42,"lon":"110"`, reason: BadPosition},
		{name: "datum bad", topic: topicPosition, fields: `"lat":42,"lon":110,"datum":"utm"`, reason: BadDatum},
		{name: "datum bad without lat/lon", topic: "border/bt/patrol/P-BT/position", fields: `"datum":"bd09"`, reason: BadDatum},
		{name: "speed negative", topic: topicPosition, fields: `"lat":42,"lon":110,"speed_kmh":-1`, reason: BadField},
		{name: "heading 400", topic: topicPosition, fields: `"lat":42,"lon":110,"heading":400`, reason: BadField},
		{name: "accuracy string", topic: topicPosition, fields: `"lat":42,"lon":110,"accuracy_m":"6"`, reason: BadField},
		{name: "gcj02", topic: topicPosition, fields: `"lat":40.6574,"lon":109.8412,"datum":"gcj02"`,
			checkFn: func(t *testing.T, p model.Position) {
				wLat, wLon := GCJ02ToWGS84(40.6574, 109.8412)
				assert.Equal(t, model.Point{Lat: wLat, Lon: wLon}, p.Loc)
			}},
		{name: "extremes", topic: topicPosition, fields: `"lat":-90,"lon":180`, loc: model.Point{Lat: -90, Lon: 180}},
		{name: "no optional fields", topic: topicPosition, fields: `"lat":42,"lon":110,"speed_kmh":null`, loc: model.Point{Lat: 42, Lon: 110},
			checkFn: func(t *testing.T, p model.Position) {
				assert.False(t, p.SpeedKmh.OK)
				assert.False(t, p.Heading.OK)
				assert.False(t, p.AccuracyM.OK)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, tc.topic, posMsg(tc.fields))
			if tc.reason != "" {
				require.Len(t, rej, 1)
				assert.Equal(t, tc.reason, rej[0].Reason, rej[0].Detail)
				assert.Equal(t, 0, rej[0].Index, "a position reading, not the message")
				assert.Equal(t, int64(5), out.Seq, "the envelope is still read")
				assert.Zero(t, out.Len())
				return
			}
			require.Empty(t, rej)
			require.Len(t, out.Positions, 1)
			assert.Equal(t, tc.registered, out.Positions[0].Registered)
			if tc.checkFn != nil {
				tc.checkFn(t, out.Positions[0])
			} else {
				assert.Equal(t, tc.loc, out.Positions[0].Loc)
			}
		})
	}
}

func TestDecodePositionDuplicateKey(t *testing.T) {
	out, rej := decode(t, topicPosition, posMsg(`"lat":42,"lat":43,"lon":110`))
	require.Len(t, rej, 1)
	assert.Equal(t, wantRej{-1, BadField}, wantRej{rej[0].Index, rej[0].Reason}, "top-level keys: the message")
	assert.Zero(t, out.Len())
}

func TestDecodeContractStatus(t *testing.T) {
	out, rej := decode(t, topicStatus, string(readTestdata(t, "status.json")))
	require.Empty(t, rej)
	mt := time.Date(2026, 11, 27, 1, 10, 4, 0, time.UTC)
	require.Len(t, out.Statuses, 1)
	s := out.Statuses[0]
	assert.True(t, mt.Equal(s.Time))
	assert.Equal(t, model.Status{
		Stamp:      model.Stamp{Time: s.Time, PointNS: model.PointTime(mt, 77, 0), Index: 0},
		BatteryPct: model.Some(87),
		TempC:      model.Some(-21.5),
		UptimeS:    model.SomeInt(86400),
		Tamper:     model.SomeBool(false),
		Power:      "solar",
		SignalDbm:  model.Some(-95),
		Queue:      model.SomeInt(0),
		FW:         "2.3.1",
	}, s)
}

func TestDecodeStatus(t *testing.T) {
	for _, tc := range []struct {
		name, fields string
		reason       Reason
	}{
		{"empty status", ``, ""},
		{"nulls", `"battery_pct":null,"fw":null,"tamper":null`, ""},
		{"tamper true", `"tamper":true`, ""},
		{"battery 101", `"battery_pct":101`, BadField},
		{"battery -1", `"battery_pct":-1`, BadField},
		{"temp -101", `"temp_c":-101`, BadField},
		{"temp 151", `"temp_c":151`, BadField},
		{"uptime negative", `"uptime_s":-1`, BadField},
		{"uptime fraction", `"uptime_s":1.5`, BadField},
		{"tamper string", `"tamper":"yes"`, BadField},
		{"tamper number", `"tamper":1`, BadField},
		{"power number", `"power":1`, BadField},
		{"signal positive", `"signal_dbm":1`, BadField},
		{"signal -201", `"signal_dbm":-201`, BadField},
		{"queue fraction", `"queue":0.5`, BadField},
		{"fw too long", `"fw":"` + strings.Repeat("1", 257) + `"`, BadField},
		{"duplicate fw", `"fw":"1","fw":"2"`, ""}, // whole-message bad_field, checked below
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, topicStatus, posMsg(tc.fields))
			if tc.name == "duplicate fw" {
				require.Len(t, rej, 1)
				assert.Equal(t, BadField, rej[0].Reason)
				assert.Equal(t, -1, rej[0].Index)
				return
			}
			if tc.reason != "" {
				require.Len(t, rej, 1)
				assert.Equal(t, tc.reason, rej[0].Reason, rej[0].Detail)
				assert.Equal(t, 0, rej[0].Index)
				assert.Zero(t, out.Len())
				return
			}
			require.Empty(t, rej)
			require.Len(t, out.Statuses, 1)
		})
	}
	// Any kind may send status.
	for _, topic := range []string{"border/mdl/checkpoint/CP-07/status", "border/mdl/patrol/P-07/status"} {
		out, rej := decode(t, topic, posMsg(`"battery_pct":50`))
		require.Empty(t, rej, topic)
		require.Len(t, out.Statuses, 1)
		assert.Equal(t, model.Some(50), out.Statuses[0].BatteryPct)
	}
}

// TestDecodeForeignReadings: a payload of another stream on a topic is
// rejected whole (and so dead-lettered with its payload), not read as the
// topic's stream with its readings ignored as unknown keys.
func TestDecodeForeignReadings(t *testing.T) {
	det := `"detections":[{"imsi":"460001234567890"}]`
	for _, tc := range []struct {
		name, topic, payload string
		reason               Reason
	}{
		{"detections on status", topicStatus, posMsg(det), StreamNotAllowed},
		{"detections beside status fields", topicStatus, posMsg(`"battery_pct":50,` + det), StreamNotAllowed},
		{"passes on status", "border/mdl/checkpoint/CP-07/status", posMsg(`"passes":[{"plate":"蒙B12345"}]`), StreamNotAllowed},
		{"position on status", "border/mdl/patrol/P-07/status", posMsg(`"lat":42.41,"lon":110.12,"speed_kmh":38`), StreamNotAllowed},
		{"lat alone on status", "border/mdl/patrol/P-07/status", posMsg(`"lat":42.41`), StreamNotAllowed},
		{"fix in loc on status", "border/mdl/patrol/P-07/status", posMsg(`"loc":{"lat":42.4,"lon":110.1}`), StreamNotAllowed},
		{"speed and heading on status", "border/mdl/patrol/P-07/status", posMsg(`"speed_kmh":40,"heading":10,"accuracy_m":5`), StreamNotAllowed},
		{"a fence's status with its position", topicStatus, posMsg(`"lat":41.9601,"lon":110.4862`), ""},
		{"passes on detections", topicFence, `{"v":1,"seq":5,"ts":` + msgTS + `,"passes":[{"plate":"蒙B1"}],` + det + `}`, StreamNotAllowed},
		{"detections on position", topicPosition, posMsg(`"lat":42.41,"lon":110.12,` + det), StreamNotAllowed},
		{"null detections on status", topicStatus, posMsg(`"detections":null,"fw":"1"`), ""},
		{"status with its position", "border/mdl/patrol/P-07/status", posMsg(`"lat":42.41,"lon":110.12,"battery_pct":50`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rej := decode(t, tc.topic, tc.payload)
			if tc.reason == "" {
				require.Empty(t, rej)
				assert.Equal(t, 1, out.Len())
				return
			}
			require.Len(t, rej, 1)
			assert.Equal(t, wantRej{-1, tc.reason}, wantRej{rej[0].Index, rej[0].Reason}, rej[0].Detail)
			assert.Contains(t, rej[0].Detail, "topic")
			assert.Zero(t, out.Len())
		})
	}
}

func TestReasons(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons {
		assert.False(t, seen[r], "duplicate %s", r)
		seen[r] = true
		assert.Regexp(t, `^[a-z_]+$`, string(r))
	}
	assert.Len(t, Reasons, 23)
}

func TestRejectString(t *testing.T) {
	assert.Equal(t, "bad_topic: x", Reject{Reason: BadTopic, Index: -1, Detail: "x"}.String())
	assert.Equal(t, "bad_imsi (reading 3): y", Reject{Reason: BadIMSI, Index: 3, Detail: "y"}.String())
}

// TestDecodeReuse checks that a Decoder and a Batch can be reused and that the
// strings of an earlier message survive the next one.
func TestDecodeReuse(t *testing.T) {
	d := New(Options{Now: fixedNow})
	reg := testRegistry()
	var out model.Batch
	require.Empty(t, d.Decode(topicFence, readTestdata(t, "detections.json"), testNow, reg, &out))
	imsi, tech := out.Detections[0].IMSI, out.Detections[0].Tech
	first := out.Detections[0]

	require.Empty(t, d.Decode(topicFence, readTestdata(t, "detections_20.json"), testNow, reg, &out))
	assert.Len(t, out.Detections, 20)
	assert.Equal(t, "460001234567890", imsi)
	assert.Equal(t, "lte", tech)
	assert.Equal(t, "a4:5e:60:12:34:56", first.MAC)

	rej := d.Decode(topicFence, []byte(`{}`), testNow, reg, &out)
	require.Len(t, rej, 1)
	assert.Zero(t, out.Len(), "the batch is reset")
	require.Empty(t, d.Decode(topicCheckpoint, readTestdata(t, "passes.json"), testNow, reg, &out))
	assert.Empty(t, out.Detections)
	assert.Len(t, out.Passes, 1)
}

func TestDecodeNilRegistry(t *testing.T) {
	var out model.Batch
	rej := New(Options{}).Decode(topicFence, []byte(detMsg()), time.Now(), nil, &out)
	require.Len(t, rej, 1)
	assert.Equal(t, UnknownDevice, rej[0].Reason)
}

func TestDecodeAllocations(t *testing.T) {
	d := New(Options{Now: fixedNow})
	reg := testRegistry()
	var out model.Batch
	for _, tc := range []struct {
		topic, file string
		max         float64
	}{
		{topicFence, "detections_20.json", 1},
		{topicFence, "detections_20_ts.json", 1},
		{topicCheckpoint, "passes_20.json", 1},
		{topicPosition, "position.json", 0},
		{topicStatus, "status.json", 1},
	} {
		payload := readTestdata(t, tc.file)
		require.Empty(t, d.Decode(tc.topic, payload, testNow, reg, &out))
		allocs := testing.AllocsPerRun(50, func() { d.Decode(tc.topic, payload, testNow, reg, &out) })
		assert.LessOrEqual(t, allocs, tc.max, "%s: allocations per message", tc.file)
	}
}

func TestDetailsAreOneLine(t *testing.T) {
	// A topic with a newline must not break a log line.
	out, rej := decode(t, "border/mdl/fence/F\n1/detections", detMsg())
	require.Len(t, rej, 1)
	assert.NotContains(t, rej[0].Detail, "\n")
	assert.Zero(t, out.Len())
	// Very long topics are cut.
	_, rej = decode(t, "border/"+strings.Repeat("x", 10000), detMsg())
	assert.Less(t, len(rej[0].Detail), 300)
}

// An unpaired surrogate in a key the decoder does not know is ignored with
// the key; in a field it refuses only its reading (see the reject tables).
func TestDecodeLoneSurrogateInUnknownKey(t *testing.T) {
	out, rej := decode(t, topicCheckpoint, passMsg(`{"plate":"蒙B99996"}`, `{"plate":"蒙B99995","note":"\ud83d"}`))
	require.Empty(t, rej)
	require.Len(t, out.Passes, 2)
	assert.Equal(t, "蒙B99995", out.Passes[1].Plate)
}

// gcjWGS is the WGS84 point of a GCJ-02 one.
func gcjWGS(lat, lon float64) model.Point {
	wLat, wLon := GCJ02ToWGS84(lat, lon)
	return model.Point{Lat: wLat, Lon: wLon}
}
