package mqttsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// A tcp:// connection reads through the buffer: a packet's header bytes,
// read one at a time, come out of one read of the socket; a write reaches
// the peer.
func TestOpenConnectionBuffersReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	sent := bytes.Repeat([]byte("0123456789"), 10_000) // larger than the buffer
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write(sent)
		b := make([]byte, 5)
		_, _ = io.ReadFull(c, b)
		got <- b
	}()
	u, err := url.Parse("tcp://" + ln.Addr().String())
	require.NoError(t, err)
	conn, err := openConnection(u, *mqtt.NewClientOptions())
	require.NoError(t, err)
	defer conn.Close()
	require.IsType(t, &bufferedConn{}, conn)
	one := make([]byte, 1)
	var all []byte
	for range 3 {
		_, err := io.ReadFull(conn, one)
		require.NoError(t, err)
		all = append(all, one...)
	}
	require.Greater(t, conn.(*bufferedConn).r.Buffered(), 0, "one read of the socket served the three")
	rest := make([]byte, len(sent)-3)
	_, err = io.ReadFull(conn, rest)
	require.NoError(t, err)
	require.Equal(t, sent, append(all, rest...))
	_, err = conn.Write([]byte("hello"))
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), <-got)

	_, err = openConnection(&url.URL{Scheme: "ftp", Host: "x"}, *mqtt.NewClientOptions())
	require.Error(t, err)
}

// Through a real broker: messages of every size, from a few bytes to several
// times the read buffer, arrive whole and in order, across a reconnect.
func TestSourceBufferedAgainstBroker(t *testing.T) {
	ctx, broker, src, pub := startSourceAndPublisher(t, "buffered", Options{MaxInflight: 100})

	sizes := []int{0, 1, 100, 127, 128, 16_383, 16_384, readBufferSize - 10, readBufferSize, 3 * readBufferSize, 200_000}
	payload := func(i, n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		return b
	}
	publish := func(round int) {
		for i, n := range sizes {
			tok := pub.Publish(fmt.Sprintf("t/%d/%d", round, i), 1, false, payload(i, n))
			require.True(t, tok.WaitTimeout(10*time.Second))
			require.NoError(t, tok.Error())
		}
	}
	receive := func(round int) {
		for i := 0; i < len(sizes); {
			select {
			case m := <-src.Messages():
				var r, j int
				_, err := fmt.Sscanf(m.Topic, "t/%d/%d", &r, &j)
				require.NoError(t, err, m.Topic)
				require.Equal(t, payload(j, sizes[j]), m.Payload, "%s: size %d", m.Topic, sizes[j])
				m.Ack()
				if r < round {
					continue // an earlier round's message whose ack the restart lost: redelivered, whole
				}
				require.Equal(t, fmt.Sprintf("t/%d/%d", round, i), m.Topic)
				i++
			case <-ctx.Done():
				t.Fatalf("round %d: message %d (%d bytes) never came", round, i, sizes[i])
			}
		}
	}
	publish(0)
	receive(0)

	// The source reconnects to a restarted broker and reads on.
	require.NoError(t, broker.Restart(ctx))
	require.Eventually(t, func() bool { return pub.IsConnectionOpen() && src.Subscribed() }, 20*time.Second, 20*time.Millisecond)
	publish(1)
	receive(1)
}

// BenchmarkSourceReceive: the process CPU per message of taking a backlog
// of 2 KB messages (the size of 20 detections) from a real broker: queued
// in the persistent session while the source was away, then drained, each
// message acked. FENCELINE_BENCH_PAHO_OPENER=1 measures paho's own
// (unbuffered) connection instead, for comparison.
func BenchmarkSourceReceive(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	broker, err := stack.StartMosquitto(ctx, stack.MosquittoOptions{Dir: b.TempDir(), Persistence: true,
		ExtraConfig: "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 1000\n"})
	require.NoError(b, err)
	defer broker.Stop()
	cfg := config.Default().MQTT
	cfg.Broker = broker.URL()
	cfg.ClientID = "bench-source"
	cfg.Topics = []string{"t/#"}

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("bench-pub"))
	tok := pub.Connect()
	require.True(b, tok.WaitTimeout(10*time.Second))
	require.NoError(b, tok.Error())
	defer pub.Disconnect(100)
	payload := bytes.Repeat([]byte("x"), 2048)

	const n = 20_000
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Subscribe once (persistent session), leave, queue the backlog.
		src := New(cfg, Options{MaxInflight: 1000}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if os.Getenv("FENCELINE_BENCH_PAHO_OPENER") != "" {
			o := src.clientOptions()
			o.CustomOpenConnectionFn = nil
			src.client = mqtt.NewClient(o)
		}
		runCtx, stop := context.WithCancel(ctx)
		go func() { _ = src.Run(runCtx) }()
		require.Eventually(b, src.Subscribed, 30*time.Second, 10*time.Millisecond)
		stop()
		src.Close(time.Second)
		for range n {
			pub.Publish("t/x", 1, false, payload)
		}
		// The PUBACK of the last, on the same ordered connection, means the
		// broker has queued every one before it.
		tok := pub.Publish("t/x", 1, false, payload)
		tok.Wait()

		src = New(cfg, Options{MaxInflight: 1000}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if os.Getenv("FENCELINE_BENCH_PAHO_OPENER") != "" {
			o := src.clientOptions()
			o.CustomOpenConnectionFn = nil
			src.client = mqtt.NewClient(o)
		}
		runCtx, stop = context.WithCancel(ctx)
		b.StartTimer()
		cpu0 := processCPU()
		go func() { _ = src.Run(runCtx) }()
		for got := 0; got < n+1; got++ {
			m := <-src.Messages()
			m.Ack()
		}
		cpu += processCPU() - cpu0
		b.StopTimer()
		stop()
		src.Close(time.Second)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*(n+1)), "cpu-ns/msg")
}

