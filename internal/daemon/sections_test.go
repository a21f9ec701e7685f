package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
)

// A reload of a file without a section the running set has is refused, and
// the refusal says how to empty the section on purpose: that advice, taken,
// loads and is not refused (`watchlists: []` was advised, and refused as a
// list where a mapping belongs).
func TestSectionsLostAdviceWorks(t *testing.T) {
	dir := t.TempDir()
	const devices = "devices:\n  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}\n"
	load := func(name, yaml string) *config.Rules {
		t.Helper()
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
		r, err := config.LoadRules(p)
		require.NoError(t, err)
		return r
	}
	running, ps := engine.Compile(load("running.yaml", devices+`zones:
  - {id: ruins, site: mdl, circle: {lat: 41.96, lon: 110.48, radius_m: 500}}
watchlists:
  sims: {kind: imsi, entries: ["428*"]}
rules:
  - {id: r1, kind: presence, source: phone, zones: [ruins], watchlist: sims}
`), engine.Options{})
	require.Empty(t, ps)

	err := sectionsLost(load("cut.yaml", devices), running)
	require.Error(t, err)
	advice := regexp.MustCompile("to remove them all, write `([^`]*)`").FindAllStringSubmatch(err.Error(), -1)
	require.Len(t, advice, 3, "%v", err)
	var emptied strings.Builder
	emptied.WriteString(devices)
	for _, a := range advice {
		emptied.WriteString(a[1] + "\n")
	}
	require.NoError(t, sectionsLost(load("emptied.yaml", emptied.String()), running))
}

// A section cut short right after its key (`rules:` and nothing after it,
// valid YAML, a null) is as missing as one cut before it: refused by a
// reload while the running set has entries there, and at start (and by
// check) when the last run had rules. Written empty, it is a choice.
func TestSectionCutAfterItsKey(t *testing.T) {
	dir := t.TempDir()
	const devices = "devices:\n  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}\n"
	load := func(yaml string) *config.Rules {
		t.Helper()
		p := filepath.Join(dir, "rules.yaml")
		require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
		r, err := config.LoadRules(p)
		require.NoError(t, err)
		return r
	}
	running, ps := engine.Compile(load(devices+"rules:\n  - {id: tamper, kind: status, when: tamper}\n"), engine.Options{})
	require.Empty(t, ps)
	state := filepath.Join(dir, "alert-state.json")
	require.NoError(t, os.WriteFile(state, []byte(`{"version":1,"rules":[{"id":"tamper"}]}`), 0o600))
	for _, tc := range []struct {
		name, tail string
		refused    bool
	}{
		{"no key", "", true},
		{"the key and nothing after", "rules:\n", true},
		{"the key without a line break", "rules:", true},
		{"the key and a comment", "rules: # the rules\n", true},
		{"null", "rules: ~\n", true},
		{"written empty", "rules: []\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := load(devices + tc.tail)
			for what, err := range map[string]error{"reload": sectionsLost(r, running), "start": rulesCutShort(r, state)} {
				if tc.refused {
					require.ErrorContains(t, err, "the file has no rules section", what)
				} else {
					require.NoError(t, err, what)
				}
			}
		})
	}
}
