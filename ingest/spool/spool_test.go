package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

const testTimeout = 20 * time.Second

// line returns the body of record i: a line-protocol line naming i, padded
// to n bytes so that records differ in size.
func line(i, n int) []byte {
	s := fmt.Sprintf("m,id=%06d v=%di", i, i)
	if pad := n - len(s) - len(",p=\"\"\n"); pad > 0 {
		s += ",p=\"" + strings.Repeat("x", pad) + "\""
	}
	return []byte(s + "\n")
}

// open opens a spool in dir with a fresh registry and runs it; the returned
// stop closes it.
type running struct {
	s      *Spool
	reg    *prometheus.Registry
	cancel context.CancelFunc
	ran    chan error
}

func start(t *testing.T, dir string, opts Options) *running {
	t.Helper()
	return startLogged(t, dir, opts, slog.New(slog.DiscardHandler))
}

func startLogged(t *testing.T, dir string, opts Options, log *slog.Logger) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := Open(dir, opts, log, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, reg: reg, cancel: cancel, ran: make(chan error, 1)}
	go func() { r.ran <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	require.NoError(t, <-r.ran)
}

// appendWait appends body and waits for its callback.
func appendWait(t *testing.T, s *Spool, body []byte) error {
	t.Helper()
	res := make(chan error, 1)
	s.Append(body, func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-time.After(testTimeout):
		t.Fatal("append not called back")
		return nil
	}
}

// replayer runs Replay with send and collects what it was given.
type replayer struct {
	mu     sync.Mutex
	bodies [][]byte
	cancel context.CancelFunc
	ran    chan error
}

func replay(t *testing.T, s *Spool, send func(ctx context.Context, body []byte) error) *replayer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replayer{cancel: cancel, ran: make(chan error, 1)}
	go func() {
		r.ran <- s.Replay(ctx, func(ctx context.Context, body []byte) error {
			if send != nil {
				if err := send(ctx, body); err != nil {
					return err
				}
			}
			r.mu.Lock()
			r.bodies = append(r.bodies, bytes.Clone(body))
			r.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *replayer) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	require.NoError(t, <-r.ran)
}

// lines returns the lines sent so far, in order.
func (r *replayer) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		out = append(out, strings.SplitAfter(string(b), "\n")...)
	}
	var nonEmpty []string
	for _, l := range out {
		if l != "" {
			nonEmpty = append(nonEmpty, l)
		}
	}
	return nonEmpty
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval of a condition
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	return m
}

func want(ids ...int) []string {
	out := make([]string, 0, len(ids))
	for _, i := range ids {
		out = append(out, fmt.Sprintf("m,id=%06d v=%di", i, i))
	}
	return out
}

