package load

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// Mix weighs the streams of generated messages; the weights need not sum to 1.
type Mix struct {
	Detections float64 `json:"detections"`
	Passes     float64 `json:"passes"`
	Positions  float64 `json:"positions"`
	Statuses   float64 `json:"statuses"`
}

// Traffic is what the generated messages look like.
type Traffic struct {
	Mix Mix `json:"mix"`
	// DetectionBatch and PassBatch are the readings per detections and
	// passes message.
	DetectionBatch int `json:"detection_batch"`
	PassBatch      int `json:"pass_batch"`
	// ReadingTS is the share of detections and passes messages whose
	// readings carry their own ts.
	ReadingTS float64 `json:"reading_ts"`
	// InvalidShare is the share of messages with one defect: an unknown
	// device, malformed JSON, a bad reading, a reading from the future.
	InvalidShare float64 `json:"invalid_share"`
	// AlertShare is the share of detections and passes that must raise an
	// alert (an IMSI of MCC 428, a pass at 200 km/h), each with a subject of
	// its own so that no cooldown hides it.
	AlertShare float64 `json:"alert_share"`
	// SeqStart is every device's first seq.
	SeqStart int64 `json:"seq_start"`
	// AlertSubjectStart numbers the subjects of alert-triggering readings
	// (an IMSI's last 10 digits, a plate's last 5 characters): the n-th is
	// AlertSubjectStart+n. Taken from the clock in milliseconds, it keeps
	// the subjects of runs against one daemon apart, so that no rule's
	// cooldown (10 min by default) hides an alert of a later run as a
	// repeat: apart as long as a run raises fewer alerts than the
	// milliseconds until the next one starts (and plates, 34^5 of them,
	// come round again after 12 hours).
	AlertSubjectStart uint64 `json:"alert_subject_start"`
	Seed              uint64 `json:"seed"`
}

// Defects of invalid messages, in the order they take turns.
const (
	DefectUnknownDevice = "unknown_device" // whole message
	DefectMalformedJSON = "malformed_json" // whole message, before the seq is read
	DefectBadReading    = "bad_reading"    // one reading (the only one of a position/status message)
	DefectFutureReading = "future_reading" // one reading's ts an hour ahead
)

var defects = []string{DefectUnknownDevice, DefectMalformedJSON, DefectBadReading, DefectFutureReading}

// Msg is one generated message and what fenceline must make of it.
type Msg struct {
	Topic   string
	Payload []byte
	// Device and Seq are the registered device and the seq fenceline will
	// see; Keyed is false when it sees neither (unknown device, malformed
	// JSON), and then Seq was not used up.
	Device      string
	Seq         int64
	Keyed       bool
	Stream      model.Stream
	Measurement string
	Readings    int    // readings in the payload
	Stored      int    // readings fenceline must store
	Bad         int    // index of the reading it must reject, -1 for none
	Rejections  int    // rejections it must count and dead-letter
	Alerts      int    // alerts it must raise
	Defect      string // "" or one of the Defect constants
}

// Measurement names of the contract's schema, by stream.
var measurements = [...]string{
	model.StreamDetections: "phone_detection",
	model.StreamPasses:     "vehicle_pass",
	model.StreamPosition:   "patrol_position",
	model.StreamStatus:     "device_status",
}

// ReadingMeasurements are the measurements readings are stored in.
var ReadingMeasurements = []string{"phone_detection", "vehicle_pass", "patrol_position", "device_status"}

// phonesPerFence and platesPerCheckpoint size the regular populations: a
// fence sees the same phones again and again, a checkpoint the same cars.
const (
	phonesPerFence      = 300
	platesPerCheckpoint = 200
)

// cst is UTC+8: detections carry RFC 3339 times with it, as in the contract.
var cst = time.FixedZone("CST", 8*3600)

const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

// Generator makes the messages of a Traffic for a World. It is not safe for
// concurrent use.
type Generator struct {
	w   *World
	t   Traffic
	rng *rand.Rand
	cum [4]float64 // cumulative mix weights: detections, passes, positions, statuses

	seq     map[string]int64
	next    [4]int // round robin over the devices of each stream
	all     []Device
	invalid int // invalid messages so far (defects take turns)
	alerts  uint64
}

