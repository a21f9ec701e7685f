package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		errs []string // substrings, each expected in the error
	}{
		{name: "good", file: "good.yaml"},
		{name: "empty file keeps defaults", file: "empty.yaml"},
		{name: "unknown key names path, line and suggestion", file: "unknown-key.yaml",
			errs: []string{"unknown-key.yaml:2: mqtt.brokr: unknown key (did you mean \"broker\"?)"}},
		{name: "bad values each named", file: "bad-values.yaml", errs: []string{
			"bad-values.yaml:2: mqtt.broker: scheme \"ftp\" not supported (tcp:// or mqtt://; ssl://, tls:// or mqtts:// for TLS; ws://, wss://)",
			"bad-values.yaml:3: mqtt.qos: must be 0 or 1",
			"mqtt.topics[0]: \"border/#/x\": '#' must be a whole, last level",
			"bad-values.yaml:6: influx.url: must be set",
			"bad-values.yaml:7: influx.batch_size: must be 1-100000",
			"bad-values.yaml:9: ingest.max_future: must not be negative",
			"bad-values.yaml:11: webhooks[0].url: must be an http(s) URL",
		}},
		{name: "an empty time zone", file: "empty-timezone.yaml", errs: []string{
			`empty-timezone.yaml:2: alerts.timezone: is empty (UTC to Go, not the default)`,
		}},
		{name: "the host's time zone", file: "local-timezone.yaml", errs: []string{
			`local-timezone.yaml:2: alerts.timezone: "Local" is the host's time zone`,
		}},
		{name: "max_future 0s is neither the default nor no future", file: "zero-max-future.yaml", errs: []string{
			"zero-max-future.yaml:2: ingest.max_future: must be positive (a unit's clock is never exactly fenceline's); leave it out for the default 5m",
		}},
		{name: "webhooks: a password in the URL, a receiver twice", file: "webhooks.yaml", errs: []string{
			"webhooks.yaml:3: webhooks[1].url: holds a password",
			"webhooks.yaml:4: webhooks[2].url: is also webhooks[0].url",
			"webhooks.yaml:5: webhooks[3].url: is also webhooks[0].url",
		}},
		{name: "bad duration", file: "bad-duration.yaml", errs: []string{"bad-duration.yaml:2: ingest.drain_timeout: invalid duration \"5 minutes\""}},
		{name: "invalid yaml", file: "bad-yaml.yaml", errs: []string{"bad-yaml.yaml:", "invalid YAML"}},
		{name: "a tab for an indent", file: "tab.yaml", errs: []string{"tab.yaml:2: invalid YAML: found character that cannot start any token (the line holds a tab: YAML indents with spaces)"}},
		{name: "wrong type", file: "wrong-type.yaml", errs: []string{`wrong-type.yaml:2: influx.batch_size: "lots" is not a whole number`}},
		{name: "a broker without a port, a port out of range", file: "no-port.yaml", errs: []string{
			"no-port.yaml:1: mqtt.broker: has no port (e.g. tcp://127.0.0.1:1883, or :8883 for TLS)",
			"no-port.yaml:2: influx.url: port 99999 is not one (1 to 65535)",
		}},
		{name: "an operator's slips, each with what to write", file: "operator-slips.yaml", errs: []string{
			"operator-slips.yaml:1: mqtt.broker: not a URL: it has no scheme (write it as scheme://host:port, e.g. http://127.0.0.1:8086 or tcp://127.0.0.1:1883)",
			"operator-slips.yaml:2: influx.url: not a URL: it has no scheme",
			`operator-slips.yaml:2: influx.gzip: "true" is not true or false, unquoted`,
			`operator-slips.yaml:3: ingest.max_inflight: "99999999999999999999" is not a whole number in range`,
		}},
		{name: "wrong types in flow style, each with its own key", file: "flow-types.yaml", errs: []string{
			`flow-types.yaml:2: influx.batch_size: "x" is not a whole number`,
			`flow-types.yaml:2: influx.concurrency: "y" is not a whole number`,
			`flow-types.yaml:3: mqtt.topics: must be a list (- item, or [item, …]), not the value "border/+/+/+/+"`,
			`flow-types.yaml:4: http: must be a mapping (key: value, or {key: value, …}), not a list`,
		}},
		{name: "missing file", file: "nope.yaml", errs: []string{"nope.yaml: cannot open"}},
		{name: "the rules file given for fenceline.yaml", file: "rules.yaml",
			errs: []string{`rules: unknown key (the rules live in their own file, named by "rules_file": is this the rules file?`}},
		{name: "duplicate key", file: "dup-key.yaml", errs: []string{`dup-key.yaml:3: rules_file: mapping key "rules_file" already defined at line 1`}},
		{name: "duplicate key on a line with another", file: "dup-key-flow.yaml", errs: []string{`dup-key-flow.yaml:3: mqtt: mapping key "mqtt" already defined at line 1`}},
		{name: "a second document is refused, not ignored", file: "two-docs.yaml",
			errs: []string{"two-docs.yaml:2: a second YAML document starts here (---)"}},
		{name: "document markers around one document", file: "trailing-doc-marker.yaml"},
		{name: "a fraction for a whole number is refused, not cut", file: "fraction.yaml",
			errs: []string{`fraction.yaml:2: influx.batch_size: "2.5" is not a whole number`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tc.file))
			if len(tc.errs) == 0 {
				require.NoError(t, err)
				require.NotNil(t, cfg)
				return
			}
			require.Error(t, err)
			var ps Problems
			require.True(t, errors.As(err, &ps), "error is Problems")
			for _, want := range tc.errs {
				require.Contains(t, err.Error(), want)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(ps), "one problem a line")
		})
	}
}

