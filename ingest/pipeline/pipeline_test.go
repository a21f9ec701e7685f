package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/budget"
	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/ingest/influxwriter"
	"github.com/fenceline/fenceline/ingest/mqttsource"
	"github.com/fenceline/fenceline/internal/model"
)

// held records done callbacks so a test decides when each part is durable.
type held struct {
	mu    sync.Mutex
	dones []func(error)
	items []any
}

func (h *held) hold(item any, done func(error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, item)
	h.dones = append(h.dones, done)
}

func (h *held) release(i int, err error) {
	h.mu.Lock()
	done := h.dones[i]
	h.mu.Unlock()
	done(err)
}

func (h *held) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.dones)
}

type fakeWriter struct{ held }

// Write holds the point times of b's detections (the batch is reused).
func (w *fakeWriter) Write(_ context.Context, b *model.Batch, done func(error)) error {
	var times []int64
	for _, d := range b.Detections {
		times = append(times, d.PointNS)
	}
	w.hold(times, done)
	return nil
}

// fakeDead holds records; one whose done was called without an error is
// Kept.
type fakeDead struct {
	held
	durable sync.Map // deadKey → true
}

type deadKey struct {
	topic, reason, payload string
	index                  int
}

func keyOf(r DeadLetter) deadKey { return deadKey{r.Topic, r.Reason, string(r.Payload), r.Index} }

func (d *fakeDead) Append(r DeadLetter, done func(error)) {
	d.hold(r, func(err error) {
		if err == nil {
			d.durable.Store(keyOf(r), true)
		}
		done(err)
	})
}

func (d *fakeDead) Kept(r DeadLetter) bool {
	_, ok := d.durable.Load(keyOf(r))
	return ok
}

type fakeOutbox struct{ held }

func (o *fakeOutbox) Append(a []model.Alert, done func(error)) { o.hold(a, done) }

type fakeEngine struct {
	evaluated int
	listening []bool // at each tick
}

func (e *fakeEngine) Evaluate(b *model.Batch, _ time.Time) []model.Alert {
	e.evaluated++
	return []model.Alert{{ID: "x", Rule: "r", State: model.StateFiring}}
}
func (e *fakeEngine) Tick(time.Time) []model.Alert   { return nil }
func (e *fakeEngine) Listening(up bool, _ time.Time) { e.listening = append(e.listening, up) }

type fixture struct {
	p      *Pipeline
	w      *fakeWriter
	dead   *fakeDead
	outbox *fakeOutbox
	engine *fakeEngine
	reg    *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{w: &fakeWriter{}, dead: &fakeDead{}, outbox: &fakeOutbox{}, engine: &fakeEngine{}, reg: prometheus.NewRegistry()}
	registry := model.NewRegistry([]model.Device{{ID: "F-1", Kind: model.KindFence, Site: "mdl", Pos: model.Point{Lat: 41.96, Lon: 110.48}, HasPos: true}})
	f.p = New(Options{}, registry, f.engine, f.w, f.dead, f.outbox, slog.New(slog.NewTextHandler(io.Discard, nil)), f.reg)
	return f
}

// message returns a message whose ack is observable.
func message(topic, payload string) (*mqttsource.Message, *bool) {
	acked := new(bool)
	return mqttsource.NewMessage(topic, []byte(payload), time.Now(), func() { *acked = true }), acked
}

func detections(seq int, dets string) string {
	return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[%s]}`, seq, time.Now().Add(-time.Minute).UnixMilli(), dets)
}

const topic = "border/mdl/fence/F-1/detections"

func TestAckWaitsForEveryPart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []string // the order in which the parts become durable
	}{
		{"writer last", []string{"dead", "outbox", "writer"}},
		{"dead letters last", []string{"writer", "outbox", "dead"}},
		{"outbox last", []string{"dead", "writer", "outbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			m, acked := message(topic, detections(1, `{"imsi":"460001234567890"},{"imsi":"12"}`))
			f.p.Handle(context.Background(), m)
			require.Equal(t, 1, f.w.len(), "the good reading went to the writer")
			require.Equal(t, 1, f.dead.len(), "the bad one to the dead letters")
			require.Equal(t, 1, f.outbox.len(), "the alert to the outbox")
			parts := map[string]*held{"writer": &f.w.held, "dead": &f.dead.held, "outbox": &f.outbox.held}
			for i, name := range tc.order {
				require.False(t, *acked, "acked before %s was durable", name)
				parts[name].release(0, nil)
				if i == len(tc.order)-1 {
					require.True(t, *acked, "acked once everything is durable")
				}
			}
		})
	}
}

// fakeState counts an incident change for every evaluation that the test
// marks as one, and holds acks until the test "saves". Passed alerts go to
// the outbox at once; each hand-over records whether the engine's lock was
// held (a state save must find an evaluation's alerts with it).
type fakeState struct {
	held
	changes *uint64
	outbox  Outbox
	passed  int
	engine  *sync.Mutex // the pipeline's engineMu
	locked  []bool      // per Hold or Pass: engine was locked
}

func (s *fakeState) IncidentChanges() uint64 { return *s.changes }
func (s *fakeState) Hold(alerts []model.Alert, done func(error)) {
	s.noteLock()
	s.hold(nil, func(error) { s.outbox.Append(alerts, done) })
}
func (s *fakeState) Pass(alerts []model.Alert, done func(error)) {
	s.noteLock()
	s.passed++
	s.outbox.Append(alerts, done)
}

func (s *fakeState) noteLock() {
	if s.engine == nil {
		return
	}
	free := s.engine.TryLock()
	if free {
		s.engine.Unlock()
	}
	s.locked = append(s.locked, !free)
}

// changingEngine opens (or resolves) an incident on the messages it is
// told to.
type changingEngine struct {
	fakeEngine
	changes uint64
	change  bool
}

func (e *changingEngine) Evaluate(b *model.Batch, now time.Time) []model.Alert {
	if e.change {
		e.changes++
	}
	return e.fakeEngine.Evaluate(b, now)
}

// The alerts of a message that opened or resolved an incident reach the
// outbox (and the message its ack) only once the engine's state holding the
// change is saved; other messages' alerts are not held.
func TestAlertsWaitForStateSaveAfterIncidentChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change bool
	}{
		{"incident opened or resolved", true},
		{"no incident change", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			eng := &changingEngine{change: tc.change}
			state := &fakeState{changes: &eng.changes, outbox: f.outbox}
			f.p = New(Options{State: state}, f.p.registry, eng, f.w, f.dead, f.outbox, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			m, acked := message(topic, detections(1, `{"imsi":"460001234567890"}`))
			f.p.Handle(context.Background(), m)
			f.w.release(0, nil)
			if !tc.change {
				require.Zero(t, state.len(), "nothing held")
				require.Equal(t, 1, state.passed, "passed through the state keeper, behind any held alerts")
				f.outbox.release(0, nil)
				require.True(t, *acked)
				return
			}
			require.Equal(t, 1, state.len())
			require.Zero(t, f.outbox.len(), "an alert out before the state holding its incident was saved")
			state.release(0, nil)
			require.Equal(t, 1, f.outbox.len())
			require.False(t, *acked, "acked before its alerts were durable")
			f.outbox.release(0, nil)
			require.True(t, *acked)
		})
	}
}

// An evaluation's alerts are handed on (held or passed) before the engine's
// lock is released: a state save copies the engine under that lock, and a
// copy holding an evaluation without its alerts would lose them in a crash
// right after the save (the redelivered message is not evaluated again).
func TestAlertsHandedOnUnderTheEngineLock(t *testing.T) {
	for _, change := range []bool{true, false} {
		f := newFixture(t)
		eng := &changingEngine{change: change}
		state := &fakeState{changes: &eng.changes, outbox: f.outbox}
		f.p = New(Options{State: state}, f.p.registry, eng, f.w, f.dead, f.outbox, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		state.engine = &f.p.engineMu
		m, _ := message(topic, detections(1, `{"imsi":"460001234567890"}`))
		f.p.Handle(context.Background(), m)
		require.Equal(t, []bool{true}, state.locked, "incident changed: %v", change)
	}
}

// blockingWriter waits in Write until released: InfluxDB slower than the
// traffic, the writer at influx.max_pending_lines.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(_ context.Context, _ *model.Batch, done func(error)) error {
	w.entered <- struct{}{}
	<-w.release
	done(nil)
	return nil
}

// The engine's state can be copied (for the save an incident's alerts wait
// for) while the pipeline waits on a write: the alerts of a message do not
// wait for InfluxDB.
func TestEngineAvailableWhileWriteWaits(t *testing.T) {
	f := newFixture(t)
	eng := &changingEngine{change: true}
	state := &fakeState{changes: &eng.changes, outbox: f.outbox}
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	f.p = New(Options{State: state}, f.p.registry, eng, w, f.dead, f.outbox, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	m, acked := message(topic, detections(1, `{"imsi":"460001234567890"}`))
	handled := make(chan struct{})
	go func() { f.p.Handle(context.Background(), m); close(handled) }()
	<-w.entered // evaluated, its alerts held; the write waits

	copied := make(chan struct{})
	go func() { f.p.WithEngine(func() {}); close(copied) }()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine was not available while the pipeline waited on a write")
	}
	state.release(0, nil)
	require.Equal(t, 1, f.outbox.len(), "the alerts out while the write still waits")
	close(w.release)
	<-handled
	f.outbox.release(0, nil)
	require.True(t, *acked)
}

// tickingEngine opens an incident at every tick (a unit gone silent).
type tickingEngine struct {
	changingEngine
}

func (e *tickingEngine) Tick(time.Time) []model.Alert {
	e.changes++
	return []model.Alert{{ID: "silent", Rule: "offline", State: model.StateFiring}}
}

// A time-driven incident's alert waits for the state save too: no message
// is there to redeliver it.
func TestTickAlertsWaitForStateSave(t *testing.T) {
	f := newFixture(t)
	eng := &tickingEngine{}
	state := &fakeState{changes: &eng.changes, outbox: f.outbox}
	f.p = New(Options{State: state}, f.p.registry, eng, f.w, f.dead, f.outbox, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	f.p.tick()
	require.Equal(t, 1, state.len())
	require.Zero(t, f.outbox.len())
	state.release(0, nil)
	require.Equal(t, 1, f.outbox.len())
}

func TestPermanentStorageErrorIsDeadLetteredBeforeAck(t *testing.T) {
	f := newFixture(t)
	m, acked := message(topic, detections(1, `{"imsi":"460001234567890"}`))
	f.p.Handle(context.Background(), m)
	f.outbox.release(0, nil)
	f.w.release(0, &influxwriter.PermanentError{Status: 400, Message: "field type conflict"})
	require.False(t, *acked, "not acked before the dead letter is durable")
	require.Equal(t, 1, f.dead.len())
	rec := f.dead.items[0].(DeadLetter)
	require.Equal(t, reasonStorageRejected, rec.Reason)
	require.Equal(t, topic, rec.Topic)
	f.dead.release(0, nil)
	require.True(t, *acked)
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.rejections.WithLabelValues(reasonStorageRejected)))
}

// The readings storage refused are named: the dead letter's index is the
// first, its detail lists them, and the metric counts them (readings, as
// for every other reason).
func TestStorageRefusedReadingsAreNamed(t *testing.T) {
	f := newFixture(t)
	m, acked := message(topic, detections(41, `{"imsi":"460001234567890"},{"imsi":"460001234567891"},{"imsi":"460001234567892"}`))
	f.p.Handle(context.Background(), m)
	f.outbox.release(0, nil)
	times := f.w.items[0].([]int64)
	f.w.release(0, &influxwriter.PermanentError{Status: 400, Message: "partial write: field type conflict dropped=2",
		Times: []int64{times[2], times[0]}})
	rec := f.dead.items[0].(DeadLetter)
	require.Equal(t, 0, rec.Index)
	require.Contains(t, rec.Detail, "2 readings 0, 2 refused: influxdb rejected the points (HTTP 400): partial write")
	f.dead.release(0, nil)
	require.True(t, *acked)
	require.Equal(t, 2.0, testutil.ToFloat64(f.p.m.rejections.WithLabelValues(reasonStorageRejected)))
}

func TestStoppedWriterLeavesMessageUnacked(t *testing.T) {
	f := newFixture(t)
	m, acked := message(topic, detections(1, `{"imsi":"460001234567890"}`))
	f.p.Handle(context.Background(), m)
	f.outbox.release(0, nil)
	f.w.release(0, influxwriter.ErrStopped)
	require.False(t, *acked, "the broker must redeliver it")
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.abandoned))
}

func TestDeadLetterFailureLeavesMessageUnacked(t *testing.T) {
	f := newFixture(t)
	m, acked := message(topic, `{"v":1,`)
	f.p.Handle(context.Background(), m)
	require.Equal(t, 0, f.w.len())
	f.dead.release(0, errors.New("disk full"))
	require.False(t, *acked)
}

func TestRejectedWholeMessage(t *testing.T) {
	f := newFixture(t)
	m, acked := message("border/mdl/fence/F-9/detections", detections(1, `{"imsi":"460001234567890"}`))
	f.p.Handle(context.Background(), m)
	require.Equal(t, 0, f.w.len())
	require.Equal(t, 0, f.engine.evaluated, "no data from unknown sources reaches the rules")
	require.Equal(t, "unknown_device", f.dead.items[0].(DeadLetter).Reason)
	f.dead.release(0, nil)
	require.True(t, *acked)
}

func TestWholeRejectFromRegisteredDeviceIsNotUsed(t *testing.T) {
	for _, tc := range []struct{ name, payload string }{
		{"malformed json", `{"v":1,`},
		{"bad version", `{"v":2,"seq":5,"ts":1700000000000,"detections":[]}`},
		{"bad seq", `{"v":1,"seq":-1,"ts":1700000000000,"detections":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			m, _ := message(topic, tc.payload)
			f.p.Handle(context.Background(), m)
			require.Equal(t, 0, f.engine.evaluated, "no sign of life for the rules")
			require.Empty(t, f.p.seqs.devices, "no seq taken from it")
			require.Equal(t, 1, f.dead.len())
		})
	}
}

