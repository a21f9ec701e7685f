package deploy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/sim"
)

// trafficSpan is how far back the published traffic reaches: several hours, so that the
// dashboards' GROUP BY time($__interval) and the hourly continuous queries see several buckets.
const trafficSpan = 3 * time.Hour

// trafficTamperDevice sends the one reading the simulator never does: a status with the tamper
// switch open, which the operations dashboard's tamper panel needs.
const trafficTamperDevice = "F-EPH-01"

// publishTraffic fills the stack the way a real deployment would: the simulator's example
// scenario (config/examples/scenario.yaml: the seed deployment's ordinary traffic and its
// scripted incidents) over the last trafficSpan, published as fast as the broker takes it,
// plus a tampered unit's status and a message with one bad reading (dead-lettered, the good
// one kept). It waits until the daemon has acknowledged every message and the alerts of every
// incident that readings raise (the silence rule's need time to pass) are in InfluxDB, and
// returns how many messages it published.
func (s *daemonStack) publishTraffic() int {
	t := s.t
	t.Helper()
	sc, err := sim.LoadScenario(repoPath(t, "config", "examples", "scenario.yaml"))
	require.NoError(t, err)
	now := time.Now()
	start := now.Add(-trafficSpan).Truncate(time.Minute)
	d := now.Add(-2 * time.Minute).Sub(start)
	require.NoError(t, sim.CheckClock(start, d, sim.SpeedMax, now))
	run, err := sim.New(sc, sim.Options{Start: start, Duration: d})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	began := time.Now()
	n, err := sim.Publish(ctx, s.pub, run, sim.PublishOptions{Speed: sim.SpeedMax, Window: 256})
	require.NoError(t, err)
	t.Logf("simulator: %d messages over %s of scenario in %s", n, d.Round(time.Minute), time.Since(began).Round(time.Millisecond))

	// Seqs far above the simulator's (minutes since 2025 × 10): a jump forward, as after a
	// unit's lost messages, never a duplicate of a simulated message.
	const seq = 1 << 40
	at := now.Add(-time.Minute).UnixMilli()
	s.publish("border/bjm/fence/"+trafficTamperDevice+"/status",
		fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"battery_pct":64,"temp_c":-23.5,"tamper":true,"power":"solar","signal_dbm":-97,"queue":2,"fw":"2.3.1"}`, seq, at))
	s.publish("border/mdl/fence/F-AOL-01/detections",
		fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001234567890","rssi":-80},{"imsi":"46000x","rssi":-80}]}`, seq, at))
	n += 2

	want := s.readingAlertRules(run.Incidents())
	s.waitFor(fmt.Sprintf("%d messages acked", n), func() bool { return s.sum("fenceline_ingest_ack_latency_seconds") >= float64(n) })
	s.waitFor("alerts of "+strings.Join(want, ", ")+" stored", func() bool {
		qctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		series, err := s.influx.Query(qctx, `SELECT count("count") FROM "alert" GROUP BY "rule"`)
		require.NoError(t, err)
		have := map[string]bool{}
		for _, sr := range series {
			have[sr.Tags["rule"]] = true
		}
		for _, r := range want {
			if !have[r] {
				return false
			}
		}
		return true
	})
	return n
}

// readingAlertRules lists the rules the incidents must fire, and unit-tamper for the tampered
// status, less the silence rules: those fire on the passing of processing time after a unit's
// last message, which an accelerated run does not wait for.
func (s *daemonStack) readingAlertRules(incidents []*sim.Incident) []string {
	rules, err := config.LoadRules(repoPath(s.t, "config", "examples", "rules.yaml"))
	require.NoError(s.t, err)
	silence := map[string]bool{}
	for _, r := range rules.Rules {
		if r.Kind == "silence" {
			silence[r.ID] = true
		}
	}
	want := []string{"unit-tamper"}
	for _, inc := range incidents {
		for _, r := range inc.Rules {
			if !silence[r] && !slices.Contains(want, r) {
				want = append(want, r)
			}
		}
	}
	sort.Strings(want)
	require.Greater(s.t, len(want), 3, "the scenario's incidents fire the example rules")
	return want
}
