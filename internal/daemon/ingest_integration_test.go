package daemon

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The contract's example payloads, with their times moved to base (the
// contract's own are fixed instants, which a test run may precede).
func contractMessages(base time.Time) (detections, passes, position, status string) {
	rfc := func(t time.Time) string {
		return t.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02T15:04:05.000Z07:00")
	}
	detections = fmt.Sprintf(`{"v":1,"seq":18231,"ts":%q,
 "loc":{"lat":41.9612,"lon":110.4875,"datum":"wgs84"},
 "detections":[
   {"imsi":"460001234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56",
    "rssi":-71,"tech":"lte","ts":%q},
   {"imsi":"428991234567890","rssi":-88,"tech":"gsm"}]}`, rfc(base), rfc(base.Add(-220*time.Millisecond)))
	passes = fmt.Sprintf(`{"v":1,"seq":551,"ts":%d,
 "passes":[{"plate":"蒙B12345","plate_color":"blue","vehicle_type":"K33","vehicle_color":"white",
            "speed_kmh":64.5,"lane":2,"direction":"outbound","heading":355,"confidence":0.97,
            "image":"https://cp-07.local/img/551.jpg"}]}`, base.UnixMilli())
	position = fmt.Sprintf(`{"v":1,"seq":9,"ts":%d,"lat":42.41,"lon":110.12,"speed_kmh":38,"heading":10,"accuracy_m":6,"datum":"wgs84"}`, base.UnixMilli())
	status = fmt.Sprintf(`{"v":1,"seq":77,"ts":%d,"battery_pct":87,"temp_c":-21.5,"uptime_s":86400,"tamper":false,"power":"solar","signal_dbm":-95,"queue":0,"fw":"2.3.1"}`, base.UnixMilli())
	return
}

// ms is the millisecond of a point time: the reading's ts (the point time
// adds a sub-millisecond offset that keeps readings apart).
func ms(v any) int64 {
	n, err := v.(json.Number).Int64()
	if err != nil {
		panic(err)
	}
	return n / int64(time.Millisecond)
}

func num(v any) float64 {
	f, err := v.(json.Number).Float64()
	if err != nil {
		panic(err)
	}
	return f
}

