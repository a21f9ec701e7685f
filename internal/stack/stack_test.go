package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// testTimeout bounds each wait in these tests; generous because CI machines stall.
const testTimeout = 30 * time.Second

func mqttConnect(t *testing.T, url, clientID string, clean bool, onConnect mqtt.OnConnectHandler) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetOnConnectHandler(onConnect)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", clientID, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func wait(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(testTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestIntegrationMosquittoPubSub(t *testing.T) {
	t.Parallel()
	m := testenv.Mosquitto(t)
	if !strings.HasPrefix(m.URL(), "tcp://127.0.0.1:") || m.Addr() != strings.TrimPrefix(m.URL(), "tcp://") {
		t.Fatalf("URL %q / Addr %q", m.URL(), m.Addr())
	}

	got := make(chan mqtt.Message, 1)
	sub := mqttConnect(t, m.URL(), "sub", true, nil)
	wait(t, "subscribe", sub.Subscribe("border/+/+/+/+", 1, func(_ mqtt.Client, msg mqtt.Message) { got <- msg }))

	pub := mqttConnect(t, m.URL(), "pub", true, nil)
	wait(t, "publish", pub.Publish("border/mdl/fence/F-AOL-01/detections", 1, false, `{"v":1,"seq":1}`))

	select {
	case msg := <-got:
		if msg.Topic() != "border/mdl/fence/F-AOL-01/detections" || string(msg.Payload()) != `{"v":1,"seq":1}` || msg.Qos() != 1 {
			t.Fatalf("got topic %q payload %q qos %d", msg.Topic(), msg.Payload(), msg.Qos())
		}
	case <-time.After(testTimeout):
		t.Fatal("message not delivered")
	}
}

// An offline persistent-session subscriber gets every QoS 1 message published while it was away,
// across a broker restart: the guarantee fenceline's ingest relies on.
func TestIntegrationMosquittoPersistentSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	m := testenv.Mosquitto(t, stack.MosquittoOptions{Persistence: true})
	const topic = "border/mdl/checkpoint/CP-07/passes"
	const n = 5

	// Register the session and its subscription, then go away.
	first := mqttConnect(t, m.URL(), "fenceline-test", false, nil)
	wait(t, "subscribe", first.Subscribe(topic, 1, func(mqtt.Client, mqtt.Message) {}))
	first.Disconnect(250)

	pub := mqttConnect(t, m.URL(), "pub", true, nil)
	for i := range n {
		wait(t, "publish", pub.Publish(topic, 1, false, fmt.Sprintf(`{"v":1,"seq":%d}`, i+1)))
	}
	pub.Disconnect(250)

	if err := m.Restart(context.Background()); err != nil {
		t.Fatalf("restart: %v", err)
	}

	// The session is resumed, not re-subscribed: queued messages flow as soon as it connects.
	got := make(chan string, 2*n)
	opts := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("fenceline-test").
		SetCleanSession(false).SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { got <- string(msg.Payload()) })
	c := mqtt.NewClient(opts)
	wait(t, "reconnect", c.Connect())
	t.Cleanup(func() { c.Disconnect(100) })

	seen := map[string]bool{}
	deadline := time.After(testTimeout)
	for len(seen) < n {
		select {
		case p := <-got:
			seen[p] = true
		case <-deadline:
			t.Fatalf("after restart got %d of %d queued messages: %v\nbroker log:\n%s", len(seen), n, seen, stack.LogTail(m.LogPath(), 30))
		}
	}
	for i := range n {
		if p := fmt.Sprintf(`{"v":1,"seq":%d}`, i+1); !seen[p] {
			t.Errorf("missing %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "mosquitto.db")); err != nil {
		t.Errorf("persistence file: %v", err)
	}
}

func TestIntegrationMosquittoStopKillRestart(t *testing.T) {
	t.Parallel()
	m := testenv.Mosquitto(t)
	m.Kill()
	if _, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
		t.Fatal("broker still accepting after Kill")
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop after Kill: %v", err)
	}
	if err := m.Restart(context.Background()); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	c := mqttConnect(t, m.URL(), "after-restart", true, nil)
	c.Disconnect(100)
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestIntegrationMosquittoPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = stack.StartMosquitto(context.Background(), stack.MosquittoOptions{Dir: t.TempDir(), Port: port})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("start on a taken port: got %v, want an in-use error", err)
	}
}