// The payload bytes in flight are bounded as the messages are: large
// messages wait for room (backpressure), and none is lost.
func TestIntegrationInflightBytesBounded(t *testing.T) {
	const size, bound = 100_000, 250_000 // two messages fit, not three
	ctx, _, src, pub := startSourceAndPublisher(t, "bytes", Options{MaxInflight: 100, MaxInflightBytes: bound})
	for i := range 5 {
		tok := pub.Publish(fmt.Sprintf("t/%d", i), 1, false, make([]byte, size))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}

	var held []*Message
	for range 2 {
		select {
		case m := <-src.Messages():
			held = append(held, m)
		case <-ctx.Done():
			t.Fatal("the first two never came")
		}
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(src.metrics.waits) >= 1 }, 10*time.Second, time.Millisecond,
		"the third waits for room")
	require.Empty(t, src.Messages(), "no third message while two hold the bytes")
	for _, m := range held {
		m.Ack()
	}
	for range 3 {
		select {
		case m := <-src.Messages():
			m.Ack()
		case <-ctx.Done():
			t.Fatal("the rest never came")
		}
	}
}

// startSourceAndPublisher starts a broker with persistence, a Source named
// name subscribed to t/#, and a publisher, all stopped when t ends; ctx
// bounds the test.
func startSourceAndPublisher(t *testing.T, name string, opts Options) (context.Context, *stack.Mosquitto, *Source, mqtt.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	broker, err := stack.StartMosquitto(ctx, stack.MosquittoOptions{Dir: t.TempDir(), Persistence: true})
	require.NoError(t, err)
	t.Cleanup(func() { broker.Stop() })

	cfg := config.Default().MQTT
	cfg.Broker = broker.URL()
	cfg.ClientID = name + "-test"
	cfg.Topics = []string{"t/#"}
	cfg.MaxReconnectInterval = config.Duration(time.Second)
	src := New(cfg, opts, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	runCtx, stop := context.WithCancel(ctx)
	go func() { _ = src.Run(runCtx) }()
	t.Cleanup(func() {
		src.Close(time.Second)
		stop()
	})
	require.Eventually(t, src.Subscribed, 10*time.Second, 10*time.Millisecond)

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(name + "-pub"))
	tok := pub.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { pub.Disconnect(100) })
	return ctx, broker, src, pub
}

// TestIntegrationSourceShareGroup: replicas with one mqtt.share_group split
// the traffic: every message reaches exactly one of them. Without the
// shared form of the filter each would take every message.
func TestIntegrationSourceShareGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker, err := stack.StartMosquitto(ctx, stack.MosquittoOptions{Dir: t.TempDir(), Persistence: true})
	require.NoError(t, err)
	defer broker.Stop()

	type got struct {
		replica int
		topic   string
	}
	received := make(chan got, 200)
	for i := range 2 {
		cfg := config.Default().MQTT
		cfg.Broker = broker.URL()
		cfg.ClientID = fmt.Sprintf("share-replica-%d", i)
		cfg.Topics = []string{"t/#"}
		cfg.ShareGroup = "replicas"
		src := New(cfg, Options{MaxInflight: 100}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		runCtx, stop := context.WithCancel(ctx)
		go func() { _ = src.Run(runCtx) }()
		defer func() { src.Close(time.Second); stop() }()
		go func() {
			for {
				select {
				case m := <-src.Messages():
					m.Ack()
					received <- got{i, m.Topic}
				case <-runCtx.Done():
					return
				}
			}
		}()
		require.Eventually(t, src.Subscribed, 10*time.Second, 10*time.Millisecond)
	}

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("share-pub"))
	tok := pub.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer pub.Disconnect(100)
	const n = 40
	for i := range n {
		tok := pub.Publish(fmt.Sprintf("t/%d", i), 1, false, []byte("x"))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}

	// A broker keeps each subscriber's messages in order: had a replica
	// taken every message, it would hold all of those before the last
	// distinct one arrives, and the total would pass n.
	distinct := map[string]bool{}
	var per [2]int
	total := 0
	for len(distinct) < n {
		select {
		case g := <-received:
			distinct[g.topic] = true
			per[g.replica]++
			total++
		case <-ctx.Done():
			t.Fatalf("%d of %d messages arrived", len(distinct), n)
		}
	}
	require.Equal(t, n, total, "no message reached both replicas")
	require.Positive(t, per[0], "replica 0 had a share")
	require.Positive(t, per[1], "replica 1 had a share")
}