func TestIntegrationIngestEveryStream(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	detectionsMsg, passesMsg, positionMsg, statusMsg := contractMessages(base)
	e.publish("border/mdl/fence/F-AOL-01/detections", detectionsMsg)
	e.publish("border/mdl/checkpoint/CP-07/passes", passesMsg)
	e.publish("border/mdl/patrol/P-07/position", positionMsg)
	e.publish("border/mdl/checkpoint/CP-07/status", statusMsg)
	e.waitAcked(4)
	msgTS := base.UnixMilli()

	phones := e.rows(`SELECT * FROM phone_detection ORDER BY time`)
	require.Len(t, phones, 2)
	first, second := phones[0], phones[1]
	require.Equal(t, msgTS-220, ms(first["time"]), "a detection's own ts is its time")
	require.Equal(t, msgTS, ms(second["time"]), "without its own ts, the message's")
	for k, want := range map[string]any{
		"site": "mdl", "device": "F-AOL-01", "mcc": "460", "operator": "46000", "tech": "lte",
		"imsi": "460001234567890", "imei": "490154203237518", "mac": "a4:5e:60:12:34:56",
	} {
		require.Equal(t, want, first[k], k)
	}
	require.Equal(t, -71.0, num(first["rssi"]))
	require.Equal(t, 41.9612, num(first["lat"]))
	require.Equal(t, 110.4875, num(first["lon"]))
	require.Equal(t, 18231.0, num(first["seq"]))
	require.Equal(t, "428", second["mcc"])
	require.Equal(t, "42899", second["operator"])
	require.Nil(t, second["imei"], "absent identifiers are absent fields")

	tagsOf := func(measurement string) []string {
		var keys []string
		for _, r := range e.rows(`SHOW TAG KEYS FROM ` + measurement) {
			keys = append(keys, r["tagKey"].(string))
		}
		return keys
	}
	require.ElementsMatch(t, []string{"site", "device", "mcc", "operator", "tech"}, tagsOf("phone_detection"))
	require.ElementsMatch(t, []string{"site", "device", "direction", "plate_color", "vehicle_type"}, tagsOf("vehicle_pass"))
	require.ElementsMatch(t, []string{"site", "device"}, tagsOf("patrol_position"))
	require.ElementsMatch(t, []string{"site", "kind", "device"}, tagsOf("device_status"))

	passes := e.rows(`SELECT * FROM vehicle_pass`)
	require.Len(t, passes, 1)
	p := passes[0]
	require.Equal(t, msgTS, ms(p["time"]))
	for k, want := range map[string]any{
		"site": "mdl", "device": "CP-07", "direction": "outbound", "plate_color": "blue", "vehicle_type": "K33",
		"plate": "蒙B12345", "vehicle_color": "white", "image": "https://cp-07.local/img/551.jpg",
	} {
		require.Equal(t, want, p[k], k)
	}
	require.Equal(t, 64.5, num(p["speed_kmh"]))
	require.Equal(t, 2.0, num(p["lane"]))
	require.Equal(t, 355.0, num(p["heading"]))
	require.Equal(t, 0.97, num(p["confidence"]))
	require.Equal(t, 42.30, num(p["lat"]), "the checkpoint's registered position")
	require.Equal(t, 110.15, num(p["lon"]))

	pos := e.rows(`SELECT * FROM patrol_position`)
	require.Len(t, pos, 1)
	require.Equal(t, "P-07", pos[0]["device"])
	require.Equal(t, 42.41, num(pos[0]["lat"]))
	require.Equal(t, 38.0, num(pos[0]["speed_kmh"]))
	require.Equal(t, 6.0, num(pos[0]["accuracy_m"]))
	require.Equal(t, 9.0, num(pos[0]["seq"]))

	st := e.rows(`SELECT * FROM device_status`)
	require.Len(t, st, 1)
	for k, want := range map[string]any{"site": "mdl", "kind": "checkpoint", "device": "CP-07", "power": "solar", "fw": "2.3.1", "tamper": false} {
		require.Equal(t, want, st[0][k], k)
	}
	require.Equal(t, 87.0, num(st[0]["battery_pct"]))
	require.Equal(t, -21.5, num(st[0]["temp_c"]))
	require.Equal(t, 86400.0, num(st[0]["uptime_s"]))
	require.Equal(t, 0.0, num(st[0]["queue"]))

	// Field types are fixed: integers stay integers, the rest floats.
	types := map[string]string{}
	for _, r := range e.rows(`SHOW FIELD KEYS`) {
		types[r["fieldKey"].(string)] = r["fieldType"].(string)
	}
	for field, want := range map[string]string{"seq": "integer", "lane": "integer", "uptime_s": "integer", "queue": "integer",
		"rssi": "float", "lat": "float", "speed_kmh": "float", "battery_pct": "float", "tamper": "boolean", "imsi": "string", "plate": "string"} {
		require.Equal(t, want, types[field], field)
	}

	require.Equal(t, 2.0, e.counter("fenceline_ingest_readings_accepted_total", map[string]string{"stream": "detections"}))
	require.Equal(t, 1.0, e.counter("fenceline_ingest_messages_total", map[string]string{"stream": "status"}))
	require.GreaterOrEqual(t, e.counter("fenceline_influx_points_written_total", map[string]string{"measurement": "phone_detection"}), 2.0)
	code, body := e.get("/readyz")
	require.Equal(t, 200, code, body)
	require.Equal(t, 1.0, e.gauge("fenceline_ready"))
	require.Equal(t, 1.0, e.metric("fenceline_registry_devices", map[string]string{"kind": "patrol", "site": "mdl"}).GetGauge().GetValue())
	code, _ = e.get("/healthz")
	require.Equal(t, 200, code)
	_, metrics := e.get("/metrics")
	require.Contains(t, metrics, "fenceline_ingest_rejections_total{reason=\"bad_imsi\"} 0")
}

