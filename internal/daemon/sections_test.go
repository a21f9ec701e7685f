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
