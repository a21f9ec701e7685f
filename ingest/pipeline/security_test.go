package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/budget"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/protect"
)

var deviceKey = []byte("0123456789abcdef0123456789abcdef")

// sawEngine records the IMSIs it was shown.
type sawEngine struct{ imsis []string }

func (e *sawEngine) Evaluate(b *model.Batch, _ time.Time) []model.Alert {
	for _, d := range b.Detections {
		e.imsis = append(e.imsis, d.IMSI)
	}
	return nil
}
func (e *sawEngine) Tick(time.Time) []model.Alert { return nil }
func (e *sawEngine) Listening(bool, time.Time)    {}

// sawWriter records the IMSIs it was given to store.
type sawWriter struct {
	held
	imsis []string
}

func (w *sawWriter) Write(_ context.Context, b *model.Batch, done func(error)) error {
	for _, d := range b.Detections {
		w.imsis = append(w.imsis, d.IMSI)
	}
	w.hold(b.Len(), done)
	return nil
}

func newSignedFixture(t *testing.T, required bool) (*fixture, *devicesig.Verifier) {
	f := newFixture(t)
	v := devicesig.New(devicesig.Keys{"F-1": deviceKey}, required, f.reg)
	f.p.opts.Signatures = v
	return f, v
}

func sign(payload string) string { return string(devicesig.Sign(deviceKey, topic, []byte(payload))) }

// TestSignatures takes one message at a time through a pipeline that
// requires signatures, and checks where it went.
func TestSignatures(t *testing.T) {
	payload := detections(5, `{"imsi":"460001234567890"}`)
	for _, tc := range []struct {
		name      string
		before    []string // accepted first, acked
		payload   string
		reason    string // dead-letter reason; "" when accepted
		written   bool
		evaluated bool
	}{
		{name: "signed", payload: sign(payload), written: true, evaluated: true},
		{name: "unsigned", payload: payload, reason: "bad_signature"},
		{name: "tampered", payload: strings.Replace(sign(payload), "460001234567890", "460001234567891", 1), reason: "bad_signature"},
		{name: "older seq", before: []string{sign(detections(6, `{"imsi":"460001234567890"}`))}, payload: sign(payload), reason: "replayed"},
		{name: "redelivered copy", before: []string{sign(payload)}, payload: sign(payload), written: true},
		{name: "malformed from a keyed device is no sign of life", payload: `{"v":1,`, reason: "malformed_json"},
		{name: "bad reading rejected on its own, the message is still signed",
			payload: sign(detections(5, `{"imsi":"460001234567890"},{"imsi":"12"}`)), reason: "bad_imsi", written: true, evaluated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newSignedFixture(t, true)
			for i, p := range tc.before {
				m, _ := message(topic, p)
				f.p.Handle(context.Background(), m)
				require.Equal(t, 0, f.dead.len(), "setup message %d accepted", i)
			}
			written, evaluated := f.w.len(), f.engine.evaluated
			m, acked := message(topic, tc.payload)
			f.p.Handle(context.Background(), m)
			require.Equal(t, tc.written, f.w.len() > written, "written")
			require.Equal(t, tc.evaluated, f.engine.evaluated > evaluated, "evaluated")
			if tc.reason == "" {
				require.Equal(t, 0, f.dead.len())
			} else {
				require.Equal(t, 1, f.dead.len())
				rec := f.dead.items[0].(DeadLetter)
				require.Equal(t, tc.reason, rec.Reason)
				require.Equal(t, tc.payload, string(rec.Payload), "the raw payload is kept")
				require.Equal(t, 1.0, testutil.ToFloat64(f.p.m.rejections.WithLabelValues(tc.reason)))
			}
			for _, h := range []*held{&f.w.held, &f.dead.held, &f.outbox.held} {
				for i := range h.len() {
					h.release(i, nil)
				}
			}
			require.True(t, *acked, "rejections and duplicates are acked too")
		})
	}
}

func TestSignedAckAdvancesReplayMark(t *testing.T) {
	f, v := newSignedFixture(t, false)
	m, acked := message(topic, sign(detections(41, `{"imsi":"460001234567890"}`)))
	f.p.Handle(context.Background(), m)
	state := func() map[string]any {
		data, err := v.MarshalState()
		require.NoError(t, err)
		var s struct{ Devices map[string]any }
		require.NoError(t, json.Unmarshal(data, &s))
		return s.Devices
	}
	require.Empty(t, state(), "not before the ack")
	f.w.release(0, nil)
	f.outbox.release(0, nil)
	require.True(t, *acked)
	require.Equal(t, 41.0, state()["F-1"].(map[string]any)["seq"])
}

