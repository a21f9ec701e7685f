package daemon

import (
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/pipeline"
	"github.com/fenceline/fenceline/internal/model"
)

// heldOutbox takes alerts and calls their done when the test says so: the
// outbox's write on its way.
type heldOutbox struct {
	alerts []model.Alert
	dones  []func(error)
}

func (o *heldOutbox) Append(alerts []model.Alert, done func(error)) {
	o.alerts = append(o.alerts, alerts...)
	o.dones = append(o.dones, done)
}

// testHolds are stateHolds on ob whose waits are measured by *clock.
func testHolds(ob pipeline.Outbox, clock *time.Time) *stateHolds {
	h := newStateHolds(nil, ob, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	h.now = func() time.Time { return *clock }
	return h
}

// Held alerts are saved with the state (unsent) from Hold until the outbox
// has them: while they wait for the save, and after it until the outbox's
// write is durable; then they are no more.
func TestHeldAlertsAreUnsentUntilTheOutboxHasThem(t *testing.T) {
	ob := &heldOutbox{}
	h := testHolds(ob, &time.Time{})
	a := model.Alert{ID: "a1", Rule: "tamper", State: model.StateResolved, Ordinal: 42}
	var acked []error
	h.Hold([]model.Alert{a}, func(err error) { acked = append(acked, err) })
	require.Equal(t, 1, h.waiting())

	taken, unsent := h.take()
	require.Len(t, taken, 1)
	require.Equal(t, unsentAlerts{a}, unsent, "saved with the state that holds the change")
	require.Zero(t, h.waiting())
	require.Empty(t, ob.alerts, "not in the outbox before the save is durable")

	h.release(taken)
	require.Equal(t, []model.Alert{a}, ob.alerts)
	_, unsent = h.take()
	require.Equal(t, unsentAlerts{a}, unsent, "still saved while the outbox's write is on its way")
	require.Empty(t, acked)

	ob.dones[0](nil)
	require.Equal(t, []error{nil}, acked, "the message's ack follows the outbox's")
	_, unsent = h.take()
	require.Empty(t, unsent, "the outbox has it")

	// Saved as JSON, an unsent alert keeps the ordinal its payload leaves out.
	b, err := json.Marshal(unsentAlerts{a})
	require.NoError(t, err)
	var back unsentAlerts
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, uint64(42), back[0].Ordinal)
	require.Equal(t, a.ID, back[0].ID)
}

// alertIDs are the ids of alerts, in order.
func alertIDs[S ~[]model.Alert](alerts S) []string {
	var ids []string
	for _, a := range alerts {
		ids = append(ids, a.ID)
	}
	return ids
}

func siteAlert(id, site string) []model.Alert { return []model.Alert{{ID: id, Site: site}} }

