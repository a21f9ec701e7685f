package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/internal/model"
)

// alertID is the stable id of an incident: the same rule, subject, zone and
// incident start always give the same id, so a firing and its resolved
// share it, and an alert raised twice (redelivery, restart) is one
// incident downstream. fire passes the rule's id with its fingerprint: a
// rule changed by a reload starts afresh, and an incident it opens is not
// the one the change resolved even when it starts at the same instant (the
// outbox would drop it as a duplicate of that one). origin, when not empty,
// names the reading that raised it (see reading.origin).
func alertID(rule string, s model.Subject, zoneID string, start time.Time, origin string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s:%s|%s|%s", rule, s.Kind, s.Value, zoneID, start.UTC().Format(time.RFC3339Nano))
	if origin != "" {
		fmt.Fprintf(h, "|%s", origin)
	}
	return hex.EncodeToString(h.Sum(nil))[:idHexLen]
}

// alertIn is what a rule kind knows about an alert it raises.
type alertIn struct {
	subj     model.Subject
	zone     *zone.Zone
	zoneID   string // when zone is nil but an id is known (state restored)
	site     string
	at       time.Time // event time of the alert
	start    time.Time // incident start: part of the id
	origin   string    // the reading that raised it, for the id (see reading.origin)
	loc      *model.Point
	count    int
	evidence []model.Evidence
	summary  string
	// onTime marks an alert of processing time (a silence): it is raised
	// as soon as it is noticed, however long ago its `at` (the silence's
	// start, or a schedule's window opening long after it), so never late.
	onTime bool
}

// fire builds a firing alert.
func (e *Engine) fire(st *ruleState, in alertIn, now time.Time) model.Alert {
	r := st.rule
	zid, site := in.zoneID, in.site
	if in.zone != nil {
		zid = in.zone.ID
		// An alert about a zone is the zone's site's: its station must get
		// it on its own topic (border/{site}/alerts/…) when a patrol or a
		// phone from another site's device is seen there.
		if in.zone.Site != "" {
			site = in.zone.Site
		}
	}
	e.ordinal++
	a := model.Alert{
		Ordinal:  e.ordinal,
		ID:       alertID(r.ID+"@"+r.fingerprint, in.subj, zid, in.start, in.origin),
		Rule:     r.ID,
		Severity: r.Severity,
		State:    model.StateFiring,
		Site:     site,
		Zone:     zid,
		Subject:  in.subj,
		Summary:  in.summary,
		At:       in.at,
		RaisedAt: now,
		Count:    in.count,
		Evidence: slices.Clone(in.evidence),
		Notify:   notifyOf(r, in.zone),
		Late:     !in.onTime && e.late(in.at, now),
	}
	a.Summary = r.summarised(a.Summary)
	if a.Evidence == nil {
		a.Evidence = []model.Evidence{}
	}
	if in.loc != nil {
		p := *in.loc
		a.Location = &p
	}
	a.NearestPatrols = e.nearestPatrols(a.Location, in.subj, now)
	st.m.firing.Inc()
	return a
}

// IncidentChanges is the number of incidents the engine has opened or
// resolved, and of changes to what an open one is judged on (a unit's
// status: see unitStatus). Unlike the rest of the engine it may be read from any
// goroutine: the state saver saves soon after it changes, so that a crash
// does not forget an open incident (its firing already sent, its resolved
// then never). Events (presence, velocity, enter/exit) do not count: a
// cooldown a crash forgets costs one alert again, not one left open, and
// they may come many a second.
func (e *Engine) IncidentChanges() uint64 { return e.incidents.Load() }

// late reports whether an alert of event time at, raised now, is late: it
// comes from readings delivered long after their time (a backlog).
func (e *Engine) late(at, now time.Time) bool { return now.Sub(at) > e.opts.LateAfter }

// resolved turns an open incident into its resolved alert; late says
// whether the resolution comes from a backlog.
func (e *Engine) resolved(st *ruleState, inc *incident, at, now time.Time, late bool, summary string) model.Alert {
	a := inc.Alert
	a.State = model.StateResolved
	// Never after raised_at: a window drained by Tick moves its clock on
	// by a monotonic duration, which can pass the wall clock by a few ns.
	a.At = at
	if at.After(now) {
		a.At = now
	}
	a.RaisedAt = now
	a.Late = late
	a.Summary = st.rule.summarised(summary)
	a.Evidence = slices.Clone(a.Evidence)
	a.NearestPatrols = []model.PatrolRef{}
	if st.open > 0 {
		st.open--
		st.m.open.Set(float64(st.open))
	}
	st.m.resolved.Inc()
	e.incidents.Add(1)
	return a
}

