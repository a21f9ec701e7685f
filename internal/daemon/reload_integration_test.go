package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

func TestIntegrationReload(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	got := e.subscribeAlerts("border-unit")

	ts := time.Now().Add(-time.Minute)
	seq := 0
	pass := func(plate string) {
		seq++
		e.publish("border/mdl/checkpoint/CP-07/passes", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"passes":[{"plate":%q}]}`, seq, ts.UnixMilli()+int64(seq), plate))
	}
	status := func(tamper bool) {
		seq++
		e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"battery_pct":90,"tamper":%t}`, seq, ts.UnixMilli()+int64(seq), tamper))
	}

	// An open incident before the reload.
	status(true)
	e.waitFor("tamper firing", func() bool { return got.has("unit-tamper", model.StateFiring) })

	rulesPath := filepath.Join(e.dir, "rules.yaml")
	orig, err := os.ReadFile(rulesPath)
	require.NoError(t, err)

	// A valid change: a new plate on the watchlist.
	changed := strings.Replace(string(orig), `entries: ["蒙B7K3Q2"]`, `entries: ["蒙B7K3Q2", "蒙B00001"]`, 1)
	require.NotEqual(t, string(orig), changed)
	require.NoError(t, os.WriteFile(rulesPath, []byte(changed), 0o600))
	code, body := e.post("/-/reload")
	require.Equal(t, 200, code, body)
	require.Equal(t, 1.0, e.gauge("fenceline_config_last_reload_successful"))
	pass("蒙B00001")
	e.waitFor("new watchlist entry fires", func() bool { return got.has("plate-of-interest", model.StateFiring) })

	// The tamper rule did not change: its open incident survived and resolves
	// with the same id.
	status(false)
	e.waitFor("tamper resolved", func() bool { return got.has("unit-tamper", model.StateResolved) })
	require.Equal(t, got.find("unit-tamper", model.StateFiring).ID, got.find("unit-tamper", model.StateResolved).ID)

	// An invalid change: refused with every problem, the old rules stay.
	broken := strings.Replace(changed, "max_kmh: 180", "max_khm: 180", 1)
	broken = strings.Replace(broken, `when: "tamper || battery_pct < 15"`, `when: "tamper || batery_pct < 15"`, 1)
	require.NoError(t, os.WriteFile(rulesPath, []byte(broken), 0o600))
	code, body = e.post("/-/reload")
	require.Equal(t, 400, code)
	require.Contains(t, body, "max_khm")
	require.Contains(t, body, "batery_pct")
	require.Contains(t, body, "rules.yaml:")
	require.Equal(t, 0.0, e.gauge("fenceline_config_last_reload_successful"))
	require.Equal(t, 1.0, e.counter("fenceline_config_reload_failures_total", nil))

	// A file emptied while being edited is refused too: it would resolve
	// every open incident and reject every message.
	require.NoError(t, os.WriteFile(rulesPath, nil, 0o600))
	code, body = e.post("/-/reload")
	require.Equal(t, 400, code)
	require.Contains(t, body, "no device registered")

	// So is a file cut short at a line break (a copy interrupted): valid
	// YAML, with devices, and no rules section at all.
	cut := changed[:strings.Index(changed, "\nrules:")+1]
	require.NoError(t, os.WriteFile(rulesPath, []byte(cut), 0o600))
	code, body = e.post("/-/reload")
	require.Equal(t, 400, code, body)
	require.Contains(t, body, "rules: the file has no rules section")

	status(true) // the old (working) tamper rule still applies
	e.waitFor("tamper firing again", func() bool {
		n := 0
		for _, k := range got.keys() {
			if k == "unit-tamper/firing/device:CP-07" {
				n++
			}
		}
		return n == 2
	})
	require.Empty(t, got.errs)
}

func TestIntegrationShutdownDrainsAndResumes(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	const n = 200
	for i := 1; i <= n; i++ {
		e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001234567890"},{"mac":"a4:5e:60:12:34:56"}]}`, i, ts+int64(i)))
	}
	// Stop at once: whatever was taken is either stored and acked, or not
	// acked and redelivered to the next session.
	e.stop()
	e.start()
	e.waitFor("every reading stored", func() bool { return e.count("phone_detection") >= 2*n })
	require.Equal(t, 2*n, e.count("phone_detection"), "nothing lost, nothing twice")
}

// SIGTERM while InfluxDB does not answer: the drain gives up after
// ingest.drain_timeout and the daemon still exits cleanly (Run returns nil:
// exit status 0, as the contract says); what was not stored was not acked
// and comes back from the broker.
func TestIntegrationShutdownWithStalledInflux(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	e.restartWithStalledInflux("ingest: {drain_timeout: 500ms}\n")
	e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, time.Now().UnixMilli()))
	e.waitFor("the write in flight", func() bool { return e.gauge("fenceline_influx_pending_lines") >= 1 })
	e.stop() // requires Run to return nil
}

