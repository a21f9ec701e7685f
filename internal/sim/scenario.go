package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// Scenario is a scenario file (config/examples/scenario.yaml documents every key).
type Scenario struct {
	RulesFile string           `yaml:"rules_file"`
	Seed      uint64           `yaml:"seed"`
	Duration  config.Duration  `yaml:"duration"`
	Timezone  string           `yaml:"timezone"`
	Night     Window           `yaml:"night"`
	Cadence   Cadence          `yaml:"cadence"`
	Rhythm    Rhythm           `yaml:"rhythm"`
	Phones    PhoneMix         `yaml:"phones"`
	Vehicles  VehicleMix       `yaml:"vehicles"`
	Places    map[string]Place `yaml:"places"`
	Roads     []RoadSpec       `yaml:"roads"`
	Fences    []FenceSpec      `yaml:"fences"`
	Patrols   []PatrolSpec     `yaml:"patrols"`
	Incidents []IncidentSpec   `yaml:"incidents"`

	// Path is the file the scenario was read from.
	Path string `yaml:"-"`
	// Location is Timezone loaded.
	Location *time.Location `yaml:"-"`
	// Rules is the compiled rules file: the registry of devices the
	// simulator drives and the watchlists ordinary traffic must avoid.
	Rules *engine.Ruleset `yaml:"-"`
}

// Clock is a time of day in minutes after midnight, written "HH:MM"
// ("24:00" is the end of the day).
type Clock int

// UnmarshalText parses "HH:MM".
func (c *Clock) UnmarshalText(b []byte) error {
	var h, m int
	if n, err := fmt.Sscanf(string(b), "%d:%d", &h, &m); err != nil || n != 2 || len(b) != 5 ||
		h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return fmt.Errorf("invalid time of day %q (want HH:MM)", string(b))
	}
	*c = Clock(h*60 + m)
	return nil
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// Window is a daily window [From, To); From > To wraps midnight.
type Window struct {
	From Clock `yaml:"from"`
	To   Clock `yaml:"to"`
}

// Contains reports whether the minute of the day m falls in the window.
func (w Window) Contains(m int) bool {
	if w.From <= w.To {
		return Clock(m) >= w.From && Clock(m) < w.To
	}
	return Clock(m) >= w.From || Clock(m) < w.To
}

// Cadence is how often devices report.
type Cadence struct {
	FenceScan        config.Duration `yaml:"fence_scan"`
	FenceStatus      config.Duration `yaml:"fence_status"`
	CheckpointStatus config.Duration `yaml:"checkpoint_status"`
	PatrolFix        config.Duration `yaml:"patrol_fix"`
	PatrolStatus     config.Duration `yaml:"patrol_status"`
}

// Rhythm scales rates by the local hour (24 values in [0, 1]).
type Rhythm struct {
	Phones   []float64 `yaml:"phones"`
	Vehicles []float64 `yaml:"vehicles"`
}

// PhoneMix is the make-up of ordinary phones.
type PhoneMix struct {
	Operators     []Weighted[string] `yaml:"operators"`
	Tech          []Weighted[string] `yaml:"tech"`
	IMEIShare     float64            `yaml:"imei_share"`
	MACShare      float64            `yaml:"mac_share"`
	WifiOnlyShare float64            `yaml:"wifi_only_share"`
	Detect        float64            `yaml:"detect"`
}

// Weighted is one choice of a weighted list; its value key is named after
// what it holds (mnc, tech, prefix, color).
type Weighted[T any] struct {
	Value  T
	Weight float64
}

// UnmarshalYAML reads {<name>: value, weight: w} with exactly those two keys.
func (w *Weighted[T]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want {<value key>: …, weight: …}", n.Line)
	}
	seenValue := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Value == "weight":
			if err := v.Decode(&w.Weight); err != nil {
				return fmt.Errorf("line %d: weight: %w", v.Line, err)
			}
		case !seenValue:
			if err := v.Decode(&w.Value); err != nil {
				return fmt.Errorf("line %d: %s: %w", v.Line, k.Value, err)
			}
			seenValue = true
		default:
			return fmt.Errorf("line %d: unexpected key %q", k.Line, k.Value)
		}
	}
	if !seenValue {
		return fmt.Errorf("line %d: a value key is missing", n.Line)
	}
	return nil
}

