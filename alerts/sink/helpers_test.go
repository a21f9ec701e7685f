package sink

import (
	"encoding/json"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/fenceline/fenceline/internal/model"
)

// paho's Disconnect leaves a goroutine that waits up to its quiesce time
// for the connection to finish closing; it ends on its own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).Disconnect.func1"))
}

// waitFor bounds every wait; generous because CI machines stall.
const waitFor = 30 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testAlert(id, state string) *model.Alert {
	now := time.Date(2026, 11, 26, 15, 10, 4, 120e6, time.UTC)
	return &model.Alert{
		ID: id, Rule: "night-phone-ruins", Severity: "high", State: state, Site: "mdl",
		Zone:     "aolunsumu-ruins",
		Subject:  model.Subject{Kind: "imsi", Value: "460001234567890"},
		Summary:  "phone 460001234567890 (China Mobile) at Aolunsumu ruins, speed > 0 & at night",
		At:       now.Add(-200 * time.Millisecond),
		RaisedAt: now,
		Location: &model.Point{Lat: 41.9612, Lon: 110.4875},
		Count:    1,
		Evidence: []model.Evidence{{Device: "F-AOL-01", Seq: 18231, TS: now.Add(-200 * time.Millisecond)}},
		Notify:   []string{"station-mdl", "patrol-07"},
		NearestPatrols: []model.PatrolRef{
			{Device: "P-07", DistanceKm: 3.2, Seen: now.Add(-2 * time.Minute)},
		},
	}
}

// contractFields are the alert payload's keys in CONTRACT.md.
var contractFields = []string{"at", "count", "evidence", "id", "late", "location", "nearest_patrols",
	"notify", "raised_at", "rule", "severity", "site", "state", "subject", "summary", "zone"}

// requireContractPayload checks that payload is a's JSON with the contract's
// field names.
func requireContractPayload(t *testing.T, a *model.Alert, payload []byte) {
	t.Helper()
	want, err := Encode(a)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(payload))
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(payload, &m))
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	require.Equal(t, contractFields, keys)
	var back model.Alert
	require.NoError(t, json.Unmarshal(payload, &back))
	require.Equal(t, a.ID, back.ID)
	require.Equal(t, a.State, back.State)
	require.True(t, a.RaisedAt.Equal(back.RaisedAt))
}
