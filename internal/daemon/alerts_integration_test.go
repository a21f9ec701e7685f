package daemon

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/sink"
	"github.com/fenceline/fenceline/internal/model"
)

// alertLog collects alerts from one channel (MQTT or the webhook).
type alertLog struct {
	mu     sync.Mutex
	alerts []model.Alert
	errs   []string
}

func (l *alertLog) add(a model.Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alerts = append(l.alerts, a)
}

func (l *alertLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

// keys lists rule/state/subject of every alert, sorted.
func (l *alertLog) keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.alerts))
	for _, a := range l.alerts {
		out = append(out, alertKey(a))
	}
	sort.Strings(out)
	return out
}

func (l *alertLog) all() []model.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]model.Alert(nil), l.alerts...)
}

func alertKey(a model.Alert) string {
	return a.Rule + "/" + a.State + "/" + a.Subject.Kind + ":" + a.Subject.Value
}

func (l *alertLog) find(rule, state string) *model.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.alerts {
		if l.alerts[i].Rule == rule && l.alerts[i].State == state {
			a := l.alerts[i]
			return &a
		}
	}
	return nil
}

func (l *alertLog) has(rule, state string) bool { return l.find(rule, state) != nil }

// subscribeAlerts collects every alert published on border/+/alerts/+, as a
// border unit would, checking each is valid JSON on its own rule's topic.
func (e *env) subscribeAlerts(clientID string) *alertLog {
	e.t.Helper()
	got := &alertLog{}
	sub := connect(e.t, e.mq.URL(), clientID)
	tok := sub.Subscribe("border/+/alerts/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		var a model.Alert
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			got.fail("bad alert JSON on %s: %v", m.Topic(), err)
			return
		}
		if want := "border/" + a.Site + "/alerts/" + a.Rule; m.Topic() != want {
			got.fail("alert on %s, want %s", m.Topic(), want)
		}
		got.add(a)
	})
	require.True(e.t, tok.WaitTimeout(waitTimeout))
	require.NoError(e.t, tok.Error())
	return got
}

