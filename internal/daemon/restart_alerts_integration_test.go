package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// A restart neither forgets an open incident nor re-raises one that fired.
func TestIntegrationAlertStateSurvivesRestart(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")

	ts := time.Now().Add(-10 * time.Minute)
	seq := 0
	status := func(tamper bool) {
		seq++
		e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"tamper":%t}`, seq, ts.Add(time.Duration(seq)*time.Second).UnixMilli(), tamper))
	}
	plate := func(p string) {
		seq++
		e.publish("border/mdl/checkpoint/CP-07/passes", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"passes":[{"plate":%q}]}`, seq, ts.Add(time.Duration(seq)*time.Second).UnixMilli(), p))
	}

	status(true)     // opens a status incident
	plate("蒙B7K3Q2") // fires a presence alert; its cooldown (10m) starts
	e.waitAcked(2)
	e.waitFor("both alerts", func() bool {
		return got.has("unit-tamper", model.StateFiring) && got.has("plate-of-interest", model.StateFiring)
	})

	e.stop()
	e.start()
	require.Positive(t, e.gauge("fenceline_alerts_state_bytes"), "the size of the state restored")
	require.Zero(t, e.gauge("fenceline_alerts_state_restore_incomplete"), "restored whole")

	status(true)     // still tampered: the open incident is not raised again
	plate("蒙B7K3Q2") // within the cooldown: not raised again
	status(false)    // resolves the incident opened before the restart
	e.waitAcked(3)
	e.waitFor("resolved", func() bool { return got.has("unit-tamper", model.StateResolved) })
	e.waitFor("delivered", func() bool { return e.gaugeSum("fenceline_alerts_pending") == 0 })
	require.Equal(t, []string{
		"plate-of-interest/firing/plate:蒙B7K3Q2",
		"unit-tamper/firing/device:CP-07",
		"unit-tamper/resolved/device:CP-07",
	}, got.keys())
	require.Equal(t, got.find("unit-tamper", model.StateFiring).ID, got.find("unit-tamper", model.StateResolved).ID)
	require.Empty(t, got.errs)
}

// An incident open when fenceline stops, of a rule changed before it starts
// again, is resolved at the start (as a reload would), with its id.
func TestIntegrationRuleChangedWhileStopped(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, time.Now().UnixMilli()))
	e.waitFor("firing", func() bool { return got.has("unit-tamper", model.StateFiring) })

	e.stop()
	rules := filepath.Join(e.dir, "rules.yaml")
	b, err := os.ReadFile(rules)
	require.NoError(t, err)
	changed := strings.Replace(string(b), `when: "tamper || battery_pct < 15", severity: high`, `when: "tamper || battery_pct < 15", severity: critical`, 1)
	require.NotEqual(t, string(b), changed)
	require.NoError(t, os.WriteFile(rules, []byte(changed), 0o600))
	e.start()

	e.waitFor("resolved", func() bool { return got.has("unit-tamper", model.StateResolved) })
	res := got.find("unit-tamper", model.StateResolved)
	require.Equal(t, got.find("unit-tamper", model.StateFiring).ID, res.ID)
	require.Contains(t, res.Summary, "Closed without being cleared (rule unit-tamper changed while fenceline was stopped; the condition may still hold): ")
	require.Empty(t, got.errs)
}

