package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/testenv"
)

func TestAppendThenDeliver(t *testing.T) {
	s := newFakeSink("mqtt")
	o := openT(t, t.TempDir(), []Sink{s}, fastOpts())
	defer o.Close()
	stop := run(t, o)

	as := alerts("a", 3)
	require.NoError(t, appendWait(t, o, as...))
	got := s.next(t, 3)
	assert.Equal(t, ids(as), ids(got), "delivered in order")
	assert.Equal(t, as[0].Summary, got[0].Summary)
	assert.True(t, as[0].RaisedAt.Equal(got[0].RaisedAt))
	stop()

	assert.Equal(t, 0, o.Pending("mqtt"))
	assert.Equal(t, 3.0, testutil.ToFloat64(o.m.delivered.WithLabelValues("mqtt")))
	assert.Equal(t, 3.0, testutil.ToFloat64(o.m.accepted))
	assert.Equal(t, 0.0, testutil.ToFloat64(o.m.pending.WithLabelValues("mqtt")))
	assert.Equal(t, 1, testutil.CollectAndCount(o.m.latency, "fenceline_alerts_delivery_latency_seconds"))
	assert.Equal(t, 0, o.Pending("no-such-sink"))
}

func TestFailingSinkIsRetriedAndOthersAreUnaffected(t *testing.T) {
	release := make(chan struct{})
	bad := newFakeSink("webhook-0")
	bad.fail = func(*model.Alert, int) error {
		select {
		case <-release:
			return nil
		default:
			return errTransient
		}
	}
	good := newFakeSink("mqtt")
	o := openT(t, t.TempDir(), []Sink{good, bad}, fastOpts())
	defer o.Close()
	stop := run(t, o)

	as := alerts("a", 5)
	require.NoError(t, appendWait(t, o, as...))
	assert.Equal(t, ids(as), ids(good.next(t, 5)), "the healthy sink gets everything while the other fails")
	for range 3 {
		select {
		case err := <-bad.failed:
			require.ErrorIs(t, err, errTransient)
		case <-time.After(waitFor):
			t.Fatal("failing sink was not retried")
		}
	}
	assert.Equal(t, 5, o.Pending("webhook-0"), "nothing lost while failing")
	assert.Equal(t, 0, o.Pending("mqtt"))

	close(release)
	assert.Equal(t, ids(as), ids(bad.next(t, 5)), "retried until it works, still in order")
	stop()
	assert.Equal(t, 0, o.Pending("webhook-0"))
	assert.GreaterOrEqual(t, testutil.ToFloat64(o.m.failures.WithLabelValues("webhook-0")), 3.0)
	assert.Equal(t, 0.0, testutil.ToFloat64(o.m.failures.WithLabelValues("mqtt")))
	assert.Equal(t, 0.0, testutil.ToFloat64(o.m.dropped.WithLabelValues("webhook-0")))
	assert.Equal(t, 5.0, testutil.ToFloat64(o.m.delivered.WithLabelValues("webhook-0")))
}

func TestPermanentFailureDropsForThatSinkOnly(t *testing.T) {
	dir := t.TempDir()
	bad := newFakeSink("webhook-0")
	bad.fail = func(a *model.Alert, _ int) error {
		if a.ID == "a-000" {
			return fmt.Errorf("HTTP 400: %w", ErrPermanent)
		}
		return nil
	}
	good := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{good, bad}, fastOpts())
	stop := run(t, o)
	as := alerts("a", 3)
	require.NoError(t, appendWait(t, o, as...))
	assert.Equal(t, []string{"a-001/firing", "a-002/firing"}, ids(bad.next(t, 2)))
	assert.Equal(t, ids(as), ids(good.next(t, 3)))
	stop()
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.dropped.WithLabelValues("webhook-0")))
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.failures.WithLabelValues("webhook-0")))
	require.NoError(t, o.Close())

	// The drop is durable: the alert is not retried after a restart.
	o = openT(t, dir, []Sink{good, newFakeSink("webhook-0")}, fastOpts())
	defer o.Close()
	assert.Equal(t, 0, o.Pending("webhook-0"))
	assert.Equal(t, 0, o.Pending("mqtt"))
}

func TestCrashBeforeRunDeliversAfterReopen(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
	as := alerts("a", 4)
	require.NoError(t, appendWait(t, o, as[:2]...))
	require.NoError(t, appendWait(t, o, as[2:]...))
	assert.Equal(t, 4, o.Pending("mqtt"))
	require.NoError(t, o.Close()) // the process "dies" without ever delivering

	s := newFakeSink("mqtt")
	o = openT(t, dir, []Sink{s}, fastOpts())
	defer o.Close()
	assert.Equal(t, 4, o.Pending("mqtt"))
	stop := run(t, o)
	assert.Equal(t, ids(as), ids(s.next(t, 4)))
	stop()
	assert.Equal(t, 0, o.Pending("mqtt"))
}