// webhookReceiver is a border unit's webhook endpoint checking signatures.
func webhookReceiver(t *testing.T, secret string) (*httptest.Server, *alertLog) {
	log := &alertLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			log.fail("read body: %v", err)
			w.WriteHeader(500)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if got := r.Header.Get("X-Fenceline-Signature"); got != want {
			log.fail("bad signature %q", got)
			w.WriteHeader(401)
			return
		}
		var a model.Alert
		if err := json.Unmarshal(body, &a); err != nil {
			log.fail("bad body: %v", err)
			w.WriteHeader(400)
			return
		}
		log.add(a)
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

// lastNight returns the latest 23:10 Asia/Shanghai at least an hour before
// now: the tests' readings of that night are older than patrol_max_age
// (30m) when processed, whatever the time the tests run at (run just after
// 23:10, a night a minute old made P-07 a nearest patrol).
func lastNight(t *testing.T) time.Time {
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	now := time.Now().In(loc)
	n := time.Date(now.Year(), now.Month(), now.Day(), 23, 10, 4, 120e6, loc)
	if n.After(now.Add(-time.Hour)) {
		n = n.AddDate(0, 0, -1)
	}
	return n
}

func TestIntegrationAlertsScriptedIncidents(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("s3cret\n"), 0o600))
	hook, hooked := webhookReceiver(t, "s3cret")
	e := newEnv(t, "alert-rules.yaml", fmt.Sprintf("webhooks: [{url: %q, secret_file: %q}]\n", hook.URL, secretFile))

	onMQTT := e.subscribeAlerts("border-unit")

	night := lastNight(t)
	day := night.Add(-11 * time.Hour) // 12:10 local
	published := 0
	pub := func(topic, format string, args ...any) {
		e.publish(topic, fmt.Sprintf(format, args...))
		published++
	}

	// Ordinary traffic: a local phone at the ruins by day, a local plate, a
	// patrol outside the strip, a healthy status. None of it is an alert.
	pub("border/mdl/fence/F-AOL-01/detections", `{"v":1,"seq":1,"ts":%d,"detections":[{"imsi":"460001234567890","rssi":-70}]}`, day.UnixMilli())
	pub("border/mdl/checkpoint/CP-07/passes", `{"v":1,"seq":1,"ts":%d,"passes":[{"plate":"蒙B12345","direction":"outbound","speed_kmh":80}]}`, day.UnixMilli())
	pub("border/mdl/patrol/P-07/position", `{"v":1,"seq":1,"ts":%d,"lat":42.60,"lon":110.12}`, night.UnixMilli())
	pub("border/mdl/checkpoint/CP-07/status", `{"v":1,"seq":2,"ts":%d,"battery_pct":87,"tamper":false}`, day.UnixMilli())
	e.waitAcked(published)
	e.waitFor("no alerts pending", func() bool { return e.gaugeSum("fenceline_alerts_pending") == 0 })
	require.Empty(t, onMQTT.keys(), "ordinary traffic raises nothing")

	// A Mongolian SIM at the ruins at night (the fence unit's own position).
	pub("border/mdl/fence/F-AOL-01/detections", `{"v":1,"seq":2,"ts":%q,"detections":[{"imsi":"428991234567890","rssi":-88,"tech":"gsm"}]}`, night.Format(time.RFC3339Nano))
	// A watch-listed plate, written as a camera might.
	pub("border/mdl/checkpoint/CP-07/passes", `{"v":1,"seq":3,"ts":%d,"passes":[{"plate":" 蒙b7k3q2 ","direction":"outbound"}]}`, night.UnixMilli())
	// A cloned plate: 80 km apart, 10 minutes apart.
	pub("border/mdl/checkpoint/CP-07/passes", `{"v":1,"seq":4,"ts":%d,"passes":[{"plate":"蒙B9X8Y7"}]}`, night.Add(time.Minute).UnixMilli())
	pub("border/mdl/checkpoint/CP-04/passes", `{"v":1,"seq":1,"ts":%d,"passes":[{"plate":"蒙B9X8Y7"}]}`, night.Add(11*time.Minute).UnixMilli())
	// A patrol entering the border strip.
	pub("border/mdl/patrol/P-07/position", `{"v":1,"seq":2,"ts":%d,"lat":42.70,"lon":110.12}`, night.Add(time.Minute).UnixMilli())
	// A tampered unit, then repaired.
	pub("border/mdl/checkpoint/CP-07/status", `{"v":1,"seq":5,"ts":%d,"battery_pct":80,"tamper":true}`, night.UnixMilli())
	e.waitFor("tamper alert", func() bool { return onMQTT.has("unit-tamper", model.StateFiring) })
	pub("border/mdl/checkpoint/CP-07/status", `{"v":1,"seq":6,"ts":%d,"battery_pct":80,"tamper":false}`, night.Add(time.Minute).UnixMilli())
	// A fence unit that reports, falls silent past its expect_every (1s),
	// then comes back.
	pub("border/sil/fence/F-SIL-01/status", `{"v":1,"seq":1,"ts":%d}`, time.Now().UnixMilli())
	e.waitFor("silence alert", func() bool { return onMQTT.has("unit-offline", model.StateFiring) })
	pub("border/sil/fence/F-SIL-01/status", `{"v":1,"seq":2,"ts":%d}`, time.Now().UnixMilli())

	want := []string{
		"cloned-plate/firing/plate:蒙B9X8Y7",
		"foreign-sim-near-border/firing/imsi:428991234567890",
		"night-phone-ruins/firing/imsi:428991234567890",
		"patrol-in-strip/firing/patrol:P-07",
		"plate-of-interest/firing/plate:蒙B7K3Q2",
		"unit-tamper/firing/device:CP-07",
		"unit-tamper/resolved/device:CP-07",
	}
	e.waitAcked(published)
	e.waitFor("every alert delivered", func() bool {
		return onMQTT.has("unit-offline", model.StateResolved) && hooked.has("unit-offline", model.StateResolved) &&
			len(withoutSilence(onMQTT.keys())) >= len(want) && len(withoutSilence(hooked.keys())) >= len(want) &&
			e.gaugeSum("fenceline_alerts_pending") == 0
	})
	require.Empty(t, onMQTT.errs)
	require.Empty(t, hooked.errs)
	require.Equal(t, want, withoutSilence(onMQTT.keys()), "exactly the scripted incidents, each once, on MQTT")
	require.Equal(t, want, withoutSilence(hooked.keys()), "and at the webhook, signed")
	// The silent unit: firing, then resolved when it reports. (With a 1 s
	// expect_every it may go silent again after that, legitimately.)
	for _, l := range []*alertLog{onMQTT, hooked} {
		var states []string
		for _, a := range l.all() {
			if a.Rule == "unit-offline" {
				states = append(states, a.State)
			}
		}
		require.GreaterOrEqual(t, len(states), 2)
		require.Equal(t, []string{model.StateFiring, model.StateResolved}, states[:2])
	}

	sim := onMQTT.find("foreign-sim-near-border", model.StateFiring)
	require.Equal(t, "critical", sim.Severity)
	require.Equal(t, "mdl", sim.Site)
	require.True(t, sim.At.Equal(night), "at is the reading's time")
	require.True(t, sim.Late, "raised hours after the reading")
	require.Equal(t, "F-AOL-01", sim.Evidence[0].Device)
	require.Equal(t, int64(2), sim.Evidence[0].Seq)
	require.NotNil(t, sim.Location)
	require.InDelta(t, 41.96, sim.Location.Lat, 1e-9)
	require.NotEmpty(t, sim.Summary)
	ruins := onMQTT.find("night-phone-ruins", model.StateFiring)
	require.Equal(t, "aolunsumu-ruins", ruins.Zone)
	require.Contains(t, ruins.Notify, "station-mdl")
	require.Len(t, ruins.NearestPatrols, 0, "P-07's fix is older than patrol_max_age at processing time")

	off := onMQTT.find("unit-offline", model.StateFiring)
	back := onMQTT.find("unit-offline", model.StateResolved)
	require.Equal(t, off.ID, back.ID, "firing and resolved share the incident id")

	// The alert measurement holds one point per alert, tagged as the contract says.
	rows := e.rows(`SELECT * FROM alert WHERE rule != 'unit-offline'`)
	require.Len(t, rows, len(want))
	for _, r := range rows {
		require.NotEmpty(t, r["id"])
		require.Contains(t, []any{"firing", "resolved"}, r["state"])
	}
	require.GreaterOrEqual(t, e.counter("fenceline_alerts_delivered_total", map[string]string{"sink": sink.WebhookName(hook.URL)}), float64(len(want)+2))
}