// While running, the alert state is saved periodically (a crash loses at
// most one period), written whole: the file is always a complete snapshot
// holding the open incident, never a torn one.
func TestIntegrationAlertStateSavedWhileRunning(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	e.stop()
	e.saveEvery = 20 * time.Millisecond
	e.start()
	got := e.subscribeAlerts("border-unit")
	ts := time.Now().Add(-time.Minute)
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, ts.UnixMilli()))
	e.waitAcked(1)
	e.waitFor("firing", func() bool { return got.has("unit-tamper", model.StateFiring) })

	path := filepath.Join(e.dir, "state", "alert-state.json")
	e.waitFor("the open incident in the saved state", func() bool { return savedOpenStatus(t, path, "unit-tamper", "CP-07") })
	require.Zero(t, e.counter("fenceline_alerts_state_save_failures_total", nil))

	// A save that cannot write (its temporary file's name taken by a
	// folder) is counted, and the next save after the cause is gone works.
	tmp := path + ".tmp"
	e.waitFor("the temporary name taken", func() bool {
		return os.Mkdir(tmp, 0o700) == nil // fails while a save holds it as a file
	})
	e.waitFor("a failed save counted", func() bool {
		return e.counter("fenceline_alerts_state_save_failures_total", nil) >= 1
	})
	require.NoError(t, os.Remove(path)) // no save can put it back while tmp is a folder
	require.NoError(t, os.Remove(tmp))
	e.waitFor("saved again", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

func ignoreNotExist(err error) error {
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// savedOpenStatus reports whether the state file at path holds an open
// incident of the status rule for device.
func savedOpenStatus(t *testing.T, path, rule, device string) bool {
	t.Helper()
	var snap struct {
		Version int `json:"version"`
		Rules   []struct {
			ID     string `json:"id"`
			Status []struct {
				Device string          `json:"device"`
				Open   json.RawMessage `json:"open"`
			} `json:"status"`
		} `json:"rules"`
	}
	data, err := os.ReadFile(path)
	require.NoError(t, ignoreNotExist(err))
	if len(data) == 0 {
		return false
	}
	require.NoError(t, json.Unmarshal(data, &snap), "a whole snapshot: %s", data)
	require.Equal(t, 1, snap.Version)
	for _, r := range snap.Rules {
		for _, s := range r.Status {
			if r.ID == rule && s.Device == device && len(s.Open) > 0 && string(s.Open) != "null" {
				return true
			}
		}
	}
	return false
}

// An alert raised is in the saved state within seconds, not at the next
// periodic save: a crash (SIGKILL) right after it must not forget the
// incident, whose firing is already out and whose resolved would then never
// be sent.
func TestIntegrationAlertStateSavedSoonAfterAnAlert(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	e.stop()
	e.saveEvery = time.Hour // no periodic save in this test
	e.start()
	got := e.subscribeAlerts("border-unit")
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, time.Now().Add(-time.Minute).UnixMilli()))
	e.waitAcked(1)
	e.waitFor("firing", func() bool { return got.has("unit-tamper", model.StateFiring) })
	path := filepath.Join(e.dir, "state", "alert-state.json")
	e.waitFor("the open incident in the saved state", func() bool { return savedOpenStatus(t, path, "unit-tamper", "CP-07") })
	// What the save cost and how large the state is, for an operator.
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, float64(fi.Size()), e.gauge("fenceline_alerts_state_bytes"))
	require.Positive(t, e.metric("fenceline_alerts_state_save_seconds", nil).GetHistogram().GetSampleCount())
}

// An incident in the saved state whose firing the outbox never took (a
// crash after the save, before the alert was queued: here, the outbox
// emptied while fenceline was stopped) has its firing queued at the start,
// under its id: the resolution that follows has its firing.
func TestIntegrationFiringOfASavedIncidentIsQueuedAtStart(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, time.Now().UnixMilli()))
	e.waitFor("firing", func() bool { return got.has("unit-tamper", model.StateFiring) })
	e.waitFor("delivered", func() bool { return e.gaugeSum("fenceline_alerts_pending") == 0 })
	first := got.find("unit-tamper", model.StateFiring).ID
	firings := func() (ids []string) {
		for _, a := range got.all() {
			if a.Rule == "unit-tamper" && a.State == model.StateFiring {
				ids = append(ids, a.ID)
			}
		}
		return ids
	}
	// Delivery is at least once: a loaded machine may have delivered a
	// copy more already (a PUBACK late); receivers drop copies by id.
	before := len(firings())

	e.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(e.dir, "state", "outbox")))
	e.start()

	e.waitFor("the firing queued again", func() bool { return len(firings()) > before })
	for _, id := range firings() {
		require.Equal(t, first, id)
	}
}

