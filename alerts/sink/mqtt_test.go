package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

func TestMQTTTopic(t *testing.T) {
	m, err := NewMQTT(MQTTConfig{Broker: "tcp://127.0.0.1:1", ClientID: "fenceline-1-alerts"}, testLogger(t))
	require.NoError(t, err)
	tests := []struct {
		name       string
		site, rule string
		want       string // "" when refused
	}{
		{"plain", "mdl", "night-phone-ruins", "border/mdl/alerts/night-phone-ruins"},
		{"slash in site", "mdl/x", "r", ""},
		{"plus in rule", "mdl", "r+", ""},
		{"hash in rule", "mdl", "#", ""},
		{"empty site", "", "r", ""},
		{"NUL in rule", "mdl", "r\x00", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAlert("inc-1", model.StateFiring)
			a.Site, a.Rule = tt.site, tt.rule
			got, err := m.Topic(a)
			if tt.want == "" {
				require.ErrorIs(t, err, outbox.ErrPermanent)
				// Deliver refuses it before looking at the connection.
				require.ErrorIs(t, m.Deliver(context.Background(), a), outbox.ErrPermanent)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNewMQTTErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  MQTTConfig
		want string
	}{
		{"no broker", MQTTConfig{ClientID: "x"}, "broker"},
		{"not a URL", MQTTConfig{Broker: "127.0.0.1:1883", ClientID: "x"}, "broker"},
		{"no client id", MQTTConfig{Broker: "tcp://127.0.0.1:1883"}, "client id"},
		{"wildcard prefix", MQTTConfig{Broker: "tcp://127.0.0.1:1883", ClientID: "x", TopicPrefix: "border/#"}, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMQTT(tt.cfg, nil)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestMQTTDeliverFailsWithoutBroker(t *testing.T) {
	// A port nobody listens on: bind one, note it, close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	m, err := NewMQTT(MQTTConfig{Broker: "tcp://" + addr, ClientID: "fenceline-1-alerts", PublishTimeout: 100 * time.Millisecond}, testLogger(t))
	require.NoError(t, err)
	m.Start()
	defer m.Close()
	err = m.Deliver(context.Background(), testAlert("inc-1", model.StateFiring))
	require.ErrorIs(t, err, ErrNotConnected)
	assert.False(t, errors.Is(err, outbox.ErrPermanent), "the outbox must retry")
	assert.False(t, m.Connected())
}

// Deliveries take turns on the publisher's connection (the outbox calls it
// from one goroutine per site): one waiting for its turn gives up when its
// context ends, as a publish does.
func TestMQTTWaitingForTurnEndsWithContext(t *testing.T) {
	m, err := NewMQTT(MQTTConfig{Broker: "tcp://127.0.0.1:1", ClientID: "fenceline-1-alerts"}, testLogger(t))
	require.NoError(t, err)
	m.turn <- struct{}{} // another site's batch under way
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := m.DeliverBatch(ctx, []*model.Alert{testAlert("waiting", model.StateFiring)})
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, n)
	<-m.turn
}

// subscriber is a border unit listening for alerts.
type subscriber struct {
	client mqtt.Client
	msgs   chan mqtt.Message
	seen   map[string]bool // alerts requireInOrder had
}

// subscribe connects a unit to the broker and subscribes to every site's
// alerts at QoS 1, on each (re)connect. With a fixed id and clean session
// off, the broker keeps its session: what is published while it is away
// waits for it.
func subscribe(t *testing.T, url, id string, persistent bool) *subscriber {
	t.Helper()
	s := &subscriber{msgs: make(chan mqtt.Message, 100)}
	subscribed := make(chan error, 1)
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(id).
		SetCleanSession(!persistent).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).
		// A Subscribe the connect handler started as the connection went
		// again waits this long for paho's writer, which is gone (30 s by
		// default: past the end of the test, where goleak saw it).
		SetWriteTimeout(500 * time.Millisecond).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { s.msgs <- m }).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.Subscribe("border/+/alerts/+", 1, func(_ mqtt.Client, m mqtt.Message) { s.msgs <- m })
			go func() {
				tok.Wait()
				select {
				case subscribed <- tok.Error():
				default:
				}
			}()
		})
	s.client = mqtt.NewClient(opts)
	s.client.Connect()
	t.Cleanup(func() { s.client.Disconnect(100) })
	select {
	case err := <-subscribed:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("subscriber: not subscribed")
	}
	return s
}

