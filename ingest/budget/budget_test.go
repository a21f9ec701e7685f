package budget

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 26, 23, 10, 4, 0, time.UTC)

func exceeded(t *testing.T, reg *prometheus.Registry, limit string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "fenceline_ingest_budget_exceeded_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == limit {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no exceeded counter for %s", limit)
	return 0
}

// step is one message of a device at an offset from t0, and whether it is
// expected through.
type step struct {
	at       time.Duration
	device   string
	readings int
	want     bool
}

func TestAllow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lim        Limits
		steps      []step
		msgs, rdgs float64 // exceeded counts at the end
	}{
		{
			name: "burst then the rate",
			lim:  Limits{MessagesPerSecond: 2, MessageBurst: 3},
			steps: []step{
				{0, "a", 1, true}, {0, "a", 1, true}, {0, "a", 1, true}, {0, "a", 1, false},
				{500 * time.Millisecond, "a", 1, true}, {500 * time.Millisecond, "a", 1, false},
				{time.Second, "a", 1, true},
				{10 * time.Second, "a", 1, true}, {10 * time.Second, "a", 1, true}, {10 * time.Second, "a", 1, true},
				{10 * time.Second, "a", 1, false},
			},
			msgs: 3,
		},
		{
			name: "readings limit",
			lim:  Limits{ReadingsPerSecond: 100, ReadingBurst: 100},
			steps: []step{
				{0, "a", 60, true}, {0, "a", 60, false}, {0, "a", 40, true}, {0, "a", 1, false},
				{100 * time.Millisecond, "a", 10, true}, {100 * time.Millisecond, "a", 1, false},
			},
			rdgs: 3,
		},
		{
			name: "a message larger than the burst passes from a full bucket, into debt",
			lim:  Limits{ReadingsPerSecond: 100, ReadingBurst: 100},
			steps: []step{
				{0, "a", 500, true},                // 400 in debt
				{time.Second, "a", 1, false},       // -300
				{4 * time.Second, "a", 100, false}, // 0: not enough yet
				{5 * time.Second, "a", 100, true},  // 100
				{5 * time.Second, "a", 500, false}, // bucket not full
				{6 * time.Second, "a", 500, true},  // full again
				{6*time.Second + time.Millisecond, "a", 1, false},
			},
			rdgs: 4,
		},
		{
			name: "devices have budgets of their own",
			lim:  Limits{MessagesPerSecond: 1, MessageBurst: 1},
			steps: []step{
				{0, "flood", 1, true}, {0, "flood", 1, false}, {0, "flood", 1, false}, {0, "quiet", 1, true},
				{time.Second, "flood", 1, true}, {time.Second, "flood", 1, false}, {time.Second, "quiet", 1, true},
			},
			msgs: 3,
		},
		{
			name: "both limits: the message limit is counted first",
			lim:  Limits{MessagesPerSecond: 3, MessageBurst: 3, ReadingsPerSecond: 10, ReadingBurst: 20},
			steps: []step{
				{0, "a", 15, true}, {0, "a", 6, false}, // readings
				{0, "a", 5, true}, {0, "a", 0, true}, // out of both
				{0, "a", 1, false}, // messages
			},
			msgs: 1, rdgs: 1,
		},
		{
			name:  "no limits",
			lim:   Limits{},
			steps: []step{{0, "a", 4096, true}, {0, "a", 4096, true}, {0, "a", 4096, true}},
		},
		{
			// The jump back earns nothing; the time after it, half a
			// second here, earns as a backlog's.
			name: "a clock set back earns nothing",
			lim:  Limits{MessagesPerSecond: 1, MessageBurst: 1},
			steps: []step{
				{10 * time.Second, "a", 1, true}, {0, "a", 1, false}, {500 * time.Millisecond, "a", 1, false},
				{11 * time.Second, "a", 1, true},
			},
			msgs: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			b := New(tc.lim, reg)
			for i, s := range tc.steps {
				assert.Equal(t, s.want, b.Allow(s.device, s.readings, t0.Add(s.at), t0.Add(s.at)), "step %d %+v", i, s)
			}
			assert.Equal(t, tc.msgs, exceeded(t, reg, LimitMessages))
			assert.Equal(t, tc.rdgs, exceeded(t, reg, LimitReadings))
		})
	}
}

// A device flooding as fast as it can gets exactly its rate through, and
// the quiet device beside it everything it sends.
func TestFloodGetsItsRate(t *testing.T) {
	b := New(Limits{MessagesPerSecond: 50, MessageBurst: 100, ReadingsPerSecond: 1000, ReadingBurst: 2000}, prometheus.NewRegistry())
	flood, quiet := 0, 0
	const seconds = 10
	for ms := 0; ms < seconds*1000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		for range 20 { // 20,000 messages/s
			if b.Allow("flood", 10, now, now) {
				flood++
			}
		}
		if ms%100 == 0 && b.Allow("quiet", 20, now, now) { // 10 messages/s
			quiet++
		}
	}
	assert.InDelta(t, 100+50*seconds, flood, 2, "burst plus the rate")
	assert.Equal(t, 10*seconds, quiet)
}

