package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
)

func TestCompileContractExample(t *testing.T) {
	rs := loadRules(t)
	assert.Len(t, rs.Rules, 10)
	assert.Equal(t, 5, rs.Registry.Len())
	assert.NotNil(t, rs.Zones.Get("border-strip"))
	assert.Len(t, rs.Watchlists, 2)
	for _, r := range rs.Rules {
		assert.NotEmpty(t, r.Fingerprint(), r.ID)
	}
	// Defaults from defaults.go.
	byID := map[string]*Rule{}
	for _, r := range rs.Rules {
		byID[r.ID] = r
	}
	assert.Equal(t, DefaultPresenceCooldown, byID["foreign-sim-near-border"].cooldown)
	assert.Equal(t, DefaultMaxGap, byID["loiter-ruins"].maxGap)
	assert.Equal(t, SourceStatus, byID["unit-tamper"].Source)
}

// base is a valid rules file the problem cases below break one key at a
// time. Rules: 0 presence, 1 count, 2 status.
const base = `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.96, lon: 110.48}
zones:
  - {id: ruins, site: mdl, circle: {lat: 41.96, lon: 110.48, radius_m: 500}}
watchlists:
  sims: {kind: imsi, entries: ["428*"]}
  plates: {kind: plate, entries: ["蒙B7K3Q2"]}
rules:
  - {id: r0, kind: presence, source: phone, zones: [ruins], severity: high}
  - {id: r1, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}
  - {id: r2, kind: status, when: "tamper"}
`

// The literals a field is stored as compile: an empty direction (a pass
// without one), 无牌, a plate with its inner space, codes in their case.
func TestCompileStoredFormsAccepted(t *testing.T) {
	_, ps := compileYAML(t, strings.Replace(base, "kind: presence, source: phone, zones: [ruins]",
		`kind: presence, source: phone, when: 'tech in ["lte", "5g nr", "gsm/umts"] && mac == "a4:5e:60:12:34:56" && imsi != "460001234567890" && mcc == "460"'`, 1))
	assert.Empty(t, ps)
	for _, when := range []string{
		`direction == "" || direction in ["inbound", "unknown"]`,
		`plate == "无牌" || plate == "1598 УБА" || plate_color == "blue" || vehicle_type == "K33"`,
		`plate_color != "" && vehicle_type startsWith "H"`,
		`site == "mdl" && device in ["CP-07", "cp_8"] && plate != "蒙B·12345"`,
	} {
		_, ps := compileYAML(t, strings.Replace(base, "kind: presence, source: phone, zones: [ruins]",
			"kind: presence, source: vehicle, when: '"+when+"'", 1))
		assert.Empty(t, ps, when)
	}
}

// A site whose every device has a problem of its own is still a site: the
// rules naming it add no second problem ("no device is registered").
func TestCompileSiteOfInvalidDevices(t *testing.T) {
	rules := strings.Replace(base, "devices:\n", "devices:\n  - {id: S-1, kind: fence, site: sil, expect_every: 500ms}\n", 1)
	rules = strings.Replace(rules, `- {id: r2, kind: status, when: "tamper"}`, `- {id: r2, kind: silence, sites: [sil], after: 10m}`, 1)
	_, ps := compileYAML(t, rules)
	require.Len(t, ps, 1, "%v", ps)
	assert.Equal(t, "devices[0].expect_every", ps[0].Key)
}

