package sim

import (
	"math/rand/v2"
	"time"
)

// capWindow is the span over which a fence unit's ordinary phones are capped
// (FenceSpec.MaxDistinct): the window of the example count rule.
const capWindow = 15 * time.Minute

// phone is one handset a fence unit can sense.
type phone struct {
	imsi, imei, mac, tech string
	rssi                  float64 // typical signal at the unit
	detect                float64 // chance of showing up in one scan
}

// presence is a phone at a unit's site over [from, until).
type presence struct {
	ph          *phone
	from, until time.Time
	scripted    bool // an incident's: exempt from the cap
}

type fence struct {
	*device
	spec    *FenceSpec
	battOff float64 // this unit's offset from the solar curve
	tempOff float64
	present []presence // current and recently left, in arrival order

	// Power loss: from failFrom the battery falls linearly from failFrom's
	// level to failTo at silentAt; from silentAt on the unit sends nothing.
	failFrom, silentAt time.Time
	failFromPct        float64
	failTo             float64
}

func (s *Sim) addFence(spec *FenceSpec) {
	d := s.addDevice(s.sc.Rules.Registry.Lookup(spec.Device))
	f := &fence{device: d, spec: spec, battOff: between(d.rng, -4, 4), tempOff: between(d.rng, -1.5, 1.5)}
	s.fences[spec.Device] = f
	for i := range spec.Visits {
		s.addVisits(f, &spec.Visits[i])
	}
	scan := s.sc.Cadence.FenceScan.D()
	s.every(uniform(d.rng, 0, scan), scan, func(t time.Time) bool { return s.scan(f, t) })
	status := s.sc.Cadence.FenceStatus.D()
	s.every(uniform(d.rng, 0, status), status, func(t time.Time) bool { return s.fenceStatus(f, t) })
}

func (f *fence) silent(t time.Time) bool { return !f.silentAt.IsZero() && !t.Before(f.silentAt) }

// addVisits starts the arrival process of one kind of ordinary visit.
func (s *Sim) addVisits(f *fence, v *VisitSpec) {
	r := s.rng("visits/" + f.ID + "/" + v.Who)
	var pool []*phone
	for range v.Pool {
		pool = append(pool, s.newPhone(r, "", ""))
	}
	scale := func(t time.Time) float64 {
		if v.Hours != nil {
			_, m := s.local(t)
			if !(Window{From: v.Hours[0], To: v.Hours[1]}).Contains(m) {
				return 0
			}
		}
		return s.rhythm(s.sc.Rhythm.Phones, t)
	}
	s.arrivals(r, v.PerHour, scale, func(t time.Time) {
		f.prune(t)
		n := v.Group[0] + r.IntN(v.Group[1]-v.Group[0]+1)
		if f.distinct(t)+n > f.spec.MaxDistinct {
			return // the site is as busy as ordinary days get: this group does not come
		}
		var group []*phone
		if len(pool) > 0 {
			for _, i := range r.Perm(len(pool)) {
				if len(group) < n && !f.isPresent(pool[i], t) {
					group = append(group, pool[i])
				}
			}
		} else {
			for range n {
				group = append(group, s.newPhone(r, "", ""))
			}
		}
		until := t.Add(uniform(r, v.Stay[0].D(), v.Stay[1].D()))
		for _, ph := range group {
			f.present = append(f.present, presence{ph: ph, from: t, until: until})
		}
	})
}

// prune forgets phones that left longer ago than the cap's window.
func (f *fence) prune(t time.Time) {
	keep := f.present[:0]
	for _, p := range f.present {
		if p.until.Add(capWindow).After(t) {
			keep = append(keep, p)
		}
	}
	clear(f.present[len(keep):])
	f.present = keep
}

// distinct counts the ordinary phones present within the cap's window.
func (f *fence) distinct(t time.Time) int {
	seen := map[*phone]bool{}
	for _, p := range f.present {
		if !p.scripted && p.until.Add(capWindow).After(t) {
			seen[p.ph] = true
		}
	}
	return len(seen)
}

func (f *fence) isPresent(ph *phone, t time.Time) bool {
	for _, p := range f.present {
		if p.ph == ph && p.until.After(t) {
			return true
		}
	}
	return false
}