func TestIntegrationInfluxWriteQueryRestart(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if in.Database() != "border" || in.Bucket() != "border/autogen" {
		t.Fatalf("database %q bucket %q", in.Database(), in.Bucket())
	}

	const ts = 1795741804120000000
	lines := fmt.Sprintf("phone_detection,site=mdl,device=F-AOL-01,mcc=460 imsi=\"460001234567890\",rssi=-71i,seq=18231i %d\n"+
		"phone_detection,site=mdl,device=F-AOL-01,mcc=428 imsi=\"428991234567890\",seq=18231i %d\n", ts, ts)
	if err := in.Write(ctx, lines); err != nil {
		t.Fatal(err)
	}

	series, err := in.Query(ctx, `SELECT * FROM phone_detection WHERE mcc = '460'`)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 || len(series[0].Values) != 1 {
		t.Fatalf("got %+v, want one series with one row", series)
	}
	row := series[0].Rows()[0]
	if row["imsi"] != "460001234567890" || row["site"] != "mdl" {
		t.Errorf("row %v", row)
	}
	// Integers must survive with every digit: json.Number, not float64.
	if tm, ok := row["time"].(json.Number); !ok || tm.String() != fmt.Sprint(ts) {
		t.Errorf("time = %#v, want json.Number %d", row["time"], ts)
	}
	if seq, ok := row["seq"].(json.Number); !ok || seq.String() != "18231" {
		t.Errorf("seq = %#v", row["seq"])
	}

	countIs := func(measurement string, want int) {
		t.Helper()
		if n, err := in.Count(ctx, measurement); err != nil || n != want {
			t.Fatalf("Count(%s) = %d, %v; want %d", measurement, n, err, want)
		}
	}
	// The second point has no rssi: COUNT(rssi) would say 1, Count must say 2.
	countIs("phone_detection", 2)
	countIs("no_such_measurement", 0)

	if err := in.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	countIs("phone_detection", 2)

	// After a crash, acknowledged writes come back from the WAL.
	if err := in.Write(ctx, fmt.Sprintf("device_status,site=mdl,kind=fence,device=F-AOL-01 battery_pct=87i,seq=77i %d\n", ts)); err != nil {
		t.Fatal(err)
	}
	in.Kill()
	if err := in.Restart(ctx); err != nil {
		t.Fatalf("restart after kill: %v", err)
	}
	countIs("device_status", 1)
	countIs("phone_detection", 2)

	if _, err := in.Query(ctx, "SELECT FROM"); err == nil {
		t.Error("bad query: no error")
	}
}

// fenceline writes through the /api/v2/write compatibility API (bucket db/rp), which works
// without Flux; Flux queries work when asked for.
func TestIntegrationInfluxV2WriteAndFlux(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t, stack.InfluxOptions{Flux: true})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	post := func(path, contentType, body string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
		}
		return string(b)
	}
	post("/api/v2/write?bucket="+url.QueryEscape(in.Bucket())+"&precision=ns", "text/plain",
		"patrol_position,site=mdl,device=P-07 lat=42.41,lon=110.12,seq=9i 1795741804120000000\n")
	if n, err := in.Count(ctx, "patrol_position"); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	csv := post("/api/v2/query", "application/vnd.flux",
		`from(bucket: "border/autogen") |> range(start: 2020-01-01T00:00:00Z, stop: 2100-01-01T00:00:00Z) |> filter(fn: (r) => r._measurement == "patrol_position" and r._field == "lat")`)
	if !strings.Contains(csv, "42.41") {
		t.Fatalf("flux result lacks the point:\n%s", csv)
	}
}

func TestIntegrationInfluxCountLarge(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// More points than one chunk (10,000) so Count must add chunks up.
	const n = 25_000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "vehicle_pass,site=mdl,device=CP-07 plate=\"B%05d\",seq=%di %d\n", i, i, 1795741804120000000+int64(i))
	}
	if err := in.Write(ctx, b.String()); err != nil {
		t.Fatal(err)
	}
	if got, err := in.WaitCount(ctx, "vehicle_pass", n); err != nil || got != n {
		t.Fatalf("WaitCount = %d, %v; want %d", got, err, n)
	}
}

func TestQuoteIdent(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"border", `"border"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"phone detection", `"phone detection"`},
	} {
		if got := stack.QuoteIdent(tc.in); got != tc.want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		n    int
		want string
	}{
		{path, 2, "two\nthree"},
		{path, 10, "one\ntwo\nthree"},
		{filepath.Join(dir, "missing"), 2, "(log unavailable"},
	} {
		if got := stack.LogTail(tc.path, tc.n); !strings.HasPrefix(got, tc.want) {
			t.Errorf("LogTail(%s, %d) = %q, want prefix %q", tc.path, tc.n, got, tc.want)
		}
	}
}