// An enter rule without zones watches every zone: a hysteresis deeper than
// some of them is refused, naming them, as it is for a zone listed.
func TestCompileHysteresisDeeperThanSomeZones(t *testing.T) {
	rules := strings.Replace(base, "zones:\n", "zones:\n"+
		"  - {id: gate, site: mdl, circle: {lat: 41.90, lon: 110.40, radius_m: 100}}\n"+
		"  - {id: mast, site: mdl, circle: {lat: 41.91, lon: 110.40, radius_m: 30}}\n", 1)
	rules = strings.Replace(rules, `- {id: r2, kind: status, when: "tamper"}`, `- {id: r2, kind: enter, source: patrol, hysteresis_m: 150}`, 1)
	rs, ps := compileYAML(t, rules)
	require.Nil(t, rs)
	require.Len(t, ps, 1)
	assert.Equal(t, "rules[2].hysteresis_m", ps[0].Key)
	assert.Equal(t, `150 m is at least as deep as any point of zone "gate" (100.0 m), "mast" (30.0 m) is inside it: the rule watches every zone, `+
		"and could never fire for these; list the zones it is for in zones, or lower hysteresis_m", ps[0].Msg)

	// Below the smallest zone's depth, the rule is fine.
	rs, ps = compileYAML(t, strings.Replace(rules, "hysteresis_m: 150", "hysteresis_m: 25", 1))
	require.Empty(t, ps)
	require.NotNil(t, rs)
}

// A `when` on a kind that takes none is one problem, not two.
func TestCompileWhenOnSilenceIsOneProblem(t *testing.T) {
	_, ps := compileYAML(t, strings.Replace(base, `- {id: r2, kind: status, when: "tamper"}`, `- {id: r2, kind: silence, after: 8s, when: 'device == "F-1"'}`, 1))
	require.Len(t, ps, 1, "%v", ps)
	assert.Equal(t, "rules[2].when", ps[0].Key)
	assert.Contains(t, ps[0].Msg, "when does not apply to a silence rule")
}

