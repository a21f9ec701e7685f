package deadletter

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
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

var t0 = time.Date(2026, 11, 26, 15, 10, 4, 120e6, time.UTC)

type running struct {
	s      *Store
	reg    *prometheus.Registry
	cancel context.CancelFunc
	ran    chan error
}

func open(t *testing.T, dir string, opts Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := Open(dir, opts, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	return &running{s: s, reg: reg}
}

func (r *running) start(t *testing.T) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.ran = cancel, make(chan error, 1)
	go func() { r.ran <- r.s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	require.NoError(t, <-r.ran)
	r.cancel = nil
}

// appendWait appends and waits for the callback.
func appendWait(t *testing.T, s *Store, rec Record) {
	t.Helper()
	done := make(chan error, 1)
	s.Append(rec, func(err error) { done <- err })
	require.NoError(t, <-done)
}

func readAll(t *testing.T, dir string, f Filter) []Record {
	t.Helper()
	var out []Record
	require.NoError(t, Read(dir, f, func(r Record) error {
		out = append(out, r)
		return nil
	}))
	return out
}

func rec(i int) Record {
	return Record{Received: t0.Add(time.Duration(i) * time.Second), Topic: "border/mdl/fence/F-AOL-01/detections",
		Reason: "bad_json", Detail: fmt.Sprintf("offset %d: unexpected end", i), Index: -1,
		Payload: []byte(fmt.Sprintf(`{"v":1,"seq":%d,"ts":`, i))}
}

func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// A payload with control characters (no JSON holds one) is kept as base64,
// 4/3 of its size, not as text whose every control character is a six-byte
// escape: a 256 KiB payload of them made a 1.5 MB record, past a small
// store's bound on its own. It reads back byte for byte.
func TestControlCharactersKeptAsBase64(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{}).start(t)
	payload := append([]byte(`{"a":`), make([]byte, 3000)...)
	want := Record{Received: time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC), Topic: "t", Reason: "malformed_json", Index: -1, Payload: payload}
	appendWait(t, r.s, want)
	got := readAll(t, dir, Filter{})
	require.Len(t, got, 1)
	assert.Equal(t, payload, got[0].Payload)
	segs, err := listSegments(dir)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, segs[0].name))
	require.NoError(t, err)
	assert.Contains(t, string(data), `"payload_b64":"eyJhIjo`)
	assert.Less(t, len(data), 4*len(payload)/3+200)
}

func TestAppendReadBack(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{}).start(t)
	binary := []byte{0xff, 0x00, 0xfe, '{'}
	want := []Record{
		rec(0),
		{Received: t0.Add(time.Minute), Topic: "border/mdl/checkpoint/CP-07/passes", Reason: "bad_reading",
			Detail: "pass 2: plate missing", Index: 2, Payload: []byte(`{"plate":"蒙B12345","url":"<a&b>"}` + "\n")},
		{Received: t0.Add(2 * time.Minute), Topic: "border/x/fence/X/detections", Reason: "not_utf8", Index: -1, Payload: binary},
		{Received: t0.Add(3 * time.Minute), Topic: "t", Reason: "empty", Index: -1, Payload: []byte{}},
	}
	for _, w := range want {
		appendWait(t, r.s, w)
	}
	got := readAll(t, dir, Filter{})
	require.Len(t, got, len(want))
	for i := range want {
		assert.True(t, want[i].Received.Equal(got[i].Received))
		got[i].Received = want[i].Received
		if len(want[i].Payload) == 0 {
			assert.Empty(t, got[i].Payload)
			got[i].Payload = want[i].Payload
		}
		assert.Equal(t, want[i], got[i])
	}
	// On disk: JSON lines, the payload readable when it is text.
	segs, err := listSegments(dir)
	require.NoError(t, err)
	require.Len(t, segs, 1)
	data, err := os.ReadFile(filepath.Join(dir, segs[0].name))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, 4)
	assert.Contains(t, lines[1], `"payload":"{\"plate\":\"蒙B12345\",\"url\":\"<a&b>\"}\n"`)
	assert.Contains(t, lines[2], `"payload_b64":"/wD+ew=="`)
	assert.NotContains(t, lines[2], `"payload":`)
	assert.Contains(t, lines[1], `"index":2`)
	assert.Equal(t, 4.0, testutil.ToFloat64(r.s.m.written))
	assert.Equal(t, float64(len(data)), testutil.ToFloat64(r.s.m.bytes))

	// Filters.
	assert.Len(t, readAll(t, dir, Filter{Reason: "bad_reading"}), 1)
	assert.Len(t, readAll(t, dir, Filter{Since: t0.Add(90 * time.Second)}), 2)
	assert.Len(t, readAll(t, dir, Filter{Limit: 3}), 3)
	stop := errors.New("enough")
	calls := 0
	assert.ErrorIs(t, Read(dir, Filter{}, func(Record) error { calls++; return stop }), stop)
	assert.Equal(t, 1, calls)

	// Closed: appends are refused, at once.
	require.NoError(t, r.s.Close())
	r.stop(t)
	errc := make(chan error, 1)
	r.s.Append(rec(9), func(err error) { errc <- err })
	assert.ErrorIs(t, <-errc, ErrClosed)

	// Reopened: the old segment is kept, a new one is started.
	r2 := open(t, dir, Options{}).start(t)
	appendWait(t, r2.s, rec(10))
	assert.Len(t, readAll(t, dir, Filter{}), 5)
	segs, err = listSegments(dir)
	require.NoError(t, err)
	assert.Len(t, segs, 2)
	assert.Equal(t, float64(segs[0].size+segs[1].size), testutil.ToFloat64(r2.s.m.bytes))
}

