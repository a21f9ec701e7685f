// Package mqttsource takes device messages from the MQTT broker.
//
// It keeps a persistent session (clean session off, fixed client id) and
// acknowledges a QoS 1 message only when the pipeline says its content is
// safe (stored, spooled or dead-lettered): a message lost in a crash before
// its ack is redelivered by the broker. It subscribes in the OnConnect
// handler, so every reconnect resubscribes, and hands messages to a bounded
// channel whose capacity is the in-flight limit: when the pipeline falls
// behind the handler waits, paho stops reading, and the broker holds the
// backlog.
package mqttsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/net/proxy"
	"golang.org/x/sync/semaphore"

	"github.com/fenceline/fenceline/config"
)

// Message is one message taken from the broker. Ack must be called once its
// content is safe; a message never acked is redelivered after a reconnect.
type Message struct {
	Topic    string
	Payload  []byte
	Received time.Time
	Retained bool
	// Duplicate is MQTT's DUP flag: the broker sends the message again,
	// having sent it before without getting its ack (fenceline stopped,
	// or the connection was lost, before it was acked). A device that
	// publishes the same payload twice sends two messages, neither DUP.
	Duplicate bool
	ack       func()
	release   func()
	once      sync.Once
	// order, when set, sends the ack in arrival order (see ackOrder);
	// finished and acked are its, under its lock.
	order           *ackOrder
	finished, acked bool
	// latency, when set, observes the time from Received to the ack sent.
	latency prometheus.Observer
}

// Ack acknowledges the message to the broker (QoS 1: once the messages
// taken before it are acked or abandoned too) and frees its in-flight
// slot. Safe to call more than once.
func (m *Message) Ack() {
	m.once.Do(func() {
		if m.release != nil {
			m.release()
		}
		if m.order != nil {
			m.order.finish(m, true)
		} else {
			m.sendAck()
		}
	})
}

// AckObserved is Ack, with the time from Received to the ack's going to the
// broker (later than now, when earlier messages are not finished) observed
// by latency.
func (m *Message) AckObserved(latency prometheus.Observer) {
	m.latency = latency
	m.Ack()
}

// sendAck sends the ack to the broker and observes its latency.
func (m *Message) sendAck() {
	if m.ack != nil {
		m.ack()
	}
	if m.latency != nil {
		m.latency.Observe(time.Since(m.Received).Seconds())
	}
}

// Abandon frees the in-flight slot without acknowledging: the broker will
// redeliver the message (used at shutdown for work that could not finish).
func (m *Message) Abandon() {
	m.once.Do(func() {
		if m.release != nil {
			m.release()
		}
		if m.order != nil {
			m.order.finish(m, false)
		}
	})
}

// NewMessage builds a Message outside the broker (tests, replay tools).
func NewMessage(topic string, payload []byte, received time.Time, ack func()) *Message {
	return &Message{Topic: topic, Payload: payload, Received: received, ack: ack}
}

// Options configure a Source beyond the config file's mqtt section.
type Options struct {
	Password    string
	TLS         *tls.Config
	MaxInflight int
	// MaxInflightBytes bounds the payload bytes in flight (0: no bound):
	// MaxInflight messages of 256 KiB are half a gigabyte, held twice.
	MaxInflightBytes int64
	// StateDir is where the source remembers the topic filters it
	// subscribed (SubscriptionsFile), so that it can unsubscribe those
	// dropped from the configuration: the persistent session would keep
	// them. The daemon passes storage.dir. Empty: nothing is remembered,
	// and filters dropped from the configuration stay subscribed in the
	// session until it ends.
	StateDir string
}

