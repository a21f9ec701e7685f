package sink

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/internal/model"
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
