package influxwriter

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

var t0 = time.Date(2026, 11, 26, 23, 10, 4, 120e6, time.FixedZone("CST", 8*3600))

func stamp(t time.Time, seq int64, idx int) model.Stamp {
	return model.Stamp{Time: t, PointNS: model.PointTime(t, seq, idx), Index: idx}
}

func fenceMeta(seq int64) model.Meta {
	return model.Meta{Topic: "border/mdl/fence/F-AOL-01/detections", Site: "mdl", Kind: model.KindFence,
		Device: "F-AOL-01", Stream: model.StreamDetections, Seq: seq, Time: t0}
}

func detectionBatch(seq int64, n int) *model.Batch {
	b := &model.Batch{Meta: fenceMeta(seq)}
	for i := range n {
		d := model.Detection{
			Stamp: stamp(t0, seq, i), Loc: model.Point{Lat: 41.9612, Lon: 110.4875},
			IMSI: "460001234567890", IMEI: "490154203237518", MAC: "a4:5e:60:12:34:56",
			MCC: "460", MNC: "00", Operator: "46000", Tech: "lte",
		}
		d.RSSI.V, d.RSSI.OK = -71, true
		b.Detections = append(b.Detections, d)
	}
	return b
}

func TestEncodeGolden(t *testing.T) {
	ns := func(s model.Stamp) string { return itoa(s.PointNS) }
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

	stEmpty := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindPatrol, Device: "P-07", Stream: model.StreamStatus, Seq: 78, Time: t0},
		Statuses: []model.Status{{Stamp: stamp(t0, 78, 0)}}}

	tests := []struct {
		name string
		b    *model.Batch
		want []string
	}{
		{"detections", det, []string{
			`phone_detection,device=F-AOL-01,mcc=460,operator=46000,site=mdl,tech=lte seq=18231i,imsi="460001234567890",imei="490154203237518",mac="a4:5e:60:12:34:56",rssi=-71,lat=41.9612,lon=110.4875 ` + ns(det.Detections[0].Stamp),
			`phone_detection,device=F-AOL-01,mcc=428,operator=42899,site=mdl,tech=gsm seq=18231i,imsi="428991234567890",lat=41.9612,lon=110.4875 ` + ns(det.Detections[1].Stamp),
		}},
		{"pass", pass, []string{
			`vehicle_pass,device=CP-07,direction=outbound,plate_color=blue,site=mdl,vehicle_type=K33 seq=551i,plate="蒙B12345",vehicle_color="white",speed_kmh=64.5,lane=2i,heading=355,confidence=0.97,image="https://cp-07.local/img/551.jpg",lat=42.3,lon=110.15 ` + ns(pass.Passes[0].Stamp),
		}},
		{"position", pos, []string{
			`patrol_position,device=P-07,site=mdl seq=9i,lat=42.41,lon=110.12,speed_kmh=38,heading=10,accuracy_m=6 ` + ns(pos.Positions[0].Stamp),
		}},
		{"status", st, []string{
			`device_status,device=F-AOL-01,kind=fence,site=mdl seq=77i,battery_pct=87,temp_c=-21.5,uptime_s=86400i,tamper=false,power="solar",signal_dbm=-95,queue=0i,fw="2.3.1" ` + ns(st.Statuses[0].Stamp),
		}},
		{"status without fields", stEmpty, []string{
			`device_status,device=P-07,kind=patrol,site=mdl seq=78i ` + ns(stEmpty.Statuses[0].Stamp),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Encoder
			out, n := e.AppendBatch([]byte("prefix\n"), tc.b)
			assert.Equal(t, len(tc.want), n)
			assert.Equal(t, "prefix\n"+strings.Join(tc.want, "\n")+"\n", string(out))
			assertParses(t, out[len("prefix\n"):], n)
		})
	}
}