// Source is a running MQTT subscription.
type Source struct {
	cfg     config.MQTT
	opts    Options
	log     *slog.Logger
	metrics *metrics
	out     chan *Message
	slots   chan struct{}       // one token per message in flight
	bytes   *semaphore.Weighted // payload bytes in flight (nil: no bound)
	client  mqtt.Client
	acks    ackOrder // acks sent in arrival order
	// stopCtx ends with Stop, for waits on bytes.
	stopCtx    context.Context
	cancelStop context.CancelFunc

	subscribed atomic.Bool
	stopping   atomic.Bool
	stop       chan struct{}
	stopOnce   sync.Once

	// subsMu guards known, the filters the session is known to hold (see
	// SubscriptionsFile), and the file.
	subsMu sync.Mutex
	known  []string

	failMu     sync.Mutex
	failLogged time.Time // when a failed connection attempt was last logged
	failLast   string    // and its error's failKey
	failCount  int       // attempts failed since then

	// connectedAt is when the current connection was made (unix ns), and
	// shortLived how many connections in a row the broker closed within
	// shortLivedConn of it: see connectionLost.
	connectedAt atomic.Int64
	shortLived  atomic.Int32

	// connectMu orders Run's connection attempts with Close's
	// disconnect: no attempt starts after Close.
	connectMu sync.Mutex
	// firstRetry is the first wait before trying a first connection
	// again; the waits double up to max_reconnect_interval.
	firstRetry time.Duration
}

type metrics struct {
	connected     prometheus.Gauge
	subscribed    prometheus.Gauge
	connects      prometheus.Counter
	connectFails  prometheus.Counter
	lost          prometheus.Counter
	subscribeErrs prometheus.Counter
	received      prometheus.Counter
	inflight      prometheus.Gauge
	waits         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		connected: f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_mqtt_connected",
			Help: "1 while connected to the broker."}),
		subscribed: f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_mqtt_subscribed",
			Help: "1 while every configured topic is subscribed."}),
		connects: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_mqtt_connects_total",
			Help: "Successful connections to the broker, reconnects included."}),
		connectFails: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_mqtt_connect_failures_total",
			Help: "Failed attempts to connect to the broker (network, TLS or refused CONNECT)."}),
		lost: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_mqtt_connection_lost_total",
			Help: "Connections to the broker lost."}),
		subscribeErrs: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_mqtt_subscribe_errors_total",
			Help: "Failed subscribe attempts."}),
		received: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_mqtt_messages_received_total",
			Help: "Messages taken from the broker (redeliveries included)."}),
		inflight: f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_ingest_inflight_messages",
			Help: "Messages taken from the broker and not yet acknowledged."}),
		waits: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_mqtt_backpressure_waits_total",
			Help: "Times the message handler waited because the in-flight limit was reached."}),
	}
}

// New prepares a Source; Run connects it. Messages arrive on Messages().
func New(cfg config.MQTT, opts Options, log *slog.Logger, reg prometheus.Registerer) *Source {
	if opts.MaxInflight < 1 {
		opts.MaxInflight = 1
	}
	s := &Source{
		cfg:     cfg,
		opts:    opts,
		log:     log.With("component", "mqtt"),
		metrics: newMetrics(reg),
		out:     make(chan *Message, opts.MaxInflight),
		slots:   make(chan struct{}, opts.MaxInflight),
		stop:    make(chan struct{}),

		firstRetry: time.Second,
	}
	if opts.MaxInflightBytes > 0 {
		s.bytes = semaphore.NewWeighted(opts.MaxInflightBytes)
	}
	s.stopCtx, s.cancelStop = context.WithCancel(context.Background())
	s.known, _ = s.loadSubscriptions()
	if cfg.QoS == 0 {
		s.log.Warn("mqtt.qos "+config.QoS0Warning, "qos", cfg.QoS)
	}
	s.client = mqtt.NewClient(s.clientOptions())
	return s
}

// Messages is where taken messages arrive, in the broker's order.
func (s *Source) Messages() <-chan *Message { return s.out }

// Subscribed reports whether the subscription is live (for /readyz).
func (s *Source) Subscribed() bool { return s.subscribed.Load() }

// IntakeFull reports whether every in-flight slot is taken: messages wait
// in the broker (and so does anything else paho reads) until storage
// frees one.
func (s *Source) IntakeFull() bool { return len(s.slots) == cap(s.slots) }