// A message rejected whole after its seq was read (a future ts) or over
// its device's budget was received: its seq is no gap, and the seqs around
// it are no gap either (they were counted as lost messages).
func TestRejectedMessagesWithASeqAreNoGap(t *testing.T) {
	f := newFixture(t)
	f.p.opts.Budget = budget.New(budget.Limits{MessagesPerSecond: 1, MessageBurst: 2}, prometheus.NewRegistry())
	now := time.Now()
	for _, payload := range []string{
		detections(1, `{"imsi":"460001234567890"}`),
		fmt.Sprintf(`{"v":1,"seq":2,"ts":%d,"detections":[]}`, now.Add(time.Hour).UnixMilli()), // future_ts
		`{"v":1,"seq":3,"ts":"yesterday","detections":[]}`,                                     // bad_ts
		detections(4, `{"imsi":"460001234567890"}`),
		detections(5, `{"imsi":"460001234567890"}`), // over budget
		detections(6, `{"imsi":"460001234567890"}`), // over budget
	} {
		m, _ := message(topic, payload)
		f.p.Handle(context.Background(), m)
	}
	require.Equal(t, 4, f.dead.len())
	require.Equal(t, 2, f.engine.evaluated)
	require.Equal(t, 0.0, testutil.ToFloat64(f.p.m.seqGaps))
	require.Equal(t, 0.0, testutil.ToFloat64(f.p.m.seqMissing))
}

// A message whose seq cannot be read (malformed JSON, another schema
// version) is dead-lettered, not lost: the gap it leaves is its own, while
// a gap wider than the unreadable messages before it is still one.
func TestUnreadableMessagesExplainTheirGap(t *testing.T) {
	for _, tc := range []struct {
		name          string
		payloads      []string
		gaps, missing float64
	}{
		{"malformed json", []string{
			detections(1, `{"imsi":"460001234567890"}`),
			`{"v":1,"seq":2,"ts":1,"detections":[{"imsi":"46000`,
			detections(3, `{"imsi":"460001234567890"}`),
		}, 0, 0},
		{"another version", []string{
			detections(1, `{"imsi":"460001234567890"}`),
			`{"v":2,"seq":2,"ts":1,"detections":[]}`,
			`not json at all`,
			detections(4, `{"imsi":"460001234567890"}`),
		}, 0, 0},
		{"a gap wider than the unreadable", []string{
			detections(1, `{"imsi":"460001234567890"}`),
			`{"v":1,`,
			detections(5, `{"imsi":"460001234567890"}`),
		}, 1, 2},
		{"unreadable explains only the gap after it", []string{
			detections(1, `{"imsi":"460001234567890"}`),
			`{"v":1,`,
			detections(2, `{"imsi":"460001234567890"}`),
			detections(4, `{"imsi":"460001234567890"}`),
		}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for _, payload := range tc.payloads {
				m, _ := message(topic, payload)
				f.p.Handle(context.Background(), m)
			}
			require.Equal(t, len(tc.payloads)-f.engine.evaluated, f.dead.len(), "every unreadable message is a dead letter")
			require.Equal(t, tc.gaps, testutil.ToFloat64(f.p.m.seqGaps))
			require.Equal(t, tc.missing, testutil.ToFloat64(f.p.m.seqMissing))
		})
	}
}

