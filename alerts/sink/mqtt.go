package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// MQTTConfig configures the MQTT alert publisher.
type MQTTConfig struct {
	// Broker is the broker URL (tcp://host:1883, ssl://host:8883, …).
	Broker string
	// ClientID is the daemon's client id + "-alerts": its own session,
	// never the subscriber's.
	ClientID string
	Username string
	Password string
	TLS      *tls.Config
	// TopicPrefix is the first topic level (default "border").
	TopicPrefix string

	// KeepAlive (default 30s), ConnectTimeout (default 10s),
	// MaxReconnectInterval (default 30s): the connection's timing.
	KeepAlive            time.Duration
	ConnectTimeout       time.Duration
	MaxReconnectInterval time.Duration
	// PublishTimeout bounds the wait for a PUBACK (default 10s); past it
	// Deliver fails and the outbox retries.
	PublishTimeout time.Duration
}

// ErrNotConnected is returned (wrapped) by MQTT.Deliver while the publisher
// has no connection to the broker; the outbox keeps the alert and retries.
var ErrNotConnected = errors.New("not connected to the MQTT broker")

// ErrNotConfirmed is returned (wrapped) by MQTT.Deliver when the broker
// acknowledged an alert but the connection did not outlive the
// acknowledgement (see confirm); the outbox retries.
var ErrNotConfirmed = errors.New("delivery not confirmed by the MQTT broker")

// MQTT publishes alerts at QoS 1 to {prefix}/{site}/alerts/{rule}, not
// retained (a retained alert would be replayed to every new subscriber as if
// it were new).
//
// It keeps its own client, reconnecting on its own. paho sends nothing of a
// lost connection again (noResend): the outbox does, in order, for what was
// not confirmed (see DeliverBatch). A publisher's session holds no
// subscriptions, so it costs the broker next to nothing. Safe for
// concurrent use: deliveries take turns on the connection (see
// DeliverBatch).
type MQTT struct {
	cfg     MQTTConfig
	log     *slog.Logger
	client  mqtt.Client
	connect mqtt.Token // Start's: done once connected, or given up after Close

	// epoch counts the reconnections: paho calls its handler before each
	// attempt, so an epoch unchanged across a delivery says all of it went
	// over one connection.
	epoch atomic.Uint64

	// turn is the publisher's lock, a one-slot channel so that waiting for
	// it ends with the caller's context: the outbox delivers each site's
	// lane from a goroutine of its own, and DeliverBatch must have the
	// connection to itself (see there). Lanes take turns, batch by batch.
	turn chan struct{}

	// refused are the topics whose alert the broker took and then dropped
	// the connection, by topic (under mu); see refusedRetryEvery.
	refused map[string]*refusal
	// retryRefused is refusedRetryEvery (shorter in tests).
	retryRefused time.Duration
	// nextRetry is when the next refused alert, of any topic, may be tried
	// (under mu): a rule denied at every site refuses an alert per site,
	// and each retried once a minute on its own still dropped the
	// connection every few seconds.
	nextRetry time.Time

	mu        sync.Mutex
	connected bool
	changed   chan struct{} // closed and replaced on every change of connected
}

// NewMQTT prepares the publisher; Start connects it.
func NewMQTT(cfg MQTTConfig, log *slog.Logger) (*MQTT, error) {
	u, err := url.Parse(cfg.Broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt alert sink: broker %s is not a URL like tcp://host:1883", config.RedactURL(cfg.Broker))
	}
	if cfg.ClientID == "" {
		return nil, errors.New("mqtt alert sink: client id is required")
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "border"
	}
	if badLevel(cfg.TopicPrefix) {
		return nil, fmt.Errorf("mqtt alert sink: topic prefix %q contains '/', '+', '#' or NUL", cfg.TopicPrefix)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.MaxReconnectInterval <= 0 {
		cfg.MaxReconnectInterval = 30 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	m := &MQTT{
		cfg:     cfg,
		log:     log.With("component", "alert-sink", "sink", "mqtt"),
		changed: make(chan struct{}),
		turn:    make(chan struct{}, 1),
		refused: map[string]*refusal{}, retryRefused: refusedRetryEvery,
	}
	o := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetStore(noResend{}).
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetWriteTimeout(cfg.PublishTimeout).
		SetOnConnectHandler(func(mqtt.Client) {
			m.setConnected(true)
			m.log.Info("alert publisher connected", "broker", config.RedactURL(cfg.Broker))
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) { m.epoch.Add(1) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			m.setConnected(false)
			m.log.Warn("alert publisher lost the broker; reconnecting (alerts wait in the outbox)", "err", err)
		})
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
		o.SetPassword(cfg.Password)
	}
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	m.client = mqtt.NewClient(o)
	return m, nil
}

// Name is the sink's name in the outbox and in metrics.
func (m *MQTT) Name() string { return "mqtt" }

// Start begins connecting and returns at once: a broker that is down at
// startup must not keep the daemon from starting, the outbox holds the
// alerts until it is back.
func (m *MQTT) Start() {
	m.connect = m.client.Connect()
}

// Close disconnects, waiting briefly for publishes in flight, and for
// paho's first connection attempts to notice (a broker never reached: they
// retry every second until they see the client disconnected).
func (m *MQTT) Close() {
	m.client.Disconnect(250)
	m.setConnected(false)
	if m.connect != nil {
		m.connect.WaitTimeout(2 * time.Second)
	}
}

// Connected reports whether the publisher has a connection to the broker.
func (m *MQTT) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected
}