func TestCompileProblems(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string // replace in base
		key, want string
	}{
		{"duplicate rule id", "id: r1,", "id: r0,", "rules[1].id", `duplicate rule id "r0"`},
		{"rule id not a topic level", "id: r1,", "id: r/1,", "rules[1].id", "must match"},
		{"unknown kind", "kind: count", "kind: crowd", "rules[1].kind", `unknown rule kind "crowd"`},
		{"missing source", "source: phone, zones: [ruins], severity", "zones: [ruins], severity", "rules[0].source", "needs a source"},
		{"status source on presence", "kind: presence, source: phone", "kind: presence, source: status", "rules[0].source", "status reports are for status rules"},
		{"unknown source", "kind: presence, source: phone", "kind: presence, source: drone", "rules[0].source", `unknown source "drone"`},
		{"unknown zone", "zones: [ruins], severity", "zones: [ruin], severity", "rules[0].zones[0]", `unknown zone "ruin"`},
		{"unknown watchlist", "zones: [ruins], severity", "watchlist: simz, severity", "rules[0].watchlist", `unknown watchlist "simz"`},
		{"watchlist kind does not fit", "zones: [ruins], severity", "watchlist: plates, severity", "rules[0].watchlist", "holds plate values"},
		{"bad severity", "severity: high", "severity: urgent", "rules[0].severity", `unknown severity "urgent"`},
		{"count window zero", "window: 15m, ", "", "rules[1].window", "window > 0"},
		{"count threshold zero", "threshold: 3", "threshold: 0", "rules[1].threshold", "threshold >= 1"},
		{"key that does not apply", "threshold: 3", "threshold: 3, duration: 5m", "rules[1].duration", "does not apply to a count rule"},
		{"status without when", `when: "tamper"`, `severity: low`, "rules[2].when", "needs `when`"},
		{"typo in when", `when: "tamper"`, `when: "batery_pct < 15"`, "rules[2].when", `unknown name batery_pct (column 1) (did you mean "battery_pct"?)`},
		{"= for ==", `when: "tamper"`, `when: 'power = "mains"'`, "rules[2].when", "(a comparison is written ==)"},
		{"a name like none", `when: "tamper"`, `when: "zzzzzzz > 1"`, "rules[2].when", "unknown name zzzzzzz (column 1)"},
		{"type error in when", `when: "tamper"`, `when: "fw > 3"`, "rules[2].when", "invalid operation"},
		{"when not boolean", `when: "tamper"`, `when: "battery_pct"`, "rules[2].when", "bool"},
		{"field of another source", `when: "tamper"`, `when: "plate == \"x\""`, "rules[2].when", "unknown name plate"},
		// Literals a field is never stored as: the rule would never fire.
		{"a direction in capitals", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'direction == "OUTBOUND"'`, "rules[0].when",
			`direction is never "OUTBOUND" (the comparison is always false, or always true with !=): direction is stored as inbound, outbound or unknown`},
		{"a direction that is none", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'speed_kmh > 90 && direction in ["outbound", "north"]'`, "rules[0].when",
			`direction is never "north" (the comparison is always false, or always true with !=)`},
		{"a plate colour in capitals", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: '"Yellow" != plate_color'`, "rules[0].when",
			`plate_color is never "Yellow" (the comparison is always false, or always true with !=): plate_color is stored half-width, trimmed, in lower case ("yellow")`},
		{"a plate colour in full-width letters", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'plate_color == "ｂｌｕｅ"'`, "rules[0].when",
			`plate_color is never "ｂｌｕｅ" (the comparison is always false, or always true with !=): plate_color is stored half-width, trimmed, in lower case ("blue")`},
		{"no plate read in traditional characters", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'plate == "無牌"'`, "rules[0].when",
			`plate is never "無牌" (the comparison is always false, or always true with !=): plates are stored in their normal form ("无牌")`},
		{"a plate holding an invisible character", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'plate in ["\u200b蒙B12345"]'`, "rules[0].when",
			`plates are stored in their normal form ("蒙B12345")`},
		{"an empty plate", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'plate == ""'`, "rules[0].when",
			`plate is never "" (the comparison is always false, or always true with !=): plates are stored in their normal form ("无牌")`},
		{"a MAC address in capitals", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: phone, when: 'mac == "A4:5E:60:12:34:56"'`, "rules[0].when",
			`mac is never "A4:5E:60:12:34:56" (the comparison is always false, or always true with !=): MAC addresses are stored as lower-case hex pairs joined by colons`},
		{"an IMSI with a space", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: phone, when: 'imsi in ["46000 123"]'`, "rules[0].when",
			`imsi is never "46000 123" (the comparison is always false, or always true with !=): imsi is stored as digits only`},
		{"a site in capitals", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: phone, when: 'site != "MDL"'`, "rules[0].when",
			`site is never "MDL" (the comparison is always false, or always true with !=): sites are [a-z0-9-]{1,32}`},
		{"a vehicle type in lower case", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'vehicle_type == "h11"'`, "rules[0].when",
			`vehicle_type is never "h11" (the comparison is always false, or always true with !=): vehicle_type is stored half-width, trimmed, in upper case ("H11")`},
		{"a plate not in its normal form", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: vehicle, when: 'plate == "蒙b7k3q2"'`, "rules[0].when",
			`plate is never "蒙b7k3q2" (the comparison is always false, or always true with !=): plates are stored in their normal form ("蒙B7K3Q2")`},
		{"a tech in capitals", "kind: presence, source: phone, zones: [ruins]", `kind: presence, source: phone, zones: [ruins], when: 'tech == "LTE"'`, "rules[0].when",
			`tech is never "LTE" (the comparison is always false, or always true with !=): tech is stored in lower case, of a-z 0-9 space . _ / + - ("lte")`},
		{"hysteresis deeper than every zone, a rule without zones", "kind: presence, source: phone, zones: [ruins], severity: high", "kind: enter, source: patrol, hysteresis_m: 501", "rules[0].hysteresis_m", `501 m is at least as deep as any point of any zone is inside it (at most 500.0 m)`},
		{"hysteresis deeper than the zone", "kind: presence, source: phone, zones: [ruins], severity: high", "kind: enter, source: patrol, zones: [ruins], hysteresis_m: 501", "rules[0].hysteresis_m", `501 m is at least as deep as any point of zone "ruins" is inside it (at most 500.0 m)`},
		{"hysteresis as deep as the zone: the centre is not past it", "kind: presence, source: phone, zones: [ruins], severity: high", "kind: enter, source: patrol, zones: [ruins], hysteresis_m: 500", "rules[0].hysteresis_m", `500 m is at least as deep as any point of zone "ruins" is inside it (at most 500.0 m)`},
		{"bad tz", "severity: high}", "severity: high, schedule: {tz: Mars/Olympus, windows: [{from: \"20:00\", to: \"06:00\"}]}}", "rules[0].schedule.tz", "unknown time zone"},
		{"the host's tz", "severity: high}", "severity: high, schedule: {tz: Local, windows: [{from: \"20:00\", to: \"06:00\"}]}}", "rules[0].schedule.tz", `"Local" is the host's time zone`},
		{"bad window", "severity: high}", "severity: high, schedule: {windows: [{from: \"25:00\", to: \"06:00\"}]}}", "rules[0].schedule.windows[0].from", "not HH:MM"},
		{"empty window", "severity: high}", "severity: high, schedule: {windows: [{from: \"06:00\", to: \"06:00\"}]}}", "rules[0].schedule.windows[0]", "equal"},
		{"bad day", "severity: high}", "severity: high, schedule: {windows: [{from: \"20:00\", to: \"06:00\", days: [fri, fry]}]}}", "rules[0].schedule.windows[0].days[1]", `unknown day "fry"`},
		{"device bad id", "id: F-1,", "id: F 1,", "devices[0].id", "must match"},
		{"device bad kind", "kind: fence", "kind: drone", "devices[0].kind", "fence, checkpoint or patrol"},
		{"device bad site", "site: mdl, lat", "site: MDL, lat", "devices[0].site", "must match"},
		{"device lat without lon", "lat: 41.96, lon: 110.48}", "lat: 41.96}", "devices[0].lon", "missing: lat and lon go together"},
		{"device lat out of range", "lat: 41.96, lon: 110.48}", "lat: 91, lon: 110.48}", "devices[0].lat", "out of range"},
		{"device negative expect_every", "lat: 41.96, lon: 110.48}", "lat: 41.96, lon: 110.48, expect_every: -1m}", "devices[0].expect_every", "negative"},
		{"device expect_every under a second", "lat: 41.96, lon: 110.48}", "lat: 41.96, lon: 110.48, expect_every: 1ns}", "devices[0].expect_every", "shorter than a second"},
		{"rule site no device has", "- {id: r0, kind: presence,", "- {id: r0, sites: [mld], kind: presence,", "rules[0].sites[0]", `no device is registered at site "mld" (sites: mdl)`},
		{"rule site not a site", "- {id: r0, kind: presence,", "- {id: r0, sites: [M D L], kind: presence,", "rules[0].sites[0]", "must match"},
		{"zone site not a site", "- {id: ruins, site: mdl,", "- {id: ruins, site: x+y,", "zones[0].site", "must match"},
		{"circle without its centre", "circle: {lat: 41.96, lon: 110.48, radius_m: 500}", "circle: {radius_m: 500}", "zones[0].circle", "needs its centre"},
		{"circle without its longitude", "circle: {lat: 41.96, lon: 110.48, radius_m: 500}", "circle: {lat: 41.96, radius_m: 500}", "zones[0].circle.lon", "needs lat and lon"},
		{"circle without its latitude", "circle: {lat: 41.96, lon: 110.48, radius_m: 500}", "circle: {lon: 110.48, radius_m: 500}", "zones[0].circle.lat", "needs lat and lon"},
		{"duplicate device", "devices:\n", "devices:\n  - {id: F-1, kind: fence, site: mdl}\n", "devices[1].id", `duplicate device id "F-1"`},
		{"dwell without duration", "- {id: r1, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}", "- {id: r1, kind: dwell, source: phone, zones: [ruins]}", "rules[1].duration", "duration > 0"},
		{"velocity without max_kmh", "- {id: r1, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}", "- {id: r1, kind: velocity, source: vehicle}", "rules[1].max_kmh", "max_kmh > 0"},
		{"silence without after", "- {id: r1, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}", "- {id: r1, kind: silence}", "rules[1].after", "after > 0"},
		{"device name of two lines", "lat: 41.96, lon: 110.48}", `lat: 41.96, lon: 110.48, name: "east\ngate"}`, "devices[0].name", "line break"},
		{"zone name with a tab", "- {id: ruins, site: mdl,", `- {id: ruins, name: "ruins\tsouth", site: mdl,`, "zones[0].name", "control character U+0009"},
		{"zone unit with a line separator", "- {id: ruins, site: mdl,", "- {id: ruins, units: [\"a\u2028b\"], site: mdl,", "zones[0].units[0]", "U+2028"},
		{"summary of two lines", "severity: high}", `severity: high, summary: "Send patrol\r\nat once"}`, "rules[0].summary", "line break"},
		{"notify with an escape", "severity: high}", `severity: high, notify: ["station\e[31m"]}`, "rules[0].notify[0]", "U+001B"},
		{"watchlist on a silence rule", `- {id: r2, kind: status, when: "tamper"}`, `- {id: r2, kind: silence, after: 10m, watchlist: sims}`, "rules[2].watchlist", "which a silence rule cannot match"},
		{"negative hysteresis", "- {id: r1, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}", "- {id: r1, kind: enter, source: patrol, hysteresis_m: -5}", "rules[1].hysteresis_m", ">= 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, base, tc.from)
			rs, ps := compileYAML(t, strings.Replace(base, tc.from, tc.to, 1))
			require.Nil(t, rs)
			require.NotEmpty(t, ps)
			var found bool
			for _, p := range ps {
				if p.Key == tc.key && strings.Contains(p.Msg, tc.want) {
					found = true
					assert.Greater(t, p.Line, 0, "problem carries a line: %v", p)
					assert.NotEmpty(t, p.File)
				}
			}
			assert.True(t, found, "want %s: …%s…; got:\n%v", tc.key, tc.want, ps)
		})
	}
}

