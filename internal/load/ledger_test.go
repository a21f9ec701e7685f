package load

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// synth publishes n messages of readings readings each from device into l,
// at base + i ms, and returns them.
func synth(l *Ledger, device string, seq0 int64, n, readings int, base time.Time) []Msg {
	var msgs []Msg
	for i := range n {
		m := Msg{Device: device, Seq: seq0 + int64(i), Keyed: true, Stream: model.StreamDetections,
			Measurement: "phone_detection", Readings: readings, Stored: readings, Bad: -1}
		idx := l.Add(&m, base.Add(time.Duration(i)*time.Millisecond))
		l.Acked(idx, base.Add(time.Duration(i)*time.Millisecond+time.Millisecond), nil)
		msgs = append(msgs, m)
	}
	return msgs
}

// store observes the points fenceline would write for reading idx of m,
// timed at t.
func store(l *Ledger, m Msg, idx int, t time.Time) {
	l.ObservePoint(m.Measurement, m.Device, model.PointTime(t, m.Seq, idx), m.Seq)
}

var base = time.Date(2026, 11, 26, 23, 10, 4, 120_000_000, time.UTC)

func TestAccountEverythingStoredOnce(t *testing.T) {
	l := NewLedger()
	msgs := synth(l, "F-001", 1000, 50, 20, base)
	for i, m := range msgs {
		for k := range m.Readings {
			store(l, m, k, base.Add(time.Duration(i)*time.Millisecond))
		}
	}
	a := l.Account()
	require.Equal(t, int64(50), a.PublishedMessages)
	require.Equal(t, int64(1000), a.ExpectedStored)
	require.Equal(t, int64(1000), a.Stored)
	require.Zero(t, a.LostReadings)
	require.Zero(t, a.LostMessages)
	require.Zero(t, a.Duplicated)
	require.Zero(t, a.Unexpected)
	require.Equal(t, int64(1000), a.ByMeasurement["phone_detection"].Stored)
}

func TestAccountLossByTheBroker(t *testing.T) {
	// Messages 10..14 never reached fenceline (as with mosquitto's queue
	// limit): whole messages lost, found by their seqs.
	l := NewLedger()
	msgs := synth(l, "F-001", 1000, 30, 20, base)
	for i, m := range msgs {
		if i >= 10 && i < 15 {
			continue
		}
		for k := range m.Readings {
			store(l, m, k, base.Add(time.Duration(i)*time.Millisecond))
		}
	}
	a := l.Account()
	require.Equal(t, int64(5), a.LostMessages)
	require.Equal(t, int64(100), a.LostReadings)
	require.Zero(t, a.PartialMessages)
	require.Equal(t, int64(500), a.Stored)
	require.Len(t, a.LostSample, 5)
	require.Contains(t, a.LostSample[0], "F-001 seq 1010")
}

func TestAccountPartialLoss(t *testing.T) {
	// Readings of one message collapsed into one point (what Telegraf does
	// with readings sharing tags and time): 19 of 20 lost, not the message.
	l := NewLedger()
	msgs := synth(l, "F-001", 1, 3, 20, base)
	store(l, msgs[0], 0, base)
	for k := range 20 {
		store(l, msgs[1], k, base)
		store(l, msgs[2], k, base)
	}
	a := l.Account()
	require.Zero(t, a.LostMessages)
	require.Equal(t, int64(1), a.PartialMessages)
	require.Equal(t, int64(19), a.LostReadings)
	require.Equal(t, int64(41), a.Stored)
}

func TestAccountDuplicates(t *testing.T) {
	// A reading stored twice: the same (device, seq, index) at another
	// time, as a daemon that stamped points with the receive time would
	// write a redelivered message.
	l := NewLedger()
	msgs := synth(l, "F-001", 1, 2, 5, base)
	for _, m := range msgs {
		for k := range m.Readings {
			store(l, m, k, base)
		}
	}
	store(l, msgs[1], 3, base.Add(time.Second))
	store(l, msgs[1], 4, base.Add(2*time.Second))
	store(l, msgs[1], 4, base.Add(3*time.Second))
	a := l.Account()
	require.Equal(t, int64(3), a.Duplicated)
	require.Equal(t, int64(10), a.Stored)
	require.Zero(t, a.LostReadings)
	require.Equal(t, int64(3), a.ByMeasurement["phone_detection"].Duplicated)
}

