package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// alertID is the id of the first alert received about subject in state,
// "" if none.
func (e *env) alertID(subject, state string) string {
	got, _ := e.sub.Received()
	for _, a := range got {
		if a.Subject == subject && a.State == state {
			return a.ID
		}
	}
	return ""
}

// TestIntegrationChaosKillAfterIncident: fenceline killed (SIGKILL) right
// after an incident's firing went out, before the periodic state save. The
// firing went out only once a save holding the incident was durable, so
// the restarted fenceline knows the incident, and its resolution follows
// under the same id: no firing alert is left that nothing resolves.
func TestIntegrationChaosKillAfterIncident(t *testing.T) {
	e := newEnv(t, true, "")
	status := func(seq int, tamper bool) *Message {
		return &Message{Topic: "border/mdl/fence/F-HEALTHY/status",
			Payload: fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"tamper":%t}`, seq, time.Now().UnixMilli(), tamper)}
	}
	alertID := func(state string) string { return e.alertID("F-HEALTHY", state) }

	from := time.Now().Add(-time.Minute)
	require.NoError(t, e.pub.Publish(e.within(30*time.Second), status(1, true)))
	// Stored and alerted: everything of the message is durable, so an ack
	// (and an alert) that did not wait for the state would have gone out.
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

// TestIntegrationChaosKillAfterCrowd: an incident built from several
// messages (a crowd of three phones, one a message) cannot be rebuilt by
// redelivering the last one. Its firing goes out only once the state
// holding the incident is saved, so fenceline killed (SIGKILL) right after
// the firing still resolves it under the same id once the crowd's window
// has passed.
func TestIntegrationChaosKillAfterCrowd(t *testing.T) {
	e := newEnv(t, true, "")
	alertID := func(state string) string { return e.alertID("mdl", state) }
	for i := 1; i <= 3; i++ {
		require.NoError(t, e.pub.Publish(e.within(30*time.Second), &Message{Topic: "border/mdl/fence/F-CROWD/detections",
			Payload: fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"46000000000010%d"}]}`, i, time.Now().UnixMilli(), i)}))
	}
	e.waitFor("the firing alert", 30*time.Second, func() bool { return alertID("firing") != "" })
	e.daemon.Kill()
	require.NoError(t, e.daemon.Start(e.within(time.Minute)))

	e.waitFor("a resolved alert", 30*time.Second, func() bool { return alertID("resolved") != "" })
	require.Equal(t, alertID("firing"), alertID("resolved"), "resolved under the firing's id")
}