func TestIntegrationIngestRejections(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	now := time.Now().UnixMilli()
	future := time.Now().Add(time.Hour).UnixMilli()
	cases := []struct {
		name   string
		topic  string
		body   string
		reason string // dead-letter reason expected
		kept   int    // readings of the message still stored
	}{
		{"malformed json", "border/mdl/fence/F-AOL-01/detections", `{"v":1,`, "malformed_json", 0},
		{"oversize", "border/mdl/fence/F-AOL-01/detections", `{"v":1,"seq":1,"ts":1,"pad":"` + strings.Repeat("x", 300<<10) + `"}`, "too_large", 0},
		{"unknown device", "border/mdl/fence/F-XXX-99/detections", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, now), "unknown_device", 0},
		{"wrong site", "border/btu/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, now), "device_mismatch", 0},
		{"wrong kind", "border/mdl/checkpoint/F-AOL-01/passes", fmt.Sprintf(`{"v":1,"seq":3,"ts":%d,"passes":[{"plate":"蒙B12345"}]}`, now), "device_mismatch", 0},
		{"bad topic", "border/MDL/fence/F-AOL-01/detections", `{}`, "bad_topic", 0},
		{"unknown stream", "border/mdl/fence/F-AOL-01/videos", `{}`, "bad_topic", 0},
		{"future ts", "border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":4,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, future), "future_ts", 0},
		{"bad version", "border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":2,"seq":5,"ts":%d,"detections":[]}`, now), "bad_version", 0},
		{"bad imsi among good", "border/mdl/fence/F-AOL-01/detections",
			fmt.Sprintf(`{"v":1,"seq":6,"ts":%d,"detections":[{"imsi":"460001234567891"},{"imsi":"12"},{"mac":"a4:5e:60:12:34:57"}]}`, now), "bad_imsi", 2},
		{"no identifier", "border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":7,"ts":%d,"detections":[{"rssi":-50}]}`, now), "no_identifier", 0},
		{"bad imei luhn", "border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":8,"ts":%d,"detections":[{"imei":"490154203237519"}]}`, now), "bad_imei", 0},
		{"rssi out of range", "border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":9,"ts":%d,"detections":[{"imsi":"460001234567892","rssi":12}]}`, now), "bad_rssi", 0},
		{"pass without plate", "border/mdl/checkpoint/CP-07/passes", fmt.Sprintf(`{"v":1,"seq":10,"ts":%d,"passes":[{"lane":1},{"plate":"蒙B54321"}]}`, now), "no_plate", 1},
		{"bad direction", "border/mdl/checkpoint/CP-07/passes", fmt.Sprintf(`{"v":1,"seq":11,"ts":%d,"passes":[{"plate":"蒙B11111","direction":"sideways"}]}`, now), "bad_direction", 0},
		{"patrol without position", "border/mdl/patrol/P-07/position", fmt.Sprintf(`{"v":1,"seq":12,"ts":%d}`, now), "no_position", 0},
		{"reading in the future", "border/mdl/fence/F-AOL-01/detections",
			fmt.Sprintf(`{"v":1,"seq":13,"ts":%d,"detections":[{"imsi":"460001234567893","ts":%d},{"imsi":"460001234567894"}]}`, now, future), "future_ts", 1},
	}
	wantKept := 0
	for i, c := range cases {
		e.publish(c.topic, c.body)
		wantKept += c.kept
		e.waitAcked(i + 1)
	}
	recs := e.deadLetters()
	require.Len(t, recs, len(cases), "one dead letter per rejecting message and reason")
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := recs[i]
			require.Equal(t, c.reason, r.Reason)
			require.Equal(t, c.topic, r.Topic)
			require.Equal(t, c.body, string(r.Payload), "the raw payload is kept")
			require.NotEmpty(t, r.Detail)
			require.False(t, r.Received.IsZero())
			require.GreaterOrEqual(t, e.counter("fenceline_ingest_rejections_total", map[string]string{"reason": c.reason}), 1.0)
		})
	}
	require.Equal(t, wantKept, e.count("phone_detection")+e.count("vehicle_pass"), "the good readings of partly bad messages are stored")
}

