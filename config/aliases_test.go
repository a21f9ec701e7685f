package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// aliasBomb is a rules file whose zone's coordinates are an alias of ten
// aliases of ten aliases… levels deep: a few hundred bytes that expand to
// 4·10^levels points.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("devices:\n  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}\n")
	b.WriteString("zones:\n  - id: z1\n    site: mdl\n    geojson:\n      type: MultiPolygon\n      coordinates:\n")
	b.WriteString("        - &a0 [[[110.478,41.955],[110.495,41.955],[110.495,41.967],[110.478,41.955]]]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "        - &a%d [%s]\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	return b.String()
}

// mergeBomb is the same with merge keys: each device merges ten copies of
// the one before.
func mergeBomb(levels int) string {
	var b strings.Builder
	b.WriteString("devices:\n  - &m0 {id: F-0, kind: fence, site: mdl, lat: 41.96, lon: 110.48}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  - &m%d {<<: [%s], id: F-%d}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d,", i-1), 10), ","), i)
	}
	return b.String()
}

// A file whose aliases expand past maxAliasedNodes is refused at once, by
// check, at start and on reload alike (they all read files through
// decodeStrict), before anything walks or decodes the expansion: a
// 700-byte rules file took all of a daemon's memory on reload. Anchors
// used as defaults, however many entries use them, still load.
func TestLoadRefusesAliasBombs(t *testing.T) {
	const refused = "expand to more than 1000000 keys and values"
	var defaults strings.Builder
	defaults.WriteString("devices:\n  - &fence {id: F-0, kind: fence, site: mdl, lat: 41.96, lon: 110.48, name: \"Aolunsumu ruins, east gate\", expect_every: 10m}\n")
	for i := 1; i < 10_000; i++ {
		fmt.Fprintf(&defaults, "  - {<<: *fence, id: F-%d}\n", i)
	}
	for _, tc := range []struct {
		name, rules string
		problem     string // "": loads
	}{
		{"aliases of aliases, 5 levels (over the bound by a little)", aliasBomb(5), "rules.yaml:14: its aliases (*name) " + refused},
		{"aliases of aliases, 9 levels (billions)", aliasBomb(9), "rules.yaml:14: its aliases (*name) " + refused},
		{"merge keys of merge keys, 7 levels", mergeBomb(7), "rules.yaml:7: its aliases (*name) " + refused},
		{"an anchor as the defaults of 10,000 devices", defaults.String(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rules.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.rules), 0o600))
			r, err := LoadRules(p)
			if tc.problem != "" {
				require.ErrorContains(t, err, tc.problem)
				return
			}
			require.NoError(t, err)
			require.NotEmpty(t, r.Devices)
		})
	}

	// The daemon's own file goes through the same decoding.
	p := filepath.Join(t.TempDir(), "fenceline.yaml")
	bomb := "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i <= 9; i++ {
		bomb += fmt.Sprintf("a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	require.NoError(t, os.WriteFile(p, []byte(bomb), 0o600))
	_, err := Load(p)
	require.ErrorContains(t, err, refused)
}