func (s *Source) clientOptions() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(s.cfg.Broker).
		SetClientID(s.cfg.ClientID).
		SetCleanSession(false).
		SetStore(newSessionStore()).
		SetAutoAckDisabled(true).
		SetOrderMatters(true). // handler runs on the router: order kept, our channel is the bound
		SetKeepAlive(s.cfg.KeepAlive.D()).
		SetConnectTimeout(s.cfg.ConnectTimeout.D()).
		SetAutoReconnect(true).
		// paho retries a first connection at a fixed interval (v1.5.1:
		// ConnectRetryInterval, 1 s, for ever); Run retries it with a
		// backoff capped by max_reconnect_interval instead, as paho does
		// reconnects.
		SetConnectRetry(false).
		SetMaxReconnectInterval(s.cfg.MaxReconnectInterval.D()).
		SetResumeSubs(true).
		// Messages queued in the session arrive right after CONNACK, before
		// our SUBSCRIBE is answered: the default handler takes them.
		SetDefaultPublishHandler(s.handle).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(s.connectionLost).
		SetReconnectingHandler(func(_ mqtt.Client, _ *mqtt.ClientOptions) {
			s.log.Debug("reconnecting to broker")
		}).
		SetConnectionNotificationHandler(s.onNotification).
		SetCustomOpenConnectionFn(openConnection)
	if s.cfg.Username != "" {
		o.SetUsername(s.cfg.Username)
		o.SetPassword(s.opts.Password)
	}
	if s.opts.TLS != nil {
		o.SetTLSConfig(s.opts.TLS)
	}
	return o
}

// filters returns the topic filters to subscribe, in shared form when a
// share group is configured.
func (s *Source) filters() map[string]byte {
	m := make(map[string]byte, len(s.cfg.Topics))
	for _, t := range s.cfg.Topics {
		if s.cfg.ShareGroup != "" {
			t = "$share/" + s.cfg.ShareGroup + "/" + t
		}
		m[t] = byte(s.cfg.QoS)
	}
	return m
}

// failLogEvery is how often a broker that keeps refusing us is logged again
// with the same error: it is retried every few seconds.
const failLogEvery = time.Minute

// failKey is what two failed connection attempts must share to be the
// same failure for the log's rate limit: the error's text without its
// digits, which carry what changes from one attempt to the next (an
// expired certificate's error holds the current time, a timeout its
// duration) and not what the failure is.
func failKey(err error) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, err.Error())
}

// onNotification logs failed connection attempts. paho retries them on its
// own and, with connect retry on, reports them nowhere else: without this a
// wrong CA, an expired certificate or a bad password would leave the daemon
// silently unready.
func (s *Source) onNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	f, ok := n.(mqtt.ConnectionNotificationFailed)
	if !ok || f.Reason == nil {
		return
	}
	s.metrics.connectFails.Inc()
	msg := failKey(f.Reason)
	now := time.Now()
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if msg == s.failLast && now.Sub(s.failLogged) < failLogEvery {
		s.failCount++
		return
	}
	attrs := []any{"broker", config.RedactURL(s.cfg.Broker), "err", f.Reason, "failed_attempts_since_last_log", s.failCount}
	if hint := connectHint(s.cfg.Broker, f.Reason); hint != "" {
		attrs = append(attrs, "hint", hint)
	}
	s.log.Error("cannot connect to broker; retrying", attrs...)
	s.failLogged, s.failLast, s.failCount = now, msg, 0
}

// connectHint says what a failed connection most likely means where its
// error does not: a broker closes a connection that speaks plain MQTT to its
// TLS listener, or TLS to its plain one, without a word ("connection reset
// by peer", EOF), and the scheme of mqtt.broker is then the first thing to
// check.
func connectHint(broker string, err error) string {
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return ""
	}
	scheme, _, _ := strings.Cut(broker, "://")
	switch strings.ToLower(scheme) {
	case "tcp", "mqtt":
		return "the broker closed the connection before it answered: if this port expects TLS, use ssl:// in mqtt.broker (and mqtt.tls); else see the broker's log"
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		return "the broker closed the connection during the TLS handshake: if this port speaks plain MQTT, use tcp:// in mqtt.broker, or the broker's TLS port; else see the broker's log for its TLS settings"
	}
	return ""
}

// shortLivedConn and shortLivedRuns: a broker that closes this many
// connections in a row, each within this long of being made, is most likely
// closing them for another client with the same client id (mosquitto
// closes the older of two: "Client … already connected, closing old
// connection" in its log only). Each daemon then takes half the traffic
// and re-receives the rest, and nothing in fenceline's own words said why.
const (
	shortLivedConn = 10 * time.Second
	shortLivedRuns = 3
)