// next waits for the next message.
func (s *subscriber) next(t *testing.T) mqtt.Message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("subscriber: no alert received")
		return nil
	}
}

// nextWithID waits for the alert with the given id, skipping others (e.g.
// a copy of an earlier alert resent after a reconnect).
func (s *subscriber) nextWithID(t *testing.T, id string) mqtt.Message {
	t.Helper()
	for {
		m := s.next(t)
		if a := decodeAlert(t, m.Payload()); a.ID == id {
			return m
		} else {
			t.Logf("skipping a repeated delivery of %s/%s", a.ID, a.State)
		}
	}
}

func decodeAlert(t *testing.T, b []byte) *model.Alert {
	t.Helper()
	a := new(model.Alert)
	require.NoError(t, json.Unmarshal(b, a))
	return a
}

func newMQTTSink(t *testing.T, url string) *MQTT {
	t.Helper()
	m, err := NewMQTT(MQTTConfig{
		Broker:               url,
		ClientID:             "fenceline-test-alerts-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		MaxReconnectInterval: 200 * time.Millisecond,
		PublishTimeout:       2 * time.Second,
	}, testLogger(t))
	require.NoError(t, err)
	m.Start()
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, m.WaitConnected(ctx))
	return m
}

func TestIntegrationMQTTSinkPublishesAlert(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	unit := subscribe(t, broker.URL(), "station-mdl", false)
	m := newMQTTSink(t, broker.URL())

	a := testAlert("inc-7f3a", model.StateFiring)
	require.NoError(t, m.Deliver(context.Background(), a))
	msg := unit.next(t)
	assert.Equal(t, "border/mdl/alerts/night-phone-ruins", msg.Topic())
	assert.Equal(t, byte(1), msg.Qos())
	assert.False(t, msg.Retained())
	want, err := Encode(a)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(msg.Payload()), "exactly the JSON")
	requireContractPayload(t, a, msg.Payload())
}

func TestIntegrationMQTTSinkBrokerOutage(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	m := newMQTTSink(t, broker.URL())

	require.NoError(t, broker.Stop())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := m.Deliver(ctx, testAlert("during-outage", model.StateFiring))
	require.Error(t, err, "no broker, no PUBACK")
	assert.False(t, errors.Is(err, outbox.ErrPermanent), "retryable: %v", err)

	require.NoError(t, broker.Restart(ctx))
	require.NoError(t, m.WaitConnected(ctx))
	unit := subscribe(t, broker.URL(), "station-mdl", false)
	a := testAlert("after-outage", model.StateFiring)
	require.NoError(t, m.Deliver(ctx, a))
	requireContractPayload(t, a, unit.nextWithID(t, a.ID).Payload())
}

// requireIDs requires the next alerts the subscriber gets to be those of
// ids, in that order.
func (s *subscriber) requireIDs(t *testing.T, why string, ids ...string) {
	t.Helper()
	for _, want := range ids {
		var got struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(s.next(t).Payload(), &got))
		require.Equal(t, want, got.ID, why)
	}
}

// An alert the broker's ACL refuses is not delivered: mosquitto
// acknowledges the publish, drops it and closes the connection, and the
// sink must say so (the outbox then keeps the alert and retries) rather
// than count it delivered. An alert the ACL lets through, on the same
// broker, is delivered as ever.
func TestIntegrationMQTTSinkAlertRefusedByACL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	acl := filepath.Join(dir, "fenceline.acl")
	// Topic lines before any user line are the anonymous clients'.
	require.NoError(t, os.WriteFile(acl, []byte("topic read border/#\ntopic write border/mdl/alerts/#\n"), 0o644))
	broker := testenv.Mosquitto(t, stack.MosquittoOptions{ExtraConfig: "acl_file " + acl + "\n"})
	unit := subscribe(t, broker.URL(), "station-all", false)
	m := newMQTTSink(t, broker.URL())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	refused := testAlert("refused", model.StateFiring)
	refused.Site = "btu"
	err := m.Deliver(ctx, refused)
	require.ErrorIs(t, err, ErrNotConfirmed, "a refused alert is no delivery")
	assert.False(t, errors.Is(err, outbox.ErrPermanent), "retryable: %v", err)
	assert.Contains(t, err.Error(), "may write border/btu/alerts/night-phone-ruins")
	assert.NotContains(t, err.Error(), "ResumeSubs", "paho's words for a lost connection, which point at a client option")

	require.Eventually(t, m.client.IsConnectionOpen, waitFor, 10*time.Millisecond, "reconnected")
	allowed := testAlert("allowed", model.StateFiring)
	require.NoError(t, m.Deliver(ctx, allowed))
	msg := unit.next(t)
	assert.Equal(t, "border/mdl/alerts/night-phone-ruins", msg.Topic(), "the first alert to arrive is the allowed one")
	requireContractPayload(t, allowed, msg.Payload())

	// In a batch, the alerts before the refused one are delivered, and
	// nothing is sent after it: paho would send that again on the next
	// connection, ahead of the refused alert and of the outbox's retry.
	require.Eventually(t, m.client.IsConnectionOpen, waitFor, 10*time.Millisecond, "connected")
	requireBatchStopsAt(ctx, t, m, unit, refused)
}

