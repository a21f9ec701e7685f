package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

// TestIntegrationFlood: one device publishes as fast as the broker takes
// its messages while another publishes at its normal pace. The healthy
// device's readings all arrive; every flood reading is either stored or,
// past the device's budget (ingest.device_budget), dead-lettered as
// over_budget — none lost, none twice; and the daemon's resident memory
// stays bounded: intake takes at most ingest.max_inflight messages and the
// writer at most influx.max_pending_lines lines, whatever the backlog at
// the broker.
func TestIntegrationFlood(t *testing.T) {
	floodN, per, bound := 100_000, 5, int64(256<<20)
	if longProfile() {
		floodN, per = 500_000, 20
	}
	e := newEnv(t, true, "")
	pid := e.daemon.PID()
	base, err := ProcMemory(pid)
	require.NoError(t, err)

	// Resident memory, sampled every 20ms; VmHWM gives the exact peak.
	var peak atomic.Int64
	sampling := make(chan struct{})
	var sampled sync.WaitGroup
	sampled.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := ProcMemory(pid); err == nil && m.RSS > peak.Load() {
				peak.Store(m.RSS)
			}
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	})

	// Intake and writer occupancy, scraped every 100ms: the bounds that
	// keep memory flat are these.
	var peakInflight, peakPending atomic.Int64
	sampled.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := e.daemon.Metrics(e.ctx); err == nil {
				if v := int64(m.Sum("fenceline_ingest_inflight_messages", nil)); v > peakInflight.Load() {
					peakInflight.Store(v)
				}
				if v := int64(m.Sum("fenceline_influx_pending_lines", nil)); v > peakPending.Load() {
					peakPending.Store(v)
				}
			}
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	})

	// The healthy device: 20 messages a second of 2 detections.
	healthy, err := NewPublisher(e.within(30*time.Second), e.mq.URL(), "chaos-healthy")
	require.NoError(t, err)
	defer healthy.Close()
	var (
		hmu  sync.Mutex
		keys []Key
	)
	stopHealthy := make(chan struct{})
	healthyDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			select {
			case <-stopHealthy:
				healthyDone <- nil
				return
			case <-tick.C:
			}
			ts := time.Now().UnixMilli()
			m := &Message{Topic: "border/mdl/fence/F-HEALTHY/detections",
				Payload: fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460002%09d"},{"mac":"a4:5e:60:00:%02x:%02x"}]}`, seq, ts, seq, seq>>8&0xff, seq&0xff)}
			if err := healthy.Publish(e.ctx, m); err != nil {
				healthyDone <- err
				return
			}
			hmu.Lock()
			keys = append(keys, Key{"F-HEALTHY", seq, 0}, Key{"F-HEALTHY", seq, 1})
			hmu.Unlock()
		}
	}()

	start := time.Now()
	require.NoError(t, e.pub.Flood(e.within(10*time.Minute), "F-FLOOD", 1, floodN, per, 1000))
	floodTook := time.Since(start)
	close(stopHealthy)
	require.NoError(t, <-healthyDone)
	hmu.Lock()
	want := append([]Key(nil), keys...)
	hmu.Unlock()
	storedAtFloodEnd := e.countHealthy(want, start.Add(-time.Minute))

	// Everything is stored in the end: the flood's readings and the
	// healthy device's, each once.
	var flood, healthyStored, dup, overBudget int
	deadline := time.Now().Add(3 * time.Minute)
	if longProfile() {
		deadline = time.Now().Add(15 * time.Minute)
	}
	for {
		flood, healthyStored, dup = e.floodCounts(want, start.Add(-time.Minute))
		if m, err := e.daemon.Metrics(e.ctx); err == nil {
			overBudget = per * int(m.Sum("fenceline_ingest_rejections_total", map[string]string{"reason": "over_budget"}))
		}
		if (flood+overBudget >= floodN*per && healthyStored == len(want)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond) // polling interval of a condition
	}
	settled := time.Since(start)
	close(sampling)
	sampled.Wait()
	mem, err := ProcMemory(pid)
	require.NoError(t, err)
	m, err := e.daemon.Metrics(e.within(5 * time.Second))
	require.NoError(t, err)
	waits, lost := m.Sum("fenceline_mqtt_backpressure_waits_total", nil), m.Sum("fenceline_mqtt_connection_lost_total", nil)
	require.NoError(t, e.daemon.Stop(30*time.Second))

	text := fmt.Sprintf(`flood: %d messages of %d readings from one device in %v (%.0f msgs/s at the broker); healthy device: %d readings at 20 msgs/s
  flood readings stored: %d/%d, dead-lettered over budget: %d   healthy readings stored: %d/%d (%d already when the flood ended)   duplicated: %d   lost: %d
  all stored %v after the flood began
  fenceline RSS: %.0f MiB at start, peak %.0f MiB sampled, VmHWM %.0f MiB (bound %d MiB)
  peak messages in flight %d (ingest.max_inflight 2000), peak lines pending %d (influx.max_pending_lines 50000), backpressure waits %.0f, broker connections lost %.0f`,
		floodN, per, floodTook.Round(time.Millisecond), float64(floodN)/floodTook.Seconds(), len(want),
		flood, floodN*per, overBudget, healthyStored, len(want), storedAtFloodEnd, dup, len(want)-healthyStored+max(floodN*per-flood-overBudget, 0),
		settled.Round(time.Millisecond),
		mib(base.RSS), mib(peak.Load()), mib(mem.Peak), bound>>20, peakInflight.Load(), peakPending.Load(), waits, lost)
	t.Log("\n" + text)
	if p := reportPath(); p != "" {
		appendReport(p, text)
	}
	require.Equal(t, len(want), healthyStored, "every healthy reading arrived")
	require.Equal(t, floodN*per, flood+overBudget, "every flood reading stored once or dead-lettered over budget")
	require.Positive(t, overBudget, "the flood went over its device's budget")
	require.Zero(t, dup)
	require.Less(t, mem.Peak, bound, "resident memory stays bounded under a flood")
	require.Zero(t, lost, "the MQTT router never stalled long enough to lose the connection")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// countHealthy counts the healthy keys stored now.
func (e *env) countHealthy(want []Key, since time.Time) int {
	_, n, _ := e.floodCounts(want, since)
	return n
}

// floodCounts counts the flood device's points, the healthy keys stored, and
// healthy points stored twice (or under a time of their own). The flood's
// points are counted, not scanned (ten million in the long profile): their
// times are distinct by construction, so more points than readings would
// be duplicates. The healthy device's readings are recent, the flood's an
// hour old: a scan from since sees only the healthy ones.
func (e *env) floodCounts(want []Key, since time.Time) (flood, healthy, dup int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Minute)
	defer cancel()
	counts, err := e.query.CountByDevice(ctx, "phone_detection", time.Unix(0, 0), time.Now().Add(time.Hour))
	require.NoError(e.t, err)
	flood = int(counts["F-FLOOD"])
	wanted := map[Key]int{}
	for _, k := range want {
		wanted[k] = 0
	}
	err = e.query.ScanPoints(ctx, "phone_detection", since, time.Now().Add(time.Hour), func(device string, ns, seq int64) {
		if device != "F-HEALTHY" {
			return
		}
		k := Key{device, seq, model.ReadingIndex(ns, seq)}
		n, ok := wanted[k]
		switch {
		case !ok:
			// Published after the list was taken.
		case n > 0:
			dup++
		default:
			wanted[k] = 1
			healthy++
		}
	})
	require.NoError(e.t, err)
	return flood, healthy, dup
}