// An unreadable message the broker sends again (DUP) took its place in the
// seqs at its first delivery: it does not explain a second message of a
// gap, which is then counted as lost.
func TestRedeliveredUnreadableExplainsOnce(t *testing.T) {
	f := newFixture(t)
	for i, payload := range []string{detections(1, `{"imsi":"460001234567890"}`), `{"v":1,`, `{"v":1,`, detections(4, `{"imsi":"460001234567890"}`)} {
		m, _ := message(topic, payload)
		m.Duplicate = i == 2
		f.p.Handle(context.Background(), m)
	}
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.seqGaps))
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.seqMissing), "seq 2 was the unreadable one; 3 is lost")

	// The counters a crash restores may not know the first delivery: its
	// redelivery takes its place then.
	g := newFixture(t)
	for i, payload := range []string{detections(1, `{"imsi":"460001234567890"}`), `{"v":1,`, detections(3, `{"imsi":"460001234567890"}`)} {
		m, _ := message(topic, payload)
		m.Duplicate = i == 1
		g.p.Handle(context.Background(), m)
	}
	require.Zero(t, testutil.ToFloat64(g.p.m.seqMissing))
}

// A message the broker redelivers (DUP) after its rejection was written
// (its first delivery was not acked: its readings were not stored yet) is
// not dead-lettered or counted again; its good readings are written again,
// as any redelivery's are; nor is a retained message the broker sends again
// at each subscription. A rejection whose record was not written is, and
// so is the same payload published anew by its unit (no DUP).
func TestRedeliveredRejectionsAreRecordedOnce(t *testing.T) {
	partial := detections(1, `{"imsi":"460001234567890"},{"imsi":"12"},{"imsi":"460001234567891"}`)
	for _, tc := range []struct {
		name       string
		payload    string
		dup        bool // the second delivery's DUP flag
		retained   bool // both deliveries' retain flag: a broker's copy at a subscription
		reason     string
		written    int // records of each delivery the store took
		wantDead   int
		wantCount  float64
		wantWrites int
	}{
		{"a bad reading, its record written", partial, true, false, "bad_imsi", 1, 1, 1, 2},
		{"a malformed message, its record written", `{"v":1,"seq":2,`, true, false, "malformed_json", 1, 1, 1, 0},
		{"a bad reading, its record not written", partial, true, false, "bad_imsi", 0, 2, 2, 2},
		{"a unit publishing the same malformed payload again", `{"v":1,"seq":2,`, false, false, "malformed_json", 1, 2, 2, 0},
		{"a retained malformed message, at each subscription", `{"v":1,"seq":2,`, false, true, "malformed_json", 1, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for i := range 2 {
				m, _ := message(topic, tc.payload)
				m.Duplicate = i == 1 && tc.dup
				m.Retained = tc.retained
				n := f.dead.len()
				f.p.Handle(context.Background(), m)
				for i := n; i < f.dead.len() && i < n+tc.written; i++ {
					f.dead.release(i, nil)
				}
				for i := n; i < f.dead.len() && tc.written == 0; i++ {
					f.dead.release(i, errors.New("disk full"))
				}
			}
			assert.Equal(t, tc.wantDead, f.dead.len(), "records appended")
			assert.Equal(t, tc.wantCount, testutil.ToFloat64(f.p.m.rejections.WithLabelValues(tc.reason)))
			assert.Equal(t, 2-tc.wantCount, testutil.ToFloat64(f.p.m.rejectionsRedelivered))
			assert.Equal(t, tc.wantWrites, f.w.len(), "good readings are written at each delivery")
		})
	}
}

func TestDeadLettersGroupedByReason(t *testing.T) {
	f := newFixture(t)
	var dets string
	for i := range 30 {
		if i > 0 {
			dets += ","
		}
		dets += `{"imsi":"12"},{"mac":"zz"}`
	}
	m, _ := message(topic, detections(1, dets))
	f.p.Handle(context.Background(), m)
	require.Equal(t, 2, f.dead.len(), "one record per reason, not per reading")
	rec := f.dead.items[0].(DeadLetter)
	require.Contains(t, rec.Detail, "and 20 more")
	require.Equal(t, 30.0, testutil.ToFloat64(f.p.m.rejections.WithLabelValues("bad_imsi")))
}

func TestRedeliveryIsStoredButNotEvaluatedAgain(t *testing.T) {
	f := newFixture(t)
	payload := detections(7, `{"imsi":"460001234567890"}`)
	for range 2 {
		m, _ := message(topic, payload)
		f.p.Handle(context.Background(), m)
	}
	require.Equal(t, 2, f.w.len(), "written twice: idempotent point times make it harmless")
	require.Equal(t, 1, f.engine.evaluated)
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.seqDuplicates))
}

func TestRetainedIgnored(t *testing.T) {
	f := newFixture(t)
	f.p.opts.Retained = "ignore"
	acked := false
	m := mqttsource.NewMessage(topic, []byte(detections(1, `{"imsi":"460001234567890"}`)), time.Now(), func() { acked = true })
	m.Retained = true
	f.p.Handle(context.Background(), m)
	require.True(t, acked)
	require.Equal(t, 0, f.w.len())
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.retainedIgnored))
}

// The retained copy a broker sends on every (re)subscription is evaluated
// once, however many messages its device sent since; a retained message
// that is new — missed, or the first of a unit that restarted its counter
// (and its clock) while fenceline was down — is evaluated as any other.
func TestStaleRetainedCopyIsNotEvaluatedAgain(t *testing.T) {
	const status = "border/mdl/fence/F-1/status"
	base := time.Now().Add(-time.Hour).UnixMilli()
	msg := func(seq int, ts int64, tamper bool) string {
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"tamper":%t}`, seq, ts, tamper)
	}
	for _, tc := range []struct {
		name string
		// sent are the device's messages fenceline took, live; then copy
		// comes retained.
		sent      []string
		copy      string
		evaluated bool
		resets    float64
	}{
		{"the latest message",
			[]string{msg(1, base, false), msg(2, base+1, true)}, msg(2, base+1, true), false, 0},
		{"the latest of 300 on its topic (every status retained)",
			statuses(1, 300, base), msg(300, base+300, false), false, 0},
		{"an older message in the window (only some statuses retained)",
			statuses(1, 300, base), msg(100, base+100, false), false, 0},
		{"a message missed, in the window",
			append(statuses(1, 299, base)[:289], statuses(291, 299, base)...), msg(290, base+290, false), true, 0},
		{"a new message", statuses(1, 300, base), msg(301, base+301, true), true, 0},
		{"a unit restarted, its clock too: seq 2 again, another payload",
			statuses(1, 300, base), msg(2, base-1000, true), true, 1},
		{"a unit restarted: seq 1 behind the window",
			statuses(1, 300, base), msg(1, base+500, true), true, 1},
		{"a unit restarted, its clock too: seq 1 behind the window",
			statuses(1, 300, base), msg(1, base-1000, true), true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for _, p := range tc.sent {
				m, _ := message(status, p)
				f.p.Handle(context.Background(), m)
			}
			before := f.engine.evaluated
			handle := func() {
				m, _ := message(status, tc.copy)
				m.Retained = true
				f.p.Handle(context.Background(), m)
			}
			handle()
			assert.Equal(t, tc.evaluated, f.engine.evaluated > before, "evaluated")
			assert.Equal(t, tc.resets, testutil.ToFloat64(f.p.m.seqResets), "counter restarts")
			handle() // the broker sends it again at the next subscription
			assert.Equal(t, tc.evaluated, f.engine.evaluated > before, "evaluated once at most")
			assert.Equal(t, len(tc.sent)+2, f.w.len(), "every copy is written: the same points again")
		})
	}
}

func detectionAt(seq int, ts int64) string {
	return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"428991234567890"}]}`, seq, ts)
}

// A retained copy of a message that took moved point times (a unit that
// restarted its counter sent its seq again) takes them again: written at
// the first's points, not over another message's.
func TestStaleRetainedCopyTakesMovedPointTimes(t *testing.T) {
	const topic = "border/mdl/fence/F-1/detections"
	base := time.Now().Add(-time.Hour).UnixMilli()
	f := newFixture(t)
	handle := func(p string, retained bool) []int64 {
		m, _ := message(topic, p)
		m.Retained = retained
		f.p.Handle(context.Background(), m)
		return f.w.items[len(f.w.items)-1].([]int64)
	}
	for seq := 1; seq <= 300; seq++ {
		handle(detectionAt(seq, base+int64(seq)), false)
	}
	restarted := fmt.Sprintf(`{"v":1,"seq":300,"ts":%d,"detections":[{"imsi":"428991234567891"}]}`, base+300)
	live := handle(restarted, false)
	require.NotEqual(t, model.PointTime(time.UnixMilli(base+300), 300, 0), live[0], "moved")
	evaluated := f.engine.evaluated
	require.Equal(t, live, handle(restarted, true))
	require.Equal(t, evaluated, f.engine.evaluated, "a copy")
}

