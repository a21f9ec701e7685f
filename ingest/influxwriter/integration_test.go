package influxwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/tagcap"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

const itTimeout = 60 * time.Second

func itContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), itTimeout)
	t.Cleanup(cancel)
	return ctx
}

// query runs InfluxQL and returns the rows of its single series (nil if none).
func query(t *testing.T, in *stack.Influx, q string) []map[string]any {
	t.Helper()
	series, err := in.Query(itContext(t), q)
	require.NoError(t, err, q)
	if len(series) == 0 {
		return nil
	}
	require.Len(t, series, 1, q)
	return series[0].Rows()
}

// fieldTypes returns SHOW FIELD KEYS of a measurement: field → type.
func fieldTypes(t *testing.T, in *stack.Influx, m string) map[string]string {
	out := map[string]string{}
	for _, r := range query(t, in, "SHOW FIELD KEYS FROM "+stack.QuoteIdent(m)) {
		out[r["fieldKey"].(string)] = r["fieldType"].(string)
	}
	return out
}

func tagKeys(t *testing.T, in *stack.Influx, m string) []string {
	var out []string
	for _, r := range query(t, in, "SHOW TAG KEYS FROM "+stack.QuoteIdent(m)) {
		out = append(out, r["tagKey"].(string))
	}
	sort.Strings(out)
	return out
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "%v (%T) is not a number", v, v)
	f, err := n.Float64()
	require.NoError(t, err)
	return f
}

func integer(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "%v (%T) is not a number", v, v)
	i, err := n.Int64()
	require.NoError(t, err)
	return i
}

func startInfluxWriter(t *testing.T, in *stack.Influx, cfg Config) *started {
	cfg.URL, cfg.Bucket = in.URL(), in.Bucket()
	return startWriter(t, cfg)
}

// writeAll writes the batches and waits for every callback; it returns
// their errors by index.
func writeAll(t *testing.T, w *Writer, batches []*model.Batch) []error {
	t.Helper()
	wt := newWaiter(len(batches))
	for i, b := range batches {
		require.NoError(t, w.Write(itContext(t), b, wt.done(i)))
	}
	wt.wait(t, len(batches))
	errs := make([]error, len(batches))
	for i := range batches {
		errs[i] = wt.err(i)
	}
	return errs
}

