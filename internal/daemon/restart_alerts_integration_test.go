package daemon

import (
	"fmt"
	"testing"
	"time"

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
