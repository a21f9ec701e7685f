package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// batchAt is a message of dev with n detections, all at t, their point
// times as the decoder gives them.
func batchAt(dev string, seq int64, t time.Time, n int) *model.Batch {
	b := &model.Batch{Meta: model.Meta{Seq: seq, Time: t}, Device: &model.Device{ID: dev}}
	for i := range n {
		b.Detections = append(b.Detections, model.Detection{Stamp: model.Stamp{Time: t, PointNS: model.PointTime(t, seq, i), Index: i}})
	}
	return b
}

// Readings that take the point time of an earlier reading of their device
// are counted, those that do not are not: as many as InfluxDB overwrites
// (when their tags are the same too), no more.
func TestPointWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	type msg struct {
		dev   string
		seq   int64
		at    time.Duration // after t0
		n     int
		moved bool // the seq sent again with another payload
	}
	frozen := func(from, count int64, n int) []msg {
		var ms []msg
		for s := from; s < from+count; s++ {
			ms = append(ms, msg{"F-1", s, 0, n, false})
		}
		return ms
	}
	for _, tc := range []struct {
		name   string
		msgs   []msg
		shared int
	}{
		{"a clock that moves on", []msg{{"F-1", 1, 0, 20, false}, {"F-1", 2, time.Second, 20, false}, {"F-1", 3, 2 * time.Second, 20, false}}, 0},
		{"a clock standing still, seqs close (PointTime keeps them apart)", frozen(1, 500, 20), 0},
		{"a clock standing still, 2,000 readings 263 seqs apart", []msg{{"F-1", 5000, 0, 2000, false}, {"F-1", 5263, 0, 2000, false}}, 2000 - 1581},
		{"the same offsets: seqs a million apart", []msg{{"F-1", 7, 0, 20, false}, {"F-1", 1_000_007, 0, 20, false}}, 20},
		{"a clock standing still, every message delivered again", append(frozen(1, 500, 8), frozen(1, 500, 8)...), 0},
		{"a clock standing still for 20,000 messages, delivered again", append(frozen(30001, 20000, 1), frozen(38000, 12000, 1)...), 0},
		{"the same offsets, both messages delivered again", []msg{{"F-1", 7, 0, 20, false}, {"F-1", 1_000_007, 0, 20, false}, {"F-1", 7, 0, 20, false}, {"F-1", 1_000_007, 0, 20, false}}, 20},
		{"a message delivered again before another meets its time", []msg{{"F-1", 7, 0, 20, false}, {"F-1", 7, 0, 20, false}, {"F-1", 1_000_007, 0, 20, false}}, 20},
		{"the same seq again with another payload, moved", []msg{{"F-1", 7, 0, 20, false}, {"F-1", 7, 0, 20, true}}, 0},
		{"two devices at one time", []msg{{"F-1", 7, 0, 20, false}, {"F-2", 1_000_007, 0, 20, false}}, 0},
		{"a backlog behind the latest, at times of its own", []msg{{"F-1", 9, time.Hour, 20, false}, {"F-1", 1_000_007, 0, 20, false}, {"F-1", 2_000_008, time.Second, 20, false}}, 0},
		{"a time met again after the device's last few", append(append([]msg{{"F-1", 7, 0, 20, false}},
			func() []msg {
				var ms []msg
				for i := range pointRecent {
					ms = append(ms, msg{"F-1", int64(100 + i), -time.Duration(i+1) * time.Second, 1, false})
				}
				return ms
			}()...), msg{"F-1", 1_000_007, 0, 20, false}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newPointWatch()
			shared := 0
			for _, m := range tc.msgs {
				b := batchAt(m.dev, m.seq, t0.Add(m.at), m.n)
				if m.moved {
					b.MovePointTimes(4)
				}
				n, _ := w.observe(b)
				shared += n
			}
			assert.Equal(t, tc.shared, shared)
		})
	}
}

// The bitmaps are bounded: past maxPointBitmaps, a millisecond met again
// is checked against the offsets of the message that first took it.
func TestPointWatchBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := newPointWatch()
	for d := range maxPointBitmaps + 5 {
		dev := fmt.Sprintf("F-%d", d)
		for _, seq := range []int64{7, 8} {
			n, _ := w.observe(batchAt(dev, seq, t0, 20))
			require.Zero(t, n)
		}
		n, at := w.observe(batchAt(dev, 1_000_007, t0, 20))
		require.Equal(t, 20, n, dev)
		require.Equal(t, t0, at)
	}
	assert.Equal(t, maxPointBitmaps, w.bitmaps)
	// A device that moves on frees its bitmap for another.
	for i := range pointRecent {
		w.observe(batchAt("F-0", 9, t0.Add(time.Duration(i+1)*time.Second), 1))
	}
	assert.Equal(t, maxPointBitmaps-1, w.bitmaps)
}

