package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// Another client takes fenceline's client id (a misconfigured replica): the
// broker hands it the session and drops fenceline; when it leaves, fenceline
// reconnects, resubscribes and resumes the session — nothing published
// meanwhile is lost.
func TestIntegrationDuplicateClientID(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	pub := func(seq int) {
		e.publish("border/mdl/patrol/P-07/position", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"lat":42.41,"lon":110.12}`, seq, ts+int64(seq)))
	}
	pub(1)
	e.waitAcked(1)

	rogue := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.mq.URL()).SetClientID("fenceline-test").
		SetCleanSession(false).SetAutoReconnect(false))
	tok := rogue.Connect()
	require.True(t, tok.WaitTimeout(waitTimeout))
	require.NoError(t, tok.Error())
	e.waitFor("fenceline dropped by the takeover", func() bool {
		return e.counter("fenceline_mqtt_connection_lost_total", nil) >= 1
	})
	rogue.Disconnect(0)

	for seq := 2; seq <= 20; seq++ {
		pub(seq)
	}
	e.waitFor("every position stored", func() bool { return e.count("patrol_position") >= 20 })
	require.Equal(t, 20, e.count("patrol_position"))
	e.waitFor("subscribed again", func() bool { return e.gauge("fenceline_mqtt_subscribed") == 1 })
}

// The network to the broker goes silent (no FIN, no RST): keep-alive finds
// out, fenceline reconnects once the path is back, and the persistent
// session delivers what was published during the partition.
func TestIntegrationBrokerPartition(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	px := newBlackholeProxy(t, e.mq.Addr())
	e.stop()
	cfg, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	cfg = []byte(strings.Replace(string(cfg), fmt.Sprintf("broker: %q", e.mq.URL()), fmt.Sprintf("broker: %q, keep_alive: 1s", "tcp://"+px.addr()), 1))
	require.NoError(t, os.WriteFile(e.cfgPath, cfg, 0o600))
	e.start()

	ts := time.Now().Add(-time.Minute).UnixMilli()
	pub := func(seq int) {
		e.publish("border/mdl/patrol/P-07/position", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"lat":42.41,"lon":110.12}`, seq, ts+int64(seq)))
	}
	pub(1)
	e.waitAcked(1)

	px.partition(true)
	for seq := 2; seq <= 20; seq++ {
		pub(seq) // the publisher talks to the broker directly: these queue in fenceline's session
	}
	e.waitFor("the dead connection noticed", func() bool {
		return e.counter("fenceline_mqtt_connection_lost_total", nil) >= 1
	})
	px.partition(false)
	e.waitFor("every position stored", func() bool { return e.count("patrol_position") >= 20 })
	require.Equal(t, 20, e.count("patrol_position"))
}

// blackholeProxy forwards TCP to a target; partitioned, it holds every byte
// in both directions without closing anything, as a dead link does, and
// refuses new connections.
type blackholeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &blackholeProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *blackholeProxy) addr() string { return p.ln.Addr().String() }

func (p *blackholeProxy) partition(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if !down {
		// The old connections stay dead, as after a real partition; the
		// client dials new ones.
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *blackholeProxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

func (p *blackholeProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.isDown() {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

// pipe copies src to dst until either closes, dropping nothing but holding
// everything while the proxy is partitioned.
func (p *blackholeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.isDown() {
				// A dead link: the bytes never arrive. Wait for the heal,
				// which closes this connection.
				continue
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

// A daemon whose mqtt.topics were narrowed (partitioned by site) takes no
// more of the other sites' traffic: the broker's persistent session kept
// the old filter, and the source drops it on connecting.
func TestIntegrationNarrowedTopicsDropTheOldSubscription(t *testing.T) {
	e := newEnv(t, "rules.yaml", "")
	e.stop()
	cfg, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	narrowed := strings.Replace(string(cfg), "client_id: fenceline-test}", `client_id: fenceline-test, topics: ["border/mdl/+/+/+"]}`, 1)
	require.NotEqual(t, string(cfg), narrowed)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(narrowed), 0o600))
	e.start()

	// A bjm reading, then an mdl status: the broker delivers them in that
	// order and the pipeline handles them in turn, so once the status is
	// handled the bjm reading would have been.
	ts := time.Now().Add(-time.Minute).UnixMilli()
	e.publish("border/bjm/fence/F-EPH-01/detections", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, ts))
	e.publish("border/mdl/checkpoint/CP-07/status", fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"battery_pct":90}`, ts))
	accepted := func(stream string) float64 {
		return e.counter("fenceline_ingest_readings_accepted_total", map[string]string{"stream": stream})
	}
	e.waitFor("the mdl status handled", func() bool { return accepted("status") == 1 })
	require.Zero(t, accepted("detections"), "bjm's message is not this daemon's any more")
}