func TestRotationAndEviction(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	one := int64(len(encoded(rec(0))))
	// Segments of about 3 records, at most about 12 records in all.
	r := open(t, dir, Options{MaxBytes: 12 * one, SegmentBytes: 3 * one}).start(t)
	for i := range 40 {
		appendWait(t, r.s, rec(i))
	}
	segs, err := listSegments(dir)
	require.NoError(t, err)
	var total int64
	for _, sg := range segs {
		total += sg.size
		assert.LessOrEqual(t, sg.size, 3*one+2) // records differ by a digit or two
	}
	assert.LessOrEqual(t, total, 12*one+one)
	got := readAll(t, dir, Filter{})
	evicted := testutil.ToFloat64(r.s.m.evictedRecords)
	assert.Equal(t, 40, len(got)+int(evicted), "every record is either readable or counted as evicted")
	assert.Positive(t, evicted)
	assert.Positive(t, testutil.ToFloat64(r.s.m.evictedBytes))
	assert.Equal(t, float64(total), testutil.ToFloat64(r.s.m.bytes))
	// The newest survive, in order.
	for i, g := range got {
		assert.Equal(t, rec(40-len(got)+i).Payload, g.Payload)
	}
}

func encoded(r Record) []byte {
	var b bytes.Buffer
	appendRecord(&b, &r)
	return b.Bytes()
}

// A crash in the middle of a write leaves a torn last line: reading skips
// it, and a reopened store never appends after it.
func TestTornLastLine(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{}).start(t)
	for i := range 3 {
		appendWait(t, r.s, rec(i))
	}
	require.NoError(t, r.s.Close())
	r.stop(t)
	segs, err := listSegments(dir)
	require.NoError(t, err)
	path := filepath.Join(dir, segs[0].name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	torn := encoded(rec(3))
	_, err = f.Write(torn[:len(torn)/2])
	require.NoError(t, err)
	require.NoError(t, f.Close())

	assert.Len(t, readAll(t, dir, Filter{}), 3)

	r2 := open(t, dir, Options{}).start(t)
	appendWait(t, r2.s, rec(4))
	got := readAll(t, dir, Filter{})
	require.Len(t, got, 4)
	assert.Equal(t, rec(4).Payload, got[3].Payload)

	// A damaged complete line is skipped and reported.
	require.NoError(t, os.WriteFile(path, append([]byte("not json\n"), encoded(rec(0))...), 0o640))
	var n int
	err = Read(dir, Filter{}, func(Record) error { n++; return nil })
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Equal(t, 2, n)
}

// The callback runs only after the fsync of its group has returned.
func TestDoneAfterFsync(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{})
	var mu sync.Mutex
	var events []string
	log := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	syncing := make(chan struct{})
	release := make(chan struct{})
	r.s.syncFile = func(f *os.File) error {
		log("sync start")
		close(syncing)
		<-release
		err := f.Sync()
		log("sync end")
		return err
	}
	r.start(t)
	done := make(chan error, 1)
	r.s.Append(rec(0), func(err error) {
		log("done")
		done <- err
	})
	<-syncing
	select {
	case <-done:
		t.Fatal("done called before fsync returned")
	default:
	}
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, []string{"sync start", "sync end", "done"}, events)
}

