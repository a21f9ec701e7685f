package daemon

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/protect"
)

var (
	fenceKey = mustHexKey("8f1c2a0e9b7d4c3a8f1c2a0e9b7d4c3a11223344556677889900aabbccddeeff")
	cpKey    = mustHexKey("00112233445566778899aabbccddeeff")
	forgeKey = mustHexKey("ffeeddccbbaa99887766554433221100")
)

func mustHexKey(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestIntegrationDeviceSignatures: with signatures required, only messages
// signed with the device's key and a new seq reach storage; unsigned,
// forged, replayed and spoofed messages are dead-lettered with their reason,
// and a redelivered copy is acked and stored once.
func TestIntegrationDeviceSignatures(t *testing.T) {
	e, _ := newSecureEnv(t, secureOpts{rules: "rules.yaml",
		extra: "ingest: {signatures: {required: true, key_file: devices.keys}}\n",
		files: map[string]string{"devices.keys": "# fence units\nF-AOL-01:" + hex.EncodeToString(fenceKey) + "\n"}})
	const topic = "border/mdl/fence/F-AOL-01/detections"
	ts := time.Now().Add(-time.Minute).UnixMilli()
	body := func(seq int) string {
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"46000123456789%d"}]}`, seq, ts+int64(seq), seq)
	}
	sign := func(key []byte, topic string, seq int) string {
		return string(devicesig.Sign(key, topic, []byte(body(seq))))
	}
	cases := []struct {
		name   string
		topic  string
		body   string
		reason string // "" when accepted
	}{
		{"signed", topic, sign(fenceKey, topic, 1), ""},
		{"redelivered copy", topic, sign(fenceKey, topic, 1), ""},
		{"unsigned", topic, body(2), "bad_signature"},
		{"signed with another key", topic, sign(forgeKey, topic, 3), "bad_signature"},
		{"tampered", topic, strings.Replace(sign(fenceKey, topic, 4), "460001234567894", "460001234567899", 1), "bad_signature"},
		{"newer", topic, sign(fenceKey, topic, 6), ""},
		{"older seq replayed", topic, sign(fenceKey, topic, 5), "replayed"},
		{"device without a key", "border/mdl/checkpoint/CP-07/passes",
			fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"passes":[{"plate":"蒙B12345"}]}`, ts), "bad_signature"},
		{"spoofed site", "border/btu/fence/F-AOL-01/detections", sign(fenceKey, "border/btu/fence/F-AOL-01/detections", 7), "device_mismatch"},
	}
	var wantReasons []string
	for i, c := range cases {
		e.publish(c.topic, c.body)
		e.waitAcked(i + 1)
		if c.reason != "" {
			wantReasons = append(wantReasons, c.reason)
		}
	}
	var got []string
	for _, r := range e.deadLetters() {
		got = append(got, r.Reason)
	}
	require.Equal(t, wantReasons, got, "each rejection dead-lettered with its reason")
	require.Equal(t, 2, e.count("phone_detection"), "seq 1 (once, although delivered twice) and seq 6")
	for _, row := range e.rows(`SELECT imsi FROM phone_detection`) {
		require.Contains(t, []string{"460001234567891", "460001234567896"}, row["imsi"])
	}
	require.Equal(t, 4.0, e.counter("fenceline_ingest_rejections_total", map[string]string{"reason": "bad_signature"}))
	require.Equal(t, 1.0, e.counter("fenceline_ingest_rejections_total", map[string]string{"reason": "replayed"}))
	require.Equal(t, 1.0, e.counter("fenceline_ingest_signature_checks_total", map[string]string{"outcome": "duplicate"}))

	// The acked mark survives a restart: seq 1 cannot be replayed after it.
	e.stop()
	e.start()
	e.publish(topic, sign(fenceKey, topic, 1))
	e.waitAcked(1)
	recs := e.deadLetters()
	require.Equal(t, "replayed", recs[len(recs)-1].Reason)
	require.Equal(t, 2, e.count("phone_detection"))

	// A reload re-reads the keys: a unit re-keyed after losing its counter
	// starts again at seq 1, and its old key is refused.
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "devices.keys"), []byte("F-AOL-01:"+hex.EncodeToString(forgeKey)+"\n"), 0o600))
	code, out := e.post("/-/reload")
	require.Equal(t, 200, code, out)
	e.publish(topic, sign(fenceKey, topic, 8))
	e.publish(topic, string(devicesig.Sign(forgeKey, topic, []byte(body(1)))))
	e.waitAcked(3)
	recs = e.deadLetters()
	require.Equal(t, "bad_signature", recs[len(recs)-1].Reason, "the old key is gone")
	require.Equal(t, 2, e.count("phone_detection"), "seq 1 again: the same point as before, rewritten")
	require.Equal(t, 1.0, e.counter("fenceline_ingest_signature_checks_total", map[string]string{"outcome": "valid"}))
}

