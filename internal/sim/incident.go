package sim

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Incident is one scripted incident of a run.
type Incident struct {
	ID   string
	What string
	// Kind is the scenario key: phones, vehicle, cloned_plate, power_loss, patrol.
	Kind string
	// At is when it starts; Until when its people, vehicles or unit stop
	// doing what it scripts.
	At, Until time.Time
	// Night: it lasts into the scenario's night window for at least
	// nightEnough, so its expect_night rules must fire.
	Night bool
	// Rules are the ids of the rules it must fire: expect, and expect_night
	// when Night.
	Rules []string
	// MayFire are rules it may fire but need not: the expect_night ones of
	// an incident that touches the night only briefly (a scan or two).
	MayFire []string
	// Subjects are the identifiers its alerts are about (alert subject
	// values): IMSIs, plates, device ids. Count alerts are about a zone;
	// they name the incident's devices in their evidence.
	Subjects []string
	// Devices are the devices that report it.
	Devices []string
	// InRun is false for an incident that would start after the run's end.
	InRun bool
}

// reserve keeps an incident's plates out of ordinary traffic.
func (s *Sim) reserve(spec *IncidentSpec) {
	switch {
	case spec.Vehicle != nil:
		s.plates[spec.Vehicle.Plate] = true
	case spec.ClonedPlate != nil:
		s.plates[spec.ClonedPlate.Plate] = true
	}
}

func (s *Sim) addIncident(spec *IncidentSpec) {
	inc := &Incident{ID: spec.ID, What: spec.What, At: s.start.Add(spec.At.D())}
	inc.Until = inc.At.Add(s.incidentSpan(spec))
	inc.Rules = slices.Clone(spec.Expect)
	switch night := s.nightWithin(inc.At, inc.Until); {
	case night >= nightEnough:
		inc.Night = true
		inc.Rules = append(inc.Rules, spec.ExpectNight...)
	case night > 0:
		inc.MayFire = slices.Clone(spec.ExpectNight)
	}
	inc.InRun = s.end.IsZero() || inc.At.Before(s.end)
	s.incidents = append(s.incidents, inc)
	// Identities are drawn now, whether the incident is in the run or not,
	// so that Subjects are known before it starts.
	r := s.rng("incident/" + spec.ID)
	var act func(time.Time)
	switch {
	case spec.Phones != nil:
		act = s.phonesIncident(r, inc, spec.Phones)
	case spec.Vehicle != nil:
		act = s.vehicleIncident(r, inc, spec.Vehicle)
	case spec.ClonedPlate != nil:
		act = s.clonedPlateIncident(r, inc, spec.ClonedPlate)
	case spec.PowerLoss != nil:
		inc.Kind, inc.Subjects, inc.Devices = "power_loss", []string{spec.PowerLoss.Device}, []string{spec.PowerLoss.Device}
		f := s.fences[spec.PowerLoss.Device]
		act = func(t time.Time) { f.failPower(t, s, spec.PowerLoss) }
	case spec.Patrol != nil:
		inc.Kind, inc.Subjects, inc.Devices = "patrol", []string{spec.Patrol.Device}, []string{spec.Patrol.Device}
		p := s.patrols[spec.Patrol.Device]
		act = func(time.Time) { p.detour = &detour{to: spec.Patrol.To.point(), stay: spec.Patrol.Stay.D()} }
	}
	if !inc.InRun {
		return
	}
	// The note is scheduled before the action, so it comes out first.
	s.at(inc.At, func(t time.Time) { s.out = append(s.out, Message{Time: t, Incident: inc}) })
	s.at(inc.At, act)
}

// nightEnough is how long an incident must last into the night for its
// night rules to be sure to fire: a few scans, any of which may miss a phone.
const nightEnough = 5 * time.Minute

// incidentSpan is how long an incident lasts.
func (s *Sim) incidentSpan(spec *IncidentSpec) time.Duration {
	switch {
	case spec.Phones != nil:
		return spec.Phones.ArriveOver.D() + 30*time.Second + spec.Phones.Stay.D()
	case spec.Vehicle != nil:
		v := spec.Vehicle
		rd := s.roads[v.Road]
		km := rd.stops[slices.Index(rd.spec.Via, v.To)].km - rd.stops[slices.Index(rd.spec.Via, v.From)].km
		if km < 0 {
			km = -km
		}
		return time.Duration(km / v.Speed * float64(time.Hour))
	case spec.ClonedPlate != nil:
		return spec.ClonedPlate.After.D()
	case spec.PowerLoss != nil:
		return spec.PowerLoss.SilentAfter.D()
	case spec.Patrol != nil:
		return spec.Patrol.Stay.D()
	}
	return 0
}

