package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// brokerAccounts are the broker users of the tests, all with the password "pw-<user>": fenceline
// itself, two fence units, a station and the joint command (deploy/mosquitto/fenceline.acl).
var brokerAccounts = []string{"fenceline", "F-AOL-01", "F-MDL-01", "station-mdl", "joint-command"}

// resetToMosquittoDefaults undoes what internal/stack writes into every test broker's config
// before the shipped settings are appended, so that the shipped file alone decides them: with a
// setting missing from it, the test broker runs on mosquitto's default, as production would.
const resetToMosquittoDefaults = `# mosquitto's own defaults (internal/stack sets test-friendly values)
max_queued_messages 1000
max_queued_bytes 0
max_inflight_messages 20
persistence false
`

// shippedBrokerConfig returns deploy/mosquitto/mosquitto.conf adapted to a test broker: the
// options that name host paths or listeners (the test broker has its own port, folder and log)
// are left out, and the password and ACL files are the test's. Every other line — queues,
// persistence, inflight, limits, authentication — is kept as shipped.
func shippedBrokerConfig(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "deploy", "mosquitto", "mosquitto.conf"))
	require.NoError(t, err)
	dropped := map[string]bool{"listener": true, "persistence_location": true, "password_file": true, "acl_file": true,
		"log_dest": true, "user": true, "pid_file": true,
		"cafile": true, "certfile": true, "keyfile": true, "require_certificate": true, "tls_version": true, "use_identity_as_username": true}
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		key, _, _ := strings.Cut(trimmed, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || dropped[key] {
			continue
		}
		kept = append(kept, trimmed)
	}
	require.Contains(t, kept, "allow_anonymous false")

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "fenceline.passwd")
	passwd := mosquittoPasswd(t)
	for i, user := range brokerAccounts {
		args := []string{"-b", pwFile, user, "pw-" + user}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		out, err := exec.Command(passwd, args...).CombinedOutput()
		require.NoError(t, err, "mosquitto_passwd: %s", out)
	}
	acl := filepath.Join(dir, "fenceline.acl")
	data, err = os.ReadFile(repoPath(t, "deploy", "mosquitto", "fenceline.acl"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(acl, data, 0o644))
	return resetToMosquittoDefaults + "# deploy/mosquitto/mosquitto.conf\n" + strings.Join(kept, "\n") +
		fmt.Sprintf("\npassword_file %s\nacl_file %s\n", pwFile, acl)
}

func mosquittoPasswd(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/mosquitto_passwd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("mosquitto_passwd")
	require.NoError(t, err, "mosquitto_passwd not found: run `make deps` (Debian's mosquitto package has it)")
	return p
}

// inbox collects the messages one client receives.
type inbox struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (b *inbox) handler(_ mqtt.Client, m mqtt.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
}

// has reports whether a message with this topic and payload arrived.
func (b *inbox) has(topic, payload string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m.Topic() == topic && string(m.Payload()) == payload {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // the polling interval of a condition, not a synchronisation
	}
}

// brokerClient connects to m as user (password "pw-<user>" unless password is given) with
// the given client id; clean false keeps a persistent session. Messages go to box, those of a
// persistent session's backlog included (they arrive before any Subscribe call).
func brokerClient(t testing.TB, m *stack.Mosquitto, id, user string, clean bool, box *inbox, password ...string) (mqtt.Client, error) {
	t.Helper()
	pw := "pw-" + user
	if len(password) > 0 {
		pw = password[0]
	}
	o := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false).SetConnectTimeout(5 * time.Second)
	if user != "" {
		o.SetUsername(user).SetPassword(pw)
	}
	if box != nil {
		o.SetDefaultPublishHandler(box.handler)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		return nil, fmt.Errorf("connect %s: timeout", id)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

func mustClient(t testing.TB, m *stack.Mosquitto, id, user string, clean bool, box *inbox) mqtt.Client {
	t.Helper()
	c, err := brokerClient(t, m, id, user, clean, box)
	require.NoError(t, err, "connect %s as %s", id, user)
	return c
}

// subscribe subscribes at QoS 1 and returns the granted QoS (0x80: refused).
func subscribe(t testing.TB, c mqtt.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	require.True(t, tok.WaitTimeout(waitTimeout), "subscribe %s", filter)
	require.NoError(t, tok.Error())
	// One filter, one result; paho keys a shared subscription's result by the filter without
	// its $share/<group>/ prefix, so take the only value rather than look the filter up.
	res := tok.(*mqtt.SubscribeToken).Result()
	require.Len(t, res, 1)
	for _, qos := range res {
		return qos
	}
	return 0
}

// publish publishes at QoS 1 and waits for the PUBACK. mosquitto routes a message to its
// subscribers' queues before it acknowledges it, so once this returns, a later message from
// anyone is queued behind it: what makes the "marker" checks below free of sleeps.
func publish(t testing.TB, c mqtt.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(waitTimeout), "publish %s", topic)
	require.NoError(t, tok.Error())
}

