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
// It keeps its own client, reconnecting on its own. The session is
// persistent (clean session off): with a clean session, paho v1.5.1 throws
// away the in-flight publishes on reconnect without ever completing their
// tokens, leaking their message ids; with a persistent one it resends them
// and their PUBACKs complete the tokens. A publisher's session holds no
// subscriptions, so it costs the broker next to nothing.
type MQTT struct {
	cfg    MQTTConfig
	log    *slog.Logger
	client mqtt.Client

	// epoch counts the reconnections: paho calls its handler before each
	// attempt, so an epoch unchanged across a delivery says all of it went
	// over one connection.
	epoch atomic.Uint64

	mu        sync.Mutex
	topics    map[string]uint64 // topics the broker took a publish to, by epoch (see known)
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
	}
	o := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
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
	m.client.Connect()
}

// Close disconnects, waiting briefly for publishes in flight.
func (m *MQTT) Close() {
	m.client.Disconnect(250)
	m.setConnected(false)
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
// DeliverBatch).
func (m *MQTT) Deliver(ctx context.Context, a *model.Alert) error {
	_, err := m.DeliverBatch(ctx, []*model.Alert{a})
	return err
}

// DeliverBatch publishes alerts at QoS 1, in order, each once the previous
// one is known to have gone through, and returns how many did. A PUBACK
// says so for a topic the broker has already taken a publish to on this
// connection; the first publish to a topic on a connection is confirmed
// (see confirm) before anything else is sent. Nothing may follow an
// unconfirmed publish: if the broker refused it and closed the connection,
// a publish sent behind it would be sent again by paho on the next
// connection, ahead of the refused alert, and then again by the outbox.
func (m *MQTT) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	if len(alerts) == 0 {
		return 0, nil
	}
	for i, a := range alerts {
		topic, err := m.Topic(a)
		var payload []byte
		if err == nil {
			payload, err = Encode(a)
		}
		if err != nil {
			return i, err // refused for good
		}
		// While reconnecting paho would queue the publish and complete it
		// only after the reconnect; refusing it instead leaves the alert in
		// the outbox, which retries with backoff, rather than piling
		// copies up in paho's memory. A connection on its way (at start,
		// the outbox has alerts before the broker has answered) is waited
		// for, as long as a publish is.
		if err := m.waitOpen(ctx); err != nil {
			return i, fmt.Errorf("publish alert %s to %s: %w", a.ID, topic, err)
		}
		epoch := m.epoch.Load()
		if err := m.publish(ctx, a, topic, payload); err != nil {
			return i, err
		}
		if m.known(topic, epoch) {
			continue
		}
		if err := m.confirm(ctx); err != nil || m.epoch.Load() != epoch {
			if err == nil {
				err = errors.New("reconnected")
			}
			return i, fmt.Errorf("publish alert %s to %s: the broker acknowledged it and then dropped the connection "+
				"(%v), as mosquitto does with a publish its ACL refuses: check that fenceline's account may write %s: %w",
				a.ID, topic, err, topic, ErrNotConfirmed)
		}
		m.confirmed(topic, epoch)
	}
	return len(alerts), nil
}

// known reports whether the broker has taken a publish to topic on the
// connection of epoch: its ACL lets fenceline write there, so a PUBACK is
// a delivery.
func (m *MQTT) known(topic string, epoch uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.topics[topic]
	return ok && e == epoch
}

// confirmed records that the broker took a publish to topic on the
// connection of epoch. The set is bounded by the rules and sites (a topic
// is {prefix}/{site}/alerts/{rule}); topics of another epoch are dropped
// as they are met.
func (m *MQTT) confirmed(topic string, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.topics == nil || len(m.topics) >= maxKnownTopics {
		m.topics = map[string]uint64{}
	}
	m.topics[topic] = epoch
}

// maxKnownTopics bounds confirmed's set: past it, it starts again (each
// topic then costs one round trip more, once).
const maxKnownTopics = 4096

// publish publishes payload to topic and waits for its PUBACK.
func (m *MQTT) publish(ctx context.Context, a *model.Alert, topic string, payload []byte) error {
	timer := time.NewTimer(m.cfg.PublishTimeout)
	defer timer.Stop()
	tok := m.client.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish alert %s to %s: %w", a.ID, topic, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		// paho may still send it (it keeps in-flight publishes across a
		// reconnect): the retry can then be a second copy, which the
		// receivers drop by id+state.
		return fmt.Errorf("publish alert %s to %s: no PUBACK within %s", a.ID, topic, m.cfg.PublishTimeout)
	}
}

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
