package load

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/testenv"
)

// The alert subscriber stays subscribed across a reconnection: its session
// is clean, so a broker that restarted (without persistence) knows nothing
// of it, and every alert after the restart was reported missing.
func TestIntegrationAlertSubSurvivesABrokerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mq := testenv.Mosquitto(t)
	subs, err := subscribeAlerts(ctx, mq.URL(), "border")
	require.NoError(t, err)
	defer subs.close()
	pub, err := connectMQTT(ctx, mq.URL(), "alert-sub-restart-pub")
	require.NoError(t, err)
	defer pub.Disconnect(100)
	alert := func(id string) {
		tok := pub.Publish("border/ld/alerts/"+RuleForeignSIM, 1, false,
			fmt.Appendf(nil, `{"id":%q,"rule":%q,"state":"firing","evidence":[{"device":"F-001","seq":7}]}`, id, RuleForeignSIM))
		require.True(t, tok.WaitTimeout(time.Minute))
		require.NoError(t, tok.Error())
	}
	// received waits for the next message the subscriber takes, or gives
	// up after a while (false).
	received := func(within time.Duration) bool {
		select {
		case <-subs.notify:
			return true
		case <-time.After(within):
			return false
		case <-ctx.Done():
			t.Fatal("gave up")
			return false
		}
	}
	alert("a1")
	require.True(t, received(time.Minute), "no alert before the restart")

	require.NoError(t, mq.Restart(ctx))
	// The resubscription follows the reconnection: publish until one
	// arrives (each publish is one the subscriber may have missed while it
	// subscribed again).
	for i := 0; ; i++ {
		if pub.IsConnectionOpen() {
			alert(fmt.Sprintf("a2-%d", i))
		}
		if received(200 * time.Millisecond) {
			break
		}
	}
	got, bad := subs.received()
	require.Zero(t, bad)
	require.Positive(t, subs.lost.Load(), "the report's note counts the connections lost")
	require.Equal(t, "a1", got[0].ID)
	require.Contains(t, got[len(got)-1].ID, "a2-")
	require.Equal(t, "F-001", got[len(got)-1].Device)
}
