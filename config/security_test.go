package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecurityValidation covers the keys that lock the daemon down: each
// config that cannot be secure is refused with the key named.
func TestSecurityValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		errs []string // substrings, each expected; none: the config loads
	}{
		{name: "tls broker with CA and client certificate", yaml: `
mqtt: {broker: "ssl://broker:8883", tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}}`},
		{name: "tls broker without CA uses the system roots", yaml: `
mqtt: {broker: "ssl://broker:8883"}`},
		{name: "CA file on a plaintext broker", yaml: `
mqtt: {broker: "tcp://broker:1883", tls: {ca_file: ca.pem}}`,
			errs: []string{"c.yaml:1: mqtt.tls.ca_file: is set but mqtt.broker is tcp://"}},
		{name: "client certificate on a plaintext broker names both keys", yaml: `
mqtt: {broker: "ws://broker:80", tls: {cert_file: c.pem, key_file: k.pem}}`,
			errs: []string{"mqtt.tls.cert_file: is set but mqtt.broker is ws://", "mqtt.tls.key_file: is set"}},
		{name: "certificate without key", yaml: `
mqtt: {broker: "ssl://broker:8883", tls: {cert_file: c.pem}}`,
			errs: []string{"mqtt.tls.cert_file: cert_file and key_file go together"}},
		{name: "subscribed to everything", yaml: `
mqtt: {topics: ["#"]}`,
			errs: []string{`mqtt.topics[0]: "#" matches fenceline's own alert topics (border/{site}/alerts/{rule})`}},
		{name: "subscribed to everything under border", yaml: `
mqtt: {topics: ["border/+/+/+/+", "border/#"]}`,
			errs: []string{`mqtt.topics[1]: "border/#" matches fenceline's own alert topics`}},
		{name: "an alert prefix of two levels meets the default subscription", yaml: `
alerts: {topic_prefix: border/x}`,
			errs: []string{`mqtt.topics[0]: "border/+/+/+/+" matches fenceline's own alert topics (border/x/{site}/alerts/{rule})`}},
		{name: "an alert prefix of the broker's", yaml: `
alerts: {topic_prefix: "$SYS"}`,
			errs: []string{"alerts.topic_prefix: must not start with '$'"}},
		{name: "an empty alert prefix", yaml: `
alerts: {topic_prefix: ""}`,
			errs: []string{"alerts.topic_prefix: must not be empty"}},
		{name: "alerts elsewhere", yaml: `
mqtt: {topics: ["#"]}
alerts: {topic_prefix: alerts}`,
			errs: []string{`"#" matches`}},
		{name: "a device subtree", yaml: `
mqtt: {topics: ["border/mdl/#"]}`,
			errs: []string{`"border/mdl/#" matches`}},
		{name: "a site's devices only", yaml: `
mqtt: {topics: ["border/mdl/+/+/+"]}`},
		{name: "a password inline", yaml: `
mqtt: {username: fenceline, password: s3cret}`,
			errs: []string{`mqtt.password: unknown key (secrets are never inline: put it in a file named by "password_file")`}},
		{name: "password in the broker URL", yaml: `
mqtt: {broker: "tcp://fenceline:s3cret@broker:1883"}`,
			errs: []string{"mqtt.broker: holds a password: give mqtt.username, and the password in mqtt.password_file"}},
		{name: "user without password in the broker URL", yaml: `
mqtt: {broker: "tcp://fenceline@broker:1883"}`},
		{name: "password in the InfluxDB URL", yaml: `
influx: {url: "http://writer:s3cret@db:8086"}`,
			errs: []string{"influx.url: holds a password: put user:password in influx.token_file"}},
		{name: "password in the InfluxDB URL's query", yaml: `
influx: {url: "https://db:8086/?u=writer&p=s3cret"}`,
			errs: []string{"influx.url: has a password or token in its query, which is not sent: put user:password in influx.token_file"}},
		{name: "password in the broker URL's query", yaml: `
mqtt: {broker: "tcp://broker:1883?password=s3cret"}`,
			errs: []string{"mqtt.broker: has a password or token in its query, which the MQTT client does not use"}},
		{name: "a query without secrets is only a warning", yaml: `
influx: {url: "http://db:8086/?precision=ns"}`},
		{name: "influx tls on http", yaml: `
influx: {url: "http://db:8086", tls: {ca_file: ca.pem}}`,
			errs: []string{"influx.tls.ca_file: is set but influx.url is http://"}},
		{name: "loopback listen needs no token", yaml: `
http: {listen: "localhost:9464"}`},
		{name: "ipv6 loopback listen needs no token", yaml: `
http: {listen: "[::1]:9464"}`},
		{name: "all interfaces without token", yaml: `
http: {listen: "0.0.0.0:9464"}`,
			errs: []string{"http.listen: \"0.0.0.0:9464\" is not a loopback address: set http.token_file"}},
		{name: "empty host without token", yaml: `
http: {listen: ":9464"}`,
			errs: []string{"http.listen: \":9464\" is not a loopback address"}},
		{name: "host name without token", yaml: `
http: {listen: "fenceline.mdl.local:9464"}`,
			errs: []string{"is not a loopback address"}},
		{name: "all interfaces with token and TLS", yaml: `
http: {listen: "0.0.0.0:9464", token_file: token, tls: {cert_file: c.pem, key_file: k.pem}}`},
		{name: "http tls key without certificate", yaml: `
http: {listen: "127.0.0.1:9464", tls: {key_file: k.pem}}`,
			errs: []string{"http.tls.cert_file: cert_file and key_file go together"}},
		{name: "webhook CA on http", yaml: `
webhooks: [{url: "http://unit.local/alerts", ca_file: ca.pem}]`,
			errs: []string{"webhooks[0].ca_file: is set but webhooks[0].url is not https://"}},
		{name: "webhook CA on https", yaml: `
webhooks: [{url: "https://unit.local/alerts", ca_file: ca.pem}]`},
		{name: "signatures required without keys", yaml: `
ingest: {signatures: {required: true}}`,
			errs: []string{"ingest.signatures.key_file: must be set when ingest.signatures.required is true"}},
		{name: "signatures with keys", yaml: `
ingest: {signatures: {required: true, key_file: devices.keys}}`},
		{name: "hashing without key", yaml: `
privacy: {hash_identifiers: true, hash_plates: true, alert_subjects: hashed}`,
			errs: []string{"privacy.hash_identifiers: needs privacy.key_file", "privacy.hash_plates: needs privacy.key_file",
				"privacy.alert_subjects: needs privacy.key_file"}},
		{name: "unknown alert subject mode", yaml: `
privacy: {alert_subjects: masked, key_file: k}`,
			errs: []string{"privacy.alert_subjects: must be raw or hashed (got \"masked\")"}},
		{name: "hashing with key", yaml: `
privacy: {hash_identifiers: true, key_file: privacy.key}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(strings.TrimPrefix(tc.yaml, "\n")+"\n"), 0o600))
			cfg, err := Load(p)
			if len(tc.errs) == 0 {
				require.NoError(t, err)
				require.NotNil(t, cfg)
				return
			}
			require.Error(t, err)
			for _, want := range tc.errs {
				require.Contains(t, err.Error(), want)
			}
			require.NotContains(t, err.Error(), "s3cret", "a problem never quotes a secret")
		})
	}
}

func TestSecurityPathsResolved(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`http: {listen: "0.0.0.0:1", token_file: tok, tls: {cert_file: c, key_file: k}}
ingest: {signatures: {key_file: sig}}
privacy: {key_file: priv}
webhooks: [{url: "https://u/", ca_file: ca}]
`), 0o600))
	cfg, err := Load(p)
	require.NoError(t, err)
	for got, want := range map[string]string{
		cfg.HTTP.TokenFile: "tok", cfg.HTTP.TLS.CertFile: "c", cfg.HTTP.TLS.KeyFile: "k",
		cfg.Ingest.Signatures.KeyFile: "sig", cfg.Privacy.KeyFile: "priv", cfg.Webhooks[0].CAFile: "ca",
	} {
		require.Equal(t, filepath.Join(dir, want), got)
	}
	ps := cfg.CheckFiles()
	require.Len(t, ps, 6, "none of the files exists: %v", ps)
	require.Contains(t, ps.Error(), "c.yaml:1: http.token_file: cannot read")
	require.Contains(t, ps.Error(), "c.yaml:4: webhooks[0].ca_file: cannot read")
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "localhost": true, "LOCALHOST": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.5": false, "example.org": false,
	} {
		require.Equal(t, want, IsLoopbackHost(host), host)
	}
}

// A URL that url.Parse refuses is refused without a word of its user
// info: url.Parse's own error quotes the whole URL (or the bad escape of
// a password), and check prints problems, run logs them. So is a URL given
// where a value of another shape belongs: the value is quoted, its user
// info is not.
func TestProblemsKeepURLSecrets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		yaml   string
		want   string   // the problem, key named
		secret []string // none of these may appear
	}{
		{name: "broker password with a space", yaml: `mqtt: {broker: "tcp://fenceline:pa ss@127.0.0.1:22001"}`,
			want:   "mqtt.broker: not a URL: the user:password part before '@' is not valid",
			secret: []string{"pa ss", "fenceline:", "pa%20ss"}},
		{name: "broker password with a bad escape", yaml: `mqtt: {broker: "tcp://fenceline:50%off@127.0.0.1:22001"}`,
			want:   "mqtt.broker: not a URL: the user:password part before '@' is not valid (a space, '%' and other special characters must be %XX-escaped); give mqtt.username, and the password in mqtt.password_file",
			secret: []string{"50%off", "%of", "fenceline:"}},
		{name: "broker password with a slash", yaml: `mqtt: {broker: "tcp://fenceline:pa/ss@127.0.0.1:22001"}`,
			want:   "mqtt.broker: not a URL: the user:password part before '@' is not valid",
			secret: []string{"pa/ss", `":pa"`, "fenceline:"}},
		{name: "broker with a bad port after user info", yaml: `mqtt: {broker: "tcp://fenceline:s3cret@127.0.0.1:x"}`,
			want:   `mqtt.broker: not a URL (invalid port ":x" after host; the part before '@' not shown)`,
			secret: []string{"s3cret", "fenceline:"}},
		{name: "broker without user info says why", yaml: `mqtt: {broker: "tcp://127.0.0.1:x"}`,
			want: `mqtt.broker: not a URL (invalid port ":x" after host)`},
		{name: "influx password with a space", yaml: `influx: {url: "http://admin:pa ss@127.0.0.1:22010"}`,
			want:   "influx.url: not a URL: the user:password part before '@' is not valid (a space, '%' and other special characters must be %XX-escaped); put user:password in influx.token_file",
			secret: []string{"pa ss", "admin:"}},
		{name: "influx password with a bad escape", yaml: `influx: {url: "http://admin:50%off@127.0.0.1:22010"}`,
			want:   "influx.url: not a URL: the user:password part before '@' is not valid",
			secret: []string{"50%off", "%of", "admin:"}},
		{name: "webhook password with a space", yaml: `webhooks: [{url: "https://unit:pa ss@unit.local/alerts"}]`,
			want:   "webhooks[0].url: must be an http(s) URL",
			secret: []string{"pa ss", "unit:"}},
		{name: "a webhook URL for the list", yaml: `webhooks: "https://u:pa ss@unit.local/a"`,
			want:   `webhooks: must be a list (- item, or [item, …]), not the value "https://…@unit.local/a"`,
			secret: []string{"pa ss", "s3cret"}},
		{name: "a broker URL for a number", yaml: `mqtt: {qos: "tcp://u:s3cret@h:1"}`,
			want:   `"tcp://…@h:1" is not a whole number`,
			secret: []string{"pa ss", "s3cret"}},
		{name: "a plain value of the wrong shape is quoted whole", yaml: `mqtt: {topics: "border/+/+/+/+"}`,
			want: `not the value "border/+/+/+/+"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml+"\n"), 0o600))
			_, err := Load(p)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			for _, s := range tc.secret {
				require.NotContains(t, err.Error(), s)
			}
		})
	}
}

