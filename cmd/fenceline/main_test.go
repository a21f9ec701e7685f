package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string
		problems []string // each expected on a line of its own in stderr
		absent   []string // on no line of stderr
	}{
		{name: "example config is valid", args: []string{"check", "--config", "../../config/examples/fenceline.yaml"}, code: 0, stdout: "ok"},
		{name: "every problem on its own line", args: []string{"check", "--config", "testdata/bad.yaml"}, code: 1, problems: []string{
			"influx.token_file: cannot read (its name not shown: no such file",
			"bad-rules.yaml:4: rules[0].zones[0]:",
			"bad-rules.yaml:5: rules[1].when:",
			"bad-rules.yaml:5: rules[1].severity:",
		}},
		{name: "every bad duration with its key, and the rules file too", args: []string{"check", "--config", "testdata/bad-durations.yaml"}, code: 1, problems: []string{
			"bad-durations.yaml:3: mqtt.keep_alive: invalid duration \"30 seconds\"",
			"bad-durations.yaml:4: mqtt.connect_timeout: invalid duration",
			"bad-durations.yaml:5: influx.timeout: invalid duration",
			// Flow style puts several keys on a line: each names its own.
			"flow-rules.yaml:3: rules[0].window: invalid duration \"5 m\"",
			"flow-rules.yaml:4: rules[1].after: invalid duration",
			"flow-rules.yaml:5: rules[2].severity: unknown severity",
		}, absent: []string{"must be", "rules[0].severity", "rules[0].threshold"}},
		{name: "a problem in a value does not hide one start-up would find", args: []string{"check", "--config", "testdata/password-and-token.yaml"}, code: 1, problems: []string{
			"password-and-token.yaml:3: mqtt.broker: holds a password",
			"password-and-token.yaml:4: http.token_file: the token has 5 characters",
			"bad-rules.yaml:4: rules[0].zones[0]:",
		}, absent: []string{"BrokerPass55"}},
		{name: "missing rules file names its key", args: []string{"check", "--config", "testdata/missing-rules.yaml"}, code: 1, problems: []string{
			"missing-rules.yaml:2: rules_file: ", "sub/nope.yaml: cannot open: no such file or directory",
		}},
		{name: "a rules file without devices is refused", args: []string{"check", "--config", "testdata/empty.yaml"}, code: 1, problems: []string{
			"empty-rules.yaml: devices: no device registered",
		}},
		{name: "a value of the wrong shape is one problem, not two", args: []string{"check", "--config", "testdata/lon-list.yaml"}, code: 1, problems: []string{
			"lon-list-rules.yaml:2: devices[0].lon: must be a single value, not a list",
		}, absent: []string{"go together"}},
		{name: "a valid choice with a cost is a warning, not a problem", args: []string{"check", "--config", "testdata/qos0.yaml"}, code: 0, stdout: "ok",
			problems: []string{"warning: testdata/qos0.yaml:1: mqtt.qos: is 0: the broker queues nothing for fenceline while it is away"}},
		{name: "a signature key for no registered device is a warning", args: []string{"check", "--config", "testdata/stray-key.yaml"}, code: 0, stdout: "ok",
			problems: []string{"warning: testdata/stray-keys.txt: ingest.signatures.key_file: a key for F-AOL-0l, which is not a registered device"}},
		{name: "a checkpoint or fence unit without a position is a warning", args: []string{"check", "--config", "testdata/unplaced.yaml"}, code: 0, stdout: "ok",
			problems: []string{
				"warning: testdata/unplaced-rules.yaml:2: devices[0]: checkpoint CP-01 has no lat and lon: its passes are rejected (no_position) unless each message carries its loc",
				"warning: testdata/unplaced-rules.yaml:3: devices[1]: fence F-01 has no lat and lon: its detections are rejected",
			}, absent: []string{"F-02", "P-07"}},
		{name: "a key given twice does not hide the file's other problems", args: []string{"check", "--config", "testdata/dup.yaml"}, code: 1, problems: []string{
			`dup-rules.yaml:2: devices[0].kind: mapping key "kind" already defined at line 2`,
			"dup-rules.yaml:5: rules[0].window:",
			"dup-rules.yaml:5: rules[0].threshold:",
		}},
		{name: "a certificate without its key is one problem", args: []string{"check", "--config", "testdata/cert-alone.yaml"}, code: 1, problems: []string{
			"cert-alone.yaml:1: http.tls.cert_file: cert_file and key_file go together",
		}, absent: []string{"key_file: :", "cannot open"}},
		{name: "missing config", args: []string{"check", "--config", "testdata/nope.yaml"}, code: 1, problems: []string{"testdata/nope.yaml: cannot open"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, problems: []string{`unknown command "frobnicate"`}},
		{name: "no command", args: nil, code: 2, problems: []string{"usage: fenceline"}},
		{name: "bad flag", args: []string{"check", "--nope"}, code: 2, problems: []string{"flag provided but not defined"}},
		{name: "negative since", args: []string{"deadletters", "--since", "-1h"}, code: 2, problems: []string{"--since and --limit must not be negative"}},
		{name: "negative limit", args: []string{"deadletters", "--limit", "-1"}, code: 2, problems: []string{"--since and --limit must not be negative"}},
		{name: "unknown reason is a bad flag", args: []string{"deadletters", "--config", "testdata/nope.yaml", "--reason", "bad_imis"}, code: 2,
			problems: []string{`unknown --reason "bad_imis"; the reasons are`}, absent: []string{"cannot open"}},
		{name: "a problem of a privacy key is told once", args: []string{"check", "--config", "testdata/privacy-masked.yaml"}, code: 1,
			problems: []string{`privacy.alert_subjects: must be raw or hashed (got "masked")`}, absent: []string{"want raw or hashed"}},
		{name: "version", args: []string{"version"}, code: 0, stdout: "fenceline"},
		{name: "version takes no flags", args: []string{"version", "--json"}, code: 2, problems: []string{`fenceline version: takes no flags or arguments (got "--json")`}},
		{name: "a config path without --config is an error, not ./fenceline.yaml", args: []string{"check", "testdata/bad.yaml"}, code: 2,
			problems: []string{`fenceline check: unexpected argument "testdata/bad.yaml": the configuration is given with --config FILE`}},
		{name: "an extra argument is an error", args: []string{"check", "--config", "../../config/examples/fenceline.yaml", "extra"}, code: 2,
			problems: []string{`unexpected argument "extra"`}},
		{name: "dead-letter flags belong to deadletters", args: []string{"check", "--since", "1h"}, code: 2, problems: []string{"flag provided but not defined: -since"}},
		{name: "help of a command", args: []string{"run", "-h"}, code: 0, problems: []string{"-config"}, absent: []string{"-since"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tc.stdout)
			lines := strings.Split(stderr.String(), "\n")
			for _, p := range tc.problems {
				found := false
				for _, l := range lines {
					if strings.Contains(l, p) {
						found = true
					}
				}
				require.True(t, found, "no line with %q in:\n%s", p, stderr.String())
			}
			for _, a := range tc.absent {
				require.NotContains(t, stderr.String(), a)
			}
		})
	}
}