// requireBatchStopsAt delivers a batch of two alerts, refused (an alert the
// broker refuses) and one more: the two before it are delivered, it is not
// confirmed, and the one after it is never sent (an alert delivered after
// the reconnection is the next the unit gets).
func requireBatchStopsAt(ctx context.Context, t *testing.T, m *MQTT, unit *subscriber, refused *model.Alert) {
	t.Helper()
	batch := []*model.Alert{testAlert("b-0", model.StateFiring), testAlert("b-1", model.StateFiring), refused, testAlert("b-3", model.StateFiring)}
	n, err := m.DeliverBatch(ctx, batch)
	require.ErrorIs(t, err, ErrNotConfirmed)
	assert.Equal(t, 2, n)
	require.Eventually(t, m.client.IsConnectionOpen, waitFor, 10*time.Millisecond, "reconnected")
	require.NoError(t, m.Deliver(ctx, testAlert("after", model.StateFiring)))
	unit.requireIDs(t, "b-3 was never sent", "b-0", "b-1", "after")
}

// An alert the broker refuses on a topic it has taken alerts on before (a
// message too large for its message_size_limit; an ACL changed under a
// running connection) is not delivered either, nor anything after it.
func TestIntegrationMQTTSinkRefusedOnAKnownTopic(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t, stack.MosquittoOptions{ExtraConfig: "message_size_limit 2000\n"})
	unit := subscribe(t, broker.URL(), "station-mdl", false)
	m := newMQTTSink(t, broker.URL())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	big := testAlert("big", model.StateFiring)
	big.Summary = strings.Repeat("x", 3000)
	requireBatchStopsAt(ctx, t, m, unit, big)
}

// A batch goes out in order, all of it confirmed by one round trip after
// its PUBACKs.
func TestIntegrationMQTTSinkBatch(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	unit := subscribe(t, broker.URL(), "station-mdl", false)
	m := newMQTTSink(t, broker.URL())
	var batch []*model.Alert
	for i := range 64 {
		batch = append(batch, testAlert(fmt.Sprintf("b-%02d", i), model.StateFiring))
	}
	n, err := m.DeliverBatch(context.Background(), batch)
	require.NoError(t, err)
	require.Equal(t, len(batch), n)
	var ids []string
	for _, a := range batch {
		ids = append(ids, a.ID)
	}
	unit.requireIDs(t, "in order", ids...)

	// An alert that can never be published ends the batch: the ones
	// before it are delivered, it is refused for good.
	bad := testAlert("bad-topic", model.StateFiring)
	bad.Rule = "a/b"
	n, err = m.DeliverBatch(context.Background(), []*model.Alert{testAlert("c-0", model.StateFiring), bad, testAlert("c-2", model.StateFiring)})
	require.ErrorIs(t, err, outbox.ErrPermanent)
	assert.Equal(t, 1, n)
}

// TestIntegrationMQTTSinkWaitsForFirstConnection: an alert handed over
// before the publisher's first connection is up (the outbox at start) is
// published once the broker answers, not refused with a warning.
func TestIntegrationMQTTSinkWaitsForFirstConnection(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	require.NoError(t, broker.Stop())
	m, err := NewMQTT(MQTTConfig{
		Broker:               broker.URL(),
		ClientID:             "fenceline-test-alerts-first",
		MaxReconnectInterval: 200 * time.Millisecond,
		PublishTimeout:       waitFor,
	}, testLogger(t))
	require.NoError(t, err)
	m.Start()
	t.Cleanup(m.Close)

	a := testAlert("before-connect", model.StateFiring)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	delivered := make(chan error, 1)
	go func() { delivered <- m.Deliver(ctx, a) }()
	require.NoError(t, broker.Restart(ctx))
	require.NoError(t, <-delivered, "published (PUBACK) once connected")
}

