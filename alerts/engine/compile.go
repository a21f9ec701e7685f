package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/fenceline/fenceline/alerts/watchlist"
	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// Kind is a rule kind.
type Kind string

// Rule kinds of the contract.
const (
	KindPresence Kind = "presence"
	KindCount    Kind = "count"
	KindDwell    Kind = "dwell"
	KindVelocity Kind = "velocity"
	KindEnter    Kind = "enter"
	KindExit     Kind = "exit"
	KindSilence  Kind = "silence"
	KindStatus   Kind = "status"
)

// Source is what a rule reads.
type Source uint8

// Sources. SourceNone is a silence rule's: it reads no reading.
const (
	SourceNone Source = iota
	SourcePhone
	SourceVehicle
	SourcePatrol
	SourceStatus
	numSources
)

func (s Source) String() string {
	switch s {
	case SourcePhone:
		return "phone"
	case SourceVehicle:
		return "vehicle"
	case SourcePatrol:
		return "patrol"
	case SourceStatus:
		return "status"
	}
	return ""
}

func parseSource(s string) (Source, bool) {
	switch s {
	case "phone":
		return SourcePhone, true
	case "vehicle":
		return SourceVehicle, true
	case "patrol":
		return SourcePatrol, true
	case "status":
		return SourceStatus, true
	case "":
		return SourceNone, true
	}
	return SourceNone, false
}

// deviceKind is the kind of device whose readings a source holds.
func (s Source) deviceKind() model.Kind {
	switch s {
	case SourcePhone:
		return model.KindFence
	case SourceVehicle:
		return model.KindCheckpoint
	case SourcePatrol:
		return model.KindPatrol
	}
	return ""
}

// Ruleset is the compiled, immutable content of a rules file: registry,
// zones, watchlists and rules. A reload compiles a new one and hands it to
// Engine.Swap; nothing in it changes afterwards.
type Ruleset struct {
	Registry   *model.Registry
	Zones      *zone.Index
	Watchlists map[string]*watchlist.List
	Rules      []*Rule

	// lists are the watchlists, each at the index its rules' watchSlot
	// give: the engine remembers a reading's match per list there.
	lists []*watchlist.List
	// sharedWhens is the number of whenSlots given.
	sharedWhens int
	bySource    [numSources][]*Rule
	opts        Options
	sites       map[string]bool // the sites of the registered devices, while compiling
}

// Rule is one compiled rule.
type Rule struct {
	ID       string
	Kind     Kind
	Source   Source
	Severity string
	// Spec is the rule as written; Swap compares it (with the specs of its
	// zones and watchlist) to decide whether the rule's state survives.
	Spec config.RuleSpec

	fingerprint string
	sites       []string
	zones       []*zone.Zone
	zoneSet     map[*zone.Zone]int32 // index in zones
	watch       *watchlist.List
	watchID     watchIdent // which identifier of a reading watch holds
	watchSlot   int        // index of watch in the ruleset's lists
	sched       *schedule
	when        *vm.Program
	whenFast    whenFunc // when, as closures, if it is simple enough (see whenfast.go)
	whenZone    bool     // the expression reads `zone`
	// statusReads are the status fields a status rule's `when` reads
	// (statusFields bits; has_x counts as x): a report carrying none of
	// them says nothing about the condition and resolves nothing.
	statusReads uint8
	// whenSlot is the index, among the ruleset's conditions that can be
	// shared, of this rule's, or -1: rules of one source with the same
	// condition, evaluated as closures (which cannot fail at run time: no
	// error metric or log to count per rule) and without `zone` (the same
	// answer in every zone), get the same answer on a reading, which the
	// engine works out once (see whenIn).
	whenSlot int
	notify   []string
	// devKind limits a silence rule to devices of one kind ("" = all).
	devKind model.Kind

	cooldown   time.Duration
	window     time.Duration
	threshold  int
	duration   time.Duration
	maxGap     time.Duration
	maxKmh     float64
	hysteresis float64
	after      time.Duration
	repeat     time.Duration
}

// Fingerprint identifies the rule's definition: two rules with the same
// fingerprint behave identically on the same readings.
func (r *Rule) Fingerprint() string { return r.fingerprint }

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	sitePattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	severities  = map[string]bool{"critical": true, "high": true, "medium": true, "low": true}
)

// Which keys each kind reads, beyond id, kind, severity, notify, summary,
// sites and schedule (which every kind takes). A key set on a kind that
// ignores it is a problem: it is almost always a mistake (a count rule with
// `duration` meant `window`).
var kindKeys = map[Kind]map[string]bool{
	KindPresence: {"source": true, "zones": true, "watchlist": true, "when": true, "cooldown": true},
	KindCount:    {"source": true, "zones": true, "watchlist": true, "when": true, "window": true, "threshold": true, "repeat_interval": true},
	KindDwell:    {"source": true, "zones": true, "watchlist": true, "when": true, "duration": true, "max_gap": true, "repeat_interval": true},
	KindVelocity: {"source": true, "zones": true, "watchlist": true, "when": true, "max_kmh": true, "cooldown": true},
	KindEnter:    {"source": true, "zones": true, "watchlist": true, "when": true, "hysteresis_m": true, "cooldown": true},
	KindExit:     {"source": true, "zones": true, "watchlist": true, "when": true, "hysteresis_m": true, "cooldown": true},
	KindSilence:  {"source": true, "zones": true, "after": true, "repeat_interval": true},
	KindStatus:   {"source": true, "zones": true, "when": true, "repeat_interval": true},
}