// TestIntegrationSubscribeBehindFullIntake: a persistent session's backlog
// fills the intake before the broker's SUBACK is read; the subscription is
// waited for, not reported failed (and retried) while storage catches up.
func TestIntegrationSubscribeBehindFullIntake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker, err := stack.StartMosquitto(ctx, stack.MosquittoOptions{Dir: t.TempDir(), Persistence: true})
	require.NoError(t, err)
	defer broker.Stop()
	cfg := config.Default().MQTT
	cfg.Broker = broker.URL()
	cfg.ClientID = "behind-full-intake"
	cfg.Topics = []string{"t/#"}
	cfg.ConnectTimeout = config.Duration(100 * time.Millisecond)
	start := func(log *slog.Logger) (*Source, func()) {
		src := New(cfg, Options{MaxInflight: 2}, log, prometheus.NewRegistry())
		runCtx, stop := context.WithCancel(ctx)
		go func() { _ = src.Run(runCtx) }()
		return src, func() { src.Close(time.Second); stop() }
	}

	// The session and its subscription, then a backlog while away.
	first, closeFirst := start(slog.New(slog.DiscardHandler))
	require.Eventually(t, first.Subscribed, 10*time.Second, 10*time.Millisecond)
	closeFirst()
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("behind-full-intake-pub"))
	tok := pub.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer pub.Disconnect(100)
	const backlog = 10
	for i := range backlog {
		tok := pub.Publish(fmt.Sprintf("t/%d", i), 1, false, []byte("x"))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}

	var logged testenv.LogBuffer
	src, closeSrc := start(slog.New(slog.NewTextHandler(&logged, nil)))
	defer closeSrc()
	// The broker may also answer before the backlog fills the intake; then
	// there is nothing to wait for.
	require.Eventually(t, func() bool {
		return strings.Contains(logged.String(), "waits behind a full intake") || src.Subscribed()
	},
		10*time.Second, 10*time.Millisecond, "the wait is told, not taken for a failure:\n%s", logged.String())
	for range backlog {
		select {
		case m := <-src.Messages():
			m.Ack()
		case <-ctx.Done():
			t.Fatal("the backlog did not come")
		}
	}
	require.Eventually(t, src.Subscribed, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, testutil.ToFloat64(src.metrics.subscribeErrs), logged.String())
}

// A message the broker sends again because it was not acked (here: the
// broker restarted under it) carries the DUP flag; a device's new publish
// of the same payload does not. The pipeline tells a redelivery of a
// rejected message (recorded once) from a unit repeating itself by it.
func TestIntegrationRedeliveryIsDuplicate(t *testing.T) {
	ctx, broker, src, pub := startSourceAndPublisher(t, "dup", Options{MaxInflight: 10})
	next := func() *Message {
		t.Helper()
		select {
		case m := <-src.Messages():
			return m
		case <-ctx.Done():
			t.Fatal("no message")
			return nil
		}
	}
	publish := func() {
		tok := pub.Publish("t/x", 1, false, []byte(`{"v":1,"seq":`))
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	publish()
	first := next()
	require.False(t, first.Duplicate, "a first delivery")

	require.NoError(t, broker.Restart(ctx)) // first is not acked
	again := next()
	require.Equal(t, first.Payload, again.Payload)
	require.True(t, again.Duplicate, "sent again, unacked")
	again.Ack()

	require.Eventually(t, func() bool { return pub.IsConnectionOpen() && src.Subscribed() }, 20*time.Second, 20*time.Millisecond)
	publish() // the same payload, published anew
	fresh := next()
	require.False(t, fresh.Duplicate, "a new publish of the same payload")
	fresh.Ack()
}