func TestAccountUnexpectedPoints(t *testing.T) {
	l := NewLedger()
	m := Msg{Device: "F-001", Seq: 7, Keyed: true, Measurement: "phone_detection", Readings: 4, Stored: 3, Bad: 2, Rejections: 1}
	l.Acked(l.Add(&m, base), base, nil)
	for _, k := range []int{0, 1, 3} {
		store(l, m, k, base)
	}
	store(l, m, 2, base)                                                            // the reading that had to be rejected
	l.ObservePoint("phone_detection", "F-001", model.PointTime(base, 8, 0), 8)      // a seq never published
	l.ObservePoint("phone_detection", "F-999", model.PointTime(base, 7, 0), 7)      // another device
	l.ObservePoint("vehicle_pass", "F-001", model.PointTime(base, 7, 0), 7)         // another measurement
	l.ObservePoint("phone_detection", "F-001", model.PointTime(base, 7, 0)+4096, 7) // a time not of seq 7
	a := l.Account()
	require.Equal(t, int64(5), a.Unexpected)
	require.Equal(t, int64(3), a.Stored)
	require.Zero(t, a.LostReadings)
	require.Equal(t, int64(1), a.ExpectedRejections)
}

func TestAccountFailedPublishes(t *testing.T) {
	l := NewLedger()
	m := Msg{Device: "F-001", Seq: 1, Keyed: true, Measurement: "phone_detection", Readings: 2, Stored: 2, Bad: -1}
	l.Acked(l.Add(&m, base), base, errors.New("connection lost"))
	store(l, m, 0, base) // it did reach the broker after all
	a := l.Account()
	require.Equal(t, int64(1), a.FailedPublishes)
	require.Zero(t, a.PublishedMessages)
	require.Zero(t, a.ExpectedStored)
	require.Zero(t, a.LostReadings, "a failed publish is not fenceline's loss")
	require.Equal(t, int64(1), a.Orphans)
}

func TestAccountUnkeyedMessages(t *testing.T) {
	// An unknown device's message: counted as published and as a
	// rejection, never looked up by seq.
	l := NewLedger()
	m := Msg{Seq: 5, Measurement: "phone_detection", Readings: 20, Rejections: 1, Bad: -1}
	l.Acked(l.Add(&m, base), base, nil)
	a := l.Account()
	require.Equal(t, int64(1), a.PublishedMessages)
	require.Equal(t, int64(20), a.PublishedReadings)
	require.Zero(t, a.ExpectedStored)
	require.Equal(t, int64(1), a.ExpectedRejections)
	require.Zero(t, a.LostMessages)
}

func TestAccountByCounts(t *testing.T) {
	l := NewLedger()
	synth(l, "F-001", 1, 10, 20, base) // 200 readings
	synth(l, "F-002", 1, 10, 20, base) // 200
	synth(l, "F-003", 1, 10, 20, base) // 200
	l.ObserveCount("phone_detection", "F-001", 200)
	l.ObserveCount("phone_detection", "F-002", 150)
	l.ObserveCount("phone_detection", "F-003", 210)
	a := l.Account()
	require.Equal(t, "counts", a.Method)
	require.Equal(t, int64(600), a.ExpectedStored)
	require.Equal(t, int64(550), a.Stored)
	require.Equal(t, int64(50), a.LostReadings)
	require.Equal(t, int64(10), a.Duplicated, "a surplus counts as duplicates")
	require.Equal(t, int64(-1), a.LostMessages, "counts cannot tell whole messages")
	require.True(t, strings.HasPrefix(a.LostSample[0], "F-002"))
}

func TestStoredLatency(t *testing.T) {
	// Ten messages of 10 readings published 100 ms apart; the stored count
	// grows 10 readings per 100 ms, 50 ms behind.
	var entries []Entry
	for i := range 10 {
		entries = append(entries, Entry{Stored: 10, Published: base.Add(time.Duration(i) * 100 * time.Millisecond)})
	}
	var tl []CountSample
	for i := 0; i <= 20; i++ {
		tl = append(tl, CountSample{T: base.Add(50*time.Millisecond + time.Duration(i)*50*time.Millisecond), N: float64(min(i*5, 100))})
	}
	d := storedLatency(entries, tl)
	s := d.Summary()
	require.Equal(t, 100.0, s.Count)
	require.InDelta(t, 150, s.P50, 0.01, "reading k stored when the count reached its message's end")
	require.InDelta(t, 150, s.Max, 0.01)

	// A count that stops short leaves the rest out.
	d = storedLatency(entries, tl[:5])
	require.Equal(t, 20.0, d.Summary().Count)
}

func TestReachedAtInterpolates(t *testing.T) {
	tl := []CountSample{{base, 0}, {base.Add(time.Second), 100}}
	at, ok := reachedAt(tl, 25)
	require.True(t, ok)
	require.Equal(t, base.Add(250*time.Millisecond), at)
	_, ok = reachedAt(tl, 101)
	require.False(t, ok)
}

func TestDistQuantiles(t *testing.T) {
	var d Dist
	for i := 1; i <= 100; i++ {
		d.Add(time.Duration(i)*time.Millisecond, 1)
	}
	d.Add(time.Second, 0) // no weight, no effect
	require.Equal(t, 50*time.Millisecond, d.Quantile(0.5))
	require.Equal(t, 99*time.Millisecond, d.Quantile(0.99))
	require.Equal(t, 100*time.Millisecond, d.Quantile(1))
}
