package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// profile sizes a run: how fast it publishes, how many messages each step
// of a fault lasts, how often each fault comes.
type profile struct {
	rate          float64 // messages per second
	step          int     // messages published between the steps of a fault
	kills         int     // rounds of fenceline kill -9
	influxRounds  int     // rounds of InfluxDB restarts
	brokerRounds  int     // rounds of mosquitto restarts
	settle        time.Duration
	noPersistence bool // also run the broker-without-persistence case
}

var (
	short = profile{rate: 150, step: 120, kills: 2, influxRounds: 1, brokerRounds: 1, settle: 60 * time.Second}
	long  = profile{rate: 400, step: 2000, kills: 6, influxRounds: 3, brokerRounds: 3, settle: 5 * time.Minute, noPersistence: true}
)

// TestIntegrationChaosShort runs every fault once or twice against the real
// services with fenceline as a process (make test). make chaos runs the
// long profile (FENCELINE_CHAOS=long) with more of everything.
func TestIntegrationChaosShort(t *testing.T) {
	runChaos(t, short, "short")
}

// TestIntegrationChaosLong is the long profile; it runs only with
// FENCELINE_CHAOS=long (make chaos), since it takes many minutes.
func TestIntegrationChaosLong(t *testing.T) {
	if !longProfile() {
		t.Skip("long fault-injection profile: run `make chaos` (FENCELINE_CHAOS=long)")
	}
	runChaos(t, long, "long")
}

func runChaos(t *testing.T, p profile, name string) {
	e := newEnv(t, true, "")
	faults := []fault{{name: "none (baseline)", run: func(e *env) { e.waitPublished(p.step) }}}
	for i := range p.influxRounds {
		faults = append(faults, fault{name: fmt.Sprintf("influxdb restart #%d", i+1), run: influxRestart(p)})
	}
	for i := range p.brokerRounds {
		faults = append(faults, fault{name: fmt.Sprintf("mosquitto restart (persistence) #%d", i+1), run: brokerRestart(p)})
	}
	for i := range p.kills {
		faults = append(faults, fault{name: fmt.Sprintf("fenceline kill -9 #%d", i+1), run: kill(p)})
	}
	faults = append(faults,
		fault{name: "fenceline kill -9 while spooling", run: killWhileSpooling(p)},
		fault{name: "fenceline kill -9 while replaying", run: killWhileReplaying(p)},
		fault{name: "all at once", run: allAtOnce(p)},
	)
	rows, o := e.runPhases(p.rate, faults, p.settle)
	stopErr := e.daemon.Stop(30 * time.Second)
	_, bad := e.sub.Received()
	report(t, fmt.Sprintf("fault-injection suite, %s profile (%.0f msgs/s, %d messages a step; fenceline as a process, mosquitto with persistence)", name, p.rate, p.step), rows,
		fmt.Sprintf("publisher retries: %d; dead letters kept more than once (redelivered after a kill): %d; unexpected points: %d; non-alert messages on alert topics: %d",
			e.pub.Retries(), rows[len(rows)-1].DLCopies, o.Unexpected, bad))
	require.NoError(t, stopErr, "SIGTERM: drain and exit 0")
	for _, r := range rows {
		require.True(t, r.Clean(), "phase %q: lost or duplicated: %+v\n%v", r.Phase, r, Missing(e.plan.Messages(), o, 20))
	}
	require.Zero(t, bad)

	if p.noPersistence {
		t.Run("broker without persistence", func(t *testing.T) { runNoPersistence(t, p) })
	}
}

// influxRestart stops InfluxDB until fenceline has spooled, and starts it
// again; the phase ends once the spool has drained.
func influxRestart(p profile) func(*env) {
	return func(e *env) {
		e.waitPublished(p.step / 2)
		require.NoError(e.t, e.influx.Stop())
		e.waitMetric("fenceline spooling", "fenceline_spool_records", time.Minute, func(v float64) bool { return v > 0 })
		code, body, err := e.daemon.Ready(e.within(5 * time.Second))
		require.NoError(e.t, err)
		require.Equal(e.t, 200, code, "ready while spooling within bounds: %s", body)
		e.waitPublished(p.step)
		require.NoError(e.t, e.influx.Restart(e.within(time.Minute)))
		e.waitMetric("spool drained", "fenceline_spool_records", time.Minute, func(v float64) bool { return v == 0 })
		e.waitPublished(p.step / 2)
	}
}

// brokerRestart restarts mosquitto (SIGTERM: it saves its sessions and
// queues) while both sides publish and subscribe.
func brokerRestart(p profile) func(*env) {
	return func(e *env) {
		e.waitPublished(p.step / 2)
		require.NoError(e.t, e.mq.Restart(e.within(time.Minute)))
		e.waitMetric("fenceline subscribed again", "fenceline_mqtt_subscribed", time.Minute, func(v float64) bool { return v == 1 })
		e.waitPublished(p.step)
	}
}

