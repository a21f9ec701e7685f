package sim

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// Options of one run of a scenario.
type Options struct {
	// Seed of the run; 0 takes the scenario's.
	Seed uint64
	// Start is the simulated time the run begins at (required).
	Start time.Time
	// Duration of the run in simulated time; 0 runs for ever.
	Duration time.Duration
}

// Message is one MQTT message a device publishes, or the start of a scripted
// incident (Incident set, Topic empty), in simulated time order.
type Message struct {
	Time     time.Time
	Topic    string
	Payload  []byte
	Device   string
	Incident *Incident
}

// Sim generates a scenario's messages. It is a discrete-event simulation:
// every device, arrival process and scripted incident is a chain of events
// on one queue ordered by simulated time (ties by the order they were
// scheduled), and each actor draws from its own PCG stream seeded from the
// run's seed and the actor's name. So a seed and a start time always give
// the same messages, byte for byte, and adding an actor does not change what
// the others do. A Sim is not safe for concurrent use.
type Sim struct {
	sc         *Scenario
	seed       uint64
	start, end time.Time // end is zero for a run without end
	seq0       int64

	q   eventQueue
	n   uint64
	out []Message

	devices     map[string]*device
	fences      map[string]*fence
	checkpoints map[string]*device
	patrols     map[string]*patrol
	roads       map[string]*road
	fleet       map[string][]*vehicle // vehicles waiting at each place, in arrival order
	plates      map[string]bool       // plates in use or reserved by incidents
	imsis       map[string]bool
	incidents   []*Incident
}

// New prepares a run of sc.
func New(sc *Scenario, opts Options) (*Sim, error) {
	if opts.Start.IsZero() {
		return nil, errors.New("sim: a start time is required")
	}
	if opts.Duration < 0 {
		return nil, errors.New("sim: negative duration")
	}
	s := &Sim{
		sc:          sc,
		seed:        opts.Seed,
		start:       opts.Start,
		devices:     map[string]*device{},
		fences:      map[string]*fence{},
		checkpoints: map[string]*device{},
		patrols:     map[string]*patrol{},
		roads:       map[string]*road{},
		fleet:       map[string][]*vehicle{},
		plates:      map[string]bool{},
		imsis:       map[string]bool{},
	}
	if s.seed == 0 {
		s.seed = sc.Seed
	}
	if opts.Duration > 0 {
		s.end = opts.Start.Add(opts.Duration)
	}
	s.seq0 = seqBase(opts.Start)
	// Identifiers of incidents are reserved first, so that ordinary traffic
	// never borrows one and blurs which alert belongs to what.
	for i := range sc.Incidents {
		s.reserve(&sc.Incidents[i])
	}
	for i := range sc.Fences {
		s.addFence(&sc.Fences[i])
	}
	for _, r := range sc.Roads {
		for _, v := range r.Via {
			if d := sc.Rules.Registry.Lookup(v); d != nil && s.checkpoints[v] == nil {
				s.addCheckpoint(d)
			}
		}
	}
	for i := range sc.Roads {
		s.addRoad(&sc.Roads[i])
	}
	for i := range sc.Patrols {
		s.addPatrol(&sc.Patrols[i])
	}
	for i := range sc.Incidents {
		s.addIncident(&sc.Incidents[i])
	}
	return s, nil
}

// seqBase is where every device's message counter starts: 1, as a unit's
// after it starts. A simulator run again (make run, again) is the units
// restarted: the daemon counts a counter restart for each
// (fenceline_ingest_sequence_resets_total), and takes their messages, whose
// payloads differ from any before. Counters that went on from the clock
// instead (ten per minute since 2025, the old way) made every device's
// first message of a run a jump over the time the simulator was stopped,
// and the daemon reported thousands of messages missing that never were.
func seqBase(time.Time) int64 { return 1 }

// Start and End bound the run (End is zero for a run without end).
func (s *Sim) Start() time.Time { return s.start }

// End is when the run ends (zero: never).
func (s *Sim) End() time.Time { return s.end }

// Seed is the run's seed.
func (s *Sim) Seed() uint64 { return s.seed }

// Incidents are the run's scripted incidents in scenario order, with the
// rules each is expected to fire.
func (s *Sim) Incidents() []*Incident { return s.incidents }

// Next returns the next message in simulated time order, or false when the
// run has ended.
func (s *Sim) Next() (Message, bool) {
	for len(s.out) == 0 {
		if s.q.Len() == 0 {
			return Message{}, false
		}
		ev := heap.Pop(&s.q).(event)
		if !s.end.IsZero() && !ev.at.Before(s.end) {
			s.q = nil
			return Message{}, false
		}
		ev.fn(ev.at)
	}
	m := s.out[0]
	s.out[0] = Message{}
	s.out = s.out[1:]
	return m, true
}

// All iterates over the run's messages.
func (s *Sim) All() iter.Seq[Message] {
	return func(yield func(Message) bool) {
		for {
			m, ok := s.Next()
			if !ok || !yield(m) {
				return
			}
		}
	}
}

// event is one step of an actor at a simulated time.
type event struct {
	at time.Time
	n  uint64
	fn func(time.Time)
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].n < q[j].n
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*q = old[:len(old)-1]
	return e
}

// at schedules fn at t.
func (s *Sim) at(t time.Time, fn func(time.Time)) {
	s.n++
	heap.Push(&s.q, event{at: t, n: s.n, fn: fn})
}