// setKeys lists the optional keys a spec sets, for the check above.
func setKeys(s *config.RuleSpec) []string {
	var ks []string
	add := func(set bool, k string) {
		if set {
			ks = append(ks, k)
		}
	}
	add(s.Source != "", "source")
	add(len(s.Zones) > 0, "zones")
	add(s.Watchlist != "", "watchlist")
	add(s.When != "", "when")
	add(s.Cooldown != nil, "cooldown")
	add(s.RepeatInterval != 0, "repeat_interval")
	add(s.Window != 0, "window")
	add(s.Threshold != 0, "threshold")
	add(s.Duration != 0, "duration")
	add(s.MaxGap != 0, "max_gap")
	add(s.MaxKmh != 0, "max_kmh")
	add(s.HysteresisM != 0, "hysteresis_m")
	add(s.After != 0, "after")
	return ks
}

// Compile validates the rules file semantically (the config package checks
// only its structure) and compiles it. It returns every problem found, each
// naming the file and key; the Ruleset is nil when there is any.
func Compile(r *config.Rules, opts Options) (*Ruleset, config.Problems) {
	opts = opts.withDefaults()
	var ps config.Problems
	if r == nil {
		ps.Add("", "", "no rules file")
		return nil, ps
	}
	file := r.Path
	baseDir := "."
	if file != "" {
		baseDir = filepath.Dir(file)
	}
	rs := &Ruleset{Watchlists: map[string]*watchlist.List{}, opts: opts}

	rs.Registry = compileDevices(r.Devices, file, &ps)
	// The sites of every device listed, valid or not: a site whose devices
	// each have a problem of their own is not a second problem of its
	// rules'.
	rs.sites = map[string]bool{}
	for _, d := range r.Devices {
		rs.sites[d.Site] = true
	}
	for i, z := range r.Zones {
		if z.Site != "" && !sitePattern.MatchString(z.Site) {
			ps.Add(file, fmt.Sprintf("zones[%d].site", i), "site %q must match [a-z0-9-]{1,32}", z.Site)
		}
		if z.Circle != nil {
			for _, k := range [...]string{"lat", "lon"} {
				if key := fmt.Sprintf("zones[%d].circle.%s", i, k); r.Lacks(key) && !(z.Circle.Lat == 0 && z.Circle.Lon == 0) {
					ps.Add(file, key, "missing: a circle's centre needs lat and lon")
				}
			}
		}
	}

	ix, zps := zone.Build(r.Zones, baseDir, file)
	ps = append(ps, zps...)
	rs.Zones = ix
	zoneSpecs := make(map[string]*config.ZoneSpec, len(r.Zones))
	for i := range r.Zones {
		zoneSpecs[r.Zones[i].ID] = &r.Zones[i]
	}

	names := make([]string, 0, len(r.Watchlists))
	for name := range r.Watchlists {
		names = append(names, name)
	}
	sort.Strings(names) // problems in a stable order
	for _, name := range names {
		l, wps := watchlist.Build(name, r.Watchlists[name], baseDir, file)
		ps = append(ps, wps...)
		if l != nil {
			rs.Watchlists[name] = l
			rs.lists = append(rs.lists, l)
		}
	}

	seen := make(map[string]int, len(r.Rules))
	for i := range r.Rules {
		key := fmt.Sprintf("rules[%d]", i)
		spec := r.Rules[i]
		if spec.ID == "" {
			ps.Add(file, key+".id", "missing rule id")
		} else if !idPattern.MatchString(spec.ID) {
			ps.Add(file, key+".id", "rule id %q must match [A-Za-z0-9_-]{1,64} (it names an MQTT topic level)", spec.ID)
		} else if j, dup := seen[spec.ID]; dup {
			ps.Add(file, key+".id", "duplicate rule id %q (also rules[%d])", spec.ID, j)
		} else {
			seen[spec.ID] = i
		}
		rule := compileRule(spec, rs, zoneSpecs, r.Watchlists, opts, file, key, &ps)
		if rule != nil {
			rs.Rules = append(rs.Rules, rule)
		}
	}
	whenSlots := map[string]int{}
	for _, rule := range rs.Rules {
		rule.whenSlot = -1
		if rule.whenFast == nil || rule.whenZone {
			continue
		}
		k := rule.Source.String() + "\x00" + rule.Spec.When
		s, ok := whenSlots[k]
		if !ok {
			s = len(whenSlots)
			whenSlots[k] = s
		}
		rule.whenSlot = s
	}
	rs.sharedWhens = len(whenSlots)
	if len(ps) > 0 {
		return nil, r.Locate(ps)
	}
	for _, rule := range rs.Rules {
		rs.bySource[rule.Source] = append(rs.bySource[rule.Source], rule)
	}
	return rs, nil
}