func TestIntegrationSchema(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	s := startInfluxWriter(t, in, Config{})

	det := detectionBatch(18231, 2)
	det.Detections[1] = model.Detection{Stamp: stamp(t0, 18231, 1), IMSI: "428991234567890", MCC: "428",
		MNC: "99", Operator: "42899", Tech: "gsm", Loc: model.Point{Lat: 41.9612, Lon: 110.4875}}
	pass := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-07", Stream: model.StreamPasses, Seq: 551, Time: t0},
		Passes: []model.Pass{{Stamp: stamp(t0, 551, 0), Loc: model.Point{Lat: 42.3, Lon: 110.15}, Plate: "蒙B12345",
			PlateColor: "blue", VehicleType: "K33", VehicleColor: "white", Direction: "outbound",
			Image: "https://cp-07.local/img/551.jpg", SpeedKmh: model.Some(64.5), Lane: model.SomeInt(2),
			Heading: model.Some(355), Confidence: model.Some(0.97)}}}
	pos := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindPatrol, Device: "P-07", Stream: model.StreamPosition, Seq: 9, Time: t0},
		Positions: []model.Position{{Stamp: stamp(t0, 9, 0), Loc: model.Point{Lat: 42.41, Lon: 110.12},
			SpeedKmh: model.Some(38), Heading: model.Some(10), AccuracyM: model.Some(6)}}}
	st := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindFence, Device: "F-AOL-01", Stream: model.StreamStatus, Seq: 77, Time: t0},
		Statuses: []model.Status{{Stamp: stamp(t0, 77, 0), BatteryPct: model.Some(87), TempC: model.Some(-21.5),
			UptimeS: model.SomeInt(86400), Tamper: model.SomeBool(false), Power: "solar", SignalDbm: model.Some(-95),
			Queue: model.SomeInt(0), FW: "2.3.1"}}}
	for i, err := range writeAll(t, s.w, []*model.Batch{det, pass, pos, st}) {
		require.NoError(t, err, "batch %d", i)
	}
	alert := &model.Alert{ID: "a1b2", Rule: "night-phone-ruins", Severity: "high", State: model.StateFiring, Site: "mdl",
		Zone: "aolunsumu-ruins", Subject: model.Subject{Kind: "imsi", Value: "460001234567890"},
		Summary: `Phone at "Aolunsumu ruins", night`, At: t0, Location: &model.Point{Lat: 41.96, Lon: 110.486}, Count: 3}
	resolved := *alert
	resolved.State, resolved.Count, resolved.Late = model.StateResolved, 0, true
	wt := newWaiter(2)
	require.NoError(t, s.w.WriteAlert(itContext(t), alert, wt.done(0)))
	require.NoError(t, s.w.WriteAlert(itContext(t), &resolved, wt.done(1)))
	wt.wait(t, 2)
	require.NoError(t, wt.err(0))
	require.NoError(t, wt.err(1))

	// Tags and field types, exactly as the contract's table.
	assert.Equal(t, []string{"device", "mcc", "operator", "site", "tech"}, tagKeys(t, in, MeasurementDetection))
	assert.Equal(t, map[string]string{"imsi": "string", "imei": "string", "mac": "string", "rssi": "float",
		"lat": "float", "lon": "float", "seq": "integer"}, fieldTypes(t, in, MeasurementDetection))
	assert.Equal(t, []string{"device", "direction", "plate_color", "site", "vehicle_type"}, tagKeys(t, in, MeasurementPass))
	assert.Equal(t, map[string]string{"plate": "string", "vehicle_color": "string", "speed_kmh": "float", "lane": "integer",
		"heading": "float", "confidence": "float", "image": "string", "lat": "float", "lon": "float", "seq": "integer"},
		fieldTypes(t, in, MeasurementPass))
	assert.Equal(t, []string{"device", "site"}, tagKeys(t, in, MeasurementPosition))
	assert.Equal(t, map[string]string{"lat": "float", "lon": "float", "speed_kmh": "float", "heading": "float",
		"accuracy_m": "float", "seq": "integer"}, fieldTypes(t, in, MeasurementPosition))
	assert.Equal(t, []string{"device", "kind", "site"}, tagKeys(t, in, MeasurementStatus))
	assert.Equal(t, map[string]string{"battery_pct": "float", "temp_c": "float", "uptime_s": "integer", "tamper": "boolean",
		"power": "string", "signal_dbm": "float", "queue": "integer", "fw": "string", "seq": "integer"},
		fieldTypes(t, in, MeasurementStatus))
	assert.Equal(t, []string{"rule", "severity", "site", "state", "zone"}, tagKeys(t, in, MeasurementAlert))
	assert.Equal(t, map[string]string{"id": "string", "subject": "string", "summary": "string", "lat": "float",
		"lon": "float", "count": "integer", "late": "boolean"}, fieldTypes(t, in, MeasurementAlert))

	// Values and times.
	rows := query(t, in, `SELECT * FROM phone_detection ORDER BY time`)
	require.Len(t, rows, 2)
	assert.Equal(t, det.Detections[0].PointNS, integer(t, rows[0]["time"]))
	assert.Equal(t, det.Detections[1].PointNS, integer(t, rows[1]["time"]))
	assert.Equal(t, t0.UnixMilli(), integer(t, rows[1]["time"])/1e6, "millisecond precision keeps the reading's ts")
	assert.Equal(t, "460001234567890", rows[0]["imsi"])
	assert.Equal(t, "490154203237518", rows[0]["imei"])
	assert.Equal(t, -71.0, num(t, rows[0]["rssi"]))
	assert.Equal(t, 41.9612, num(t, rows[0]["lat"]))
	assert.Equal(t, int64(18231), integer(t, rows[0]["seq"]))
	assert.Equal(t, "lte", rows[0]["tech"])
	assert.Equal(t, "46000", rows[0]["operator"])
	assert.Nil(t, rows[1]["imei"], "absent field")
	assert.Nil(t, rows[1]["rssi"], "absent field")

	rows = query(t, in, `SELECT * FROM vehicle_pass`)
	require.Len(t, rows, 1)
	assert.Equal(t, pass.Passes[0].PointNS, integer(t, rows[0]["time"]))
	assert.Equal(t, "蒙B12345", rows[0]["plate"])
	assert.Equal(t, "outbound", rows[0]["direction"])
	assert.Equal(t, int64(2), integer(t, rows[0]["lane"]))
	assert.Equal(t, 0.97, num(t, rows[0]["confidence"]))
	assert.Equal(t, 355.0, num(t, rows[0]["heading"]))

	rows = query(t, in, `SELECT * FROM device_status`)
	require.Len(t, rows, 1)
	assert.Equal(t, false, rows[0]["tamper"])
	assert.Equal(t, int64(86400), integer(t, rows[0]["uptime_s"]))
	assert.Equal(t, "fence", rows[0]["kind"])
	assert.Equal(t, -21.5, num(t, rows[0]["temp_c"]))

	rows = query(t, in, `SELECT * FROM patrol_position`)
	require.Len(t, rows, 1)
	assert.Equal(t, 6.0, num(t, rows[0]["accuracy_m"]))

	rows = query(t, in, `SELECT * FROM alert ORDER BY time`)
	require.Len(t, rows, 2, "firing and resolved at the same instant are two points")
	byState := map[string]map[string]any{}
	for _, r := range rows {
		byState[r["state"].(string)] = r
		assert.Equal(t, AlertPointTime(&model.Alert{ID: r["id"].(string), State: r["state"].(string)}, t0).UnixNano(), integer(t, r["time"]))
	}
	assert.Equal(t, "imsi:460001234567890", byState["firing"]["subject"])
	assert.Equal(t, `Phone at "Aolunsumu ruins", night`, byState["firing"]["summary"])
	assert.Equal(t, int64(3), integer(t, byState["firing"]["count"]))
	assert.Equal(t, true, byState["resolved"]["late"])
}