func ids(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if i := strings.Index(l, ",p="); i >= 0 {
			l = l[:i]
		}
		out = append(out, strings.TrimSuffix(l, "\n"))
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// The ack is the promise: an Append is called back only after the fsync of
// the file holding it returned, and the record was written before that
// fsync. A spool that called back first, or never synced, fails here.
func TestAppendCalledBackOnlyAfterFsync(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var (
		mu     sync.Mutex
		events []string
	)
	event := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	entered := make(chan int64, 10)
	release := make(chan struct{})
	dir := t.TempDir()
	r := start(t, dir, Options{Sync: func(f *os.File) error {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		event(fmt.Sprintf("sync %d", st.Size()))
		entered <- st.Size()
		<-release
		event("synced")
		return f.Sync()
	}})
	done := make(chan error, 4)
	r.s.Append(line(1, 100), func(err error) { event("done 1"); done <- err })
	size := <-entered
	assert.Equal(t, int64(headerSize+100), size, "the record is written before the fsync starts")
	// While the first fsync is in progress, three more arrive: they are
	// group-committed with one more fsync.
	for i := 2; i <= 4; i++ {
		r.s.Append(line(i, 100), func(err error) { event(fmt.Sprintf("done %d", i)); done <- err })
	}
	select {
	case <-done:
		t.Fatal("called back before the fsync returned")
	case <-time.After(50 * time.Millisecond): // a callback that is wrongly early comes at once
	}
	release <- struct{}{}
	require.NoError(t, <-done)
	size = <-entered
	assert.Equal(t, int64(4*(headerSize+100)), size, "three records, one write, one fsync")
	select {
	case <-done:
		t.Fatal("called back before the fsync returned")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	for range 3 {
		require.NoError(t, <-done)
	}
	r.stop(t)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{
		fmt.Sprintf("sync %d", headerSize+100), "synced", "done 1",
		fmt.Sprintf("sync %d", 4*(headerSize+100)), "synced", "done 2", "done 3", "done 4",
	}, events)
}

// A failed fsync is given to the callbacks (not nil), and the next append
// goes to a fresh segment.
func TestFsyncFailure(t *testing.T) {
	fail := true
	var mu sync.Mutex
	now := time.Now()
	r := start(t, t.TempDir(), Options{Sync: func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("EIO")
		}
		return f.Sync()
	}, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	err := appendWait(t, r.s, line(1, 50))
	require.ErrorContains(t, err, "EIO")
	assert.ErrorContains(t, r.s.Usable(), "EIO", "a failing disk is not usable for a while")
	assert.ErrorContains(t, r.s.Ready(), "EIO")
	mu.Lock()
	now = now.Add(errRetryAfter)
	mu.Unlock()
	assert.NoError(t, r.s.Usable(), "worth another try")
	assert.ErrorContains(t, r.s.Ready(), "EIO", "but not ready: no write has succeeded since (readiness must not flap)")
	mu.Lock()
	fail = false
	mu.Unlock()
	require.NoError(t, appendWait(t, r.s, line(2, 50)))
	assert.NoError(t, r.s.Usable())
	assert.NoError(t, r.s.Ready())
	rp := replay(t, r.s, nil)
	waitFor(t, "replayed", func() bool { return len(rp.lines()) == 1 })
	assert.Equal(t, want(2), ids(rp.lines()), "only the record whose fsync succeeded")
}

// Replay sends every record once, in append order, across segments and
// whatever the grouping, and deletes segments as it goes.
func TestReplayInOrderExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		records     int
		size        func(i int) int
		segment     int64
		replayBytes int
	}{
		{name: "one segment, one send", records: 20, size: func(int) int { return 60 }, segment: 1 << 20, replayBytes: 1 << 20},
		{name: "many segments", records: 300, size: func(i int) int { return 40 + i%200 }, segment: 4096, replayBytes: 1000},
		{name: "records larger than a segment", records: 10, size: func(i int) int { return 5000 + i }, segment: 4096, replayBytes: 100},
		{name: "one record a send", records: 50, size: func(int) int { return 100 }, segment: 8192, replayBytes: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			dir := t.TempDir()
			r := start(t, dir, Options{MaxBytes: 1 << 30, SegmentBytes: tc.segment, ReplayBytes: tc.replayBytes})
			for i := range tc.records {
				require.NoError(t, appendWait(t, r.s, line(i, tc.size(i))))
			}
			assert.Equal(t, tc.records, r.s.Stats().Records)
			rp := replay(t, r.s, nil)
			waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
			assert.Equal(t, want(seq(0, tc.records)...), ids(rp.lines()))
			waitFor(t, "segments deleted", func() bool { return len(segFiles(t, dir)) == 0 })
			assert.Zero(t, r.s.Stats().Bytes)
			assert.Equal(t, float64(tc.records), counter(t, r.reg, "fenceline_spool_appended_records_total"))
			assert.Equal(t, float64(tc.records), counter(t, r.reg, "fenceline_spool_replayed_records_total"))
			assert.Zero(t, counter(t, r.reg, "fenceline_spool_bytes"))
			rp.stop(t)
			r.stop(t)
		})
	}
}

// A failed send is repeated with the same records until it succeeds: never
// skipped, never reordered.
func TestReplayRetriesTheSameRecords(t *testing.T) {
	r := start(t, t.TempDir(), Options{ReplayBytes: 150, MaxReplayBackoff: time.Millisecond})
	for i := range 6 {
		require.NoError(t, appendWait(t, r.s, line(i, 100)))
	}
	var mu sync.Mutex
	var tried []string
	fails := 3
	rp := replay(t, r.s, func(_ context.Context, body []byte) error {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, ids(strings.SplitAfter(strings.TrimSuffix(string(body), "\n"), "\n"))[0])
		if fails > 0 && strings.Contains(string(body), "id=000002") {
			fails--
			return errors.New("influxdb: connection refused")
		}
		return nil
	})
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Equal(t, want(seq(0, 6)...), ids(rp.lines()))
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, want(0, 1, 2, 2, 2, 2, 3, 4, 5), tried)
}