// The alerts of an incident change are saved with the alert state until
// the outbox has them: a crash after the save that holds a resolution, before
// the outbox took it, loses it no more — the redelivered message, which the
// saved state has evaluated, would not raise it again. (The crash is made
// here by hand: the state file as such a save leaves it, an outbox that
// never took the resolution.)
func TestIntegrationUnsentAlertsAreQueuedAtStart(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")
	now := time.Now().UnixMilli()
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, now))
	e.waitFor("firing", func() bool { return got.has("unit-tamper", model.StateFiring) })
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"tamper":false}`, now+1))
	e.waitFor("resolved", func() bool { return got.has("unit-tamper", model.StateResolved) })
	e.waitFor("delivered", func() bool { return e.gaugeSum("fenceline_alerts_pending") == 0 })
	resolved := got.find("unit-tamper", model.StateResolved)
	resolutions := func() (n int) {
		for _, a := range got.all() {
			if a.ID == resolved.ID && a.State == model.StateResolved {
				n++
			}
		}
		return n
	}
	before := resolutions() // at least once: a copy more is possible already
	e.stop()

	stateFile := filepath.Join(e.dir, "state", "alert-state.json")
	data, err := os.ReadFile(stateFile)
	require.NoError(t, err)
	var state map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &state))
	unsent, err := json.Marshal([]map[string]any{{"alert": resolved}})
	require.NoError(t, err)
	state["unsent_alerts"] = unsent
	data, err = json.Marshal(state)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(stateFile, data, 0o600))
	require.NoError(t, os.RemoveAll(filepath.Join(e.dir, "state", "outbox")))
	e.start()

	e.waitFor("the resolution queued again", func() bool { return resolutions() > before })
	for _, a := range got.all() {
		require.False(t, a.Rule == "unit-tamper" && a.State == model.StateFiring && a.ID != resolved.ID, "no other incident")
	}
}

// A state file a disk fault truncated is not the end of the open incidents:
// fenceline restores the previous save (kept as alert-state.json.prev), and
// the incident resolves under its id.
func TestIntegrationDamagedStateFallsBackToThePreviousSave(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")
	now := time.Now().UnixMilli()
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, now))
	e.waitFor("firing", func() bool { return got.has("unit-tamper", model.StateFiring) })
	e.stop() // a last save; the one the firing waited for is kept as .prev

	stateFile := filepath.Join(e.dir, "state", "alert-state.json")
	fi, err := os.Stat(stateFile)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(stateFile, fi.Size()/2))
	require.FileExists(t, stateFile+".prev")
	e.start()
	require.Equal(t, 1.0, e.gauge("fenceline_alerts_state_restore_incomplete"), "an operator is alerted")
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"tamper":false}`, now+1))
	e.waitFor("resolved", func() bool { return got.has("unit-tamper", model.StateResolved) })
	require.Equal(t, got.find("unit-tamper", model.StateFiring).ID, got.find("unit-tamper", model.StateResolved).ID)

	// The damaged file does not become the previous save: after the save
	// the resolution waited for, and after the last one, the fallback is
	// readable.
	readable := func(when string) {
		for _, f := range []string{stateFile, stateFile + ".prev"} {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.True(t, json.Valid(data), "%s: %s is readable", when, f)
		}
	}
	readable("after the save the resolution waited for")
	e.stop()
	readable("after the last save")
}

