package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"time"
)

// Target is the system under load.
type Target struct {
	Broker string // tcp://host:port
	Influx Influx
	// MetricsURL is the daemon's /metrics. Without it there is no stored
	// timeline (so no publish→stored latency) and no dead-letter count, and
	// completion is judged by polling InfluxDB.
	MetricsURL string
	// AlertPrefix is the first level of alert topics (alerts.topic_prefix).
	AlertPrefix string
	// Daemon is the fenceline process (PID 0: unknown). DaemonInProcess
	// says it shares this process with the load tool.
	Daemon          Process
	DaemonInProcess bool
	// Others are further processes whose CPU share is reported.
	Others []Process
}

// Options are a run's settings.
type Options struct {
	Name    string
	Traffic Traffic
	// Messages stops publishing after this many messages; Duration after
	// this long (at least one of them is required).
	Messages int
	Duration time.Duration
	// Rate is messages per second; 0 publishes as fast as the broker takes
	// them (Inflight bounds the messages awaiting their PUBACK).
	Rate        float64
	Inflight    int
	Connections int
	QoS         byte
	// SampleEvery is the period of metrics and /proc samples (default
	// 250ms): the resolution of the stored timeline. Each scrape costs the
	// daemon a millisecond or so of CPU, which its figures include.
	SampleEvery time.Duration
	// Settle is how long to wait, once publishing is done, without any
	// reading being stored, rejected or alerted, before giving up on the
	// rest (default 30s).
	Settle time.Duration
	// Verify is "points" (default: every point matched to its reading) or
	// "counts" (points counted per device: cheaper, cannot tell duplicates
	// from strays).
	Verify string
	Log    *slog.Logger
}

