package mqttsource

import (
	"context"
	"crypto/tls"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/testenv"
)

// TestIntegrationFirstConnectBacksOff: a first connection that fails (here
// TLS to a plaintext listener) is tried again after waits that double up to
// max_reconnect_interval, as reconnects are; paho's own first-connection
// retry waits a fixed second for ever, a failed attempt (and, with its
// error changing, a log line) a second.
func TestIntegrationFirstConnectBacksOff(t *testing.T) {
	broker := testenv.Mosquitto(t)
	for _, tc := range []struct {
		name        string
		first, max  time.Duration
		wantRetryIn []string
	}{
		{name: "doubling to the cap", first: 20 * time.Millisecond, max: 160 * time.Millisecond,
			wantRetryIn: []string{"20ms", "40ms", "80ms", "160ms", "160ms"}},
		{name: "a cap below the first wait", first: 100 * time.Millisecond, max: 30 * time.Millisecond,
			wantRetryIn: []string{"30ms", "30ms", "30ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default().MQTT
			cfg.Broker = "ssl://" + broker.Addr()
			cfg.MaxReconnectInterval = config.Duration(tc.max)
			var logged testenv.LogBuffer
			s := New(cfg, Options{MaxInflight: 1, TLS: &tls.Config{InsecureSkipVerify: true}},
				slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
			s.firstRetry = tc.first
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			start := time.Now()
			go func() { _ = s.Run(ctx); close(done) }()
			defer func() { s.Close(time.Second); cancel(); <-done }()

			retryIn := regexp.MustCompile(`first connection failed; trying again" .*?retry_in=(\S+)`)
			var got []string
			require.Eventually(t, func() bool {
				got = nil
				for _, m := range retryIn.FindAllStringSubmatch(logged.String(), -1) {
					got = append(got, m[1])
				}
				return len(got) >= len(tc.wantRetryIn)
			}, 10*time.Second, 5*time.Millisecond, "%s", logged.String())
			elapsed := time.Since(start)
			require.Equal(t, tc.wantRetryIn, got[:len(tc.wantRetryIn)])
			// The last failure logged came after every wait before it.
			var waited time.Duration
			for _, w := range tc.wantRetryIn[:len(tc.wantRetryIn)-1] {
				d, err := time.ParseDuration(w)
				require.NoError(t, err)
				waited += d
			}
			require.GreaterOrEqual(t, elapsed, waited)
			require.False(t, s.Subscribed())
		})
	}
}

// TestIntegrationClientIDTakenIsNamed: two sources with one client id close
// each other's connections at the broker; the log says what is the likely
// cause, not only "connection lost" again and again.
func TestIntegrationClientIDTakenIsNamed(t *testing.T) {
	broker := testenv.Mosquitto(t)
	cfg := config.Default().MQTT
	cfg.Broker = broker.URL()
	cfg.ClientID = "fenceline-twin"
	cfg.MaxReconnectInterval = config.Duration(200 * time.Millisecond)
	var logged testenv.LogBuffer
	for range 2 {
		s := New(cfg, Options{MaxInflight: 10}, slog.New(slog.NewTextHandler(&logged, nil)), prometheus.NewRegistry())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = s.Run(ctx); close(done) }()
		t.Cleanup(func() { s.Close(time.Second); cancel(); <-done })
	}
	require.Eventually(t, func() bool {
		return strings.Contains(logged.String(), "is another client connected with the same client id?")
	}, 30*time.Second, 10*time.Millisecond, "%s", logged.String())
}
