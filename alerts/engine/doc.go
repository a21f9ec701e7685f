// Package engine compiles the rules of rules.yaml and evaluates them on the
// readings of accepted messages, keeping the state of stateful rules and
// returning the alerts (firing and resolved) they raise.
//
// Compile checks the meaning of a rules file (the config package checks its
// structure) and returns every problem with its file and key: devices, zone
// and watchlist references, kinds, sources, severities, per-kind keys,
// schedules and `when` expressions (compiled once, typed per source, so a
// misspelt field is a problem at load time). New starts an engine on the
// compiled Ruleset; Swap installs the next one on reload.
//
// # Time
//
// Readings are evaluated at their event time (the reading's ts): schedule
// windows, cooldowns, count windows, dwell durations and velocities use it,
// so a site's backlog delivered days late raises the alerts of the period
// it covers, marked late (raised_at - at > LateAfter). Processing time
// drives what happens when nothing arrives: silence (measured against the
// engine's own last-seen times), the end of dwell stays (processing time
// since the stay's latest reading), the draining of count windows (a
// zone's clock moves on at the pace of processing time after its latest
// reading), repeat_interval and the expiry of state.
//
// # Semantics by kind
//
//   - presence: every reading that passes sites, zones, watchlist, schedule
//     and `when` fires, deduplicated by `cooldown` (default 10m) per
//     rule+subject+zone, in event time. No resolved. Vehicles without a
//     plate (无牌) fire presence rules without a watchlist with subject
//     plate 无牌, their cooldown kept per checkpoint.
//   - count: distinct subjects per zone within `window` (event time) reach
//     `threshold` → one firing with count and subject {zone, id};
//     dropping below → resolved (on readings and on Tick). Without zones
//     the rule counts per site (subject {site, code}). Readings older than
//     the zone's window (a backlog) are counted in a window of their own
//     time, unless they fall within the span of the zone's open incident.
//   - dwell: one subject in a zone with no gap over `max_gap` (default 10m)
//     for `duration` → firing (incident start = start of the stay); a gap
//     over max_gap → resolved. Readings older than the stay by more than
//     max_gap (a backlog) make a stay of their own time (up to two older
//     stays per subject and zone), and one that fills a gap joins two.
//   - velocity: a subject's new sighting against its sightings just before
//     and after it in event time (its latest, in order): more than
//     VelocityMinDistanceM (1 km) apart and faster than `max_kmh` (same
//     instant = infinitely fast) → firing only, a one-shot incident per
//     pair with both sightings as evidence and the later one as location;
//     further pairs of the subject within `cooldown` (default 10m) are
//     suppressed.
//   - enter / exit: previous vs current inside-state per subject and zone,
//     with hysteresis_m (inside → outside only beyond h outside; outside →
//     inside only beyond h inside). Unknown counts as outside, so the
//     first-ever sighting more than h inside is an enter (Tile38's
//     semantics: a patrol switched on inside the strip is in the strip). Firing
//     only; `cooldown` applies if set. Rules without zones watch every
//     zone.
//   - silence: a registered device (filtered by the rule's source kind,
//     sites and zones) that sent nothing for its expect_every, else the
//     rule's `after` → firing; its next message → resolved. A fresh start,
//     a restart and a reload that adds a device all start a grace period,
//     so they never fire for every device at once.
//   - status: a status report matching `when` → firing (once while reports
//     keep matching); a report that does not match → resolved.
//
// Subjects: phones by imsi, else imei, else mac (a watchlist rule uses the
// identifier its list holds); vehicles by plate; patrols and devices by
// device id. Rules without zones send zone "" even when the reading lies in
// a zone. `when` sees optional payload fields that a reading lacks as zero
// values (0, "", false).
//
// # Reload and restart
//
// Swap keeps the state of rules whose definition is unchanged (the rule's
// spec and the specs of its zones and watchlist, compared by value) and
// drops the state of changed or removed rules, resolving their open
// incidents so that no receiver keeps a firing alert for ever.
// MarshalState / RestoreState save and restore the state (JSON) so a
// restart neither re-raises alerts nor forgets open incidents.
//
// # Bounds
//
// Every per-subject map is bounded by MaxTrackedPerRule, count windows by
// MaxSubjectsPerZone; entries expire with their windows (VelocityHorizon,
// FenceHorizon, cooldowns, max_gap). Evictions forced by a bound are
// counted in fenceline_alerts_state_evicted_total{rule}. State is keyed by
// subject ids: phones' identifiers packed into a number, other subjects
// interned in a copy that no message's memory is pinned by; interned
// subjects that no state refers to any more are freed once their number
// has doubled since the last such sweep.
//
// The Engine is not safe for concurrent use: the pipeline calls it from one
// goroutine.
package engine
