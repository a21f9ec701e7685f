package engine

import (
	"time"
	// The deployment's schedules name zones like Asia/Shanghai; minimal
	// containers (scratch, distroless) ship no zoneinfo, so embed it.
	_ "time/tzdata"
)

// Options tune the engine. Zero fields take the defaults of defaults.go.
type Options struct {
	// PatrolMaxAge: patrol positions older than this (event time of the fix
	// against processing time) are not offered as nearest patrols.
	PatrolMaxAge time.Duration
	// NearestPatrols is how many patrols an alert lists; negative: none.
	NearestPatrols int
	// LateAfter: an alert whose event time is older than this when raised
	// carries late=true.
	LateAfter time.Duration
	// Location is where summaries print local times and where schedules
	// without a tz are read (default Asia/Shanghai).
	Location *time.Location
	// HideConditionLiterals makes summaries quote a rule's `when` without
	// its string literals and long numbers (privacy on: a condition may
	// name the very IMSIs and plates the alerts hash, and next to the hash
	// of one it would say which IMSI that is).
	HideConditionLiterals bool
}

func (o Options) withDefaults() Options {
	if o.PatrolMaxAge <= 0 {
		o.PatrolMaxAge = DefaultPatrolMaxAge
	}
	if o.NearestPatrols == 0 {
		o.NearestPatrols = DefaultNearestPatrols
	}
	if o.NearestPatrols < 0 {
		o.NearestPatrols = 0
	}
	if o.LateAfter <= 0 {
		o.LateAfter = DefaultLateAfter
	}
	if o.Location == nil {
		loc, err := time.LoadLocation(DefaultTimezone)
		if err != nil { // cannot happen with time/tzdata embedded
			loc = time.UTC
		}
		o.Location = loc
	}
	return o
}
