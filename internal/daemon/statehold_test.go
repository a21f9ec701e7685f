package daemon

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/internal/model"
)

// Held alerts are saved with the state (unsent) from Hold until the outbox
// has them: while they wait for the save, and after it until the outbox's
// write is durable; then they are no more.
func TestHeldAlertsAreUnsentUntilTheOutboxHasThem(t *testing.T) {
	ob, err := outbox.Open(t.TempDir(), nil, outbox.Options{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer ob.Close()
	h := newStateHolds(nil, ob)
	a := model.Alert{ID: "a1", Rule: "tamper", State: model.StateResolved, Ordinal: 42}
	done := make(chan error, 1)
	h.Hold([]model.Alert{a}, func(err error) { done <- err })
	require.Equal(t, 1, h.waiting())

	taken, unsent := h.take()
	require.Len(t, taken, 1)
	require.Equal(t, unsentAlerts{a}, unsent, "saved with the state that holds the change")
	require.Zero(t, h.waiting())
	h.release(taken)
	require.NoError(t, <-done)
	_, unsent = h.take()
	require.Empty(t, unsent, "the outbox has it")
	require.True(t, ob.Knows(&a))

	// Saved as JSON, an unsent alert keeps the ordinal its payload leaves out.
	b, err := json.Marshal(unsentAlerts{a})
	require.NoError(t, err)
	var back unsentAlerts
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, uint64(42), back[0].Ordinal)
	require.Equal(t, a.ID, back[0].ID)
}