// A crash after a sink took an alert but before the delivery record reached
// the disk delivers the alert again: at-least-once per sink, and consumers
// deduplicate by id+state. The crash is simulated by restoring the log as it
// was when the alert was accepted (it is never fsynced again before
// delivery).
func TestCrashBetweenDeliveryAndAckDeliversAgain(t *testing.T) {
	dir := t.TempDir()
	s := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{s}, fastOpts())
	a := testAlert("a-1", model.StateFiring)
	require.NoError(t, appendWait(t, o, a))
	accepted, err := os.ReadFile(filepath.Join(dir, logName))
	require.NoError(t, err)

	stop := run(t, o)
	s.next(t, 1)
	stop()
	require.NoError(t, o.Close())

	// Without the crash the delivery record holds: nothing is repeated.
	o = openT(t, dir, []Sink{s}, fastOpts())
	assert.Equal(t, 0, o.Pending("mqtt"))
	require.NoError(t, o.Close())

	// With it, the alert is delivered a second time.
	crashed := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(crashed, logName), accepted, 0o640))
	o = openT(t, crashed, []Sink{s}, fastOpts())
	defer o.Close()
	assert.Equal(t, 1, o.Pending("mqtt"))
	stop = run(t, o)
	again := s.next(t, 1)
	stop()
	assert.Equal(t, a.ID, again[0].ID)
	assert.Equal(t, a.State, again[0].State)
}

// slowSink answers each delivery when the test says so, or gives up when
// its context ends.
type slowSink struct {
	started chan struct{}
	release chan struct{}
}

func (s *slowSink) Name() string { return "mqtt" }

func (s *slowSink) Deliver(ctx context.Context, _ *model.Alert) error {
	s.started <- struct{}{}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// At a stop (shutdown), a delivery under way may finish within a grace,
// and is recorded: cut short, the alert went out again at the next start.
// One that does not finish within it is cut short: shutdown does not wait
// on a sink that hangs, and the alert is delivered at the next start.
func TestDeliveryUnderWayAtStop(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  bool // the sink answers once delivery has stopped
		pendingN int  // after a restart
	}{
		{"the answer on its way", true, 0},
		{"a sink that hangs", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := &slowSink{started: make(chan struct{}, 1), release: make(chan struct{})}
			o := openT(t, dir, []Sink{s}, fastOpts())
			require.NoError(t, appendWait(t, o, testAlert("a-1", model.StateFiring)))
			ctx, cancel := context.WithCancel(context.Background())
			returned := make(chan error, 1)
			go func() { returned <- o.Run(ctx) }()
			<-s.started
			cancel()
			if tc.answers {
				close(s.release)
			}
			select {
			case err := <-returned:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("Run did not return after the grace")
			}
			require.NoError(t, o.Close())
			o = openT(t, dir, []Sink{s}, fastOpts())
			defer o.Close()
			assert.Equal(t, tc.pendingN, o.Pending("mqtt"))
		})
	}
}

func TestDuplicatesAreSkipped(t *testing.T) {
	a := testAlert("inc-1", model.StateFiring)
	aResolved := testAlert("inc-1", model.StateResolved)
	b := testAlert("inc-2", model.StateFiring)
	tests := []struct {
		name     string
		appends  [][]model.Alert
		want     []string
		wantDups float64
	}{
		{"same alert twice in one append", [][]model.Alert{{a, a}}, []string{"inc-1/firing"}, 1},
		{"same alert in two appends", [][]model.Alert{{a}, {a, b}}, []string{"inc-1/firing", "inc-2/firing"}, 1},
		{"firing and resolved of one incident are both delivered", [][]model.Alert{{a}, {aResolved}}, []string{"inc-1/firing", "inc-1/resolved"}, 0},
		{"resolved re-raised", [][]model.Alert{{a, aResolved}, {aResolved, a}}, []string{"inc-1/firing", "inc-1/resolved"}, 2},
		{"repeat_interval re-sends are delivered, each once", [][]model.Alert{{a, repeat(a, 1)}, {repeat(a, 1), repeat(a, 2)}}, []string{"inc-1/firing", "inc-1/firing", "inc-1/firing"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeSink("mqtt")
			o := openT(t, t.TempDir(), []Sink{s}, fastOpts())
			defer o.Close()
			stop := run(t, o)
			for _, as := range tt.appends {
				require.NoError(t, appendWait(t, o, as...), "done is called for duplicates too")
			}
			assert.Equal(t, tt.want, ids(s.next(t, len(tt.want))))
			stop()
			s.none(t)
			assert.Equal(t, tt.wantDups, testutil.ToFloat64(o.m.duplicates))
		})
	}
}

func repeat(a model.Alert, n int) model.Alert {
	a.Repeat = n
	return a
}

func TestDedupeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{s}, fastOpts())
	stop := run(t, o)
	a := testAlert("inc-1", model.StateFiring)
	require.NoError(t, appendWait(t, o, a))
	s.next(t, 1)
	stop()
	require.NoError(t, o.Close())

	o = openT(t, dir, []Sink{s}, fastOpts())
	defer o.Close()
	// Open compacted: the delivered alert survives only as a dedupe key.
	for _, r := range readRecords(t, dir) {
		assert.NotEqual(t, recAlert, r.T, "a delivered alert is not kept after compaction")
	}
	stop = run(t, o)
	require.NoError(t, appendWait(t, o, a)) // e.g. the broker redelivered the message that raised it
	require.NoError(t, appendWait(t, o, repeat(a, 1)))
	require.NoError(t, appendWait(t, o, testAlert("inc-1", model.StateResolved)))
	assert.Equal(t, []string{"inc-1/firing", "inc-1/resolved"}, ids(s.next(t, 2)))
	stop()
	s.none(t)
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates))

	// The re-send's key is kept across a restart too.
	require.NoError(t, o.Close())
	o = openT(t, dir, []Sink{s}, fastOpts())
	defer o.Close()
	stop = run(t, o)
	require.NoError(t, appendWait(t, o, repeat(a, 1)))
	stop()
	s.none(t)
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates))
}