func compileRule(spec config.RuleSpec, rs *Ruleset, zoneSpecs map[string]*config.ZoneSpec,
	lists map[string]config.WatchlistSpec, opts Options, file, key string, ps *config.Problems) *Rule {
	n := len(*ps)
	rule := &Rule{ID: spec.ID, Kind: Kind(spec.Kind), Spec: spec}

	allowed, known := kindKeys[rule.Kind]
	if !known {
		if spec.Kind == "" {
			ps.Add(file, key+".kind", "missing rule kind (presence, count, dwell, velocity, enter, exit, silence, status)")
		} else {
			ps.Add(file, key+".kind", "unknown rule kind %q (presence, count, dwell, velocity, enter, exit, silence, status)", spec.Kind)
		}
		return nil
	}
	for _, k := range setKeys(&spec) {
		if !allowed[k] {
			ps.Add(file, key+"."+k, "%s does not apply to a %s rule", k, spec.Kind)
		}
	}

	// Source.
	src, ok := parseSource(spec.Source)
	switch {
	case !ok:
		ps.Add(file, key+".source", "unknown source %q (phone, vehicle, patrol, status)", spec.Source)
	case rule.Kind == KindStatus:
		if src != SourceNone && src != SourceStatus {
			ps.Add(file, key+".source", "a status rule reads status reports: source must be status or absent, not %q", spec.Source)
		}
		src = SourceStatus
	case rule.Kind == KindSilence:
		if src == SourceStatus {
			ps.Add(file, key+".source", "a silence rule's source, when set, picks the device kind: phone, vehicle or patrol")
		}
		// src stays the device-kind filter; the rule itself reads no reading.
	default:
		if src == SourceNone {
			ps.Add(file, key+".source", "a %s rule needs a source: phone, vehicle or patrol", spec.Kind)
		} else if src == SourceStatus {
			ps.Add(file, key+".source", "a %s rule reads phone, vehicle or patrol readings; status reports are for status rules", spec.Kind)
		}
	}
	rule.Source = src
	silenceKind := model.Kind("")
	if rule.Kind == KindSilence {
		silenceKind = src.deviceKind()
		rule.Source = SourceNone
	}

	// Severity.
	rule.Severity = spec.Severity
	if rule.Severity == "" {
		rule.Severity = DefaultSeverity
	} else if !severities[rule.Severity] {
		ps.Add(file, key+".severity", "unknown severity %q (critical, high, medium, low)", spec.Severity)
	}

	// Sites.
	for j, s := range spec.Sites {
		switch {
		case !sitePattern.MatchString(s):
			ps.Add(file, fmt.Sprintf("%s.sites[%d]", key, j), "site %q must match [a-z0-9-]{1,32}", s)
		case !rs.sites[s]:
			// A typo (mld for mdl) would switch the rule off without a word.
			known := "no device is registered at any site"
			if len(rs.sites) > 0 {
				known = "sites: " + strings.Join(slices.Sorted(maps.Keys(rs.sites)), ", ")
			}
			ps.Add(file, fmt.Sprintf("%s.sites[%d]", key, j), "no device is registered at site %q (%s)", s, known)
		}
	}
	rule.sites = slices.Clone(spec.Sites)
	slices.Sort(rule.sites)
	rule.sites = slices.Compact(rule.sites)
	rule.devKind = silenceKind

	// An enter/exit rule without zones watches them all: it would never
	// fire for a zone its hysteresis is as deep as, without a word.
	if k := Kind(spec.Kind); (k == KindEnter || k == KindExit) && len(spec.Zones) == 0 && spec.HysteresisM > 0 && rs.Zones != nil && rs.Zones.Len() > 0 {
		var shallow []string
		deepest := 0.0
		rs.Zones.All(func(z *zone.Zone) bool {
			deepest = max(deepest, z.MaxDepthM())
			if spec.HysteresisM >= z.MaxDepthM() {
				shallow = append(shallow, fmt.Sprintf("%q (%.1f m)", z.ID, z.MaxDepthM()))
			}
			return true
		})
		switch {
		case spec.HysteresisM >= deepest:
			ps.Add(file, key+".hysteresis_m", "%g m is at least as deep as any point of any zone is inside it (at most %.1f m): the rule could never fire", spec.HysteresisM, deepest)
		case len(shallow) > 0:
			slices.Sort(shallow)
			more := ""
			if len(shallow) > 5 {
				more = fmt.Sprintf(" and %d more", len(shallow)-5)
				shallow = shallow[:5]
			}
			ps.Add(file, key+".hysteresis_m", "%g m is at least as deep as any point of zone %s%s is inside it: the rule watches every zone, and could never fire for these; "+
				"list the zones it is for in zones, or lower hysteresis_m", spec.HysteresisM, strings.Join(shallow, ", "), more)
		}
	}

	// Zones.
	fp := fingerprintInput{Rule: fingerprintSpec(spec)}
	if len(spec.Zones) > 0 {
		rule.zoneSet = make(map[*zone.Zone]int32, len(spec.Zones))
	}
	for j, id := range spec.Zones {
		var z *zone.Zone
		if rs.Zones != nil {
			z = rs.Zones.Get(id)
		}
		if z == nil {
			// A zone defined but refused has its own problem: naming it
			// again on every rule that uses it is noise.
			if _, defined := zoneSpecs[id]; !defined {
				ps.Add(file, fmt.Sprintf("%s.zones[%d]", key, j), "unknown zone %q", id)
			}
			continue
		}
		if _, dup := rule.zoneSet[z]; dup {
			continue
		}
		rule.zoneSet[z] = int32(len(rule.zones))
		rule.zones = append(rule.zones, z)
		if h := spec.HysteresisM; (Kind(spec.Kind) == KindEnter || Kind(spec.Kind) == KindExit) && h > 0 && h >= z.MaxDepthM() {
			// Inside takes more than hysteresis_m past the edge: no point
			// of this zone is that far in, and the rule would never fire.
			ps.Add(file, key+".hysteresis_m", "%g m is at least as deep as any point of zone %q is inside it (at most %.1f m): the rule could never fire", h, id, z.MaxDepthM())
		}
		fp.addZone(zoneSpecs[id], z)
	}
	if (Kind(spec.Kind) == KindEnter || Kind(spec.Kind) == KindExit) && len(spec.Zones) == 0 && rs.Zones != nil {
		// It watches every zone: who is inside which was worked out on
		// their shapes, which a reload that redraws one must not keep (a
		// patrol standing still would have "left" the zone).
		var all []*zone.Zone
		rs.Zones.All(func(z *zone.Zone) bool {
			all = append(all, z)
			return true
		})
		slices.SortFunc(all, func(a, b *zone.Zone) int { return strings.Compare(a.ID, b.ID) })
		for _, z := range all {
			fp.addZone(zoneSpecs[z.ID], z)
		}
	}

	// Watchlist.
	if spec.Watchlist != "" {
		l := rs.Watchlists[spec.Watchlist]
		ws, declared := lists[spec.Watchlist]
		switch {
		case !declared:
			ps.Add(file, key+".watchlist", "unknown watchlist %q", spec.Watchlist)
		case l == nil || l.Kind == "":
			// Its own problems were reported where it is defined.
		case !watchKindFits(src, l.Kind):
			what := src.String() + " rule"
			if src == SourceNone {
				what = string(rule.Kind) + " rule"
			}
			ps.Add(file, key+".watchlist", "watchlist %q holds %s values, which a %s cannot match (phone: imsi, imei or mac; vehicle: plate)",
				spec.Watchlist, l.Kind, what)
		default:
			rule.watch = l
			rule.watchID = watchIdentOf(l.Kind)
			rule.watchSlot = slices.Index(rs.lists, l)
			fp.Watchlist = &ws
			if ws.File != "" {
				fp.WatchlistFile = l.Digest()
			}
		}
	}

	// Schedule.
	if spec.Schedule != nil {
		rule.sched = compileSchedule(spec.Schedule, opts.Location, file, key+".schedule", ps)
	}

	// when (where the kind takes one: otherwise said above).
	if spec.When != "" && allowed["when"] {
		rule.when = compileWhen(spec.When, rule.Source, file, key+".when", ps)
		rule.whenZone = usesZone(rule.when)
		if rule.Kind == KindStatus {
			rule.statusReads = statusFieldsRead(rule.when)
		}
		if rule.when != nil {
			rule.whenFast = compileFast(rule.when.Node(), rule.Source)
		}
	} else if rule.Kind == KindStatus {
		ps.Add(file, key+".when", "a status rule needs `when`, a condition on the status fields (e.g. tamper || battery_pct < 15)")
	}

	// Per-kind keys.
	rule.cooldown = defaultCooldown(rule.Kind)
	if spec.Cooldown != nil { // 0s is a choice: every matching reading fires
		rule.cooldown = spec.Cooldown.D()
		if rule.cooldown < 0 {
			ps.Add(file, key+".cooldown", "must not be negative")
		}
	}
	rule.repeat = spec.RepeatInterval.D()
	if rule.repeat < 0 {
		ps.Add(file, key+".repeat_interval", "must not be negative")
	}
	switch rule.Kind {
	case KindCount:
		rule.window, rule.threshold = spec.Window.D(), spec.Threshold
		if rule.window <= 0 {
			ps.Add(file, key+".window", "a count rule needs a window > 0 (e.g. 15m)")
		}
		if rule.threshold > MaxCountThreshold {
			ps.Add(file, key+".threshold", "at most %d: a window holds at most %d subjects, and one at its bound forgets the oldest of a few to make room, so a threshold near the bound would resolve early", MaxCountThreshold, MaxSubjectsPerZone)
		}
		if rule.threshold < 1 {
			ps.Add(file, key+".threshold", "a count rule needs a threshold >= 1")
		}
	case KindDwell:
		rule.duration, rule.maxGap = spec.Duration.D(), spec.MaxGap.D()
		if rule.duration <= 0 {
			ps.Add(file, key+".duration", "a dwell rule needs a duration > 0 (e.g. 45m)")
		}
		if rule.maxGap < 0 {
			ps.Add(file, key+".max_gap", "must not be negative")
		}
		if rule.maxGap == 0 {
			rule.maxGap = DefaultMaxGap
		}
	case KindVelocity:
		rule.maxKmh = spec.MaxKmh
		if !(rule.maxKmh > 0) || math.IsInf(rule.maxKmh, 0) {
			ps.Add(file, key+".max_kmh", "a velocity rule needs max_kmh > 0 (e.g. 180)")
		}
	case KindEnter, KindExit:
		rule.hysteresis = spec.HysteresisM
		if rule.hysteresis < 0 || math.IsNaN(rule.hysteresis) || math.IsInf(rule.hysteresis, 0) {
			ps.Add(file, key+".hysteresis_m", "must be a distance >= 0 in metres")
		}
	case KindSilence:
		rule.after = spec.After.D()
		if rule.after <= 0 {
			ps.Add(file, key+".after", "a silence rule needs after > 0 (e.g. 10m); devices with expect_every use their own")
		}
	}

	// Notify: deduplicated and sorted once here.
	for j, u := range spec.Notify {
		if strings.TrimSpace(u) == "" {
			ps.Add(file, fmt.Sprintf("%s.notify[%d]", key, j), "empty unit name")
		} else if msg := config.LineProblem(u); msg != "" {
			ps.Add(file, fmt.Sprintf("%s.notify[%d]", key, j), "%s", msg)
		}
	}
	if msg := config.LineProblem(spec.Summary); msg != "" {
		ps.Add(file, key+".summary", "%s", msg)
	}
	rule.notify = slices.Clone(spec.Notify)
	slices.Sort(rule.notify)
	rule.notify = slices.Compact(rule.notify)

	if len(*ps) > n {
		return nil
	}
	rule.fingerprint = fingerprint(fp)
	return rule
}