func TestLoadResolvesPathsAndDefaults(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "good.yaml"))
	require.NoError(t, err)
	dir, _ := filepath.Abs("testdata")
	require.Equal(t, filepath.Join("testdata", "rules.yaml"), cfg.RulesFile)
	abs, _ := filepath.Abs(cfg.Storage.Dir)
	require.Equal(t, filepath.Join(dir, "state"), abs)
	require.Equal(t, filepath.Join("testdata", "secret.txt"), cfg.Webhooks[0].SecretFile)
	require.Equal(t, DefaultWebhookTimeout, cfg.Webhooks[0].Timeout.D())
	require.Equal(t, "fenceline-test", cfg.MQTT.ClientID)
	require.Equal(t, 1, cfg.MQTT.QoS, "default kept")
	require.Equal(t, 5*time.Minute, cfg.Ingest.MaxFuture.D())

	ps := cfg.CheckFiles()
	require.Len(t, ps, 1, "secret.txt does not exist")
	require.Contains(t, ps.Error(), "webhooks[0].secret_file: cannot read")
}

// check reads the files as run does: a folder where a secret should be, or
// a secret file with nothing in it, is a problem before the daemon starts
// (an empty webhook secret would send alerts unsigned).
func TestCheckFilesReadsSecrets(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	folder := filepath.Join(dir, "folder")
	require.NoError(t, os.Mkdir(folder, 0o700))
	cfg := Default()
	cfg.Path = filepath.Join(dir, "c.yaml")
	cfg.MQTT.PasswordFile = folder
	cfg.Influx.TokenFile = empty
	cfg.Webhooks = []Webhook{{URL: "https://example.test/hook", SecretFile: empty}}
	ps := cfg.CheckFiles()
	require.Len(t, ps, 3, "%v", ps)
	require.Contains(t, ps.Error(), "mqtt.password_file: cannot read "+folder)
	require.Contains(t, ps.Error(), "influx.token_file: "+empty+" is empty")
	require.Contains(t, ps.Error(), "webhooks[0].secret_file: "+empty+" is empty")
	_, err := ReadSecret(empty)
	require.ErrorContains(t, err, "is empty")
	blank := filepath.Join(dir, "blank")
	require.NoError(t, os.WriteFile(blank, []byte("   \n"), 0o600))
	_, err = ReadSecret(blank)
	require.ErrorContains(t, err, "is empty", "blanks are no key")
}

