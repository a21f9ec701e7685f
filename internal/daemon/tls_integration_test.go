package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/stack"
	"github.com/fenceline/fenceline/internal/testenv"
)

// TestIntegrationMQTTTLS runs the daemon against a real mosquitto TLS
// listener with certificates made here: server verified against the CA,
// with and without a client certificate, and refused under a wrong CA.
func TestIntegrationMQTTTLS(t *testing.T) {
	detection := func(seq int) string {
		return fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"detections":[{"imsi":"460001234567890","rssi":-70}]}`, seq, time.Now().Add(-time.Minute).UnixMilli())
	}
	const topic = "border/mdl/fence/F-AOL-01/detections"

	t.Run("TLS, server verified against ca_file", func(t *testing.T) {
		ca := newPKI(t, t.TempDir(), "border-ca")
		listener, url := tlsListener(t, ca, false)
		e, _ := newSecureEnv(t, secureOpts{rules: "rules.yaml", mosquitto: stack.MosquittoOptions{ExtraConfig: listener},
			mqtt: fmt.Sprintf(`{broker: %q, client_id: fenceline-test, tls: {ca_file: %q}}`, url, ca.CAFile)})
		e.publish(topic, detection(1))
		e.waitAcked(1)
		require.Equal(t, 1, e.count("phone_detection"))
	})

	t.Run("mutual TLS", func(t *testing.T) {
		ca := newPKI(t, t.TempDir(), "border-ca")
		listener, url := tlsListener(t, ca, true)
		cert, key := ca.client("fenceline")
		e, _ := newSecureEnv(t, secureOpts{rules: "rules.yaml", mosquitto: stack.MosquittoOptions{ExtraConfig: listener},
			mqtt: fmt.Sprintf(`{broker: %q, client_id: fenceline-test, tls: {ca_file: %q, cert_file: %q, key_file: %q}}`, url, ca.CAFile, cert, key)})
		e.publish(topic, detection(1))
		e.waitAcked(1)
		require.Equal(t, 1, e.count("phone_detection"))

		// The listener really requires a client certificate: without one
		// the handshake fails.
		pem, err := os.ReadFile(ca.CAFile)
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("no-cert").
			SetTLSConfig(&tls.Config{RootCAs: pool}).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(waitTimeout))
		require.Error(t, tok.Error(), "a client without certificate is refused")
	})

	t.Run("wrong CA is refused", func(t *testing.T) {
		dir := t.TempDir()
		ca := newPKI(t, dir, "border-ca")
		wrong := newPKI(t, dir, "some-other-ca")
		listener, url := tlsListener(t, ca, false)
		e, log := newSecureEnv(t, secureOpts{rules: "rules.yaml", mosquitto: stack.MosquittoOptions{ExtraConfig: listener},
			mqtt:          fmt.Sprintf(`{broker: %q, client_id: fenceline-test, tls: {ca_file: %q}}`, url, wrong.CAFile),
			notSubscribed: true})
		e.waitFor("the refusal in the log", func() bool {
			return e.counter("fenceline_mqtt_connect_failures_total", nil) >= 1
		})
		require.Contains(t, log.String(), "cannot connect to broker")
		require.Contains(t, log.String(), "certificate signed by unknown authority", "the log says why")
		require.Equal(t, 0.0, e.gauge("fenceline_mqtt_connected"))
		require.Equal(t, 0.0, e.gauge("fenceline_mqtt_subscribed"))
		code, body := e.get("/readyz")
		require.Equal(t, 503, code)
		require.Contains(t, body, "mqtt: not subscribed")

		e.publish(topic, detection(1)) // through the plain listener: queued for nobody
		require.Equal(t, 0, e.acked())
	})

	// A URL whose scheme does not match the listener fails with words that
	// do not say so (the broker closes the connection, "EOF"): the log adds
	// what most likely is wrong.
	for _, tc := range []struct {
		name, hint string
		url        func(plain, tls string) string
		tls        func(caFile string) string
	}{
		{"plain MQTT to a TLS listener", "if this port expects TLS, use ssl://",
			func(_, tls string) string { return "tcp://" + strings.TrimPrefix(tls, "ssl://") },
			func(string) string { return "" }},
		{"TLS to a plain listener", "if this port speaks plain MQTT, use tcp://",
			func(plain, _ string) string { return "ssl://" + plain },
			func(caFile string) string { return fmt.Sprintf(", tls: {ca_file: %q}", caFile) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newPKI(t, t.TempDir(), "border-ca")
			listener, url := tlsListener(t, ca, false)
			plain := testenv.Mosquitto(t) // another broker, without TLS
			e, log := newSecureEnv(t, secureOpts{rules: "rules.yaml", mosquitto: stack.MosquittoOptions{ExtraConfig: listener},
				mqtt:          fmt.Sprintf(`{broker: %q, client_id: fenceline-test%s}`, tc.url(plain.Addr(), url), tc.tls(ca.CAFile)),
				notSubscribed: true})
			e.waitFor("the refusal in the log", func() bool {
				return e.counter("fenceline_mqtt_connect_failures_total", nil) >= 1 && strings.Contains(log.String(), "cannot connect to broker")
			})
			require.Contains(t, log.String(), tc.hint)
		})
	}
}