func TestIntegrationIngestIdempotentAndDistinct(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	var dets []string
	for i := range 50 {
		dets = append(dets, fmt.Sprintf(`{"imsi":"4600012345%05d","rssi":-60}`, i))
	}
	msg := fmt.Sprintf(`{"v":1,"seq":100,"ts":%d,"detections":[%s]}`, ts, strings.Join(dets, ","))
	e.publish("border/mdl/fence/F-AOL-01/detections", msg)
	e.waitAcked(1)
	require.Equal(t, 50, e.count("phone_detection"), "50 phones at one millisecond are 50 points")

	e.publish("border/mdl/fence/F-AOL-01/detections", msg) // delivered again
	e.waitAcked(2)
	require.Equal(t, 50, e.count("phone_detection"), "the same message twice writes no extra points")
	require.Equal(t, 1.0, e.counter("fenceline_ingest_sequence_duplicates_total", nil))

	// A later message of the same device at the same millisecond is kept apart.
	e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":101,"ts":%d,"detections":[%s]}`, ts, dets[0]))
	// A gap: seq 102-104 never arrive.
	e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":105,"ts":%d,"detections":[%s]}`, ts, dets[1]))
	e.waitAcked(4)
	require.Equal(t, 52, e.count("phone_detection"))
	require.Equal(t, 1.0, e.counter("fenceline_ingest_sequence_gaps_total", nil))
	require.Equal(t, 3.0, e.counter("fenceline_ingest_sequence_missing_messages_total", nil))

	// A full payload of small detections, all at one millisecond: every
	// reading is a point, those past the 4,096th included.
	big := make([]string, 9000)
	for i := range big {
		big[i] = fmt.Sprintf(`{"mac":"a4:5e:60:%02x:%02x:%02x"}`, i>>16, i>>8&0xff, i&0xff)
	}
	msg = fmt.Sprintf(`{"v":1,"seq":106,"ts":%d,"detections":[%s]}`, ts, strings.Join(big, ","))
	require.Less(t, len(msg), 256<<10)
	e.publish("border/mdl/fence/F-AOL-01/detections", msg)
	e.waitAcked(5)
	require.Equal(t, 52+len(big), e.count("phone_detection"))

	// The next message at the same millisecond, with the same tags: its
	// readings keep times of their own, apart from the big message's.
	next := make([]string, 10)
	for i := range next {
		next[i] = fmt.Sprintf(`{"mac":"b4:5e:60:00:00:%02x"}`, i)
	}
	e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":107,"ts":%d,"detections":[%s]}`, ts, strings.Join(next, ",")))
	e.waitAcked(6)
	require.Equal(t, 52+len(big)+len(next), e.count("phone_detection"), "no reading of the big message is overwritten")
}

// A unit that restarted its counter and sends a seq again, another message
// at the same millisecond: both messages' readings are stored (the second
// moves its points), and each one's redelivery writes nothing new.
func TestIntegrationIngestSeqSentAgainAtTheSameMillisecond(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	msg := func(seq int, imsi string) string {
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":%q,"rssi":-60}]}`, seq, ts, imsi)
	}
	first, again := msg(26, "460001130000026"), msg(26, "460001130000126")
	for _, m := range []string{msg(25, "460001130000025"), first, again, again, first} {
		e.publish("border/mdl/fence/F-AOL-01/detections", m)
	}
	e.waitAcked(5)
	var imsis []string
	for _, r := range e.rows(`SELECT imsi FROM phone_detection WHERE seq = 26`) {
		imsis = append(imsis, r["imsi"].(string))
	}
	slices.Sort(imsis)
	require.Equal(t, []string{"460001130000026", "460001130000126"}, imsis)
	require.Equal(t, 3, e.count("phone_detection"))
	require.Equal(t, 2.0, e.counter("fenceline_ingest_sequence_duplicates_total", nil))
}