// check refuses what run would: a storage.dir that is a file, or lies
// under one, and an http.listen port that is no port.
func TestCheckCatchesWhatRunRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for _, tc := range []struct {
		name, storage, listen, want string
	}{
		{name: "storage.dir is a file", storage: file, listen: "127.0.0.1:9464", want: "storage.dir: " + file + ": not a folder"},
		{name: "storage.dir under a file", storage: filepath.Join(file, "state"), listen: "127.0.0.1:9464", want: "storage.dir: " + filepath.Join(file, "state") + ": " + file + " is not a folder"},
		{name: "storage.dir to be made", storage: filepath.Join(dir, "new", "state"), listen: "127.0.0.1:9464"},
		{name: "port out of range", storage: dir, listen: "127.0.0.1:99999", want: `http.listen: port "99999" must be a number 0-65535`},
		{name: "port not a number", storage: dir, listen: "127.0.0.1:abc", want: `http.listen: port "abc" must be a number 0-65535`},
		{name: "any host, port given", storage: dir, listen: ":9464"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			cfg.Path = filepath.Join(dir, "c.yaml")
			cfg.RulesFile = filepath.Join(dir, "rules.yaml")
			cfg.Storage.Dir = tc.storage
			cfg.HTTP.Listen = tc.listen
			cfg.HTTP.TokenFile = filepath.Join(dir, "token") // for ":9464"
			ps := append(cfg.Validate(), cfg.CheckFiles()...)
			var got []string
			for _, p := range ps {
				if p.Key == "storage.dir" || p.Key == "http.listen" {
					got = append(got, p.Error())
				}
			}
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Contains(t, got[0], tc.want)
		})
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "ssl://broker.mdl:8883", "ssl://broker.mdl:8883"},
		{"user and password dropped", "tcp://fenceline:s3cret@broker:1883", "tcp://xxxxx@broker:1883"},
		{"a token as the user dropped", "ssl://T0KEN@127.0.0.1:8883", "ssl://xxxxx@127.0.0.1:8883"},
		{"query dropped", "http://127.0.0.1:8086?u=writer&p=s3cret", "http://127.0.0.1:8086"},
		{"fragment dropped", "ssl://127.0.0.1:8883/#T0KEN", "ssl://127.0.0.1:8883/"},
		{"unparsable", "tcp://%zz", "(unparsable URL)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, RedactURL(tc.in))
		})
	}
}

func TestDefaultIsValid(t *testing.T) {
	d := Default()
	require.Empty(t, d.Validate())
}

func TestLoadRules(t *testing.T) {
	r, err := LoadRules(filepath.Join("testdata", "rules.yaml"))
	require.NoError(t, err)
	require.Len(t, r.Devices, 1)
	require.Equal(t, "428*", r.Watchlists["foreign-sim"].Entries[0])
	require.NotNil(t, r.Zones[0].Circle)
	ps := r.Locate(Problems{{Key: "rules[0].severity", Msg: "x"}, {Key: "zones[0].circle.radius_m", Msg: "y"}})
	require.Equal(t, 8, ps[0].Line)
	require.Equal(t, 4, ps[1].Line, "falls back to the closest ancestor with a line")
	require.Equal(t, "rule foreign-sim-near-border", ps[0].Of, "the entry is named by its id")
	require.Equal(t, "zone mdl-port", ps[1].Of)
	require.Equal(t, r.Path+":8: rules[0].severity: x (rule foreign-sim-near-border)", ps[0].Error(), "the id ends the line")
	for key, of := range map[string]string{"rules[1].id": "", "devices[0]": "device F-AOL-01", "watchlists.foreign-sim": "", "rules[x]": ""} {
		require.Equal(t, of, r.Locate(Problems{{Key: key, Msg: "x"}})[0].Of, key)
	}

	_, err = LoadRules(filepath.Join("testdata", "rules-unknown-key.yaml"))
	require.ErrorContains(t, err, "rules-unknown-key.yaml:4: rules[0].sevrity: unknown key (did you mean \"severity\"?)")

	// A wrong type in flow style names its own key, not its line's last.
	_, err = LoadRules(filepath.Join("testdata", "rules-flow-types.yaml"))
	require.ErrorContains(t, err, `rules-flow-types.yaml:2: devices[0].lat: "north" is not a number`)
	require.ErrorContains(t, err, `rules-flow-types.yaml:3: devices[1].expect_every: must be a duration (Go style: 90s, 15m, 2h), not a list`)

	// Rules after a "---" would never load: refused, with the first
	// document's problems beside it.
	_, err = LoadRules(filepath.Join("testdata", "rules-two-docs.yaml"))
	require.ErrorContains(t, err, "rules-two-docs.yaml:5: a second YAML document starts here (---)")
}