// watchKindFits reports whether a watchlist of kind k can be matched
// against readings of source s.
func watchKindFits(s Source, k string) bool {
	switch s {
	case SourcePhone:
		return k == "imsi" || k == "imei" || k == "mac"
	case SourceVehicle:
		return k == "plate"
	}
	return false
}

// compileWhen compiles a `when` expression once, against the typed
// environment of the source, so that typos and type errors are problems.
func compileWhen(src string, s Source, file, key string, ps *config.Problems) *vm.Program {
	env := envPrototype(s)
	if env == nil {
		ps.Add(file, key, "this rule reads no readings, so `when` has nothing to test")
		return nil
	}
	if env, field := readsEnv(src); env {
		// Through $env an absent number reads as 0 (the guard sees names,
		// not $env.battery_pct), and a rule without zones tests $env.zone
		// against "" only: `battery_pct < 15` would fire on every report
		// without a battery reading.
		if field == "" {
			field = "battery_pct"
		}
		ps.Add(file, key, "reads $env: name the field itself (%s, not $env.%s or $env[%q])", field, field, field)
		return nil
	}
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool(), expr.Patch(newAbsentGuard(src, optionalNumbers[s])))
	if err != nil {
		ps.Add(file, key, "%s%s", whenError(err), whenHint(err, env))
		return nil
	}
	if msg := neverEqual(src, s); msg != "" {
		ps.Add(file, key, "%s", msg)
		return nil
	}
	return prog
}

