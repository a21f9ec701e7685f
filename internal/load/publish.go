package load

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fenceline/fenceline/internal/sim"
)

// connectMQTT connects a client to broker and waits for the CONNACK.
func connectMQTT(ctx context.Context, broker, id string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, fmt.Errorf("mqtt connect %s as %s: %w", broker, id, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect %s as %s: %w", broker, id, err)
	}
	return c, nil
}

// publisher publishes messages over one or more MQTT connections, each with
// a window of messages in flight (published, PUBACK not yet received): the
// broker's pace sets the rate when publishing as fast as possible.
type publisher struct {
	qos     byte
	ledger  *Ledger
	clients []mqtt.Client
	windows []chan pending
	slots   []chan struct{} // one token per message in flight
	wg      sync.WaitGroup
	errs    atomic.Int64
	lastErr atomic.Value // error
}

type pending struct {
	tok mqtt.Token
	idx int
}

func newPublisher(ctx context.Context, broker string, conns, inflight int, qos byte, ledger *Ledger) (*publisher, error) {
	conns = max(conns, 1)
	perConn := max(inflight/conns, 1)
	p := &publisher{qos: qos, ledger: ledger}
	for i := range conns {
		c, err := connectMQTT(ctx, broker, fmt.Sprintf("fenceline-load-%d-%d", os.Getpid(), i))
		if err != nil {
			p.close()
			return nil, err
		}
		p.clients = append(p.clients, c)
		// A publish takes a slot first; the collector waits for the PUBACKs
		// in publish order (the order the broker acknowledges them in) and
		// frees a slot per PUBACK.
		w, slots := make(chan pending, perConn), make(chan struct{}, perConn)
		p.windows = append(p.windows, w)
		p.slots = append(p.slots, slots)
		p.wg.Add(1)
		go p.collect(w, slots)
	}
	return p, nil
}

func (p *publisher) collect(w chan pending, slots chan struct{}) {
	defer p.wg.Done()
	for pd := range w {
		pd.tok.Wait()
		err := pd.tok.Error()
		if err != nil {
			p.errs.Add(1)
			p.lastErr.Store(err)
		}
		p.ledger.Acked(pd.idx, time.Now(), err)
		<-slots
	}
}

// publish records m in the ledger and hands it to the connection of its
// device (one connection per device keeps each device's order).
func (p *publisher) publish(ctx context.Context, m *Msg) error {
	i := 0
	if len(p.clients) > 1 {
		h := fnv.New32a()
		h.Write([]byte(m.Topic))
		if m.Device != "" {
			h.Reset()
			h.Write([]byte(m.Device))
		}
		i = int(h.Sum32() % uint32(len(p.clients)))
	}
	select {
	case p.slots[i] <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	idx := p.ledger.Add(m, time.Now())
	tok := p.clients[i].Publish(m.Topic, p.qos, false, m.Payload)
	p.windows[i] <- pending{tok, idx} // never blocks: the slot bounds it
	return nil
}

// flush waits for every publish to be acknowledged (or fail).
func (p *publisher) flush() {
	for _, w := range p.windows {
		close(w)
	}
	p.windows = nil
	p.wg.Wait()
}

func (p *publisher) close() {
	if p.windows != nil {
		p.flush()
	}
	for _, c := range p.clients {
		c.Disconnect(250)
	}
}

func (p *publisher) err() error {
	if e, ok := p.lastErr.Load().(error); ok {
		return e
	}
	return nil
}

// alertSub receives the alerts fenceline publishes.
type alertSub struct {
	client mqtt.Client
	mu     sync.Mutex
	got    []alertRecv
	bad    int
	notify chan struct{}
	// lost counts the connections lost: alerts published until the next
	// one (a broker restart: the daemon may be back first) never reach the
	// subscriber, and are reported missing.
	lost atomic.Int64
}

type alertRecv struct {
	T      time.Time
	ID     string
	Rule   string
	State  string
	Device string
	Seq    int64
}

// subscribeAlerts subscribes to topicPrefix/+/alerts/+ at QoS 1, on every
// connection: the session is clean, so a broker that restarted knows
// nothing of a subscription made once, and the alerts after it would all be
// reported missing.
func subscribeAlerts(ctx context.Context, broker, topicPrefix string) (*alertSub, error) {
	s := &alertSub{notify: make(chan struct{}, 1)}
	c, err := sim.ConnectWatched(ctx, broker, fmt.Sprintf("fenceline-load-%d-alerts", os.Getpid()), 10*time.Second,
		func() { s.lost.Add(1) }, sim.Subscription{Filter: topicPrefix + "/+/alerts/+", Handler: s.handle})
	if err != nil {
		return nil, fmt.Errorf("subscribe to alerts: %w", err)
	}
	s.client = c
	return s, nil
}

func (s *alertSub) handle(_ mqtt.Client, msg mqtt.Message) {
	t := time.Now()
	var a struct {
		ID       string `json:"id"`
		Rule     string `json:"rule"`
		State    string `json:"state"`
		Evidence []struct {
			Device string `json:"device"`
			Seq    int64  `json:"seq"`
		} `json:"evidence"`
	}
	err := json.Unmarshal(msg.Payload(), &a)
	s.mu.Lock()
	if err != nil || len(a.Evidence) == 0 {
		s.bad++
	} else {
		s.got = append(s.got, alertRecv{T: t, ID: a.ID, Rule: a.Rule, State: a.State, Device: a.Evidence[0].Device, Seq: a.Evidence[0].Seq})
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *alertSub) received() ([]alertRecv, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]alertRecv(nil), s.got...), s.bad
}

func (s *alertSub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *alertSub) close() {
	if s != nil {
		s.client.Disconnect(250)
	}
}
