package mqttsource

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
)

// slowBroker is a client whose SUBSCRIBE the broker answers only when told.
type slowBroker struct {
	mqtt.Client
	subscribes int
	tok        *heldToken
}

func (c *slowBroker) IsConnectionOpen() bool { return true }

func (c *slowBroker) SubscribeMultiple(map[string]byte, mqtt.MessageHandler) mqtt.Token {
	c.subscribes++
	c.tok = &heldToken{done: make(chan struct{})}
	return c.tok
}

type heldToken struct {
	done chan struct{}
	once sync.Once
	err  error
}

func (t *heldToken) answer(err error) { t.once.Do(func() { t.err = err; close(t.done) }) }
func (t *heldToken) Wait() bool       { <-t.done; return true }
func (t *heldToken) WaitTimeout(d time.Duration) bool {
	select {
	case <-t.done:
		return true
	case <-time.After(d):
		return false
	}
}
func (t *heldToken) Done() <-chan struct{} { return t.done }
func (t *heldToken) Error() error          { return t.err }

// A subscription the broker has not answered yet is waited for again, not
// asked for a second time: each SUBSCRIBE brings the topics' retained
// messages again, and they came twice. One answered with an error is asked
// for again.
func TestSubscriptionUnansweredIsNotAskedTwice(t *testing.T) {
	cfg := config.Default().MQTT
	cfg.ConnectTimeout = config.Duration(20 * time.Millisecond)
	src := New(cfg, Options{MaxInflight: 10}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	c := &slowBroker{}

	pending, err := src.trySubscribe(c, nil)
	require.Error(t, err, "no answer yet")
	require.NotNil(t, pending)
	pending, err = src.trySubscribe(c, pending)
	require.Error(t, err)
	require.Equal(t, 1, c.subscribes, "waited for again, not asked again")

	c.tok.answer(nil)
	pending, err = src.trySubscribe(c, pending)
	require.NoError(t, err)
	require.Nil(t, pending)
	require.Equal(t, 1, c.subscribes)

	// Answered with an error: asked again.
	pending, _ = src.trySubscribe(c, nil)
	c.tok.answer(errors.New("refused"))
	pending, err = src.trySubscribe(c, pending)
	require.Error(t, err)
	require.Nil(t, pending)
	_, _ = src.trySubscribe(c, pending)
	require.Equal(t, 3, c.subscribes)
}