func TestUnkeyedDeviceWhenNotRequired(t *testing.T) {
	f := newFixture(t)
	f.p.opts.Signatures = devicesig.New(devicesig.Keys{"F-OTHER": deviceKey}, false, prometheus.NewRegistry())
	m, _ := message(topic, detections(1, `{"imsi":"460001234567890"}`))
	f.p.Handle(context.Background(), m)
	require.Equal(t, 0, f.dead.len())
	require.Equal(t, 1, f.w.len())
}

// TestIdentifiersHashedAfterEvaluation: the engine matches raw values, the
// writer only ever sees hashes.
func TestIdentifiersHashedAfterEvaluation(t *testing.T) {
	eng, w := &sawEngine{}, &sawWriter{}
	registry := model.NewRegistry([]model.Device{{ID: "F-1", Kind: model.KindFence, Site: "mdl", Pos: model.Point{Lat: 41.96, Lon: 110.48}, HasPos: true}})
	prot, err := protect.New(protect.Options{Identifiers: true}, deviceKey)
	require.NoError(t, err)
	p := New(Options{Protect: prot}, registry, eng, w, &fakeDead{}, &fakeOutbox{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	m, _ := message(topic, detections(1, `{"imsi":"428991234567890"},{"imsi":"460001234567890"}`))
	p.Handle(context.Background(), m)
	require.Equal(t, []string{"428991234567890", "460001234567890"}, eng.imsis)
	h, err := protect.NewHasher(deviceKey)
	require.NoError(t, err)
	require.Equal(t, []string{h.Hash("imsi", "428991234567890"), h.Hash("imsi", "460001234567890")}, w.imsis)
}

// A signed unit's message over its budget is dead-lettered; published
// again after fenceline restarted (its seqs and signature marks restored,
// the unit's seq moved on since), it is evaluated once — not refused as a
// replay, which kept its readings out for good.
func TestSignedDeadLetterRepublishedAfterRestart(t *testing.T) {
	f, v := newSignedFixture(t, true)
	now := time.Now()
	f.p.opts.Now = func() time.Time { return now }
	f.p.opts.Budget = budget.New(budget.Limits{MessagesPerSecond: 1, MessageBurst: 1}, prometheus.NewRegistry())
	ts := now.Add(-time.Minute).UnixMilli()
	handle := func(f *fixture, payload string) {
		nd, nw, no := f.dead.len(), f.w.len(), f.outbox.len()
		m, acked := message(topic, payload)
		f.p.Handle(context.Background(), m)
		for _, h := range []struct {
			h    *held
			from int
		}{{&f.dead.held, nd}, {&f.w.held, nw}, {&f.outbox.held, no}} {
			for i := h.from; i < h.h.len(); i++ {
				h.h.release(i, nil)
			}
		}
		require.True(t, *acked)
	}
	handle(f, sign(detectionAt(1, ts)))
	over := sign(detectionAt(2, ts)) // the same ts: no budget earned
	handle(f, over)
	require.Equal(t, 1, f.engine.evaluated)
	require.Equal(t, "over_budget", f.dead.items[len(f.dead.items)-1].(DeadLetter).Reason)
	f.p.opts.Budget = nil
	handle(f, sign(detectionAt(3, ts+1000)))
	require.Equal(t, 2, f.engine.evaluated)

	// fenceline restarts.
	seqs, err := json.Marshal(f.p.SeqSnapshot())
	require.NoError(t, err)
	marks, err := v.MarshalState()
	require.NoError(t, err)
	g, w := newSignedFixture(t, true)
	require.NoError(t, w.UnmarshalState(marks))
	require.NoError(t, g.p.RestoreSeqs(seqs, func(string) bool { return true }))

	handle(g, over) // its dead letter, published again
	require.Equal(t, 1, g.engine.evaluated, "evaluated, not refused as a replay")
	require.Zero(t, g.dead.len(), "not dead-lettered again")
	handle(g, over) // and once only
	require.Equal(t, 1, g.engine.evaluated)
}