func TestEncodeAlert(t *testing.T) {
	a := &model.Alert{ID: "a1b2", Rule: "night-phone-ruins", Severity: "high", State: model.StateFiring, Site: "mdl",
		Zone: "aolunsumu-ruins", Subject: model.Subject{Kind: "imsi", Value: "460001234567890"},
		Summary: `Phone 460001234567890 at "Aolunsumu ruins" at night`, At: t0, RaisedAt: t0.Add(time.Second),
		Location: &model.Point{Lat: 41.96, Lon: 110.486}, Count: 1}
	out, err := AppendAlert(nil, a)
	require.NoError(t, err)
	assert.Equal(t, `alert,rule=night-phone-ruins,severity=high,site=mdl,state=firing,zone=aolunsumu-ruins id="a1b2",subject="imsi:460001234567890",summary="Phone 460001234567890 at \"Aolunsumu ruins\" at night",lat=41.96,lon=110.486,count=1i,late=false `+itoa(AlertPointTime(&model.Alert{ID: "a1b2", State: model.StateFiring}, t0).UnixNano())+"\n", string(out))

	// A silence alert has no zone and no location; its resolution is late.
	b := &model.Alert{ID: "x", Rule: "unit-offline", Severity: "high", State: model.StateResolved, Site: "mdl",
		Subject: model.Subject{Kind: "device", Value: "CP-07"}, At: t0, Count: 0, Late: true}
	out, err = AppendAlert(nil, b)
	require.NoError(t, err)
	assert.Equal(t, `alert,rule=unit-offline,severity=high,site=mdl,state=resolved id="x",subject="device:CP-07",count=0i,late=true `+itoa(AlertPointTime(&model.Alert{ID: "x", State: model.StateResolved}, t0).UnixNano())+"\n", string(out))

	// A zone id with backslashes (refused in rules now, but an outbox of
	// an older fenceline may hold one) is stored without them: as sent,
	// InfluxDB 1.8 could run the line into the next (see model.TagFits).
	b.Zone = `gate\ \="A`
	out, err = AppendAlert(nil, b)
	require.NoError(t, err)
	assert.Contains(t, string(out), `,zone=gate\ \="A id=`)
	b.Zone = ""

	// No event time: RaisedAt stands in; neither: an error and no line.
	b.At = time.Time{}
	b.RaisedAt = t0.Add(time.Minute)
	out, err = AppendAlert(nil, b)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(out), " "+itoa(AlertPointTime(&model.Alert{ID: "x", State: model.StateResolved}, t0.Add(time.Minute)).UnixNano())+"\n"))
	b.RaisedAt = time.Time{}
	out, err = AppendAlert([]byte("keep\n"), b)
	require.Error(t, err)
	assert.Equal(t, "keep\n", string(out))

	// A time InfluxDB cannot store fails the line, not the process.
	b.At = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	out, err = AppendAlert(nil, b)
	assert.ErrorIs(t, err, lineprotocol.ErrValueOutOfRange)
	assert.Empty(t, out)
}

// Alerts of one series at one instant are points of their own; an alert's
// point keeps its event time to the millisecond and does not depend on
// anything but its id and state (a redelivery rewrites it).
func TestAlertPointTime(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 49, 49, 196_217_072, time.UTC)
	a := AlertPointTime(&model.Alert{ID: "a1b2", State: model.StateFiring}, at)
	require.Equal(t, at.Truncate(time.Millisecond), a.Truncate(time.Millisecond), "the event's millisecond")
	require.Equal(t, a, AlertPointTime(&model.Alert{ID: "a1b2", State: model.StateFiring}, at.Add(time.Microsecond)), "only the millisecond counts")
	require.NotEqual(t, a, AlertPointTime(&model.Alert{ID: "a1b3", State: model.StateFiring}, at))
	require.NotEqual(t, a, AlertPointTime(&model.Alert{ID: "a1b2", State: model.StateResolved}, at))
}