func withoutSilence(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !strings.HasPrefix(k, "unit-offline/") {
			out = append(out, k)
		}
	}
	return out
}

// Five foreign SIMs in one message are five alerts of one series at one
// instant: each is a point of its own in the alert measurement (they were
// one, the last overwriting the others).
func TestIntegrationAlertsAtOneInstant(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	day := lastNight(t).Add(-11 * time.Hour)
	var dets []string
	for i := range 5 {
		dets = append(dets, fmt.Sprintf(`{"imsi":"42899123456789%d"}`, i))
	}
	e.publish("border/mdl/fence/F-AOL-01/detections", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"detections":[%s]}`, day.UnixMilli(), strings.Join(dets, ",")))
	e.waitAcked(1)
	e.waitFor("alerts delivered", func() bool {
		return e.counter("fenceline_alerts_delivered_total", map[string]string{"sink": "influx"}) >= 5 && e.gaugeSum("fenceline_alerts_pending") == 0
	})
	rows := e.rows(`SELECT * FROM alert WHERE rule = 'foreign-sim-near-border'`)
	require.Len(t, rows, 5)
	subjects := map[any]bool{}
	for _, r := range rows {
		subjects[r["subject"]] = true
		ns, err := r["time"].(json.Number).Int64()
		require.NoError(t, err)
		require.Equal(t, day.UnixMilli(), ns/int64(time.Millisecond), "the event's millisecond")
	}
	require.Len(t, subjects, 5)
}

// A still-firing incident is re-sent every repeat_interval, and the
// re-sends reach the receivers (the outbox took them for duplicates).
func TestIntegrationAlertsRepeatInterval(t *testing.T) {
	e := newEnv(t, "repeat-rules.yaml", "")
	onMQTT := e.subscribeAlerts("border-unit")
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"temp_c":-40}`, time.Now().UnixMilli()))
	e.waitFor("two re-sends", func() bool { return len(onMQTT.all()) >= 3 })
	all := onMQTT.all()
	for i, a := range all[:3] {
		require.Equal(t, all[0].ID, a.ID)
		require.Equal(t, model.StateFiring, a.State)
		require.Equal(t, i, a.Repeat)
	}
	require.True(t, all[2].RaisedAt.After(all[1].RaisedAt))

	// In the alert measurement the re-sends rewrite the firing's point.
	e.waitFor("the re-sends stored", func() bool {
		return e.counter("fenceline_alerts_delivered_total", map[string]string{"sink": "influx"}) >= 3
	})
	points := e.rows(fmt.Sprintf(`SELECT "count" FROM alert WHERE id = '%s'`, all[0].ID))
	require.Len(t, points, 1, "one point for the firing and its re-sends: %v", points)
}

// A border unit gets alerts in the order they were raised: a tamper
// incident's firing (which waits for the save of the state that holds the
// open incident) comes before the foreign SIMs seen right after it, whose
// alerts need no save (they went out first, and a duty officer read them
// without the tampering that preceded them).
func TestIntegrationAlertsReachUnitsInOrderRaised(t *testing.T) {
	e := newEnv(t, "alert-rules.yaml", "")
	onMQTT := e.subscribeAlerts("border-unit")
	now := time.Now()
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, now.UnixMilli()))
	const sims = 5
	for i := range sims {
		e.publish("border/mdl/fence/F-AOL-01/detections",
			fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"42899123456780%d"}]}`, i+1, now.UnixMilli(), i))
	}
	// At night (Asia/Shanghai) the phones at the ruins raise
	// night-phone-ruins too: left out.
	order := func() []string {
		var got []string
		for _, a := range onMQTT.all() {
			if a.Rule != "night-phone-ruins" {
				got = append(got, a.Rule+"/"+a.State)
			}
		}
		return got
	}
	e.waitFor("every alert", func() bool { return len(order()) >= 1+sims })
	want := []string{"unit-tamper/firing"}
	for range sims {
		want = append(want, "foreign-sim-near-border/firing")
	}
	require.Equal(t, want, order())
}
