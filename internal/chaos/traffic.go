package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Key names one reading: the device, the message's seq and the reading's
// index in it. InfluxDB's point time encodes seq and index (see
// model.PointTime), so a stored point gives its key back.
type Key struct {
	Device string
	Seq    int64
	Index  int
}

// Message is one published message and what fenceline must make of it.
type Message struct {
	Topic   string
	Payload []byte
	Phase   int // the fault phase it was published in

	Device      string // "" when fenceline cannot tell (malformed JSON)
	Seq         int64
	Measurement string
	Valid       []Key // readings that must be stored
	// Rejected are the dead letters it must leave: whole-message reasons
	// with index -1, reading reasons with the reading's index.
	Rejected []Rejection
	// Alert is the subject (a foreign IMSI) of the one alert it must raise;
	// "" for none.
	Alert string
}

// Rejection is one dead letter a message must leave.
type Rejection struct {
	Reason string
	Index  int
}

// Devices of the chaos rules file (testdata/rules.yaml).
var (
	fences      = []string{"F-01", "F-02", "F-03", "F-04"}
	checkpoints = []string{"CP-01", "CP-02"}
)

// Plan generates the messages of a run, each with its expected outcome. The
// mix per 20 messages: 12 fence messages of 3 detections (every 5th with a
// bad IMSI as its third, every 4th raising an alert with a foreign IMSI of
// its own), 6 checkpoint messages of 2 passes (every 3rd with a bad
// direction on its second), one malformed JSON and one from an unknown
// device.
type Plan struct {
	mu    sync.Mutex
	n     int
	seqs  map[string]int64
	msgs  []*Message
	phase atomic.Int32
}

// NewPlan returns an empty plan in phase 0.
func NewPlan() *Plan { return &Plan{seqs: map[string]int64{}} }

// SetPhase makes the next messages belong to phase p.
func (p *Plan) SetPhase(ph int) { p.phase.Store(int32(ph)) }

// Messages returns the messages generated so far.
func (p *Plan) Messages() []*Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Message(nil), p.msgs...)
}

// Next generates the next message, stamped now.
func (p *Plan) Next(now time.Time) *Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.n
	p.n++
	m := &Message{Phase: int(p.phase.Load())}
	ts := now.UnixMilli()
	switch slot := k % 20; {
	case slot == 19:
		m.Topic = "border/mdl/fence/" + fences[k%len(fences)] + "/detections"
		m.Payload = fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4600`, k, ts) // cut short
		m.Rejected = []Rejection{{Reason: "malformed_json", Index: -1}}
	case slot == 18:
		m.Topic = "border/mdl/fence/F-GHOST/detections"
		m.Payload = fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001%09d"}]}`, k, ts, k)
		m.Rejected = []Rejection{{Reason: "unknown_device", Index: -1}}
	case slot%3 == 2: // 6 of 20
		dev := checkpoints[k%len(checkpoints)]
		seq := p.nextSeq(dev)
		m.Topic, m.Device, m.Seq, m.Measurement = "border/mdl/checkpoint/"+dev+"/passes", dev, seq, "vehicle_pass"
		dir := "inbound"
		if k%9 == 2 {
			dir = "sideways"
			m.Rejected = []Rejection{{Reason: "bad_direction", Index: 1}}
		} else {
			m.Valid = append(m.Valid, Key{dev, seq, 1})
		}
		m.Valid = append([]Key{{dev, seq, 0}}, m.Valid...)
		m.Payload = fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"passes":[{"plate":"蒙B%05d","direction":"outbound","speed_kmh":64.5},{"plate":"蒙A%05d","direction":%q}]}`,
			seq, ts, k%100000, k%100000, dir)
	default: // 12 of 20
		dev := fences[k%len(fences)]
		seq := p.nextSeq(dev)
		m.Topic, m.Device, m.Seq, m.Measurement = "border/mdl/fence/"+dev+"/detections", dev, seq, "phone_detection"
		imsi := fmt.Sprintf("460001%09d", k)
		if k%4 == 0 {
			imsi = fmt.Sprintf("428991%09d", k)
			m.Alert = imsi
		}
		third := fmt.Sprintf(`{"imei":"35%012d","rssi":-80}`, k)
		m.Valid = []Key{{dev, seq, 0}, {dev, seq, 1}}
		if k%5 == 0 {
			third = `{"imsi":"12","rssi":-80}`
			m.Rejected = []Rejection{{Reason: "bad_imsi", Index: 2}}
		} else {
			m.Valid = append(m.Valid, Key{dev, seq, 2})
		}
		m.Payload = fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":%q,"rssi":-71,"tech":"lte"},{"mac":"a4:5e:60:%02x:%02x:%02x"},%s]}`,
			seq, ts, imsi, k>>16&0xff, k>>8&0xff, k&0xff, third)
	}
	p.msgs = append(p.msgs, m)
	return m
}

func (p *Plan) nextSeq(dev string) int64 {
	p.seqs[dev]++
	return p.seqs[dev]
}

// Publisher publishes at QoS 1 over its own connection and retries each
// message until the broker acknowledged it (PUBACK): a message it counts as
// published is the broker's responsibility. A retry after a lost PUBACK
// publishes the same payload again, which fenceline must take as the same
// readings.
type Publisher struct {
	client    mqtt.Client
	published atomic.Int64
	retries   atomic.Int64
}