// A watchlist left empty is reported once, where it is defined; the rule
// that uses it is not told it "holds  values".
func TestCompileEmptyWatchlist(t *testing.T) {
	y := strings.Replace(base, `sims: {kind: imsi, entries: ["428*"]}`, "sims:", 1)
	y = strings.Replace(y, "zones: [ruins], severity: high", "watchlist: sims, severity: high", 1)
	_, ps := compileYAML(t, y)
	require.Len(t, ps, 1, "%v", ps)
	assert.Equal(t, "watchlists.sims.kind", ps[0].Key)
}

func TestCompileBaseIsValid(t *testing.T) {
	rs, ps := compileYAML(t, base)
	require.Empty(t, ps)
	require.Len(t, rs.Rules, 3)
}

func TestCompileReportsEveryProblem(t *testing.T) {
	y := strings.Replace(base, "severity: high", "severity: urgent", 1)
	y = strings.Replace(y, `when: "tamper"`, `when: "tampr"`, 1)
	y = strings.Replace(y, "threshold: 3", "threshold: 0", 1)
	_, ps := compileYAML(t, y)
	keys := map[string]bool{}
	for _, p := range ps {
		keys[p.Key] = true
	}
	assert.True(t, keys["rules[0].severity"] && keys["rules[2].when"] && keys["rules[1].threshold"], "%v", ps)
}