// An incident resolved in the millisecond it fired (a dwell whose last
// sighting completed the stay) has its resolved point after its firing
// point, whatever its id: the latest point of an incident is its state.
func TestAlertPointTimeResolvedAfterFiring(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 46, 2, 0, time.UTC)
	for i := range 2000 {
		id := fmt.Sprintf("incident-%d", i)
		f, r := AlertPointTime(&model.Alert{ID: id, State: model.StateFiring}, at), AlertPointTime(&model.Alert{ID: id, State: model.StateResolved}, at)
		require.True(t, f.Before(r), "id %s: firing %s, resolved %s", id, f.Format(time.RFC3339Nano), r.Format(time.RFC3339Nano))
		require.Equal(t, at, r.Truncate(time.Millisecond), "id %s: resolved left its millisecond", id)
	}
	// With ordinals too.
	for ord := range uint64(2000) {
		f := AlertPointTime(&model.Alert{State: model.StateFiring, Ordinal: ord + 1}, at)
		r := AlertPointTime(&model.Alert{State: model.StateResolved, Ordinal: ord + 2}, at)
		require.True(t, f.Before(r), "ordinal %d: firing %s, resolved %s", ord, f.Format(time.RFC3339Nano), r.Format(time.RFC3339Nano))
		require.Equal(t, at, r.Truncate(time.Millisecond), "ordinal %d: resolved left its millisecond", ord)
	}
}

// Alerts the outbox numbered one after another never share a point time in
// a series, however many fall in one millisecond: 500,000 of one state —
// where offsets drawn from ids would meet for hundreds of thousands. An
// alert's point depends on its ordinal only, not on its id: written again
// (after a restart, by another Writer), it is its own point again.
func TestAlertPointTimeOrdinal(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 49, 49, 196_217_072, time.UTC)
	const n = 500_000
	seen := make(map[time.Time]struct{}, n)
	for ord := range uint64(n) {
		a := &model.Alert{ID: "same-id", State: model.StateFiring, Ordinal: 1_000_000_007 + ord}
		pt := AlertPointTime(a, at)
		require.Equal(t, at.Truncate(time.Millisecond), pt.Truncate(time.Millisecond), "the event's millisecond")
		if _, dup := seen[pt]; dup {
			t.Fatalf("ordinal %d shares its point time %s", a.Ordinal, pt.Format(time.RFC3339Nano))
		}
		seen[pt] = struct{}{}
	}
	a := &model.Alert{ID: "x", State: model.StateFiring, Ordinal: 42}
	b := &model.Alert{ID: "y", State: model.StateFiring, Ordinal: 42}
	require.Equal(t, AlertPointTime(a, at), AlertPointTime(b, at))
}

func TestEncodeEscaping(t *testing.T) {
	b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: "CP-07", Seq: 1, Time: t0}}
	b.Passes = []model.Pass{
		{Stamp: stamp(t0, 1, 0), Plate: "蒙B 12,3=4\"5\\", PlateColor: "dark blue", VehicleType: "a,b=c",
			VehicleColor: "line1\nline2\ttab", Image: `C:\img\"x".jpg`, Direction: "in\nbound"},
		{Stamp: stamp(t0, 1, 1), Plate: "1598 УБА", PlateColor: "trail\\", VehicleType: "\xff\xfebad"},
		{Stamp: stamp(t0, 1, 2), Plate: model.NoPlate, PlateColor: "\\\\"},
	}
	out, n := new(Encoder).AppendBatch(nil, b)
	require.Equal(t, 3, n)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, `vehicle_pass,device=CP-07,direction=in\ bound,plate_color=dark\ blue,site=mdl,vehicle_type=a\,b\=c seq=1i,plate="蒙B 12,3=4\"5\\",vehicle_color="line1 line2 tab",image="C:\\img\\\"x\".jpg" `+itoa(b.Passes[0].PointNS), lines[0])
	assert.Equal(t, `vehicle_pass,device=CP-07,plate_color=trail,site=mdl,vehicle_type=�bad seq=1i,plate="1598 УБА" `+itoa(b.Passes[1].PointNS), lines[1])
	// A tag made only of backslashes has nothing left: omitted, not empty.
	assert.Equal(t, `vehicle_pass,device=CP-07,site=mdl seq=1i,plate="无牌" `+itoa(b.Passes[2].PointNS), lines[2])

	// The strict decoder agrees on every value.
	dec := lineprotocol.NewDecoderWithBytes(out)
	require.True(t, dec.Next())
	_, err := dec.Measurement()
	require.NoError(t, err)
	tags := map[string]string{}
	for {
		k, v, err := dec.NextTag()
		require.NoError(t, err)
		if k == nil {
			break
		}
		tags[string(k)] = string(v)
	}
	assert.Equal(t, "in bound", tags["direction"])
	assert.Equal(t, "a,b=c", tags["vehicle_type"])
	fields := map[string]any{}
	for {
		k, v, err := dec.NextField()
		require.NoError(t, err)
		if k == nil {
			break
		}
		fields[string(k)] = v.Interface()
	}
	assert.Equal(t, "蒙B 12,3=4\"5\\", fields["plate"])
	assert.Equal(t, `C:\img\"x".jpg`, fields["image"])
}

