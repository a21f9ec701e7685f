package config

import (
	"fmt"
	"unicode"

	"github.com/fenceline/fenceline/internal/model"
)

// Rules is the reloadable rules file: devices, zones, watchlists and rules.
type Rules struct {
	Devices    []DeviceSpec             `yaml:"devices"`
	Zones      []ZoneSpec               `yaml:"zones"`
	Watchlists map[string]WatchlistSpec `yaml:"watchlists"`
	Rules      []RuleSpec               `yaml:"rules"`

	// Path is the file it was read from; relative paths in it (zone files,
	// watchlist files) resolve against its folder.
	Path  string `yaml:"-"`
	lines keyLines
}

// DeviceSpec registers one device.
type DeviceSpec struct {
	ID          string   `yaml:"id"`
	Kind        string   `yaml:"kind"`
	Site        string   `yaml:"site"`
	Lat         *float64 `yaml:"lat"`
	Lon         *float64 `yaml:"lon"`
	Name        string   `yaml:"name"`
	ExpectEvery Duration `yaml:"expect_every"`
}

// ZoneSpec is one zone: exactly one of GeoJSON, File or Circle.
type ZoneSpec struct {
	ID    string   `yaml:"id"`
	Site  string   `yaml:"site"`
	Name  string   `yaml:"name"`
	Units []string `yaml:"units"`
	// GeoJSON is an inline geometry, Feature or FeatureCollection, kept as
	// decoded YAML (maps and slices) for the geometry compiler.
	GeoJSON any         `yaml:"geojson"`
	File    string      `yaml:"file"`
	Circle  *CircleSpec `yaml:"circle"`
}

// CircleSpec is a circular zone.
type CircleSpec struct {
	Lat     float64 `yaml:"lat"`
	Lon     float64 `yaml:"lon"`
	RadiusM float64 `yaml:"radius_m"`
}

// WatchlistSpec is a named list of plates, IMSIs, IMEIs or MACs; an entry
// ending in * matches by prefix.
type WatchlistSpec struct {
	Kind    string   `yaml:"kind"`
	Entries []string `yaml:"entries"`
	// File holds more entries, one a line; blank lines and # comments skipped.
	File string `yaml:"file"`
}

// RuleSpec is one alert rule. Which keys apply depends on Kind.
type RuleSpec struct {
	ID        string        `yaml:"id"`
	Kind      string        `yaml:"kind"`
	Source    string        `yaml:"source"`
	Sites     []string      `yaml:"sites"`
	Zones     []string      `yaml:"zones"`
	Watchlist string        `yaml:"watchlist"`
	Schedule  *ScheduleSpec `yaml:"schedule"`
	Severity  string        `yaml:"severity"`
	When      string        `yaml:"when"`
	Notify    []string      `yaml:"notify"`
	Summary   string        `yaml:"summary"`

	Cooldown       *Duration `yaml:"cooldown"` // nil: the kind's default; 0s: none
	RepeatInterval Duration  `yaml:"repeat_interval"`
	Window         Duration  `yaml:"window"`
	Threshold      int       `yaml:"threshold"`
	Duration       Duration  `yaml:"duration"`
	MaxGap         Duration  `yaml:"max_gap"`
	MaxKmh         float64   `yaml:"max_kmh"`
	HysteresisM    float64   `yaml:"hysteresis_m"`
	After          Duration  `yaml:"after"`
}

// ScheduleSpec limits a rule to time windows in a time zone.
type ScheduleSpec struct {
	TZ      string       `yaml:"tz"`
	Windows []WindowSpec `yaml:"windows"`
}

// WindowSpec is a daily window "HH:MM"–"HH:MM"; from > to wraps midnight.
// Days optionally limits it to weekdays (mon..sun) on which it starts.
type WindowSpec struct {
	From string   `yaml:"from"`
	To   string   `yaml:"to"`
	Days []string `yaml:"days"`
}

// LineProblem says what keeps s from being one line of text in an alert
// (a device's or zone's name, a rule's summary, a unit): a control
// character — a line break, a tab, an escape — or a Unicode line or
// paragraph separator. "" when there is none. The text itself is not
// quoted back.
func LineProblem(s string) string {
	for i, r := range s {
		switch {
		case r == '\n' || r == '\r':
			return fmt.Sprintf("must be one line (it goes into alerts): it holds a line break at byte %d", i)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return fmt.Sprintf("must be one line of text (it goes into alerts): it holds the control character %U at byte %d", r, i)
		case invisibleFormat(r):
			return fmt.Sprintf("must be plain text (it goes into alerts): it holds the invisible formatting character %U at byte %d, which reorders or hides what a duty officer reads", r, i)
		}
	}
	return ""
}

// invisibleFormat reports whether r garbles or hides a line of text: what
// a plate drops (model.Invisible: format characters such as a right-to-left
// override, which shows the rest of the line backwards, zero-width spaces,
// Hangul fillers…), but the zero-width joiner and non-joiner and the
// Mongolian vowel separator, which scripts of this border need.
func invisibleFormat(r rune) bool {
	return r != '\u200C' && r != '\u200D' && r != '\u180E' && model.Invisible(r)
}
