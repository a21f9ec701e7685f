package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const scenario = "../../config/examples/scenario.yaml"

func TestRun(t *testing.T) {
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string // each must appear
		stderrHas  string
		stdoutNone bool
	}{
		{
			name:   "--help on stdout, as fenceline --help's",
			args:   []string{"--help"},
			stdout: []string{"usage: fenceline-sim [flags]", "-speed"},
		},
		{
			name: "print incidents of a night",
			args: []string{"--scenario", scenario, "--print-incidents", "--start", "2025-11-26T21:00:00+08:00"},
			stdout: []string{
				"seed 20261126, 2025-11-26T21:00:00+08:00 → 2025-11-27T09:00:00+08:00",
				"mongolian-sim-at-ruins  foreign-sim-near-border, loiter-ruins, night-phone-ruins",
				"watch-listed-plate", "plate-of-interest", "cloned-plate", "speeding-north", "fast-outbound",
				"battery-failure", "unit-tamper, unit-offline", "patrol-in-strip", "gathering-at-reserve", "crowd-at-reserve",
			},
		},
		{
			name:   "print incidents by day: no night rule",
			args:   []string{"--scenario", scenario, "--print-incidents", "--start", "2025-11-26T12:00:00+08:00", "--seed", "5"},
			stdout: []string{"seed 5,", "mongolian-sim-at-ruins  foreign-sim-near-border, loiter-ruins  "},
		},
		{
			name:   "an incident after the end",
			args:   []string{"--scenario", scenario, "--print-incidents", "--start", "2025-11-26T12:00:00+08:00", "--duration", "5m"},
			stdout: []string{"(after the end)"},
		},
		{name: "unknown flag", args: []string{"--sped", "60"}, code: 2, stderrHas: "flag provided but not defined", stdoutNone: true},
		{name: "bad speed", args: []string{"--speed", "fast"}, code: 2, stderrHas: "want a positive number or max", stdoutNone: true},
		{name: "bad start", args: []string{"--scenario", scenario, "--start", "yesterday"}, code: 1, stderrHas: "--start", stdoutNone: true},
		{name: "missing scenario", args: []string{"--scenario", "nope.yaml"}, code: 1, stderrHas: "nope.yaml", stdoutNone: true},
		{
			name: "a start in the future is refused before connecting",
			args: []string{"--scenario", scenario, "--start", future, "--broker", "tcp://127.0.0.1:1"},
			code: 1, stderrHas: "ahead of the real clock", stdoutNone: true,
		},
		{
			name: "an accelerated run from now is refused",
			args: []string{"--scenario", scenario, "--speed", "60", "--start", time.Now().Format(time.RFC3339), "--broker", "tcp://127.0.0.1:1"},
			code: 1, stderrHas: "would end", stdoutNone: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, tc.code, run(tc.args, &stdout, &stderr), "stderr: %s", stderr.String())
			for _, s := range tc.stdout {
				require.Contains(t, stdout.String(), s)
			}
			if tc.stderrHas != "" {
				require.Contains(t, stderr.String(), tc.stderrHas)
			}
			if tc.stdoutNone {
				require.Empty(t, stdout.String())
			}
		})
	}
}