// Every bad duration is reported with its own key, flow style included
// (several keys on one line), and the file still decodes, so that the
// compiler's problems are reported beside them.
func TestLoadRulesBadDurations(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`rules:
  - {id: r1, kind: count, source: phone, threshold: 3, window: 5 m, severity: low}
  - {id: r2, kind: silence, after: ten minutes, severity: low}
  - id: r3
    kind: dwell
    duration: 1 hour
    max_gap: 5m
`), 0o600))
	r, err := LoadRules(p)
	require.NotNil(t, r, "decoded, the bad durations as 0")
	var ps Problems
	require.True(t, errors.As(err, &ps))
	got := map[string]int{}
	for _, pr := range ps {
		got[pr.Key] = pr.Line
		require.Contains(t, pr.Msg, "invalid duration")
	}
	require.Equal(t, map[string]int{"rules[0].window": 2, "rules[1].after": 3, "rules[2].duration": 6}, got)
	require.Equal(t, "rule r1", ps[0].Of, "problems found while decoding name their entry too")
	require.Equal(t, 5*time.Minute, r.Rules[2].MaxGap.D(), "the good ones are read")
}

// A null where a number belongs is a problem, not a 0: a circle with
// `lat: ~` would be centred on the equator, and watched there.
func TestLoadRulesNullNumbers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`devices:
  - {id: F-1, kind: fence, site: mdl, lat: null, lon: 110.1}
zones:
  - {id: port, site: mdl, circle: {lat: ~, lon: 110.15, radius_m: 1500}}
  - id: port2
    site: mdl
    circle:
      lat: 42.62
      lon:
      radius_m: 1500
rules:
  - {id: r1, kind: count, source: phone, threshold: null, window: 5m, severity: low}
`), 0o600))
	_, err := LoadRules(p)
	var ps Problems
	require.True(t, errors.As(err, &ps), "%v", err)
	got := map[string]int{}
	for _, pr := range ps {
		got[pr.Key] = pr.Line
		require.Equal(t, "is null: give a number (a key left out takes its default, where it has one)", pr.Msg, pr.Key)
	}
	require.Equal(t, map[string]int{"devices[0].lat": 2, "zones[0].circle.lat": 4, "zones[1].circle.lon": 9, "rules[0].threshold": 12}, got)
}

// A list entry with nothing in it is what a file cut short after "- "
// looks like: a problem, not an entry yaml skips without a word.
func TestLoadRulesEmptyEntry(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, []byte("devices:\n  - {id: F-1, kind: fence, site: mdl}\nrules:\n  - {id: r1, kind: silence}\n  - \n"), 0o600))
	_, err := LoadRules(p)
	require.ErrorContains(t, err, "rules.yaml:5: rules[1]: empty entry")
}