// NewGenerator checks t against w and returns a generator.
func NewGenerator(w *World, t Traffic) (*Generator, error) {
	m := t.Mix
	if m.Detections < 0 || m.Passes < 0 || m.Positions < 0 || m.Statuses < 0 || m.Detections+m.Passes+m.Positions+m.Statuses <= 0 {
		return nil, fmt.Errorf("traffic: mix %+v: weights must be non-negative and not all zero", m)
	}
	switch {
	case m.Detections > 0 && (len(w.Fences) == 0 || t.DetectionBatch < 1):
		return nil, errors.New("traffic: detections need fences and a batch of at least 1")
	case m.Passes > 0 && (len(w.Checkpoints) == 0 || t.PassBatch < 1):
		return nil, errors.New("traffic: passes need checkpoints and a batch of at least 1")
	case m.Positions > 0 && len(w.Patrols) == 0:
		return nil, errors.New("traffic: positions need patrols")
	case t.DetectionBatch > model.MaxReadingsPerMessage || t.PassBatch > model.MaxReadingsPerMessage:
		return nil, fmt.Errorf("traffic: at most %d readings per message", model.MaxReadingsPerMessage)
	case t.InvalidShare < 0 || t.InvalidShare > 1 || t.AlertShare < 0 || t.AlertShare > 1 || t.ReadingTS < 0 || t.ReadingTS > 1:
		return nil, errors.New("traffic: shares must be within [0, 1]")
	case t.SeqStart < 0 || t.SeqStart > 1<<52:
		return nil, errors.New("traffic: seq_start must be within [0, 2^52]")
	}
	if t.AlertShare > 0 && !w.Alerting {
		return nil, fmt.Errorf("traffic: alert-triggering readings need the rules %s and %s", RuleForeignSIM, RuleSpeeding)
	}
	g := &Generator{w: w, t: t, rng: rand.New(rand.NewPCG(t.Seed, 0x5eed)), seq: map[string]int64{}, all: w.Devices()}
	g.cum[0] = m.Detections
	g.cum[1] = g.cum[0] + m.Passes
	g.cum[2] = g.cum[1] + m.Positions
	g.cum[3] = g.cum[2] + m.Statuses
	return g, nil
}

// Next returns the next message, stamped now (its ts; the readings' own ts
// go back from it one millisecond each).
func (g *Generator) Next(now time.Time) Msg {
	var stream model.Stream
	switch x := g.rng.Float64() * g.cum[3]; {
	case x < g.cum[0]:
		stream = model.StreamDetections
	case x < g.cum[1]:
		stream = model.StreamPasses
	case x < g.cum[2]:
		stream = model.StreamPosition
	default:
		stream = model.StreamStatus
	}
	var devs []Device
	switch stream {
	case model.StreamDetections:
		devs = g.w.Fences
	case model.StreamPasses:
		devs = g.w.Checkpoints
	case model.StreamPosition:
		devs = g.w.Patrols
	default:
		devs = g.all
	}
	i := &g.next[stream-1]
	dev := devs[*i%len(devs)]
	*i++

	defect := ""
	if g.t.InvalidShare > 0 && g.rng.Float64() < g.t.InvalidShare {
		defect = defects[g.invalid%len(defects)]
		g.invalid++
		if defect == DefectFutureReading && (stream == model.StreamPosition || stream == model.StreamStatus) {
			// Their single reading's ts is the message's: a future one
			// would reject the message before its seq is read.
			defect = DefectBadReading
		}
	}

	m := Msg{Stream: stream, Measurement: measurements[stream], Bad: -1, Defect: defect}
	site, kind, id := dev.Site, dev.Kind, dev.ID
	if defect == DefectUnknownDevice {
		id = "GHOST-" + strconv.Itoa(g.invalid%8)
	}
	m.Topic = "border/" + site + "/" + string(kind) + "/" + id + "/" + stream.String()

	seq, ok := g.seq[dev.ID]
	if !ok {
		seq = g.t.SeqStart
	}
	m.Seq = seq
	n := 1
	switch stream {
	case model.StreamDetections:
		n = g.t.DetectionBatch
	case model.StreamPasses:
		n = g.t.PassBatch
	}
	m.Readings = n
	if defect == DefectBadReading || defect == DefectFutureReading {
		m.Bad = g.rng.IntN(n)
	}
	readingTS := (stream == model.StreamDetections || stream == model.StreamPasses) &&
		g.t.ReadingTS > 0 && g.rng.Float64() < g.t.ReadingTS

	p := make([]byte, 0, 64+n*140)
	p = append(p, `{"v":1,"seq":`...)
	p = strconv.AppendInt(p, seq, 10)
	p = append(p, `,"ts":`...)
	if stream == model.StreamDetections {
		p = append(p, '"')
		p = now.In(cst).AppendFormat(p, rfc3339Milli)
		p = append(p, '"')
	} else {
		p = strconv.AppendInt(p, now.UnixMilli(), 10)
	}
	switch stream {
	case model.StreamDetections:
		p = append(p, `,"loc":{"lat":`...)
		p = strconv.AppendFloat(p, dev.Pos.Lat, 'f', 6, 64)
		p = append(p, `,"lon":`...)
		p = strconv.AppendFloat(p, dev.Pos.Lon, 'f', 6, 64)
		p = append(p, `,"datum":"wgs84"},"detections":[`...)
		for k := range n {
			if k > 0 {
				p = append(p, ',')
			}
			p = g.detection(p, &m, dev, k, now, readingTS)
		}
		p = append(p, "]}"...)
	case model.StreamPasses:
		p = append(p, `,"passes":[`...)
		for k := range n {
			if k > 0 {
				p = append(p, ',')
			}
			p = g.pass(p, &m, dev, k, now, readingTS)
		}
		p = append(p, "]}"...)
	case model.StreamPosition:
		p = g.position(p, &m, dev)
	case model.StreamStatus:
		p = g.status(p, &m)
	}

	switch defect {
	case DefectUnknownDevice:
		m.Rejections, m.Alerts = 1, 0
	case DefectMalformedJSON:
		// Cut inside the readings: the seq is there, but no JSON parser
		// gets that far.
		p = p[:len(p)*2/3]
		m.Rejections, m.Alerts = 1, 0
	default:
		m.Device, m.Keyed = dev.ID, true
		g.seq[dev.ID] = seq + 1
		m.Stored = n
		if m.Bad >= 0 {
			m.Stored--
			m.Rejections = 1
		}
	}
	m.Payload = p
	return m
}