func TestDedupeWindowIsBounded(t *testing.T) {
	dir := t.TempDir()
	opts := fastOpts()
	opts.DedupeWindow = 3
	s := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{s}, opts)
	defer o.Close()
	stop := run(t, o)
	as := alerts("a", 5)
	require.NoError(t, appendWait(t, o, as...))
	s.next(t, 5)

	require.NoError(t, appendWait(t, o, as[4])) // still remembered
	require.NoError(t, appendWait(t, o, as[0])) // forgotten: accepted again
	assert.Equal(t, []string{"a-000/firing"}, ids(s.next(t, 1)))
	stop()
	s.none(t)
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates))
}

func TestPendingAlertIsADuplicateEvenOutsideTheWindow(t *testing.T) {
	opts := fastOpts()
	opts.DedupeWindow = 2
	o := openT(t, t.TempDir(), []Sink{newFakeSink("mqtt")}, opts)
	defer o.Close()
	as := alerts("a", 4) // no Run: all stay pending
	require.NoError(t, appendWait(t, o, as...))
	require.NoError(t, appendWait(t, o, as[0]))
	assert.Equal(t, 4, o.Pending("mqtt"))
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates))
}

// A compaction renames a new log over the old one; until the folder's
// fsync makes that durable a crash may bring back the old log, without
// what was appended to the new one. When that fsync fails, the alerts
// appended next are not called back until it succeeds.
func TestAppendsAfterAnUnsyncedCompactionWaitForTheFolder(t *testing.T) {
	dir := t.TempDir()
	var dirFailing atomic.Bool
	var dirFailures atomic.Int32
	opts := fastOpts()
	opts.retryMin, opts.retryMax = time.Millisecond, 5*time.Millisecond
	opts.CompactMinBytes = 1 // rewrite whenever the log has doubled
	opts.sync = func(f *os.File) error {
		if f.Name() == dir && dirFailing.Load() {
			dirFailures.Add(1)
			return errors.New("input/output error")
		}
		return f.Sync()
	}
	o := openT(t, dir, []Sink{newFakeSink("mqtt")}, opts)
	defer o.Close()
	dirFailing.Store(true)
	base := testutil.ToFloat64(o.m.compactions)                  // one at Open
	require.NoError(t, appendWait(t, o, alerts("before", 5)...)) // the log doubles: a compaction follows
	for deadline := time.Now().Add(waitFor); testutil.ToFloat64(o.m.compactions) == base; {
		require.True(t, time.Now().Before(deadline), "no compaction")
		time.Sleep(time.Millisecond) // polling interval of a condition
	}
	require.Positive(t, dirFailures.Load())

	done := make(chan error, 1)
	o.Append(alerts("after", 1), func(err error) { done <- err })
	for seen := dirFailures.Load(); dirFailures.Load() < seen+3; {
		select {
		case err := <-done:
			t.Fatalf("called back (%v) while the log's name is not durable", err)
		case <-time.After(time.Millisecond): // polling interval of a condition
		}
	}
	dirFailing.Store(false)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("not called back once the folder could be synced")
	}
}

func TestCompactionKeepsPendingAndDedupeKeys(t *testing.T) {
	dir := t.TempDir()
	opts := fastOpts()
	opts.CompactMinBytes = 1 // rewrite whenever the log has doubled
	blocked := newFakeSink("webhook-0")
	blocked.fail = func(*model.Alert, int) error { return errTransient }
	ok := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{ok, blocked}, opts)
	stop := run(t, o)
	var as []model.Alert
	for i := range 10 {
		batch := alerts(fmt.Sprintf("b%d", i), 5)
		as = append(as, batch...)
		require.NoError(t, appendWait(t, o, batch...))
	}
	assert.Equal(t, ids(as), ids(ok.next(t, len(as))))
	stop()
	require.NoError(t, o.Close())
	assert.Greater(t, testutil.ToFloat64(o.m.compactions), 2.0, "the log was rewritten while alerts were pending")

	unblocked := newFakeSink("webhook-0")
	o = openT(t, dir, []Sink{ok, unblocked}, opts)
	assert.Equal(t, len(as), o.Pending("webhook-0"), "every alert still owed to the failing sink survived compaction")
	assert.Equal(t, 0, o.Pending("mqtt"))
	stop = run(t, o)
	assert.Equal(t, ids(as), ids(unblocked.next(t, len(as))), "in the original order")
	stop()
	ok.none(t)
	require.NoError(t, o.Close())

	// All delivered: the rewritten log holds only the header and the keys.
	o = openT(t, dir, []Sink{ok, unblocked}, opts)
	defer o.Close()
	recs := readRecords(t, dir)
	require.NotEmpty(t, recs)
	assert.Equal(t, recHeader, recs[0].T)
	keys := 0
	for _, r := range recs[1:] {
		require.Equal(t, recKeys, r.T)
		keys += len(r.Keys)
	}
	assert.Equal(t, len(as), keys)
	require.NoError(t, appendWait(t, o, as[7]))
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates), "dedupe keys survive compaction")
	assert.Equal(t, 0, o.Pending("mqtt"))
}