// nightWithin is how much of [from, until] lies in the night window, to the
// minute.
func (s *Sim) nightWithin(from, until time.Time) time.Duration {
	var d time.Duration
	for t := from; !t.After(until); t = t.Add(time.Minute) {
		if s.night(t) {
			d += time.Minute
		}
	}
	return d
}

func (s *Sim) phonesIncident(r *rand.Rand, inc *Incident, spec *PhonesIncident) func(time.Time) {
	inc.Kind, inc.Devices = "phones", []string{spec.Device}
	var phones []*phone
	for range spec.Count {
		mcc, mnc := spec.MCC, spec.MNC
		if mcc == "" {
			mcc, mnc = "460", pick(r, s.sc.Phones.Operators)
		}
		ph := s.newPhone(r, mcc, mnc)
		ph.detect = 0.95
		phones = append(phones, ph)
		inc.Subjects = append(inc.Subjects, ph.imsi)
	}
	f := s.fences[spec.Device]
	return func(t time.Time) { f.visit(r, t, phones, spec.ArriveOver.D(), spec.Stay.D()) }
}

func (s *Sim) vehicleIncident(r *rand.Rand, inc *Incident, spec *VehicleIncident) func(time.Time) {
	inc.Kind, inc.Subjects = "vehicle", []string{spec.Plate}
	v := &vehicle{plate: spec.Plate, vtype: spec.Type, color: spec.Color, plateColor: s.plateColor(spec.Plate, spec.Type), scripted: true}
	rd := s.roads[spec.Road]
	from := slices.Index(rd.spec.Via, spec.From)
	to := slices.Index(rd.spec.Via, spec.To)
	for i := from; i != to; {
		if cp := rd.stops[i].cp; cp != nil {
			inc.Devices = append(inc.Devices, cp.ID)
		}
		if to > from {
			i++
		} else {
			i--
		}
	}
	return func(t time.Time) { s.drive(rd, v, from, to, spec.Speed, t, 1.5) }
}

func (s *Sim) clonedPlateIncident(r *rand.Rand, inc *Incident, spec *ClonedPlateIncident) func(time.Time) {
	inc.Kind, inc.Subjects, inc.Devices = "cloned_plate", []string{spec.Plate}, []string{spec.First, spec.Second}
	// Two different cars behind one plate: the evidence shows it.
	colors := s.sc.Vehicles.Colors
	c1 := pick(r, colors)
	c2 := c1
	for c2 == c1 && len(colors) > 1 {
		c2 = pick(r, colors)
	}
	cars := [2]*vehicle{
		{plate: spec.Plate, vtype: "K33", color: c1, plateColor: s.plateColor(spec.Plate, "K33"), scripted: true},
		{plate: spec.Plate, vtype: "K32", color: c2, plateColor: s.plateColor(spec.Plate, "K32"), scripted: true},
	}
	cps := [2]string{spec.First, spec.Second}
	offsets := [2]time.Duration{0, spec.After.D()}
	return func(t time.Time) {
		for i, id := range cps {
			p := pass{v: cars[i], direction: "outbound", speed: between(r, 70, 95)}
			if rd, j := s.cpOnRoad(id); rd != nil {
				prev, next := rd.stops[max(0, j-1)].pos, rd.stops[min(len(rd.stops)-1, j+1)].pos
				p.heading = bearing(prev, next)
				if i == 1 { // the second car drives the other way
					p.direction, p.heading = "inbound", bearing(next, prev)
				}
			}
			cp := s.checkpoints[id]
			s.at(t.Add(offsets[i]), func(t time.Time) { s.emitPass(cp, t, p) })
		}
	}
}

// plateColor is the colour of a plate of the given vehicle type: green for
// new-energy plates, the type's own (blue, yellow) otherwise.
func (s *Sim) plateColor(plate, vtype string) string {
	if validPlate(plate) && len(plate) == len("蒙B")+6 {
		return "green"
	}
	if validMongolianPlate(plate) {
		return ""
	}
	for _, t := range s.sc.Vehicles.Types {
		if t.Code == vtype {
			return t.PlateColor
		}
	}
	return "blue"
}