// closedUncleared resolves inc for a reason of fenceline's own (a reload, a
// bound), not because its condition ended: the summary says so, and says
// what the incident was, for a duty officer who would otherwise read
// "resolved" as "the unit is back" or "the crowd is gone".
func (e *Engine) closedUncleared(st *ruleState, inc *incident, now time.Time, why string) model.Alert {
	firing := inc.Alert.Summary
	if p := st.rule.Spec.Summary; p != "" {
		firing = strings.TrimPrefix(firing, p+": ") // resolved puts it back in front
	}
	return e.resolved(st, inc, now, now, false, unclearedSummary(why, firing))
}

// unclearedSummary is the summary of an incident closed for why, whose
// firing summary was firing.
func unclearedSummary(why, firing string) string {
	return "Closed without being cleared (" + why + "; the condition may still hold): " + firing
}

// summarised is s after the rule's own summary, if it has one.
func (r *Rule) summarised(s string) string {
	if r.Spec.Summary != "" {
		return r.Spec.Summary + ": " + s
	}
	return s
}

// opened records a new open incident of st.
func (e *Engine) opened(st *ruleState, a model.Alert, now time.Time) *incident {
	e.incidents.Add(1)
	st.open++
	st.m.open.Set(float64(st.open))
	return &incident{Alert: a, LastSent: now, Ordinal: a.Ordinal}
}