func (s *Source) connectionLost(_ mqtt.Client, err error) {
	s.subscribed.Store(false)
	s.metrics.connected.Set(0)
	s.metrics.subscribed.Set(0)
	s.metrics.lost.Inc()
	lived := time.Since(time.Unix(0, s.connectedAt.Load()))
	if lived >= shortLivedConn {
		s.shortLived.Store(0)
	} else if n := s.shortLived.Add(1); n >= shortLivedRuns {
		s.shortLived.Store(0)
		s.log.Warn("connection to broker lost; reconnecting. The broker closed the last connections within seconds of "+
			"accepting them: is another client connected with the same client id? (mosquitto's log then says "+
			"\"already connected, closing old connection\"); each daemon needs its own mqtt.client_id",
			"err", err, "client_id", s.cfg.ClientID, "lived", lived.Round(time.Millisecond), "connections", n)
		return
	}
	s.log.Warn("connection to broker lost; reconnecting", "err", err)
}

func (s *Source) onConnect(c mqtt.Client) {
	s.connectedAt.Store(time.Now().UnixNano())
	s.metrics.connects.Inc()
	s.metrics.connected.Set(1)
	s.failMu.Lock()
	s.failLast, s.failCount = "", 0
	s.failMu.Unlock()
	s.log.Info("connected to broker", "broker", config.RedactURL(s.cfg.Broker), "client_id", s.cfg.ClientID)
	// Subscribing waits for the SUBACK, which paho's router delivers: never
	// wait for it here, on paho's goroutine.
	go s.subscribe(c)
}

// subscribe retries until the broker grants every filter, the connection
// drops (the next onConnect takes over) or the source stops.
func (s *Source) subscribe(c mqtt.Client) {
	backoff := time.Second
	var tok mqtt.Token // the subscription asked for on this connection, if unanswered
	for !s.stopping.Load() && c.IsConnectionOpen() {
		var err error
		tok, err = s.trySubscribe(c, tok)
		if err == nil {
			s.log.Info("subscribed", "topics", s.cfg.Topics, "share_group", s.cfg.ShareGroup)
			// Subscribed as configured once the filters no longer
			// configured are gone too: a daemon narrowed to its sites is
			// not ready while another site's traffic still comes in.
			s.afterSubscribed(c)
			s.subscribed.Store(true)
			s.metrics.subscribed.Set(1)
			return
		}
		s.metrics.subscribeErrs.Inc()
		s.log.Error("subscribe failed; retrying", "topics", s.cfg.Topics, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-s.stop:
			return
		}
		backoff = min(2*backoff, s.cfg.MaxReconnectInterval.D())
	}
}

// trySubscribe asks the broker for the configured filters and waits for its
// answer. A subscription still unanswered (pending, from the last try on
// this connection) is waited for again rather than asked for twice: the
// broker answers every SUBSCRIBE, each with the topics' retained messages,
// which would then come twice. It returns the token still unanswered.
func (s *Source) trySubscribe(c mqtt.Client, pending mqtt.Token) (mqtt.Token, error) {
	tok := pending
	if tok == nil {
		tok = c.SubscribeMultiple(s.filters(), nil)
	}
	if err := s.await(c, tok, "subscription"); err != nil {
		select {
		case <-tok.Done():
			return nil, err // answered with an error: ask again
		default:
			return tok, err
		}
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code >= 0x80 {
				return nil, fmt.Errorf("broker refused %q (check its ACL)", topic)
			}
		}
	}
	return nil, nil
}

// handle runs on paho's router. It waits for an in-flight slot — that wait
// is the backpressure — and hands the message on.
func (s *Source) handle(_ mqtt.Client, m mqtt.Message) {
	if s.stopping.Load() {
		return // not acked: the broker redelivers it to the next session
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.metrics.waits.Inc()
		select {
		case s.slots <- struct{}{}:
		case <-s.stop:
			return
		}
	}
	// And for room for its bytes: a flood of large payloads (garbage from
	// an unknown device, each dead-lettered whole) must not hold the
	// memory of MaxInflight of them.
	var n int64
	if s.bytes != nil {
		n = min(max(int64(len(m.Payload())), 1), s.opts.MaxInflightBytes)
		if !s.bytes.TryAcquire(n) {
			s.metrics.waits.Inc()
			if s.bytes.Acquire(s.stopCtx, n) != nil {
				<-s.slots
				return // stopping
			}
		}
	}
	s.metrics.received.Inc()
	s.metrics.inflight.Inc()
	msg := &Message{
		Topic:     m.Topic(),
		Payload:   m.Payload(),
		Received:  time.Now(),
		Retained:  m.Retained(),
		Duplicate: m.Duplicate(),
		ack:       m.Ack,
		release: func() {
			if n > 0 {
				s.bytes.Release(n)
			}
			<-s.slots
			s.metrics.inflight.Dec()
		},
	}
	msg.order = &s.acks
	s.acks.add(msg)
	// The channel has as much room as there are slots: this never waits.
	s.out <- msg
}