// A bitmap let go of is reused for the next millisecond met again, and
// starts clear: the offsets the earlier millisecond's messages took are not
// taken in the later one.
func TestPointWatchReusesBitmapsClear(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	w := newPointWatch()
	for _, seq := range []int64{7, 8} {
		n, _ := w.observe(batchAt("F-0", seq, t0, 20))
		require.Zero(t, n)
	}
	first := w.devices["F-0"].recent[0].taken
	require.NotNil(t, first, "a second message in the millisecond takes a bitmap")
	// The device moves on: its span, and its bitmap, are let go of.
	for i := range pointRecent {
		w.observe(batchAt("F-0", 9+int64(i), t0.Add(time.Duration(i+1)*time.Second), 1))
	}
	require.Zero(t, w.bitmaps)
	require.Len(t, w.free, 1)
	// Another device meets a millisecond again, its second message at the
	// offsets seq 8 took in the bitmap's earlier millisecond (seqs a
	// million apart share offsets): none of them is taken in this one.
	t1 := t0.Add(time.Hour)
	n, _ := w.observe(batchAt("F-1", 9, t1, 20))
	require.Zero(t, n)
	n, _ = w.observe(batchAt("F-1", 1_000_008, t1, 20))
	require.Zero(t, n, "a reused bitmap kept an offset of its earlier millisecond")
	require.Same(t, first, w.devices["F-1"].recent[0].taken, "the bitmap let go of is reused")
	// The offsets this millisecond's messages took are: a message at seq
	// 9's is counted.
	n, _ = w.observe(batchAt("F-1", 2_000_009, t1, 20))
	require.Equal(t, 20, n)
}