// Every alert the outbox takes has an ordinal of its own (its InfluxDB point
// time is drawn from it), and keeps it across restarts and compactions: an
// alert delivered again after a restart is the same point. Alerts taken
// after a restart get new ordinals, even once everything was delivered.
func TestOrdinalsAreDistinctAndKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	opts := fastOpts()
	opts.CompactMinBytes = 1
	blocked := newFakeSink("influx")
	blocked.fail = func(*model.Alert, int) error { return errTransient }
	ok := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{ok, blocked}, opts)
	stop := run(t, o)
	for i := range 4 {
		require.NoError(t, appendWait(t, o, alerts(fmt.Sprintf("b%d", i), 5)...))
	}
	first := map[string]uint64{}
	seen := map[uint64]bool{}
	for _, a := range ok.next(t, 20) {
		require.NotZero(t, a.Ordinal, "%s", a.ID)
		require.False(t, seen[a.Ordinal], "%s: ordinal %d given twice", a.ID, a.Ordinal)
		seen[a.Ordinal] = true
		first[a.ID] = a.Ordinal
	}
	stop()
	require.NoError(t, o.Close())

	unblocked := newFakeSink("influx")
	o = openT(t, dir, []Sink{ok, unblocked}, opts)
	stop = run(t, o)
	for _, a := range unblocked.next(t, 20) {
		assert.Equal(t, first[a.ID], a.Ordinal, "%s delivered again after a restart", a.ID)
	}
	stop()
	require.NoError(t, o.Close())

	// Nothing pending: the numbering still goes on where it stopped.
	o = openT(t, dir, []Sink{ok}, opts)
	defer o.Close()
	stop = run(t, o)
	require.NoError(t, appendWait(t, o, testAlert("later", model.StateFiring)))
	later := ok.next(t, 1)[0]
	for id, ord := range first {
		require.Greater(t, later.Ordinal, ord, "after %s", id)
	}
	stop()
}

// An alert keeps the engine's ordinal (a re-send shares its firing's)
// across restarts and compactions, pending or delivered; one without takes
// its seq. The largest ordinal taken survives a compaction that drops every
// record, and tells a firing taken a dedupe window's worth of alerts ago
// from one never taken.
func TestEngineOrdinalsAreKept(t *testing.T) {
	dir := t.TempDir()
	opts := fastOpts()
	opts.CompactMinBytes = 1
	opts.DedupeWindow = 3
	withOrdinal := func(a model.Alert, ord uint64, repeat int) model.Alert {
		a.Ordinal, a.Repeat = ord, repeat
		return a
	}
	pending := testAlert("pending", model.StateFiring)
	ok := newFakeSink("mqtt")
	held := newFakeSink("influx")
	held.fail = func(a *model.Alert, _ int) error {
		if a.ID == pending.ID {
			return errTransient
		}
		return nil
	}
	o := openT(t, dir, []Sink{ok, held}, opts)
	stop := run(t, o)
	require.NoError(t, appendWait(t, o, withOrdinal(pending, 7000, 0), withOrdinal(pending, 7000, 1),
		withOrdinal(testAlert("no-ordinal", model.StateFiring), 0, 0)))
	got := ok.next(t, 3)
	assert.Equal(t, []uint64{7000, 7000}, []uint64{got[0].Ordinal, got[1].Ordinal})
	assert.NotZero(t, got[2].Ordinal, "its seq")
	assert.Equal(t, uint64(7000), o.MaxOrdinal())
	stop()
	require.NoError(t, o.Close())

	o = openT(t, dir, []Sink{ok, held}, opts)
	assert.Equal(t, uint64(7000), o.MaxOrdinal())
	held.fail = nil // before Run: its lanes call fail
	stop = run(t, o)
	for _, a := range held.next(t, 3) {
		if a.ID == pending.ID {
			assert.Equal(t, uint64(7000), a.Ordinal, "%s re-delivered after a restart", a.ID)
		}
	}
	stop()
	require.NoError(t, o.Close())

	// Everything delivered: the compaction keeps only keys, and the header
	// the largest ordinal.
	o = openT(t, dir, []Sink{ok}, opts)
	defer o.Close()
	assert.Equal(t, uint64(7000), o.MaxOrdinal())
	old := withOrdinal(testAlert("long-ago", model.StateFiring), 6000, 0)
	recent := withOrdinal(testAlert("recent", model.StateFiring), 6999, 0)
	assert.True(t, o.Knows(&old), "a window's worth of alerts older than the newest: taken long ago")
	assert.False(t, o.Knows(&recent), "never taken")
	assert.True(t, o.Knows(&pending))
}

func TestLogStaysBounded(t *testing.T) {
	dir := t.TempDir()
	opts := fastOpts()
	opts.CompactMinBytes = 32 << 10
	opts.DedupeWindow = 100
	s := newFakeSink("mqtt")
	o := openT(t, dir, []Sink{s}, opts)
	defer o.Close()
	stop := run(t, o)
	const n = 1000 // about 0.5 MB of records
	for i := range n / 10 {
		require.NoError(t, appendWait(t, o, alerts(fmt.Sprintf("b%d", i), 10)...))
	}
	s.next(t, n)
	stop()
	assert.Greater(t, testutil.ToFloat64(o.m.compactions), 3.0)
	fi, err := os.Stat(filepath.Join(dir, logName))
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(2*opts.CompactMinBytes+64<<10))
}

