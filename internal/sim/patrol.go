package sim

import (
	"time"

	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/internal/model"
)

// patrol is a team driving its route: to each waypoint in turn, pausing
// there, parked at the first (its station) at night if its spec says so.
type patrol struct {
	*device
	spec       *PatrolSpec
	route      []model.Point
	pos        model.Point
	next       int // waypoint it drives to
	pauseUntil time.Time
	lastFix    time.Time
	heading    float64
	detour     *detour
}

// detour is an incident's: drive to `to`, stay, then back to the route.
type detour struct {
	to      model.Point
	stay    time.Duration
	arrived time.Time // zero until there
}

func (s *Sim) addPatrol(spec *PatrolSpec) {
	d := s.addDevice(s.sc.Rules.Registry.Lookup(spec.Device))
	p := &patrol{device: d, spec: spec, next: 1, lastFix: s.start}
	for _, w := range spec.Route {
		p.route = append(p.route, w.point())
	}
	p.pos = p.route[0]
	s.patrols[spec.Device] = p
	fix := s.sc.Cadence.PatrolFix.D()
	s.every(uniform(d.rng, 0, fix), fix, func(t time.Time) bool { s.fix(p, t); return true })
	status := s.sc.Cadence.PatrolStatus.D()
	s.every(uniform(d.rng, 0, status), status, func(t time.Time) bool {
		batt := float64(80 + d.rng.IntN(21))
		s.emit(d, t, "status", func(seq int64, ts time.Time) any {
			return statusJSON{
				V: 1, Seq: seq, TS: ts.UnixMilli(), BatteryPct: &batt,
				TempC:     round(12+d.rng.NormFloat64()*2, 1), // inside the vehicle
				UptimeS:   int64(t.Sub(d.bootAt) / time.Second),
				Power:     "vehicle",
				SignalDbm: float64(-100 + d.rng.IntN(25)),
				FW:        "1.8.4",
			}
		})
		return true
	})
}

// move advances the team to t and returns the distance covered in km.
func (s *Sim) move(p *patrol, t time.Time) float64 {
	dt := t.Sub(p.lastFix)
	p.lastFix = t
	if dt <= 0 || (p.detour == nil && t.Before(p.pauseUntil)) {
		return 0
	}
	r := p.rng
	target, parked := p.route[p.next], false
	switch {
	case p.detour != nil:
		target = p.detour.to
		if !p.detour.arrived.IsZero() {
			if t.Sub(p.detour.arrived) < p.detour.stay {
				return 0
			}
			p.detour = nil
			target = p.route[p.next]
		}
	case p.spec.Night == "park" && s.night(t):
		target, parked = p.route[0], true
	}
	km := p.spec.Speed * between(r, 0.85, 1.15) * dt.Hours()
	from := p.pos
	p.pos = toward(from, target, km)
	moved := distanceKm(from, p.pos)
	if moved > 0 {
		p.heading = bearing(from, p.pos)
	}
	if p.pos == target {
		switch {
		case p.detour != nil:
			p.detour.arrived = t
		case parked:
			p.next = 1 % len(p.route)
		default:
			p.pauseUntil = t.Add(uniform(r, 2*time.Minute, 10*time.Minute))
			p.next = (p.next + 1) % len(p.route)
		}
	}
	return moved
}

// fix publishes the team's position at t.
func (s *Sim) fix(p *patrol, t time.Time) {
	moved := s.move(p, t)
	dt := s.sc.Cadence.PatrolFix.D()
	acc := between(p.rng, 3, 9)
	pos := jitter(p.rng, p.pos, acc/2)
	datum := "wgs84"
	if p.spec.Datum == "gcj02" {
		datum = "gcj02"
		pos.Lat, pos.Lon = decode.WGS84ToGCJ02(pos.Lat, pos.Lon)
	}
	s.emit(p.device, t, "position", func(seq int64, ts time.Time) any {
		return positionJSON{
			V: 1, Seq: seq, TS: ts.UnixMilli(),
			Lat: round(pos.Lat, 6), Lon: round(pos.Lon, 6),
			SpeedKmh: round(moved/dt.Hours(), 1), Heading: round(p.heading, 0),
			AccuracyM: round(acc, 0), Datum: datum,
		}
	})
}