func (o *Options) defaults() error {
	if o.Messages <= 0 && o.Duration <= 0 {
		return errors.New("load: want a number of messages or a duration")
	}
	if o.Messages <= 0 && o.Rate > 0 {
		// At a fixed rate a duration is a number of messages; counting them
		// keeps the last one from slipping in or out on timing.
		o.Messages = int(o.Rate * o.Duration.Seconds())
		o.Duration = 0
	}
	if o.Inflight <= 0 {
		o.Inflight = 200
	}
	if o.Connections <= 0 {
		o.Connections = 1
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 250 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 30 * time.Second
	}
	switch o.Verify {
	case "":
		o.Verify = "points"
	case "points", "counts":
	default:
		return fmt.Errorf("load: verify %q is neither points nor counts", o.Verify)
	}
	if o.QoS > 1 {
		return errors.New("load: QoS 0 or 1")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Run publishes the traffic of o to tg, waits until fenceline has stored,
// rejected and alerted on all of it (or stops progressing), checks InfluxDB
// and returns the report.
func Run(ctx context.Context, w *World, tg Target, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if tg.AlertPrefix == "" {
		tg.AlertPrefix = "border"
	}
	log := o.Log
	gen, err := NewGenerator(w, o.Traffic)
	if err != nil {
		return nil, err
	}
	rep := &Report{Name: o.Name, Started: time.Now(), Profile: Profile{
		World: w.Spec, Traffic: o.Traffic, Messages: o.Messages, Duration: o.Duration, Rate: o.Rate,
		Inflight: o.Inflight, Connections: o.Connections, QoS: o.QoS,
	}}

	var subs *alertSub
	if w.Alerting {
		if subs, err = subscribeAlerts(ctx, tg.Broker, tg.AlertPrefix); err != nil {
			return nil, err
		}
		defer subs.close()
	}
	ledger := NewLedger()
	pub, err := newPublisher(ctx, tg.Broker, o.Connections, o.Inflight, o.QoS, ledger)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	smp := newSampler(tg, o.SampleEvery, log)
	base, err := smp.take(ctx)
	if err != nil {
		return nil, fmt.Errorf("load: daemon metrics: %w", err)
	}
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		smp.run(sctx)
	}()

	// Publish.
	log.Info("publishing", "messages", o.Messages, "duration", o.Duration, "rate", o.Rate)
	start := time.Now()
	byStream := map[string]int64{}
	var invalid int64
	for i := 0; ; i++ {
		if o.Messages > 0 && i >= o.Messages {
			break
		}
		if o.Duration > 0 && time.Since(start) >= o.Duration {
			break
		}
		if ctx.Err() != nil {
			break
		}
		if o.Rate > 0 {
			// Pacing, not synchronisation: message i is due at i/rate.
			due := start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > time.Millisecond {
				time.Sleep(d)
			}
		}
		m := gen.Next(time.Now())
		if err := pub.publish(ctx, &m); err != nil {
			break
		}
		byStream[m.Stream.String()]++
		if m.Defect != "" {
			invalid++
		}
	}
	pubDone := time.Now()
	pub.flush()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if n := pub.errs.Load(); n > 0 {
		log.Warn("publishes failed", "count", n, "last", pub.err())
	}

	// Every ts is taken from this machine's clock after start; a reading's
	// own ts goes back at most its batch size in milliseconds. The range
	// InfluxDB is read in is kept that tight so that the points of an
	// earlier run against the same database are not counted as this one's.
	from := start.Add(-time.Duration(max(o.Traffic.DetectionBatch, o.Traffic.PassBatch)+1) * time.Millisecond)

	// Wait for fenceline to finish with it.
	want := ledger.Account() // before any observation: the expectations
	log.Info("published; waiting for fenceline", "messages", want.PublishedMessages, "expected_stored", want.ExpectedStored,
		"expected_rejections", want.ExpectedRejections, "expected_alerts", want.ExpectedAlerts)
	complete, err := waitSettled(ctx, smp, subs, tg, &base, from, want, o, log)
	if err != nil {
		return nil, err
	}
	stopSampling()
	<-sampled
	final, _ := smp.take(ctx)
	samples := smp.all()

	// Check InfluxDB.
	to := pubDone.Add(time.Second)
	if err := verify(ctx, tg.Influx, ledger, o.Verify, from, to, deviceSet(w)); err != nil {
		return nil, err
	}
	rep.Accounting = ledger.Account()
	entries := ledger.Entries()

	// Publishing.
	a := rep.Accounting
	rep.Published = PublishReport{Messages: a.PublishedMessages, Readings: a.PublishedReadings, ByStream: byStream,
		Invalid: invalid, Failed: a.FailedPublishes, Seconds: pubDone.Sub(start).Seconds()}
	if s := rep.Published.Seconds; s > 0 {
		rep.Published.MessagesPerSec = float64(a.PublishedMessages) / s
		rep.Published.ReadingsPerSec = float64(a.PublishedReadings) / s
	}
	var pubAck Dist
	for i := range entries {
		if e := &entries[i]; !e.Failed && !e.Acked.IsZero() {
			pubAck.Add(e.Acked.Sub(e.Published), 1)
		}
	}
	rep.PubAckLatency = pubAck.Summary()

	// The stored timeline, relative to the baseline.
	timeline := make([]CountSample, 0, len(samples))
	for _, s := range samples {
		timeline = append(timeline, CountSample{T: s.T, N: s.Stored - base.Stored})
	}
	end := final.T
	if t, ok := reachedAt(timeline, float64(a.ExpectedStored)); ok && a.ExpectedStored > 0 {
		end = t
	} else if last := lastChange(timeline); !last.IsZero() {
		end = last
	}
	rep.EndToEnd = EndToEnd{Complete: complete && a.LostReadings == 0, Seconds: end.Sub(start).Seconds()}
	if rep.EndToEnd.Seconds > 0 {
		rep.EndToEnd.ReadingsPerSec = float64(a.Stored) / rep.EndToEnd.Seconds
	}
	if tg.MetricsURL != "" {
		d := storedLatency(entries, timeline)
		rep.StoredLatency = d.Summary()
		rep.DeadLettered = final.Rejections - base.Rejections
		rep.DeadLetteredByReason = map[string]float64{}
		before := base.Metrics.ByLabel("fenceline_ingest_rejections_total", "reason")
		for k, v := range final.Metrics.ByLabel("fenceline_ingest_rejections_total", "reason") {
			if dv := v - before[k]; dv > 0 {
				rep.DeadLetteredByReason[k] = dv
			}
		}
		rep.Daemon.SeqGaps = final.Metrics.Sum("fenceline_ingest_sequence_gaps_total", nil) - base.Metrics.Sum("fenceline_ingest_sequence_gaps_total", nil)
		rep.Daemon.SeqDuplicates = final.Metrics.Sum("fenceline_ingest_sequence_duplicates_total", nil) - base.Metrics.Sum("fenceline_ingest_sequence_duplicates_total", nil)
		rep.Daemon.Histograms = map[string]HistogramDelta{}
		for _, h := range daemonHistograms {
			if d, ok := histogramDelta(base.Metrics, final.Metrics, h.name); ok {
				rep.Daemon.Histograms[h.name] = d
			}
		}
		rep.Daemon.Counters = map[string]float64{}
		for _, c := range daemonCounters {
			if d := final.Metrics.Sum(c.name, nil) - base.Metrics.Sum(c.name, nil); d > 0 {
				rep.Daemon.Counters[c.label] = d
			}
		}
		if w := rep.Daemon.Histograms["fenceline_influx_write_duration_seconds"]; w.Count > 0 {
			lines := final.Metrics.Sum("fenceline_influx_points_written_total", nil) - base.Metrics.Sum("fenceline_influx_points_written_total", nil)
			rep.Daemon.LinesPerWrite = lines / w.Count
		}
		retry := map[string]string{"outcome": "retry"}
		if d := final.Metrics.Sum("fenceline_influx_write_batches_total", retry) - base.Metrics.Sum("fenceline_influx_write_batches_total", retry); d > 0 {
			rep.Daemon.Counters["influx write retries"] = d
		}
	} else {
		rep.Notes = append(rep.Notes, "no daemon metrics: no stored timeline, latency or dead-letter count")
	}
	rep.Throughput = throughput(start, end, entries, timeline, samples, tg.Daemon.Name)

	// Alerts.
	rep.Alerts.Expected = a.ExpectedAlerts
	if subs != nil {
		got, bad := subs.received()
		rep.Alerts.Malformed = bad
		if n := subs.lost.Load(); n > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the alert subscriber lost its connection %d times: alerts published until it was back "+
				"(the daemon may reconnect first) are reported missing; count them in InfluxDB's alert measurement", n))
		}
		var lat Dist
		seen := map[string]bool{}
		for _, r := range got {
			if (r.Rule != RuleForeignSIM && r.Rule != RuleSpeeding) || r.State != "firing" {
				rep.Alerts.Other++
				continue
			}
			if seen[r.ID] {
				rep.Alerts.Duplicates++
				continue
			}
			seen[r.ID] = true
			pt, ok := ledger.Published(r.Device, r.Seq)
			if !ok {
				rep.Alerts.Other++
				continue
			}
			rep.Alerts.Received++
			lat.Add(r.T.Sub(pt), 1)
		}
		rep.Alerts.Missing = max(rep.Alerts.Expected-rep.Alerts.Received, 0)
		rep.Alerts.Latency = lat.Summary()
	}

	// CPU and memory over the end-to-end window.
	startSmp, endSmp := base, at(samples, end)
	wall := endSmp.T.Sub(startSmp.T).Seconds()
	rep.Machine.CPUs = runtime.NumCPU()
	if dt := endSmp.Total - startSmp.Total; dt > 0 {
		rep.Machine.BusyShare = float64(endSmp.Busy-startSmp.Busy) / float64(dt)
	}
	for _, p := range smp.processes() {
		c0, ok0 := startSmp.CPU[p.Name]
		c1, ok1 := endSmp.CPU[p.Name]
		if !ok0 || !ok1 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("no CPU figures for %s (pid %d)", p.Name, p.PID))
			continue
		}
		pr := ProcessReport{Name: p.Name, PID: p.PID, CPUSeconds: (c1 - c0).Seconds()}
		if wall > 0 {
			pr.CoreShare = pr.CPUSeconds / wall
		}
		rep.Processes = append(rep.Processes, pr)
	}
	if wall > 0 {
		ours := 0.0
		for _, pr := range rep.Processes {
			ours += pr.CoreShare
		}
		rep.Machine.OthersCores = max(rep.Machine.BusyShare*float64(rep.Machine.CPUs)-ours, 0)
	}
	rep.Daemon.PID, rep.Daemon.InProcess = tg.Daemon.PID, tg.DaemonInProcess
	rep.Daemon.CPUSeconds = daemonCPU(startSmp, endSmp, tg.Daemon.Name)
	if a.Stored > 0 {
		rep.Daemon.CPUMicrosPerReading = rep.Daemon.CPUSeconds * 1e6 / float64(a.Stored)
	}
	for _, s := range samples {
		rep.Daemon.PeakRSSBytes = max(rep.Daemon.PeakRSSBytes, s.DaemonRSS)
	}
	if tg.Daemon.PID > 0 {
		if st, err := readProc(tg.Daemon.PID); err == nil {
			rep.Daemon.PeakRSSBytes = max(rep.Daemon.PeakRSSBytes, st.HWM)
		}
	}
	if tg.DaemonInProcess {
		rep.Notes = append(rep.Notes, "the daemon ran in-process: its CPU and memory include the load tool's")
	}
	if f := smp.failed; f > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d metrics scrapes failed", f))
	}
	if n := smp.restarted(); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the daemon restarted (%d restarts seen): its counters and CPU are summed over its processes, "+
			"less what each counted after its last scrape; completion was judged by InfluxDB's count", n))
	}
	return rep, nil
}