func TestTornTailIsIgnored(t *testing.T) {
	tests := []struct {
		name string
		tail func(t *testing.T, log []byte) []byte
	}{
		{"partial line without LF", func(*testing.T, []byte) []byte {
			return []byte(`0badc0de {"t":"alert","seq":9,"sinks":["mqt`)
		}},
		{"half of a real record", func(t *testing.T, log []byte) []byte {
			// The last record is an alert; repeat its first half.
			lines := splitLines(log)
			last := lines[len(lines)-1]
			return last[:len(last)/2]
		}},
		{"complete line with a bad checksum", func(*testing.T, []byte) []byte {
			return []byte("00000000 {\"t\":\"done\",\"seq\":1,\"sink\":\"mqtt\"}\n")
		}},
		{"zeros left by the file system", func(*testing.T, []byte) []byte {
			return make([]byte, 512)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
			as := alerts("a", 3)
			require.NoError(t, appendWait(t, o, as[:2]...))
			require.NoError(t, o.Close())

			path := filepath.Join(dir, logName)
			log, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, append(log, tt.tail(t, log)...), 0o640))

			o = openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
			assert.Equal(t, 2, o.Pending("mqtt"))
			assert.Equal(t, 0.0, testutil.ToFloat64(o.m.corrupt), "a torn tail is not corruption")
			// Open rewrote the log, so a new record does not land after the
			// torn one.
			require.NoError(t, appendWait(t, o, as[2]))
			require.NoError(t, o.Close())
			readRecords(t, dir)

			s := newFakeSink("mqtt")
			o = openT(t, dir, []Sink{s}, fastOpts())
			defer o.Close()
			stop := run(t, o)
			assert.Equal(t, ids(as), ids(s.next(t, 3)))
			stop()
		})
	}
}

func TestDamagedRecordInTheMiddleIsSkipped(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
	require.NoError(t, appendWait(t, o, testAlert("a-1", model.StateFiring)))
	require.NoError(t, appendWait(t, o, testAlert("a-2", model.StateFiring)))
	require.NoError(t, o.Close())

	path := filepath.Join(dir, logName)
	log, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := splitLines(log)
	require.Len(t, lines, 3) // header, a-1, a-2
	i := len(lines[0]) + 20  // inside a-1's JSON
	log[i] ^= 0x20
	require.NoError(t, os.WriteFile(path, log, 0o640))

	s := newFakeSink("mqtt")
	o = openT(t, dir, []Sink{s}, fastOpts())
	defer o.Close()
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.corrupt))
	assert.Equal(t, 1, o.Pending("mqtt"))
	stop := run(t, o)
	assert.Equal(t, []string{"a-2/firing"}, ids(s.next(t, 1)))
	stop()
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

func TestDoneIsCalledOnlyAfterFsync(t *testing.T) {
	dir := t.TempDir()
	var synced atomic.Int32
	opts := fastOpts()
	opts.sync = func(f *os.File) error {
		err := f.Sync()
		synced.Add(1)
		return err
	}
	o := openT(t, dir, []Sink{newFakeSink("mqtt")}, opts)
	defer o.Close()
	base := synced.Load()

	type seen struct {
		syncs  int32
		onDisk bool
		err    error
	}
	got := make(chan seen, 1)
	o.Append([]model.Alert{testAlert("a-1", model.StateFiring)}, func(err error) {
		var onDisk bool
		for _, r := range readRecords(t, dir) {
			onDisk = onDisk || r.T == recAlert && r.Seq > 0
		}
		got <- seen{synced.Load() - base, onDisk, err}
	})
	select {
	case s := <-got:
		require.NoError(t, s.err)
		assert.Equal(t, int32(1), s.syncs, "done after exactly one fsync")
		assert.True(t, s.onDisk)
	case <-time.After(waitFor):
		t.Fatal("done not called")
	}
}

func TestGroupCommitSharesOneFsync(t *testing.T) {
	var (
		armed   atomic.Bool
		syncs   atomic.Int32
		entered = make(chan struct{}, 100)
		gate    = make(chan struct{})
	)
	opts := fastOpts()
	opts.sync = func(f *os.File) error {
		if armed.Load() {
			entered <- struct{}{}
			<-gate
		}
		syncs.Add(1)
		return f.Sync()
	}
	o := openT(t, t.TempDir(), []Sink{newFakeSink("mqtt")}, opts)
	defer o.Close()
	armed.Store(true)
	base := syncs.Load()

	first := make(chan error, 1)
	o.Append([]model.Alert{testAlert("first", model.StateFiring)}, func(err error) { first <- err })
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("no fsync started")
	}
	select {
	case <-first:
		t.Fatal("done called while its fsync is still running")
	default:
	}

	const n = 20
	rest := make(chan error, n)
	for i := range n {
		o.Append([]model.Alert{testAlert(fmt.Sprintf("next-%d", i), model.StateFiring)}, func(err error) { rest <- err })
	}
	close(gate)
	deadline := time.After(waitFor)
	for range n + 1 {
		select {
		case err := <-first:
			require.NoError(t, err)
		case err := <-rest:
			require.NoError(t, err)
		case <-deadline:
			t.Fatal("done not called for every append")
		}
	}
	assert.Equal(t, int32(2), syncs.Load()-base, "the appends queued during an fsync share the next one")
	assert.Equal(t, n+1, o.Pending("mqtt"))
}