// Live appends while replaying: everything arrives once, in order, and the
// spool ends empty.
func TestReplayWhileAppending(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	r := start(t, dir, Options{SegmentBytes: 4096, ReplayBytes: 700})
	rp := replay(t, r.s, nil)
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	// One appender at a time keeps the append order known; the replayer
	// runs alongside.
	for i := range n {
		wg.Add(1)
		r.s.Append(line(i, 30+i%90), func(err error) { errs <- err; wg.Done() })
		if i%50 == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	waitFor(t, "drained", func() bool { return len(rp.lines()) == n && r.s.Stats().Records == 0 })
	assert.Equal(t, want(seq(0, n)...), ids(rp.lines()))
	waitFor(t, "segments deleted", func() bool { return len(segFiles(t, dir)) == 0 })
	rp.stop(t)
	r.stop(t)
}

// A crash mid-write leaves a torn record: Open cuts it off and replays the
// intact records before it.
func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string, size int64) error
		intact int // records that survive (of 5)
	}{
		{name: "cut in the last header", intact: 4, damage: func(p string, size int64) error {
			return os.Truncate(p, size-int64(headerSize+80)+5)
		}},
		{name: "cut in the last body", intact: 4, damage: func(p string, size int64) error {
			return os.Truncate(p, size-10)
		}},
		{name: "last body in zeros from its middle", intact: 4, damage: func(p string, size int64) error {
			// The size was written, the data not: a crash's doing. A whole
			// last record whose CRC fails is damage (TestDamagedRecords).
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 40), size-40)
			return err
		}},
		{name: "garbage after the last record", intact: 5, damage: func(p string, size int64) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3})
			return err
		}},
		{name: "zeros after the last record", intact: 5, damage: func(p string, size int64) error {
			return os.Truncate(p, size+4096) // a file extended but never written
		}},
		{name: "last length runs past the end", intact: 4, damage: func(p string, size int64) error {
			return flip(p, size-int64(headerSize+80)+2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			seg, size := oneSegment(t, dir, 5, 80)
			require.NoError(t, tc.damage(seg, size))

			r := start(t, dir, Options{})
			assert.Equal(t, tc.intact, r.s.Stats().Records)
			st, err := os.Stat(seg)
			require.NoError(t, err)
			assert.Equal(t, int64(tc.intact*(headerSize+80)), st.Size(), "the torn tail is cut off")
			assert.Zero(t, counter(t, r.reg, "fenceline_spool_damaged_bytes_total"), "a torn tail is no damage")
			assert.Zero(t, counter(t, r.reg, "fenceline_spool_damaged_segments"))
			// New records go to a new segment, after the intact ones.
			require.NoError(t, appendWait(t, r.s, line(9, 80)))
			rp := replay(t, r.s, nil)
			waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
			assert.Equal(t, want(append(seq(0, tc.intact), 9)...), ids(rp.lines()))
		})
	}
}

// oneSegment spools n records of lines of size bytes in dir and stops the
// spool; it returns the one segment they fill and its size.
func oneSegment(t *testing.T, dir string, n, size int) (string, int64) {
	t.Helper()
	r := start(t, dir, Options{})
	for i := range n {
		require.NoError(t, appendWait(t, r.s, line(i, size)))
	}
	r.stop(t)
	files := segFiles(t, dir)
	require.Len(t, files, 1)
	st, err := os.Stat(files[0])
	require.NoError(t, err)
	return files[0], st.Size()
}

func flip(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0x55
	_, err = f.WriteAt(b, off)
	return err
}

// The replay position survives a restart: what InfluxDB acknowledged is not
// sent again, what it did not is.
func TestCursorAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir, Options{SegmentBytes: 4096, ReplayBytes: 1})
	for i := range 100 {
		require.NoError(t, appendWait(t, r.s, line(i, 100)))
	}
	require.Greater(t, len(segFiles(t, dir)), 2)
	// InfluxDB takes 60 records, then goes away.
	var mu sync.Mutex
	sent := 0
	rp := replay(t, r.s, func(context.Context, []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if sent == 60 {
			return errors.New("down")
		}
		sent++
		return nil
	})
	waitFor(t, "60 replayed", func() bool { return len(rp.lines()) == 60 })
	rp.stop(t)
	r.stop(t)

	r = start(t, dir, Options{SegmentBytes: 4096})
	assert.Equal(t, 40, r.s.Stats().Records)
	rp = replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Equal(t, want(seq(60, 100)...), ids(rp.lines()))
}