// A secret written where its file's path belongs is not printed back: the
// problem names the key and withholds the "path", at check and at run.
func TestSecretInPlaceOfItsFileIsNotPrinted(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, key string
	}{
		{"influx token", `influx: {token_file: 'writer:S3cr3t-pw!'}`, "influx.token_file"},
		{"mqtt password", `mqtt: {username: u, password_file: 'S3cr3t-pw!'}`, "mqtt.password_file"},
		{"webhook secret", `webhooks: [{url: "http://127.0.0.1:9/a", secret_file: 'S3cr3t-pw!'}]`, "webhooks[0].secret_file"},
		{"device keys", `ingest: {signatures: {key_file: 'CP-07:S3cr3t2cb3f7e2a91d8a8f289c8f0ac62a'}}`, "ingest.signatures.key_file"},
		{"hash key", `privacy: {key_file: 'S3cr3tHashKey0123456789'}`, "privacy.key_file"},
		{"TLS key", `mqtt: {broker: "ssl://127.0.0.1:1", tls: {cert_file: c.yaml, key_file: 'S3cr3tKey'}}`, "mqtt.tls.key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml+"\n"), 0o600))
			c, err := Load(p)
			require.NoError(t, err)
			ps := c.CheckFiles()
			require.Len(t, ps, 1)
			assert.Contains(t, ps[0].Error(), tc.key+": cannot read (its name not shown")
			assert.Contains(t, ps[0].Error(), "no such file or directory")
			assert.NotContains(t, ps[0].Error(), "S3cr3t")
		})
	}
	_, err := ReadSecret(filepath.Join(dir, "writer:S3cr3t-pw!"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "S3cr3t", "start-up's error too")

	// A file that is there is named: it is no secret, and the operator
	// needs to know which.
	f := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(f, nil, 0o600))
	_, err = ReadSecret(f)
	assert.ErrorContains(t, err, f)
}

// A secret's file named where the daemon's file or the rules file belongs
// is refused without its text: a file that is one value, a mapping of no
// known key, an alias of no anchor are not printed.
func TestSecretFileInPlaceOfAConfigIsNotPrinted(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content string }{
		{"an InfluxDB token file", "admin:S3cr3t-pw!\n"},
		{"a PEM key", "-----BEGIN PRIVATE KEY-----\nMIGHAgEAS3cr3tMBMGByqGSM49\n-----END PRIVATE KEY-----\n"},
		{"an HMAC secret", "S3cr3t-0123456789abcdef\n"},
		{"a password ending in a colon", "S3cr3t-pw:\n"},
		{"a password starting with a question mark", "? S3cr3t-pw\n"},
		{"a password starting with an asterisk", "*S3cr3t-pw\n"},
		{"a merge of a word", "<<: S3cr3t-pw\n"},
		{"a password's line twice", "S3cr3t-pw:\nS3cr3t-pw:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := filepath.Join(dir, "secret")
			require.NoError(t, os.WriteFile(secret, []byte(tc.content), 0o600))
			_, err := LoadRules(secret)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "S3cr3t")
			_, err = Load(secret)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "S3cr3t")
		})
	}
}