func (g *Generator) alert(m *Msg, k int) bool {
	if g.t.AlertShare <= 0 || k == m.Bad || g.rng.Float64() >= g.t.AlertShare {
		return false
	}
	if m.Defect != DefectUnknownDevice && m.Defect != DefectMalformedJSON {
		m.Alerts++
	}
	g.alerts++
	return true
}

func (g *Generator) detection(p []byte, m *Msg, dev Device, k int, now time.Time, readingTS bool) []byte {
	p = append(p, `{"imsi":"`...)
	if g.alert(m, k) {
		// MCC 428, MNC 99, and a number no other reading has: a subject of
		// its own for load-foreign-sim.
		p = append(p, "42899"...)
		p = appendPadded(p, g.t.AlertSubjectStart+g.alerts, 10)
	} else {
		phone := uint64(g.rng.IntN(phonesPerFence))
		fence := uint64(fenceIndex(dev.ID))
		p = append(p, [...]string{"46000", "46001", "46011"}[phone%3]...)
		p = appendPadded(p, fence*1000+phone, 10)
		p = append(p, `","imei":"`...)
		p = appendIMEI(p, 35, fence*1000+phone)
		p = append(p, `","mac":"`...)
		p = appendMAC(p, fence*1000+phone)
	}
	p = append(p, `","rssi":`...)
	if k == m.Bad && m.Defect == DefectBadReading {
		p = append(p, '7') // outside [-150, 0]
	} else {
		p = strconv.AppendInt(p, int64(-40-g.rng.IntN(70)), 10)
	}
	p = append(p, `,"tech":"`...)
	p = append(p, [...]string{"gsm", "umts", "lte", "nr"}[g.rng.IntN(4)]...)
	p = append(p, '"')
	switch {
	case k == m.Bad && m.Defect == DefectFutureReading:
		p = append(p, `,"ts":"`...)
		p = now.Add(time.Hour).In(cst).AppendFormat(p, rfc3339Milli)
		p = append(p, '"')
	case readingTS:
		p = append(p, `,"ts":"`...)
		p = now.Add(-time.Duration(m.Readings-1-k)*time.Millisecond).In(cst).AppendFormat(p, rfc3339Milli)
		p = append(p, '"')
	}
	return append(p, '}')
}

