package pipeline

import "time"

// gapLog is what the log has yet to tell of one device's missing messages:
// the seq metrics name no device (ids never go into labels), so a warning
// does, at most once a minute a device.
type gapLog struct {
	warned   time.Time
	missing  int64 // since the last line
	from, to int64 // the latest gap: the messages between these seqs are missing
}

// noteGap hears of missing messages of device between seqs from and to
// (seqTracker.onGap; called with engineMu held).
func (p *Pipeline) noteGap(device string, missing, from, to int64) {
	g := p.gapLogs[device]
	if g == nil {
		g = &gapLog{}
		p.gapLogs[device] = g
	}
	g.missing += missing
	g.from, g.to = from, to
	p.logGap(device, g, p.opts.Now())
}

// logGap tells g's missing messages if the device's minute has passed at now.
func (p *Pipeline) logGap(device string, g *gapLog, now time.Time) {
	if g.missing == 0 || now.Sub(g.warned) < time.Minute {
		return
	}
	p.log.Warn("messages missing from a device", "device", device, "missing", g.missing, "from_seq", g.from, "to_seq", g.to)
	g.warned, g.missing = now, 0
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