// A group that cannot be written is kept and written again until it goes
// through — the engine has already counted its alerts, and refusing them
// would lose them for good — and the outbox says it is unhealthy meanwhile.
func TestFailedWritesAreRetriedUntilDurable(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	opts := failingSyncOpts(&failing, "no space left on device")
	o := openT(t, dir, []Sink{newFakeSink("mqtt")}, opts)
	failing.Store(true)
	a, b := testAlert("a", model.StateFiring), testAlert("b", model.StateFiring)
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	o.Append([]model.Alert{a}, func(err error) { doneA <- err })
	require.Eventually(t, func() bool { return testutil.ToFloat64(o.m.writeErrors) >= 2 }, waitFor, time.Millisecond, "the write failed and was retried")
	require.ErrorContains(t, o.Healthy(), "no space left on device")
	o.Append([]model.Alert{b}, func(err error) { doneB <- err }) // joins the retried group
	select {
	case err := <-doneA:
		t.Fatalf("done called while the write fails: %v", err)
	default:
	}

	failing.Store(false)
	require.NoError(t, <-doneA)
	require.NoError(t, <-doneB)
	require.NoError(t, o.Healthy())
	assert.Equal(t, 2, o.Pending("mqtt"))
	require.NoError(t, appendWait(t, o, a), "a duplicate now")
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates))
	require.NoError(t, o.Close())

	s := newFakeSink("mqtt")
	o = openT(t, dir, []Sink{s}, fastOpts())
	defer o.Close()
	stop := run(t, o)
	assert.Equal(t, []string{"a/firing", "b/firing"}, ids(s.next(t, 2)))
	stop()
	s.none(t)
}

// A log that cannot be rewritten at Open (a full disk) does not keep
// fenceline from starting: alerts are not durable until the rewrite
// succeeds, which the committer retries by itself, and what was pending is
// delivered then.
func TestOpenOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, []Sink{newFakeSink("mqtt")}, fastOpts())
	require.NoError(t, appendWait(t, o, testAlert("before", model.StateFiring)))
	require.NoError(t, o.Close())

	var failing atomic.Bool
	failing.Store(true)
	opts := failingSyncOpts(&failing, "no space left on device")
	s := newFakeSink("mqtt")
	o = openT(t, dir, []Sink{s}, opts)
	require.ErrorContains(t, o.Healthy(), "no space left on device")
	done := make(chan error, 1)
	o.Append([]model.Alert{testAlert("during", model.StateFiring)}, func(err error) { done <- err })

	failing.Store(false) // space again
	require.NoError(t, <-done)
	require.Eventually(t, func() bool { return o.Healthy() == nil }, waitFor, time.Millisecond)
	stop := run(t, o)
	assert.Equal(t, []string{"before/firing", "during/firing"}, ids(s.next(t, 2)))
	stop()
	require.NoError(t, o.Close())
}

// A log that cannot be rewritten at Open recovers without any append.
func TestOpenOnAFullDiskRecoversIdle(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	opts := failingSyncOpts(&failing, "no space left on device")
	o := openT(t, t.TempDir(), []Sink{newFakeSink("mqtt")}, opts)
	require.Error(t, o.Healthy())
	failing.Store(false)
	require.Eventually(t, func() bool { return o.Healthy() == nil }, waitFor, time.Millisecond)
	require.NoError(t, o.Close())
}

// What still cannot be written at Close is refused (its messages are not
// acked, and the broker redelivers them), and Close does not hang.
func TestCloseRefusesWhatCannotBeWritten(t *testing.T) {
	var failing atomic.Bool
	opts := failingSyncOpts(&failing, "input/output error")
	o := openT(t, t.TempDir(), []Sink{newFakeSink("mqtt")}, opts)
	failing.Store(true)
	done := make(chan error, 1)
	o.Append([]model.Alert{testAlert("a", model.StateFiring)}, func(err error) { done <- err })
	require.Eventually(t, func() bool { return o.Healthy() != nil }, waitFor, time.Millisecond, "the write failed")
	o.Close()
	require.ErrorContains(t, <-done, "input/output error")
}

func TestSinksChangingBetweenRuns(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, []Sink{newFakeSink("mqtt"), newFakeSink("webhook-0")}, fastOpts())
	old := testAlert("old", model.StateFiring)
	require.NoError(t, appendWait(t, o, old))
	require.NoError(t, o.Close())

	mq, wh1 := newFakeSink("mqtt"), newFakeSink("webhook-1")
	o = openT(t, dir, []Sink{mq, wh1}, fastOpts())
	defer o.Close()
	assert.Equal(t, 1, o.Pending("mqtt"))
	assert.Equal(t, 0, o.Pending("webhook-1"), "a new sink does not get old alerts")
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.removedSinks), "webhook-0's delivery was dropped")
	stop := run(t, o)
	require.NoError(t, appendWait(t, o, testAlert("new", model.StateFiring)))
	assert.Equal(t, []string{"old/firing", "new/firing"}, ids(mq.next(t, 2)))
	assert.Equal(t, []string{"new/firing"}, ids(wh1.next(t, 1)))
	stop()
	wh1.none(t)
}