// TestIntegrationHashedIdentifiers: with hashing on, InfluxDB holds keyed
// hashes of IMSI, IMEI, MAC and plates, never the values; watchlist alerts
// still fire on the raw values, reach units raw (alert_subjects: raw) and
// are stored hashed in the alert measurement.
func TestIntegrationHashedIdentifiers(t *testing.T) {
	const privacyKey = "5a3f0c9e1b7d2a4c6e8f0a1b2c3d4e5f"
	e, _ := newSecureEnv(t, secureOpts{rules: "rules.yaml",
		extra: "privacy: {hash_identifiers: true, hash_plates: true, key_file: privacy.key}\n",
		files: map[string]string{"privacy.key": privacyKey + "\n"}})
	h, err := protect.NewHasher([]byte(privacyKey))
	require.NoError(t, err)
	got := subscribeAlerts(t, e)

	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	detections, passes, _, _ := contractMessages(base)
	passes = strings.Replace(passes, "蒙B12345", "蒙B7K3Q2", 1) // on plates-of-interest
	e.publish("border/mdl/fence/F-AOL-01/detections", detections)
	e.publish("border/mdl/checkpoint/CP-07/passes", passes)
	e.waitAcked(2)

	sent := map[string]map[string]bool{
		"imsi": {"460001234567890": true, "428991234567890": true},
		"imei": {"490154203237518": true},
		"mac":  {"a4:5e:60:12:34:56": true},
	}
	phones := e.rows(`SELECT * FROM phone_detection`)
	require.Len(t, phones, 2)
	for _, row := range phones {
		for kind, values := range sent {
			v, ok := row[kind].(string)
			if !ok {
				continue // absent in this detection
			}
			found := false
			for raw := range values {
				found = found || v == h.Hash(kind, raw)
			}
			require.True(t, found, "%s %q is the keyed hash of a sent value", kind, v)
		}
		require.Contains(t, []string{"460", "428"}, row["mcc"], "mcc stays")
		require.Contains(t, []string{"46000", "42899"}, row["operator"], "operator stays")
	}
	plates := e.rows(`SELECT plate FROM vehicle_pass`)
	require.Len(t, plates, 1)
	require.Equal(t, h.Hash("plate", "蒙B7K3Q2"), plates[0]["plate"])

	// The watchlists matched the raw values; units get them raw.
	e.waitFor("both watchlist alerts", func() bool {
		return got.has("foreign-sim-near-border", model.StateFiring) && got.has("plate-of-interest", model.StateFiring)
	})
	require.Equal(t, "428991234567890", got.find("foreign-sim-near-border", model.StateFiring).Subject.Value)
	require.Equal(t, "蒙B7K3Q2", got.find("plate-of-interest", model.StateFiring).Subject.Value)

	// The alert measurement stores them hashed like the readings.
	stored := map[string]map[string]any{}
	e.waitFor("both watchlist alerts stored", func() bool {
		for _, row := range e.rows(`SELECT * FROM alert`) {
			stored[row["rule"].(string)] = row
		}
		return stored["foreign-sim-near-border"] != nil && stored["plate-of-interest"] != nil
	})
	require.Equal(t, "imsi:"+h.Hash("imsi", "428991234567890"), stored["foreign-sim-near-border"]["subject"])
	require.Equal(t, "plate:"+h.Hash("plate", "蒙B7K3Q2"), stored["plate-of-interest"]["subject"])
	// One incident, one id: the units' raw alert and the stored one share it.
	require.Equal(t, got.find("foreign-sim-near-border", model.StateFiring).ID, stored["foreign-sim-near-border"]["id"])
	require.Equal(t, got.find("plate-of-interest", model.StateFiring).ID, stored["plate-of-interest"]["id"])

	// Nothing raw anywhere in the stored data.
	for _, m := range []string{"phone_detection", "vehicle_pass", "alert"} {
		dump, err := json.Marshal(e.rows(`SELECT * FROM ` + m))
		require.NoError(t, err)
		for _, raw := range []string{"460001234567890", "428991234567890", "490154203237518", "a4:5e:60:12:34:56", "蒙B7K3Q2", "7K3Q2"} {
			require.NotContains(t, string(dump), raw, "measurement %s", m)
		}
	}
}