// A restart on a rules file cut short before its rules is refused, as a
// reload of it is: run without rules, it closed every open incident as if
// its rule were removed, and acked readings no rule would see. The readings
// wait in the broker, the incidents stay open; once the file is mended they
// are evaluated. A file that says `rules: []` is an operator's choice.
func TestIntegrationStartOnARulesFileCutShort(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	const status = "border/mdl/checkpoint/CP-07/status"
	ts := time.Now().Add(-time.Minute).UnixMilli()
	e.publish(status, fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, ts))
	e.waitAcked(1)
	tamper := map[string]string{"rule": "unit-tamper"}
	require.Equal(t, 1.0, e.metric("fenceline_alerts_open_incidents", tamper).GetGauge().GetValue())
	e.stop()
	rulesPath := filepath.Join(e.dir, "rules.yaml")
	orig, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	cut := string(orig)[:strings.Index(string(orig), "\nrules:")+1]
	require.NoError(t, os.WriteFile(rulesPath, []byte(cut), 0o600))
	err = e.startRefused()
	require.Contains(t, err.Error(), "rules: the file has no rules section (the key left out, or nothing after it), where the last run had")
	require.Contains(t, err.Error(), "write `rules: []`")
	cfg, err := config.Load(e.cfgPath)
	require.NoError(t, err)
	require.ErrorContains(t, Check(cfg), "rules: the file has no rules section (the key left out, or nothing after it), where the last run had", "check says so too")
	e.publish(status, fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"tamper":false}`, ts+1000))

	// Mended: the incident is still open, and the report sent meanwhile,
	// evaluated now, resolves it.
	require.NoError(t, os.WriteFile(rulesPath, orig, 0o600))
	e.start()
	e.waitAcked(1)
	require.Equal(t, 1.0, e.gauge("fenceline_config_last_reload_successful"))
	require.Equal(t, 1.0, e.counter("fenceline_alerts_raised_total", map[string]string{"rule": "unit-tamper", "state": "resolved"}))
	require.Equal(t, 0.0, e.metric("fenceline_alerts_open_incidents", tamper).GetGauge().GetValue())
	e.stop()

	// A file emptied of its rules on purpose.
	require.NoError(t, os.WriteFile(rulesPath, []byte(cut+"rules: []\n"), 0o600))
	e.start()
	require.Equal(t, 1.0, e.gauge("fenceline_config_last_reload_successful"))
}

// A reload reads the rules file only; when the daemon's own file changed
// since start, or is gone, it says so in its answer and the log (a restart
// applies it), and stays quiet when it did not.
func TestIntegrationReloadSaysTheDaemonFileChanged(t *testing.T) {
	e, log := newSecureEnv(t, secureOpts{rules: "rules.yaml"})
	const warning = "the daemon's configuration file changed since start"
	// The start said it was loading the rules (seconds for a large
	// deployment), and what it loaded.
	require.Contains(t, log.String(), "loading the rules")
	require.Regexp(t, `msg="rules loaded" devices=6 rules=\d+ took=`, log.String())
	require.Contains(t, log.String(), `msg="no alert state saved here: a first start, with no open incidents" file=`, "a first start says so")
	code, body := e.post("/-/reload")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "reloaded\n", body)
	require.NotContains(t, log.String(), warning)

	orig, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.cfgPath, append(orig, "webhooks: []\n"...), 0o600))
	code, body = e.post("/-/reload")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, warning)
	require.Contains(t, log.String(), warning)

	rulesPath := filepath.Join(e.dir, "rules.yaml")
	rules, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rulesPath, append(rules, "  - {id: bad, kind: nosuch}\n"...), 0o600))
	code, body = e.post("/-/reload")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "nosuch")
	require.Contains(t, body, warning, "told with the rules' problems too")
	require.NoError(t, os.WriteFile(rulesPath, rules, 0o600))

	require.NoError(t, os.Remove(e.cfgPath))
	code, body = e.post("/-/reload")
	require.Equal(t, http.StatusOK, code, "the rules file reloads")
	require.Contains(t, body, warning, "a file gone is told too: the next start would fail")
}

// Run by systemd (Type=notify), the daemon says when it is ready — the
// start counts as done then, and a reload asked for sooner waits for it
// rather than killing the process with a SIGHUP it does not catch yet —
// when it reloads, and when it stops.
func TestIntegrationSystemdNotify(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	e.stop() // mosquitto, started by then, tells systemd of itself too
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func() string {
		t.Helper()
		buf := make([]byte, 256)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(waitTimeout)))
		n, err := conn.Read(buf)
		require.NoError(t, err)
		return string(buf[:n])
	}
	e.start()
	require.Equal(t, "READY=1", next())
	code, body := e.post("/-/reload")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "RELOADING=1", next())
	require.Equal(t, "READY=1", next())
	e.stop()
	require.Equal(t, "STOPPING=1", next())
}

// A POST /-/reload while the daemon drains its writes (SIGTERM given,
// InfluxDB not answering) is answered at once, 503 and why, rather than
// left waiting for a pipeline that has stopped (and holding the exit for
// the HTTP server's own grace after the drain).
func TestIntegrationReloadDuringShutdown(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	e.restartWithStalledInflux("ingest: {drain_timeout: 2s}\n")
	e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, time.Now().UnixMilli()))
	e.waitFor("the write in flight", func() bool { return e.gauge("fenceline_influx_pending_lines") >= 1 })

	stop := e.cancel // SIGTERM
	e.cancel = nil
	stop()
	// The HTTP server stays up while the writes drain.
	client := &http.Client{Timeout: waitTimeout}
	resp, err := client.Post("http://"+e.httpAddr+"/-/reload", "text/plain", nil)
	require.NoError(t, err, "answered")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "reload not applied: fenceline is shutting down\n", string(body))
	select {
	case err := <-e.done:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("daemon did not stop")
	}
}

// restartWithStalledInflux restarts the daemon on an InfluxDB that takes
// writes and never answers them, with extra appended to its config.
func (e *env) restartWithStalledInflux(extra string) {
	t := e.t
	e.stop()
	stall := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(stall) })
	cfg, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(cfg), e.influx.URL(), hung.URL, 1)+extra), 0o600))
	e.start()
}