// With --log-format json, a configuration that run refuses is one JSON
// record, its problems one a line, as every other line the daemon writes.
func TestRunRefusedConfigLogsJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"run", "--config", "testdata/bad-durations.yaml", "--log-format", "json"}, &stdout, &stderr)
	require.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.Len(t, lines, 1, stderr.String())
	var rec struct {
		Level    string   `json:"level"`
		Msg      string   `json:"msg"`
		Problems []string `json:"problems"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec), lines[0])
	require.Equal(t, "ERROR", rec.Level)
	require.Equal(t, "fenceline stopped: configuration refused", rec.Msg)
	require.Contains(t, rec.Problems, `testdata/bad-durations.yaml:3: mqtt.keep_alive: invalid duration "30 seconds" (use Go style: 90s, 15m, 2h)`)
}

// A SIGHUP that comes while `run` reads its configuration (systemd's
// reload right after a start) does not end the process: without a handler
// yet, its default would, and this test's process with it.
func TestRunCatchesSIGHUPFromTheStart(t *testing.T) {
	load := loadConfig
	t.Cleanup(func() { loadConfig = load })
	loadConfig = func(path string) (*config.Config, error) {
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		return load(path)
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 1, run([]string{"run", "--config", "testdata/bad-durations.yaml"}, &stdout, &stderr), "refused by its configuration, not ended by SIGHUP")
}

// A flag given a value it does not take says which it takes.
func TestLogFlagsListTheirValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--log-level", "verbose"}, `--log-level: "verbose" is none of debug, info, warn, error`},
		{[]string{"run", "--log-format", "xml"}, "--log-format: \"xml\" is neither text nor json"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(tc.args, &stdout, &stderr))
		require.Contains(t, stderr.String(), tc.want)
	}
}

// A start refused for its rules logs where each problem is, not its text,
// which may quote an IMSI or a plate (a `when`, a watchlist entry), as a
// refused reload does; `check` prints the text.
func TestRunRefusedRulesLogNoIdentifier(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"run", "--config", "testdata/identifiers.yaml"}, &stdout, &stderr)
	require.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "rules refused (fenceline check --config FILE prints each problem)")
	assert.Contains(t, stderr.String(), "identifiers-rules.yaml:6: rules[0].when")
	for _, id := range []string{"428990012345678", "42899001234567"} {
		assert.NotContains(t, stderr.String(), id)
	}

	stdout.Reset()
	stderr.Reset()
	require.Equal(t, 1, run([]string{"check", "--config", "testdata/identifiers.yaml"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "428990012345678X", "check says what is wrong")
}