// YAML merge keys share settings between entries ("<<: *night"): the
// merged keys are checked like the entry's own; the entry's own keys win,
// then the anchors in the order listed.
func TestLoadRulesMergeKeys(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		severity   string // of the last rule, when it loads
		problem    string // "": loads
	}{
		{name: "one anchor", yaml: `rules:
  - &night {id: r1, kind: presence, source: phone, severity: high, watchlist: w}
  - <<: *night
    id: r2
    severity: low
`, severity: "low"},
		{name: "a list of anchors", yaml: `rules:
  - &a {id: r1, kind: presence, source: phone, severity: high, watchlist: w}
  - &b {id: r0, severity: low}
  - <<: [*a, *b]
    id: r2
`, severity: "high"},
		{name: "an unknown key merged", yaml: `rules:
  - &bad {id: r1, kind: presence, source: phone, sevrity: high, watchlist: w}
  - <<: *bad
    id: r2
`, problem: `rules[1].sevrity: unknown key (did you mean "severity"?)`},
		{name: "a scalar merged", yaml: `rules:
  - <<: 3
    id: r2
`, problem: "rules[0]: a merge key (<<) takes a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rules.yaml")
			require.NoError(t, os.WriteFile(p, []byte("watchlists:\n  w: {kind: imsi, entries: [\"428*\"]}\n"+tc.yaml), 0o600))
			r, err := LoadRules(p)
			if tc.problem != "" {
				require.ErrorContains(t, err, tc.problem)
				return
			}
			require.NoError(t, err)
			last := r.Rules[len(r.Rules)-1]
			require.Equal(t, "r2", last.ID)
			require.Equal(t, "presence", last.Kind)
			require.Equal(t, "w", last.Watchlist)
			require.Equal(t, tc.severity, last.Severity)
		})
	}
}

func TestProblemsExcept(t *testing.T) {
	read := Problems{{Key: "rules[0].window", Msg: "invalid duration"}}
	later := Problems{{Key: "rules[0].window", Msg: "must be positive"}, {Key: "rules[1].after", Msg: "must be positive"}, {Msg: "no key"}}
	require.Equal(t, Problems{later[1], later[2]}, later.Except(read))
	require.Equal(t, later, later.Except(nil))
}

func TestReadSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	require.NoError(t, os.WriteFile(p, []byte("user:pa ss\n"), 0o600))
	s, err := ReadSecret(p)
	require.NoError(t, err)
	require.Equal(t, "user:pa ss", s)
	_, err = ReadSecret(p + "x")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "pa ss")
}

func FuzzLoad(f *testing.F) {
	entries, _ := os.ReadDir("testdata")
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %v", err)
			}
		}
		_, _ = LoadRules(p)
	})
}

func TestCanonicalURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"HTTPS://Unit-A.example:443/Hook?x=1", "https://unit-a.example/Hook?x=1"},
		{"http://LOCALHOST:80/a", "http://localhost/a"},
		{"http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a"},
		{"https://[::1]:443/a", "https://[::1]/a"},
		{"https://[::1]:8443/a", "https://[::1]:8443/a"},
		{"http://127.0.0.1:029501/%61#x", "http://127.0.0.1:29501/a"},
		{"https://[0:0::1]/a", "https://[::1]/a"},
		{"https://unit.example./a", "https://unit.example/a"},
	} {
		require.Equal(t, tc.want, CanonicalURL(tc.in), tc.in)
	}
}