// VehicleMix is the make-up of ordinary vehicles.
type VehicleMix struct {
	Plates         []Weighted[string] `yaml:"plates"`
	NewEnergyShare float64            `yaml:"new_energy_share"`
	UnreadShare    float64            `yaml:"unread_share"`
	Types          []VehicleType      `yaml:"types"`
	Colors         []Weighted[string] `yaml:"colors"`
	Rest           [2]config.Duration `yaml:"rest"`
}

// VehicleType is a vehicle type code (GA 24.4) with its share.
type VehicleType struct {
	Code       string  `yaml:"code"`
	Weight     float64 `yaml:"weight"`
	PlateColor string  `yaml:"plate_color"`
	MaxKmh     float64 `yaml:"max_kmh"`
}

// Place is where trips begin and end.
type Place struct {
	Lat  float64 `yaml:"lat"`
	Lon  float64 `yaml:"lon"`
	Name string  `yaml:"name"`
	// MongolianShare of the vehicles based here carry Mongolian plates.
	MongolianShare float64 `yaml:"mongolian_share"`
}

// RoadSpec is a road: places and checkpoints in outbound order.
type RoadSpec struct {
	ID      string     `yaml:"id"`
	Name    string     `yaml:"name"`
	Via     []string   `yaml:"via"`
	PerHour float64    `yaml:"per_hour"`
	Speed   [2]float64 `yaml:"speed"`
}

// FenceSpec drives one phone e-fence unit.
type FenceSpec struct {
	Device      string      `yaml:"device"`
	Power       string      `yaml:"power"`
	MaxDistinct int         `yaml:"max_distinct"`
	Visits      []VisitSpec `yaml:"visits"`
}

// VisitSpec is one kind of ordinary visit to a fence unit's site.
type VisitSpec struct {
	Who     string             `yaml:"who"`
	Pool    int                `yaml:"pool"`
	PerHour float64            `yaml:"per_hour"`
	Group   [2]int             `yaml:"group"`
	Stay    [2]config.Duration `yaml:"stay"`
	Hours   *[2]Clock          `yaml:"hours"`
}

// LatLon is a WGS84 position written [lat, lon].
type LatLon [2]float64

func (p LatLon) point() model.Point { return model.Point{Lat: p[0], Lon: p[1]} }

// PatrolSpec drives one patrol team.
type PatrolSpec struct {
	Device string   `yaml:"device"`
	Speed  float64  `yaml:"speed"`
	Night  string   `yaml:"night"` // patrol | park
	Datum  string   `yaml:"datum"` // wgs84 | gcj02
	Route  []LatLon `yaml:"route"`
}

// IncidentSpec is one scripted incident: exactly one of its kinds.
type IncidentSpec struct {
	ID          string          `yaml:"id"`
	What        string          `yaml:"what"`
	At          config.Duration `yaml:"at"`
	Expect      []string        `yaml:"expect"`
	ExpectNight []string        `yaml:"expect_night"`

	Phones      *PhonesIncident      `yaml:"phones"`
	Vehicle     *VehicleIncident     `yaml:"vehicle"`
	ClonedPlate *ClonedPlateIncident `yaml:"cloned_plate"`
	PowerLoss   *PowerLossIncident   `yaml:"power_loss"`
	Patrol      *PatrolIncident      `yaml:"patrol"`
}

// PhonesIncident: count phones arrive at a fence unit over ArriveOver and
// stay for Stay. MCC/MNC default to an ordinary Chinese operator.
type PhonesIncident struct {
	Device     string          `yaml:"device"`
	Count      int             `yaml:"count"`
	MCC        string          `yaml:"mcc"`
	MNC        string          `yaml:"mnc"`
	ArriveOver config.Duration `yaml:"arrive_over"`
	Stay       config.Duration `yaml:"stay"`
}

// VehicleIncident: one vehicle's trip along a road at a fixed speed.
type VehicleIncident struct {
	Plate string  `yaml:"plate"`
	Type  string  `yaml:"type"`
	Color string  `yaml:"color"`
	Road  string  `yaml:"road"`
	From  string  `yaml:"from"`
	To    string  `yaml:"to"`
	Speed float64 `yaml:"speed"`
}

