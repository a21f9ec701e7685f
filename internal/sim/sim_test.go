package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/internal/daemon"
	"github.com/fenceline/fenceline/internal/model"
)

const examples = "../../config/examples"

var shanghai = mustLocation("Asia/Shanghai")

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// nightStart is the start of the runs the tests replay: a winter evening
// safely in the past (the daemon refuses readings from the future).
var nightStart = time.Date(2025, 11, 26, 21, 0, 0, 0, shanghai)

func loadExample(t testing.TB) *Scenario {
	t.Helper()
	sc, err := LoadScenario(filepath.Join(examples, "scenario.yaml"))
	require.NoError(t, err)
	return sc
}

// exampleRuleset compiles the example rules as the daemon does.
func exampleRuleset(t testing.TB) *engine.Ruleset {
	t.Helper()
	cfg, err := config.Load(filepath.Join(examples, "fenceline.yaml"))
	require.NoError(t, err)
	rs, err := daemon.LoadRules(cfg)
	require.NoError(t, err)
	return rs
}

func newRun(t testing.TB, sc *Scenario, seed uint64, start time.Time, d time.Duration) *Sim {
	t.Helper()
	s, err := New(sc, Options{Seed: seed, Start: start, Duration: d})
	require.NoError(t, err)
	return s
}