// A topic filter that can never match a device topic
// (border/{site}/{kind}/{device}/{stream}) is refused by check, with its
// key and index: the broker would take it, and the daemon would report
// ready to a subscription that brings nothing.
func TestTopicFilters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		topics []string
		group  string
		want   string // "": valid
	}{
		{name: "the default", topics: []string{"border/+/+/+/+"}},
		{name: "a site", topics: []string{"border/mdl/+/+/+"}},
		{name: "a kind's status", topics: []string{"border/+/fence/+/status"}},
		{name: "one device", topics: []string{"border/mdl/fence/F-AOL-01/detections"}},
		{name: "hash after four levels", topics: []string{"border/mdl/fence/F-AOL-01/#"}},
		{name: "hash after five levels matches its parent", topics: []string{"border/+/+/+/+/#"}},
		{name: "in a share group", topics: []string{"border/+/+/+/+"}, group: "g2"},
		{name: "shared filter", topics: []string{"border/+/+/+/+", "$share/x/border/+/+/+/+"}, group: "g2",
			want: `mqtt.topics[1]: "$share/x/border/+/+/+/+": a shared subscription is made with mqtt.share_group`},
		{name: "shared filter without a group", topics: []string{"$share/x/border/+/+/+/+"},
			want: `mqtt.topics[0]: "$share/x/border/+/+/+/+": a shared subscription is made with mqtt.share_group`},
		{name: "the broker's own topics", topics: []string{"$SYS/+/+/+/+"},
			want: `mqtt.topics[0]: "$SYS/+/+/+/+": topics starting with '$' are the broker's own`},
		{name: "six levels", topics: []string{"border/+/+/+/+/extra"},
			want: `mqtt.topics[0]: "border/+/+/+/+/extra" has 6 levels and can never match a device topic, which has exactly 5 (border/{site}/{kind}/{device}/{stream})`},
		{name: "four levels", topics: []string{"border/mdl/+/+"},
			want: `mqtt.topics[0]: "border/mdl/+/+" has 4 levels and can never match a device topic`},
		{name: "hash after six levels", topics: []string{"border/+/+/+/+/x/#"},
			want: `mqtt.topics[0]: "border/+/+/+/+/x/#" has 7 levels and can never match a device topic`},
		{name: "hash not last", topics: []string{"border/#/+/+/+"},
			want: `mqtt.topics[0]: "border/#/+/+/+": '#' must be a whole, last level`},
		{name: "plus in a level", topics: []string{"border/mdl+/+/+/+"},
			want: `mqtt.topics[0]: "border/mdl+/+/+/+": '+' must be a whole level`},
		{name: "hash in a level", topics: []string{"border/mdl/+/+/x#"},
			want: `mqtt.topics[0]: "border/mdl/+/+/x#": '#' must be a whole, last level`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			cfg.MQTT.Topics, cfg.MQTT.ShareGroup = tc.topics, tc.group
			var got []string
			for _, p := range cfg.Validate() {
				got = append(got, p.Error())
			}
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "one problem for the filter: %v", got)
			require.Contains(t, got[0], tc.want)
		})
	}
}

// A valid config that gives up something an operator counts on is
// warned about: QoS 0 loses what is published while fenceline is away.
func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{name: "qos 1", yaml: "mqtt: {qos: 1}\n"},
		{name: "default qos", yaml: "rules_file: rules.yaml\n"},
		{name: "qos 0", yaml: "rules_file: rules.yaml\nmqtt:\n  qos: 0\n",
			want: []string{"c.yaml:3: mqtt.qos: is 0: the broker queues nothing for fenceline while it is away, so messages published while it is down, restarting or reconnecting are lost"}},
		{name: "queries no client sends", yaml: "influx:\n  url: http://db:8086/?precision=ns\nmqtt:\n  broker: tcp://b:1883?x=1\n",
			want: []string{"c.yaml:4: mqtt.broker: has a query (?…), which is not used", "c.yaml:2: influx.url: has a query (?…), which is not used"}},
		{name: "webhooks: signed https, and loopback http", yaml: "webhooks:\n  - {url: \"https://station.example/a\", secret_file: /etc/fenceline/hook}\n  - {url: \"http://127.0.0.1:9000/a\", secret_file: /etc/fenceline/hook}\n"},
		{name: "webhooks: unsigned, plain http", yaml: "webhooks:\n  - {url: \"https://station.example/a\"}\n  - {url: \"http://station.example/a\", secret_file: /etc/fenceline/hook}\n",
			want: []string{"c.yaml:2: webhooks[0].secret_file: is empty: this webhook's alerts are not signed", "c.yaml:3: webhooks[1].url: is plain http: alerts, with their identifiers, travel unencrypted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o600))
			cfg, err := Load(p)
			require.NoError(t, err, "a warning is no error")
			ws := cfg.Warnings()
			require.Len(t, ws, len(tc.want))
			for i, w := range tc.want {
				require.Contains(t, ws[i].Error(), w)
			}
		})
	}
}