// observed reports every delivery attempt's result, so a test can wait for
// the sink to have failed without sleeping.
type observed struct {
	outbox.Sink
	results chan error
}

func (o *observed) Deliver(ctx context.Context, a *model.Alert) error {
	err := o.Sink.Deliver(ctx, a)
	o.results <- err
	return err
}

func TestIntegrationOutboxBrokerOutage(t *testing.T) {
	t.Parallel()
	// Persistence keeps the unit's session across the broker's restart, as
	// a production broker does: the alert published after the restart waits
	// for the unit even if the unit reconnects later than fenceline.
	broker := testenv.Mosquitto(t, stack.MosquittoOptions{Persistence: true})
	unit := subscribe(t, broker.URL(), "station-mdl-outage", true)
	sink := &observed{Sink: newMQTTSink(t, broker.URL()), results: make(chan error, 1000)}

	dir := t.TempDir()
	ob, err := outbox.Open(dir, []outbox.Sink{sink},
		outbox.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		testLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	defer ob.Close()
	stopRun := runOutbox(t, ob)
	appendAlert := func(a *model.Alert) {
		t.Helper()
		done := make(chan error, 1)
		ob.Append([]model.Alert{*a}, func(err error) { done <- err })
		require.NoError(t, <-done)
	}
	nextResult := func() error {
		t.Helper()
		select {
		case err := <-sink.results:
			return err
		case <-time.After(waitFor):
			t.Fatal("no delivery attempt")
			return nil
		}
	}

	before := testAlert("before-outage", model.StateFiring)
	appendAlert(before)
	require.NoError(t, nextResult())
	requireContractPayload(t, before, unit.nextWithID(t, before.ID).Payload())

	require.NoError(t, broker.Stop())
	during := testAlert("during-outage", model.StateFiring)
	appendAlert(during) // durable although no sink can take it
	require.Error(t, nextResult())
	require.Error(t, nextResult(), "retried")
	assert.Equal(t, 1, ob.Pending("mqtt"))

	rctx, rcancel := context.WithTimeout(context.Background(), waitFor)
	defer rcancel()
	require.NoError(t, broker.Restart(rctx))
	for err := nextResult(); err != nil; err = nextResult() {
		t.Logf("still failing: %v", err)
	}
	requireContractPayload(t, during, unit.nextWithID(t, during.ID).Payload())
	stopRun()
	assert.Equal(t, 0, ob.Pending("mqtt"))
}

// batchObserved is the MQTT sink as the outbox sees it (a BatchSink),
// reporting every attempt, so that a test can wait for one to fail without
// sleeping.
type batchObserved struct {
	*MQTT
	attempts chan attempt
}

// attempt is one DeliverBatch call: the alerts' ids and the result.
type attempt struct {
	ids []string
	n   int
	err error
}

func (o *batchObserved) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	n, err := o.MQTT.DeliverBatch(ctx, alerts)
	at := attempt{n: n, err: err}
	for _, a := range alerts {
		at.ids = append(at.ids, a.ID)
	}
	select {
	case o.attempts <- at:
	default: // a test that stopped listening
	}
	return n, err
}

func (o *batchObserved) Deliver(ctx context.Context, a *model.Alert) error {
	_, err := o.DeliverBatch(ctx, []*model.Alert{a})
	return err
}

// waitFailed waits for an attempt whose first alert is id to fail.
func (o *batchObserved) waitFailed(t *testing.T, id string) error {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case at := <-o.attempts:
			if len(at.ids) > 0 && at.ids[0] == id && at.n == 0 && at.err != nil {
				return at.err
			}
		case <-deadline:
			t.Fatalf("no failed attempt to deliver %s", id)
			return nil
		}
	}
}

