package pipeline

import "time"

// gapLog is what the log has yet to tell of one device's missing messages:
// the seq metrics name no device (ids never go into labels), so a warning
// does, at most once a minute a device.
type gapLog struct {
	warned  time.Time
	missing int64 // since the last line
	gaps    int   // the gaps they are in
	// from and to bound those gaps: the messages missing are between them
	// (from the first gap's seq before it to the last gap's seq after it).
	from, to int64
}

// noteGap hears of missing messages of device between seqs from and to
// (seqTracker.onGap; called with engineMu held).
func (p *Pipeline) noteGap(device string, missing, from, to int64) {
	g := p.gapLogs[device]
	if g == nil {
		g = &gapLog{}
		p.gapLogs[device] = g
	}
	if g.missing == 0 {
		g.from = from
	}
	g.missing += missing
	g.gaps++
	g.to = to
	p.logGap(device, g, p.opts.Now())
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
	p.log.Info("a seq ahead was a stray, its next message going on from before it: the messages counted missing before it were not",
		"device", device, "stray_seq", stray, "not_missing", missing)
}

// logGap tells g's missing messages if the device's minute has passed at now.
func (p *Pipeline) logGap(device string, g *gapLog, now time.Time) {
	if g.missing <= 0 || now.Sub(g.warned) < time.Minute {
		return
	}
	p.log.Warn("messages missing from a device", "device", device, "missing", g.missing, "gaps", g.gaps, "from_seq", g.from, "to_seq", g.to)
	g.warned, g.missing, g.gaps = now, 0, 0
}

// logAllGaps tells, for every device, the missing messages not logged yet
// whose minute has passed at now.
func (p *Pipeline) logAllGaps(now time.Time) {
	p.engineMu.Lock()
	defer p.engineMu.Unlock()
	for id, g := range p.gapLogs {
		p.logGap(id, g, now)
	}
}