// After an unclean stop the seq counters come from the last periodic save:
// the messages after it were stored and acked before the stop, and the
// broker does not send them again. Their seqs are unknown, not lost: no gap
// (FencelineSequenceGaps would send an operator looking for a loss that did
// not happen), also after a clean stop before the unit's next message. Once
// the unit is heard, after a clean stop a jump is a gap again.
func TestIntegrationSeqGapAfterAnUncleanStopIsUnknown(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	e.stop()
	e.saveEvery = 20 * time.Millisecond
	e.start()
	publish := seqPublisher(e)
	publish(1, 3)
	e.waitAcked(3)
	path, crashed := e.nextSave("after seq 3")
	publish(4, 10)
	e.waitAcked(10)
	e.stop()
	require.NoError(t, os.WriteFile(path, crashed, 0o600))

	// Started from the crash's save, and stopped cleanly before the unit
	// sent again: its next jump is still unknown, not a loss.
	e.start()
	e.stop()
	e.start()
	publish(11, 11)
	e.waitAcked(1)
	assert.Zero(t, e.counter("fenceline_ingest_sequence_gaps_total", nil), "no loss: 4 to 10 were stored before the stop")
	assert.Equal(t, 7.0, e.counter("fenceline_ingest_sequence_unknown_messages_total", nil))

	e.stop()
	e.start()
	publish(13, 13) // 12 never sent
	e.waitAcked(1)
	assert.Equal(t, 1.0, e.counter("fenceline_ingest_sequence_gaps_total", nil), "after a clean stop a jump is a loss")
	assert.Zero(t, e.counter("fenceline_ingest_sequence_unknown_messages_total", nil))
}

// seqPublisher publishes a fence unit's detections messages from seq to
// seq, a millisecond apart a minute ago.
func seqPublisher(e *env) func(from, to int) {
	ts := time.Now().Add(-time.Minute).UnixMilli()
	return func(from, to int) {
		for seq := from; seq <= to; seq++ {
			e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, seq, ts+int64(seq)))
		}
	}
}

// A crash soon after a clean start, before the first periodic save: the
// state file is the one this run saved at its start, not the last run's
// clean stop, so the messages taken since are unknown, not lost.
func TestIntegrationSeqGapAfterACrashSoonAfterAStartIsUnknown(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	publish := seqPublisher(e)
	publish(1, 3)
	e.waitAcked(3)
	e.stop()
	e.start() // after a clean stop
	path := filepath.Join(e.dir, "state", "alert-state.json")
	atStart, err := os.ReadFile(path)
	require.NoError(t, err)
	publish(4, 10)
	e.waitAcked(7)
	e.stop()
	require.NoError(t, os.WriteFile(path, atStart, 0o600)) // killed before a periodic save

	e.start()
	publish(11, 11)
	e.waitAcked(1)
	assert.Zero(t, e.counter("fenceline_ingest_sequence_gaps_total", nil), "no loss: 4 to 10 were stored before the crash")
	assert.Equal(t, 7.0, e.counter("fenceline_ingest_sequence_unknown_messages_total", nil))
}

