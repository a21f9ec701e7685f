package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// stop is a place or a checkpoint on a road, km along it (outbound).
type stop struct {
	id    string
	pos   model.Point
	km    float64
	cp    *device // nil for a place
	place bool
}

type road struct {
	spec   *RoadSpec
	stops  []stop
	places []int // indexes of the places in stops
	rng    *rand.Rand
}

// vehicle is one vehicle of the fleet: it waits at a place until freeAt.
type vehicle struct {
	plate, plateColor, vtype, color string
	maxKmh                          float64
	place                           string
	freeAt                          time.Time
	// scripted: an incident's vehicle, whose plate the cameras always read
	// (an unread plate would turn its alert into one about 无牌).
	scripted bool
}

func (s *Sim) addCheckpoint(d *model.Device) {
	dv := s.addDevice(d)
	s.checkpoints[d.ID] = dv
	period := s.sc.Cadence.CheckpointStatus.D()
	s.every(uniform(dv.rng, 0, period), period, func(t time.Time) bool {
		hour, _ := s.local(t)
		s.emit(dv, t, "status", func(seq int64, ts time.Time) any {
			return statusJSON{
				V: 1, Seq: seq, TS: ts.UnixMilli(),
				// A heated cabinet: some 20 °C above the air outside.
				TempC:     round(outdoorTemp(hour)+20+dv.rng.NormFloat64()*0.5, 1),
				UptimeS:   int64(t.Sub(dv.bootAt) / time.Second),
				Power:     "mains",
				SignalDbm: float64(-80 + dv.rng.IntN(12)),
				Queue:     0,
				FW:        "4.1.0",
			}
		})
		return true
	})
}

func (s *Sim) addRoad(spec *RoadSpec) {
	rd := &road{spec: spec, rng: s.rng("road/" + spec.ID)}
	km := 0.0
	for i, v := range spec.Via {
		st := stop{id: v}
		if p, ok := s.sc.Places[v]; ok {
			st.pos, st.place = model.Point{Lat: p.Lat, Lon: p.Lon}, true
			rd.places = append(rd.places, i)
		} else {
			st.cp = s.checkpoints[v]
			st.pos = st.cp.Pos
		}
		if i > 0 {
			km += distanceKm(rd.stops[i-1].pos, st.pos)
		}
		st.km = km
		rd.stops = append(rd.stops, st)
	}
	s.roads[spec.ID] = rd
	scale := func(t time.Time) float64 { return s.rhythm(s.sc.Rhythm.Vehicles, t) }
	for _, outbound := range []bool{true, false} {
		s.arrivals(rd.rng, spec.PerHour, scale, func(t time.Time) { s.trip(rd, outbound, t) })
	}
}

// trip sends a fleet vehicle from one place of the road to a later one (in
// the direction of travel), past the checkpoints between them.
func (s *Sim) trip(rd *road, outbound bool, t time.Time) {
	r := rd.rng
	places := slices.Clone(rd.places)
	if !outbound {
		slices.Reverse(places)
	}
	o := r.IntN(len(places) - 1)
	d := o + 1 + r.IntN(len(places)-o-1)
	from, to := places[o], places[d]
	v := s.takeVehicle(r, rd.stops[from].id, t)
	speed := min(between(r, rd.spec.Speed[0], rd.spec.Speed[1]), v.maxKmh)
	arrive := s.drive(rd, v, from, to, speed, t, 3)
	v.place = rd.stops[to].id
	v.freeAt = arrive.Add(uniform(r, s.sc.Vehicles.Rest[0].D(), s.sc.Vehicles.Rest[1].D()))
	s.fleet[v.place] = append(s.fleet[v.place], v)
}

// drive schedules v's passes at the checkpoints strictly between stops from
// and to, leaving from at t at speed km/h; the speed a camera measures
// varies by up to noise. It returns the arrival time at to. Pass times
// follow the distance along the road, so that no two sightings of one
// vehicle imply a speed above its own.
func (s *Sim) drive(rd *road, v *vehicle, from, to int, speed float64, t time.Time, noise float64) time.Time {
	step := 1
	if to < from {
		step = -1
	}
	at := func(i int) time.Time {
		km := rd.stops[i].km - rd.stops[from].km
		if km < 0 {
			km = -km
		}
		return t.Add(time.Duration(km / speed * float64(time.Hour)))
	}
	for i := from + step; i != to; i += step {
		st := rd.stops[i]
		if st.cp == nil {
			continue
		}
		prev, next := rd.stops[i-step].pos, rd.stops[i+step].pos
		p := pass{
			v: v, direction: "outbound", heading: bearing(prev, next),
			speed: max(5, speed+between(rd.rng, -noise, noise)),
		}
		if step < 0 {
			p.direction = "inbound"
		}
		cp := st.cp
		s.at(at(i), func(t time.Time) { s.emitPass(cp, t, p) })
	}
	return at(to)
}

