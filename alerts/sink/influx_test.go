package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/ingest/influxwriter"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/testenv"
)

// fakeWriter answers WriteAlert as configured, calling done on its own
// goroutine like the real writer does after a batch is stored.
type fakeWriter struct {
	ret  error         // returned by WriteAlert
	done error         // given to done
	hold chan struct{} // when set, done waits for it
	got  chan *model.Alert
}

func (w *fakeWriter) WriteAlert(_ context.Context, a *model.Alert, done func(error)) error {
	if w.ret != nil {
		return w.ret
	}
	w.got <- a
	go func() {
		if w.hold != nil {
			<-w.hold
		}
		done(w.done)
	}()
	return nil
}

type permanentErr struct{}

func (permanentErr) Error() string   { return "influx: 400 partial write: field type conflict" }
func (permanentErr) Permanent() bool { return true }

func TestInfluxSink(t *testing.T) {
	tests := []struct {
		name          string
		w             *fakeWriter
		wantErr       error // nil: delivered
		wantPermanent bool
	}{
		{"stored", &fakeWriter{}, nil, false},
		{"storage down is retried", &fakeWriter{done: errors.New("connection refused")}, errors.New(""), false},
		{"refused for good", &fakeWriter{done: permanentErr{}}, permanentErr{}, true},
		{"writer stopped", &fakeWriter{ret: errors.New("writer closed")}, errors.New(""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.w.got = make(chan *model.Alert, 1)
			s := NewInflux(tt.w)
			assert.Equal(t, "influx", s.Name())
			a := testAlert("inc-1", model.StateFiring)
			err := s.Deliver(context.Background(), a)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Same(t, a, <-tt.w.got)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.wantPermanent, errors.Is(err, outbox.ErrPermanent), "%v", err)
			if tt.wantPermanent {
				var pe permanentErr
				assert.ErrorAs(t, err, &pe, "the writer's error is kept in the chain")
			}
		})
	}
}

func TestInfluxSinkGivesUpWhenContextEnds(t *testing.T) {
	hold := make(chan struct{})
	w := &fakeWriter{hold: hold, got: make(chan *model.Alert, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- NewInflux(w).Deliver(ctx, testAlert("inc-1", model.StateFiring)) }()
	<-w.got
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	close(hold) // a late done must not block the writer
}

// An alert InfluxDB refuses for good (older than the retention policy: a
// late alert from a backlog) is given up for that sink, not retried for
// ever ahead of every later alert; a current alert is stored.
// runWriter runs a storage writer on cfg until the test ends.
func runWriter(t *testing.T, cfg influxwriter.Config) *influxwriter.Writer {
	t.Helper()
	w, err := influxwriter.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, w.Close(closeCtx))
		stop()
		<-ran
	})
	return w
}