// What InfluxDB 1.8 makes of awkward text: escapes survive, newlines become
// spaces (1.8 would keep a `\n` escape as a literal backslash-n).
func TestIntegrationEscaping(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	s := startInfluxWriter(t, in, Config{})
	b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-07", Stream: model.StreamPasses, Seq: 1, Time: t0}}
	b.Passes = []model.Pass{
		{Stamp: stamp(t0, 1, 0), Plate: "蒙B 12,3=4\"5\\", PlateColor: "dark blue", VehicleType: "a,b=c",
			VehicleColor: "line1\nline2", Image: `C:\img\"x".jpg`, Direction: "in bound"},
		{Stamp: stamp(t0, 1, 1), Plate: "1598 УБА", PlateColor: "trail\\", VehicleType: "\xffbad"},
	}
	require.NoError(t, writeAll(t, s.w, []*model.Batch{b})[0])
	rows := query(t, in, `SELECT * FROM vehicle_pass ORDER BY time`)
	require.Len(t, rows, 2)
	assert.Equal(t, "蒙B 12,3=4\"5\\", rows[0]["plate"])
	assert.Equal(t, "line1 line2", rows[0]["vehicle_color"])
	assert.Equal(t, `C:\img\"x".jpg`, rows[0]["image"])
	assert.Equal(t, "dark blue", rows[0]["plate_color"])
	assert.Equal(t, "a,b=c", rows[0]["vehicle_type"])
	assert.Equal(t, "in bound", rows[0]["direction"])
	assert.Equal(t, "1598 УБА", rows[1]["plate"])
	assert.Equal(t, "trail", rows[1]["plate_color"])
	assert.Equal(t, "\uFFFDbad", rows[1]["vehicle_type"])
}