// pass is what a camera sees of one vehicle.
type pass struct {
	v         *vehicle
	direction string
	heading   float64
	speed     float64
}

func (s *Sim) emitPass(cp *device, t time.Time, p pass) {
	r := cp.rng
	pj := passJSON{
		Plate: p.v.plate, PlateColor: p.v.plateColor, VehicleType: p.v.vtype, VehicleColor: p.v.color,
		SpeedKmh: round(p.speed, 1), Lane: 1 + r.IntN(2), Direction: p.direction,
		Heading: round(p.heading, 0), Confidence: round(between(r, 0.88, 0.995), 2),
	}
	if !p.v.scripted && r.Float64() < s.sc.Vehicles.UnreadShare {
		pj.Plate, pj.PlateColor, pj.Confidence = model.NoPlate, "", round(between(r, 0.2, 0.6), 2)
	}
	s.emit(cp, t, "passes", func(seq int64, ts time.Time) any {
		pj.Image = fmt.Sprintf("https://%s.local/img/%d.jpg", strings.ToLower(cp.ID), seq)
		return passesJSON{V: 1, Seq: seq, TS: ts.UnixMilli(), Passes: []passJSON{pj}}
	})
}

// takeVehicle returns the first vehicle waiting at place that is free at t,
// or a new one based there.
func (s *Sim) takeVehicle(r *rand.Rand, place string, t time.Time) *vehicle {
	waiting := s.fleet[place]
	for i, v := range waiting {
		if !v.freeAt.After(t) {
			s.fleet[place] = slices.Delete(waiting, i, i+1)
			return v
		}
	}
	return s.newVehicle(r, place)
}

func (s *Sim) newVehicle(r *rand.Rand, place string) *vehicle {
	mix := s.sc.Vehicles
	v := &vehicle{place: place, color: pick(r, mix.Colors)}
	if r.Float64() < s.sc.Places[place].MongolianShare {
		// A Mongolian coal truck: their plates carry no colour code.
		v.vtype, v.maxKmh = "H11", 80
		v.plate = s.uniquePlate(func() string { return genMongolianPlate(r) })
		return v
	}
	total := 0.0
	for _, t := range mix.Types {
		total += t.Weight
	}
	x := r.Float64() * total
	vt := mix.Types[len(mix.Types)-1]
	for _, t := range mix.Types {
		if x < t.Weight {
			vt = t
			break
		}
		x -= t.Weight
	}
	v.vtype, v.plateColor, v.maxKmh = vt.Code, vt.PlateColor, vt.MaxKmh
	if v.maxKmh == 0 {
		v.maxKmh = 300
	}
	prefix := pick(r, mix.Plates)
	if v.plateColor == "blue" && r.Float64() < mix.NewEnergyShare {
		v.plateColor = "green"
		v.plate = s.uniquePlate(func() string { return genNewEnergyPlate(r, prefix) })
	} else {
		v.plate = s.uniquePlate(func() string { return genPlate(r, prefix) })
	}
	return v
}

// uniquePlate draws plates until one is neither in use, nor reserved by an
// incident, nor on a watchlist: two cars with one plate would be a cloned
// plate, and a listed one an alert, that nobody scripted.
func (s *Sim) uniquePlate(gen func() string) string {
	for {
		p := gen()
		if s.plates[p] || s.watched("plate", p) {
			continue
		}
		s.plates[p] = true
		return p
	}
}

// watched reports whether v is on one of the rules file's watchlists of kind.
func (s *Sim) watched(kind, v string) bool {
	for _, name := range sortedKeys(s.sc.Rules.Watchlists) {
		if l := s.sc.Rules.Watchlists[name]; l.Kind == kind && l.Match(v) {
			return true
		}
	}
	return false
}

// cpOnRoad finds the first road through checkpoint id and its index there.
func (s *Sim) cpOnRoad(id string) (*road, int) {
	for i := range s.sc.Roads {
		rd := s.roads[s.sc.Roads[i].ID]
		for j, st := range rd.stops {
			if st.id == id {
				return rd, j
			}
		}
	}
	return nil, -1
}