// digest hashes a run's whole message sequence: times, topics, payloads and
// incident starts.
func digest(s *Sim) (string, int) {
	h := sha256.New()
	n := 0
	var b [8]byte
	for m := range s.All() {
		binary.BigEndian.PutUint64(b[:], uint64(m.Time.UnixNano()))
		h.Write(b[:])
		if m.Incident != nil {
			h.Write([]byte("incident " + m.Incident.ID))
		}
		h.Write([]byte(m.Topic))
		h.Write([]byte{0})
		h.Write(m.Payload)
		h.Write([]byte{0})
		n++
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func TestRunIsDeterministic(t *testing.T) {
	sc := loadExample(t)
	want, n := digest(newRun(t, sc, 42, nightStart, 6*time.Hour))
	require.Greater(t, n, 5000)
	// Repeated runs in one process see Go's map iteration in other orders:
	// none of it may reach the output.
	for i := range 3 {
		got, _ := digest(newRun(t, sc, 42, nightStart, 6*time.Hour))
		require.Equal(t, want, got, "run %d with the same seed and start", i+2)
	}
	for name, s := range map[string]*Sim{
		"another seed":  newRun(t, sc, 43, nightStart, 6*time.Hour),
		"another start": newRun(t, sc, 42, nightStart.Add(time.Hour), 6*time.Hour),
	} {
		got, _ := digest(s)
		require.NotEqual(t, want, got, name)
	}
}

func TestSeedDefaultsToTheScenarios(t *testing.T) {
	sc := loadExample(t)
	require.Equal(t, sc.Seed, newRun(t, sc, 0, nightStart, time.Hour).Seed())
	a, _ := digest(newRun(t, sc, 0, nightStart, time.Hour))
	b, _ := digest(newRun(t, sc, sc.Seed, nightStart, time.Hour))
	require.Equal(t, a, b)
}

// Every message of a full day passes the daemon's own decoder with the
// registry of the example rules: no rejection at all. Each device's seq
// starts at 1 and goes up by one per message, and its ts with it.
func TestEveryMessageDecodes(t *testing.T) {
	sc := loadExample(t)
	rs := exampleRuleset(t)
	s := newRun(t, sc, 7, nightStart, 24*time.Hour)
	dec := decode.New(decode.Options{Now: func() time.Time { return s.End() }})
	var b model.Batch
	last := map[string]*model.Batch{}
	streams := map[string]int{}
	readings := 0
	for m := range s.All() {
		if m.Incident != nil {
			continue
		}
		rejects := dec.Decode(m.Topic, m.Payload, m.Time, rs.Registry, &b)
		require.Empty(t, rejects, "%s %s", m.Topic, m.Payload)
		require.True(t, b.Time.Equal(m.Time), "%s: ts %s, message time %s", m.Topic, b.Time, m.Time)
		if prev := last[b.Meta.Device]; prev != nil {
			require.Equal(t, prev.Seq+1, b.Seq, "seq of %s", m.Topic)
			require.True(t, b.Time.After(prev.Time), "ts of %s goes back", m.Topic)
		} else {
			// A run is the units restarted: a counter going on from the
			// clock made the daemon count the time the simulator was
			// stopped as messages missing.
			require.Equal(t, int64(1), b.Seq, "first seq of %s", m.Topic)
			last[b.Meta.Device] = &model.Batch{}
		}
		last[b.Meta.Device].Meta = b.Meta
		streams[string(b.Kind)+"/"+b.Stream.String()]++
		readings += b.Len()
	}
	rs.Registry.All(func(d *model.Device) {
		require.Contains(t, last, d.ID, "registered device %s never reported", d.ID)
	})
	for _, st := range []string{"fence/detections", "fence/status", "checkpoint/passes", "checkpoint/status", "patrol/position", "patrol/status"} {
		require.Positive(t, streams[st], st)
	}
	t.Logf("%d readings in %v", readings, streams)
}

// The scenario through the alert engine in-process, at the pace of a
// real-time run (processing time = simulated time, ticks every 10 s), for
// several seeds and starts (incidents in the evening, by day, across the
// start of the night): every incident fires what it must, and nothing else
// fires. The integration test does the same for one seed through the whole
// daemon.
func TestOnlyIncidentsRaiseAlerts(t *testing.T) {
	sc := loadExample(t)
	for _, tc := range []struct {
		seed  uint64
		start time.Time
	}{
		{sc.Seed, nightStart},
		{1, nightStart},
		{2, time.Date(2025, 11, 27, 13, 0, 0, 0, shanghai)},
		{3, time.Date(2025, 11, 27, 19, 0, 0, 0, shanghai)},
	} {
		t.Run(fmt.Sprintf("seed %d from %s", tc.seed, tc.start.Format("15:04")), func(t *testing.T) {
			t.Parallel()
			rs := exampleRuleset(t)
			eng := engine.New(rs, engine.Options{Location: shanghai}, nil, nil)
			s := newRun(t, sc, tc.seed, tc.start, 24*time.Hour)
			dec := decode.New(decode.Options{Now: func() time.Time { return s.End() }})
			var b model.Batch
			var alerts []model.Alert
			tick := s.Start()
			for m := range s.All() {
				for ; tick.Before(m.Time); tick = tick.Add(10 * time.Second) {
					alerts = append(alerts, eng.Tick(tick)...)
				}
				if m.Incident != nil {
					continue
				}
				require.Empty(t, dec.Decode(m.Topic, m.Payload, m.Time, rs.Registry, &b))
				alerts = append(alerts, eng.Evaluate(&b, m.Time)...)
			}
			require.Empty(t, alertProblems(sc, s.Incidents(), alerts))
			plates := 0
			for _, a := range alerts {
				if a.Rule == "plate-of-interest" {
					plates++
				}
			}
			require.GreaterOrEqual(t, plates, 3, "the watch-listed plate is seen at several checkpoints")
		})
	}
}

func TestIncidentsExpectNightRulesOnlyAtNight(t *testing.T) {
	sc := loadExample(t)
	// The Mongolian SIM arrives a minute after the start and stays 55.
	for _, tc := range []struct {
		name           string
		start          time.Time
		night, mayFire bool
	}{
		{"evening", nightStart, true, false},
		{"after midnight", time.Date(2025, 11, 27, 2, 0, 0, 0, shanghai), true, false},
		{"midday", time.Date(2025, 11, 27, 12, 0, 0, 0, shanghai), false, false},
		{"gone before night", time.Date(2025, 11, 27, 18, 50, 0, 0, shanghai), false, false},
		{"into the night by minutes", time.Date(2025, 11, 27, 19, 6, 0, 0, shanghai), false, true},
		{"well into the night", time.Date(2025, 11, 27, 19, 40, 0, 0, shanghai), true, false},
		{"leaving as the night ends", time.Date(2025, 11, 27, 5, 0, 0, 0, shanghai), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRun(t, sc, 1, tc.start, 12*time.Hour)
			var ruins *Incident
			for _, in := range s.Incidents() {
				if in.ID == "mongolian-sim-at-ruins" {
					ruins = in
				}
			}
			require.NotNil(t, ruins)
			require.Equal(t, tc.night, ruins.Night)
			require.Equal(t, tc.night, slices.Contains(ruins.Rules, "night-phone-ruins"))
			require.Equal(t, tc.mayFire, slices.Contains(ruins.MayFire, "night-phone-ruins"))
			require.Contains(t, ruins.Rules, "foreign-sim-near-border")
			require.Len(t, ruins.Subjects, 1)
			require.True(t, strings.HasPrefix(ruins.Subjects[0], "42899"))
		})
	}
	s := newRun(t, sc, 1, nightStart, 20*time.Minute)
	for _, in := range s.Incidents() {
		require.Equal(t, in.At.Before(s.End()), in.InRun, in.ID)
	}
}

func TestLoadScenarioProblems(t *testing.T) {
	rules, err := filepath.Abs(filepath.Join(examples, "rules.yaml"))
	require.NoError(t, err)
	good, err := os.ReadFile(filepath.Join(examples, "scenario.yaml"))
	require.NoError(t, err)
	base := strings.Replace(string(good), "rules_file: rules.yaml", "rules_file: "+rules, 1)
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"unknown key", "seed: 20261126", "seed: 20261126\nsede: 1", "field sede not found"},
		{"unknown device", "device: F-AOL-01\n", "device: F-XXX-01\n", `fences[0].device: "F-XXX-01" is not a fence unit`},
		{"checkpoint of the wrong kind on a road", "via: [bailingmiao, CP-10", "via: [bailingmiao, P-01", `roads[1].via[1]: "P-01" is neither a place nor a checkpoint`},
		{"unknown rule expected", "expect: [crowd-at-reserve]", "expect: [crowd-at-ruins]", `no rule "crowd-at-ruins"`},
		{"bad rhythm", "phones:   [0.15,", "phones:   [1.5,", "rhythm.phones[0]: want a value in [0, 1]"},
		{"incident of two kinds", "    at: 4m\n", "    at: 4m\n    power_loss: {device: F-MDL-02, battery_to: 6, silent_after: 5m}\n", "want exactly one of"},
		{"bad time of day", `night: {from: "20:00"`, `night: {from: "25:00"`, "invalid time of day"},
		{"bad duration", "duration: 12h", "duration: twelve", "invalid duration"},
		{"bad plate", "plate: 蒙B5L2M8", "plate: 蒙B5L2M", "is not a Chinese plate"},
		{"range backwards", "speed: [70, 105]", "speed: [105, 70]", "roads[0].speed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, base, tc.from)
			path := filepath.Join(t.TempDir(), "scenario.yaml")
			require.NoError(t, os.WriteFile(path, []byte(strings.Replace(base, tc.from, tc.to, 1)), 0o600))
			_, err := LoadScenario(path)
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("the example itself", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "scenario.yaml")
		require.NoError(t, os.WriteFile(path, []byte(base), 0o600))
		_, err := LoadScenario(path)
		require.NoError(t, err)
	})
}