// WaitConnected returns once the publisher is connected, or ctx's error.
func (m *MQTT) WaitConnected(ctx context.Context) error {
	for {
		m.mu.Lock()
		ok, ch := m.connected, m.changed
		m.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitOpen waits up to the publish timeout for the connection to be open.
func (m *MQTT) waitOpen(ctx context.Context) error {
	if m.client.IsConnectionOpen() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, m.cfg.PublishTimeout)
	defer cancel()
	if m.WaitConnected(wctx) != nil || !m.client.IsConnectionOpen() {
		if err := ctx.Err(); err != nil {
			return err
		}
		return ErrNotConnected
	}
	return nil
}

func (m *MQTT) setConnected(v bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.connected == v {
		return
	}
	m.connected = v
	close(m.changed)
	m.changed = make(chan struct{})
}

// Topic returns the topic an alert is published on, or an error wrapping
// outbox.ErrPermanent when its site or rule cannot be a topic level.
func (m *MQTT) Topic(a *model.Alert) (string, error) {
	// Site and rule ids are validated by the config; this is the last line
	// of defence against an alert landing on (or fanning out to) a topic a
	// border unit did not subscribe to.
	for _, f := range [...]struct{ name, v string }{{"site", a.Site}, {"rule", a.Rule}} {
		if f.v == "" || badLevel(f.v) {
			return "", fmt.Errorf("alert %s: %s %q cannot be a topic level: %w", a.ID, f.name, f.v, outbox.ErrPermanent)
		}
	}
	return m.cfg.TopicPrefix + "/" + a.Site + "/alerts/" + a.Rule, nil
}

// badLevel reports a topic level that would split, match wildcards, or be
// invalid UTF-8 for MQTT.
func badLevel(s string) bool {
	return strings.ContainsAny(s, "/+#\x00")
}

// Deliver publishes a at QoS 1 and waits for the broker's PUBACK (see
// DeliverBatch, with whose calls it takes turns).
func (m *MQTT) Deliver(ctx context.Context, a *model.Alert) error {
	_, err := m.DeliverBatch(ctx, []*model.Alert{a})
	return err
}

// DeliverBatch publishes alerts at QoS 1, one after the other, and returns
// how many of them, from the first, are known to have reached the broker.
//
// A PUBACK alone does not say so: mosquitto acknowledges a publish it
// refuses (its ACL, its message_size_limit) and then closes the connection
// (MQTT 3.1.1 has no way to say no). The broker answers a connection's
// packets in order, so an alert is confirmed by the next answer on the same
// connection: the next alert's PUBACK, or, for the last, the UNSUBACK of
// confirm. An alert whose PUBACK is the last answer before the connection
// is lost is not delivered, and nothing after it is; the outbox sends them
// again. paho does not (noResend): a publish it re-sent on the next
// connection would go out ahead of the refused alert, and again with the
// outbox's retry.
//
// That check wants the connection to itself: another site's refused
// publish sent during a batch would drop the connection under it, and the
// batch's alerts, published but not confirmed, would go out again and
// again while that site's alert keeps being refused. Calls are therefore
// serialised (safe for concurrent use, one batch at a time); a call
// waiting for its turn gives up when ctx ends.
func (m *MQTT) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	if len(alerts) == 0 {
		return 0, nil
	}
	select {
	case m.turn <- struct{}{}:
		defer func() { <-m.turn }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	confirmed := 0 // alerts known to have reached the broker
	var epoch uint64
	for i, a := range alerts {
		topic, err := m.Topic(a)
		var payload []byte
		if err == nil {
			payload, err = Encode(a)
		}
		if err == nil {
			err = m.refusedWait(a, topic)
		}
		if err != nil {
			if i > confirmed { // the one before it waits for its confirmation
				if cerr := m.confirmLast(ctx, alerts[i-1], epoch); cerr != nil {
					return confirmed, cerr
				}
				m.noteConfirmed(alerts[i-1])
			}
			return i, err // refused for good, or by the broker lately: not published
		}
		if i == 0 {
			// While reconnecting paho would queue the publish; refusing
			// it leaves the alert in the outbox, which retries with
			// backoff. A connection on its way (at start, the outbox has
			// alerts before the broker has answered) is waited for, as
			// long as a publish is.
			if err := m.waitOpen(ctx); err != nil {
				return 0, fmt.Errorf("publish alert %s to %s: %w", a.ID, topic, err)
			}
			epoch = m.epoch.Load()
		}
		if err := m.publish(ctx, a, topic, payload); err != nil {
			if i > confirmed && ctx.Err() == nil {
				// The one before it was acknowledged, and then the
				// connection went: as when the broker refuses it.
				return confirmed, m.unconfirmed(alerts[i-1], err)
			}
			return confirmed, err
		}
		if m.epoch.Load() != epoch {
			// Not all on one connection: the ones since the last
			// confirmed cannot be told apart from a refusal (the first of
			// them is tried alone next: a refusal then shows as one).
			return confirmed, m.unconfirmed(alerts[confirmed], errors.New("lost while alerts were published"))
		}
		if i > 0 {
			m.noteConfirmed(alerts[i-1])
		}
		confirmed = i // this PUBACK confirms the alert before it
	}
	if err := m.confirmLast(ctx, alerts[len(alerts)-1], epoch); err != nil {
		return confirmed, err
	}
	m.noteConfirmed(alerts[len(alerts)-1])
	return len(alerts), nil
}

// refusedRetryEvery is how often an alert the broker refused twice in a
// row is tried again, one topic at a time. Each try costs the publisher its connection, and
// paho backs its reconnections off (up to max_reconnect_interval) when
// they follow each other: tried at the outbox's pace, one site's refused
// alert (an ACL denying that site's topic) kept every other site's alerts
// waiting for reconnections. Twice, because a connection lost right after
// one PUBACK may be a network's blip.
const refusedRetryEvery = time.Minute

// ErrRefused marks an alert not published because the broker refused it
// twice in a row; it is tried again later (see refusedRetryEvery).
var ErrRefused = errors.New("refused by the broker")

// refusal is a topic's alert that the broker refused.
type refusal struct {
	alert string    // the alert's id and state
	times int       // refused in a row
	next  time.Time // when to try again
}

// refusedWait is the error of a, not to be published to topic now (a
// refusal there, twice in a row, less than retryRefused ago); nil when it
// may be.
func (m *MQTT) refusedWait(a *model.Alert, topic string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.refused[topic]
	if r == nil || r.times < 2 {
		return nil
	}
	now := time.Now()
	next := r.next
	if m.nextRetry.After(next) {
		next = m.nextRetry
	}
	wait := next.Sub(now)
	if wait <= 0 {
		m.nextRetry = now.Add(m.retryRefused) // this one is the try
		return nil
	}
	return fmt.Errorf("alert %s not published to %s: the broker refused an alert there %d times in a row (its ACL or message_size_limit: check that fenceline's account may write %s); tried again in %s: %w",
		a.ID, topic, r.times, topic, wait.Round(time.Second), ErrRefused)
}

// noteRefused records that a, on topic, was refused.
func (m *MQTT) noteRefused(a *model.Alert, topic string) {
	key := a.ID + "/" + a.State
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.refused[topic]
	if r == nil || r.alert != key {
		r = &refusal{alert: key}
		m.refused[topic] = r
	}
	r.times++
	r.next = time.Now().Add(m.retryRefused)
}

// noteConfirmed forgets the refusals of a's topic, the broker took a; and
// when a was refused before, those of every topic: the ACL was fixed, most
// likely, and the others need not wait their turns for it.
func (m *MQTT) noteConfirmed(a *model.Alert) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.refused) == 0 {
		return
	}
	topic, _ := m.Topic(a)
	if r := m.refused[topic]; r != nil && r.times >= 2 {
		clear(m.refused)
		m.nextRetry = time.Time{}
		return
	}
	delete(m.refused, topic)
}