// A replayer that empties the spool and stops while the committer is
// creating the next segment saves a cursor at that segment, not past it:
// the records written to it are acked, and a cursor past it had the next
// start delete them unread.
func TestCursorSavedWhileASegmentOpens(t *testing.T) {
	dir := t.TempDir()
	var armed, held atomic.Bool
	var rp *replayer
	first := make(chan struct{})
	var r *running
	r = start(t, dir, Options{SegmentBytes: 4096, ReplayBytes: 1, SyncDir: func(dir string) error {
		if armed.Load() && held.CompareAndSwap(false, true) {
			// The segment's number is taken; it is not among the spool's
			// segments yet. The replayer sends the first record, deletes
			// its segment and stops.
			close(first)
			deadline := time.Now().Add(testTimeout)
			for !r.s.drained() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling interval of a condition
			}
			rp.cancel()
			<-rp.ran
			rp.cancel = nil
		}
		return syncDir(dir)
	}})
	require.NoError(t, appendWait(t, r.s, line(0, 5000))) // fills its segment
	rp = replay(t, r.s, func(context.Context, []byte) error {
		<-first
		return nil
	})
	armed.Store(true)
	require.NoError(t, appendWait(t, r.s, line(1, 100)), "acked: written to the new segment")
	require.True(t, held.Load())
	assert.Equal(t, want(0), ids(rp.lines()))
	r.stop(t)

	r = start(t, dir, Options{SegmentBytes: 4096})
	assert.Equal(t, 1, r.s.Stats().Records)
	rp2 := replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Equal(t, want(1), ids(rp2.lines()))
}

// drained reports whether every segment is replayed and deleted.
func (s *Spool) drained() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs) == 0
}

// A damaged cursor, or one naming a segment that is gone, costs a replay of
// more records, never a lost one.
func TestCursorDamaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cursor func(dir string) error
		want   []int
	}{
		{name: "garbage", want: seq(0, 10), cursor: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, cursorName), []byte("not a cursor at all"), 0o600)
		}},
		{name: "bad crc", want: seq(0, 10), cursor: func(dir string) error {
			return flip(filepath.Join(dir, cursorName), 3)
		}},
		{name: "not at a record", want: seq(0, 10), cursor: func(dir string) error {
			return saveCursor(dir, position{seq: 1, off: 7}, (*os.File).Sync)
		}},
		{name: "past the end", want: seq(0, 10), cursor: func(dir string) error {
			return saveCursor(dir, position{seq: 1, off: 1 << 40}, (*os.File).Sync)
		}},
		{name: "at the third record", want: seq(2, 10), cursor: func(dir string) error {
			return saveCursor(dir, position{seq: 1, off: 2 * (headerSize + 100)}, (*os.File).Sync)
		}},
		{name: "an older, deleted segment", want: seq(0, 10), cursor: func(dir string) error {
			return saveCursor(dir, position{seq: 0, off: 40}, (*os.File).Sync)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := start(t, dir, Options{})
			for i := range 10 {
				require.NoError(t, appendWait(t, r.s, line(i, 100)))
			}
			r.stop(t)
			require.NoError(t, saveCursor(dir, position{seq: 1, off: 0}, (*os.File).Sync))
			require.NoError(t, tc.cursor(dir))
			r = start(t, dir, Options{})
			rp := replay(t, r.s, nil)
			waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
			assert.Equal(t, want(tc.want...), ids(rp.lines()))
		})
	}
}

// Segments numbered before the cursor are taken as replayed; new segments
// must therefore never be numbered at or below it, even when the folder was
// emptied.
func TestSegmentNumbersNeverGoBack(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir, Options{})
	require.NoError(t, appendWait(t, r.s, line(1, 50)))
	rp := replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return len(segFiles(t, dir)) == 0 })
	rp.stop(t) // saves the cursor past segment 1
	r.stop(t)
	for round := range 3 {
		r = start(t, dir, Options{})
		require.NoError(t, appendWait(t, r.s, line(10+round, 50)))
		r.stop(t)
	}
	r = start(t, dir, Options{})
	assert.Equal(t, 3, r.s.Stats().Records, "nothing taken for replayed")
	rp = replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Equal(t, want(10, 11, 12), ids(rp.lines()))
}

// At the bound the spool refuses (ErrFull, full gauge 1) and never drops;
// once replay frees a segment it takes records again.
func TestFull(t *testing.T) {
	dir := t.TempDir()
	const max = 64 << 10 // segments of 4 KiB
	r := start(t, dir, Options{MaxBytes: max})
	n := 0
	for ; ; n++ {
		err := appendWait(t, r.s, line(n, 1000))
		if err != nil {
			require.ErrorIs(t, err, ErrFull)
			break
		}
		require.Less(t, n, 1000, "never full")
	}
	assert.Equal(t, max/(headerSize+1000), n, "filled up to the bound")
	assert.LessOrEqual(t, r.s.Stats().Bytes, int64(max))
	assert.ErrorIs(t, r.s.Usable(), ErrFull)
	assert.True(t, r.s.Stats().Full)
	assert.Equal(t, 1.0, counter(t, r.reg, "fenceline_spool_full"))
	assert.Equal(t, 1.0, counter(t, r.reg, "fenceline_spool_refused_records_total"))

	rp := replay(t, r.s, nil)
	waitFor(t, "room again", func() bool { return r.s.Usable() == nil })
	assert.Zero(t, counter(t, r.reg, "fenceline_spool_full"))
	require.NoError(t, appendWait(t, r.s, line(n, 1000)))
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Equal(t, want(seq(0, n+1)...), ids(rp.lines()), "nothing dropped")
}

