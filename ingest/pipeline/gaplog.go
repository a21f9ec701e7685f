package pipeline

import "time"

// gapLog is what the log has yet to tell of one device's missing messages:
// the seq metrics name no device (ids never go into labels), so a warning
// does, at most once a minute a device. A gap is told only once it has
// stayed open for gapGrace: messages that come out of order (a broker's
// redelivery after a restart, a unit's buffer sent beside its live
// messages) fill it first, and were never missing. Those that come after
// their gap was told are told too, as having arrived late.
type gapLog struct {
	warned time.Time
	// The gaps not told yet: missing messages in gaps, between seqs from
	// (the seq before the first gap) and to (the seq after the last),
	// the first of them noticed at noticed.
	missing  int64
	gaps     int
	from, to int64
	noticed  time.Time
	// The messages told missing that have not come (up to seq toldTo),
	// and those told that came since the last line about them.
	told, toldTo int64
	arrived      int64
	arrivedTold  time.Time
	// before: some arrived were counted missing before fenceline
	// restarted, so how many are still missing is not known.
	before bool
}

// gapGrace is how long a gap stays open before it is told.
const gapGrace = 30 * time.Second

func (p *Pipeline) gapLogOf(device string) *gapLog {
	g := p.gapLogs[device]
	if g == nil {
		g = &gapLog{}
		p.gapLogs[device] = g
	}
	return g
}

// noteGap hears of missing messages of device between seqs from and to
// (seqTracker.onGap; called with engineMu held).
func (p *Pipeline) noteGap(device string, missing, from, to int64) {
	g := p.gapLogOf(device)
	now := p.opts.Now()
	if g.missing == 0 {
		g.from, g.noticed, g.gaps = from, now, 0
	}
	g.missing += missing
	g.gaps++
	g.to = to
	p.logGap(device, g, now)
}

// noteArrived hears that device's message seq, counted missing, came
// (seqTracker.onRecovered). Not told yet, it is taken back; told, it is
// told as arrived late.
func (p *Pipeline) noteArrived(device string, seq int64) {
	g := p.gapLogOf(device)
	switch {
	case g.told > 0 && seq < g.toldTo:
		g.told-- // told with the others that come by the next tick
		g.arrived++
	case g.missing > 0:
		g.missing--
	default:
		// Counted missing before fenceline restarted (the saved counters
		// say so), and told then: its gap was told at the stop at the
		// latest.
		g.arrived++
		g.before = true
	}
}

// noteStray hears that device's seq stray was a stray (seqTracker.onStray):
// the missing its jump counted were not. Not told yet, they are taken back;
// told, the log says they were not missing.
func (p *Pipeline) noteStray(device string, stray, missing int64) {
	if g := p.gapLogs[device]; g != nil && g.missing >= missing {
		g.missing -= missing
		g.gaps--
		return
	}
	if g := p.gapLogs[device]; g != nil {
		g.told = max(g.told-missing, 0)
	}
	p.log.Info("a seq ahead was a stray, its next message going on from before it: the messages counted missing before it were not",
		"device", device, "stray_seq", stray, "not_missing", missing)
}

// logGap tells g's gaps open for gapGrace, and the told messages that
// arrived since, if the device's minute has passed at now.
func (p *Pipeline) logGap(device string, g *gapLog, now time.Time) {
	if g.missing > 0 && now.Sub(g.noticed) >= gapGrace && now.Sub(g.warned) >= time.Minute {
		p.log.Warn("messages missing from a device", "device", device, "missing", g.missing, "gaps", g.gaps, "from_seq", g.from, "to_seq", g.to)
		g.told += g.missing
		g.toldTo = max(g.toldTo, g.to)
		g.warned, g.missing, g.gaps = now, 0, 0
	}
	if g.arrived > 0 && now.Sub(g.arrivedTold) >= time.Minute {
		attrs := []any{"device", device, "arrived", g.arrived}
		if !g.before {
			attrs = append(attrs, "still_missing", g.told)
		}
		p.log.Info("messages told missing from a device arrived late: not lost", attrs...)
		g.arrivedTold, g.arrived = now, 0
	}
}

// logAllGaps tells, for every device, what logGap would at now.
func (p *Pipeline) logAllGaps(now time.Time) {
	p.engineMu.Lock()
	defer p.engineMu.Unlock()
	for id, g := range p.gapLogs {
		p.logGap(id, g, now)
	}
}