// A failed write is cut off the segment and written again (to a fresh
// segment) after a pause: the record's message stays unacked meanwhile,
// and nothing is refused, so the broker's window does not fill with
// messages it will only redeliver after a reconnect.
func TestFsyncFailureIsRetried(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{})
	var failing atomic.Bool
	failing.Store(true)
	r.s.syncFile = func(f *os.File) error {
		if failing.Load() {
			return errors.New("EIO")
		}
		return f.Sync()
	}
	r.start(t)
	errc := make(chan error, 2)
	r.s.Append(rec(0), func(err error) { errc <- err })
	require.Eventually(t, func() bool { return testutil.ToFloat64(r.s.m.writeErrors) >= 2 }, 10*time.Second, time.Millisecond,
		"the first retry failed too")
	require.ErrorContains(t, r.s.Healthy(), "EIO")
	r.s.Append(rec(1), func(err error) { errc <- err })
	select {
	case err := <-errc:
		t.Fatalf("called back while the writes fail: %v", err)
	default:
	}
	failing.Store(false)
	require.NoError(t, <-errc)
	require.NoError(t, <-errc)
	require.NoError(t, r.s.Healthy())
	got := readAll(t, dir, Filter{})
	require.Len(t, got, 2)
	assert.Equal(t, rec(0).Payload, got[0].Payload, "in order")
	assert.Equal(t, rec(1).Payload, got[1].Payload)
	segs, err := listSegments(dir)
	require.NoError(t, err)
	assert.Len(t, segs, 1, "the failed segments, left empty, were removed")
}

// What cannot be written when the store closes is refused: Close does not
// hang on a failing disk, and the broker redelivers the messages.
func TestWriteFailureAtClose(t *testing.T) {
	noLeaks(t)
	r := open(t, t.TempDir(), Options{})
	var failing atomic.Bool
	r.s.syncFile = func(f *os.File) error {
		if failing.Load() {
			return errors.New("EIO")
		}
		return f.Sync()
	}
	r.start(t)
	failing.Store(true)
	errc := make(chan error, 1)
	r.s.Append(rec(0), func(err error) { errc <- err })
	require.Eventually(t, func() bool { return r.s.Healthy() != nil }, 10*time.Second, time.Millisecond, "the write failed")
	require.NoError(t, r.s.Close())
	require.ErrorContains(t, <-errc, "EIO")
}

func TestConcurrentAppends(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{SegmentBytes: 64 << 10}).start(t)
	const writers, each = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				rc := rec(i)
				rc.Topic = fmt.Sprintf("border/mdl/fence/F-%d/detections", w)
				var dw sync.WaitGroup
				dw.Add(1)
				r.s.Append(rc, func(err error) { errs <- err; dw.Done() })
				if i%50 == 0 {
					dw.Wait() // some writers wait for their record, like the MQTT ack does
				}
			}
		})
	}
	wg.Wait()
	for range writers * each {
		require.NoError(t, <-errs)
	}
	got := readAll(t, dir, Filter{})
	assert.Len(t, got, writers*each)
	perWriter := map[string]int{}
	for _, g := range got {
		perWriter[g.Topic]++
	}
	assert.Len(t, perWriter, writers)
	assert.Equal(t, float64(writers*each), testutil.ToFloat64(r.s.m.written))
	t.Logf("%d records in %d fsyncs", writers*each, fsyncCount(t, r.reg))
}

// While one group is being fsynced, the records that arrive form the next
// group: one more fsync for all of them.
func TestGroupCommit(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{})
	syncing := make(chan struct{}, 1)
	release := make(chan struct{})
	first := true
	r.s.syncFile = func(f *os.File) error {
		if first {
			first = false
			syncing <- struct{}{}
			<-release
		}
		return f.Sync()
	}
	r.start(t)
	var wg sync.WaitGroup
	wg.Add(101)
	r.s.Append(rec(0), func(err error) { assert.NoError(t, err); wg.Done() })
	<-syncing
	for i := 1; i <= 100; i++ {
		r.s.Append(rec(i), func(err error) { assert.NoError(t, err); wg.Done() })
	}
	close(release)
	wg.Wait()
	assert.Equal(t, uint64(2), fsyncCount(t, r.reg))
	assert.Len(t, readAll(t, dir, Filter{}), 101)
}

func fsyncCount(t *testing.T, reg *prometheus.Registry) uint64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "fenceline_deadletter_fsync_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no fsync histogram")
	return 0
}

func TestCloseWithoutRun(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir, Options{})
	errc := make(chan error, 1)
	r.s.Append(rec(0), func(err error) { errc <- err })
	require.NoError(t, r.s.Close())
	require.NoError(t, <-errc)
	assert.Len(t, readAll(t, dir, Filter{}), 1)
	require.NoError(t, r.s.Close())
	assert.Error(t, r.s.Run(context.Background()))
}