// daemonCPU is the daemon's CPU time in seconds from sample a to b: from
// /proc while its process lives through both, else from its
// process_cpu_seconds_total, which sums the CPU of every process it had
// (counters.add); 0 when neither is known.
func daemonCPU(a, b sample, name string) float64 {
	c0, ok0 := a.CPU[name]
	c1, ok1 := b.CPU[name]
	switch {
	case ok0 && ok1:
		return (c1 - c0).Seconds()
	case a.Metrics != nil && b.Metrics != nil:
		return b.Metrics.Sum("process_cpu_seconds_total", nil) - a.Metrics.Sum("process_cpu_seconds_total", nil)
	}
	return 0
}

// waitSettled waits until the daemon has stored every expected reading,
// counted every expected rejection and raised every expected alert, or
// until nothing changed for o.Settle. It reports whether everything came.
func waitSettled(ctx context.Context, smp *sampler, subs *alertSub, tg Target, base *sample, from time.Time, want Accounting,
	o Options, log *slog.Logger) (bool, error) {
	var alerts <-chan struct{}
	if subs != nil {
		alerts = subs.notify
	}
	stored := func(s sample) float64 { return s.Stored - base.Stored }
	// Without metrics, InfluxDB's count (of the points since from) is the
	// stored count; likewise once the daemon restarted, since what it
	// stored and rejected after its last scrape before the restart is in
	// no scrape. Counting is work for InfluxDB, so at most once a second.
	var counted float64
	var countedAt time.Time
	countInflux := func() float64 {
		if time.Since(countedAt) < time.Second {
			return counted
		}
		countedAt = time.Now()
		var n int64
		for _, m := range ReadingMeasurements {
			c, err := tg.Influx.CountByDevice(ctx, m, from, time.Now().Add(time.Minute))
			if err != nil {
				log.Debug("count failed", "err", err)
				return -1
			}
			for _, v := range c {
				n += v
			}
		}
		counted = float64(n)
		return counted
	}
	var lastKey [3]float64
	lastProgress := time.Now()
	settle := time.NewTimer(o.Settle)
	defer settle.Stop()
	for {
		s := smp.last()
		nStored := stored(s)
		restarted := smp.restarted() > 0
		if tg.MetricsURL == "" || restarted {
			nStored = countInflux()
		}
		nAlerts := 0.0
		if subs != nil {
			nAlerts = float64(subs.count())
		}
		key := [3]float64{nStored, s.Rejections, nAlerts}
		rejOK := tg.MetricsURL == "" || restarted || s.Rejections-base.Rejections >= float64(want.ExpectedRejections)
		if nStored >= float64(want.ExpectedStored) && rejOK && nAlerts >= float64(want.ExpectedAlerts) {
			return true, nil
		}
		if key != lastKey {
			lastKey, lastProgress = key, time.Now()
			settle.Reset(o.Settle)
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("load: %w", ctx.Err())
		case <-smp.updated:
		case <-alerts:
		case <-settle.C:
			log.Warn("fenceline stopped progressing; reporting what arrived", "stored", nStored, "expected", want.ExpectedStored,
				"alerts", nAlerts, "expected_alerts", want.ExpectedAlerts, "since", time.Since(lastProgress).Round(time.Second))
			return false, nil
		}
	}
}