// requireInOrder requires the unit to get the alerts of ids, in that order,
// before any other. A repeat of one it got before (delivery is at least
// once) is skipped, and returned.
func (s *subscriber) requireInOrder(t *testing.T, why string, ids ...string) (repeats []string) {
	t.Helper()
	if s.seen == nil {
		s.seen = make(map[string]bool)
	}
	for i := 0; i < len(ids); {
		got := decodeAlert(t, s.next(t).Payload()).ID
		switch {
		case got == ids[i]:
			s.seen[got] = true
			i++
		case s.seen[got]:
			repeats = append(repeats, got)
		default:
			t.Fatalf("%s: got %s, want %s (of %v)", why, got, ids[i], ids)
		}
	}
	return repeats
}

// reloadBroker makes the broker read its configuration (and ACL file)
// again, as `systemctl reload mosquitto` does: a SIGHUP to the pid it wrote
// to pidFile (its pid_file option). Its clients stay connected.
func reloadBroker(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	p, err := os.FindProcess(pid)
	require.NoError(t, err)
	require.NoError(t, p.Signal(syscall.SIGHUP))
}

// runOutbox runs ob until the returned stop is called (or the test ends).
func runOutbox(t *testing.T, ob *outbox.Outbox) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- ob.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-runDone:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// refusingBJM starts a mosquitto whose ACL refuses border/bjm/alerts/+ (its
// file and the broker's pid file are returned, to fix it), a unit
// subscribed to every alert, and an outbox (not running) delivering through
// an observed MQTT sink, retrying after maxBackoff at most.
func refusingBJM(t *testing.T, maxBackoff time.Duration) (acl, pidFile string, unit *subscriber, sink *batchObserved, ob *outbox.Outbox) {
	t.Helper()
	dir := t.TempDir()
	acl = filepath.Join(dir, "fenceline.acl")
	// Topic lines before any user line are the anonymous clients'.
	require.NoError(t, os.WriteFile(acl, []byte("topic readwrite border/#\ntopic deny border/bjm/alerts/+\n"), 0o644))
	pidFile = filepath.Join(dir, "mosquitto.pid")
	broker := testenv.Mosquitto(t, stack.MosquittoOptions{ExtraConfig: "acl_file " + acl + "\npid_file " + pidFile + "\n"})
	unit = subscribe(t, broker.URL(), "station-all", false)
	sink = &batchObserved{MQTT: newMQTTSink(t, broker.URL()), attempts: make(chan attempt, 1000)}
	ob, err := outbox.Open(t.TempDir(), []outbox.Sink{sink},
		outbox.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: maxBackoff},
		testLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { ob.Close() })
	return acl, pidFile, unit, sink, ob
}

// An ACL mistake that refuses fenceline one site's alert topic holds back
// that site's alerts only: the outbox delivers per site, so the other
// sites' alerts reach their units while the refused site's stay pending
// (each attempt refused, retried), and those go out, in order, once the
// ACL is fixed.
func TestIntegrationOutboxACLRefusingOneSite(t *testing.T) {
	t.Parallel()
	acl, pidFile, unit, sink, ob := refusingBJM(t, 200*time.Millisecond)
	sink.retryRefused = 50 * time.Millisecond // bjm's tried again soon after the ACL is fixed
	stop := runOutbox(t, ob)

	// bjm's first: under one queue for the sink it held back every later
	// alert, mdl's too.
	var batch []model.Alert
	for i := range 3 {
		for _, site := range []string{"bjm", "mdl"} {
			a := testAlert(fmt.Sprintf("%s-%d", site, i), model.StateFiring)
			a.Site = site
			batch = append(batch, *a)
		}
	}
	done := make(chan error, 1)
	ob.Append(batch, func(err error) { done <- err })
	require.NoError(t, <-done)

	repeats := unit.requireInOrder(t, "mdl's alerts go out while bjm's are refused", "mdl-0", "mdl-1", "mdl-2")
	// Each went out once: the sink publishes one batch at a time, so no
	// refused bjm publish drops the connection under an mdl batch (which
	// then cannot be confirmed, and goes out again and again).
	assert.Empty(t, repeats, "mdl's alerts delivered again")
	err := sink.waitFailed(t, "bjm-0")
	require.ErrorIs(t, err, ErrNotConfirmed)
	assert.Contains(t, err.Error(), "may write border/bjm/alerts/night-phone-ruins")
	require.Eventually(t, func() bool { return ob.Pending("mqtt") == 3 }, waitFor, 10*time.Millisecond,
		"bjm's alerts pending, mdl's delivered: %d pending", ob.Pending("mqtt"))
	assert.Equal(t, 3, ob.Pending("mqtt"), "bjm's alerts stay pending")

	// The operator fixes the ACL and reloads mosquitto.
	require.NoError(t, os.WriteFile(acl, []byte("topic readwrite border/#\n"), 0o644))
	reloadBroker(t, pidFile)
	repeats = unit.requireInOrder(t, "bjm's alerts, in order, once the ACL lets them through", "bjm-0", "bjm-1", "bjm-2")
	assert.Empty(t, repeats, "alerts delivered again")
	require.Eventually(t, func() bool { return ob.Pending("mqtt") == 0 }, waitFor, 10*time.Millisecond)
	stop()
}

