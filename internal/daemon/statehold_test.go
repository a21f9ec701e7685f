package daemon

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

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

// Held alerts are saved with the state (unsent) from Hold until the outbox
// has them: while they wait for the save, and after it until the outbox's
// write is durable; then they are no more.
func TestHeldAlertsAreUnsentUntilTheOutboxHasThem(t *testing.T) {
	ob := &heldOutbox{}
	h := newStateHolds(nil, ob)
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
