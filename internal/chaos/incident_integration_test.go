package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIntegrationChaosKillAfterIncident: fenceline killed (SIGKILL) right
// after an incident opened, before its periodic state save. The message
// that opened it was not acked yet (its ack waits for that save), so the
// broker redelivers it, the incident opens again under the same id, and its
// resolution follows under that id: no firing alert is left that nothing
// resolves.
func TestIntegrationChaosKillAfterIncident(t *testing.T) {
	e := newEnv(t, true, "")
	status := func(seq int, tamper bool) *Message {
		return &Message{Topic: "border/mdl/fence/F-HEALTHY/status",
			Payload: fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"tamper":%t}`, seq, time.Now().UnixMilli(), tamper)}
	}
	alertID := func(state string) string {
		got, _ := e.sub.Received()
		for _, a := range got {
			if a.Subject == "F-HEALTHY" && a.State == state {
				return a.ID
			}
		}
		return ""
	}

	from := time.Now().Add(-time.Minute)
	require.NoError(t, e.pub.Publish(e.within(30*time.Second), status(1, true)))
	// Stored and alerted: everything of the message is durable, so an ack
	// that did not wait for the state would have gone out.
	e.waitFor("the firing alert", 30*time.Second, func() bool { return alertID("firing") != "" })
	e.waitFor("the status stored", 30*time.Second, func() bool {
		n, err := e.query.CountByDevice(e.within(10*time.Second), "device_status", from, time.Now().Add(time.Minute))
		return err == nil && n["F-HEALTHY"] == 1
	})
	e.daemon.Kill()
	require.NoError(t, e.daemon.Start(e.within(time.Minute)))

	require.NoError(t, e.pub.Publish(e.within(30*time.Second), status(2, false)))
	e.waitFor("a resolved alert", 30*time.Second, func() bool { return alertID("resolved") != "" })
	require.Equal(t, alertID("firing"), alertID("resolved"), "resolved under the firing's id")
}