// A backslash in a tag value cannot be stored as sent: `\ ` encoded as
// `\\ ` made InfluxDB 1.8's line splitter see a bare space there, and the
// `"` after it ran the line into the next ones; the message's three valid
// readings were refused whole. With the daemon's bound the value is the tag
// "other" and its text is kept whole in <tag>_text; without one it is
// stored without its backslashes. Either way every reading is a point.
func TestIntegrationBackslashInTags(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name       string
		bound      bool
		color, typ string // the first pass's tags as stored
	}{
		{name: "bounded", bound: true, color: model.OverflowTag, typ: model.OverflowTag},
		{name: "unbounded", color: ` ="`, typ: "x,y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := testenv.Influx(t)
			cfg := Config{}
			if tc.bound {
				c, err := tagcap.Open("", 100, quiet, prometheus.NewRegistry())
				require.NoError(t, err)
				cfg.Tags = c
			}
			s := startInfluxWriter(t, in, cfg)
			b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-07", Stream: model.StreamPasses, Seq: 551, Time: t0}}
			b.Passes = []model.Pass{
				{Stamp: stamp(t0, 551, 0), Plate: "蒙B12345", PlateColor: `\ \="`, VehicleType: `x\,y`},
				{Stamp: stamp(t0, 551, 1), Plate: "蒙B22345", PlateColor: "blue"},
				{Stamp: stamp(t0, 551, 2), Plate: "蒙B32345", PlateColor: "yellow", VehicleType: `K\33`},
			}
			require.NoError(t, writeAll(t, s.w, []*model.Batch{b})[0], "every reading of the message is stored")
			rows := query(t, in, `SELECT * FROM vehicle_pass ORDER BY time`)
			require.Len(t, rows, 3)
			assert.Equal(t, tc.color, rows[0]["plate_color"])
			assert.Equal(t, tc.typ, rows[0]["vehicle_type"])
			assert.Equal(t, "blue", rows[1]["plate_color"])
			assert.Equal(t, "yellow", rows[2]["plate_color"])
			if tc.bound {
				assert.Equal(t, `\ \="`, rows[0]["plate_color_text"], "the text whole")
				assert.Equal(t, `x\,y`, rows[0]["vehicle_type_text"])
				assert.Equal(t, model.OverflowTag, rows[2]["vehicle_type"])
				assert.Equal(t, `K\33`, rows[2]["vehicle_type_text"])
			} else {
				assert.Equal(t, "K33", rows[2]["vehicle_type"])
			}
		})
	}
}

func TestIntegrationDistinctAndIdempotent(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	s := startInfluxWriter(t, in, Config{})
	b := detectionBatch(4242, 50) // 50 phones, one millisecond
	require.NoError(t, writeAll(t, s.w, []*model.Batch{b})[0])
	n, err := in.Count(itContext(t), MeasurementDetection)
	require.NoError(t, err)
	assert.Equal(t, 50, n)
	// The same message again (a redelivery): the same 50 points.
	require.NoError(t, writeAll(t, s.w, []*model.Batch{b, b})[1])
	n, err = in.Count(itContext(t), MeasurementDetection)
	require.NoError(t, err)
	assert.Equal(t, 50, n)
	// The next message of the device, same millisecond: 50 more.
	require.NoError(t, writeAll(t, s.w, []*model.Batch{detectionBatch(4243, 50)})[0])
	n, err = in.Count(itContext(t), MeasurementDetection)
	require.NoError(t, err)
	assert.Equal(t, 100, n)
}

// InfluxDB stopped and restarted mid-stream: nothing lost, each callback once.
func TestIntegrationRestart(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	s := startInfluxWriter(t, in, Config{BatchSize: 200, MaxBackoff: 200 * time.Millisecond})
	const messages, perMessage = 400, 10
	wt := newWaiter(messages)
	acked := make(chan struct{})
	var once sync.Once
	write := func(i int) {
		b := detectionBatch(int64(i), perMessage)
		shift(b, time.Duration(i)*time.Millisecond)
		require.NoError(t, s.w.Write(itContext(t), b, func(err error) {
			wt.done(i)(err)
			once.Do(func() { close(acked) })
		}))
	}
	for i := range messages / 4 {
		write(i)
	}
	<-acked // some writes made it: now pull the plug mid-stream
	require.NoError(t, in.Stop())
	for i := messages / 4; i < messages/2; i++ {
		write(i)
	}
	// Wait until the writer noticed (the error is counted a moment before
	// the writer marks itself unhealthy), then bring InfluxDB back while
	// more comes.
	waitFor(t, func() bool {
		return counter(t, s.reg, "fenceline_influx_write_errors_total", "class", "network") > 0 && !s.w.Healthy()
	})
	restarted := make(chan error, 1)
	go func() { restarted <- in.Restart(itContext(t)) }()
	for i := messages / 2; i < messages; i++ {
		write(i)
	}
	require.NoError(t, <-restarted)
	wt.wait(t, messages)
	for i := range messages {
		require.NoError(t, wt.err(i), "message %d", i)
	}
	n, err := in.Count(itContext(t), MeasurementDetection)
	require.NoError(t, err)
	assert.Equal(t, messages*perMessage, n)
	assert.True(t, s.w.Healthy())
	require.NoError(t, s.w.Close(itContext(t)))
}

