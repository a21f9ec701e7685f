package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// PublishOptions tune Publish.
type PublishOptions struct {
	// Speed paces the messages (SpeedMax: as fast as the broker acks).
	Speed Speed
	// Window is how many publishes may await the broker's PUBACK at once
	// (default 64). In order: one client, one connection.
	Window int
	// OnIncident is called when an incident starts (at its time).
	OnIncident func(*Incident)
	// OnHour is called when the simulated clock passes a full hour, with the
	// messages published so far.
	OnHour func(t time.Time, published int)
}

// Publish sends the run's messages to the broker at QoS 1 until the run
// ends or ctx is done, and returns how many the broker acknowledged. Paced,
// a message waits until the real clock reaches its place in the run:
// Start + (its time - the run's start) / speed, counted from the call.
func Publish(ctx context.Context, c mqtt.Client, s *Sim, opts PublishOptions) (int, error) {
	window := opts.Window
	if window <= 0 {
		window = 64
	}
	wallStart := time.Now()
	pending := make([]mqtt.Token, 0, window)
	acked := 0
	wait := func(tok mqtt.Token) error {
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		acked++
		return nil
	}
	drain := func() error {
		for _, tok := range pending {
			if err := wait(tok); err != nil {
				return err
			}
		}
		pending = pending[:0]
		return nil
	}
	var timer *time.Timer
	nextHour := s.Start().Truncate(time.Hour).Add(time.Hour)
	published := 0
	for m := range s.All() {
		if opts.Speed.Paced() {
			due := wallStart.Add(opts.Speed.realDuration(m.Time.Sub(s.Start())))
			if d := time.Until(due); d > 0 {
				// Whatever is in flight is acknowledged while we wait anyway;
				// draining keeps the count exact when the run is stopped.
				if err := drain(); err != nil {
					return acked, err
				}
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
					return acked, ctx.Err()
				}
			}
		}
		if ctx.Err() != nil {
			return acked, ctx.Err()
		}
		for opts.OnHour != nil && !m.Time.Before(nextHour) {
			opts.OnHour(nextHour, published)
			nextHour = nextHour.Add(time.Hour)
		}
		if m.Incident != nil {
			if opts.OnIncident != nil {
				opts.OnIncident(m.Incident)
			}
			continue
		}
		if len(pending) == window {
			if err := wait(pending[0]); err != nil {
				return acked, err
			}
			pending = append(pending[:0], pending[1:]...)
		}
		pending = append(pending, c.Publish(m.Topic, 1, false, m.Payload))
		published++
	}
	if err := drain(); err != nil {
		return acked, err
	}
	return acked, nil
}

// ErrNotConnected is returned by Connect when the broker cannot be reached.
var ErrNotConnected = errors.New("not connected")

// Subscription is a topic filter a client of Connect keeps subscribed, at
// QoS 1, across its reconnections.
type Subscription struct {
	Filter  string
	Handler mqtt.MessageHandler
}

// Connect connects an MQTT client to broker, waiting at most timeout, and
// subscribes subs once connected: on every connection, since its session is
// clean (a reconnected client would otherwise be subscribed to nothing).
// It returns once the first connection's subscriptions are granted.
func Connect(ctx context.Context, broker, clientID string, timeout time.Duration, subs ...Subscription) (mqtt.Client, error) {
	return ConnectWatched(ctx, broker, clientID, timeout, nil, subs...)
}

// ConnectWatched is Connect, calling lost (when not nil) each time the
// connection is lost: what was published for the client until it is back
// is not delivered to it. It reconnects within 2 s of the broker's return
// (paho's default waits up to 10 min between tries).
func ConnectWatched(ctx context.Context, broker, clientID string, timeout time.Duration, lost func(), subs ...Subscription) (mqtt.Client, error) {
	subscribed := make(chan error, 1)
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(timeout).
		SetKeepAlive(30 * time.Second).SetMaxReconnectInterval(2 * time.Second).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			if lost != nil {
				lost()
			}
		}).
		SetOnConnectHandler(func(c mqtt.Client) {
			var err error
			for _, s := range subs {
				tok := c.Subscribe(s.Filter, 1, s.Handler)
				if !tok.WaitTimeout(timeout) {
					err = fmt.Errorf("subscribe %s: no answer from the broker", s.Filter)
				} else if tok.Error() != nil {
					err = fmt.Errorf("subscribe %s: %w", s.Filter, tok.Error())
				}
			}
			select {
			case subscribed <- err: // the first connection's; later ones retry on their own reconnection
			default:
			}
		})
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(timeout):
		return nil, fmt.Errorf("connect to %s: %w within %s", broker, ErrNotConnected, timeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", broker, err)
	}
	if len(subs) == 0 {
		return c, nil
	}
	select {
	case err := <-subscribed:
		if err != nil {
			c.Disconnect(0)
			return nil, err
		}
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, ctx.Err()
	}
	return c, nil
}