// ClonedPlateIncident: two different vehicles with one plate pass First
// and, After later, Second.
type ClonedPlateIncident struct {
	Plate  string          `yaml:"plate"`
	First  string          `yaml:"first"`
	Second string          `yaml:"second"`
	After  config.Duration `yaml:"after"`
}

// PowerLossIncident: a unit's battery falls to BatteryTo over SilentAfter,
// then the unit sends nothing more.
type PowerLossIncident struct {
	Device      string          `yaml:"device"`
	BatteryTo   float64         `yaml:"battery_to"`
	SilentAfter config.Duration `yaml:"silent_after"`
}

// PatrolIncident: a patrol drives to To, stays there for Stay, and goes back
// to its route.
type PatrolIncident struct {
	Device string          `yaml:"device"`
	To     LatLon          `yaml:"to"`
	Stay   config.Duration `yaml:"stay"`
}

// maxScenarioBytes bounds a scenario file: a larger one is a mistake.
const maxScenarioBytes = 4 << 20

// LoadScenario reads a scenario file strictly (unknown keys are errors),
// loads and compiles the rules file it names and checks that every device,
// place and road it references exists. All problems are returned at once.
func LoadScenario(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxScenarioBytes+1))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if len(data) > maxScenarioBytes {
		return nil, fmt.Errorf("scenario %s: larger than %d bytes", path, maxScenarioBytes)
	}
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	var extra Scenario
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("scenario %s: more than one YAML document", path)
	}
	sc.Path = path
	if err := sc.load(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// problems collects a scenario's problems, each naming the file and key.
type problems struct {
	file string
	errs []error
}

func (p *problems) add(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s: %s", p.file, key, fmt.Sprintf(format, args...)))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// load validates the scenario and loads what it references.
func (sc *Scenario) load() error {
	ps := &problems{file: sc.Path}
	if sc.RulesFile == "" {
		ps.add("rules_file", "required: the rules file whose devices the scenario drives")
		return ps.err()
	}
	rulesPath := config.Resolve(filepath.Dir(sc.Path), sc.RulesFile)
	r, err := config.LoadRules(rulesPath)
	if err != nil {
		return fmt.Errorf("%s: rules_file: %w", sc.Path, err)
	}
	tz := sc.Timezone
	if tz == "" {
		tz = engine.DefaultTimezone
	}
	sc.Location, err = time.LoadLocation(tz)
	if err != nil {
		ps.add("timezone", "%v", err)
		sc.Location = time.UTC
	}
	rs, cps := engine.Compile(r, engine.Options{Location: sc.Location})
	if len(cps) > 0 {
		return fmt.Errorf("%s: rules_file: %w", sc.Path, r.Locate(cps))
	}
	sc.Rules = rs
	sc.validate(ps)
	return ps.err()
}

func (sc *Scenario) device(id string, kind model.Kind) *model.Device {
	d := sc.Rules.Registry.Lookup(id)
	if d == nil || d.Kind != kind {
		return nil
	}
	return d
}

func (sc *Scenario) validate(ps *problems) {
	if sc.Duration < 0 {
		ps.add("duration", "must not be negative")
	}
	if sc.Night.From == sc.Night.To {
		ps.add("night", "from and to are equal")
	}
	for _, c := range []struct {
		key string
		d   config.Duration
	}{
		{"cadence.fence_scan", sc.Cadence.FenceScan}, {"cadence.fence_status", sc.Cadence.FenceStatus},
		{"cadence.checkpoint_status", sc.Cadence.CheckpointStatus}, {"cadence.patrol_fix", sc.Cadence.PatrolFix},
		{"cadence.patrol_status", sc.Cadence.PatrolStatus},
	} {
		if c.d.D() < time.Second {
			ps.add(c.key, "must be at least 1s")
		}
	}
	for key, r := range map[string][]float64{"rhythm.phones": sc.Rhythm.Phones, "rhythm.vehicles": sc.Rhythm.Vehicles} {
		if len(r) != 24 {
			ps.add(key, "want 24 values (one per hour), got %d", len(r))
		}
		for i, v := range r {
			if v < 0 || v > 1 {
				ps.add(fmt.Sprintf("%s[%d]", key, i), "want a value in [0, 1], got %g", v)
			}
		}
	}
	sc.validatePhones(ps)
	sc.validateVehicles(ps)
	sc.validatePlaces(ps)
	sc.validateRoads(ps)
	sc.validateFences(ps)
	sc.validatePatrols(ps)
	sc.validateIncidents(ps)
	// Errors from map iteration above come out in random order; sort them
	// so that a run reports the same text every time.
	slices.SortStableFunc(ps.errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
}

func share(ps *problems, key string, v float64) {
	if v < 0 || v > 1 {
		ps.add(key, "want a share in [0, 1], got %g", v)
	}
}

func weights[T any](ps *problems, key string, ws []Weighted[T]) {
	if len(ws) == 0 {
		ps.add(key, "at least one entry is needed")
	}
	for i, w := range ws {
		if w.Weight <= 0 {
			ps.add(fmt.Sprintf("%s[%d].weight", key, i), "must be positive")
		}
	}
}

func (sc *Scenario) validatePhones(ps *problems) {
	p := sc.Phones
	weights(ps, "phones.operators", p.Operators)
	for i, o := range p.Operators {
		if len(o.Value) != 2 || !allDigits(o.Value) {
			ps.add(fmt.Sprintf("phones.operators[%d].mnc", i), "want 2 digits, got %q", o.Value)
		}
	}
	weights(ps, "phones.tech", p.Tech)
	share(ps, "phones.imei_share", p.IMEIShare)
	share(ps, "phones.mac_share", p.MACShare)
	share(ps, "phones.wifi_only_share", p.WifiOnlyShare)
	share(ps, "phones.detect", p.Detect)
	if p.Detect == 0 {
		ps.add("phones.detect", "must be above 0")
	}
}

func (sc *Scenario) validateVehicles(ps *problems) {
	v := sc.Vehicles
	weights(ps, "vehicles.plates", v.Plates)
	for i, p := range v.Plates {
		if !validPlatePrefix(p.Value) {
			ps.add(fmt.Sprintf("vehicles.plates[%d].prefix", i), "want a province character and an issuing letter (蒙B), got %q", p.Value)
		}
	}
	share(ps, "vehicles.new_energy_share", v.NewEnergyShare)
	share(ps, "vehicles.unread_share", v.UnreadShare)
	if len(v.Types) == 0 {
		ps.add("vehicles.types", "at least one entry is needed")
	}
	for i, t := range v.Types {
		if t.Code == "" || t.Weight <= 0 {
			ps.add(fmt.Sprintf("vehicles.types[%d]", i), "needs a code and a positive weight")
		}
	}
	weights(ps, "vehicles.colors", v.Colors)
	if v.Rest[0] <= 0 || v.Rest[1] < v.Rest[0] {
		ps.add("vehicles.rest", "want [min, max] with 0 < min <= max")
	}
}

func validLatLon(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 && !(lat == 0 && lon == 0)
}

func (sc *Scenario) validatePlaces(ps *problems) {
	for id, p := range sc.Places {
		if sc.Rules.Registry.Lookup(id) != nil {
			ps.add("places."+id, "a place may not share its name with a device")
		}
		if !validLatLon(p.Lat, p.Lon) {
			ps.add("places."+id, "needs lat and lon")
		}
		share(ps, "places."+id+".mongolian_share", p.MongolianShare)
	}
}

func (sc *Scenario) validateRoads(ps *problems) {
	ids := map[string]bool{}
	for i, r := range sc.Roads {
		key := fmt.Sprintf("roads[%d]", i)
		if r.ID == "" || ids[r.ID] {
			ps.add(key+".id", "must be present and unique")
		}
		ids[r.ID] = true
		places := 0
		for j, v := range r.Via {
			if _, ok := sc.Places[v]; ok {
				places++
				continue
			}
			if sc.device(v, model.KindCheckpoint) == nil {
				ps.add(fmt.Sprintf("%s.via[%d]", key, j), "%q is neither a place nor a checkpoint in the rules file", v)
			} else if !sc.Rules.Registry.Lookup(v).HasPos {
				ps.add(fmt.Sprintf("%s.via[%d]", key, j), "checkpoint %s has no registered position", v)
			}
		}
		if places < 2 {
			ps.add(key+".via", "needs at least two places for trips to begin and end")
		}
		if len(r.Via) > 0 {
			if _, ok := sc.Places[r.Via[0]]; !ok {
				ps.add(key+".via", "must begin with a place")
			}
			if _, ok := sc.Places[r.Via[len(r.Via)-1]]; !ok {
				ps.add(key+".via", "must end with a place")
			}
		}
		if r.PerHour < 0 {
			ps.add(key+".per_hour", "must not be negative")
		}
		if r.Speed[0] <= 0 || r.Speed[1] < r.Speed[0] || r.Speed[1] > 300 {
			ps.add(key+".speed", "want [min, max] km/h with 0 < min <= max <= 300")
		}
	}
}

func (sc *Scenario) validateFences(ps *problems) {
	seen := map[string]bool{}
	for i, f := range sc.Fences {
		key := fmt.Sprintf("fences[%d]", i)
		if sc.device(f.Device, model.KindFence) == nil {
			ps.add(key+".device", "%q is not a fence unit in the rules file", f.Device)
		} else if !sc.Rules.Registry.Lookup(f.Device).HasPos {
			ps.add(key+".device", "fence unit %s has no registered position", f.Device)
		}
		if seen[f.Device] {
			ps.add(key+".device", "%s is driven twice", f.Device)
		}
		seen[f.Device] = true
		if f.Power != "solar" && f.Power != "mains" {
			ps.add(key+".power", "want solar or mains, got %q", f.Power)
		}
		if f.MaxDistinct <= 0 {
			ps.add(key+".max_distinct", "must be positive")
		}
		for j, v := range f.Visits {
			vk := fmt.Sprintf("%s.visits[%d]", key, j)
			if v.PerHour < 0 {
				ps.add(vk+".per_hour", "must not be negative")
			}
			if v.Group[0] < 1 || v.Group[1] < v.Group[0] {
				ps.add(vk+".group", "want [min, max] with 1 <= min <= max")
			}
			if v.Stay[0] <= 0 || v.Stay[1] < v.Stay[0] {
				ps.add(vk+".stay", "want [min, max] with 0 < min <= max")
			}
			if v.Pool < 0 {
				ps.add(vk+".pool", "must not be negative")
			}
			if v.Hours != nil && v.Hours[0] == v.Hours[1] {
				ps.add(vk+".hours", "from and to are equal")
			}
		}
	}
}

func (sc *Scenario) validatePatrols(ps *problems) {
	seen := map[string]bool{}
	for i, p := range sc.Patrols {
		key := fmt.Sprintf("patrols[%d]", i)
		if sc.device(p.Device, model.KindPatrol) == nil {
			ps.add(key+".device", "%q is not a patrol in the rules file", p.Device)
		}
		if seen[p.Device] {
			ps.add(key+".device", "%s is driven twice", p.Device)
		}
		seen[p.Device] = true
		if p.Speed <= 0 || p.Speed > 200 {
			ps.add(key+".speed", "want km/h in (0, 200]")
		}
		if p.Night != "patrol" && p.Night != "park" {
			ps.add(key+".night", "want patrol or park, got %q", p.Night)
		}
		if p.Datum != "" && p.Datum != "wgs84" && p.Datum != "gcj02" {
			ps.add(key+".datum", "want wgs84 or gcj02, got %q", p.Datum)
		}
		if len(p.Route) < 2 {
			ps.add(key+".route", "needs at least two waypoints")
		}
		for j, w := range p.Route {
			if !validLatLon(w[0], w[1]) {
				ps.add(fmt.Sprintf("%s.route[%d]", key, j), "want [lat, lon]")
			}
		}
	}
}

func (sc *Scenario) validateIncidents(ps *problems) {
	ids := map[string]bool{}
	rules := map[string]bool{}
	for _, r := range sc.Rules.Rules {
		rules[r.ID] = true
	}
	fences := map[string]bool{}
	for _, f := range sc.Fences {
		fences[f.Device] = true
	}
	patrols := map[string]bool{}
	for _, p := range sc.Patrols {
		patrols[p.Device] = true
	}
	for i, in := range sc.Incidents {
		key := fmt.Sprintf("incidents[%d]", i)
		if in.ID == "" || ids[in.ID] {
			ps.add(key+".id", "must be present and unique")
		}
		ids[in.ID] = true
		if in.At < 0 {
			ps.add(key+".at", "must not be negative")
		}
		if len(in.Expect)+len(in.ExpectNight) == 0 {
			ps.add(key+".expect", "name the rules the incident must fire")
		}
		for j, r := range slices.Concat(in.Expect, in.ExpectNight) {
			if !rules[r] {
				ps.add(fmt.Sprintf("%s.expect[%d]", key, j), "no rule %q in the rules file", r)
			}
		}
		kinds := 0
		if p := in.Phones; p != nil {
			kinds++
			if !fences[p.Device] {
				ps.add(key+".phones.device", "%q is not one of the scenario's fences", p.Device)
			}
			if p.Count < 1 {
				ps.add(key+".phones.count", "must be at least 1")
			}
			if (p.MCC == "") != (p.MNC == "") || (p.MCC != "" && (len(p.MCC) != 3 || !allDigits(p.MCC) || len(p.MNC) != 2 || !allDigits(p.MNC))) {
				ps.add(key+".phones", "mcc (3 digits) and mnc (2 digits) go together")
			}
			if p.Stay <= 0 || p.ArriveOver < 0 {
				ps.add(key+".phones.stay", "must be positive (and arrive_over not negative)")
			}
		}
		if v := in.Vehicle; v != nil {
			kinds++
			sc.validateVehicleIncident(ps, key+".vehicle", v)
		}
		if c := in.ClonedPlate; c != nil {
			kinds++
			if !validPlate(c.Plate) {
				ps.add(key+".cloned_plate.plate", "%q is not a Chinese plate", c.Plate)
			}
			for k, cp := range map[string]string{"first": c.First, "second": c.Second} {
				if sc.device(cp, model.KindCheckpoint) == nil {
					ps.add(key+".cloned_plate."+k, "%q is not a checkpoint in the rules file", cp)
				}
			}
			if c.After <= 0 {
				ps.add(key+".cloned_plate.after", "must be positive")
			}
		}
		if p := in.PowerLoss; p != nil {
			kinds++
			if !fences[p.Device] {
				ps.add(key+".power_loss.device", "%q is not one of the scenario's fences", p.Device)
			}
			if p.BatteryTo < 0 || p.BatteryTo > 100 {
				ps.add(key+".power_loss.battery_to", "want a percentage")
			}
			if p.SilentAfter <= 0 {
				ps.add(key+".power_loss.silent_after", "must be positive")
			}
		}
		if p := in.Patrol; p != nil {
			kinds++
			if !patrols[p.Device] {
				ps.add(key+".patrol.device", "%q is not one of the scenario's patrols", p.Device)
			}
			if !validLatLon(p.To[0], p.To[1]) {
				ps.add(key+".patrol.to", "want [lat, lon]")
			}
			if p.Stay < 0 {
				ps.add(key+".patrol.stay", "must not be negative")
			}
		}
		if kinds != 1 {
			ps.add(key, "want exactly one of phones, vehicle, cloned_plate, power_loss, patrol; got %d", kinds)
		}
	}
}

func (sc *Scenario) validateVehicleIncident(ps *problems, key string, v *VehicleIncident) {
	if !validPlate(v.Plate) && !validMongolianPlate(v.Plate) {
		ps.add(key+".plate", "%q is not a valid plate", v.Plate)
	}
	i := slices.IndexFunc(sc.Roads, func(r RoadSpec) bool { return r.ID == v.Road })
	if i < 0 {
		ps.add(key+".road", "no road %q", v.Road)
		return
	}
	via := sc.Roads[i].Via
	from, to := slices.Index(via, v.From), slices.Index(via, v.To)
	if _, ok := sc.Places[v.From]; !ok || from < 0 {
		ps.add(key+".from", "%q is not a place on road %s", v.From, v.Road)
	}
	if _, ok := sc.Places[v.To]; !ok || to < 0 {
		ps.add(key+".to", "%q is not a place on road %s", v.To, v.Road)
	}
	if from == to {
		ps.add(key+".to", "a trip needs two different places")
	}
	if v.Speed <= 0 || v.Speed > 300 {
		ps.add(key+".speed", "want km/h in (0, 300]")
	}
	if v.Type == "" {
		ps.add(key+".type", "required (a vehicle type code such as K33)")
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// sortedKeys returns a map's keys in order: nothing the simulator emits may
// depend on Go's map iteration order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
