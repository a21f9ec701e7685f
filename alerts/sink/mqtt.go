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

// DeliverBatch publishes alerts at QoS 1, in order, and confirms the
// acknowledged ones together (see confirm): a burst of alerts takes one
// round trip more than its publishes, not one more each. It returns
// how many, from the first, were delivered: all the acknowledged ones when
// they are confirmed, none when the connection was lost on the way (the
// outbox then sends them again, one at a time: a second copy of some,
// which receivers drop by id and state).
func (m *MQTT) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	if len(alerts) == 0 {
		return 0, nil
	}
	// While reconnecting paho would queue the publishes and complete them
	// only after the reconnect; refusing them instead leaves the alerts in
	// the outbox, which retries with backoff, rather than piling copies up
	// in paho's memory. A connection on its way (at start, the outbox has
	// alerts before the broker has answered) is waited for, as long as a
	// publish is.
	topics := make([]string, 0, len(alerts))
	payloads := make([][]byte, 0, len(alerts))
	var refused error // why alerts[len(topics)] cannot be published, ever
	for _, a := range alerts {
		topic, err := m.Topic(a)
		var payload []byte
		if err == nil {
			payload, err = Encode(a)
		}
		if err != nil {
			refused = err
			break
		}
		topics, payloads = append(topics, topic), append(payloads, payload)
	}
	if len(topics) == 0 {
		return 0, refused
	}
	if err := m.waitOpen(ctx); err != nil {
		return 0, fmt.Errorf("publish alert %s to %s: %w", alerts[0].ID, topics[0], err)
	}
	epoch := m.epoch.Load()
	acked, err := m.publish(ctx, alerts, topics, payloads)
	if acked > 0 {
		if cerr := m.confirm(ctx); cerr != nil {
			what := "the alerts' topics ({prefix}/{site}/alerts/{rule})"
			if acked == 1 {
				what = topics[0]
			}
			return 0, fmt.Errorf("publish alert %s to %s: the broker acknowledged it and then dropped the connection "+
				"(%v), as mosquitto does with a publish its ACL refuses: check that fenceline's account may write %s: %w",
				alerts[acked-1].ID, topics[acked-1], cerr, what, ErrNotConfirmed)
		}
	}
	if m.epoch.Load() != epoch {
		// Acknowledged, but not all on one connection: which ones the
		// broker kept before it dropped the first cannot be told.
		return 0, fmt.Errorf("publish alert %s to %s: the connection was lost while it was published: %w",
			alerts[0].ID, topics[0], ErrNotConfirmed)
	}
	if err != nil {
		return acked, err
	}
	return acked, refused
}

// publish publishes the payloads one after the other, each once the
// previous one's PUBACK is in, and returns how many were acknowledged
// before the first failure, and that failure. One at a time, not all in
// flight: a broker without TCP_NODELAY (mosquitto's default) holds back
// all but the first of a burst of PUBACKs until the client's delayed ACK,
// 40 ms on Linux, while a PUBLISH that follows each PUBACK carries the ACK.
func (m *MQTT) publish(ctx context.Context, alerts []*model.Alert, topics []string, payloads [][]byte) (int, error) {
	timer := time.NewTimer(m.cfg.PublishTimeout)
	defer timer.Stop()
	for i, topic := range topics {
		timer.Reset(m.cfg.PublishTimeout)
		tok := m.client.Publish(topic, 1, false, payloads[i])
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return i, fmt.Errorf("publish alert %s to %s: %w", alerts[i].ID, topic, err)
			}
		case <-ctx.Done():
			return i, ctx.Err()
		case <-timer.C:
			// paho may still send it (it keeps in-flight publishes across a
			// reconnect): the retry can then be a second copy, which the
			// receivers drop by id+state.
			return i, fmt.Errorf("publish alert %s to %s: no PUBACK within %s", alerts[i].ID, topic, m.cfg.PublishTimeout)
		}
	}
	return len(topics), nil
}

// checkTopic is the topic filter of confirm's UNSUBSCRIBE. The publisher
// never subscribes to anything, so unsubscribing from it changes nothing.
const checkTopic = "fenceline/delivery-check"

// confirm makes sure the broker kept the publishes it acknowledged. MQTT
// 3.1.1 has no way to refuse a publish: mosquitto acknowledges a QoS 1
// publish its ACL refuses, drops it, and closes the connection, so a PUBACK
// alone does not say the alert reached anyone (an ACL left behind by a
// changed topic_prefix lost every alert while the metrics counted them
// delivered). The broker answers a connection's packets in order: an
// UNSUBACK on the same connection, for an UNSUBSCRIBE sent after the
// PUBACKs, says it went on after the publishes. A connection lost in
// between makes paho fail the UNSUBSCRIBE (subscriptions are not resumed).
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
