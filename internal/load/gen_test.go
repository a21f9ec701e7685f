package load

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/internal/model"
)

// compileWorld writes w's rules and compiles them as the daemon would.
func compileWorld(t testing.TB, w *World) *engine.Ruleset {
	t.Helper()
	path, err := w.WriteRules(t.TempDir())
	require.NoError(t, err)
	r, err := config.LoadRules(path)
	require.NoError(t, err)
	rs, ps := engine.Compile(r, engine.Options{})
	require.Empty(t, ps)
	return rs
}

func TestGeneratedWorldCompiles(t *testing.T) {
	spec := DefaultWorld()
	w, err := GenerateWorld(spec)
	require.NoError(t, err)
	rs := compileWorld(t, w)
	require.Len(t, rs.Rules, RuleCount)
	require.Equal(t, spec.Fences+spec.Checkpoints+spec.Patrols, rs.Registry.Len())
	require.True(t, w.Alerting)

	again, err := GenerateWorld(spec)
	require.NoError(t, err)
	require.Equal(t, w.rules, again.rules, "the same spec gives the same world")

	path, err := w.WriteRules(t.TempDir())
	require.NoError(t, err)
	read, err := WorldFromRules(path)
	require.NoError(t, err)
	require.Equal(t, w.Fences, read.Fences)
	require.Equal(t, w.Checkpoints, read.Checkpoints)
	require.Len(t, read.Patrols, spec.Patrols)
	require.True(t, read.Alerting)
}

// TestGeneratedMessages holds every generated message to what it claims:
// the decoder stores and rejects exactly the readings the message says, and
// the engine raises exactly its alerts — so that the load tool's accounting
// is measured against the truth and not against its own assumptions.
func TestGeneratedMessages(t *testing.T) {
	w, err := GenerateWorld(DefaultWorld())
	require.NoError(t, err)
	rs := compileWorld(t, w)
	eng := engine.New(rs, engine.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())

	for _, tc := range []struct {
		name string
		t    Traffic
	}{
		{"detections", Traffic{Mix: Mix{Detections: 1}, DetectionBatch: 20}},
		{"mixed", Traffic{Mix: Mix{Detections: 6, Passes: 2, Positions: 1, Statuses: 1}, DetectionBatch: 20, PassBatch: 5,
			ReadingTS: 0.5, InvalidShare: 0.2, AlertShare: 0.05, SeqStart: 1_000_000_000_000, Seed: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGenerator(w, tc.t)
			require.NoError(t, err)
			dec := decode.New(decode.Options{})
			var b model.Batch
			seen := map[string]bool{}
			lastSeq := map[string]int64{}
			now := time.Now()
			for i := range 2000 {
				now = now.Add(time.Millisecond)
				m := g.Next(now)
				rejects := dec.Decode(m.Topic, m.Payload, now, rs.Registry, &b)
				require.Equal(t, m.Stored, b.Len(), "message %d %s: %s", i, m.Defect, m.Payload)
				require.Len(t, rejects, m.Rejections, "message %d %s: %v", i, m.Defect, rejects)
				if m.Bad >= 0 {
					require.Equal(t, m.Bad, rejects[0].Index)
				}
				if m.Keyed {
					require.Equal(t, m.Device, b.Device.ID)
					require.Equal(t, m.Seq, b.Seq)
					if last, ok := lastSeq[m.Device]; ok {
						require.Equal(t, last+1, m.Seq, "seq increases by one per message")
					}
					lastSeq[m.Device] = m.Seq
				}
				if m.Defect != "" {
					seen[m.Defect] = true
				}
				alerts := eng.Evaluate(&b, now)
				require.Len(t, alerts, m.Alerts, "message %d: %+v", i, alerts)
				for _, a := range alerts {
					require.Contains(t, []string{RuleForeignSIM, RuleSpeeding}, a.Rule)
					require.Equal(t, m.Device, a.Evidence[0].Device)
					require.Equal(t, m.Seq, a.Evidence[0].Seq)
				}
			}
			if tc.t.InvalidShare > 0 {
				require.Len(t, seen, len(defects), "every defect appears")
			}
		})
	}
}

func TestIMEIsPassLuhn(t *testing.T) {
	for n := range uint64(1000) {
		b := imei(35, n*7919)
		require.Len(t, b, 15)
		sum := 0
		for i := range b {
			d := int(b[len(b)-1-i] - '0')
			if i%2 == 1 {
				if d *= 2; d > 9 {
					d -= 9
				}
			}
			sum += d
		}
		require.Zero(t, sum%10, "%s", b)
	}
}

// Two runs against one daemon, started a minute apart, raise alerts about
// different subjects: a subject repeated within a rule's cooldown is
// (rightly) not alerted on again, and the second run reported its alerts
// missing. One engine evaluates both runs, as one daemon would.
func TestAlertSubjectsOfRunsApart(t *testing.T) {
	w, err := GenerateWorld(DefaultWorld())
	require.NoError(t, err)
	rs := compileWorld(t, w)
	for _, tc := range []struct {
		name string
		mix  Mix
		rule string
	}{
		{"imsis", Mix{Detections: 1}, RuleForeignSIM},
		{"plates", Mix{Passes: 1}, RuleSpeeding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := engine.New(rs, engine.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			run := map[string]int{} // subject → the run that raised an alert about it
			first := time.Now()
			for r, start := range []time.Time{first, first.Add(time.Minute)} {
				g, err := NewGenerator(w, Traffic{Mix: tc.mix, DetectionBatch: 20, PassBatch: 5, AlertShare: 0.05,
					SeqStart: start.Unix() * 1000, AlertSubjectStart: uint64(start.UnixMilli())})
				require.NoError(t, err)
				dec := decode.New(decode.Options{})
				var b model.Batch
				expected := 0
				for i := range 200 {
					now := start.Add(time.Duration(i) * time.Millisecond)
					m := g.Next(now)
					require.Empty(t, dec.Decode(m.Topic, m.Payload, now, rs.Registry, &b), "valid readings: %s", m.Payload)
					alerts := eng.Evaluate(&b, now)
					require.Len(t, alerts, m.Alerts, "run %d, message %d: %s", r, i, m.Payload)
					for _, a := range alerts {
						require.Equal(t, tc.rule, a.Rule)
						prev, seen := run[a.Subject.Value]
						require.False(t, seen, "run %d repeats subject %s of run %d", r, a.Subject.Value, prev)
						run[a.Subject.Value] = r
					}
					expected += m.Alerts
				}
				require.Positive(t, expected)
			}
		})
	}
}