// notifyOf is the zone's units and the rule's notify, deduplicated, sorted.
func notifyOf(r *Rule, z *zone.Zone) []string {
	out := make([]string, 0, len(r.notify)+4)
	out = append(out, r.notify...)
	if z != nil {
		out = append(out, z.Units...)
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// nearestPatrols lists up to NearestPatrols patrols by distance from loc,
// from the latest positions the engine has seen, skipping positions older
// than PatrolMaxAge at processing time (an old fix says nothing about who
// can go there now) and the subject itself.
func (e *Engine) nearestPatrols(loc *model.Point, subj model.Subject, now time.Time) []model.PatrolRef {
	out := []model.PatrolRef{}
	if loc == nil || e.opts.NearestPatrols == 0 {
		return out
	}
	for id, pp := range e.patrols {
		// The alert's own subject is not help on the way: a patrol that
		// entered a zone, or whose tracker reports tamper or goes silent.
		if now.Sub(pp.Seen) > e.opts.PatrolMaxAge || ((subj.Kind == "patrol" || subj.Kind == "device") && subj.Value == id) {
			continue
		}
		km := haversineM(*loc, pp.Loc) / 1000
		out = append(out, model.PatrolRef{Device: id, DistanceKm: math.Round(km*10) / 10, Seen: pp.Seen})
	}
	slices.SortFunc(out, func(a, b model.PatrolRef) int {
		if a.DistanceKm != b.DistanceKm {
			if a.DistanceKm < b.DistanceKm {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Device, b.Device)
	})
	if len(out) > e.opts.NearestPatrols {
		out = out[:e.opts.NearestPatrols]
	}
	return out
}

// haversineM is the great-circle distance in metres.
// distanceM is haversineM, without the trigonometry for the same place
// twice (the same checkpoint, most often), which is 0 m.
func distanceM(a, b model.Point) float64 {
	if a == b {
		return 0
	}
	return haversineM(a, b)
}

func haversineM(a, b model.Point) float64 {
	const earthM = 6371008.8
	const rad = math.Pi / 180
	la1, la2 := a.Lat*rad, b.Lat*rad
	dla, dlo := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * earthM * math.Asin(math.Min(1, math.Sqrt(h)))
}

// Summaries: one line a duty officer understands, in the deployment's
// local time.

// mccCountry names the networks seen on this border; others print the MCC.
var mccCountry = map[string]string{
	"460": "China", "428": "Mongolia", "250": "Russia", "454": "Hong Kong",
	"455": "Macau", "466": "Taiwan", "401": "Kazakhstan", "437": "Kyrgyzstan",
}

// describeSubject is "phone IMSI 428991234567890 (Mongolia, MCC 428)",
// "vehicle 蒙B12345", "patrol P-07", "device CP-07".
func describeSubject(s model.Subject, r *reading) string {
	switch s.Kind {
	case "imsi":
		mcc := ""
		if len(s.Value) >= 3 {
			mcc = s.Value[:3]
		}
		if c, ok := mccCountry[mcc]; ok {
			return fmt.Sprintf("phone IMSI %s (%s, MCC %s)", s.Value, c, mcc)
		}
		return fmt.Sprintf("phone IMSI %s (MCC %s)", s.Value, mcc)
	case "imei":
		return "phone IMEI " + s.Value
	case "mac":
		return "phone MAC " + s.Value
	case "plate":
		if s.Value == model.NoPlate {
			return "vehicle without a readable plate (无牌)"
		}
		return "vehicle " + deviceText(s.Value)
	case "patrol":
		// The registry's name says who it is ("P-08 (Port, east sector)").
		// A device subject's summary names it in its place already.
		if r != nil && r.b.Device != nil && r.b.Device.ID == s.Value && r.b.Device.Name != "" {
			return "patrol " + s.Value + " (" + r.b.Device.Name + ")"
		}
		return "patrol " + s.Value
	case "device":
		return "device " + s.Value
	}
	return s.Kind + " " + s.Value
}

// deviceText is text a unit sent, as a summary quotes it: a summary is one
// line, read by a duty officer, and a unit's "mains\u2028Tamper cleared by
// technician" must not read as a line of its own. Text with a rune that is
// not printable (a line or paragraph separator, a C1 control) or shows
// nothing (a Hangul filler) is quoted, with such runes escaped.
func deviceText(s string) string {
	if !strings.ContainsFunc(s, hiddenRune) {
		return s
	}
	return quotedText(s)
}

// hiddenRune reports a rune that is not printable or shows nothing.
func hiddenRune(r rune) bool { return r != ' ' && !unicode.IsPrint(r) || invisible(r) }

// statusText is a status report's text field (power, fw) as a summary
// quotes it: bare only when it is one word of letters, digits and . - _ +
// / : between them (solar, mains, 2.3.1), quoted as deviceText quotes
// otherwise, so that a unit's "mains. Tamper cleared" (or "mains.") does
// not read as fenceline's words.
func statusText(s string) string {
	word := func(r rune) bool {
		return (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_+/:", r)) && !hiddenRune(r)
	}
	alnum := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if s != "" && alnum(first) && alnum(last) && !strings.ContainsFunc(s, func(r rune) bool { return !word(r) }) {
		return s
	}
	return quotedText(s)
}

// quotedText is s in double quotes, its quotes and backslashes escaped and
// its hidden runes written as \u escapes.
func quotedText(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case hiddenRune(r) && r > 0xFFFF:
			fmt.Fprintf(&b, `\U%08x`, r)
		case hiddenRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// invisible reports runes Go counts printable that show nothing: the
// Hangul fillers, the braille blank, combining marks that join nothing
// (U+034F): text made of them hides where a unit's words end.
func invisible(r rune) bool {
	switch r {
	case '\u115F', '\u1160', '\u3164', '\uFFA0', '\u2800', '\u034F':
		return true
	}
	return false
}

// place is "Aolunsumu ancient city (aolunsumu-ruins)", or, without a zone,
// the device that saw it.
func (e *Engine) place(z *zone.Zone, device, site string) string {
	if z != nil {
		if z.Name != "" {
			return fmt.Sprintf("%s (%s)", z.Name, z.ID)
		}
		return z.ID
	}
	if d := e.rs.Registry.Lookup(device); d != nil && d.Name != "" {
		return fmt.Sprintf("%s (%s, %s)", d.Name, device, site)
	}
	return fmt.Sprintf("%s (%s)", device, site)
}

// deviceLabel is "CP-07 (G210 north of Baotou)", or the id of a device
// without a name.
func (e *Engine) deviceLabel(id string) string {
	if d := e.rs.Registry.Lookup(id); d != nil && d.Name != "" {
		return fmt.Sprintf("%s (%s)", id, d.Name)
	}
	return id
}

// localTime is "23:10 local", with the date when it is not today's, in
// alerts.timezone: the duty officers' clock, for every rule alike (a rule's
// schedule may keep another zone's hours).
func (e *Engine) localTime(t, now time.Time) string {
	loc := e.opts.Location
	lt, ln := t.In(loc), now.In(loc)
	if lt.YearDay() == ln.YearDay() && lt.Year() == ln.Year() {
		return lt.Format("15:04") + " local"
	}
	return lt.Format("2006-01-02 15:04") + " local"
}

// shortDur prints a duration for a duty officer: "45 s", "2 min 30 s",
// "1 h 5 min", "3 d 4 h" — in units nobody reads as metres ("within 2m"),
// to the precision that matters at its size.
func shortDur(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		return "-" + shortDur(-d)
	}
	two := func(n1 int64, u1 string, n2 int64, u2 string) string {
		if n2 == 0 {
			return strconv.FormatInt(n1, 10) + " " + u1
		}
		return strconv.FormatInt(n1, 10) + " " + u1 + " " + strconv.FormatInt(n2, 10) + " " + u2
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + " s"
	case s < 3600:
		return two(s/60, "min", s%60, "s")
	case s < 48*3600:
		return two(s/3600, "h", s%3600/60, "min")
	}
	return two(s/86400, "d", s%86400/3600, "h")
}