// Run connects and keeps the subscription until ctx is done. It returns
// only when ctx is done; use Stop and Close for an orderly shutdown.
func (s *Source) Run(ctx context.Context) error {
	go s.connect()
	<-ctx.Done()
	s.Stop()
	return nil
}

// connect makes the first connection, trying again after waits that
// double from firstRetry up to max_reconnect_interval, until it is made
// or the source stops. Each failure is logged (rate-limited) and counted
// by onNotification. Once connected, paho reconnects by itself.
func (s *Source) connect() {
	wait := min(s.firstRetry, s.cfg.MaxReconnectInterval.D())
	for {
		s.connectMu.Lock()
		if s.stopping.Load() {
			s.connectMu.Unlock()
			return
		}
		tok := s.client.Connect()
		s.connectMu.Unlock()
		select {
		case <-tok.Done():
		case <-s.stop:
			return
		}
		if tok.Error() == nil {
			return
		}
		s.log.Debug("first connection failed; trying again", "retry_in", wait, "err", tok.Error())
		select {
		case <-time.After(wait):
		case <-s.stop:
			return
		}
		wait = min(2*wait, s.cfg.MaxReconnectInterval.D())
	}
}

// Stop makes the handler take no more messages; those taken stay valid and
// can still be acked until Close.
func (s *Source) Stop() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		close(s.stop)
		s.cancelStop()
	})
}

// Close disconnects from the broker, waiting up to quiesce for pending acks
// to be sent. Messages not acked by then are redelivered next session. The
// subscription is not removed: the persistent session keeps queueing.
func (s *Source) Close(quiesce time.Duration) {
	s.Stop()
	// An attempt of Run's under way is waited for (it holds connectMu),
	// and none starts after: Run looks at stopping under the same lock.
	s.connectMu.Lock()
	defer s.connectMu.Unlock()
	s.subscribed.Store(false)
	s.metrics.subscribed.Set(0)
	s.metrics.connected.Set(0)
	s.client.Disconnect(uint(quiesce / time.Millisecond))
}

// Describe returns a loggable description of the subscription.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s as %s: %s", config.RedactURL(s.cfg.Broker), s.cfg.ClientID, strings.Join(s.cfg.Topics, ","))
}

// openConnection opens the connection to the broker exactly as paho's own
// does (v1.5.1: proxies from the environment, TLS with options.TLSConfig),
// except that tcp:// and ssl:// connections (and their aliases) are a
// bufferedConn: reads through a buffer, writes coalesced (a TLS
// connection's reads each take its lock and copy out of its record buffer,
// its writes each make a record). WebSocket connections are paho's.
func openConnection(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 30 * time.Second}
	}
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "ws", "wss":
		dialURI := *uri // paho #623: the WebSocket dialer refuses a URL with a user
		dialURI.User = nil
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.TLSConfig
		}
		return mqtt.NewWebsocket(dialURI.String(), tlsc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	case "mqtt", "tcp":
		conn, err = proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	case "unix":
		host := uri.Host
		if host == "" {
			host = uri.Path
		}
		conn, err = dialer.Dial("unix", host)
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		if os.Getenv("all_proxy") == "" {
			conn, err = tls.DialWithDialer(dialer, "tcp", uri.Host, o.TLSConfig)
			break
		}
		var raw net.Conn
		if raw, err = proxy.FromEnvironment().Dial("tcp", uri.Host); err != nil {
			break
		}
		tc := tls.Client(raw, o.TLSConfig)
		if err = tc.Handshake(); err != nil {
			_ = raw.Close()
			break
		}
		conn = tc
	default:
		return nil, errors.New("unknown protocol")
	}
	if err != nil {
		return nil, err
	}
	return newBufferedConn(conn), nil
}