func TestDefaultStartAndClockCheck(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 30, 12, 0, shanghai)
	for _, tc := range []struct {
		name      string
		speed     Speed
		d         time.Duration
		wantStart time.Time
		wantErr   string
	}{
		{"real time starts now", 1, 12 * time.Hour, now, ""},
		{"real time without end", 1, 0, now, ""},
		{"slower than real time starts now", 0.5, time.Hour, now, ""},
		{"accelerated ends at the real now", 60, 12 * time.Hour, time.Date(2026, 11, 26, 17, 30, 0, 0, shanghai), ""},
		{"as fast as possible too", SpeedMax, 12 * time.Hour, time.Date(2026, 11, 26, 17, 30, 0, 0, shanghai), ""},
		{"accelerated without end", 60, 0, time.Time{}, "needs a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, err := DefaultStart(now, tc.speed, tc.d)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.wantStart.Equal(start), "start %s", start)
			require.NoError(t, CheckClock(start, tc.d, tc.speed, now))
		})
	}
	for _, tc := range []struct {
		name    string
		start   time.Time
		speed   Speed
		d       time.Duration
		wantErr string
	}{
		{"starts in the future", now.Add(10 * time.Minute), 1, time.Hour, "ahead of the real clock"},
		{"real time from a minute ahead", now.Add(time.Minute), 1, time.Hour, ""},
		{"accelerated from now overtakes", now, 60, time.Hour, "would end 59m0s ahead"},
		{"accelerated from far enough back", now.Add(-time.Hour), 60, time.Hour, ""},
		{"unpaced must end by now", now.Add(-time.Hour), SpeedMax, 2 * time.Hour, "would end 1h0m0s ahead"},
		{"unpaced without end", now.Add(-time.Hour), SpeedMax, 0, "without end"},
		{"from the past in real time without end", now.Add(-48 * time.Hour), 1, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckClock(tc.start, tc.d, tc.speed, now)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

func TestSpeedFlag(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  Speed
		paced bool
		err   bool
	}{
		{"1", 1, true, false},
		{"60", 60, true, false},
		{"0.5", 0.5, true, false},
		{"max", SpeedMax, false, false},
		{"0", 0, false, true},
		{"-1", 0, false, true},
		{"fast", 0, false, true},
		{"+Inf", 0, false, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var s Speed
			err := s.Set(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, s)
			require.Equal(t, tc.paced, s.Paced())
			require.Equal(t, tc.in, s.String())
		})
	}
}

func TestFormatAlert(t *testing.T) {
	at := time.Date(2026, 11, 26, 15, 10, 4, 0, time.UTC) // 23:10 in Shanghai
	for _, tc := range []struct {
		name string
		a    model.Alert
		want string
	}{
		{"firing, in a zone", model.Alert{At: at, Severity: "high", State: "firing", Rule: "night-phone-ruins", Site: "mdl", Zone: "aolunsumu-ruins", Summary: "IMSI 42899… at the ruins"},
			"23:10 HIGH     night-phone-ruins       mdl aolunsumu-ruins — IMSI 42899… at the ruins"},
		{"firing, no zone", model.Alert{At: at, Severity: "critical", State: "firing", Rule: "foreign-sim-near-border", Site: "mdl", Summary: "s"},
			"23:10 CRITICAL foreign-sim-near-border mdl -               — s"},
		{"resolved", model.Alert{At: at, Severity: "medium", State: "resolved", Rule: "crowd-at-reserve", Site: "bjm", Zone: "ephedra-reserve", Summary: "s"},
			"23:10 resolved crowd-at-reserve        bjm ephedra-reserve — s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, FormatAlert(tc.a, shanghai))
		})
	}
}
