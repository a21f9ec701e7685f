package load

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// Ledger records every published message in publish order, and then what
// was found stored of each of its readings. It is safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	entries []Entry
	byKey   map[msgKey]int32

	unexpected int64 // points of this run's devices that no published reading explains
	orphans    int64 // points of messages whose publish failed (maybe delivered, maybe not)
	counted    bool  // counts (not points) were observed
	counts     map[measDevice]int64
}

type msgKey struct {
	device string
	seq    int64
}

type measDevice struct{ measurement, device string }

// Entry is one published message.
type Entry struct {
	Device      string
	Seq         int64
	Keyed       bool
	Measurement string
	Readings    int
	Stored      int // readings fenceline must store
	Bad         int
	Rejections  int
	Alerts      int
	Published   time.Time // handed to the MQTT client
	Acked       time.Time // PUBACK received (QoS 1)
	Failed      bool      // the publish failed: not counted as published

	found []uint8 // times each reading was found stored
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{byKey: map[msgKey]int32{}, counts: map[measDevice]int64{}}
}

// Add records m as published at t and returns its index.
func (l *Ledger) Add(m *Msg, t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := len(l.entries)
	l.entries = append(l.entries, Entry{
		Device: m.Device, Seq: m.Seq, Keyed: m.Keyed, Measurement: m.Measurement,
		Readings: m.Readings, Stored: m.Stored, Bad: m.Bad, Rejections: m.Rejections, Alerts: m.Alerts,
		Published: t,
	})
	if m.Keyed {
		l.byKey[msgKey{m.Device, m.Seq}] = int32(i)
	}
	return i
}

// Acked records the outcome of publish i.
func (l *Ledger) Acked(i int, t time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i].Acked = t
	l.entries[i].Failed = err != nil
}

// Published returns when the message device+seq was published.
func (l *Ledger) Published(device string, seq int64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.byKey[msgKey{device, seq}]
	if !ok {
		return time.Time{}, false
	}
	return l.entries[i].Published, true
}

// Len is the number of messages recorded.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Entries returns a copy of the entries, in publish order.
func (l *Ledger) Entries() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.entries...)
}

// ObservePoint records one point found in InfluxDB: its measurement, device
// tag, time (ns) and seq field. The reading it stores is recovered from the
// time, which fenceline derives from the message's seq and the reading's
// index (model.PointTime): a point whose time does not fit is unexpected.
func (l *Ledger) ObservePoint(measurement, device string, ns, seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.byKey[msgKey{device, seq}]
	if !ok || ns < 0 {
		l.unexpected++
		return
	}
	e := &l.entries[i]
	idx := model.ReadingIndex(ns, seq)
	if e.Measurement != measurement || idx >= e.Readings || idx == e.Bad ||
		model.PointTime(time.UnixMilli(ns/int64(time.Millisecond)), seq, idx) != ns {
		l.unexpected++
		return
	}
	if e.Failed {
		l.orphans++
		return
	}
	if e.found == nil {
		e.found = make([]uint8, e.Readings)
	}
	if e.found[idx] < 255 {
		e.found[idx]++
	}
}

// ObserveCount records that InfluxDB holds n points of device in
// measurement: the cheap check, which tells loss from surplus but not a
// duplicate from an unexpected point.
func (l *Ledger) ObserveCount(measurement, device string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counted = true
	l.counts[measDevice{measurement, device}] += n
}

// Accounting is the outcome of a run, reading by reading.
type Accounting struct {
	// Method is "points" (every point matched to its reading) or "counts"
	// (points counted per device and measurement).
	Method string `json:"method"`

	PublishedMessages  int64 `json:"published_messages"`
	PublishedReadings  int64 `json:"published_readings"`
	FailedPublishes    int64 `json:"failed_publishes"`
	ExpectedStored     int64 `json:"expected_stored"`
	ExpectedRejections int64 `json:"expected_rejections"`
	ExpectedAlerts     int64 `json:"expected_alerts"`

	// Stored is the expected readings found (each once, however often
	// it was found).
	Stored int64 `json:"stored"`
	// LostReadings were expected and not found; LostMessages are messages
	// none of whose expected readings were found (the broker's loss shows
	// here); PartialMessages lost some of theirs.
	LostReadings    int64 `json:"lost_readings"`
	LostMessages    int64 `json:"lost_messages"`
	PartialMessages int64 `json:"partial_messages"`
	// Duplicated is the extra copies of readings found more than once (in
	// counts mode: the surplus of points over readings).
	Duplicated int64 `json:"duplicated"`
	// Unexpected points belong to no published reading, or to a reading
	// that had to be rejected.
	Unexpected int64 `json:"unexpected"`
	// Orphans are points of messages whose publish reported an error.
	Orphans int64 `json:"orphans"`

	ByMeasurement map[string]*MeasurementAccount `json:"by_measurement"`
	// LostSample names a few lost messages or readings, to start looking.
	LostSample []string `json:"lost_sample,omitempty"`
}