// storedForms says, per source, how the decoder stores the text fields a
// `when` compares with literals: a literal in another form can never
// equal the field (`direction == "OUTBOUND"`, `plate_color == "Blue"`),
// and the rule would never fire with `check` saying ok. Each check returns
// why v is never stored, or "". Site and device (every source) follow.
var storedForms = map[Source]map[string]func(string) string{
	SourceVehicle: {
		"direction": func(v string) string {
			if v == "" || v == "inbound" || v == "outbound" || v == "unknown" {
				return "" // "": a pass without one
			}
			return "direction is stored as inbound, outbound or unknown (empty when the pass has none)"
		},
		"plate_color":  codeForm("plate_color", false),
		"vehicle_type": codeForm("vehicle_type", true),
		"plate": func(v string) string {
			n := model.NormalisePlate(v)
			if model.IsNoPlate(n) {
				n = model.NoPlate
			}
			if n != v {
				return fmt.Sprintf("plates are stored in their normal form (%q)", n)
			}
			return ""
		},
	},
	SourcePhone: {
		"tech": func(v string) string {
			for _, c := range []byte(v) {
				if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte(" ._/+-", c) >= 0) {
					return fmt.Sprintf("tech is stored in lower case, of a-z 0-9 space . _ / + - (%q)", storedCode(v, false))
				}
			}
			return ""
		},
		"imsi": digitsForm("imsi"), "imei": digitsForm("imei"), "mcc": digitsForm("mcc"), "mnc": digitsForm("mnc"),
		"operator": digitsForm("operator"),
		"mac": func(v string) string {
			for _, c := range []byte(v) {
				if !('a' <= c && c <= 'f' || '0' <= c && c <= '9' || c == ':') {
					return "MAC addresses are stored as lower-case hex pairs joined by colons (a4:5e:60:12:34:56)"
				}
			}
			return ""
		},
	},
}