// verify reads back what InfluxDB holds of the run.
func verify(ctx context.Context, in Influx, ledger *Ledger, method string, from, to time.Time, devices map[string]bool) error {
	for _, m := range ReadingMeasurements {
		if method == "counts" {
			counts, err := in.CountByDevice(ctx, m, from, to)
			if err != nil {
				return fmt.Errorf("load: verify: %w", err)
			}
			for dev, n := range counts {
				if devices[dev] {
					ledger.ObserveCount(m, dev, n)
				}
			}
			continue
		}
		err := in.ScanPoints(ctx, m, from, to, func(dev string, ns, seq int64) {
			if devices[dev] {
				ledger.ObservePoint(m, dev, ns, seq)
			}
		})
		if err != nil {
			return fmt.Errorf("load: verify: %w", err)
		}
	}
	return nil
}

func deviceSet(w *World) map[string]bool {
	s := map[string]bool{}
	for _, d := range w.Devices() {
		s[d.ID] = true
	}
	return s
}

// lastChange is when the count last grew.
func lastChange(tl []CountSample) time.Time {
	for i := len(tl) - 1; i > 0; i-- {
		if tl[i].N != tl[i-1].N {
			return tl[i].T
		}
	}
	return time.Time{}
}

// valueAt interpolates the count at t.
func valueAt(tl []CountSample, t time.Time) float64 {
	if len(tl) == 0 {
		return 0
	}
	for i := 1; i < len(tl); i++ {
		if !tl[i].T.Before(t) {
			a, b := tl[i-1], tl[i]
			if span := b.T.Sub(a.T); span > 0 {
				return a.N + (b.N-a.N)*float64(t.Sub(a.T))/float64(span)
			}
			return b.N
		}
	}
	return tl[len(tl)-1].N
}

