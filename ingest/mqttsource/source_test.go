package mqttsource

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
)

// TestFailedConnectionsAreLogged: paho retries failed connections by
// itself; each distinct failure reaches the log (once per failLogEvery when
// it repeats), so that a TLS problem does not leave the daemon silently
// unready.
func TestFailedConnectionsAreLogged(t *testing.T) {
	var buf bytes.Buffer
	cfg := config.Default().MQTT
	cfg.Broker = "ssl://fenceline:s3cret@127.0.0.1:8883"
	s := New(cfg, Options{MaxInflight: 1}, slog.New(slog.NewTextHandler(&buf, nil)), prometheus.NewRegistry())
	tlsErr := errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")
	for range 5 {
		s.onNotification(nil, mqtt.ConnectionNotificationFailed{Reason: tlsErr})
	}
	s.onNotification(nil, mqtt.ConnectionNotificationFailed{Reason: errors.New("connection refused")})
	s.onNotification(nil, mqtt.ConnectionNotificationConnecting{})

	logged := buf.String()
	require.Equal(t, 1, strings.Count(logged, "certificate signed by unknown authority"), logged)
	require.Contains(t, logged, "connection refused")
	require.Contains(t, logged, "failed_attempts_since_last_log=4", "the repeats are counted in the next line")
	require.NotContains(t, logged, "s3cret")
	require.Equal(t, 6.0, testutil.ToFloat64(s.metrics.connectFails))
}

// A subscription at QoS 0 is warned about at start: the broker queues
// nothing for a client that is away.
func TestQoS0Warned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		qos    int
		warned bool
	}{
		{name: "qos 1", qos: 1},
		{name: "qos 0", qos: 0, warned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			cfg := config.Default().MQTT
			cfg.QoS = tc.qos
			New(cfg, Options{MaxInflight: 1}, slog.New(slog.NewTextHandler(&buf, nil)), prometheus.NewRegistry())
			require.Equal(t, tc.warned, strings.Contains(buf.String(), "level=WARN msg=\"mqtt.qos is 0: the broker queues nothing for fenceline while it is away"), buf.String())
		})
	}
}

// A failure that repeats is logged once per failLogEvery even when its
// text changes with every attempt: an expired certificate's error holds
// the current time, and each retry logged a line.
func TestFailedConnectionLogIgnoresVolatileParts(t *testing.T) {
	expired := func(now string) error {
		return errors.New("tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time " + now + " is after 2026-11-20T00:00:00Z")
	}
	for _, tc := range []struct {
		name   string
		errs   []error
		lines  int
		counts string // in the last line logged
	}{
		{name: "expired certificate, the clock moving",
			errs:  []error{expired("2026-11-27T12:58:39Z"), expired("2026-11-27T12:58:40Z"), expired("2026-11-27T12:58:42Z"), expired("2026-11-27T12:58:46Z")},
			lines: 1},
		{name: "timeouts of different lengths",
			errs:  []error{errors.New("dial tcp 10.0.0.5:8883: i/o timeout after 10.001s"), errors.New("dial tcp 10.0.0.5:8883: i/o timeout after 10.017s")},
			lines: 1},
		{name: "another failure is logged at once",
			errs:  []error{expired("2026-11-27T12:58:39Z"), expired("2026-11-27T12:58:40Z"), errors.New("connection refused")},
			lines: 2, counts: "failed_attempts_since_last_log=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := New(config.Default().MQTT, Options{MaxInflight: 1}, slog.New(slog.NewTextHandler(&buf, nil)), prometheus.NewRegistry())
			for _, err := range tc.errs {
				s.onNotification(nil, mqtt.ConnectionNotificationFailed{Reason: err})
			}
			logged := buf.String()
			require.Equal(t, tc.lines, strings.Count(logged, "cannot connect to broker"), logged)
			require.Contains(t, logged, tc.counts)
			require.Equal(t, float64(len(tc.errs)), testutil.ToFloat64(s.metrics.connectFails))
		})
	}
}