func TestCompileDefaultSeverityAndNoRules(t *testing.T) {
	rs, ps := Compile(&config.Rules{Rules: []config.RuleSpec{{ID: "x", Kind: "silence", After: config.Duration(60e9)}}}, Options{})
	require.Empty(t, ps)
	assert.Equal(t, DefaultSeverity, rs.Rules[0].Severity)
	_, ps = Compile(nil, Options{})
	assert.NotEmpty(t, ps)
}

// FuzzCompile: no input makes Compile panic, and it either returns a
// ruleset or problems, never both or neither.
func FuzzCompile(f *testing.F) {
	f.Add("presence", "phone", "imsi startsWith \"428\"", "20:00", "06:00", 3, "15m")
	f.Add("status", "", "tamper || battery_pct < 15", "", "", 0, "")
	f.Add("count", "vehicle", "speed_kmh > 1e400", "24:00", "00:00", -1, "-5m")
	f.Add("enter", "patrol", "zone == 'x' && lat > 42", "", "", 0, "1h")
	f.Fuzz(func(t *testing.T, kind, source, when, from, to string, threshold int, window string) {
		var w config.Duration
		_ = w.UnmarshalText([]byte(window))
		spec := config.RuleSpec{ID: "r", Kind: kind, Source: source, When: when, Threshold: threshold, Window: w}
		if from != "" || to != "" {
			spec.Schedule = &config.ScheduleSpec{Windows: []config.WindowSpec{{From: from, To: to}}}
		}
		rs, ps := Compile(&config.Rules{Rules: []config.RuleSpec{spec}}, Options{})
		if (rs == nil) == (len(ps) == 0) {
			t.Fatalf("ruleset %v with problems %v", rs != nil, ps)
		}
		for _, p := range ps {
			if p.Key == "" || strings.Contains(p.Msg, "\n") {
				t.Fatalf("problem without key or on several lines: %q", fmt.Sprint(p))
			}
		}
	})
}