// at returns the first sample at or after t (the last one if none).
func at(samples []sample, t time.Time) sample {
	for _, s := range samples {
		if !s.T.Before(t) {
			return s
		}
	}
	return samples[len(samples)-1]
}

// throughput is the run second by second: readings published and stored,
// and the daemon's CPU share.
func throughput(start, end time.Time, entries []Entry, tl []CountSample, samples []sample, daemon string) []ThroughputSec {
	secs := int(math.Ceil(end.Sub(start).Seconds()))
	if secs <= 0 {
		return nil
	}
	out := make([]ThroughputSec, secs)
	for i := range out {
		out[i].Second = i
	}
	for i := range entries {
		if e := &entries[i]; !e.Failed {
			if k := int(e.Published.Sub(start) / time.Second); k >= 0 && k < secs {
				out[k].Published += float64(e.Readings)
			}
		}
	}
	cpuAt := func(t time.Time) (time.Duration, bool) {
		s := at(samples, t)
		c, ok := s.CPU[daemon]
		return c, ok
	}
	for i := range out {
		t0, t1 := start.Add(time.Duration(i)*time.Second), start.Add(time.Duration(i+1)*time.Second)
		out[i].Stored = valueAt(tl, t1) - valueAt(tl, t0)
		if c0, ok0 := cpuAt(t0); ok0 {
			if c1, ok1 := cpuAt(t1); ok1 {
				out[i].DaemonCPU = (c1 - c0).Seconds()
			}
		}
	}
	return out
}