// statuses are the status messages of seqs from to to, a ms apart from ts0.
func statuses(from, to int, ts0 int64) []string {
	var out []string
	for seq := from; seq <= to; seq++ {
		out = append(out, fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"tamper":false}`, seq, ts0+int64(seq)))
	}
	return out
}

// Across a restart, the topics' latest messages are those saved with the
// counters. Where a topic's is not known (a save from before they were
// kept, a topic without a message since) it falls back on seqs and ts: a
// retained message behind the device's latest seq is a copy unless it is
// newer than every message taken (when that is known).
func TestStaleRetainedAfterRestore(t *testing.T) {
	const status = "border/mdl/fence/F-1/status"
	base := time.Now().Add(-time.Hour).UnixMilli()
	f := newFixture(t)
	for _, p := range statuses(1, 300, base) {
		m, _ := message(status, p)
		f.p.Handle(context.Background(), m)
	}
	data, err := json.Marshal(f.p.SeqSnapshot())
	require.NoError(t, err)
	var saved map[string][]byte
	require.NoError(t, json.Unmarshal(data, &saved))
	older, err := json.Marshal(map[string][]byte{"F-1": saved["F-1"][:len(saved["F-1"])-seqLastLen]})
	require.NoError(t, err)

	for _, tc := range []struct {
		name      string
		data      []byte
		copy      string
		evaluated bool
	}{
		{"saved: the latest again", data, fmt.Sprintf(`{"v":1,"seq":300,"ts":%d,"tamper":false}`, base+300), false},
		{"saved: a restarted unit's, its clock too", data, fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, base-5), true},
		{"older save: a message behind", older, fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, base-5), false},
		{"older save: newer than any, but its time is not known", older, fmt.Sprintf(`{"v":1,"seq":1,"ts":%d,"tamper":true}`, base+500), false},
		{"a topic without a message since: behind, newer than any", data, detectionAt(1, base+500), true},
		{"a topic without a message since: behind, older", data, detectionAt(1, base-5), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFixture(t)
			require.NoError(t, g.p.RestoreSeqs(tc.data, func(string) bool { return true }))
			topic := status
			if strings.Contains(tc.copy, "detections") {
				topic = "border/mdl/fence/F-1/detections"
			}
			m, _ := message(topic, tc.copy)
			m.Retained = true
			g.p.Handle(context.Background(), m)
			assert.Equal(t, tc.evaluated, g.engine.evaluated > 0)
		})
	}
}

func TestSeqTracker(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	tr := newSeqTracker()
	for _, tc := range []struct {
		seq  int64
		dup  bool
		desc string
	}{
		{10, false, "first"},
		{11, false, "next"},
		{11, true, "repeat"},
		{15, false, "gap of 3"},
		{13, false, "late but new"},
		{13, true, "late repeat"},
		{10, true, "old repeat within the window"},
		{1000, false, "big jump"},
		{5, false, "far behind: a restarted counter"},
		{6, false, "after restart"},
	} {
		require.Equal(t, tc.dup, dupOf(tr.observe("d", tc.seq, uint32(tc.seq), m)), tc.desc)
	}
	require.Equal(t, 3.0, testutil.ToFloat64(m.seqDuplicates))
	require.Equal(t, 2.0, testutil.ToFloat64(m.seqGaps))
	require.Equal(t, 3.0+984, testutil.ToFloat64(m.seqMissing))
	require.Equal(t, 1.0, testutil.ToFloat64(m.seqResets))
	require.Equal(t, 1.0, testutil.ToFloat64(m.seqLate))
}

// A message that arrives after newer ones fills its gap: counted missing
// when the newer one came, it counts recovered then, and missing minus
// recovered is what was lost (FencelineSequenceGaps). A late message that
// was never counted missing (its place taken by an unreadable message, or
// older than the device's first) recovers nothing. Each message is made at
// its seq's millisecond: a late one is older than the newer ones.
func TestSeqRecovered(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	for _, tc := range []struct {
		name                        string
		seqs                        []int // -1: an unreadable message
		missing, recovered, ofOrder float64
	}{
		{"a buffer out of order", []int{10, 13, 11, 12}, 2, 2, 2},
		{"a real loss", []int{20, -1, 23}, 1, 0, 0},
		{"a real loss, filled late", []int{20, -1, 23, 22}, 1, 1, 1},
		{"late where the unreadable message was", []int{40, -1, 42, 41}, 0, 0, 1},
		{"older than the first", []int{100, 101, 102, 99}, 0, 0, 1},
		{"a late message once only", []int{1, 3, 2, 2}, 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for _, seq := range tc.seqs {
				payload := `{"v":1,`
				if seq >= 0 {
					payload = detectionAt(seq, base+int64(seq))
				}
				m, _ := message(topic, payload)
				f.p.Handle(context.Background(), m)
			}
			assert.Equal(t, tc.missing, testutil.ToFloat64(f.p.m.seqMissing), "missing")
			assert.Equal(t, tc.recovered, testutil.ToFloat64(f.p.m.seqRecovered), "recovered")
			assert.Equal(t, tc.ofOrder, testutil.ToFloat64(f.p.m.seqLate), "out of order")
		})
	}
}

func TestDeviceOverBudgetIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	f.p.opts.Budget = budget.New(budget.Limits{MessagesPerSecond: 1, MessageBurst: 2}, prometheus.NewRegistry())
	var acks []*bool
	for seq := 1; seq <= 3; seq++ {
		m, acked := message(topic, detections(seq, `{"imsi":"460001234567890"}`))
		f.p.Handle(context.Background(), m)
		acks = append(acks, acked)
	}
	require.Equal(t, 2, f.w.len(), "the burst passes")
	require.Equal(t, 2, f.engine.evaluated)
	require.Equal(t, 1, f.dead.len(), "the third is over budget")
	rec := f.dead.items[0].(DeadLetter)
	require.Equal(t, "over_budget", rec.Reason)
	require.NotEmpty(t, rec.Payload, "kept with its payload")
	require.False(t, *acks[2])
	f.dead.release(0, nil)
	require.True(t, *acks[2], "acked once dead-lettered")
	require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.rejections.WithLabelValues("over_budget")))
}

// A message rejected whole after its seq was read (over its device's
// budget, a ts ahead) keeps its seq's place, but is no message the rules
// saw: published again from its dead letter once its cause is mended (the
// runbook's procedure), it is evaluated, once, not taken for a redelivery.
func TestRepublishedDeadLetterIsEvaluated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(f *fixture, now *time.Time)
		reject func(now time.Time) string // the payload rejected at first
		mend   func(f *fixture, now *time.Time)
		reason string
	}{
		{"over budget", func(f *fixture, _ *time.Time) {
			f.p.opts.Budget = budget.New(budget.Limits{MessagesPerSecond: 1, MessageBurst: 1}, prometheus.NewRegistry())
		}, func(now time.Time) string { return detectionAt(2, now.Add(-2*time.Minute).UnixMilli()) }, // the same ts: no budget earned
			func(f *fixture, _ *time.Time) { f.p.opts.Budget = nil }, "over_budget"},
		{"ts ahead", func(*fixture, *time.Time) {},
			func(now time.Time) string { return detectionAt(2, now.Add(10*time.Minute).UnixMilli()) },
			func(f *fixture, now *time.Time) { *now = now.Add(15 * time.Minute) }, "future_ts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			now := time.Now()
			f.p.opts.Now = func() time.Time { return now }
			f.p.dec = decode.New(decode.Options{Now: func() time.Time { return now }})
			tc.setup(f, &now)
			first, _ := message(topic, detectionAt(1, now.Add(-2*time.Minute).UnixMilli()))
			f.p.Handle(context.Background(), first)
			rejected := tc.reject(now)
			m, _ := message(topic, rejected)
			f.p.Handle(context.Background(), m)
			require.Equal(t, 1, f.engine.evaluated)
			require.Equal(t, 1, f.dead.len())
			require.Equal(t, tc.reason, f.dead.items[0].(DeadLetter).Reason)

			// Published again too soon, it is rejected again: no duplicate.
			early, _ := message(topic, rejected)
			f.p.Handle(context.Background(), early)
			require.Equal(t, 2, f.dead.len())
			assert.Zero(t, testutil.ToFloat64(f.p.m.seqDuplicates), "rejected again is no duplicate")

			tc.mend(f, &now)
			again, _ := message(topic, rejected)
			f.p.Handle(context.Background(), again)
			require.Equal(t, 2, f.engine.evaluated, "the dead letter published again is evaluated")
			require.Equal(t, 2, f.w.len(), "and stored")
			assert.Zero(t, testutil.ToFloat64(f.p.m.seqDuplicates), "no redelivery")
			assert.Zero(t, testutil.ToFloat64(f.p.m.seqMissing), "nothing missing")

			// Sent once more, it is a redelivery of the message taken.
			more, _ := message(topic, rejected)
			f.p.Handle(context.Background(), more)
			require.Equal(t, 2, f.engine.evaluated)
			assert.Equal(t, 1.0, testutil.ToFloat64(f.p.m.seqDuplicates))
		})
	}
}

// fullOutbox is an Outbox at its bound: WaitRoom waits until room is
// closed, or ctx ends.
type fullOutbox struct {
	fakeOutbox
	waiting chan struct{}
	room    chan struct{}
}

// waited waits for a Handle to wait for room.
func (o *fullOutbox) waited(t *testing.T) {
	t.Helper()
	select {
	case <-o.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the message did not wait for room in the outbox")
	}
}

func (o *fullOutbox) WaitRoom(ctx context.Context) error {
	o.waiting <- struct{}{}
	select {
	case <-o.room:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A message waits for room in the outbox before anything of it is done
// (a flood of alerts the sinks cannot take stops intake, rather than
// growing the queue in memory); stopping while it waits leaves it unacked,
// for the broker to deliver again.
func TestHandleWaitsForRoomInTheOutbox(t *testing.T) {
	f := newFixture(t)
	o := &fullOutbox{waiting: make(chan struct{}, 1), room: make(chan struct{})}
	f.p.outbox, f.p.room = o, o
	m, _ := message(topic, detections(1, `{"imsi":"460001234567890"}`))
	handled := make(chan struct{})
	go func() { f.p.Handle(context.Background(), m); close(handled) }()
	o.waited(t)
	require.Zero(t, f.engine.evaluated, "not evaluated while the outbox is full")
	require.Zero(t, f.w.len(), "nor written")
	close(o.room)
	<-handled
	require.Equal(t, 1, f.engine.evaluated)
	require.Equal(t, 1, f.w.len())

	// Stopping while it waits: nothing done, nothing acked.
	o.room = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	m2, acked2 := message(topic, detections(2, `{"imsi":"460001234567890"}`))
	handled = make(chan struct{})
	go func() { f.p.Handle(ctx, m2); close(handled) }()
	o.waited(t)
	cancel()
	<-handled
	require.Equal(t, 1, f.engine.evaluated)
	require.False(t, *acked2)
}

// A unit that keeps sending what is rejected is one log line a minute with
// the count of those not logged, not ten a second; other topics and
// reasons are logged on their own.
func TestRejectLogOncePerMinutePerTopicAndReason(t *testing.T) {
	l := newRejectLog(10)
	t0 := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		topic      string
		reason     string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"first", "border/tst/fence/T-01/detections", "unknown_device", 0, true, 0},
		{"again at once", "border/tst/fence/T-01/detections", "unknown_device", 100 * time.Millisecond, false, 0},
		{"again within the minute", "border/tst/fence/T-01/detections", "unknown_device", 59 * time.Second, false, 0},
		{"another reason", "border/tst/fence/T-01/detections", "bad_rssi", time.Second, true, 0},
		{"another unit", "border/tst/fence/T-02/detections", "unknown_device", time.Second, true, 0},
		{"a minute on, with the count", "border/tst/fence/T-01/detections", "unknown_device", 61 * time.Second, true, 2},
	} {
		ok, n, _ := l.allow(tc.topic, tc.reason, t0.Add(tc.at))
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.suppressed, n, tc.name)
	}
	// A unit that falls quiet has its count told when its minute is up.
	l = newRejectLog(10)
	var told []string
	tell := func(topic, reason string, n int) { told = append(told, fmt.Sprintf("%s %s %d", topic, reason, n)) }
	const topic = "border/tst/fence/T-01/detections"
	ok, _, _ := l.allow(topic, "unknown_device", t0)
	require.True(t, ok)
	ok, _, _ = l.allow(topic, "unknown_device", t0.Add(10*time.Second))
	require.False(t, ok)
	l.flush(t0.Add(59*time.Second), tell)
	require.Empty(t, told, "its minute is not up")
	l.flush(t0.Add(60*time.Second), tell)
	require.Equal(t, []string{topic + " unknown_device 1"}, told)
	ok, n, _ := l.allow(topic, "unknown_device", t0.Add(61*time.Second))
	require.True(t, ok)
	require.Zero(t, n, "told once, not again")

	// At most ten lines a second in all, however many topics; the next
	// line logged tells how many others were kept from the log.
	l = newRejectLog(10)
	logged := 0
	for i := range 100 {
		if ok, _, _ := l.allow(fmt.Sprintf("border/tst/fence/U-%d/detections", i), "unknown_device", t0); ok {
			logged++
		}
	}
	require.Equal(t, 10, logged)
	ok, _, others := l.allow("border/tst/fence/U-100/detections", "unknown_device", t0.Add(time.Second))
	require.True(t, ok)
	require.Equal(t, 90, others)
}

func TestLogTopic(t *testing.T) {
	require.Equal(t, "border/mdl/fence/F-1/detections", logTopic("border/mdl/fence/F-1/detections"))
	long := "border/mdl/fence/" + strings.Repeat("B", 65000) + "/detections"
	got := logTopic(long)
	require.Less(t, len(got), 300)
	require.True(t, strings.HasSuffix(got, fmt.Sprintf("…(%d bytes)", len(long))), got)
	require.True(t, utf8.ValidString(logTopic(strings.Repeat("蒙", 100))), "cut on a character boundary")
}

// A reset keeps the counter before it: a stray old message is no reset with
// a gap of millions after it, and a restarted unit's buffer from before the
// restart is matched against its own counter (its repeats are duplicates).
func TestSeqTrackerTwoCounters(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		seqs                  []int64
		dups                  []bool
		missing, resets, late float64
	}{
		{"a stray old message", []int64{10_000_000, 10_000_001, 1, 10_000_002, 10_000_003},
			[]bool{false, false, false, false, false}, 0, 1, 0},
		{"a restart, then the buffer from before it, repeats and all", []int64{500, 501, 0, 1, 2, 495, 496, 501, 3, 4},
			[]bool{false, false, false, false, false, false, false, true, false, false}, 0, 1, 2},
		{"a restart for good", []int64{500, 0, 1, 2, 3},
			[]bool{false, false, false, false, false}, 0, 1, 0},
		{"a stray seq far ahead", []int64{100, 1 << 53, 101, 103},
			[]bool{false, false, false, false}, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics(prometheus.NewRegistry())
			tr := newSeqTracker()
			for i, seq := range tc.seqs {
				require.Equal(t, tc.dups[i], dupOf(tr.observe("d", seq, uint32(seq), m)), "seq %d (message %d)", seq, i)
			}
			require.Equal(t, tc.missing, testutil.ToFloat64(m.seqMissing), "missing")
			require.Equal(t, tc.resets, testutil.ToFloat64(m.seqResets), "resets")
			require.Equal(t, tc.late, testutil.ToFloat64(m.seqLate), "late")
		})
	}
}

// A unit that restarts its counter soon after its last restart sends seqs
// still in the window: a different message with a seq seen is a restart,
// not a duplicate kept from the rules; the same message again is one.
func TestSeqTrackerEarlyRestart(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	tr := newSeqTracker()
	for seq := int64(1); seq <= 100; seq++ {
		require.False(t, dupOf(tr.observe("d", seq, 1000+uint32(seq), m)))
	}
	require.False(t, dupOf(tr.observe("d", 1, 5001, m)), "seq 1 of the new counter: another message")
	require.False(t, dupOf(tr.observe("d", 2, 5002, m)))
	require.True(t, dupOf(tr.observe("d", 2, 5002, m)), "the new counter's seq 2 again: a redelivery")
	require.True(t, dupOf(tr.observe("d", 100, 1100, m)), "the old counter's last message again: a redelivery")
	require.False(t, dupOf(tr.observe("d", 3, 5003, m)))
	require.Equal(t, 1.0, testutil.ToFloat64(m.seqResets))
	require.Equal(t, 2.0, testutil.ToFloat64(m.seqDuplicates))
	require.Zero(t, testutil.ToFloat64(m.seqMissing))
}

// A message lost soon after a unit restarted its counter is a gap, not
// another restart: the new counter's seq 5 is not the old counter's, which
// had its own seq 5.
func TestSeqTrackerLossAfterEarlyRestart(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	tr := newSeqTracker()
	for seq := int64(1); seq <= 5; seq++ {
		require.False(t, dupOf(tr.observe("d", seq, 100+uint32(seq), m)))
	}
	for _, seq := range []int64{1, 2, 3, 5} { // the restart; 4 is lost
		require.False(t, dupOf(tr.observe("d", seq, 200+uint32(seq), m)), "seq %d of the new counter", seq)
	}
	require.Equal(t, 1.0, testutil.ToFloat64(m.seqResets))
	require.Equal(t, 1.0, testutil.ToFloat64(m.seqGaps))
	require.Equal(t, 1.0, testutil.ToFloat64(m.seqMissing))
	require.True(t, dupOf(tr.observe("d", 5, 105, m)), "the old counter's seq 5 again is still a redelivery")
	require.True(t, dupOf(tr.observe("d", 5, 205, m)), "and so is the new one's")
}

// A unit restarted soon after its last restart: its new seq 1 is another
// message than the old seq 1, and goes to the rules.
func TestEarlyRestartReachesTheRules(t *testing.T) {
	f := newFixture(t)
	for _, msg := range []string{
		detections(1, `{"imsi":"460001234567890"}`),
		detections(2, `{"imsi":"460001234567891"}`),
		detections(1, `{"imsi":"428991234567861"}`), // restarted: seq 1 again, another message
	} {
		m, _ := message(topic, msg)
		f.p.Handle(context.Background(), m)
	}
	require.Equal(t, 3, f.engine.evaluated)
}

// dupOf is observe's duplicate answer.
func dupOf(dup bool, _ uint8) bool { return dup }

// A message whose seq the device's other counter has also sent, with another
// payload, takes moved point times, at the level after that message's —
// the messages' readings are stored, even at the same millisecond, however
// many times the unit restarts at one seq (up to model.MoveLevels) — and
// its redelivery takes them again. The other counter's own redelivery and
// messages of no other counter's seq are not moved.
func TestSeqTrackerMovesASeqSentTwice(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	tr := newSeqTracker()
	for _, tc := range []struct {
		desc  string
		seq   int64
		sum   uint32
		dup   bool
		level uint8
	}{
		{"first counter", 25, 125, false, 0},
		{"first counter", 26, 126, false, 0},
		{"restarted: 26 again, another message", 26, 226, false, 4},
		{"the new 26 redelivered", 26, 226, true, 4},
		{"the old 26 redelivered", 26, 126, true, 0},
		{"27, which the old counter never sent", 27, 227, false, 0},
		{"restarted again: 26, a third message", 26, 326, false, 2},
		{"and again", 26, 426, false, 6},
		{"the third redelivered", 26, 326, true, 2},
		{"and again", 26, 526, false, 1},
	} {
		dup, level := tr.observe("d", tc.seq, tc.sum, m)
		require.Equal(t, tc.dup, dup, "%s: duplicate", tc.desc)
		require.Equal(t, tc.level, level, "%s: move level", tc.desc)
	}
}

// The seq counters read back from their saved form as they were: the window
// of seqs and checksums, which seqs moved and which were counted missing,
// the unreadable messages since the last seq, the other counter of a
// restart, the topics' latest messages; devices no longer registered are
// dropped, and damaged data is an error. A save from before the missing seqs
// and unreadable messages were kept reads as having none, one from before
// the latest messages were kept as not knowing them.
func TestSeqCountersSaveAndRestore(t *testing.T) {
	f := newFixture(t)
	tr := f.p.seqs
	for _, seq := range []int64{1, 2, 3, 4, 5, 8} { // 6 and 7 counted missing
		tr.observe("F-1", seq, 100+uint32(seq), f.p.m)
	}
	tr.observe("F-1", 1, 201, f.p.m) // restarted: seq 1 again, moved
	tr.observe("F-1", 4, 204, f.p.m) // 2 and 3 counted missing
	tr.unreadable("F-1", 777, false)
	tr.took("F-1", model.StreamStatus, 4242, 1795741804120, 6)
	tr.observe("GONE", 7, 7, f.p.m)
	require.NotZero(t, tr.devices["F-1"].missing)
	require.NotZero(t, tr.devices["F-1"].prev.missing)
	tr.devices["F-1"].since, tr.devices["F-1"].prev.since = 1795741804120, 1795741800000
	tr.devices["F-1"].newest, tr.devices["F-1"].prev.newest = 1795741805000, 1795741804000
	tr.devices["F-1"].unsure = true // restored after an unclean stop, not heard since: kept so by a clean stop
	data, err := json.Marshal(f.p.SeqSnapshot())
	require.NoError(t, err)

	// A save without the extension (seqExtLen) is read as one without
	// missing seqs or unreadable messages.
	var saved map[string][]byte
	require.NoError(t, json.Unmarshal(data, &saved))
	old := saved["F-1"][:2*seqSavedLen+9]
	oldData, err := json.Marshal(map[string][]byte{"F-1": old})
	require.NoError(t, err)
	o := newFixture(t)
	require.NoError(t, o.p.RestoreSeqs(oldData, func(string) bool { return true }))
	require.Zero(t, o.p.seqs.devices["F-1"].missing)
	require.Zero(t, o.p.seqs.devices["F-1"].unread)
	require.Equal(t, tr.devices["F-1"].max, o.p.seqs.devices["F-1"].max)
	require.Equal(t, uint8(4), o.p.seqs.devices["F-1"].levels[1], "a seq moved at the level there was")

	// A save from before the topics' latest messages were kept reads them
	// as unknown.
	noLast, err := json.Marshal(map[string][]byte{"F-1": saved["F-1"][:len(saved["F-1"])-seqLastLen-seqWindow-16-len(tr.devices["F-1"].hist.appendBinary(nil))]}) // with the other counter's levels and since, and the history
	require.NoError(t, err)
	require.NoError(t, o.p.RestoreSeqs(noLast, func(string) bool { return true }))
	require.Zero(t, o.p.seqs.devices["F-1"].last)
	require.Equal(t, uint8(4), o.p.seqs.devices["F-1"].levels[1])
	require.Equal(t, tr.devices["F-1"].missing, o.p.seqs.devices["F-1"].missing)
	require.Equal(t, tr.devices["F-1"].prev.missing, o.p.seqs.devices["F-1"].prev.missing)

	g := newFixture(t)
	require.NoError(t, g.p.RestoreSeqs(data, func(id string) bool { return id == "F-1" }))
	require.Equal(t, []string{"F-1"}, slices.Collect(maps.Keys(g.p.seqs.devices)))
	require.Equal(t, *tr.devices["F-1"].prev, *g.p.seqs.devices["F-1"].prev)
	want, got := *tr.devices["F-1"], *g.p.seqs.devices["F-1"]
	want.prev, got.prev = nil, nil
	require.Equal(t, want, got)
	for _, tc := range []struct {
		seq   int64
		sum   uint32
		dup   bool
		level uint8
	}{
		{1, 201, true, 4},  // the new counter's seq 1 again
		{8, 108, true, 0},  // the old counter's last again
		{2, 202, false, 4}, // a late message of the new counter: recovered
	} {
		dup, level := g.p.seqs.observe("F-1", tc.seq, tc.sum, g.p.m)
		require.Equal(t, tc.dup, dup, "seq %d", tc.seq)
		require.Equal(t, tc.level, level, "seq %d", tc.seq)
	}

	require.Equal(t, 1.0, testutil.ToFloat64(g.p.m.seqRecovered), "counted missing before the restart")

	require.Error(t, g.p.RestoreSeqs([]byte(`{"F-1":"AAAA"}`), func(string) bool { return true }))
	require.Error(t, g.p.RestoreSeqs([]byte(`[1,2]`), func(string) bool { return true }))
}

// FuzzRestoreSeqs: whatever the file holds, restoring it fails or succeeds
// without a panic, and a restored tracker takes messages.
func FuzzRestoreSeqs(f *testing.F) {
	m := newMetrics(prometheus.NewRegistry())
	tr := newSeqTracker()
	for seq := int64(1); seq <= 3; seq++ {
		tr.observe("F-1", seq, uint32(seq), m)
	}
	tr.observe("F-1", 1, 9, m)
	saved, err := json.Marshal((&Pipeline{seqs: tr}).SeqSnapshot())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(saved)
	f.Add([]byte(`{"F-1":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := newSeqTracker()
		if g.restore(data, func(string) bool { return true }) != nil {
			return
		}
		for id := range g.devices {
			g.observe(id, 1, 1, m)
			g.observe(id, 1<<40, 2, m)
		}
	})
}

// A message signed again (another key, the same body) has the checksum of
// the same message; another body has another.
func TestPayloadSumLeavesOutTheSignature(t *testing.T) {
	body := []byte(`{"v":1,"seq":1,"ts":1795741804120,"detections":[{"imsi":"460001234567890"}]}`)
	a := devicesig.Sign([]byte("key-one-key-one-key-one-key-one!"), topic, body)
	b := devicesig.Sign([]byte("key-two-key-two-key-two-key-two!"), topic, body)
	require.NotEqual(t, a, b)
	require.Equal(t, payloadSum(a), payloadSum(b))
	require.Equal(t, payloadSum(body), payloadSum(a))
	other := devicesig.Sign([]byte("key-one-key-one-key-one-key-one!"), topic, bytes.Replace(body, []byte("890"), []byte("891"), 1))
	require.NotEqual(t, payloadSum(a), payloadSum(other))
}

// Each tick tells the engine whether messages are being taken from the
// broker: while they are not, it declares no unit silent.
func TestTickTellsTheEngineWhetherItListens(t *testing.T) {
	f := newFixture(t)
	subscribed := true
	f.p.opts.Listening = func() bool { return subscribed }
	f.p.tick()
	subscribed = false
	f.p.tick()
	f.p.opts.Listening = nil // not known: taken as listening
	f.p.tick()
	require.Equal(t, []bool{true, false, true}, f.engine.listening)
}

// At a stop, the rejections kept from the log are told at once: their
// minute would never come.
func TestStopTellsRejectionsNotLogged(t *testing.T) {
	f := newFixture(t)
	var log strings.Builder
	f.p.log = slog.New(slog.NewTextHandler(&log, nil))
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan *mqttsource.Message)
	done := make(chan error)
	go func() { done <- f.p.Run(ctx, in) }()
	for seq := range 3 {
		m, _ := message("border/mdl/fence/F-9/detections", detections(seq+1, `{"imsi":"460001234567890"}`))
		in <- m
	}
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, log.String(), `msg="rejected, not logged one by one" topic=border/mdl/fence/F-9/detections reason=unknown_device same_rejections_not_logged=2`)
}