func TestEncodeOmitsAbsent(t *testing.T) {
	b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindPatrol, Device: "P-07", Seq: 3, Time: t0},
		Positions: []model.Position{{Stamp: stamp(t0, 3, 0), Loc: model.Point{Lat: 42.41, Lon: 110.12},
			SpeedKmh: model.OptFloat{V: 12}, Heading: model.Some(math.NaN()), AccuracyM: model.Some(math.Inf(1))}}}
	out := AppendBatch(nil, b)
	assert.Equal(t, `patrol_position,device=P-07,site=mdl seq=3i,lat=42.41,lon=110.12 `+itoa(b.Positions[0].PointNS)+"\n", string(out))

	// No position at all: no lat/lon rather than a point at 0,0.
	d := detectionBatch(4, 1)
	d.Detections[0].Loc = model.Point{}
	d.Detections[0].RSSI.OK = false
	d.Detections[0].IMEI, d.Detections[0].MAC, d.Detections[0].Tech = "", "", ""
	out = AppendBatch(nil, d)
	assert.Equal(t, `phone_detection,device=F-AOL-01,mcc=460,operator=46000,site=mdl seq=4i,imsi="460001234567890" `+itoa(d.Detections[0].PointNS)+"\n", string(out))
}

// Fifty phones in one millisecond are fifty distinct timestamps.
func TestEncodeDistinctTimes(t *testing.T) {
	b := detectionBatch(7, 50)
	out, n := new(Encoder).AppendBatch(nil, b)
	require.Equal(t, 50, n)
	seen := map[int64]bool{}
	dec := lineprotocol.NewDecoderWithBytes(out)
	for dec.Next() {
		for {
			k, _, err := dec.NextField()
			require.NoError(t, err)
			if k == nil {
				break
			}
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		require.NoError(t, err)
		assert.Equal(t, t0.UnixMilli(), ts.UnixMilli())
		seen[ts.UnixNano()] = true
	}
	assert.Len(t, seen, 50)
}

func assertParses(t *testing.T, out []byte, n int) {
	t.Helper()
	dec := lineprotocol.NewDecoderWithBytes(out)
	lines := 0
	for dec.Next() {
		lines++
		_, err := dec.Measurement()
		require.NoError(t, err)
		for {
			k, _, err := dec.NextTag()
			require.NoError(t, err)
			if k == nil {
				break
			}
		}
		for {
			k, _, err := dec.NextField()
			require.NoError(t, err)
			if k == nil {
				break
			}
		}
		_, err = dec.Time(lineprotocol.Nanosecond, time.Time{})
		require.NoError(t, err)
	}
	assert.Equal(t, n, lines)
}

func itoa(v int64) string {
	return lineprotocol.IntValue(v).String()[:len(lineprotocol.IntValue(v).String())-1]
}

// realisticDetections is a message of 20 phones as a fence unit near the
// border sees them: Chinese and Mongolian operators, LTE, GSM and NR, some
// phones without IMEI or MAC.
func realisticDetections(seq int64) *model.Batch {
	ops := []struct{ mcc, mnc, tech string }{{"460", "00", "lte"}, {"460", "01", "lte"}, {"460", "11", "nr"},
		{"428", "99", "gsm"}, {"460", "00", "gsm"}, {"428", "88", "lte"}}
	b := &model.Batch{Meta: fenceMeta(seq)}
	for i := range 20 {
		o := ops[i*7%len(ops)]
		d := model.Detection{
			Stamp: stamp(t0, seq, i), Loc: model.Point{Lat: 41.9612, Lon: 110.4875},
			IMSI: o.mcc + o.mnc + fmt.Sprintf("%010d", 1234567890+i*7919), MCC: o.mcc, MNC: o.mnc, Operator: o.mcc + o.mnc, Tech: o.tech,
		}
		if i%3 != 0 {
			d.IMEI = fmt.Sprintf("49015420%07d", 3237518+i)
			d.MAC = fmt.Sprintf("a4:5e:60:12:%02x:%02x", i, 255-i)
		}
		d.RSSI.V, d.RSSI.OK = -50-float64(i%40)*1, true
		if i%4 == 0 {
			d.RSSI.V = -71.5 // some units report half-dB steps
		}
		b.Detections = append(b.Detections, d)
	}
	return b
}

// realisticPasses is 20 messages of a day's traffic at 6 checkpoints: one to
// three vehicles each, Chinese and Mongolian plates, some unread, speeds
// with a decimal, confidence in hundredths.
func realisticPasses(seq int64) []*model.Batch {
	plates := []string{"蒙B12345", "蒙BD12345", "1598 УБА", model.NoPlate, "蒙A7K3Q2", "京N88888"}
	colors := []string{"blue", "yellow", "green", "white"}
	types := []string{"K33", "H11", "K11", "M21"}
	dirs := []string{"inbound", "outbound", "unknown"}
	var bs []*model.Batch
	for m := range 20 {
		s := seq + int64(m)
		cp := fmt.Sprintf("CP-%02d", m%6+1)
		b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindCheckpoint, Device: cp,
			Stream: model.StreamPasses, Seq: s, Time: t0.Add(time.Duration(m) * 1237 * time.Millisecond)}}
		for i := range m%3 + 1 {
			k := m*3 + i
			b.Passes = append(b.Passes, model.Pass{Stamp: stamp(b.Time, s, i),
				Loc:   model.Point{Lat: float64(4230+m%6) / 100, Lon: float64(110150-m%6) / 1000},
				Plate: plates[k%len(plates)], PlateColor: colors[k%len(colors)], VehicleType: types[k%len(types)],
				VehicleColor: colors[(k+1)%len(colors)], Direction: dirs[k%len(dirs)],
				Image:    fmt.Sprintf("https://%s.local/img/%d-%d.jpg", strings.ToLower(cp), s, i),
				SpeedKmh: model.Some(40 + float64(k%70)/2), Lane: model.SomeInt(int64(k%3 + 1)),
				Heading: model.Some(float64(k * 37 % 360)), Confidence: model.Some(float64(80+k%20) / 100)})
		}
		bs = append(bs, b)
	}
	return bs
}