// MeasurementAccount is the accounting of one measurement.
type MeasurementAccount struct {
	Expected   int64 `json:"expected"`
	Stored     int64 `json:"stored"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
}

const lostSampleSize = 10

// Account compares what was published with what was observed.
func (l *Ledger) Account() Accounting {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := Accounting{Method: "points", ByMeasurement: map[string]*MeasurementAccount{}, Unexpected: l.unexpected, Orphans: l.orphans}
	if l.counted {
		a.Method = "counts"
	}
	meas := func(name string) *MeasurementAccount {
		m := a.ByMeasurement[name]
		if m == nil {
			m = &MeasurementAccount{}
			a.ByMeasurement[name] = m
		}
		return m
	}
	expected := map[measDevice]int64{}
	for i := range l.entries {
		e := &l.entries[i]
		if e.Failed {
			a.FailedPublishes++
			continue
		}
		a.PublishedMessages++
		a.PublishedReadings += int64(e.Readings)
		a.ExpectedStored += int64(e.Stored)
		a.ExpectedRejections += int64(e.Rejections)
		a.ExpectedAlerts += int64(e.Alerts)
		if e.Stored == 0 {
			continue
		}
		m := meas(e.Measurement)
		m.Expected += int64(e.Stored)
		if l.counted {
			expected[measDevice{e.Measurement, e.Device}] += int64(e.Stored)
			continue
		}
		var found, extra int64
		var missing []int
		for idx := range e.Readings {
			if idx == e.Bad {
				continue
			}
			n := int64(0)
			if e.found != nil {
				n = int64(e.found[idx])
			}
			switch {
			case n == 0:
				missing = append(missing, idx)
			default:
				found++
				extra += n - 1
			}
		}
		a.Stored += found
		a.Duplicated += extra
		m.Stored += found
		m.Duplicated += extra
		lost := int64(len(missing))
		a.LostReadings += lost
		m.Lost += lost
		switch {
		case found == 0:
			a.LostMessages++
			if len(a.LostSample) < lostSampleSize {
				a.LostSample = append(a.LostSample, fmt.Sprintf("%s seq %d: all %d readings", e.Device, e.Seq, e.Stored))
			}
		case lost > 0:
			a.PartialMessages++
			if len(a.LostSample) < lostSampleSize {
				a.LostSample = append(a.LostSample, fmt.Sprintf("%s seq %d: readings %v", e.Device, e.Seq, missing))
			}
		}
	}
	if l.counted {
		// Per device and measurement: fewer points than readings is loss,
		// more is surplus (duplicates or strays, which counts cannot tell
		// apart).
		keys := make([]measDevice, 0, len(expected))
		for k := range expected {
			keys = append(keys, k)
		}
		for k := range l.counts {
			if _, ok := expected[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].measurement != keys[j].measurement {
				return keys[i].measurement < keys[j].measurement
			}
			return keys[i].device < keys[j].device
		})
		a.LostMessages, a.PartialMessages = -1, -1 // unknown
		for _, k := range keys {
			exp, got := expected[k], l.counts[k]
			m := meas(k.measurement)
			m.Stored += min(exp, got)
			a.Stored += min(exp, got)
			if exp > got {
				m.Lost += exp - got
				a.LostReadings += exp - got
				if len(a.LostSample) < lostSampleSize {
					a.LostSample = append(a.LostSample, fmt.Sprintf("%s %s: %d of %d readings", k.device, k.measurement, exp-got, exp))
				}
			} else {
				m.Duplicated += got - exp
				a.Duplicated += got - exp
			}
		}
	}
	return a
}