// A unit that sends a live message (its latest seq) before uploading its
// buffer in order: the buffer's messages, however far behind the window,
// fill the gap the live message opened (recovered, not a counter restart),
// also with live messages among them; one of them sent again is a
// redelivery; a counter restart is still one.
func TestSeqBacklogBehindALiveMessage(t *testing.T) {
	span := seqRange
	cat := func(parts ...[]int64) []int64 { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name                                   string
		seqs                                   []int64
		missing, recovered, resets, dups, late float64
	}{
		{"3,000 behind a live message", cat(span(1, 10), []int64{3011}, span(11, 3010)), 3000, 3000, 0, 0, 3000},
		{"with live messages among them", cat(span(1, 10), []int64{3011}, span(11, 1500), []int64{3012, 3013}, span(1501, 3010)), 3000, 3000, 0, 0, 3000},
		{"100 behind, in the window", cat(span(1, 10), []int64{111}, span(11, 110)), 100, 100, 0, 0, 100},
		{"one of the backlog sent again", cat(span(1, 10), []int64{3011}, span(11, 20), []int64{15}, span(21, 3010)), 3000, 3000, 0, 1, 3000},
		{"the backlog cut short: the rest lost", cat(span(1, 10), []int64{3011}, span(11, 1000)), 3000, 990, 0, 0, 990},
		{"the whole buffer sent again, then a live message", cat(span(1, 10), []int64{1011}, span(11, 1010), []int64{1012}, span(11, 1010), []int64{1013}), 1000, 1000, 0, 1000, 1000},
		{"the link dropped again during the buffer", cat(span(1, 10), []int64{2011}, span(11, 500), []int64{2400}, span(501, 2010), span(2012, 2399), []int64{2401}), 2388, 2388, 0, 0, 2388},
		{"the link dropped again for longer", cat(span(1, 10), []int64{2011}, span(11, 500), []int64{3011}, span(501, 2010), span(2012, 3010), []int64{3012}), 2999, 2999, 0, 0, 2999},
		{"a stale redelivery behind a filled buffer", cat(span(1, 10), []int64{1011}, span(11, 1010), span(1012, 1400), []int64{100}, []int64{1401}), 1000, 1000, 0, 1, 1000},
		{"far behind, after the buffer: a restart, not the buffer's", cat(span(1, 10), []int64{1011}, span(11, 1010), span(1012, 2000), []int64{1500}), 1000, 1000, 1, 0, 1000},
		{"a counter restart after it", cat(span(1, 10), []int64{3011}, span(11, 3010), span(0, 20)), 3000, 3000, 1, 0, 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics(prometheus.NewRegistry())
			tr := newSeqTracker()
			for _, seq := range tc.seqs {
				tr.observe("d", seq, uint32(seq), m)
			}
			assert.Equal(t, tc.missing, testutil.ToFloat64(m.seqMissing), "missing")
			assert.Equal(t, tc.recovered, testutil.ToFloat64(m.seqRecovered), "recovered")
			assert.Equal(t, tc.resets, testutil.ToFloat64(m.seqResets), "resets")
			assert.Equal(t, tc.dups, testutil.ToFloat64(m.seqDuplicates), "duplicates")
			assert.Equal(t, tc.late, testutil.ToFloat64(m.seqLate), "late")
		})
	}
}