// Memory stays bounded by MaxDevices however many device names come by;
// idle (full) buckets go first, then the least recently used.
func TestBoundedDevices(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := New(Limits{MessagesPerSecond: 1, MessageBurst: 5, MaxDevices: 100}, reg)
	for i := range 10000 {
		b.Allow(fmt.Sprintf("dev-%d", i), 1, time.Time{}, t0.Add(time.Duration(i)*time.Microsecond))
		require.LessOrEqual(t, b.Len(), 100)
	}
	// A busy device keeps its (empty) bucket while strangers pass by: the
	// full and older buckets are dropped before it.
	now := t0.Add(time.Hour)
	for range 5 {
		require.True(t, b.Allow("busy", 1, time.Time{}, now))
	}
	require.False(t, b.Allow("busy", 1, time.Time{}, now))
	for i := range 500 {
		at := now.Add(time.Duration(i+1) * time.Microsecond)
		b.Allow(fmt.Sprintf("stranger-%d", i), 1, time.Time{}, at)
		b.Allow("busy", 1, time.Time{}, at) // still sending, still refused
	}
	assert.LessOrEqual(t, b.Len(), 100)
	assert.False(t, b.Allow("busy", 1, time.Time{}, now.Add(time.Millisecond)), "its debt was not forgotten")

	// Fewer devices allowed after a reload: trimmed at once.
	b.SetLimits(Limits{MessagesPerSecond: 1, MessageBurst: 5, MaxDevices: 10})
	assert.LessOrEqual(t, b.Len(), 10)
}

func BenchmarkAllow(b *testing.B) {
	for _, devices := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			bg := New(Limits{MessagesPerSecond: 1e9, ReadingsPerSecond: 1e9, MaxDevices: devices}, prometheus.NewRegistry())
			names := make([]string, devices)
			for i := range names {
				names[i] = fmt.Sprintf("F-%05d", i)
			}
			now := t0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Microsecond)
				bg.Allow(names[i%devices], 20, now, now)
				i++
			}
		})
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	bg := New(Limits{MessagesPerSecond: 1e9, ReadingsPerSecond: 1e9}, prometheus.NewRegistry())
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(time.Microsecond)
			bg.Allow("F-AOL-01", 20, now, now)
		}
	})
}

// A backlog passes whole: its messages arrive at once, but were sent over
// hours, as their ts say (a broker's queue after fenceline was down, a
// unit's buffer when its link came back). A unit in a loop does not: many
// messages in a second of its own clock, or with a clock standing still.
func TestBacklogEarnsInDeviceTime(t *testing.T) {
	lim := Limits{MessagesPerSecond: 1, MessageBurst: 10, ReadingsPerSecond: 20, ReadingBurst: 200}
	for _, tc := range []struct {
		name     string
		every    time.Duration // between the messages' ts
		live     bool          // a live message first (a unit's heartbeat)
		toggling bool          // every other message an hour later
		through  int
		newest   bool // the backlog sent newest first
	}{
		{"a backlog, one message a second", time.Second, false, false, 10000, false},
		{"a backlog of a unit sending faster than its rate", 100 * time.Millisecond, false, false, 10 + 999, false},
		{"a clock standing still", 0, false, false, 10, false},
		{"a backlog after a live message", time.Second, true, false, 1 + 10000, false},
		{"a backlog after a live message, faster than its rate", 100 * time.Millisecond, true, false, 1 + 9 + 999, false},
		{"a clock standing still behind a live message", 0, true, false, 10, false},
		{"a clock jumping back and forth earns once", 0, false, true, 11, false},
		{"a clock jumping back and forth behind a live message earns once", 0, true, true, 11, false},
		{"a backlog sent newest first", time.Second, false, false, 10000, true},
		{"a backlog sent newest first after a live message", time.Second, true, false, 1 + 10000, true},
		{"a backlog sent newest first, faster than its rate", 100 * time.Millisecond, false, false, 10 + 999, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(lim, prometheus.NewRegistry())
			sent, through := t0.Add(-3*time.Hour), 0
			if tc.live {
				require.True(t, b.Allow("F-1", 20, t0, t0))
				through++
			}
			for i := range 10000 {
				now := t0.Add(time.Duration(i) * time.Microsecond) // all at once
				ts := sent.Add(time.Duration(i) * tc.every)
				if tc.newest {
					ts = sent.Add(time.Duration(10000-1-i) * tc.every)
				}
				if tc.toggling && i%2 == 1 {
					ts = ts.Add(time.Hour)
				}
				if b.Allow("F-1", 20, ts, now) {
					through++
				}
			}
			assert.InDelta(t, tc.through, through, 1)
		})
	}
}