func (g *Generator) pass(p []byte, m *Msg, dev Device, k int, now time.Time, readingTS bool) []byte {
	speed := 30 + float64(g.rng.IntN(10*(normalMaxKmh-30)))/10
	p = append(p, `{"plate":"`...)
	if g.alert(m, k) {
		p = append(p, "蒙A"...)
		p = append(p, plateSuffix(g.t.AlertSubjectStart+g.alerts)...)
		speed = alertSpeedKmh
	} else {
		p = append(p, "蒙B"...)
		p = append(p, plateSuffix(uint64(checkpointIndex(dev.ID))*platesPerCheckpoint+uint64(g.rng.IntN(platesPerCheckpoint)))...)
	}
	p = append(p, `","plate_color":"`...)
	p = append(p, [...]string{"blue", "yellow", "green", "white"}[g.rng.IntN(4)]...)
	p = append(p, `","vehicle_type":"K33","vehicle_color":"white","speed_kmh":`...)
	p = strconv.AppendFloat(p, speed, 'f', 1, 64)
	p = append(p, `,"lane":`...)
	p = strconv.AppendInt(p, int64(1+g.rng.IntN(3)), 10)
	p = append(p, `,"direction":"`...)
	if k == m.Bad && m.Defect == DefectBadReading {
		p = append(p, "sideways"...)
	} else {
		p = append(p, [...]string{"inbound", "outbound"}[g.rng.IntN(2)]...)
	}
	p = append(p, `","heading":`...)
	p = strconv.AppendInt(p, int64(g.rng.IntN(360)), 10)
	p = append(p, `,"confidence":0.9`...)
	p = strconv.AppendInt(p, int64(g.rng.IntN(10)), 10)
	p = append(p, `,"image":"https://`...)
	p = append(p, dev.ID...)
	p = append(p, `.local/img/`...)
	p = strconv.AppendInt(p, m.Seq, 10)
	p = append(p, '-')
	p = strconv.AppendInt(p, int64(k), 10)
	p = append(p, `.jpg"`...)
	switch {
	case k == m.Bad && m.Defect == DefectFutureReading:
		p = append(p, `,"ts":`...)
		p = strconv.AppendInt(p, now.Add(time.Hour).UnixMilli(), 10)
	case readingTS:
		p = append(p, `,"ts":`...)
		p = strconv.AppendInt(p, now.Add(-time.Duration(m.Readings-1-k)*time.Millisecond).UnixMilli(), 10)
	}
	return append(p, '}')
}

func (g *Generator) position(p []byte, m *Msg, dev Device) []byte {
	lat := dev.Pos.Lat + (g.rng.Float64()-0.5)*0.0002
	if m.Bad == 0 {
		lat = 123 // beyond the pole
	}
	p = append(p, `,"lat":`...)
	p = strconv.AppendFloat(p, lat, 'f', 6, 64)
	p = append(p, `,"lon":`...)
	p = strconv.AppendFloat(p, dev.Pos.Lon+(g.rng.Float64()-0.5)*0.0002, 'f', 6, 64)
	p = append(p, `,"speed_kmh":`...)
	p = strconv.AppendInt(p, int64(g.rng.IntN(60)), 10)
	p = append(p, `,"heading":`...)
	p = strconv.AppendInt(p, int64(g.rng.IntN(360)), 10)
	return append(p, `,"accuracy_m":6,"datum":"wgs84"}`...)
}

func (g *Generator) status(p []byte, m *Msg) []byte {
	p = append(p, `,"battery_pct":`...)
	if m.Bad == 0 {
		p = append(p, `"full"`...) // a string where a number belongs
	} else {
		p = strconv.AppendInt(p, int64(20+g.rng.IntN(81)), 10)
	}
	p = append(p, `,"temp_c":-21.5,"uptime_s":`...)
	p = strconv.AppendInt(p, int64(g.rng.IntN(1_000_000)), 10)
	return append(p, `,"tamper":false,"power":"solar","signal_dbm":-95,"queue":0,"fw":"2.3.1"}`...)
}

func appendPadded(p []byte, n uint64, width int) []byte {
	var b [20]byte
	s := strconv.AppendUint(b[:0], n, 10)
	for i := len(s); i < width; i++ {
		p = append(p, '0')
	}
	if len(s) > width {
		s = s[len(s)-width:]
	}
	return append(p, s...)
}

func appendMAC(p []byte, n uint64) []byte {
	const hex = "0123456789abcdef"
	// 02: a locally administered unicast address.
	p = append(p, "02"...)
	for i := 4; i >= 0; i-- {
		o := byte(n >> (8 * i))
		p = append(p, ':', hex[o>>4], hex[o&15])
	}
	return p
}

// fenceIndex and checkpointIndex recover a generated device's number from
// its id (F-007 → 7); an id without trailing digits hashes to some number,
// which is all the identifier pools need.
func fenceIndex(id string) int      { return idNumber(id) }
func checkpointIndex(id string) int { return idNumber(id) }

func idNumber(id string) int {
	i := len(id)
	for i > 0 && id[i-1] >= '0' && id[i-1] <= '9' && len(id)-i < 6 {
		i--
	}
	if n, err := strconv.Atoi(id[i:]); err == nil {
		return n
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % 1_000_000)
}