// Behind the window no checksum tells a redelivery of a buffer's message
// from a unit whose counter restarted into the buffer's seqs: such a
// message is counted a duplicate, but goes to the rules all the same.
func TestSeqBufferMessageAgainGoesToTheRules(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	tr := newSeqTracker()
	for _, seq := range append(append([]int64{1, 1011}, seqRange(2, 1010)...), 1012) {
		dup, _ := tr.observe("d", seq, uint32(seq), m)
		require.False(t, dup)
	}
	dup, _ := tr.observe("d", 100, 100, m)
	assert.False(t, dup, "evaluated")
	assert.Equal(t, 1.0, testutil.ToFloat64(m.seqDuplicates), "counted a duplicate")
	assert.Zero(t, testutil.ToFloat64(m.seqResets), "not a reset")
}

func seqRange(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// A unit without a real-time clock starts every boot at seq 1 and the same
// ts: each boot's readings take points of their own, up to
// model.MoveLevels boots at one millisecond, whatever the boots' lengths (a
// short boot between two longer ones: the third's seq 2 met the first's).
func TestRestartsAtOneInstantKeepTheirPoints(t *testing.T) {
	e := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	for _, boots := range [][]int{
		{3, 3, 3, 3, 3, 3, 3, 3},
		{3, 1, 3},
		{2, 1, 2},
		{5, 5, 2, 5},
		{4, 4, 4, 1, 4},
		{6, 2, 9, 7, 5, 3, 7, 2},
		{200, 1, 150, 2},
	} {
		t.Run(fmt.Sprint(boots), func(t *testing.T) {
			f := newFixture(t)
			points := map[int64]string{}
			type sent struct{ payload, what string }
			var all []sent
			for boot, n := range boots {
				for seq := 1; seq <= n; seq++ {
					payload := fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"4289930%04d%04d"}]}`, seq, e+int64(seq)*1000, boot, seq)
					what := fmt.Sprintf("boot %d seq %d", boot, seq)
					all = append(all, sent{payload, what})
					m, _ := message(topic, payload)
					f.p.Handle(context.Background(), m)
					for _, ns := range f.w.items[len(f.w.items)-1].([]int64) {
						if other, ok := points[ns]; ok {
							t.Fatalf("%s takes the point of %s", what, other)
						}
						points[ns] = what
					}
				}
			}
			// Every message sent again, any boot's (a unit's buffer kept
			// across reboots), takes its own points again: no new one.
			evaluated := f.engine.evaluated
			rand.New(rand.NewPCG(uint64(len(all)), 7)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			for _, s := range all {
				m, _ := message(topic, s.payload)
				f.p.Handle(context.Background(), m)
				for _, ns := range f.w.items[len(f.w.items)-1].([]int64) {
					require.Equal(t, s.what, points[ns], "%s sent again", s.what)
				}
			}
			require.Equal(t, evaluated, f.engine.evaluated, "duplicates, not evaluated again")
		})
	}
}

// The ts of messages tells what their seqs cannot. A unit first heard at
// seq 48 that restarts its counter at 1: its messages
// are newer than every message taken from it, so they are a counter
// restarted, not late ones — counted out of order one after another, with
// their losses not counted at all. A buffer sent after a live message is
// older than it: late, as before; so is one sent after a restart, older
// than the new counter's first message.
func TestSeqAccountingByTs(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	for _, tc := range []struct {
		name                             string
		msgs                             [][2]int // seq, ts offset in s
		resets, late, missing, recovered float64
	}{
		{"restarted below the first seq seen, 21-25 lost",
			append(append([][2]int{{48, 0}, {49, 1}, {50, 2}}, seqAt(1, 20, 100)...), seqAt(26, 30, 200)...), 1, 0, 5, 0},
		{"a buffer after a live message",
			append([][2]int{{50, 0}, {60, 10}}, seqAt(51, 59, 1)...), 0, 9, 9, 9},
		{"a late message, older",
			[][2]int{{10, 0}, {12, 2}, {11, 1}}, 0, 1, 1, 1},
		// 6-9 buffered on the unit, 10 went live, then it restarted
		// before it could send its buffer; the buffer is older than the
		// new counter's first message: the old counter's, filling its gap.
		{"a buffer from before a restart",
			append(append([][2]int{{1, 60}, {2, 120}, {3, 180}, {4, 240}, {5, 300}, {10, 600}}, seqAt(1, 3, 3590)...),
				[2]int{6, 360}, [2]int{7, 420}, [2]int{8, 480}, [2]int{9, 540}), 1, 4, 4, 4},
		// A stray seq: 1000000 between 3 and 4 (a garbled counter). The
		// message after it goes on from 3, and is newer: the gap the
		// stray counted is no loss (recovered), and 11-15, really lost,
		// count missing.
		{"a stray seq far ahead",
			append(append([][2]int{{1, 0}, {2, 1}, {3, 2}, {1000000, 3}}, seqAt(4, 10, 4)...), seqAt(16, 20, 16)...), 1, 0, 999_996 + 5, 999_996},
		// A stray a little ahead (10 between 3 and 4), then the counter
		// going on past it: its gap is no loss either.
		{"a stray seq a little ahead",
			append([][2]int{{1, 0}, {2, 1}, {3, 2}, {10, 3}}, seqAt(4, 20, 4)...), 1, 0, 6, 6},
		// A real gap: the next message goes on after it.
		{"a real gap, then on", append([][2]int{{1, 0}, {2, 1}, {3, 2}, {10, 3}}, seqAt(11, 20, 4)...), 0, 0, 6, 0},
		// A live message far ahead, then the buffer behind it, older: no
		// stray, the buffer fills the gap.
		{"a live message far ahead, then its buffer",
			append([][2]int{{1, 0}, {1000, 1000}}, seqAt(2, 999, 1)...), 0, 998, 998, 998},
		{"a buffer from before a restart, one of its messages sent again",
			append(append([][2]int{{1, 60}, {2, 120}, {3, 180}, {4, 240}, {5, 300}, {9, 540}, {10, 600}}, seqAt(1, 3, 3590)...),
				[2]int{6, 360}, [2]int{7, 420}, [2]int{8, 480}, [2]int{6, 360}), 1, 3, 3, 3},
		// Restarted with a clock running fast (3000), which NTP then sets
		// back: the new counter's later messages are older than its first,
		// but made after the old counter's last: still the new counter's.
		{"a restart with a fast clock set back",
			append(append(seqAt(1, 3, 60), seqAt(1, 8, 3000)...), [2]int{9, 2000}, [2]int{10, 2001}), 1, 0, 0, 0},
		{"a buffer from before a restart, the new counter going on",
			append(append(append([][2]int{{1, 60}, {2, 120}, {3, 180}, {4, 240}, {5, 300}, {10, 600}}, seqAt(1, 3, 3590)...),
				[2]int{6, 360}, [2]int{7, 420}, [2]int{8, 480}, [2]int{9, 540}), seqAt(4, 6, 3593)...), 1, 4, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for _, m := range tc.msgs {
				require.Less(t, m[1], 3600, "ts within the hour before now: a reading ahead is rejected, and no seq accounting is tested")
				msg, _ := message(topic, detectionAt(m[0], base+int64(m[1])*1000))
				f.p.Handle(context.Background(), msg)
			}
			assert.Equal(t, tc.resets, testutil.ToFloat64(f.p.m.seqResets), "resets")
			assert.Equal(t, tc.late, testutil.ToFloat64(f.p.m.seqLate), "out of order")
			assert.Equal(t, tc.missing, testutil.ToFloat64(f.p.m.seqMissing), "missing")
			assert.Equal(t, tc.recovered, testutil.ToFloat64(f.p.m.seqRecovered), "recovered")
		})
	}
}

// seqAt is messages from to to, their ts one second apart from t0 seconds.
func seqAt(from, to, t0 int) [][2]int {
	var out [][2]int
	for seq := from; seq <= to; seq++ {
		out = append(out, [2]int{seq, t0 + seq - from})
	}
	return out
}

// The seq metrics name no device: a warning does, at most once a minute a
// device, with how many messages went missing since its last line, in how
// many gaps, and the seqs they lie between — once a gap has stayed open for
// gapGrace: messages that come out of order fill it first and were never
// missing. Those told missing that come later are told as arrived. A stray
// seq far ahead is no gap: its missing are taken back while not told, and
// told, the log says they were not missing.
func TestMissingMessagesNameTheDevice(t *testing.T) {
	f := newFixture(t)
	var log bytes.Buffer
	f.p.log = slog.New(slog.NewTextHandler(&log, nil))
	now := time.Now()
	f.p.opts.Now = func() time.Time { return now }
	base := now.Add(-time.Hour).UnixMilli()
	at := 0
	send := func(seqs ...int) {
		for _, seq := range seqs {
			at++
			ts := base + int64(at)*1000
			if seq == 3 || seq == 4 || seq == 7 {
				ts = base + int64(seq)*100 // made before the seqs after them
			}
			m, _ := message(topic, detectionAt(seq, ts))
			f.p.Handle(context.Background(), m)
		}
	}
	const missingLine = `msg="messages missing from a device"`
	send(1, 2, 5, 6, 9, 12) // 3-4, 7-8 and 10-11 missing
	send(4)                 // out of order, at once: never missing
	f.p.logUnlogged(now)
	assert.NotContains(t, log.String(), missingLine, "not told before the gaps stayed open %v", gapGrace)

	now = now.Add(gapGrace)
	f.p.logUnlogged(now)
	assert.Equal(t, 1, strings.Count(log.String(), missingLine), log.String())
	assert.Contains(t, log.String(), `device=F-1 missing=5 gaps=3 from_seq=2 to_seq=12`)

	send(3, 7) // told missing, arrived late
	now = now.Add(time.Minute)
	f.p.logUnlogged(now)
	assert.Contains(t, log.String(), `msg="messages told missing from a device arrived late: not lost" device=F-1 arrived=2 still_missing=3`)
	assert.Equal(t, 1, strings.Count(log.String(), missingLine), "nothing new missing")

	log.Reset()
	send(1_000_000, 13) // a stray, within the grace: taken back
	now = now.Add(time.Minute)
	f.p.logUnlogged(now)
	assert.NotContains(t, log.String(), missingLine, "a stray is no gap")

	// fenceline restarts: its log of gaps is gone, the counters (saved)
	// still count 15 missing. When it comes, it is told as arrived.
	send(14, 16)
	now = now.Add(time.Minute)
	f.p.logUnlogged(now)
	clear(f.p.gapLogs)
	log.Reset()
	m, _ := message(topic, detectionAt(15, base+int64(at)*1000-500))
	f.p.Handle(context.Background(), m)
	now = now.Add(time.Minute)
	f.p.logUnlogged(now)
	assert.Contains(t, log.String(), `msg="messages told missing from a device arrived late: not lost" device=F-1 arrived=1`+"\n",
		"how many are still missing is not known after a restart")

	send(400_000) // a stray whose next message comes after it was told
	now = now.Add(time.Minute)
	f.p.logUnlogged(now)
	assert.Contains(t, log.String(), `device=F-1 missing=399983 gaps=1 from_seq=16 to_seq=400000`)
	send(17)
	assert.Contains(t, log.String(), `device=F-1 stray_seq=400000 not_missing=399983`)
}

// The seq counters' snapshot is a copy: the pipeline goes on (a unit's
// boots at one seq fill its level history) while it is saved. (Run with
// -race.)
func TestSeqSnapshotIsACopy(t *testing.T) {
	f := newFixture(t)
	tr := f.p.seqs
	for boot := range 3 {
		tr.observe("F-1", 1, uint32(100+boot), f.p.m)
	}
	snap := f.p.SeqSnapshot()
	before, err := json.Marshal(snap)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for boot := 3; boot < 200; boot++ {
			tr.observe("F-1", int64(1+boot%3), uint32(100+boot), f.p.m)
		}
	}()
	for range 20 {
		after, err := json.Marshal(snap)
		require.NoError(t, err)
		require.Equal(t, before, after, "the snapshot does not change")
	}
	<-done
}

// A device a reload removes is forgotten as a restart forgets it: its seq
// counters, point times and gap logs, which were otherwise held for every
// device ever registered. Put back, it starts afresh.
func TestSetRegistryForgetsRemovedDevices(t *testing.T) {
	f := newFixture(t)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	for seq := range 3 {
		// One millisecond for all three: the device's points take a bitmap.
		m, _ := message(topic, fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001234567890"}]}`, 1+seq*5, ts))
		f.p.Handle(context.Background(), m)
	}
	require.Contains(t, f.p.SeqSnapshot(), "F-1")
	require.Contains(t, f.p.points.devices, "F-1")
	require.Positive(t, f.p.points.bitmaps)
	require.Contains(t, f.p.gapLogs, "F-1")

	other := model.NewRegistry([]model.Device{{ID: "F-2", Kind: model.KindFence, Site: "mdl", Pos: model.Point{Lat: 41.96, Lon: 110.48}, HasPos: true}})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- f.p.Run(ctx, make(chan *mqttsource.Message)) }()
	require.NoError(t, f.p.Do(context.Background(), func() { f.p.SetRegistry(other) }), "as a reload calls it")
	cancel()
	require.NoError(t, <-ran)
	assert.NotContains(t, f.p.SeqSnapshot(), "F-1")
	assert.NotContains(t, f.p.points.devices, "F-1")
	assert.Zero(t, f.p.points.bitmaps)
	assert.NotContains(t, f.p.gapLogs, "F-1")
}