// A status report that changes what an open incident is judged on (the
// battery of a tampered unit) is acked only once the state that holds it
// is saved: a kill then does not forget it, and a later report of the
// tamper closed does not resolve the incident while the battery is low.
func TestIntegrationUnitStatusSavedBeforeItsAck(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")
	ts := time.Now().Add(-10 * time.Minute)
	seq := 0
	status := func(fields string) {
		seq++
		e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,%s}`, seq, ts.Add(time.Duration(seq)*time.Second).UnixMilli(), fields))
	}
	status(`"tamper":true,"battery_pct":50`)
	e.waitFor("the tamper", func() bool { return got.has("unit-tamper", model.StateFiring) })
	status(`"battery_pct":10`)
	e.waitAcked(2)
	path := filepath.Join(e.dir, "state", "alert-state.json")
	killed, err := os.ReadFile(path) // what a kill right after the ack leaves
	require.NoError(t, err)
	e.stop()
	require.NoError(t, os.WriteFile(path, killed, 0o600))

	e.start()
	status(`"tamper":false`)
	e.waitAcked(1)
	e.waitFor("delivered", func() bool { return e.gaugeSum("fenceline_alerts_pending") == 0 })
	require.False(t, got.has("unit-tamper", model.StateResolved), "the battery is at 10%%: still %v", got.keys())
	status(`"battery_pct":60`)
	e.waitFor("resolved", func() bool { return got.has("unit-tamper", model.StateResolved) })
}

// After an unclean stop (a kill), the sightings evaluated since the last
// save are gone with their acks: a phone still at the ruins is not taken
// for gone — its stay goes on, no resolution, no new firing — where after a
// clean stop a gap over max_gap ends it.
func TestIntegrationDwellAcrossAnUncleanStop(t *testing.T) {
	e := newEnv(t, "dwell-rules.yaml", "")
	e.stop()
	e.saveEvery = 20 * time.Millisecond
	e.start()
	base := time.Now().Add(-2 * time.Minute)
	seq := 0
	see := func(from, to time.Duration) { // a sighting every 300 ms of event time
		for at := from; at <= to; at += 300 * time.Millisecond {
			seq++
			e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, seq, base.Add(at).UnixMilli()))
		}
	}
	see(0, 2400*time.Millisecond)
	e.waitAcked(seq)
	firing := map[string]string{"rule": "loiter", "state": "firing"}
	require.Equal(t, 1.0, e.counter("fenceline_alerts_raised_total", firing))
	path, crashed := e.nextSave("after the firing")
	see(2700*time.Millisecond, 33*time.Second) // seen on: 30.6 s the save does not hold, more than max_gap
	e.waitAcked(seq)
	e.stop()
	require.NoError(t, os.WriteFile(path, crashed, 0o600))

	e.start()
	see(33300*time.Millisecond, 33300*time.Millisecond)
	e.waitAcked(1)
	assert.Zero(t, e.counter("fenceline_alerts_raised_total", map[string]string{"rule": "loiter", "state": "resolved"}), "the stay goes on")
	assert.Zero(t, e.counter("fenceline_alerts_raised_total", firing))
}

// A failed save of the alert state is counted and logged; the next save
// that works says so, and its time is a metric: the runbook's way to know a
// restart is safe again while FencelineStateSaveFailing still fires.
func TestIntegrationStateSaveRecovers(t *testing.T) {
	e, log := newSecureEnv(t, secureOpts{rules: "rules.yaml"})
	e.stop()
	e.saveEvery = 20 * time.Millisecond
	startLogged(e, slog.New(slog.NewTextHandler(log, nil)), true)
	path := filepath.Join(e.dir, "state", "alert-state.json")
	e.waitFor("a save", func() bool { return e.gauge("fenceline_alerts_state_last_save_timestamp_seconds") > 0 })

	// A directory in the file's place: a save cannot rename over it.
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.MkdirAll(filepath.Join(path, "in-the-way"), 0o750))
	e.waitFor("a failed save", func() bool { return e.counter("fenceline_alerts_state_save_failures_total", nil) > 0 })
	failedAt := time.Now()
	require.NoError(t, os.RemoveAll(path))
	e.waitFor("a save again", func() bool { // set by a save that worked only: a later one
		return e.gauge("fenceline_alerts_state_last_save_timestamp_seconds") > float64(failedAt.UnixNano())/1e9
	})
	e.waitFor("the log says so", func() bool {
		return strings.Contains(log.String(), `msg="alert state saved again after failures" failed_saves=`)
	})
}

// The previous save is replaced only by a save: a save that fails because
// something is in the state file's place (a folder) leaves it, and a start
// after a crash then has it to restore from.
func TestKeepPreviousOnlyReplacedByASave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alert-state.json")
	prev := path + ".prev"
	require.NoError(t, os.WriteFile(path, []byte("first"), 0o600))
	keepPrevious(path)
	require.NoError(t, os.WriteFile(path+".new", []byte("second"), 0o600))
	require.NoError(t, os.Rename(path+".new", path)) // as a save commits
	got, err := os.ReadFile(prev)
	require.NoError(t, err)
	require.Equal(t, "first", string(got))

	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Mkdir(path, 0o750)) // a folder in its place
	keepPrevious(path)
	got, err = os.ReadFile(prev)
	require.NoError(t, err, "the previous save is still there")
	require.Equal(t, "first", string(got))
	_, err = os.Stat(prev + ".tmp")
	require.ErrorIs(t, err, os.ErrNotExist)

	require.NoError(t, os.Remove(path)) // gone: the next save would be the first
	keepPrevious(path)
	got, err = os.ReadFile(prev)
	require.NoError(t, err)
	require.Equal(t, "first", string(got))
}
