package daemon

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/alerts/sink"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/protect"
)

// TestClientTLSRefusesWhatCannotWork: every TLS file problem stops start-up
// with the key named, instead of surfacing as failed connections later.
func TestClientTLSRefusesWhatCannotWork(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, dir, "ca")
	other := newPKI(t, dir, "other")
	cert, key := ca.client("fenceline")
	_, otherKey := other.client("someone")
	expired, expiredKey := ca.leaf("expired", true, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	notPEM := filepath.Join(dir, "not-pem.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o600))
	fifo := filepath.Join(dir, "fifo.pem")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	for _, tc := range []struct {
		name string
		tls  config.TLS
		err  string // "" when it loads
	}{
		{name: "none: system roots", tls: config.TLS{}},
		{name: "CA only", tls: config.TLS{CAFile: ca.CAFile}},
		{name: "CA and client certificate", tls: config.TLS{CAFile: ca.CAFile, CertFile: cert, KeyFile: key}},
		{name: "CA file missing", tls: config.TLS{CAFile: filepath.Join(dir, "nope.pem")}, err: "mqtt.tls.ca_file: " + filepath.Join(dir, "nope.pem") + ": cannot open: no such file"},
		{name: "CA file a device (never ends)", tls: config.TLS{CAFile: "/dev/zero"}, err: "mqtt.tls.ca_file: /dev/zero: is not a regular file"},
		{name: "CA file a FIFO (opening it waits for a writer)", tls: config.TLS{CAFile: fifo}, err: "mqtt.tls.ca_file: " + fifo + ": is not a regular file"},
		{name: "certificate file a device", tls: config.TLS{CertFile: "/dev/zero", KeyFile: key}, err: "mqtt.tls.cert_file: /dev/zero: is not a regular file"},
		{name: "CA file without PEM", tls: config.TLS{CAFile: notPEM}, err: "mqtt.tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{name: "key of another certificate", tls: config.TLS{CertFile: cert, KeyFile: otherKey}, err: "mqtt.tls.cert_file: with mqtt.tls.key_file: tls: private key does not match public key"},
		// A key's path, when nothing is there, may be the key written in
		// its place: not printed.
		{name: "key file missing", tls: config.TLS{CertFile: cert, KeyFile: filepath.Join(dir, "nope-key.pem")}, err: "mqtt.tls.key_file: (its name not shown: no such file, and perhaps the secret itself written in place of a path): cannot open: no such file"},
		{name: "certificate is not PEM", tls: config.TLS{CertFile: notPEM, KeyFile: key}, err: "mqtt.tls.cert_file: with mqtt.tls.key_file: tls: failed to find any PEM data in certificate input"},
		{name: "expired certificate", tls: config.TLS{CertFile: expired, KeyFile: expiredKey}, err: "mqtt.tls.cert_file: " + expired + " expired on "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := clientTLS("mqtt.tls", tc.tls)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.tls.CAFile != "" {
				require.NotNil(t, c.RootCAs)
			}
			if tc.tls.CertFile != "" {
				require.Len(t, c.Certificates, 1)
			}
		})
	}
}

// TestCheckReportsSecurityProblems: `fenceline check` finds what start-up
// would refuse, one problem a line at its key and line.
func TestCheckReportsSecurityProblems(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, dir, "ca")
	cert, _ := ca.client("fenceline")
	_, otherKey := ca.client("other")
	notPEM := filepath.Join(dir, "not-pem.txt")
	short := filepath.Join(dir, "short")
	badKeys := filepath.Join(dir, "devices.keys")
	for p, content := range map[string]string{notPEM: "nothing here\n", short: "tooshort\n", badKeys: "F-AOL-01 no colon\n"} {
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
	rules, err := os.ReadFile(filepath.Join("testdata", "rules.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o600))
	cfgPath := filepath.Join(dir, "fenceline.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`mqtt:
  broker: ssl://127.0.0.1:8883
  tls: {ca_file: not-pem.txt, cert_file: `+cert+`, key_file: `+otherKey+`}
influx: {url: "https://db:8086", tls: {ca_file: not-pem.txt}}
http: {listen: "0.0.0.0:9464", token_file: short}
storage: {dir: state}
ingest: {signatures: {key_file: devices.keys}}
privacy: {hash_identifiers: true, key_file: short}
webhooks: [{url: "https://unit.local/", ca_file: not-pem.txt}, {url: "https://unit2.local/", ca_file: missing.pem}]
`), 0o600))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	err = Check(cfg)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{
		"fenceline.yaml:3: mqtt.tls.ca_file: " + notPEM + " holds no PEM certificate",
		"fenceline.yaml:3: mqtt.tls.cert_file: with mqtt.tls.key_file: tls: private key does not match public key",
		"fenceline.yaml:4: influx.tls.ca_file: " + notPEM + " holds no PEM certificate",
		"fenceline.yaml:5: http.token_file: the token has 8 characters, want at least 16",
		"fenceline.yaml:7: ingest.signatures.key_file: " + badKeys + ": line 1: want device-id:hex-key",
		"fenceline.yaml:8: privacy.key_file: " + short + " holds 8 bytes",
		"fenceline.yaml:9: webhooks[0].ca_file: " + notPEM + " holds no PEM certificate",
		"fenceline.yaml:9: webhooks[1].ca_file: cannot read",
	} {
		require.Contains(t, err.Error(), want)
	}
	require.Equal(t, 1, strings.Count(err.Error(), "webhooks[1].ca_file"), "an unreadable file is one problem")
	require.NotContains(t, err.Error(), "tooshort", "never a secret")
	require.Len(t, lines, 8, "one problem a line: %s", err)
}

func TestInfluxTokenPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("from-file\n"), 0o600))
	for _, tc := range []struct {
		name      string
		tokenFile string
		env       string
		want      string
		from      string
	}{
		{name: "file wins over environment", tokenFile: file, env: "from-env", want: "from-file", from: "influx.token_file"},
		{name: "environment without file", env: "from-env", want: "from-env", from: EnvInfluxToken},
		{name: "neither", want: "", from: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvInfluxToken, tc.env)
			cfg := config.Default()
			cfg.Influx.TokenFile = tc.tokenFile
			tok, from, err := influxToken(&cfg)
			require.NoError(t, err)
			require.Equal(t, tc.want, tok)
			require.Equal(t, tc.from, from)
		})
	}
	cfg := config.Default()
	cfg.Influx.TokenFile = file + ".missing"
	_, _, err := influxToken(&cfg)
	require.ErrorContains(t, err, "influx.token_file: secret file")

	// A token that cannot go in an HTTP header is refused where check and
	// start read it, without quoting it.
	two := filepath.Join(t.TempDir(), "two-lines")
	require.NoError(t, os.WriteFile(two, []byte("admin:Secret456\nsecond line secret\n"), 0o600))
	cfg.Influx.TokenFile = two
	_, _, err = influxToken(&cfg)
	require.ErrorContains(t, err, "holds more than one line")
	require.NotContains(t, err.Error(), "Secret456")
	require.ErrorContains(t, Check(&cfg), "influx.token_file: "+two+" holds more than one line")

	// Every secret file alike: a webhook's HMAC key, the MQTT password,
	// the HTTP token.
	cfg = config.Default()
	cfg.MQTT.Username, cfg.MQTT.PasswordFile = "fenceline", two
	cfg.Webhooks = []config.Webhook{{URL: "https://unit.example/hook", SecretFile: two}}
	cfg.HTTP.TokenFile = two
	err = Check(&cfg)
	for _, key := range []string{"mqtt.password_file", "webhooks[0].secret_file", "http.token_file"} {
		require.ErrorContains(t, err, key+": "+two+" holds more than one line")
	}
	require.NotContains(t, err.Error(), "Secret456")
}

// TestWebhookCAFile: an https webhook is verified against webhooks[].ca_file
// (here the test server's own certificate); without it the unknown CA is
// refused.
func TestWebhookCAFile(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(sink.HeaderAlertID)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "unit-ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	alert := &model.Alert{ID: "a1", Rule: "r", State: model.StateFiring, At: time.Now(), RaisedAt: time.Now()}

	for _, tc := range []struct {
		name string
		ca   string
		err  string
	}{
		{name: "verified with the unit's CA", ca: caFile},
		{name: "unknown CA refused", err: "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := webhookClient(0, config.Webhook{URL: srv.URL, CAFile: tc.ca})
			require.NoError(t, err)
			wh, err := sink.NewWebhook(srv.URL, []byte("secret"), 5*time.Second, client, 0)
			require.NoError(t, err)
			defer wh.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = wh.Deliver(ctx, alert)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "a1", <-got)
		})
	}
}

// recordSink records what it was given.
type recordSink struct {
	name string
	got  []model.Alert
}

func (s *recordSink) Name() string { return s.name }
func (s *recordSink) Deliver(_ context.Context, a *model.Alert) error {
	s.got = append(s.got, *a)
	return nil
}

// TestSinkViews: InfluxDB stores the alert hashed like the readings; MQTT
// and webhooks get what privacy.alert_subjects allows.
func TestSinkViews(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h, err := protect.NewHasher(key)
	require.NoError(t, err)
	const imsi = "428991234567890"
	for _, tc := range []struct {
		name       string
		subjects   string
		sentHashed bool
	}{
		{name: "units get the raw subject", subjects: protect.SubjectsRaw},
		{name: "units get the hash", subjects: protect.SubjectsHashed, sentHashed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prot, err := protect.New(protect.Options{Identifiers: true, AlertSubjects: tc.subjects}, key)
			require.NoError(t, err)
			sec := &security{prot: prot}
			influx, mqttSink, hook := &recordSink{name: "influx"}, &recordSink{name: "mqtt"}, &recordSink{name: "webhook-0"}
			sinks := sec.wrapSinks(influx, mqttSink, hook)
			a := &model.Alert{ID: "0123456789abcdef0123456789abcdef", Subject: model.Subject{Kind: "imsi", Value: imsi},
				Summary: "Phone IMSI " + imsi + " (Mongolia, MCC 428) on watchlist foreign-sim"}
			for i, s := range sinks {
				require.Equal(t, []string{"influx", "mqtt", "webhook-0"}[i], s.Name(), "names kept: pending deliveries match by name")
				require.NoError(t, s.Deliver(context.Background(), a))
			}
			require.Equal(t, h.Hash("imsi", imsi), influx.got[0].Subject.Value)
			require.NotContains(t, influx.got[0].Summary, imsi)
			for _, s := range []*recordSink{mqttSink, hook} {
				if tc.sentHashed {
					require.Equal(t, h.Hash("imsi", imsi), s.got[0].Subject.Value)
					require.NotContains(t, s.got[0].Summary, imsi)
				} else {
					require.Equal(t, imsi, s.got[0].Subject.Value)
				}
			}
			require.Equal(t, imsi, a.Subject.Value, "the shared alert is not modified")
		})
	}
}

// batchRecordSink is a recordSink that takes batches too.
type batchRecordSink struct {
	recordSink
	batches int
}

func (s *batchRecordSink) DeliverBatch(ctx context.Context, alerts []*model.Alert) (int, error) {
	s.batches++
	for _, a := range alerts {
		s.got = append(s.got, *a)
	}
	return len(alerts), nil
}

// A sink that takes batches (MQTT: a burst of alerts in one round trip)
// still does with privacy on, each alert in its view.
func TestSinkViewsKeepBatches(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	prot, err := protect.New(protect.Options{Identifiers: true, AlertSubjects: protect.SubjectsHashed}, key)
	require.NoError(t, err)
	h, err := protect.NewHasher(key)
	require.NoError(t, err)
	mqttSink := &batchRecordSink{recordSink: recordSink{name: "mqtt"}}
	sinks := (&security{prot: prot}).wrapSinks(&recordSink{name: "influx"}, mqttSink)
	_, ok := sinks[0].(outbox.BatchSink)
	require.False(t, ok, "a sink that does not batch does not start to")
	b, ok := sinks[1].(outbox.BatchSink)
	require.True(t, ok, "the MQTT sink lost its batches behind the privacy view")
	alerts := []*model.Alert{
		{ID: "a1", Subject: model.Subject{Kind: "imsi", Value: "428991234567890"}},
		{ID: "a2", Subject: model.Subject{Kind: "imsi", Value: "428991234567891"}},
	}
	n, err := b.DeliverBatch(context.Background(), alerts)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 1, mqttSink.batches)
	require.Equal(t, h.Hash("imsi", "428991234567891"), mqttSink.got[1].Subject.Value)
}

func TestProblemsForLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{name: "rules problems: where, and what unless it may quote an identifier",
			err: config.Problems{{File: "rules.yaml", Line: 14, Key: "watchlists.plates.entries[3]", Msg: `"蒙B7K3Q2X": longer than 16 characters`},
				{File: "rules.yaml", Key: "rules[0].zones[0]", Msg: "unknown zone"},
				{File: "rules.yaml", Line: 20, Key: "rules[2].when", Msg: `cannot compile expression: imsi == "460001234567890"`},
				{File: "lists/sims.txt", Line: 3, Key: "watchlists.sims.file", Msg: "entry not a number (digits only)"}},
			want: []string{"rules.yaml:14: watchlists.plates.entries[3]", "rules.yaml: rules[0].zones[0]: unknown zone",
				"rules.yaml:20: rules[2].when", "lists/sims.txt:3: watchlists.sims.file: entry not a number (digits only)"}},
		{name: "yaml's own problem: its place", err: config.Problems{{File: "rules.yaml", Line: 1, Msg: "invalid YAML: did not find expected node content"}},
			want: []string{"rules.yaml:1"}},
		{name: "yaml's decoding problem without a key: its place", err: config.Problems{{File: "rules.yaml", Line: 3, Msg: "cannot unmarshal !!str `4600012345` into int"}},
			want: []string{"rules.yaml:3"}},
		{name: "fenceline's problem without a key: whole", err: config.Problems{{File: "rules.yaml", Line: 7, Msg: "its aliases (*name) expand to more than 1000000 keys and values"}},
			want: []string{"rules.yaml:7: its aliases (*name) expand to more than 1000000 keys and values"}},
		{name: "an unknown key: its parent, the key may be an identifier", err: config.Problems{{File: "rules.yaml", Line: 9, Key: "rules[0].428990012345678", Msg: `unknown key (did you mean "zones"?)`}},
			want: []string{"rules.yaml:9: an unknown key in rules[0]"}},
		{name: "an unknown key of letters: a misspelt one, named", err: config.Problems{{File: "rules.yaml", Line: 9, Key: "rules[0].max_khm", Msg: `unknown key (did you mean "max_kmh"?)`}},
			want: []string{`rules.yaml:9: rules[0].max_khm: unknown key (did you mean "max_kmh"?)`}},
		{name: "an unknown key of other letters", err: config.Problems{{File: "rules.yaml", Line: 4, Key: "watchlists.plates.蒙B7K3Q2", Msg: "unknown key"}},
			want: []string{"rules.yaml:4: an unknown key in watchlists.plates"}},
		{name: "a watchlist named with digits or other letters: not named", err: config.Problems{
			{File: "rules.yaml", Line: 9, Key: "watchlists.428990012345678", Msg: "a watchlist needs kind"},
			{File: "rules.yaml", Line: 10, Key: "watchlists.蒙B7K3Q2.kind", Msg: `unknown list kind ""`},
			{File: "rules.yaml", Line: 11, Key: "watchlists.foreign-sim.file", Msg: "cannot read lists/x.txt"}},
			want: []string{"rules.yaml:9: watchlists.…", "rules.yaml:10: watchlists.….kind", "rules.yaml:11: watchlists.foreign-sim.file: cannot read lists/x.txt"}},
		{name: "other errors as they are", err: keyErr("ingest.signatures.key_file", "line 2: want device-id:hex-key"),
			want: []string{"ingest.signatures.key_file: line 2: want device-id:hex-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ProblemsForLog(tc.err))
		})
	}
}

// Any privacy hashing makes alert summaries quote rule conditions without
// their literals: a condition may name the identifiers the alerts hash.
func TestEngineOptionsHideConditionLiteralsWithPrivacy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		privacy config.Privacy
		hide    bool
	}{
		{"off", config.Privacy{AlertSubjects: protect.SubjectsRaw}, false},
		{"identifiers hashed", config.Privacy{HashIdentifiers: true, AlertSubjects: protect.SubjectsRaw}, true},
		{"plates hashed", config.Privacy{HashPlates: true, AlertSubjects: protect.SubjectsRaw}, true},
		{"alert subjects hashed", config.Privacy{AlertSubjects: protect.SubjectsHashed}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Privacy = tc.privacy
			require.Equal(t, tc.hide, engineOptions(&cfg).HideConditionLiterals)
		})
	}
}