// subscribeAlerts collects the alerts published on MQTT.
func subscribeAlerts(t *testing.T, e *env) *alertLog {
	t.Helper()
	got := &alertLog{}
	sub := connect(t, e.mq.URL(), "border-unit")
	tok := sub.Subscribe("border/+/alerts/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		var a model.Alert
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			got.fail("bad alert: %v", err)
			return
		}
		got.add(a)
	})
	require.True(t, tok.WaitTimeout(waitTimeout))
	require.NoError(t, tok.Error())
	return got
}

// TestIntegrationReloadNeedsTokenOffLoopback binds every interface (all
// traffic stays on loopback: the test dials 127.0.0.1) with a token file:
// reload without the token is refused and changes nothing; the read
// endpoints stay open.
func TestIntegrationReloadNeedsTokenOffLoopback(t *testing.T) {
	const token = "6b1d0e4f9a2c8e7d5f3b1a0c9e8d7f6a"
	e, log := newSecureEnv(t, secureOpts{rules: "rules.yaml",
		http:  `{listen: "0.0.0.0:0", token_file: http.token}`,
		files: map[string]string{"http.token": token + "\n"}})
	rulesPath := filepath.Join(e.dir, "rules.yaml")
	orig, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rulesPath, []byte(strings.Replace(string(orig), "max_kmh: 180", "max_khm: 180", 1)), 0o600))

	require.Equal(t, 401, e.request("POST", "/-/reload", ""), "no token")
	require.Equal(t, 401, e.request("POST", "/-/reload", "not-the-token-at-all-0000000000"), "wrong token")
	require.Equal(t, 1.0, e.gauge("fenceline_config_last_reload_successful"), "refused before reading anything")
	require.Equal(t, 0.0, e.counter("fenceline_config_reload_failures_total", nil))
	require.Equal(t, 400, e.request("POST", "/-/reload", token), "with the token the (broken) rules are read and refused")
	require.Equal(t, 1.0, e.counter("fenceline_config_reload_failures_total", nil))
	require.Contains(t, log.String(), "reload refused", "a refused POST /-/reload is logged")
	require.Contains(t, log.String(), ".max_khm", "where the problem is")
	require.NoError(t, os.WriteFile(rulesPath, orig, 0o600))
	require.Equal(t, 200, e.request("POST", "/-/reload", token))
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		require.Equal(t, 200, e.request("GET", path, ""), path)
	}
}