// scan publishes one scan of the unit: every present phone it sensed.
func (s *Sim) scan(f *fence, t time.Time) bool {
	if f.silent(t) {
		return false
	}
	f.prune(t)
	period := s.sc.Cadence.FenceScan.D()
	dets := make([]detectionJSON, 0, len(f.present))
	for _, p := range f.present {
		if p.from.After(t) || !p.until.After(t) || f.rng.Float64() >= p.ph.detect {
			continue
		}
		// Sensed at some moment of the scan, not before it arrived.
		at := t.Add(-uniform(f.rng, 0, period*9/10))
		if at.Before(p.from) {
			at = p.from
		}
		dets = append(dets, detectionJSON{
			IMSI: p.ph.imsi, IMEI: p.ph.imei, MAC: p.ph.mac, Tech: p.ph.tech,
			RSSI: float64(int(p.ph.rssi + f.rng.NormFloat64()*4)),
			TS:   rfcTime(at.In(s.sc.Location)),
		})
	}
	if f.failing(t) && f.battery(s, t) < lowBattery {
		// Low-battery mode: a status with every scan, so that the last
		// readings of a dying unit reach the operators.
		s.emitStatus(f, t)
	}
	loc := jitter(f.rng, f.Pos, 2)
	s.emit(f.device, t, "detections", func(seq int64, ts time.Time) any {
		return detectionsJSON{
			V: 1, Seq: seq, TS: rfcTime(ts.In(s.sc.Location)),
			Loc:        locJSON{Lat: round(loc.Lat, 6), Lon: round(loc.Lon, 6), Datum: "wgs84"},
			Detections: dets,
		}
	})
	return true
}

// lowBattery is where a failing unit starts reporting its status with
// every scan.
const lowBattery = 20

func (f *fence) failing(t time.Time) bool { return !f.failFrom.IsZero() && !t.Before(f.failFrom) }

// battery is the unit's charge at t.
func (f *fence) battery(s *Sim, t time.Time) float64 {
	if f.failing(t) {
		frac := float64(t.Sub(f.failFrom)) / float64(f.silentAt.Sub(f.failFrom))
		return f.failFromPct + (f.failTo-f.failFromPct)*frac
	}
	if f.spec.Power == "solar" {
		hour, _ := s.local(t)
		return solarBattery(hour, f.battOff)
	}
	return 100
}

func (s *Sim) fenceStatus(f *fence, t time.Time) bool {
	if f.silent(t) {
		return false
	}
	if !(f.failing(t) && f.battery(s, t) < lowBattery) { // else each scan reports it
		s.emitStatus(f, t)
	}
	return true
}

func (s *Sim) emitStatus(f *fence, t time.Time) {
	hour, _ := s.local(t)
	batt := round(f.battery(s, t), 0)
	s.emit(f.device, t, "status", func(seq int64, ts time.Time) any {
		return statusJSON{
			V: 1, Seq: seq, TS: rfcTime(ts.In(s.sc.Location)),
			BatteryPct: &batt,
			TempC:      round(outdoorTemp(hour)+f.tempOff+f.rng.NormFloat64()*0.3, 1),
			UptimeS:    int64(t.Sub(f.bootAt) / time.Second),
			Power:      f.spec.Power,
			SignalDbm:  float64(-92 + f.rng.IntN(15)),
			FW:         "2.3.1",
		}
	})
}

// failPower starts a power loss at t (an incident).
func (f *fence) failPower(t time.Time, s *Sim, p *PowerLossIncident) {
	f.failFromPct = f.battery(s, t)
	f.failFrom, f.failTo, f.silentAt = t, p.BatteryTo, t.Add(p.SilentAfter.D())
}

// visit adds scripted phones: count of them arrive spread over arriveOver
// from t and each stays for stay.
func (f *fence) visit(r *rand.Rand, t time.Time, phones []*phone, arriveOver, stay time.Duration) {
	for i, ph := range phones {
		from := t
		if len(phones) > 1 {
			from = t.Add(arriveOver * time.Duration(i) / time.Duration(len(phones)-1))
		}
		from = from.Add(uniform(r, 0, 30*time.Second))
		f.present = append(f.present, presence{ph: ph, from: from, until: from.Add(stay), scripted: true})
	}
}