func TestIntegrationInfluxSinkPermanentRefusal(t *testing.T) {
	in := testenv.Influx(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := in.Exec(ctx, `CREATE RETENTION POLICY "week" ON "border" DURATION 168h REPLICATION 1`)
	require.NoError(t, err)
	w := runWriter(t, influxwriter.Config{URL: in.URL(), Bucket: "border/week", FlushInterval: 10 * time.Millisecond})

	s := NewInflux(w)
	old := model.Alert{ID: "late-1", Rule: "plate", Severity: "high", State: model.StateFiring, Site: "mdl",
		Subject: model.Subject{Kind: "plate", Value: "蒙B7K3Q2"}, At: time.Now().Add(-10 * 24 * time.Hour), RaisedAt: time.Now(), Late: true}
	err = s.Deliver(ctx, &old)
	require.ErrorIs(t, err, outbox.ErrPermanent, "%v", err)

	cur := old
	cur.ID, cur.At, cur.Late = "now-1", time.Now(), false
	require.NoError(t, s.Deliver(ctx, &cur))
}

// A burst of alerts shares the writer's batches: delivered together, 50
// alerts are one write, stored at once even with a flush interval of an
// hour (one by one, each waited for a flush: about 700 alerts a second
// where a flood of them outran InfluxDB's pace). A refusal stops the batch
// at the alert refused.
func TestIntegrationInfluxSinkDeliversABatchInOneWrite(t *testing.T) {
	in := testenv.Influx(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := runWriter(t, influxwriter.Config{URL: in.URL(), Bucket: "border/autogen", FlushInterval: time.Hour, BatchSize: 50})

	var alerts []*model.Alert
	for i := range 50 {
		a := testAlert(fmt.Sprintf("burst-%02d", i), model.StateFiring)
		alerts = append(alerts, a)
	}
	n, err := NewInflux(w).DeliverBatch(ctx, alerts)
	require.NoError(t, err)
	require.Equal(t, 50, n)
	res, err := in.Query(ctx, `SELECT count("summary") FROM "alert"`)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, "50", fmt.Sprint(res[0].Values[0][1]), "every alert stored, each its own point")

	// The writer closed: the batch stops at its first alert.
	require.NoError(t, w.Close(ctx))
	n, err = NewInflux(w).DeliverBatch(ctx, alerts[:3])
	require.Error(t, err)
	require.Zero(t, n)
}

// ackLost stores an alert through the Influx sink and then, for the alerts
// it names, fails as if fenceline had crashed before the delivery was
// recorded: the outbox keeps them pending and writes them again after a
// restart.
type ackLost struct {
	in     *Influx // not embedded: the outbox must call Deliver, not its DeliverBatch
	lose   map[string]bool
	stored chan string
}

func (s *ackLost) Name() string { return s.in.Name() }

func (s *ackLost) Deliver(ctx context.Context, a *model.Alert) error {
	if err := s.in.Deliver(ctx, a); err != nil {
		return err
	}
	s.stored <- a.ID
	if s.lose[a.ID] {
		return errors.New("crashed before the delivery was recorded")
	}
	return nil
}

// Two alerts of one series in one millisecond whose ids draw the same
// sub-millisecond offset are two points, also when one of them is written
// again after a restart while the other was delivered before it: the point
// time comes with the alert from the outbox, not from a table the restart
// emptied (where the second, moved off the taken time, came back to it and
// overwrote the first alert's point).
func TestIntegrationAlertPointsAcrossRestart(t *testing.T) {
	in := testenv.Influx(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at := time.Date(2026, 11, 26, 15, 10, 4, 120e6, time.UTC)

	// Find two ids whose drawn offsets meet (a birthday search: about a
	// thousand ids).
	var a, b *model.Alert
	drawn := map[time.Time]string{}
	for i := 0; a == nil; i++ {
		id := fmt.Sprintf("burst-%d", i)
		pt := influxwriter.AlertPointTime(&model.Alert{ID: id, State: model.StateFiring}, at)
		if other, ok := drawn[pt]; ok {
			a, b = testAlert(other, model.StateFiring), testAlert(id, model.StateFiring)
		}
		drawn[pt] = id
	}
	a.At, b.At = at, at

	dir := t.TempDir()
	startWriter := func() (*influxwriter.Writer, func()) {
		w, err := influxwriter.New(influxwriter.Config{URL: in.URL(), Bucket: in.Bucket(), FlushInterval: time.Millisecond}, testLogger(t), prometheus.NewRegistry())
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- w.Run(runCtx) }()
		return w, func() {
			require.NoError(t, w.Close(ctx))
			stop()
			<-ran
		}
	}
	runOutbox := func(s outbox.Sink, stored chan string, want int, alerts ...model.Alert) {
		o, err := outbox.Open(dir, []outbox.Sink{s}, outbox.Options{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
			testLogger(t), prometheus.NewRegistry())
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- o.Run(runCtx) }()
		if len(alerts) > 0 {
			appended := make(chan error, 1)
			o.Append(alerts, func(err error) { appended <- err })
			require.NoError(t, <-appended)
		}
		got := map[string]bool{}
		for len(got) < want {
			select {
			case id := <-stored:
				got[id] = true
			case <-ctx.Done():
				t.Fatalf("stored %d of %d alerts", len(got), want)
			}
		}
		stop()
		require.NoError(t, <-ran)
		require.NoError(t, o.Close())
	}

	// Before the restart both are stored; b's delivery is not recorded.
	w, stopWriter := startWriter()
	stored := make(chan string, 1000)
	runOutbox(&ackLost{in: NewInflux(w), lose: map[string]bool{b.ID: true}, stored: stored}, stored, 2, *a, *b)
	stopWriter()
	ids := func() []string {
		series, err := in.Query(ctx, `SELECT id FROM alert ORDER BY time`)
		require.NoError(t, err)
		var out []string
		for _, s := range series {
			for _, r := range s.Rows() {
				out = append(out, r["id"].(string))
			}
		}
		slices.Sort(out)
		return out
	}
	want := []string{a.ID, b.ID}
	slices.Sort(want)
	require.Equal(t, want, ids(), "two alerts, two points")

	// After it, b is written again by a new writer.
	w, stopWriter = startWriter()
	stored = make(chan string, 1000)
	runOutbox(&ackLost{in: NewInflux(w), stored: stored}, stored, 1)
	stopWriter()
	require.Equal(t, want, ids(), "b written again is its own point, and a's is still there")
}
