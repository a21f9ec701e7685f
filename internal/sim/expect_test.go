package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// Matching alerts to the scripted incidents, for the tests that run the
// scenario through the alert engine (in-process) or the whole daemon.

// countSlack is how long after an incident's phones have left an alert
// about their zone may still be theirs: a count window (15m) draining.
const countSlack = 30 * time.Minute

// attribute returns the incident a firing alert belongs to, or nil. An alert is
// an incident's when its rule is one the incident must fire and it is about
// one of the incident's subjects (an IMSI, a plate, a device). Count alerts
// are about a zone: they are the incident's when their evidence names one
// of its devices and their time falls within it.
func attribute(a model.Alert, incs []*Incident, spans map[*Incident]time.Duration) *Incident {
	for _, in := range incs {
		if !in.InRun || !(slices.Contains(in.Rules, a.Rule) || slices.Contains(in.MayFire, a.Rule)) {
			continue
		}
		if slices.Contains(in.Subjects, a.Subject.Value) {
			return in
		}
		if a.Subject.Kind != "zone" && a.Subject.Kind != "site" {
			continue
		}
		if a.At.Before(in.At) || a.At.After(in.At.Add(spans[in]+countSlack)) {
			continue
		}
		for _, ev := range a.Evidence {
			if slices.Contains(in.Devices, ev.Device) {
				return in
			}
		}
	}
	return nil
}

// incidentSpans is how long each phones incident's people stay.
func incidentSpans(sc *Scenario, incs []*Incident) map[*Incident]time.Duration {
	spans := map[*Incident]time.Duration{}
	for i, in := range incs {
		if p := sc.Incidents[i].Phones; p != nil {
			spans[in] = p.ArriveOver.D() + p.Stay.D() + time.Minute
		}
	}
	return spans
}

// alertProblems lists the alerts no incident explains and the incidents'
// expected rules that did not fire; empty when the run went as scripted.
func alertProblems(sc *Scenario, incs []*Incident, alerts []model.Alert) []string {
	spans := incidentSpans(sc, incs)
	fired := map[*Incident]map[string]bool{}
	// A resolved alert carries the id of the firing one it ends: it is the
	// same incident's, however long after it comes (a count window drains
	// only when the zone's next reading moves its clock on).
	byID := map[string]*Incident{}
	for _, a := range alerts {
		if a.State == model.StateFiring {
			if in := attribute(a, incs, spans); in != nil {
				byID[a.ID] = in
			}
		}
	}
	var problems []string
	for _, a := range alerts {
		in := attribute(a, incs, spans)
		if a.State == model.StateResolved && byID[a.ID] != nil {
			in = byID[a.ID]
		}
		if in == nil {
			problems = append(problems, fmt.Sprintf("unexpected alert %s %s %s %s:%s at %s: %s",
				a.Rule, a.State, a.Zone, a.Subject.Kind, a.Subject.Value, a.At.Format(time.RFC3339), a.Summary))
			continue
		}
		if a.State == model.StateFiring {
			if fired[in] == nil {
				fired[in] = map[string]bool{}
			}
			fired[in][a.Rule] = true
		}
	}
	for _, in := range incs {
		if !in.InRun {
			continue
		}
		for _, r := range in.Rules {
			if !fired[in][r] {
				problems = append(problems, fmt.Sprintf("incident %s at %s: rule %s did not fire", in.ID, in.At.Format(time.RFC3339), r))
			}
		}
	}
	return problems
}

// missingRules lists "incident/rule" pairs still without a firing alert.
func missingRules(sc *Scenario, incs []*Incident, alerts []model.Alert) []string {
	var missing []string
	for _, p := range alertProblems(sc, incs, alerts) {
		if strings.HasPrefix(p, "incident ") {
			missing = append(missing, p)
		}
	}
	return missing
}