// An alert the broker refuses twice in a row is tried again only once a
// minute (refusedRetryEvery): each try costs the publisher its connection,
// and tried at the outbox's pace (with reconnections backing off as they
// followed each other) it kept the other sites' alerts waiting for
// reconnections. Here mdl's alerts, appended one by one after bjm's was
// refused, go out on one connection.
func TestIntegrationMQTTRefusedTopicTriedAgainRarely(t *testing.T) {
	t.Parallel()
	_, _, unit, sink, ob := refusingBJM(t, 50*time.Millisecond)
	stop := runOutbox(t, ob)
	defer stop()

	bjm := testAlert("bjm-0", model.StateFiring)
	bjm.Site = "bjm"
	ob.Append([]model.Alert{*bjm}, nil)
	require.ErrorIs(t, sink.waitFailed(t, "bjm-0"), ErrNotConfirmed)
	require.ErrorIs(t, sink.waitFailed(t, "bjm-0"), ErrNotConfirmed) // twice in a row: a refusal
	err := sink.waitFailed(t, "bjm-0")
	require.ErrorIs(t, err, ErrRefused, "not published again at the outbox's pace")
	assert.Contains(t, err.Error(), "may write border/bjm/alerts/night-phone-ruins")

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, sink.WaitConnected(ctx), "back from the second refusal")
	reconnections := sink.epoch.Load()
	for i := range 20 {
		a := testAlert(fmt.Sprintf("mdl-%d", i), model.StateFiring)
		a.Site = "mdl"
		ob.Append([]model.Alert{*a}, nil)
		unit.requireInOrder(t, "mdl's alert while bjm's is refused", a.ID)
	}
	assert.Equal(t, reconnections, sink.epoch.Load(), "the publisher reconnected while mdl's alerts went out")
	require.Eventually(t, func() bool { return ob.Pending("mqtt") == 1 }, waitFor, 10*time.Millisecond,
		"bjm's alert pending, mdl's delivered: %d pending", ob.Pending("mqtt"))
}

// Refused alerts are tried again one topic at a time, one try a minute: a
// rule denied at every site refuses an alert per site, and each site's
// tried once a minute on its own dropped the connection every few seconds
// (paho's reconnections then backed off to 30 s, and the allowed topics'
// alerts waited minutes). One taken after a refusal clears them all.
func TestMQTTRefusedTopicsTriedOneAtATime(t *testing.T) {
	m, err := NewMQTT(MQTTConfig{Broker: "tcp://127.0.0.1:1", ClientID: "fenceline-1-alerts"}, testLogger(t))
	require.NoError(t, err)
	var alerts []*model.Alert
	for _, site := range []string{"bjm", "btu", "mdl"} {
		a := testAlert("foreign-"+site, model.StateFiring)
		a.Site = site
		alerts = append(alerts, a)
		topic, err := m.Topic(a)
		require.NoError(t, err)
		m.noteRefused(a, topic)
		m.noteRefused(a, topic)
		m.refused[topic].next = time.Now().Add(-time.Second) // its minute is over
	}
	var tried []string
	for _, a := range alerts {
		topic, _ := m.Topic(a)
		if err := m.refusedWait(a, topic); err == nil {
			tried = append(tried, a.Site)
		} else {
			require.ErrorIs(t, err, ErrRefused)
		}
	}
	assert.Equal(t, []string{"bjm"}, tried, "one refused topic tried at a time")

	m.noteConfirmed(alerts[0]) // the ACL was fixed
	for _, a := range alerts[1:] {
		topic, _ := m.Topic(a)
		assert.NoError(t, m.refusedWait(a, topic), "%s waits no more", a.Site)
	}
}