// Through the pipeline: a unit whose clock stands still sends two messages
// of 2,000 detections 263 seqs apart; 419 of the second's readings take
// the point times of the first's. They are counted and the device is named
// in the log, at most once a minute, with the time of the readings; a
// redelivery of the second counts nothing more.
func TestSharedPointTimesCounted(t *testing.T) {
	f := newFixture(t)
	var log strings.Builder
	f.p.log = slog.New(slog.NewTextHandler(&log, nil))
	ts := time.Now().Add(-time.Minute).UnixMilli()
	payload := func(seq, first int) string {
		var dets []string
		for i := range 2000 {
			dets = append(dets, fmt.Sprintf(`{"imsi":"46000%010d"}`, first+i))
		}
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[%s]}`, seq, ts, strings.Join(dets, ","))
	}
	now := time.Now()
	f.p.opts.Now = func() time.Time { return now }
	send := func(payloads ...string) {
		for _, p := range payloads {
			m, _ := message(topic, p)
			f.p.Handle(context.Background(), m)
		}
	}
	send(payload(5000, 0), payload(5263, 2000), payload(5263, 2000))
	assert.Equal(t, 419.0, testutil.ToFloat64(f.p.m.pointTimeShared))
	const line = "readings took the point times of earlier readings of their device"
	assert.Equal(t, 1, strings.Count(log.String(), line), log.String())
	at := time.UnixMilli(ts).UTC().Format(time.RFC3339Nano)
	assert.Contains(t, log.String(), "device=F-1 seq=5263 ts="+at+" readings=419")

	// Within the minute, more are counted, not logged; the next line
	// counts them with its own.
	send(payload(5526, 4000))
	assert.Equal(t, 1, strings.Count(log.String(), line))
	now = now.Add(time.Minute)
	send(payload(5789, 6000))
	require.Equal(t, 2, strings.Count(log.String(), line))
	total := int(testutil.ToFloat64(f.p.m.pointTimeShared))
	assert.Greater(t, total, 419*2)
	assert.Contains(t, log.String(), fmt.Sprintf("device=F-1 seq=5526 ts=%s readings=%d", at, total-419))

	// Those of a last burst are told once their minute has passed, on a
	// tick, and at a stop, however soon.
	send(payload(6052, 8000))
	require.Equal(t, 2, strings.Count(log.String(), line))
	now = now.Add(time.Minute)
	f.p.tick()
	require.Equal(t, 3, strings.Count(log.String(), line))
	assert.Contains(t, log.String(), "device=F-1 seq=6052 ts="+at)
	send(payload(6315, 10000))
	require.Equal(t, 3, strings.Count(log.String(), line))
	f.p.logUnlogged(now.Add(time.Minute)) // as Run does at a stop
	require.Equal(t, 4, strings.Count(log.String(), line))
	assert.Contains(t, log.String(), "device=F-1 seq=6315 ts="+at)
}

// A span's seqs are kept as runs: consecutive seqs, however many, are one.
func TestSeqSet(t *testing.T) {
	var s seqSet
	for _, seq := range []int64{5, 7, 6, 1, 2, 10, 3} {
		require.False(t, s.has(seq), "%d", seq)
		s = s.add(seq)
		require.True(t, s.has(seq), "%d", seq)
	}
	assert.Equal(t, seqSet{{1, 3}, {5, 7}, {10, 10}}, s)
	s = s.add(4)
	assert.Equal(t, seqSet{{1, 7}, {10, 10}}, s)
	for _, seq := range []int64{0, 8, 9, 11} {
		assert.False(t, s.has(seq), "%d", seq)
	}
	// Full: a seq that would start a run is not kept; one that extends
	// a run is.
	var full seqSet
	for i := range maxSeqRuns {
		full = full.add(int64(3 * i))
	}
	full = full.add(1)
	assert.True(t, full.has(1))
	full = full.add(3*maxSeqRuns + 10)
	assert.False(t, full.has(3*maxSeqRuns+10))
	assert.Len(t, full, maxSeqRuns)
}

// The watch counts what a map of every point time taken would count, for
// traffic within its bounds (a few milliseconds a device): messages of
// random sizes and seqs at a few instants, some sent again, some whose
// offsets wrap past the end of their millisecond.
func TestPointWatchAgainstAMap(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// A seq whose offsets wrap: its base is a few below a whole millisecond.
	wrapSeq := int64(0)
	for s := int64(1); ; s++ {
		if base := model.PointTime(t0, s, 0) % int64(time.Millisecond); base > int64(time.Millisecond)-10 {
			wrapSeq = s
			break
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		w := newPointWatch()
		type key struct {
			dev string
			ms  int64
			seq int64
		}
		seen, size := map[key]bool{}, map[key]int{}
		taken := map[string]map[int64]bool{}
		want, got := 0, 0
		for range 300 {
			dev := fmt.Sprintf("F-%d", rng.IntN(3))
			at := t0.Add(time.Duration(rng.IntN(4)) * time.Millisecond)
			seq := int64(rng.IntN(60)) * 1_000_003 // far apart: offsets anywhere
			if rng.IntN(10) == 0 {
				seq = wrapSeq
			}
			k := key{dev, at.UnixMilli(), seq}
			if size[k] == 0 { // sent again, it is the same message
				size[k] = 1 + rng.IntN(30)
			}
			b := batchAt(dev, seq, at, size[k])
			if !seen[k] {
				seen[k] = true
				if taken[dev] == nil {
					taken[dev] = map[int64]bool{}
				}
				for _, d := range b.Detections {
					if taken[dev][d.PointNS] {
						want++
					}
					taken[dev][d.PointNS] = true
				}
			}
			n, _ := w.observe(b)
			got += n
		}
		require.Equal(t, want, got, "round %d", round)
	}
}

// A reading at the first offset of the next millisecond, just after one at
// the last offset of its own (readings with their own ts), is in the next
// millisecond's span, not the one before's.
func TestPointWatchNextMillisecond(t *testing.T) {
	const ms = int64(1_795_809_000_000)
	stamp := func(ns int64, i int) model.Detection {
		return model.Detection{Stamp: model.Stamp{Time: time.Unix(0, ns), PointNS: ns, Index: i}}
	}
	w := newPointWatch()
	first := &model.Batch{Meta: model.Meta{Seq: 1}, Device: &model.Device{ID: "F-1"},
		Detections: []model.Detection{stamp((ms+1)*int64(time.Millisecond), 0)}}
	n, _ := w.observe(first)
	require.Zero(t, n)
	second := &model.Batch{Meta: model.Meta{Seq: 2}, Device: &model.Device{ID: "F-1"},
		Detections: []model.Detection{stamp(ms*int64(time.Millisecond)+999_999, 0), stamp((ms+1)*int64(time.Millisecond), 1)}}
	n, _ = w.observe(second)
	assert.Equal(t, 1, n, "the second reading takes the first message's point time")
}