// every runs fn at phase after the start and then every period, for as
// long as fn returns true.
func (s *Sim) every(phase, period time.Duration, fn func(time.Time) bool) {
	var step func(time.Time)
	step = func(t time.Time) {
		if fn(t) {
			s.at(t.Add(period), step)
		}
	}
	s.at(s.start.Add(phase), step)
}

// arrivals runs arrive at the times of a Poisson process whose rate is
// perHour times scale(t) (in [0, 1]): candidates come at the peak rate and
// each is kept with probability scale(t) (thinning).
func (s *Sim) arrivals(r *rand.Rand, perHour float64, scale func(time.Time) float64, arrive func(time.Time)) {
	if perHour <= 0 {
		return
	}
	gap := func() time.Duration { return time.Duration(r.ExpFloat64() / perHour * float64(time.Hour)) }
	var step func(time.Time)
	step = func(t time.Time) {
		if r.Float64() < scale(t) {
			arrive(t)
		}
		s.at(t.Add(gap()), step)
	}
	s.at(s.start.Add(gap()), step)
}

// rng returns the random stream of the actor called name.
func (s *Sim) rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(s.seed, h.Sum64()))
}

// local returns the local hour (fractional) and minute of the day of t.
func (s *Sim) local(t time.Time) (hour float64, minute int) {
	lt := t.In(s.sc.Location)
	h, m, sec := lt.Clock()
	return float64(h) + float64(m)/60 + float64(sec)/3600, h*60 + m
}

func (s *Sim) night(t time.Time) bool {
	_, m := s.local(t)
	return s.sc.Night.Contains(m)
}

func (s *Sim) rhythm(r []float64, t time.Time) float64 {
	h, _ := s.local(t)
	return r[int(h)%24]
}

// device is one simulated device: its registry entry, topic and counter.
type device struct {
	*model.Device
	topic  string // border/{site}/{kind}/{id}/
	seq    int64
	lastTS time.Time
	rng    *rand.Rand
	bootAt time.Time
}

func (s *Sim) addDevice(d *model.Device) *device {
	dv := &device{
		Device: d,
		topic:  "border/" + d.Site + "/" + string(d.Kind) + "/" + d.ID + "/",
		seq:    s.seq0,
		rng:    s.rng("device/" + d.ID),
	}
	dv.bootAt = s.start.Add(-time.Duration(1+dv.rng.IntN(60*24)) * time.Hour)
	s.devices[d.ID] = dv
	return dv
}

// emit publishes one message of d on stream, built with the next seq and
// its ts: the event's time plus the device's processing delay, to the
// millisecond (what a ts can say), and always after the device's previous
// one, as a device clock runs.
func (s *Sim) emit(d *device, t time.Time, stream string, build func(seq int64, ts time.Time) any) {
	t = t.Add(time.Duration(d.rng.IntN(500)) * time.Millisecond).Truncate(time.Millisecond)
	if !t.After(d.lastTS) {
		t = d.lastTS.Add(time.Millisecond)
	}
	d.lastTS = t
	seq := d.seq
	d.seq++
	payload, err := json.Marshal(build(seq, t))
	if err != nil {
		panic(fmt.Sprintf("sim: encode %s %s: %v", d.ID, stream, err)) // our own types: cannot fail
	}
	s.out = append(s.out, Message{Time: t, Topic: d.topic + stream, Payload: payload, Device: d.ID})
}

// pick returns the value of a weighted choice.
func pick[T any](r *rand.Rand, ws []Weighted[T]) T {
	total := 0.0
	for _, w := range ws {
		total += w.Weight
	}
	x := r.Float64() * total
	for _, w := range ws {
		if x < w.Weight {
			return w.Value
		}
		x -= w.Weight
	}
	return ws[len(ws)-1].Value
}

// uniform returns a duration in [lo, hi].
func uniform(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

func between(r *rand.Rand, lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

// newPhone makes an ordinary phone (a Chinese SIM), or one with the given
// MCC and MNC.
func (s *Sim) newPhone(r *rand.Rand, mcc, mnc string) *phone {
	p := s.sc.Phones
	ph := &phone{rssi: between(r, -95, -55), detect: p.Detect, tech: pick(r, p.Tech)}
	if mcc == "" && r.Float64() < p.WifiOnlyShare {
		ph.mac = genMAC(r)
		ph.tech = ""
		return ph
	}
	ordinary := mcc == ""
	if ordinary {
		mcc, mnc = "460", pick(r, p.Operators)
	}
	for {
		ph.imsi = genIMSI(r, mcc, mnc)
		if !s.imsis[ph.imsi] && !(ordinary && s.watched("imsi", ph.imsi)) {
			s.imsis[ph.imsi] = true
			break
		}
	}
	if r.Float64() < p.IMEIShare {
		ph.imei = genIMEI(r)
	}
	if r.Float64() < p.MACShare {
		ph.mac = genMAC(r)
	}
	return ph
}

// solarBattery is a solar unit's charge over the day: lowest before dawn,
// highest mid-afternoon, never near the 15% of unit-tamper.
func solarBattery(hour, offset float64) float64 {
	return math.Min(100, 62+30*math.Cos(2*math.Pi*(hour-15)/24)+offset)
}

// outdoorTemp is a late-November day on the Mongolian plateau: about -25 °C
// before dawn, -9 °C in the afternoon.
func outdoorTemp(hour float64) float64 {
	return -17 + 8*math.Cos(2*math.Pi*(hour-14)/24)
}