func TestNoSinksKeepsOnlyDedupeKeys(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, nil, fastOpts())
	a := testAlert("a", model.StateFiring)
	require.NoError(t, appendWait(t, o, a))
	require.NoError(t, appendWait(t, o, a))
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.duplicates))
	stop := run(t, o)
	stop()
	require.NoError(t, o.Close())
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, nil, Options{})
	defer o.Close()
	tests := []struct {
		name  string
		dir   string
		sinks []Sink
		want  string
	}{
		{"folder in use", dir, nil, "locked"},
		{"duplicate sink names", t.TempDir(), []Sink{newFakeSink("mqtt"), newFakeSink("mqtt")}, "not unique"},
		{"empty sink name", t.TempDir(), []Sink{newFakeSink("")}, "not unique"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.dir, tt.sinks, Options{}, testLogger(t), nil)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestFutureLogVersionIsRefused(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	require.NoError(t, appendRecord(&buf, &record{T: recHeader, V: formatVersion + 1, Next: 1}))
	require.NoError(t, os.WriteFile(filepath.Join(dir, logName), buf.Bytes(), 0o640))
	_, err := Open(dir, nil, Options{}, testLogger(t), nil)
	require.ErrorContains(t, err, "version")
}

func TestAppendAfterClose(t *testing.T) {
	o := openT(t, t.TempDir(), nil, Options{})
	require.NoError(t, o.Close())
	require.NoError(t, o.Close(), "Close twice is harmless")
	require.ErrorIs(t, appendWait(t, o, testAlert("a", model.StateFiring)), ErrClosed)
}

func TestRunTwice(t *testing.T) {
	o := openT(t, t.TempDir(), nil, Options{})
	defer o.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, o.Run(ctx))
	require.Error(t, o.Run(context.Background()))
}

type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return "429 too many requests" }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

func TestRetryAfterIsHonouredWithinTheCap(t *testing.T) {
	s := newFakeSink("webhook-0")
	var first, second time.Time
	s.fail = func(_ *model.Alert, attempt int) error {
		if attempt == 1 {
			first = time.Now()
			return retryAfterErr{50 * time.Millisecond}
		}
		second = time.Now()
		return nil
	}
	opts := Options{MinBackoff: time.Millisecond, MaxBackoff: time.Second}
	o := openT(t, t.TempDir(), []Sink{s}, opts)
	defer o.Close()
	stop := run(t, o)
	require.NoError(t, appendWait(t, o, testAlert("a", model.StateFiring)))
	s.next(t, 1)
	assert.GreaterOrEqual(t, second.Sub(first), 50*time.Millisecond)
	stop()
}

// A BatchSink takes the queue's head in batches of up to maxBatch, in
// order; an alert it fails is retried with the ones behind it, a permanent
// failure drops that alert alone, and each alert is delivered once.
func TestBatchSink(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(a *model.Alert, attempt int) error
		want    []string // ids delivered, in order
		retried int      // failed attempts
		dropped float64
	}{
		{"all at once", nil, nil, 0, 0},
		{"one failing once", func(a *model.Alert, attempt int) error {
			if a.ID == "a-070" && attempt == 1 {
				return errors.New("broker gone")
			}
			return nil
		}, nil, 1, 0},
		{"one refused for good", func(a *model.Alert, _ int) error {
			if a.ID == "a-003" {
				return fmt.Errorf("bad topic: %w", ErrPermanent)
			}
			return nil
		}, []string{"a-003/firing"}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := newBatchSink("mqtt")
			sink.fail = tc.fail
			o := openT(t, t.TempDir(), []Sink{sink}, fastOpts())
			as := alerts("a", 150)
			require.NoError(t, appendWait(t, o, as...)) // queued before Run: whole batches
			stop := run(t, o)
			var want []string
			for _, id := range ids(as) {
				if !slices.Contains(tc.want, id) {
					want = append(want, id)
				}
			}
			assert.Equal(t, want, ids(sink.next(t, len(want))), "in order, each once")
			stop()
			sink.none(t)
			var sizes []int
			for len(sink.sizes) > 0 {
				sizes = append(sizes, <-sink.sizes)
			}
			require.NotEmpty(t, sizes, "delivered through DeliverBatch")
			assert.Equal(t, maxBatch, slices.Max(sizes), "batches of up to %d: %v", maxBatch, sizes)
			assert.Equal(t, float64(tc.retried), testutil.ToFloat64(o.m.failures.WithLabelValues("mqtt")))
			assert.Equal(t, tc.dropped, testutil.ToFloat64(o.m.dropped.WithLabelValues("mqtt")))
			assert.Equal(t, 0, o.Pending("mqtt"))
			require.NoError(t, o.Close())
		})
	}
}

