package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// InfluxDB goes away: the daemon spools the readings (fsynced) and acks
// their messages, so the broker is relieved; it stays ready (it can store:
// in the spool, within its bound), survives a restart of its own with the
// spool full of batches, and once InfluxDB is back the spool drains into it:
// every reading exactly once.
func TestIntegrationInfluxOutage(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	const perMessage = 3
	pub := func(seq int) {
		e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(
			`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4600012345%05d"},{"imsi":"4600112345%05d"},{"mac":"a4:5e:60:12:34:%02x"}]}`,
			seq, ts+int64(seq), seq, seq, seq%256))
		e.publish("border/mdl/checkpoint/CP-09/passes", fmt.Sprintf(
			`{"v":1,"seq":%d,"ts":%d,"passes":[{"plate":"蒙B%05d"}]}`, seq, ts+int64(seq), seq))
	}
	pub(1)
	e.waitAcked(2)
	code, _ := e.get("/readyz")
	require.Equal(t, 200, code)

	require.NoError(t, e.influx.Stop())
	for i := 2; i <= 40; i++ {
		pub(i)
	}
	// Acked while InfluxDB is down: the readings are in the spool.
	e.waitAcked(80)
	require.Positive(t, e.gauge("fenceline_spool_records"))
	require.Positive(t, e.counter("fenceline_spool_appended_records_total", nil))
	require.Positive(t, e.gauge("fenceline_spool_bytes"))
	require.Zero(t, e.gauge("fenceline_spool_full"))
	code, body := e.get("/readyz")
	require.Equal(t, 200, code, "ready while spooling within bounds: %s", body)

	// The daemon restarts while InfluxDB is still down: the spool stays.
	e.stop()
	e.start()
	require.Positive(t, e.gauge("fenceline_spool_records"), "the spool survived the restart")
	for i := 41; i <= 50; i++ {
		pub(i)
	}
	e.waitAcked(20)
	code, body = e.get("/readyz")
	require.Equal(t, 200, code, "ready while spooling within bounds: %s", body)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, e.influx.Restart(ctx))
	e.waitFor("spool drained", func() bool {
		return e.gauge("fenceline_spool_records") == 0 && e.gauge("fenceline_spool_bytes") == 0
	})
	require.Positive(t, e.counter("fenceline_spool_replayed_records_total", nil))
	require.Equal(t, 50*perMessage, e.count("phone_detection"), "every detection stored once")
	require.Equal(t, 50, e.count("vehicle_pass"), "every pass stored once")
	// And the right ones: each (device, seq, reading index) once, read
	// back from the point times.
	for _, m := range []struct {
		measurement, device string
		per                 int
	}{{"phone_detection", "F-AOL-01", perMessage}, {"vehicle_pass", "CP-09", 1}} {
		seen := map[[2]int64]int{}
		for _, r := range e.rows("SELECT device, seq FROM " + m.measurement) {
			require.Equal(t, m.device, r["device"])
			seq, err := r["seq"].(json.Number).Int64()
			require.NoError(t, err)
			ns, err := r["time"].(json.Number).Int64()
			require.NoError(t, err)
			seen[[2]int64{seq, int64(model.ReadingIndex(ns, seq))}]++
		}
		for seq := 1; seq <= 50; seq++ {
			for idx := range m.per {
				require.Equal(t, 1, seen[[2]int64{int64(seq), int64(idx)}], "%s seq %d reading %d", m.measurement, seq, idx)
			}
		}
		require.Len(t, seen, 50*m.per, m.measurement)
	}
	e.waitFor("ready", func() bool {
		code, _ := e.get("/readyz")
		return code == 200
	})
	require.Greater(t, e.counter("fenceline_influx_write_errors_total", map[string]string{"class": "network"}), 0.0)
}

// A spooled line InfluxDB refuses for good on replay is dead-lettered with
// the topic of its message and its reading's index (read back from the
// line: the message was acked when spooled), and counted with the other
// rejections.
func TestIntegrationReplayRefusedLineNamed(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ts := time.Now().Add(-time.Minute)
	// Someone wrote lane as a string into this shard before.
	require.NoError(t, e.influx.Write(ctx, fmt.Sprintf(`vehicle_pass,device=OLD,site=mdl lane="two" %d`, ts.Add(-time.Second).UnixNano())))
	require.NoError(t, e.influx.Stop())
	e.publish("border/mdl/checkpoint/CP-09/passes", fmt.Sprintf(
		`{"v":1,"seq":60,"ts":%d,"passes":[{"plate":"蒙B60001"},{"plate":"蒙B60002","lane":2}]}`, ts.UnixMilli()))
	e.waitAcked(1) // spooled
	require.NoError(t, e.influx.Restart(ctx))
	e.waitFor("spool drained", func() bool { return e.gauge("fenceline_spool_records") == 0 })
	e.waitFor("the refused line dead-lettered", func() bool { return len(e.deadLetters()) == 1 })
	dl := e.deadLetters()[0]
	require.Equal(t, "storage_rejected", dl.Reason)
	require.Equal(t, "border/mdl/checkpoint/CP-09/passes", dl.Topic)
	require.Equal(t, 1, dl.Index)
	require.Contains(t, dl.Detail, "field type conflict")
	require.Equal(t, 1.0, e.counter("fenceline_ingest_rejections_total", map[string]string{"reason": "storage_rejected"}))
	require.Equal(t, 1+1, e.count("vehicle_pass"), "the other pass is stored")
}

// An alert's line refused on replay (a type conflict in the alert
// measurement) is counted as dropped for the influx sink, as any alert a
// sink refuses for good.
func TestIntegrationReplayRefusedAlertCounted(t *testing.T) {
	e := newEnv(t, "rules.yaml", "") // no silence rule: the one alert is the tamper's
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ts := time.Now().Add(-time.Minute)
	// count written as a string into this shard before.
	require.NoError(t, e.influx.Write(ctx, fmt.Sprintf(`alert,rule=zz count="x" %d`, ts.Add(-time.Second).UnixNano())))
	require.NoError(t, e.influx.Stop())
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, ts.UnixMilli()))
	e.waitAcked(1)
	e.waitFor("the alert spooled", func() bool {
		return e.counter("fenceline_alerts_delivered_total", map[string]string{"sink": "influx"}) >= 1
	})
	require.NoError(t, e.influx.Restart(ctx))
	e.waitFor("refused on replay", func() bool { return e.counter("fenceline_influx_replay_rejected_lines_total", nil) >= 1 })
	e.waitFor("counted as dropped", func() bool {
		return e.counter("fenceline_alerts_dropped_total", map[string]string{"sink": "influx"}) == 1
	})
	require.Equal(t, 1.0, e.counter("fenceline_alerts_raised_total", map[string]string{"rule": "unit-tamper", "state": "firing"}))
}