// The devices' seq counters are saved with the alert state: a message a
// unit sends again after fenceline restarted is a duplicate, not evaluated
// again (no second alert for the outbox to drop); the next is no gap.
func TestIntegrationSeqCountersAcrossRestart(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	msg := func(seq int) string {
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"42899123456%04d","rssi":-60}]}`, seq, ts+int64(seq), seq)
	}
	for seq := 1; seq <= 3; seq++ {
		e.publish("border/mdl/fence/F-AOL-01/detections", msg(seq))
	}
	e.waitAcked(3)
	foreignSIM := map[string]string{"rule": "foreign-sim-near-border", "state": "firing"}
	require.Equal(t, 3.0, e.counter("fenceline_alerts_raised_total", foreignSIM), "a foreign SIM each")
	e.stop()
	e.start()

	e.publish("border/mdl/fence/F-AOL-01/detections", msg(3)) // sent again
	e.publish("border/mdl/fence/F-AOL-01/detections", msg(4))
	e.waitAcked(2)
	require.Equal(t, 1.0, e.counter("fenceline_ingest_sequence_duplicates_total", nil))
	require.Equal(t, 0.0, e.counter("fenceline_alerts_duplicates_total", nil), "seq 3 was not evaluated again")
	require.Equal(t, 0.0, e.counter("fenceline_ingest_sequence_gaps_total", nil))
	require.Equal(t, 0.0, e.counter("fenceline_ingest_sequence_resets_total", nil))
	require.Equal(t, 1.0, e.counter("fenceline_alerts_raised_total", foreignSIM), "seq 4's: seq 3 was not evaluated again")
	require.Equal(t, 4, e.count("phone_detection"))
}

func TestIntegrationIngestAcrossRestart(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	e.publish("border/mdl/patrol/P-07/position", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"lat":42.41,"lon":110.12}`, ts))
	e.waitAcked(1)
	e.stop()

	// Published while the daemon is down: the persistent session keeps them.
	for i := 2; i <= 20; i++ {
		e.publish("border/mdl/patrol/P-07/position", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"lat":42.41,"lon":110.12}`, i, ts+int64(i)))
	}
	e.start()
	e.waitAcked(19)
	require.Equal(t, 20, e.count("patrol_position"))
}

// Tags that hold device text are bounded (influx.max_tag_values): past the
// bound, a new value is the tag "other" with its text in <tag>_text, every
// reading stored; the values admitted survive a restart.
func TestIntegrationTagValuesBounded(t *testing.T) {
	e := newEnvInflux(t, "rules.yaml", ", max_tag_values: 2", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	det := func(seq int, techs ...string) string {
		var ds []string
		for i, tech := range techs {
			ds = append(ds, fmt.Sprintf(`{"imsi":"46000123450%04d","tech":%q}`, seq*10+i, tech))
		}
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[%s]}`, seq, ts, strings.Join(ds, ","))
	}
	e.publish("border/mdl/fence/F-AOL-01/detections", det(1, "lte", "nr", "x-buggy-1", "lte"))
	e.publish("border/mdl/checkpoint/CP-07/passes", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"passes":[
		{"plate":"蒙B12345","plate_color":"blue","vehicle_type":"K33"},
		{"plate":"蒙B12346","plate_color":"yellow","vehicle_type":"H11"},
		{"plate":"蒙B12347","plate_color":"junk-3","vehicle_type":"JUNK-4"}]}`, ts))
	e.waitAcked(2)
	require.Equal(t, 4, e.count("phone_detection"))
	require.Equal(t, 3, e.count("vehicle_pass"))

	tagValues := func(measurement, key string) []string {
		var vs []string
		for _, r := range e.rows(fmt.Sprintf(`SHOW TAG VALUES FROM %q WITH KEY = %q`, measurement, key)) {
			vs = append(vs, r["value"].(string))
		}
		return vs
	}
	require.ElementsMatch(t, []string{"lte", "nr", "other"}, tagValues("phone_detection", "tech"))
	require.ElementsMatch(t, []string{"blue", "yellow", "other"}, tagValues("vehicle_pass", "plate_color"))
	require.ElementsMatch(t, []string{"K33", "H11", "other"}, tagValues("vehicle_pass", "vehicle_type"))
	rows := e.rows(`SELECT tech_text FROM phone_detection WHERE tech = 'other'`)
	require.Len(t, rows, 1)
	require.Equal(t, "x-buggy-1", rows[0]["tech_text"], "the text is kept")
	rows = e.rows(`SELECT plate_color_text, vehicle_type_text FROM vehicle_pass WHERE plate_color = 'other'`)
	require.Len(t, rows, 1)
	require.Equal(t, "junk-3", rows[0]["plate_color_text"])
	require.Equal(t, "JUNK-4", rows[0]["vehicle_type_text"])
	require.Equal(t, 1.0, e.counter("fenceline_ingest_tag_overflow_readings_total", map[string]string{"tag": "tech"}))

	// After a restart the bound still holds: a new value is still "other",
	// a known one still itself.
	e.stop()
	e.start()
	e.publish("border/mdl/fence/F-AOL-01/detections", det(2, "gsm", "nr"))
	e.waitAcked(1)
	require.ElementsMatch(t, []string{"lte", "nr", "other"}, tagValues("phone_detection", "tech"))
	require.Equal(t, 6, e.count("phone_detection"))
}

// A tag value that cannot be a tag as sent (a trailing backslash, which
// would escape the separator after it) is stored as the tag "other" with
// its text whole in <tag>_text, counted and apart from the bound: InfluxDB
// stored `x\` as "x", and a tag of backslashes only not at all.
func TestIntegrationTagValuesThatCannotBeTags(t *testing.T) {
	e := newEnvInflux(t, "rules.yaml", "", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	e.publish("border/mdl/checkpoint/CP-07/passes", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"passes":[
		{"plate":"蒙B22010","vehicle_type":"b\\c","plate_color":"x\\"},
		{"plate":"蒙B22011","vehicle_type":"\\\\"},
		{"plate":"蒙B22012","vehicle_type":"q\\ "}]}`, ts))
	e.waitAcked(1)
	require.Equal(t, 3, e.count("vehicle_pass"))
	rows := e.rows(`SELECT plate, plate_color, plate_color_text, vehicle_type, vehicle_type_text FROM vehicle_pass`)
	require.Len(t, rows, 3)
	got := map[string][4]any{}
	for _, r := range rows {
		got[r["plate"].(string)] = [4]any{r["plate_color"], r["plate_color_text"], r["vehicle_type"], r["vehicle_type_text"]}
	}
	assert.Equal(t, [4]any{"other", `x\`, "other", `B\C`}, got["蒙B22010"], "no backslash in a tag, inside either (see model.TagFits)")
	assert.Equal(t, [4]any{nil, nil, "other", `\\`}, got["蒙B22011"])
	assert.Equal(t, [4]any{nil, nil, "other", `Q\`}, got["蒙B22012"])
	assert.Equal(t, 1.0, e.counter("fenceline_ingest_tag_unfit_readings_total", map[string]string{"tag": "plate_color"}))
	assert.Equal(t, 3.0, e.counter("fenceline_ingest_tag_unfit_readings_total", map[string]string{"tag": "vehicle_type"}))
	assert.Zero(t, e.counter("fenceline_ingest_tag_overflow_readings_total", map[string]string{"tag": "vehicle_type"}))
}

// The broker's backlog after fenceline was down passes the device budget
// whole: it arrives at once, but its messages' ts spread it over the time
// it was produced in. A unit flooding with one ts is held to its budget.
func TestIntegrationBacklogWithinBudget(t *testing.T) {
	e := newEnv(t, "rules.yaml", "ingest: {device_budget: {messages_per_second: 1, message_burst: 5}}\n")
	e.stop()
	start := time.Now().Add(-time.Hour)
	for i := range 40 { // one a second, an hour ago, all queued in the broker
		e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4600012345%05d"}]}`,
			i+1, start.Add(time.Duration(i)*time.Second).UnixMilli(), i))
	}
	e.start()
	e.waitAcked(40)
	require.Equal(t, 40, e.count("phone_detection"), "the backlog is stored whole")
	require.Zero(t, e.counter("fenceline_ingest_rejections_total", map[string]string{"reason": "over_budget"}))

	ts := time.Now().Add(-time.Minute).UnixMilli()
	floodStart := time.Now()
	for i := range 60 { // a loop: sixty messages with one ts
		e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4600012346%05d"}]}`, 100+i, ts, i))
	}
	e.waitAcked(40 + 60) // acks count from the start: the backlog's and the flood's
	// The burst and a message a second of fenceline's clock pass, no more.
	passed := 60 - e.counter("fenceline_ingest_rejections_total", map[string]string{"reason": "over_budget"})
	require.LessOrEqual(t, passed, 5+time.Since(floodStart).Seconds()+1, "a flood is still held to its budget")
}