// confirmLast confirms a, the last alert published on the connection of
// epoch (see confirm).
func (m *MQTT) confirmLast(ctx context.Context, a *model.Alert, epoch uint64) error {
	err := m.confirm(ctx)
	if err == nil && m.epoch.Load() != epoch {
		err = errors.New("reconnected")
	}
	if err != nil {
		return m.unconfirmed(a, err)
	}
	return nil
}

// unconfirmed is the error of a, acknowledged by the broker, after which the
// connection was lost (cause): a refusal, most likely.
func (m *MQTT) unconfirmed(a *model.Alert, cause error) error {
	topic, _ := m.Topic(a)
	m.noteRefused(a, topic)
	return fmt.Errorf("publish alert %s to %s: the broker acknowledged it and then dropped the connection "+
		"(%s), as mosquitto does with a publish its ACL or message_size_limit refuses: check that fenceline's account may write %s: %w",
		a.ID, topic, lostCause(cause), topic, ErrNotConfirmed)
}

// lostCause is cause as an operator reads it: paho says a lost connection
// in its own words ("not currently connected and ResumeSubs not set"),
// which point at a client option rather than at the broker.
func lostCause(cause error) string {
	if strings.Contains(cause.Error(), "ResumeSubs") {
		return "connection lost"
	}
	return cause.Error()
}