// kill kills fenceline with SIGKILL; the broker holds what comes meanwhile
// for its persistent session, and redelivers what it had not acked.
func kill(p profile) func(*env) {
	return func(e *env) {
		e.waitPublished(p.step / 2)
		e.daemon.Kill()
		e.waitPublished(p.step / 2)
		require.NoError(e.t, e.daemon.Start(e.within(time.Minute)))
		e.waitPublished(p.step / 2)
	}
}

// killWhileSpooling kills fenceline while InfluxDB is down and the spool
// holds batches whose messages were acked: they must survive in the spool.
func killWhileSpooling(p profile) func(*env) {
	return func(e *env) {
		e.waitPublished(p.step / 2)
		require.NoError(e.t, e.influx.Stop())
		e.waitMetric("fenceline spooling", "fenceline_spool_records", time.Minute, func(v float64) bool { return v > 0 })
		e.waitPublished(p.step / 2)
		e.daemon.Kill()
		e.waitPublished(p.step / 4)
		require.NoError(e.t, e.daemon.Start(e.within(time.Minute)))
		e.waitMetric("spool kept across the kill", "fenceline_spool_records", time.Minute, func(v float64) bool { return v > 0 })
		e.waitPublished(p.step / 2)
		require.NoError(e.t, e.influx.Restart(e.within(time.Minute)))
		e.waitMetric("spool drained", "fenceline_spool_records", time.Minute, func(v float64) bool { return v == 0 })
		e.waitPublished(p.step / 4)
	}
}

// killWhileReplaying kills fenceline as soon as it has replayed part of a
// spool: the rest is replayed after the restart (some records maybe twice,
// which writes the same points).
func killWhileReplaying(p profile) func(*env) {
	return func(e *env) {
		require.NoError(e.t, e.influx.Stop())
		e.waitMetric("fenceline spooling", "fenceline_spool_records", time.Minute, func(v float64) bool { return v > 0 })
		e.waitPublished(p.step)
		require.NoError(e.t, e.influx.Restart(e.within(time.Minute)))
		e.waitMetric("replay under way", "fenceline_spool_replayed_records_total", time.Minute, func(v float64) bool { return v > 0 })
		e.daemon.Kill()
		e.waitPublished(p.step / 4)
		require.NoError(e.t, e.daemon.Start(e.within(time.Minute)))
		e.waitMetric("spool drained", "fenceline_spool_records", time.Minute, func(v float64) bool { return v == 0 })
		e.waitPublished(p.step / 4)
	}
}

// allAtOnce: InfluxDB down, fenceline killed, the broker restarted while
// fenceline is away, then everything back in the reverse order.
func allAtOnce(p profile) func(*env) {
	return func(e *env) {
		require.NoError(e.t, e.influx.Stop())
		e.waitPublished(p.step / 2)
		e.daemon.Kill()
		e.waitPublished(p.step / 4)
		require.NoError(e.t, e.mq.Restart(e.within(time.Minute)))
		e.waitPublished(p.step / 4)
		require.NoError(e.t, e.daemon.Start(e.within(time.Minute)))
		e.waitPublished(p.step / 4)
		require.NoError(e.t, e.influx.Restart(e.within(time.Minute)))
		e.waitMetric("spool drained", "fenceline_spool_records", time.Minute, func(v float64) bool { return v == 0 })
		e.waitPublished(p.step / 4)
	}
}

// runNoPersistence documents the broker restart without persistence: what
// the broker held for fenceline's session (published while fenceline was
// away) is gone with the broker's memory — by design of a broker without
// persistence — while everything fenceline had acked before is stored, and
// everything after the restart is ingested again.
func runNoPersistence(t *testing.T, p profile) {
	e := newEnv(t, false, "")
	faults := []fault{
		{name: "before: all stored by fenceline", run: func(e *env) {
			e.waitPublished(p.step)
			// What is published from now on is the next phase's; this
			// phase's messages are all made durable before the kill.
			e.plan.SetPhase(1)
			e.waitSettled(0, time.Minute)
		}},
		{name: "held by the broker only (lost by design)", run: func(e *env) {
			e.daemon.Kill()
			e.waitPublished(p.step)
			require.NoError(e.t, e.mq.Restart(e.within(time.Minute)))
			// Until fenceline subscribes again nobody holds what is
			// published: the broker forgot the session.
			require.NoError(e.t, e.daemon.Start(e.within(time.Minute)))
		}},
		{name: "after the broker restart", run: func(e *env) { e.waitPublished(p.step) }},
	}
	rows, o := e.runPhases(p.rate, faults, 30*time.Second)
	require.NoError(t, e.daemon.Stop(30*time.Second))
	report(t, "mosquitto restart WITHOUT persistence (documented loss: what the broker held for fenceline's session while it was away)", rows)
	require.True(t, rows[0].Clean(), "everything fenceline had taken is stored: %+v", rows[0])
	require.True(t, rows[2].Clean(), "ingestion resumes after the restart: %+v", rows[2])
	require.Zero(t, rows[len(rows)-1].Dup, "nothing stored twice")
	require.Zero(t, o.Unexpected)
}