// The log names an alert by the id its receivers know it by (ShownID: with
// privacy on, a keyed id), so that an operator finds a dropped or retried
// alert where the receivers and InfluxDB hold it.
func TestLogNamesAlertsByTheirShownID(t *testing.T) {
	var logs testenv.LogBuffer
	bad := newFakeSink("webhook-0")
	bad.fail = func(a *model.Alert, attempt int) error {
		switch {
		case a.ID == "a-000":
			return fmt.Errorf("HTTP 400: %w", ErrPermanent)
		case attempt == 1:
			return errors.New("HTTP 503")
		}
		return nil
	}
	opts := fastOpts()
	opts.ShownID = func(a *model.Alert) string { return "keyed-" + a.ID }
	o, err := Open(t.TempDir(), []Sink{bad}, opts, logs.Logger(), prometheus.NewRegistry())
	require.NoError(t, err)
	stop := run(t, o)
	require.NoError(t, appendWait(t, o, alerts("a", 2)...))
	bad.next(t, 1)
	stop()
	require.NoError(t, o.Close())
	out := logs.String()
	assert.Contains(t, out, "ALERT DROPPED")
	assert.Contains(t, out, "id=keyed-a-000", "the dropped alert")
	assert.Contains(t, out, "id=keyed-a-001", "the retried alert")
	assert.NotContains(t, out, "id=a-00")
}

// At Options.MaxPending alerts waiting for delivery, WaitRoom waits (the
// pipeline calls it before each message: intake stops, the broker holds
// the backlog) until the sinks have taken the queue down to nine tenths;
// fenceline_outbox_full says so meanwhile. Close ends a wait.
func TestWaitRoomAtMaxPending(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	s := newFakeSink("mqtt")
	s.fail = func(*model.Alert, int) error {
		if down.Load() {
			return errors.New("broker down")
		}
		return nil
	}
	opts := fastOpts()
	opts.MaxPending = 10
	o := openT(t, t.TempDir(), []Sink{s}, opts)
	defer o.Close()
	run(t, o)

	require.NoError(t, appendWait(t, o, alerts("a", 9)...))
	require.NoError(t, o.WaitRoom(context.Background()), "below the bound: at once")
	require.NoError(t, appendWait(t, o, alerts("b", 1)...))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, o.WaitRoom(ctx), context.DeadlineExceeded, "at the bound: waits")
	assert.Equal(t, 1.0, testutil.ToFloat64(o.m.full))

	waited := make(chan error, 1)
	go func() { waited <- o.WaitRoom(context.Background()) }()
	down.Store(false)
	s.next(t, 1)
	select {
	case err := <-waited:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("WaitRoom did not return once the sink took alerts")
	}
	assert.Zero(t, testutil.ToFloat64(o.m.full))

	// Full again, then closed: the wait ends.
	s.next(t, 9) // the rest of the first ten
	down.Store(true)
	require.NoError(t, appendWait(t, o, alerts("c", 10)...))
	go func() { waited <- o.WaitRoom(context.Background()) }()
	require.Eventually(t, func() bool { return testutil.ToFloat64(o.m.full) == 1 }, waitFor, time.Millisecond)
	require.NoError(t, o.Close())
	select {
	case err := <-waited:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("WaitRoom did not return at Close")
	}
}

// Alerts appended but not yet durable count against the bound too: a
// message of thousands of readings, or several before their alerts are
// written, took the queue many times past it.
func TestWaitRoomCountsAlertsBeingWritten(t *testing.T) {
	release := make(chan struct{})
	var hold atomic.Bool
	opts := fastOpts()
	opts.MaxPending = 10
	opts.sync = func(f *os.File) error {
		if hold.Load() {
			<-release
		}
		return f.Sync()
	}
	o := openT(t, t.TempDir(), []Sink{newFakeSink("mqtt")}, opts)
	defer o.Close()
	hold.Store(true)
	done := make(chan error, 1)
	o.Append(alerts("a", 10), func(err error) { done <- err })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := o.WaitRoom(ctx)
	close(release)
	require.ErrorIs(t, err, context.DeadlineExceeded, "ten alerts on their way to the log")
	require.NoError(t, <-done)
}

// A wait for room that begins within a minute of the last "full" line is
// told once the minute is up if it lasts (a sink's outage right after a
// flood), not never; "room again" follows only a told wait.
func TestOutboxFullToldOnceItsMinuteIsUp(t *testing.T) {
	var down atomic.Bool
	s := newFakeSink("mqtt")
	s.fail = func(*model.Alert, int) error {
		if down.Load() {
			return errors.New("sink down")
		}
		return nil
	}
	var logged testenv.LogBuffer
	opts := fastOpts()
	opts.MaxPending = 10
	opts.fullLogEvery = 200 * time.Millisecond
	o, err := Open(t.TempDir(), []Sink{s}, opts, logged.Logger(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer o.Close()
	run(t, o)

	// A first wait, told, and its end.
	down.Store(true)
	require.NoError(t, appendWait(t, o, alerts("a", 10)...))
	waited := make(chan error, 1)
	go func() { waited <- o.WaitRoom(context.Background()) }()
	require.Eventually(t, func() bool { return strings.Count(logged.String(), "alert outbox full") == 1 }, waitFor, time.Millisecond)
	down.Store(false)
	require.NoError(t, <-waited)
	s.next(t, 10)
	require.Eventually(t, func() bool { return strings.Contains(logged.String(), "has room again") }, waitFor, time.Millisecond)

	// Full again at once, and lasting: told when its minute is up.
	down.Store(true)
	require.NoError(t, appendWait(t, o, alerts("b", 10)...))
	go func() { waited <- o.WaitRoom(context.Background()) }()
	require.Eventually(t, func() bool { return strings.Count(logged.String(), "alert outbox full") == 2 }, waitFor, time.Millisecond,
		"the second wait is told: %s", logged.String())
	down.Store(false)
	require.NoError(t, <-waited)
}