// commonForms are the storedForms of the fields of every source.
var commonForms = map[string]func(string) string{
	"site": func(v string) string {
		if !sitePattern.MatchString(v) {
			return "sites are [a-z0-9-]{1,32}"
		}
		return ""
	},
	"device": func(v string) string {
		if !idPattern.MatchString(v) {
			return "device ids are [A-Za-z0-9_-]{1,64}"
		}
		return ""
	},
}

// codeForm is the storedForms check of a code the decoder stores as a tag
// (see its optCode): half-width, trimmed, its ASCII letters in one case.
func codeForm(field string, upper bool) func(string) string {
	letters := "lower"
	if upper {
		letters = "upper"
	}
	return func(v string) string {
		if c := storedCode(v, upper); c != v {
			return fmt.Sprintf("%s is stored half-width, trimmed, in %s case (%q)", field, letters, c)
		}
		return ""
	}
}

// storedCode is v as the decoder stores a code.
func storedCode(v string, upper bool) string {
	var b strings.Builder
	for _, r := range v {
		r, ok := model.CodeRune(r)
		if !ok {
			continue
		}
		switch {
		case upper && 'a' <= r && r <= 'z':
			r -= 'a' - 'A'
		case !upper && 'A' <= r && r <= 'Z':
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return strings.Trim(b.String(), " ")
}

// digitsForm is the storedForms check of a field of digits only.
func digitsForm(field string) func(string) string {
	return func(v string) string {
		for _, c := range []byte(v) {
			if c < '0' || c > '9' {
				return field + " is stored as digits only"
			}
		}
		return ""
	}
}

// neverEqual names the first comparison (==, != or in) in expression src of
// a field of source s with a string literal the field is never stored as.
func neverEqual(src string, s Source) string {
	forms := storedForms[s]
	tree, err := parser.Parse(src)
	if err != nil {
		return ""
	}
	var msg string
	check := func(field ast.Node, lit ast.Node) {
		id, ok := field.(*ast.IdentifierNode)
		if !ok || msg != "" {
			return
		}
		form := forms[id.Value]
		if form == nil {
			form = commonForms[id.Value]
		}
		if form == nil {
			return
		}
		var lits []*ast.StringNode
		switch l := lit.(type) {
		case *ast.StringNode:
			lits = append(lits, l)
		case *ast.ArrayNode:
			for _, n := range l.Nodes {
				if sn, ok := n.(*ast.StringNode); ok {
					lits = append(lits, sn)
				}
			}
		}
		for _, l := range lits {
			if why := form(l.Value); why != "" {
				msg = fmt.Sprintf("%s is never %q (the comparison is always false, or always true with !=): %s", id.Value, l.Value, why)
				return
			}
		}
	}
	ast.Find(tree.Node, func(n ast.Node) bool {
		if b, ok := n.(*ast.BinaryNode); ok {
			switch b.Operator {
			case "==", "!=":
				check(b.Left, b.Right)
				check(b.Right, b.Left)
			case "in", "not in":
				check(b.Left, b.Right)
			}
		}
		return false
	})
	return msg
}

// readsEnv reports whether src reads the variable $env, the whole
// environment, and the first field it names through it, if any (for the
// problem's example).
func readsEnv(src string) (found bool, field string) {
	tree, err := parser.Parse(src)
	if err != nil {
		return false, "" // expr.Compile reports it
	}
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		switch n := (*n).(type) {
		case *ast.IdentifierNode:
			found = found || n.Value == "$env"
		case *ast.MemberNode:
			id, ok := n.Node.(*ast.IdentifierNode)
			if p, isStr := n.Property.(*ast.StringNode); ok && isStr && id.Value == "$env" && field == "" {
				field = p.Value
			}
		}
	}))
	return found, field
}

// absentGuard rewrites each comparison or membership test that reads an
// optional number x, and each negation of one, into `has_x && (test)`, so
// that a reading lacking x never satisfies it. It reads x directly (`rssi > -80`), through
// arithmetic or a call (`abs(rssi) < 80`, `rssi + 0 > -80`), or through a
// `let` variable; a test that reads has_x itself handles the absence its
// own way (`(has_rssi ? rssi : 0) > -80`) and is left alone.
type absentGuard struct {
	optional map[string]bool
	lets     map[string][]string // a let variable: the optional numbers its value reads
	// ours are the has_x the guard put in: reading them is not the
	// expression handling the absence itself.
	ours map[*ast.IdentifierNode]bool
}