// A problem is one line, whatever the file's keys hold: a key with line
// breaks in it cannot forge problem lines of its own.
func TestUnknownKeyInCapitalsIsSuggested(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("MQTT: {broker: \"tcp://127.0.0.1:1883\"}\nInflux_URL: x\n"), 0o600))
	_, err := Load(p)
	require.ErrorContains(t, err, `c.yaml:1: MQTT: unknown key (did you mean "mqtt"?)`)
}

func TestProblemIsOneLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("mqtt: {}\n\"bad\\nkey\\nbad.yaml:99: fake: injected\": 1\n"), 0o600))
	_, err := Load(p)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "\n")
	require.Contains(t, err.Error(), `c.yaml:2: bad\nkey\nbad.yaml:99: fake: injected: unknown key`)
}

// A file with a mistake on every line is told by its first problems and a
// count of the rest: 500,000 of them made a reload answer of 156 MB.
func TestProblemsAreCapped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, []byte("devices: ["+strings.TrimSuffix(strings.Repeat("0,", 5000), ",")+"]\n"), 0o600))
	_, err := LoadRules(p)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, maxProblems+1)
	require.Contains(t, lines[0], "devices[0]: must be a mapping")
	require.Contains(t, lines[maxProblems], "rules.yaml: and 4800 more problems, not told: correct these and check again")
	var ps Problems
	require.ErrorAs(t, err, &ps)
	require.Len(t, ps, maxProblems+1)
}

// Text that goes into alerts is one line of plain text: no line break or
// control character, and no invisible formatting character that reorders
// or hides what a duty officer reads; the joiners some scripts need stay.
func TestLineProblem(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"plain", "Aolunsumu ruins, east gate", ""},
		{"Chinese and Mongolian", "敖伦苏木古城 ᠣᠯᠠᠨ ᠰᠦᠮᠡ", ""},
		{"a zero-width joiner", "a\u200db", ""},
		{"a line break", "east\ngate", "it holds a line break at byte 4"},
		{"an escape", "gate\x1b[31m", "control character U+001B at byte 4"},
		{"a right-to-left override", "gate\u202eetag", "invisible formatting character U+202E at byte 4"},
		{"a bidi isolate", "\u2066gate\u2069", "invisible formatting character U+2066 at byte 0"},
		{"a zero-width space", "ga\u200bte", "invisible formatting character U+200B at byte 2"},
		{"a byte-order mark", "\ufeffgate", "invisible formatting character U+FEFF at byte 0"},
		{"a tag character", "gate\U000E0041", "invisible formatting character U+E0041 at byte 4"},
		{"a soft hyphen", "ga\u00adte", "invisible formatting character U+00AD at byte 2"},
		{"a Hangul filler", "\u3164", "invisible formatting character U+3164 at byte 0"},
		{"a combining grapheme joiner", "ga\u034fte", "invisible formatting character U+034F at byte 2"},
		{"a Mongolian vowel separator", "ᠨᠠᠷᠠ\u180eᠠ", ""},
		{"a variation selector", "station-mdl\ufe0f", "invisible formatting character U+FE0F at byte 11"},
		{"a blank braille pattern", "\u2800", "invisible formatting character U+2800 at byte 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LineProblem(tc.text)
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.want)
		})
	}
}

// A problem is printed with the invisible characters of its key and message
// escaped: a right-to-left override in a watchlist's name would show the
// problem's line backwards on the operator's terminal.
func TestProblemEscapesInvisibleCharacters(t *testing.T) {
	p := Problem{File: "rules.yaml", Key: "watchlists.poi\u202ex\ufe0f\U000E0100", Msg: "a name"}
	require.Equal(t, `rules.yaml: watchlists.poi\u202ex\ufe0f\U000e0100: a name`, p.Error())
}