// A real "partial write": a field type conflict in one message only. The
// others land; that one is rejected for good with InfluxDB's message.
func TestIntegrationPartialWrite(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	// Someone wrote lane as a string into this shard before us.
	require.NoError(t, in.Write(itContext(t), fmt.Sprintf(`vehicle_pass,device=OLD,site=mdl lane="two" %d`, t0.UnixNano()-1)))
	s := startInfluxWriter(t, in, Config{Lazy: true, FlushInterval: time.Hour, BatchSize: 8 + 2})
	var batches []*model.Batch
	for i := range 8 {
		b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-07", Stream: model.StreamPasses, Seq: int64(i), Time: t0},
			Passes: []model.Pass{{Stamp: stamp(t0, int64(i), 0), Plate: fmt.Sprintf("蒙B1234%d", i)}}}
		if i == 3 {
			// Three passes, the first and last with a lane: those two are
			// refused, the middle one is stored.
			b.Passes[0].Lane = model.SomeInt(2)
			for j := 1; j < 3; j++ {
				b.Passes = append(b.Passes, model.Pass{Stamp: stamp(t0, int64(i), j), Plate: fmt.Sprintf("蒙B2234%d", j)})
			}
			b.Passes[2].Lane = model.SomeInt(1)
		}
		batches = append(batches, b)
	}
	errs := writeAll(t, s.w, batches)
	for i, err := range errs {
		if i != 3 {
			assert.NoError(t, err, "message %d", i)
			continue
		}
		var pe *PermanentError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, http.StatusBadRequest, pe.Status)
		assert.Contains(t, pe.Message, "partial write: field type conflict")
		assert.ElementsMatch(t, []int64{model.PointTime(t0, 3, 0), model.PointTime(t0, 3, 2)}, pe.Times, "the refused readings")
		t.Logf("InfluxDB 1.8 said: %s", pe.Message)
	}
	n, err := in.Count(itContext(t), MeasurementPass)
	require.NoError(t, err)
	assert.Equal(t, 1+7+1, n)
}

// Old readings beyond the retention policy are dropped by InfluxDB with a
// 400: rejected for good, so the caller dead-letters them.
func TestIntegrationBeyondRetention(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	_, err := in.Exec(itContext(t), `CREATE RETENTION POLICY "day" ON "border" DURATION 1h REPLICATION 1`)
	require.NoError(t, err)
	w := startWriter(t, Config{URL: in.URL(), Bucket: "border/day", Lazy: true, FlushInterval: time.Hour, BatchSize: 2})
	old := detectionBatch(1, 1)
	shift(old, -48*time.Hour)
	fresh := detectionBatch(2, 1)
	shift(fresh, time.Since(t0))
	errs := writeAll(t, w.w, []*model.Batch{old, fresh})
	var pe *PermanentError
	require.ErrorAs(t, errs[0], &pe)
	assert.Contains(t, pe.Message, "points beyond retention policy")
	t.Logf("InfluxDB 1.8 said: %s", pe.Message)
	assert.NoError(t, errs[1])
}