// NewPublisher connects to broker as id.
func NewPublisher(ctx context.Context, broker, id string) (*Publisher, error) {
	c, err := connect(ctx, broker, id, true, nil)
	if err != nil {
		return nil, err
	}
	return &Publisher{client: c}, nil
}

// connect connects a client that reconnects by itself within a second of
// the broker's return.
func connect(ctx context.Context, broker, id string, clean bool, onConnect mqtt.OnConnectHandler) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetConnectTimeout(5 * time.Second).
		SetKeepAlive(10 * time.Second).SetOrderMatters(false)
	if onConnect != nil {
		opts.SetOnConnectHandler(onConnect)
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect %s: %w", id, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect %s: %w", id, err)
	}
	return c, nil
}

// Publish sends m until the broker acknowledged it or ctx ends.
func (p *Publisher) Publish(ctx context.Context, m *Message) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.retries.Add(1)
		}
		tok := p.client.Publish(m.Topic, 1, false, m.Payload)
		select {
		case <-tok.Done():
			if tok.Error() == nil {
				p.published.Add(1)
				return nil
			}
		case <-time.After(3 * time.Second): // a PUBACK lost with the connection
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // pause before the next attempt, not a synchronisation
		}
	}
}

// Published is how many messages the broker acknowledged.
func (p *Publisher) Published() int64 { return p.published.Load() }

// Retries is how many publishes were attempted again.
func (p *Publisher) Retries() int64 { return p.retries.Load() }

// Close disconnects.
func (p *Publisher) Close() { p.client.Disconnect(250) }

// Steady publishes the plan's messages at rate per second until ctx ends or
// stop is closed.
func (p *Publisher) Steady(ctx context.Context, plan *Plan, rate float64, stop <-chan struct{}) error {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return nil
		case <-t.C:
		}
		if err := p.Publish(ctx, plan.Next(time.Now())); err != nil {
			return err
		}
	}
}

// Alert is what the subscriber keeps of an alert message.
type Alert struct {
	ID      string
	State   string
	Subject string
}

// AlertSubscriber receives alerts with a persistent session (clean session
// off, fixed client id, QoS 1), as a border unit's client would: alerts
// published while it or the broker was away are delivered on reconnect.
type AlertSubscriber struct {
	client mqtt.Client
	mu     sync.Mutex
	got    []Alert
	bad    int
}

// SubscribeAlerts connects as id and subscribes to every alert topic.
func SubscribeAlerts(ctx context.Context, broker, id string) (*AlertSubscriber, error) {
	s := &AlertSubscriber{}
	subscribed := make(chan error, 1)
	c, err := connect(ctx, broker, id, false, func(c mqtt.Client) {
		// On every connect: a broker without persistence forgets the
		// subscription with the session.
		tok := c.Subscribe("border/+/alerts/+", 1, s.handle)
		go func() {
			tok.Wait()
			select {
			case subscribed <- tok.Error():
			default:
			}
		}()
	})
	if err != nil {
		return nil, err
	}
	s.client = c
	select {
	case err := <-subscribed:
		if err != nil {
			c.Disconnect(0)
			return nil, fmt.Errorf("subscribe to alerts: %w", err)
		}
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe to alerts: %w", ctx.Err())
	}
	return s, nil
}

func (s *AlertSubscriber) handle(_ mqtt.Client, msg mqtt.Message) {
	var a struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Subject struct {
			Kind  string `json:"kind"`
			Value string `json:"value"`
		} `json:"subject"`
	}
	err := json.Unmarshal(msg.Payload(), &a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || a.ID == "" || !strings.HasPrefix(msg.Topic(), "border/") {
		s.bad++
		return
	}
	s.got = append(s.got, Alert{ID: a.ID, State: a.State, Subject: a.Subject.Value})
}

// Received returns the alerts received so far (with the broker's
// redeliveries) and how many messages were not alerts.
func (s *AlertSubscriber) Received() ([]Alert, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Alert(nil), s.got...), s.bad
}

// Close disconnects, keeping the session.
func (s *AlertSubscriber) Close() { s.client.Disconnect(250) }

// Flood publishes n messages of readings detections each for device as fast as
// the broker takes them, with window messages in flight (published, PUBACK
// not yet received) at QoS 1: a faulty unit, or one replaying a week of
// buffered readings at once. It returns once the broker acknowledged all.
func (p *Publisher) Flood(ctx context.Context, device string, firstSeq int64, n, readings, window int) error {
	slots := make(chan struct{}, window)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	ts := time.Now().Add(-time.Hour).UnixMilli()
	topic := "border/mdl/fence/" + device + "/detections"
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case err := <-errs:
			wg.Wait()
			return err
		}
		seq := firstSeq + int64(i)
		// One millisecond per message: the point times stay distinct
		// whatever the seq.
		payload := fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[`, seq, ts+int64(i))
		for j := range readings {
			if j > 0 {
				payload = append(payload, ',')
			}
			payload = fmt.Appendf(payload, `{"imsi":"4600%02d%09d","rssi":-90}`, j%100, i)
		}
		payload = append(payload, "]}"...)
		tok := p.client.Publish(topic, 1, false, payload)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return
			}
			if err := tok.Error(); err != nil {
				select {
				case errs <- fmt.Errorf("flood publish: %w", err):
				default:
				}
				return
			}
			p.published.Add(1)
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