// realisticPositions is one fix from each of 16 patrol teams: every message
// has its own position, with the five or six decimals of a GPS receiver.
func realisticPositions(seq int64) []*model.Batch {
	var bs []*model.Batch
	for m := range 16 {
		b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: model.KindPatrol, Device: fmt.Sprintf("P-%02d", m+1),
			Stream: model.StreamPosition, Seq: seq + int64(m), Time: t0.Add(time.Duration(m) * 3011 * time.Millisecond)}}
		b.Positions = []model.Position{{Stamp: stamp(b.Time, b.Seq, 0),
			Loc:      model.Point{Lat: float64(42410000+m*7919%100000) / 1e6, Lon: float64(110120000-m*104729%100000) / 1e6},
			SpeedKmh: model.Some(float64(m*13%90) + float64(m%4)/4), Heading: model.Some(float64(m * 23 % 360)),
			AccuracyM: model.Some(float64(3 + m%8))}}
		bs = append(bs, b)
	}
	return bs
}

// realisticStatuses is one health report from each of 20 devices of every
// kind, some without temperature or tamper switch.
func realisticStatuses(seq int64) []*model.Batch {
	kinds := []model.Kind{model.KindFence, model.KindCheckpoint, model.KindPatrol}
	power := []string{"solar", "mains", "battery"}
	var bs []*model.Batch
	for m := range 20 {
		k := kinds[m%len(kinds)]
		b := &model.Batch{Meta: model.Meta{Site: "mdl", Kind: k, Device: fmt.Sprintf("%s-%02d", strings.ToUpper(string(k[:1])), m),
			Stream: model.StreamStatus, Seq: seq + int64(m), Time: t0.Add(time.Duration(m) * 2003 * time.Millisecond)}}
		st := model.Status{Stamp: stamp(b.Time, b.Seq, 0), BatteryPct: model.Some(float64(100 - m*3)),
			UptimeS: model.SomeInt(86400 + int64(m)*977), Power: power[m%len(power)],
			SignalDbm: model.Some(float64(-60 - m*2)), Queue: model.SomeInt(int64(m % 4)), FW: "2.3." + strconv.Itoa(m%3)}
		if m%4 != 3 {
			st.TempC = model.Some(-21.5 + float64(m)/2)
			st.Tamper = model.SomeBool(m == 5)
		}
		b.Statuses = []model.Status{st}
		bs = append(bs, b)
	}
	return bs
}