// publish publishes payload to topic and waits for its PUBACK, or for the
// connection to be lost: paho does not send it again (noResend), and its
// PUBACK would never come.
func (m *MQTT) publish(ctx context.Context, a *model.Alert, topic string, payload []byte) error {
	if !m.client.IsConnectionOpen() {
		return fmt.Errorf("publish alert %s to %s: %w", a.ID, topic, ErrNotConnected)
	}
	epoch := m.epoch.Load()
	timer := time.NewTimer(m.cfg.PublishTimeout)
	defer timer.Stop()
	tok := m.client.Publish(topic, 1, false, payload)
	for {
		m.mu.Lock()
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return fmt.Errorf("publish alert %s to %s: %w", a.ID, topic, err)
			}
			return nil
		case <-changed:
			// Lost, or only the connect handler telling of the connection
			// the publish went out on (it runs late, on a goroutine).
			if m.client.IsConnectionOpen() && m.epoch.Load() == epoch {
				continue
			}
			return fmt.Errorf("publish alert %s to %s: connection lost before its PUBACK: %w", a.ID, topic, ErrNotConfirmed)
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("publish alert %s to %s: no PUBACK within %s", a.ID, topic, m.cfg.PublishTimeout)
		}
	}
}

// noResend is the publisher's paho store: it keeps nothing, so that paho
// sends no publish of a lost connection again on the next one (see
// DeliverBatch); the outbox does, in order. A publish in flight when a
// connection is lost keeps its message id in paho's table for good: one
// id a loss at most, as a batch has one publish in flight.
type noResend struct{}

func (noResend) Open()                             {}
func (noResend) Put(string, packets.ControlPacket) {}
func (noResend) Get(string) packets.ControlPacket  { return nil }
func (noResend) All() []string                     { return nil }
func (noResend) Del(string)                        {}
func (noResend) Close()                            {}
func (noResend) Reset()                            {}

// checkTopic is the topic filter of confirm's UNSUBSCRIBE. The publisher
// never subscribes to anything, so unsubscribing from it changes nothing.
const checkTopic = "fenceline/delivery-check"

// confirm makes sure the broker kept the publish it acknowledged. MQTT
// 3.1.1 has no way to refuse a publish: mosquitto acknowledges a QoS 1
// publish its ACL refuses, drops it, and closes the connection, so a PUBACK
// alone does not say the alert reached anyone (an ACL left behind by a
// changed topic_prefix lost every alert while the metrics counted them
// delivered). The broker answers a connection's packets in order: an
// UNSUBACK on the same connection, for an UNSUBSCRIBE sent after the
// PUBACK, says it went on after the publish. A connection lost in between
// makes paho fail the UNSUBSCRIBE (subscriptions are not resumed).
func (m *MQTT) confirm(ctx context.Context) error {
	tok := m.client.Unsubscribe(checkTopic)
	timer := time.NewTimer(m.cfg.PublishTimeout)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("no answer within %s", m.cfg.PublishTimeout)
	}
}