// A rule's fingerprint (what decides whether a reload keeps its state)
// changes when a zone or watchlist file it uses changes, as it does for the
// same change made inline; it does not change for another YAML form of the
// same inline shape.
func TestFingerprintFollowsFiles(t *testing.T) {
	square := func(east float64) string {
		return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[110.478,41.955],[%g,41.955],[%g,41.967],[110.478,41.967],[110.478,41.955]]]}`, east, east)
	}
	const rules = `
zones:
  - {id: ruins, site: mdl, file: ruins.geojson}
  - {id: inline, site: mdl, geojson: %s}
watchlists:
  plates: {kind: plate, file: plates.txt}
rules:
  - {id: at-ruins, kind: dwell, source: phone, zones: [ruins], duration: 45m}
  - {id: inline-zone, kind: dwell, source: phone, zones: [inline], duration: 45m}
  - {id: plate, kind: presence, source: vehicle, watchlist: plates}
`
	dir := t.TempDir()
	fps := func(ruins, inline, plates string) map[string]string {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ruins.geojson"), []byte(ruins), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "plates.txt"), []byte(plates), 0o600))
		path := filepath.Join(dir, "rules.yaml")
		require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(rules, inline)), 0o600))
		r, err := config.LoadRules(path)
		require.NoError(t, err)
		rs, ps := Compile(r, Options{})
		require.Empty(t, ps)
		out := map[string]string{}
		for _, rule := range rs.Rules {
			out[rule.ID] = rule.Fingerprint()
		}
		return out
	}
	base := fps(square(110.495), square(110.495), "蒙B7K3Q2\n")
	assert.Equal(t, base, fps(square(110.495), strings.ReplaceAll(square(110.495), ",", ", "), "蒙B7K3Q2\n"), "the same files, the same inline shape")

	moved := fps(square(110.499), square(110.495), "蒙B7K3Q2\n")
	assert.NotEqual(t, base["at-ruins"], moved["at-ruins"], "an edited zone file")
	assert.Equal(t, base["plate"], moved["plate"])

	assert.NotEqual(t, base["inline-zone"], fps(square(110.495), square(110.499), "蒙B7K3Q2\n")["inline-zone"], "an edited inline zone")

	listed := fps(square(110.495), square(110.495), "蒙B7K3Q2\n京K55555\n")
	assert.NotEqual(t, base["plate"], listed["plate"], "an edited watchlist file")
	assert.Equal(t, base["at-ruins"], listed["at-ruins"])

	// The same shape written another way: its ring reversed, or started at
	// another vertex.
	reversed := `{"type":"Polygon","coordinates":[[[110.478,41.955],[110.478,41.967],[110.495,41.967],[110.495,41.955],[110.478,41.955]]]}`
	rotated := `{"type":"Polygon","coordinates":[[[110.495,41.967],[110.478,41.967],[110.478,41.955],[110.495,41.955],[110.495,41.967]]]}`
	assert.Equal(t, base, fps(reversed, rotated, "蒙B7K3Q2\n"), "one shape, whichever way its ring turns or starts")

	// A zone moved from its file to the rules file, the shape unchanged.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ruins.geojson"), []byte(square(110.495)), 0o600))
	path := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(fmt.Sprintf(rules, square(110.495)), "file: ruins.geojson", "geojson: "+square(110.495), 1)), 0o600))
	r, err := config.LoadRules(path)
	require.NoError(t, err)
	rs, ps := Compile(r, Options{})
	require.Empty(t, ps)
	for _, rule := range rs.Rules {
		assert.Equal(t, base[rule.ID], rule.Fingerprint(), "%s: a file zone made inline", rule.ID)
	}
}

// A list written empty is the list left out: adding `notify: []` is no
// change that would close the rule's open incidents.
func TestFingerprintEmptyListIsNoList(t *testing.T) {
	fp := func(extra string) string {
		t.Helper()
		rs, ps := compileYAML(t, `
