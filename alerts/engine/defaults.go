package engine

import "time"

// Every default of the engine lives here, so that the documentation, the
// compiler and the evaluator cannot disagree about them.
const (
	// DefaultSeverity is the severity of a rule that names none.
	DefaultSeverity = "medium"

	// DefaultPresenceCooldown is how long a presence alert for one
	// rule+subject+zone suppresses the next (event time).
	DefaultPresenceCooldown = 10 * time.Minute
	// DefaultVelocityCooldown is how long a velocity alert for one subject
	// suppresses the next.
	DefaultVelocityCooldown = 10 * time.Minute
	// DefaultFenceCooldown: enter/exit rules rely on hysteresis_m to damp
	// jitter; a cooldown is only applied when the rule sets one.
	DefaultFenceCooldown = 0

	// DefaultMaxGap is the longest a dwelling subject may go unseen and
	// still count as continuously present.
	DefaultMaxGap = 10 * time.Minute

	// VelocityMinDistanceM: two sightings closer than this never make a
	// velocity alert, whatever their times (GPS noise, neighbouring
	// fences reporting the same phone).
	VelocityMinDistanceM = 1000.0
	// VelocityHorizon is how long the last sighting of a subject is kept
	// for velocity rules (processing time since it was seen).
	VelocityHorizon = 24 * time.Hour

	// FenceHorizon is how long enter/exit inside-state of a subject is kept
	// after its last position (processing time). A subject that reappears
	// inside a zone after that counts as a first sighting.
	FenceHorizon = 24 * time.Hour

	// CooldownHorizon is how long a cooldown's fire times are kept after
	// the key last matched (processing time), however short the cooldown:
	// a reading of its period that arrives later, a unit's backlog, is
	// still within it and does not fire again.
	CooldownHorizon = 24 * time.Hour

	// MaxEvidence bounds the evidence of one alert.
	MaxEvidence = 10
	// MaxTrackedPerRule bounds the subjects one rule tracks (cooldowns,
	// dwell timers, velocity sightings, inside-states). Past it an
	// arbitrary entry is evicted and counted in state_evicted_total.
	MaxTrackedPerRule = 100_000
	// MaxSubjectsPerZone bounds the distinct subjects one count window
	// keeps per zone; past it new subjects are counted as evicted, not
	// stored (the count is then at least this, far above any threshold).
	MaxSubjectsPerZone = 20_000
	// MaxCountThreshold is the highest threshold of a count rule: half
	// the window's bound, so that a window at its bound, which forgets the
	// oldest of a few subjects rather than the very oldest, still counts
	// well above it.
	MaxCountThreshold = MaxSubjectsPerZone / 2
	// cooldownSlots is how many fire times one cooldown key remembers, so
	// that late data replayed for an old period does not re-raise the
	// alert for every reading while live data keeps its own slot.
	cooldownSlots = 4

	// idHexLen is the length of an alert id: 80 bits of sha256.
	idHexLen = 20

	// DefaultPatrolMaxAge, DefaultNearestPatrols, DefaultLateAfter and
	// DefaultTimezone fill zero Options.
	DefaultPatrolMaxAge   = 30 * time.Minute
	DefaultNearestPatrols = 3
	DefaultLateAfter      = 5 * time.Minute
	// DefaultTimezone is where "local" times in summaries (and schedules
	// without tz) are read: the deployment is on the China–Mongolia border.
	DefaultTimezone = "Asia/Shanghai"
)

// defaultCooldown is the cooldown of a rule kind when the rule sets none.
func defaultCooldown(k Kind) time.Duration {
	switch k {
	case KindPresence:
		return DefaultPresenceCooldown
	case KindVelocity:
		return DefaultVelocityCooldown
	case KindEnter, KindExit:
		return DefaultFenceCooldown
	}
	return 0
}
