package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// InfluxDB goes away: the daemon says it is not ready, keeps the readings
// unacked (the broker holds them), and stores every one once it is back.
func TestIntegrationInfluxOutage(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	pub := func(seq int) {
		e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4600012345%05d"}]}`, seq, ts+int64(seq), seq))
	}
	pub(1)
	e.waitAcked(1)
	code, _ := e.get("/readyz")
	require.Equal(t, 200, code)

	require.NoError(t, e.influx.Stop())
	for i := 2; i <= 50; i++ {
		pub(i)
	}
	e.waitFor("not ready while InfluxDB is down", func() bool {
		code, _ := e.get("/readyz")
		return code == 503
	})
	_, body := e.get("/readyz")
	require.Contains(t, body, "influx")

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, e.influx.Restart(ctx))
	e.waitAcked(50)
	require.Equal(t, 50, e.count("phone_detection"), "every reading stored once")
	e.waitFor("ready again", func() bool {
		code, _ := e.get("/readyz")
		return code == 200
	})
	require.Greater(t, e.counter("fenceline_influx_write_errors_total", map[string]string{"class": "network"}), 0.0)
}
