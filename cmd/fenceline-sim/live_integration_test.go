package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/sim"
	"github.com/fenceline/fenceline/internal/testenv"
)

// After a replay of the past (faster than real time), --then-live goes on
// publishing in real time: the units keep reporting, where the daemon
// would otherwise find them all silent once the replay ended.
func TestIntegrationThenLive(t *testing.T) {
	mq := testenv.Mosquitto(t)
	began := time.Now()
	live := make(chan struct{})
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL()).SetClientID("live-watcher"))
	tok := sub.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer sub.Disconnect(100)
	tok = sub.Subscribe("border/+/+/+/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		var msg struct {
			TS json.RawMessage `json:"ts"`
		}
		if json.Unmarshal(m.Payload(), &msg) != nil {
			return
		}
		var ms int64
		if json.Unmarshal(msg.TS, &ms) != nil {
			var s string
			if json.Unmarshal(msg.TS, &s) != nil {
				return
			}
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return
			}
			ms = ts.UnixMilli()
		}
		if ms > began.UnixMilli() { // the replay ends at its start: this is live
			select {
			case <-live:
			default:
				close(live)
			}
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	var speed sim.Speed
	require.NoError(t, speed.Set("max"))
	o := options{scenario: scenario, broker: mq.URL(), clientID: "sim-then-live", speed: speed,
		duration: 2 * time.Minute, durationSet: true, publish: true, thenLive: true}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- simulate(ctx, o, slog.New(slog.DiscardHandler), &out) }()
	select {
	case <-live:
	case err := <-done:
		t.Fatalf("the simulator stopped after the replay: %v\n%s", err, out.String())
	case <-time.After(time.Minute):
		cancel()
		<-done
		t.Fatalf("no message in real time after the replay:\n%s", out.String())
	}
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