func TestOldestAge(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 26, 23, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	tick := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	dir := t.TempDir()
	r := start(t, dir, Options{Now: clock, ReplayBytes: 1})
	assert.Zero(t, counter(t, r.reg, "fenceline_spool_oldest_age_seconds"))
	require.NoError(t, appendWait(t, r.s, line(1, 50)))
	tick(30 * time.Second)
	require.NoError(t, appendWait(t, r.s, line(2, 50)))
	tick(30 * time.Second)
	assert.Equal(t, 60.0, counter(t, r.reg, "fenceline_spool_oldest_age_seconds"))
	assert.Equal(t, 2.0, counter(t, r.reg, "fenceline_spool_records"))
	r.stop(t)

	// After a restart the age comes from the records themselves.
	r = start(t, dir, Options{Now: clock, ReplayBytes: 1})
	assert.Equal(t, 60.0, counter(t, r.reg, "fenceline_spool_oldest_age_seconds"))
	first := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rp := replay(t, r.s, func(_ context.Context, body []byte) error {
		if strings.Contains(string(body), "id=000002") {
			once.Do(func() { close(first) })
			<-release
		}
		return nil
	})
	<-first // the first record is replayed, the second is being sent
	assert.Equal(t, 30.0, counter(t, r.reg, "fenceline_spool_oldest_age_seconds"))
	close(release)
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Zero(t, counter(t, r.reg, "fenceline_spool_oldest_age_seconds"))
	assert.Len(t, rp.lines(), 2)
}

func TestClosedAndEmpty(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	done := make(chan error, 1)
	s.Append(nil, func(err error) { done <- err })
	require.NoError(t, <-done, "nothing to keep")
	// Without Run, Close writes what is queued.
	s.Append(line(1, 50), func(err error) { done <- err })
	require.NoError(t, s.Close())
	require.NoError(t, <-done)
	s.Append(line(2, 50), func(err error) { done <- err })
	require.ErrorIs(t, <-done, ErrClosed)
	assert.ErrorIs(t, s.Usable(), ErrClosed)
	require.Error(t, s.Run(context.Background()))

	s, err = Open(dir, Options{}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	assert.Equal(t, 1, s.Stats().Records)
	require.NoError(t, s.Close())
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// Open scans segments through a 1 MiB window: records across its edges and
// larger than it are read whole.
func TestReopenAcrossTheScanWindow(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{100, 2 << 20, 300, 1<<20 - 10, 1<<20 + 5, 50, 700 << 10, 700 << 10}
	r := start(t, dir, Options{SegmentBytes: 64 << 20, MaxBytes: 1 << 30})
	for i, n := range sizes {
		require.NoError(t, appendWait(t, r.s, line(i, n)))
	}
	r.stop(t)
	r = start(t, dir, Options{})
	require.Equal(t, len(sizes), r.s.Stats().Records)
	rp := replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 })
	assert.Equal(t, want(seq(0, len(sizes))...), ids(rp.lines()))
	rp.mu.Lock()
	defer rp.mu.Unlock()
	total := 0
	for _, b := range rp.bodies {
		total += len(b)
	}
	sum := 0
	for _, n := range sizes {
		sum += n
	}
	assert.Equal(t, sum, total, "every byte of every record")
}

// A cursor save that fails (a full disk: the write or its fsync) leaves no
// cursor.tmp behind, and the cursor saved before stays as it was.
func TestCursorSaveFailureLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, saveCursor(dir, position{seq: 1, off: 7}, (*os.File).Sync))
	full := errors.New("no space left on device")
	err := saveCursor(dir, position{seq: 2, off: 9}, func(*os.File) error { return full })
	require.ErrorIs(t, err, full)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the cursor itself")
	require.Equal(t, cursorName, entries[0].Name())
	p, ok := loadCursor(dir)
	require.True(t, ok)
	require.Equal(t, position{seq: 1, off: 7}, p)
}