func TestLongRecordAndNames(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir, Options{}).start(t)
	big := rec(0)
	big.Payload = bytes.Repeat([]byte{0xfe, 'x'}, 200<<10) // 400 KiB, base64: about 530 KiB
	appendWait(t, r.s, big)
	got := readAll(t, dir, Filter{})
	require.Len(t, got, 1)
	assert.Equal(t, big.Payload, got[0].Payload)

	seq, ok := parseSegmentName(segmentName(42, t0))
	assert.True(t, ok)
	assert.Equal(t, uint64(42), seq)
	assert.Equal(t, "dl-0000000042-20261126T151004Z.jsonl", segmentName(42, t0))
	for _, bad := range []string{"x.jsonl", "dl-abc-1.jsonl", "dl-1.jsonl", "dl-1-x.json"} {
		_, ok := parseSegmentName(bad)
		assert.False(t, ok, bad)
	}
}

// A large group of records (a flood, all queued at once) is evicted after
// each segment it fills, not once after the group: the store never holds
// much more than MaxBytes.
func TestEvictionWithinAGroup(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	one := int64(len(encoded(rec(0))))
	r := open(t, dir, Options{MaxBytes: 12 * one, SegmentBytes: 3 * one})
	var peak int64
	r.s.syncFile = func(f *os.File) error {
		peak = max(peak, r.s.total) // the committer's goroutine: no race
		return f.Sync()
	}
	done := make(chan error, 60)
	for i := range 60 { // queued before the committer runs: one group
		r.s.Append(rec(i), func(err error) { done <- err })
	}
	r.start(t)
	for range 60 {
		require.NoError(t, <-done)
	}
	assert.LessOrEqual(t, peak, 12*one+2*3*one+6, "MaxBytes and a segment or so, not the whole group")
	assert.Positive(t, testutil.ToFloat64(r.s.m.evictedRecords))
}

// A message redelivered after its rejection was written is Kept: in the run
// that wrote it, and after a restart, from the newest records on disk. Only
// the same message with the same reason and index is; its receive time and
// detail do not matter.
func TestKeptRecognisesARedelivery(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	r := open(t, dir, Options{}).start(t)
	binary := Record{Received: t0, Topic: "border/x/fence/X/detections", Reason: "not_utf8", Index: -1, Payload: []byte{0xff, 0x00, '{'}}
	written := []Record{rec(1), rec(2), binary}
	again := func(r Record) Record {
		r.Received = r.Received.Add(time.Hour)
		r.Detail += " (again)"
		return r
	}
	other := func(change func(*Record)) Record {
		r := rec(1)
		change(&r)
		return r
	}
	notKept := []Record{
		rec(3),
		other(func(r *Record) { r.Topic += "x" }),
		other(func(r *Record) { r.Reason = "bad_ts" }),
		other(func(r *Record) { r.Index = 4 }),
		other(func(r *Record) { r.Payload = append(r.Payload, ' ') }),
	}
	check := func(s *Store, when string) {
		for _, w := range written {
			assert.True(t, s.Kept(again(w)), "%s: %s is kept", when, w.Payload)
		}
		for _, n := range notKept {
			assert.False(t, s.Kept(n), "%s: %+v is not kept", when, n)
		}
	}
	assert.False(t, r.s.Kept(rec(1)), "nothing is kept before it is written")
	for _, w := range written {
		appendWait(t, r.s, w)
	}
	check(r.s, "in the run that wrote them")
	r.stop(t)
	require.NoError(t, r.s.Close())

	r2 := open(t, dir, Options{})
	check(r2.s, "after a restart")
	require.NoError(t, r2.s.Close())
}

// At Open only the newest records are read back (recentReadBytes of them),
// beginning at a record boundary.
func TestKeptAfterRestartReadsTheNewestRecords(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir, Options{SegmentBytes: 1 << 20}).start(t)
	big := func(i int) Record {
		rc := rec(i)
		rc.Payload = append(bytes.Repeat([]byte{'x'}, 200<<10), rc.Payload...)
		return rc
	}
	n := recentReadBytes/(200<<10) + 20 // more than are read back
	for i := range n {
		appendWait(t, r.s, big(i))
	}
	r.stop(t)
	require.NoError(t, r.s.Close())

	r2 := open(t, dir, Options{SegmentBytes: 1 << 20})
	defer r2.s.Close()
	assert.False(t, r2.s.Kept(big(0)), "the oldest are not read back")
	for i := n - recentReadBytes/(210<<10); i < n; i++ {
		assert.True(t, r2.s.Kept(big(i)), "record %d of %d is read back", i, n)
	}
}