// A unit that restarted its counter and its clock while fenceline was down,
// and whose first message went out retained at QoS 0, reaches fenceline
// only as the broker's retained copy at the next subscription. Its seq is
// one seen before, with another payload, and its ts older than the
// device's latest, as a stale copy's could be; but it is not the latest
// message taken from its topic, saved with the seq counters: it is new, is
// evaluated, as a counter restart, and alerts — once, not again when the
// copy comes back.
func TestIntegrationRetainedMessageOfARestartedUnit(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	const topic = "border/mdl/fence/F-AOL-01/detections"
	base := time.Now().Add(-time.Minute)
	for seq := 1; seq <= 3; seq++ {
		e.publish(topic, fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"46000123456%04d"}]}`, seq, base.Add(time.Duration(seq)*time.Second).UnixMilli(), seq))
	}
	e.waitAcked(3)
	e.stop()

	tok := e.pub.Publish(topic, 0, true, fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"detections":[{"imsi":"428991234560001"}]}`, base.Add(-time.Hour).UnixMilli()))
	require.True(t, tok.WaitTimeout(waitTimeout))
	require.NoError(t, tok.Error())
	e.start()
	e.waitAcked(1)
	foreignSIM := map[string]string{"rule": "foreign-sim-near-border", "state": "firing"}
	require.Equal(t, 1.0, e.counter("fenceline_alerts_raised_total", foreignSIM), "the restarted unit's reading is evaluated")
	require.Equal(t, 1.0, e.counter("fenceline_ingest_sequence_resets_total", nil))

	e.stop()
	e.start()
	e.waitAcked(1)
	require.Equal(t, 1.0, e.counter("fenceline_ingest_sequence_duplicates_total", nil), "its copy at the next subscription")
	require.Equal(t, 0.0, e.counter("fenceline_alerts_raised_total", foreignSIM))
	require.Equal(t, 0.0, e.counter("fenceline_ingest_sequence_resets_total", nil))
	require.Equal(t, 4, e.count("phone_detection"))
}

// A unit without a real-time clock starts every boot at seq 1 and the same
// ts. Every boot's readings are stored, across a restart of fenceline too
// (the move levels are saved with the seq counters).
func TestIntegrationRestartsAtOneInstantAreAllStored(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	const topic = "border/mdl/fence/F-AOL-01/detections"
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	boot := func(n, length int) {
		for seq := 1; seq <= length; seq++ {
			e.publish(topic, fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4600012%04d%04d"}]}`, seq, ts.Add(time.Duration(seq)*time.Second).UnixMilli(), n, seq))
		}
	}
	boot(1, 3)
	boot(2, 1) // a short boot: boot 3's seqs 2 and 3 are only boot 1's
	e.waitAcked(4)
	e.stop()
	boot(3, 3) // queued in fenceline's session
	e.start()
	boot(4, 2)
	e.waitAcked(5)
	require.Equal(t, 9, e.count("phone_detection"))
	require.Equal(t, 2.0, e.counter("fenceline_ingest_sequence_resets_total", nil), "boots 3 and 4, since the start")
}