// TestIntegrationBrokerConfigKeepsQoS1Backlog runs a real mosquitto with the shipped
// configuration's settings: fenceline's persistent session subscribes and goes away, a device
// publishes 5,000 QoS 1 messages, the broker restarts, fenceline comes back — and must receive
// all 5,000. The same run with mosquitto's default queue limit must lose messages, which shows
// the test can tell.
func TestIntegrationBrokerConfigKeepsQoS1Backlog(t *testing.T) {
	const backlog = 5000
	for _, tc := range []struct {
		name     string
		override string // appended after the shipped settings
		wantAll  bool
	}{
		{name: "shipped config", wantAll: true},
		{name: "mosquitto's default queue limit", override: "max_queued_messages 1000\nmax_queued_bytes 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testenv.Mosquitto(t, stack.MosquittoOptions{Persistence: true, ExtraConfig: shippedBrokerConfig(t) + tc.override})
			box := &inbox{}
			sub := mustClient(t, m, "fenceline-1", "fenceline", false, box)
			require.Equal(t, byte(1), subscribe(t, sub, "border/+/+/+/+"))
			sub.Disconnect(50)

			dev := mustClient(t, m, "F-AOL-01", "F-AOL-01", true, nil)
			topic := "border/mdl/fence/F-AOL-01/detections"
			pad := strings.Repeat("x", 200) // about the size of a small scan
			toks := make([]mqtt.Token, backlog)
			for i := range toks {
				toks[i] = dev.Publish(topic, 1, false, fmt.Sprintf(`{"v":1,"seq":%d,"pad":%q}`, i+1, pad))
			}
			for i, tok := range toks {
				require.True(t, tok.WaitTimeout(waitTimeout), "PUBACK %d", i+1)
				require.NoError(t, tok.Error())
			}
			dev.Disconnect(50)

			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			require.NoError(t, m.Restart(ctx), "broker restart")

			mustClient(t, m, "fenceline-1", "fenceline", false, box)
			// The marker is queued behind whatever the session still holds, so once it is in,
			// the backlog has been delivered (or dropped).
			marker := `{"v":1,"seq":999999}`
			publish(t, mustClient(t, m, "F-AOL-01", "F-AOL-01", true, nil), topic, marker)
			waitFor(t, "the marker", func() bool { return box.has(topic, marker) })
			seen := func() map[string]bool {
				seen := map[string]bool{}
				box.mu.Lock()
				defer box.mu.Unlock()
				for _, msg := range box.msgs {
					if string(msg.Payload()) != marker {
						seen[string(msg.Payload())] = true
					}
				}
				return seen
			}
			if tc.wantAll {
				// The client's handlers run in goroutines of their own
				// (order does not matter to it): the last messages before
				// the marker can be handed over after it.
				waitFor(t, "the whole backlog", func() bool { return len(seen()) == backlog })
			} else {
				seen := seen()
				t.Logf("%d of %d distinct messages delivered after the restart", len(seen), backlog)
				require.Less(t, len(seen), backlog, "mosquitto's defaults lose messages: the test could not tell")
			}
		})
	}
}