// A database or a retention policy that does not exist (yet) is retried
// until an operator creates it. Both are not_found: the operator's to
// create, not an overloaded server (InfluxDB 1.8 answers a missing
// retention policy with a 500).
func TestIntegrationBucketNotFound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, bucket, answer, create string
	}{
		{"database", "later/autogen", "database not found", `CREATE DATABASE "later"`},
		{"retention policy", "border/week", "retention policy not found", `CREATE RETENTION POLICY "week" ON "border" DURATION 7d REPLICATION 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := testenv.Influx(t)
			s := startWriter(t, Config{URL: in.URL(), Bucket: tc.bucket, MaxBackoff: 100 * time.Millisecond})
			wt := newWaiter(1)
			require.NoError(t, s.w.Write(itContext(t), detectionBatch(1, 3), wt.done(0)))
			waitFor(t, func() bool { return counter(t, s.reg, "fenceline_influx_write_errors_total", "class", "not_found") > 0 })
			assert.Zero(t, counter(t, s.reg, "fenceline_influx_write_errors_total", "class", "server"))
			assert.False(t, s.w.Healthy())
			assert.ErrorContains(t, s.w.LastError(), tc.answer)
			_, err := in.Exec(itContext(t), tc.create)
			require.NoError(t, err)
			wt.wait(t, 1)
			require.NoError(t, wt.err(0))
			assert.True(t, s.w.Healthy())
		})
	}
}

// shift moves every reading of b by d.
func shift(b *model.Batch, d time.Duration) {
	b.Time = b.Time.Add(d)
	for i := range b.Detections {
		s := &b.Detections[i].Stamp
		s.Time = s.Time.Add(d)
		s.PointNS = model.PointTime(s.Time, b.Seq, s.Index)
	}
}

// waitFor polls cond: for conditions that have no event to wait on (a
// metric reaching a value).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(itTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		<-tick.C
	}
}

// BenchmarkIntegrationThroughput writes 400,000 detections (20,000 messages
// of 20) to a real InfluxDB 1.8 and reports lines/s and lines per request,
// for each flush policy, and the CPU per line that influxd and the writer
// spent; the paced variants offer 100k lines/s (the target) or 20k lines/s
// (a busy day) instead of everything at once, which is where the flush
// policies differ: in how many requests they make of InfluxDB.
// Run with: go test -run XXX -bench IntegrationThroughput -benchtime 1x
func BenchmarkIntegrationThroughput(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
		rate int // lines/s offered; 0: as fast as Write takes them
	}{
		{"default-c2", Config{}, 0},
		{"eagerall-c2", Config{eagerAll: true}, 0},
		{"lazy-c2", Config{Lazy: true}, 0},
		{"default-c4", Config{Concurrency: 4}, 0},
		{"default-c2-gzip", Config{Gzip: true}, 0},
		{"batch500-c2", Config{BatchSize: 500}, 0},
		{"batch20000-c2", Config{BatchSize: 20000}, 0},
		{"default-c2-paced100k", Config{}, 100000},
		{"lazy-c2-paced100k", Config{Lazy: true}, 100000},
		{"default-c2-paced20k", Config{}, 20000},
		{"eagerall-c2-paced20k", Config{eagerAll: true}, 20000},
		{"lazy-c2-paced20k", Config{Lazy: true}, 20000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := testenv.Influx(b)
			messages, per := 20000, 20
			if tc.rate > 0 && tc.rate < 100000 {
				messages = tc.rate * 5 / per // five seconds' worth
			}
			batches := make([]*model.Batch, messages)
			for i := range batches {
				batches[i] = realisticDetections(int64(i))
				shift(batches[i], time.Duration(i)*time.Millisecond)
			}
			cfg := tc.cfg
			cfg.URL, cfg.Bucket = in.URL(), in.Bucket()
			reg := prometheus.NewRegistry()
			w, err := New(cfg, slog.New(slog.DiscardHandler), reg)
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- w.Run(ctx) }()
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				wg.Add(messages)
				influx0, influxOK := processCPU(in.Dir())
				self0 := selfCPU()
				start := time.Now()
				for i, bt := range batches {
					if tc.rate > 0 && i%50 == 0 {
						// Pacing the offered load, not synchronising.
						if d := time.Duration(i*per) * time.Second / time.Duration(tc.rate); time.Since(start) < d {
							time.Sleep(d - time.Since(start))
						}
					}
					require.NoError(b, w.Write(context.Background(), bt, func(err error) {
						if err != nil {
							b.Error(err)
						}
						wg.Done()
					}))
				}
				wg.Wait()
				b.ReportMetric(float64(messages*per)/time.Since(start).Seconds(), "lines/s")
				// CPU per line says more than lines/s on a shared machine:
				// InfluxDB's for each policy, and the writer's (this test
				// process: encoding, HTTP, and the fake producer).
				if influx1, ok := processCPU(in.Dir()); ok && influxOK {
					b.ReportMetric(float64((influx1-influx0).Nanoseconds())/float64(messages*per), "influxd-cpu-ns/line")
				}
				b.ReportMetric(float64((selfCPU()-self0).Nanoseconds())/float64(messages*per), "writer-cpu-ns/line")
			}
			b.StopTimer()
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				if mf.GetName() == "fenceline_influx_batch_lines" {
					h := mf.GetMetric()[0].GetHistogram()
					b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "lines/request")
					b.ReportMetric(float64(h.GetSampleCount()), "requests")
				}
			}
			require.NoError(b, w.Close(context.Background()))
			cancel()
			<-ran
			n, err := in.Count(context.Background(), MeasurementDetection)
			require.NoError(b, err)
			require.Equal(b, messages*per, n)
		})
	}
}