// newAbsentGuard prepares the guard of expression src: its let variables
// are found in a tree of its own (the patch sees a comparison before the
// let around it).
func newAbsentGuard(src string, optional map[string]bool) absentGuard {
	g := absentGuard{optional: optional, lets: map[string][]string{}, ours: map[*ast.IdentifierNode]bool{}}
	tree, err := parser.Parse(src)
	if err != nil {
		return g // expr.Compile reports it
	}
	var decls []*ast.VariableDeclaratorNode
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		if d, ok := (*n).(*ast.VariableDeclaratorNode); ok {
			decls = append(decls, d)
		}
	}))
	// Walk lists a let after the lets inside it; an outer one first, so
	// that `let a = rssi; let b = a + 1; b > 0` knows a when it reads b.
	for _, d := range slices.Backward(decls) {
		g.lets[d.Name] = g.reads(d.Value)
	}
	return g
}

// reads returns the optional numbers n reads without reading their has_
// companion, sorted.
func (g absentGuard) reads(n ast.Node) []string {
	read, has := map[string]bool{}, map[string]bool{}
	ast.Walk(&n, visitFunc(func(n *ast.Node) {
		id, ok := (*n).(*ast.IdentifierNode)
		if !ok || g.ours[id] {
			return
		}
		switch {
		case g.optional[id.Value]:
			read[id.Value] = true
		case strings.HasPrefix(id.Value, "has_") && g.optional[id.Value[len("has_"):]]:
			has[id.Value[len("has_"):]] = true
		default:
			for _, x := range g.lets[id.Value] {
				read[x] = true
			}
		}
	}))
	var out []string
	for x := range read {
		if !has[x] {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

func (g absentGuard) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode, *ast.UnaryNode:
		if !isTest(n) {
			return
		}
	case *ast.BuiltinNode:
		g.guardClosures(n)
		// A predicate over a list is a test itself: false as a whole when
		// a number of its list is absent, its negative form (none) too.
		switch n.Name {
		case "all", "any", "none", "one":
		default:
			return
		}
	default:
		return
	}
	g.guard(node, g.reads(*node))
}

// isTest reports whether n is a comparison, a membership test or a
// negation: the tests an absent number makes false. A negated test of an
// absent number is no truer than the test (SQL's NOT NULL): `!(battery_pct
// >= 15)`, `battery_pct not in [50, 60]` are false for a report without a
// battery reading.
func isTest(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "<", "<=", ">", ">=", "==", "!=", "in":
			return true
		}
	case *ast.UnaryNode:
		return n.Operator == "!" || n.Operator == "not"
	}
	return false
}

// guard puts `has_x && ` in front of the test at node for each optional
// number x of xs.
func (g absentGuard) guard(node *ast.Node, xs []string) {
	if len(xs) == 0 {
		return
	}
	guarded := *node
	for _, x := range slices.Backward(xs) {
		has := &ast.IdentifierNode{Value: "has_" + x}
		g.ours[has] = true
		guarded = &ast.BinaryNode{Operator: "&&", Left: has, Right: guarded}
	}
	ast.Patch(node, guarded)
}

// guardClosures guards the tests in the closures of builtin n by the
// absent numbers of the list n iterates: a closure reads them as `#`, which
// a comparison's guard cannot see, so `map([rssi], # > -80)` made true for
// a detection without rssi, whatever took it out (`[0]`, `first`, `last`,
// a map literal's member), and `reduce([rssi], # > -80, false)` too.
func (g absentGuard) guardClosures(n *ast.BuiltinNode) {
	if len(n.Arguments) < 2 {
		return
	}
	xs := g.reads(n.Arguments[0])
	if len(xs) == 0 {
		return
	}
	for _, arg := range n.Arguments[1:] {
		c, ok := arg.(*ast.PredicateNode)
		if !ok {
			continue
		}
		ast.Walk(&c.Node, visitFunc(func(m *ast.Node) {
			if isTest(*m) && readsElement(*m) {
				g.guard(m, xs)
			}
		}))
	}
}

// readsElement reports whether n reads a closure's element (#, #acc, …).
func readsElement(n ast.Node) bool {
	found := false
	ast.Walk(&n, visitFunc(func(m *ast.Node) {
		if _, ok := (*m).(*ast.PointerNode); ok {
			found = true
		}
	}))
	return found
}

// visitFunc is an ast.Visitor of one function.
type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

// whenError turns expr's multi-line error into one line with the column.
func whenError(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := fe.Message
		if fe.Column >= 0 {
			return fmt.Sprintf("cannot compile expression: %s (column %d)", msg, fe.Column+1)
		}
		return "cannot compile expression: " + msg
	}
	return "cannot compile expression: " + strings.ReplaceAll(err.Error(), "\n", " ")
}

// whenHint says what a `when` that did not compile (err) likely meant: the
// field a misspelt name is close to (batery_pct), == for a comparison
// written with =.
func whenHint(err error, env any) string {
	msg := err.Error()
	if m := unknownName.FindStringSubmatch(msg); m != nil {
		if best, ok := config.Closest(m[1], envNames(reflect.TypeOf(env))); ok {
			return fmt.Sprintf(" (did you mean %q?)", best)
		}
	}
	if strings.Contains(msg, `unexpected token Operator("=")`) {
		return " (a comparison is written ==)"
	}
	return ""
}