func BenchmarkEncodeDetections(b *testing.B) {
	benchEncode(b, []*model.Batch{realisticDetections(18231)})
}

// BenchmarkEncodeDetectionsReadingTimes is the same message with a time of
// its own for every reading, a millisecond apart, as units that time their
// detections send.
func BenchmarkEncodeDetectionsReadingTimes(b *testing.B) {
	batch := realisticDetections(18231)
	for i := range batch.Detections {
		batch.Detections[i].Stamp = stamp(t0.Add(time.Duration(i-19)*time.Millisecond), 18231, i)
	}
	benchEncode(b, []*model.Batch{batch})
}

func BenchmarkEncodePasses(b *testing.B)    { benchEncode(b, realisticPasses(551)) }
func BenchmarkEncodePositions(b *testing.B) { benchEncode(b, realisticPositions(9)) }
func BenchmarkEncodeStatuses(b *testing.B)  { benchEncode(b, realisticStatuses(77)) }

// benchEncode encodes the batches, one after the other into one buffer, in
// every iteration.
func benchEncode(b *testing.B, batches []*model.Batch) {
	var e Encoder
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	lines := 0
	for b.Loop() {
		buf = buf[:0]
		for _, batch := range batches {
			var n int
			buf, n = e.AppendBatch(buf, batch)
			lines += n
		}
	}
	cpu1, _ := threadCPU()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(lines), "ns/line")
	if cpuOK {
		// On a shared machine, the figure to compare with the target.
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(lines), "cpu-ns/line")
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodeDetectionsLineprotocol is the same batch through
// lineprotocol.Encoder (strict), for comparison.
func BenchmarkEncodeDetectionsLineprotocol(b *testing.B) {
	batch := realisticDetections(18231)
	b.ReportAllocs()
	lines := 0
	for b.Loop() {
		refEncode(b, batch)
		lines += batch.Len()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(lines), "ns/line")
}