devices:
  - {id: F-1, kind: fence, site: mdl, lat: 41.9612, lon: 110.4875}
rules:
  - {id: unit-tamper, kind: status, when: tamper`+extra+`}
`)
		require.Empty(t, ps)
		return rs.Rules[0].Fingerprint()
	}
	base := fp("")
	for _, extra := range []string{", notify: []", ", sites: []", ", notify: [], sites: []"} {
		assert.Equal(t, base, fp(extra), extra)
	}
	assert.NotEqual(t, base, fp(", notify: [joint-command]"))
}

// A zone's units and name are who is told and how it reads, not what a rule
// does: changing them keeps the fingerprint (and the rule's state); its
// shape does not.
func TestFingerprintIgnoresZoneUnitsAndName(t *testing.T) {
	const rules = `
zones:
  - {id: ruins, site: mdl, %s circle: {lat: 41.9612, lon: 110.4875, radius_m: %d}}
rules:
  - {id: crowd, kind: count, source: phone, zones: [ruins], window: 15m, threshold: 3}
`
	fp := func(extra string, radius int) string {
		rs, ps := compileYAML(t, fmt.Sprintf(rules, extra, radius))
		require.Empty(t, ps)
		return rs.Rules[0].Fingerprint()
	}
	base := fp("", 500)
	assert.Equal(t, base, fp(`units: [station-mdl, joint-command], name: "Aolunsumu ruins",`, 500))
	assert.NotEqual(t, base, fp("", 600), "a changed shape is a changed rule")
}

// A window's times are HH:MM in digits: strconv.Atoi took a sign, and
// "+6:00" loaded as 06:00.
func TestParseClock(t *testing.T) {
	for _, tc := range []struct {
		in   string
		end  bool
		want int // minutes; -1: refused
	}{
		{"06:00", false, 360},
		{"00:00", false, 0},
		{"23:59", false, 1439},
		{"24:00", true, 1440},
		{"24:00", false, -1},
		{"24:01", true, -1},
		{"+6:00", false, -1},
		{"06:+5", false, -1},
		{"-0:00", false, -1},
		{"6:00", false, -1},
		{"0600", false, -1},
		{"06:60", false, -1},
		{" 6:00", false, -1},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseClock(tc.in, tc.end)
			if tc.want < 0 {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "is not HH:MM")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