// TestIntegrationBrokerACL runs a real mosquitto with the shipped ACL and authentication
// settings and per-account passwords made with mosquitto_passwd, and checks what each account
// may do. A publish the ACL refuses is still acknowledged (MQTT 3.1.1 has no way to say no), so
// "nothing arrived" is shown by a marker published after it, which would have arrived second.
func TestIntegrationBrokerACL(t *testing.T) {
	m := testenv.Mosquitto(t, stack.MosquittoOptions{ExtraConfig: shippedBrokerConfig(t)})
	fenceBox, stationBox, jointBox := &inbox{}, &inbox{}, &inbox{}
	fence := mustClient(t, m, "fenceline-1", "fenceline", true, fenceBox)
	require.Equal(t, byte(1), subscribe(t, fence, "border/+/+/+/+"), "fenceline reads every reading")
	station := mustClient(t, m, "station-mdl", "station-mdl", true, stationBox)
	require.Equal(t, byte(1), subscribe(t, station, "border/mdl/alerts/+"), "a station reads its site's alerts")
	joint := mustClient(t, m, "joint-command", "joint-command", true, jointBox)
	require.Equal(t, byte(1), subscribe(t, joint, "border/+/alerts/+"), "the joint command reads every site's alerts")
	aol := mustClient(t, m, "F-AOL-01", "F-AOL-01", true, nil)

	n := 0
	payload := func() string { n++; return fmt.Sprintf(`{"v":1,"seq":%d}`, n) }
	// deniedTo publishes as user, on a connection of its own, and checks that box never gets
	// it: marker is published by markerFrom to markerTopic afterwards and must arrive.
	// mosquitto 2.0.11 acknowledges a refused QoS 1 publish and then closes the connection
	// (measured: PUBACK, then "Bad socket read/write" in its log), so the publish may end in
	// either; both mean the broker has handled it.
	deniedTo := func(t *testing.T, user, topic string, box *inbox, markerFrom mqtt.Client, markerTopic string) {
		n++
		c := mustClient(t, m, fmt.Sprintf("%s-denied-%d", user, n), user, true, nil)
		p := payload()
		tok := c.Publish(topic, 1, false, p)
		require.True(t, tok.WaitTimeout(waitTimeout), "publish %s", topic)
		if err := tok.Error(); err != nil {
			t.Logf("the broker closed the connection after the refused publish: %v", err)
		}
		marker := payload()
		publish(t, markerFrom, markerTopic, marker)
		waitFor(t, "marker on "+markerTopic, func() bool { return box.has(markerTopic, marker) })
		require.False(t, box.has(topic, p), "%s reached the subscriber", topic)
	}

	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"device publishes under its own id", func(t *testing.T) {
			topic, p := "border/mdl/fence/F-AOL-01/detections", payload()
			publish(t, aol, topic, p)
			waitFor(t, "the reading at fenceline", func() bool { return fenceBox.has(topic, p) })
		}},
		{"device publishes under another device's id", func(t *testing.T) {
			deniedTo(t, "F-AOL-01", "border/mdl/fence/F-MDL-01/detections", fenceBox, aol, "border/mdl/fence/F-AOL-01/status")
		}},
		{"device lies about site and kind but not its id", func(t *testing.T) {
			// Allowed by the broker; fenceline rejects it (device_mismatch) against its registry.
			topic, p := "border/bjm/checkpoint/F-AOL-01/passes", payload()
			publish(t, aol, topic, p)
			waitFor(t, "the message at fenceline", func() bool { return fenceBox.has(topic, p) })
		}},
		{"device publishes an alert", func(t *testing.T) {
			deniedTo(t, "F-AOL-01", "border/mdl/alerts/plate-of-interest", stationBox, fence, "border/mdl/alerts/marker")
		}},
		{"device reads other units' data", func(t *testing.T) {
			// mosquitto 2.0 grants the subscription and refuses each message on delivery, so
			// the test reads the device's socket itself: see rawDelivered.
			mdl := mustClient(t, m, "F-MDL-01", "F-MDL-01", true, nil)
			act := func() { publish(t, mdl, "border/mdl/fence/F-MDL-01/detections", payload()) }
			require.Empty(t, rawDelivered(t, m, "F-AOL-01", "border/+/+/+/+", act))
			// The same reader as fenceline does see it: the check above can fail.
			require.Equal(t, []string{"border/mdl/fence/F-MDL-01/detections"}, rawDelivered(t, m, "fenceline", "border/+/+/+/+", act))
		}},
		{"fenceline publishes alerts to the station and the joint command", func(t *testing.T) {
			topic, p := "border/mdl/alerts/foreign-sim-near-border", payload()
			publish(t, fence, topic, p)
			waitFor(t, "the alert at the station", func() bool { return stationBox.has(topic, p) })
			waitFor(t, "the alert at the joint command", func() bool { return jointBox.has(topic, p) })
		}},
		{"fenceline cannot publish readings", func(t *testing.T) {
			deniedTo(t, "fenceline", "border/mdl/fence/F-AOL-01/detections", fenceBox, aol, "border/mdl/fence/F-AOL-01/status")
		}},
		{"station reads only its own site's alerts", func(t *testing.T) {
			subscribe(t, station, "border/bjm/alerts/+") // granted; the messages are refused on delivery
			deniedTo(t, "fenceline", "border/bjm/alerts/unit-offline", stationBox, fence, "border/mdl/alerts/marker")
		}},
		{"fenceline subscribes as a shared group", func(t *testing.T) {
			box := &inbox{}
			c := mustClient(t, m, "fenceline-2", "fenceline", true, box)
			require.Equal(t, byte(1), subscribe(t, c, "$share/fenceline/border/+/+/+/+"))
			topic, p := "border/mdl/fence/F-AOL-01/detections", payload()
			publish(t, aol, topic, p)
			waitFor(t, "the reading at the shared subscriber", func() bool { return box.has(topic, p) })
		}},
		{"wrong password", func(t *testing.T) {
			_, err := brokerClient(t, m, "F-AOL-01-x", "F-AOL-01", true, nil, "guess")
			require.Error(t, err)
		}},
		{"anonymous", func(t *testing.T) {
			_, err := brokerClient(t, m, "anon", "", true, nil)
			require.Error(t, err)
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}

// rawDelivered connects to m as user with a hand-written MQTT 3.1.1 client, subscribes to
// filter, runs act (which publishes and waits for its PUBACK), then sends PINGREQ and returns
// the topics of the PUBLISH packets that arrive before the PINGRESP. mosquitto queues a
// message for its subscribers before it acknowledges it, and writes a connection's packets in
// order, so a message act published that this client may read arrives before the PINGRESP:
// an empty result is a proof, not a timeout. (paho hands received messages to a goroutine of
// its own, which would leave a window.)
func rawDelivered(t *testing.T, m *stack.Mosquitto, user, filter string, act func()) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", m.Addr(), waitTimeout)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitTimeout)))
	r := bufio.NewReader(conn)
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	send := func(typ byte, body []byte) {
		pkt := []byte{typ}
		for n := len(body); ; { // remaining length, 7 bits a byte
			b := byte(n % 128)
			if n /= 128; n > 0 {
				b |= 0x80
			}
			pkt = append(pkt, b)
			if n == 0 {
				break
			}
		}
		_, err := conn.Write(append(pkt, body...))
		require.NoError(t, err)
	}
	recv := func() (byte, []byte) {
		typ, err := r.ReadByte()
		require.NoError(t, err)
		n, mult := 0, 1
		for {
			b, err := r.ReadByte()
			require.NoError(t, err)
			n += int(b&0x7f) * mult
			if b&0x80 == 0 {
				break
			}
			mult *= 128
		}
		body := make([]byte, n)
		_, err = io.ReadFull(r, body)
		require.NoError(t, err)
		return typ, body
	}

	// CONNECT: MQTT 3.1.1, clean session, user name and password, keepalive 30 s.
	connect := append(str("MQTT"), 4, 0xc2, 0, 30)
	connect = append(connect, str(fmt.Sprintf("%s-raw-%d", user, time.Now().UnixNano()))...)
	connect = append(connect, str(user)...)
	connect = append(connect, str("pw-"+user)...)
	send(0x10, connect)
	typ, body := recv()
	require.Equal(t, []byte{0x20}, []byte{typ}, "CONNACK")
	require.Equal(t, byte(0), body[1], "CONNACK return code")
	send(0x82, append(append([]byte{0, 1}, str(filter)...), 1)) // SUBSCRIBE id 1, QoS 1
	typ, body = recv()
	require.Equal(t, byte(0x90), typ, "SUBACK")
	require.NotEqual(t, byte(0x80), body[2], "subscription refused")

	act()
	send(0xc0, nil) // PINGREQ
	var topics []string
	for {
		typ, body := recv()
		switch typ >> 4 {
		case 13: // PINGRESP
			return topics
		case 3: // PUBLISH
			tl := int(body[0])<<8 | int(body[1])
			topics = append(topics, string(body[2:2+tl]))
			if qos := (typ >> 1) & 3; qos > 0 {
				id := body[2+tl : 4+tl]
				send(0x40, id) // PUBACK
			}
		}
	}
}