var unknownName = regexp.MustCompile(`unknown name ([A-Za-z_][A-Za-z0-9_]*)`)

// envNames are the names an environment struct gives `when` (expr tags),
// its embedded structs' too.
func envNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			names = append(names, envNames(f.Type)...)
		} else if n := f.Tag.Get("expr"); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// compileDevices validates the device list and builds the registry.
func compileDevices(specs []config.DeviceSpec, file string, ps *config.Problems) *model.Registry {
	devs := make([]model.Device, 0, len(specs))
	seen := make(map[string]int, len(specs))
	for i, s := range specs {
		key := fmt.Sprintf("devices[%d]", i)
		ok := true
		bad := func(k, format string, args ...any) {
			ps.Add(file, key+k, format, args...)
			ok = false
		}
		switch {
		case s.ID == "":
			bad(".id", "missing device id")
		case !idPattern.MatchString(s.ID):
			bad(".id", "device id %q must match [A-Za-z0-9_-]{1,64}", s.ID)
		default:
			if j, dup := seen[s.ID]; dup {
				bad(".id", "duplicate device id %q (also devices[%d])", s.ID, j)
			}
			seen[s.ID] = i
		}
		if !model.Kind(s.Kind).Valid() {
			bad(".kind", "device kind %q must be fence, checkpoint or patrol", s.Kind)
		}
		if !sitePattern.MatchString(s.Site) {
			bad(".site", "site %q must match [a-z0-9-]{1,32}", s.Site)
		}
		if msg := config.LineProblem(s.Name); msg != "" {
			bad(".name", "%s", msg)
		}
		d := model.Device{ID: s.ID, Kind: model.Kind(s.Kind), Site: s.Site, Name: s.Name, ExpectEvery: s.ExpectEvery.D()}
		switch {
		case s.Lat == nil && s.Lon != nil:
			bad(".lat", "missing: lat and lon go together, give both or neither")
		case s.Lon == nil && s.Lat != nil:
			bad(".lon", "missing: lat and lon go together, give both or neither")
		case s.Lat != nil:
			if !(*s.Lat >= -90 && *s.Lat <= 90) {
				bad(".lat", "latitude %v out of range [-90, 90]", *s.Lat)
			}
			if !(*s.Lon >= -180 && *s.Lon <= 180) {
				bad(".lon", "longitude %v out of range [-180, 180]", *s.Lon)
			}
			d.Pos, d.HasPos = model.Point{Lat: *s.Lat, Lon: *s.Lon}, true
		}
		switch e := s.ExpectEvery.D(); {
		case e < 0:
			bad(".expect_every", "must not be negative")
		case e > 0 && e < time.Second:
			// 1ns (a unit forgotten) would have a silence rule fire at
			// every tick.
			bad(".expect_every", "%v is shorter than a second (a unit missing? e.g. 10m)", e)
		}
		if ok {
			devs = append(devs, d)
		}
	}
	return model.NewRegistry(devs)
}

// fingerprintInput is what makes a rule behave the way it does: its spec
// and the specs of the zones and watchlist it references — with what the
// files these name hold (a spec names only the file): an edited zone file
// is a changed zone, as an edited inline zone is. A GeoJSON zone counts by
// its shape (zone.Digest), not by its YAML form; a zone's units and name
// do not count (new alerts take them up all the same).
type fingerprintInput struct {
	Rule          config.RuleSpec
	Zones         []config.ZoneSpec // without their GeoJSON
	Watchlist     *config.WatchlistSpec
	ZoneShapes    []string `json:",omitempty"` // Digest of each GeoJSON zone
	WatchlistFile string   `json:",omitempty"` // Digest of the watchlist, if it has a file
}

// addZone adds zone z, of spec zs, to the fingerprint.
func (fp *fingerprintInput) addZone(zs *config.ZoneSpec, z *zone.Zone) {
	if zs == nil {
		return
	}
	spec := *zs
	// Units and name say who is told and how the zone reads in a summary,
	// not what the rule does: adding a unit must not close and raise again
	// every open incident of the zone.
	spec.Units, spec.Name = nil, ""
	if spec.GeoJSON != nil || spec.File != "" {
		// Its shape, not its YAML form, its file's name or whether it is
		// inline.
		spec.GeoJSON, spec.File = nil, ""
		fp.ZoneShapes = append(fp.ZoneShapes, z.Digest())
	}
	fp.Zones = append(fp.Zones, spec)
}

// fingerprintSpec is spec as its fingerprint reads it: a list written empty
// (`notify: []`) is the list left out, not a change of the rule that would
// close its open incidents.
func fingerprintSpec(spec config.RuleSpec) config.RuleSpec {
	for _, l := range []*[]string{&spec.Sites, &spec.Zones, &spec.Notify} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return spec
}

func fingerprint(in fingerprintInput) string {
	b, err := json.Marshal(in)
	if err != nil {
		// Not expected: what is left of the specs is plain data.
		b = []byte(err.Error())
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}