// TestIntegrationLogsHoldNoIdentifiersOrSecrets runs the daemon through
// rejections (bad signature, a bad reading), alerts (a watch-listed SIM and
// plate) and a refused reload, and checks that its log — at debug level,
// stricter than the info level promised — holds no IMSI, IMEI, MAC, plate
// or secret.
func TestIntegrationLogsHoldNoIdentifiersOrSecrets(t *testing.T) {
	const (
		privacyKey    = "5a3f0c9e1b7d2a4c6e8f0a1b2c3d4e5f"
		httpToken     = "6b1d0e4f9a2c8e7d5f3b1a0c9e8d7f6a"
		webhookSecret = "wh-secret-4f2a9c7e1d3b"
		influxToken   = "influx-token-9e8d7c6b5a"
	)
	hook, hookGot := webhookReceiver(t, webhookSecret)
	t.Setenv(EnvInfluxToken, influxToken) // InfluxDB 1.8 without auth ignores it
	e, log := newSecureEnv(t, secureOpts{rules: "rules.yaml",
		http: `{listen: "127.0.0.1:0", token_file: http.token}`,
		extra: fmt.Sprintf(`ingest: {signatures: {required: false, key_file: devices.keys}}
privacy: {hash_identifiers: true, hash_plates: true, key_file: privacy.key}
webhooks: [{url: %q, secret_file: webhook.secret}]
`, hook.URL),
		files: map[string]string{
			"devices.keys":   "F-AOL-01:" + hex.EncodeToString(fenceKey) + "\nCP-07:" + hex.EncodeToString(cpKey) + "\n",
			"privacy.key":    privacyKey + "\n",
			"http.token":     httpToken + "\n",
			"webhook.secret": webhookSecret + "\n",
		}})
	got := subscribeAlerts(t, e)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	const fence, checkpoint = "border/mdl/fence/F-AOL-01/detections", "border/mdl/checkpoint/CP-07/passes"
	msgs := []struct{ topic, body string }{
		// A watch-listed SIM and one with a bad rssi: an alert and a rejection.
		{fence, string(devicesig.Sign(fenceKey, fence, fmt.Appendf(nil,
			`{"v":1,"seq":1,"ts":%d,"detections":[{"imsi":"428991234567890","imei":"490154203237518","mac":"a4:5e:60:12:34:56"},{"imsi":"460001234567890","rssi":12}]}`, ts)))},
		// Forged: a bad signature carrying an IMSI.
		{fence, string(devicesig.Sign(forgeKey, fence, fmt.Appendf(nil, `{"v":1,"seq":2,"ts":%d,"detections":[{"imsi":"428990000000001"}]}`, ts)))},
		// A watch-listed plate.
		{checkpoint, string(devicesig.Sign(cpKey, checkpoint, fmt.Appendf(nil, `{"v":1,"seq":1,"ts":%d,"passes":[{"plate":"蒙B7K3Q2"}]}`, ts)))},
		// A bad plate reading next to a good one.
		{checkpoint, string(devicesig.Sign(cpKey, checkpoint, fmt.Appendf(nil, `{"v":1,"seq":2,"ts":%d,"passes":[{"plate":"蒙B54321","direction":"sideways"}]}`, ts)))},
	}
	for i, m := range msgs {
		e.publish(m.topic, m.body)
		e.waitAcked(i + 1)
	}
	e.waitFor("alerts on MQTT and at the webhook", func() bool {
		return got.has("foreign-sim-near-border", model.StateFiring) && got.has("plate-of-interest", model.StateFiring) &&
			hookGot.has("plate-of-interest", model.StateFiring)
	})
	require.Equal(t, 401, e.request("POST", "/-/reload", "wrong-token-0000000000000000"))
	var reasons []string
	for _, r := range e.deadLetters() {
		reasons = append(reasons, r.Reason)
	}
	require.ElementsMatch(t, []string{"bad_rssi", "bad_signature", "bad_direction"}, reasons)
	e.stop()

	logged := log.String()
	require.Contains(t, logged, "rejected", "the rejections were logged")
	require.Contains(t, logged, "refused a request without a valid bearer token")
	for _, secret := range []string{
		"428991234567890", "460001234567890", "428990000000001", "490154203237518", "a4:5e:60:12:34:56",
		"蒙B7K3Q2", "7K3Q2", "蒙B54321", "B54321",
		privacyKey, httpToken, webhookSecret, influxToken,
		hex.EncodeToString(fenceKey), hex.EncodeToString(cpKey),
	} {
		require.NotContains(t, logged, secret)
	}
}

// A signed unit's retained message comes again at every subscription: the
// broker's copy of the latest message taken on its topic is a duplicate,
// not a replay to dead-letter; an older signed message published retained
// (a replay) still is one.
func TestIntegrationSignedRetainedCopy(t *testing.T) {
	e, _ := newSecureEnv(t, secureOpts{rules: "rules.yaml",
		extra: "ingest: {signatures: {required: true, key_file: devices.keys}}\n",
		files: map[string]string{"devices.keys": "F-AOL-01:" + hex.EncodeToString(fenceKey) + "\n"}})
	const topic = "border/mdl/fence/F-AOL-01/detections"
	ts := time.Now().Add(-time.Minute).UnixMilli()
	signed := func(seq int) string {
		return string(devicesig.Sign(fenceKey, topic, fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"46000123456789%d"}]}`, seq, ts+int64(seq), seq)))
	}
	retain := func(payload string) {
		tok := e.pub.Publish(topic, 1, true, payload)
		require.True(t, tok.WaitTimeout(waitTimeout))
		require.NoError(t, tok.Error())
	}
	retain(signed(1))
	retain(signed(2))
	e.waitAcked(2)
	e.stop()
	e.start()
	e.waitAcked(1) // seq 2's retained copy
	require.Empty(t, e.deadLetters(), "the copy is no replay")
	// At least the copy: seq 2 itself may come again too, when the stop's
	// DISCONNECT overtook its PUBACK in paho's queue (a duplicate as well).
	require.GreaterOrEqual(t, e.counter("fenceline_ingest_signature_checks_total", map[string]string{"outcome": "duplicate"}), 1.0)
	require.Equal(t, 0.0, e.counter("fenceline_ingest_signature_checks_total", map[string]string{"outcome": "replayed"}))

	acked := e.acked()
	retain(signed(1)) // an older message published retained again
	e.waitAcked(acked + 1)
	recs := e.deadLetters()
	require.Len(t, recs, 1)
	require.Equal(t, "replayed", recs[0].Reason)
	require.Equal(t, 2, e.count("phone_detection"))
}