// Alerts that need no save wait behind those of their site held for one,
// and reach the outbox in the order they were raised: a foreign SIM's
// alert raised just after a crowd's firing (held for the save of the open
// incident) must not reach the unit first. With nothing of their site held
// they go to the outbox at once.
// Until the outbox has them they are saved with the state.
func TestPassedAlertsKeepTheirOrderBehindHeldOnes(t *testing.T) {
	alert := func(id string) []model.Alert { return []model.Alert{{ID: id}} }
	for _, tc := range []struct {
		name string
		run  func(h *stateHolds, ob *heldOutbox)
	}{
		{"nothing held: at once", func(h *stateHolds, ob *heldOutbox) {
			h.Pass(alert("presence-1"), func(error) {})
			require.Equal(t, []string{"presence-1"}, alertIDs(ob.alerts))
			_, unsent := h.take()
			require.Equal(t, []string{"presence-1"}, alertIDs(unsent), "unsent until the outbox's write is durable")
			ob.dones[0](nil)
			_, unsent = h.take()
			require.Empty(t, unsent)
		}},
		{"behind one held", func(h *stateHolds, ob *heldOutbox) {
			h.Hold(alert("crowd-firing"), func(error) {})
			h.Pass(alert("presence-1"), func(error) {})
			h.Pass(alert("presence-2"), func(error) {})
			require.Empty(t, ob.alerts, "passed ahead of the held firing")
			require.Equal(t, 1, h.waiting(), "only the firing waits for a save")
			taken, unsent := h.take()
			require.Equal(t, []string{"crowd-firing", "presence-1", "presence-2"}, alertIDs(unsent))
			h.release(taken)
			require.Equal(t, []string{"crowd-firing", "presence-1", "presence-2"}, alertIDs(ob.alerts))
			h.Pass(alert("presence-3"), func(error) {})
			require.Equal(t, []string{"crowd-firing", "presence-1", "presence-2", "presence-3"}, alertIDs(ob.alerts), "nothing held any more")
		}},
		{"behind one held after the save's copy", func(h *stateHolds, ob *heldOutbox) {
			h.Hold(alert("crowd-firing"), func(error) {})
			taken, _ := h.take()
			h.Hold(alert("crowd-resolved"), func(error) {}) // raised after the copy: the next save's
			h.Pass(alert("presence-1"), func(error) {})
			h.release(taken)
			require.Equal(t, []string{"crowd-firing"}, alertIDs(ob.alerts))
			require.Equal(t, 1, h.waiting())
			taken, unsent := h.take()
			require.Equal(t, []string{"crowd-firing", "crowd-resolved", "presence-1"}, alertIDs(unsent))
			h.release(taken)
			require.Equal(t, []string{"crowd-firing", "crowd-resolved", "presence-1"}, alertIDs(ob.alerts))
		}},
		{"another site's alerts do not wait", func(h *stateHolds, ob *heldOutbox) {
			h.Hold(siteAlert("crowd-firing", "mdl"), func(error) {})
			h.Pass(siteAlert("presence-bjm-1", "bjm"), func(error) {})
			h.Pass(siteAlert("presence-mdl", "mdl"), func(error) {})
			h.Pass(append(siteAlert("tick-mdl", "mdl"), siteAlert("tick-btu", "btu")...), func(error) {})
			h.Pass(siteAlert("presence-btu", "btu"), func(error) {}) // behind tick-btu, which waits
			h.Pass(siteAlert("presence-bjm-2", "bjm"), func(error) {})
			require.Equal(t, []string{"presence-bjm-1", "presence-bjm-2"}, alertIDs(ob.alerts))
			taken, _ := h.take()
			h.release(taken)
			require.Equal(t, []string{"presence-bjm-1", "presence-bjm-2", "crowd-firing", "presence-mdl", "tick-mdl", "tick-btu", "presence-btu"}, alertIDs(ob.alerts))
		}},
		{"a later save's hold keeps its site's alerts, not others", func(h *stateHolds, ob *heldOutbox) {
			h.Hold(siteAlert("crowd-firing-mdl", "mdl"), func(error) {})
			h.Pass(siteAlert("presence-mdl-1", "mdl"), func(error) {})
			taken, _ := h.take()
			h.Hold(siteAlert("crowd-firing-bjm", "bjm"), func(error) {})
			h.Pass(siteAlert("presence-bjm", "bjm"), func(error) {})
			h.Pass(siteAlert("presence-mdl-2", "mdl"), func(error) {})
			h.release(taken)
			require.Equal(t, []string{"crowd-firing-mdl", "presence-mdl-1", "presence-mdl-2"}, alertIDs(ob.alerts))
			taken, _ = h.take()
			h.release(taken)
			require.Equal(t, []string{"crowd-firing-mdl", "presence-mdl-1", "presence-mdl-2", "crowd-firing-bjm", "presence-bjm"}, alertIDs(ob.alerts))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := &heldOutbox{}
			tc.run(testHolds(ob, &time.Time{}), ob)
		})
	}
}

// An alert waits behind an incident's alert of its site held for a save for
// orderWait at most: a state of tens of MB takes seconds to save, and a
// critical alert must not be that late. Past it, it goes out ahead (in its
// order among those that waited), counted.
func TestPassedAlertsWaitForASlowSaveOnlySoLong(t *testing.T) {
	ob := &heldOutbox{}
	clock := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	h := testHolds(ob, &clock)
	h.Hold(siteAlert("tamper-firing", "mdl"), func(error) {})
	h.Pass(siteAlert("foreign-1", "mdl"), func(error) {})
	clock = clock.Add(h.maxWait / 2)
	h.Pass(siteAlert("foreign-2", "mdl"), func(error) {})

	h.expire()
	require.Empty(t, ob.alerts, "none has waited long enough")
	clock = clock.Add(h.maxWait / 2)
	h.expire()
	require.Equal(t, []string{"foreign-1"}, alertIDs(ob.alerts))
	require.Equal(t, 1.0, testutil.ToFloat64(h.ahead))
	clock = clock.Add(h.maxWait / 2)
	h.expire()
	require.Equal(t, []string{"foreign-1", "foreign-2"}, alertIDs(ob.alerts))

	taken, _ := h.take()
	h.release(taken)
	require.Equal(t, []string{"foreign-1", "foreign-2", "tamper-firing"}, alertIDs(ob.alerts))
	require.Equal(t, 2.0, testutil.ToFloat64(h.ahead))
}

// signalOutbox tells of every Append on a channel.
type signalOutbox struct {
	mu       sync.Mutex
	alerts   []model.Alert
	appended chan struct{}
}

func (o *signalOutbox) Append(alerts []model.Alert, done func(error)) {
	o.mu.Lock()
	o.alerts = append(o.alerts, alerts...)
	o.mu.Unlock()
	o.appended <- struct{}{}
	done(nil)
}

// The wait ends by itself, without a save or another alert.
func TestPassedAlertsLeaveOnTheirOwnAfterTheWait(t *testing.T) {
	ob := &signalOutbox{appended: make(chan struct{}, 1)}
	h := newStateHolds(nil, ob, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	h.maxWait = 10 * time.Millisecond
	h.Hold(siteAlert("tamper-firing", "mdl"), func(error) {})
	h.Pass(siteAlert("foreign-1", "mdl"), func(error) {})
	select {
	case <-ob.appended:
	case <-time.After(10 * time.Second):
		t.Fatal("the alert waited for the save beyond maxWait")
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	require.Equal(t, []string{"foreign-1"}, alertIDs(ob.alerts))
}
