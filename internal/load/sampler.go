package load

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// sample is the state of the system at one moment of a run.
type sample struct {
	T          time.Time
	Stored     float64 // reading points InfluxDB acknowledged to the daemon
	Rejections float64 // fenceline_ingest_rejections_total
	Metrics    Metrics // cumulative series summed over restarts (counters.add); a failed scrape's are the last; nil without a metrics URL
	CPU        map[string]time.Duration
	DaemonRSS  int64
	Busy       time.Duration // machine-wide CPU busy time
	Total      time.Duration // machine-wide CPU time
}

// sampler takes samples at a fixed period while a run lasts.
type sampler struct {
	tg     Target
	log    *slog.Logger
	client *http.Client
	every  time.Duration

	mu       sync.Mutex
	samples  []sample
	updated  chan struct{} // a new sample is in
	failed   int           // scrapes that failed
	counters counters
	restarts int // of the daemon, seen in its metrics
}

func newSampler(tg Target, every time.Duration, log *slog.Logger) *sampler {
	return &sampler{tg: tg, log: log, every: every, updated: make(chan struct{}, 1),
		// Uncompressed: gzip would cost the daemon, whose CPU is measured,
		// more than the bytes cost the loopback.
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}}
}

func (s *sampler) processes() []Process {
	var ps []Process
	if s.tg.Daemon.PID > 0 {
		ps = append(ps, s.tg.Daemon)
	}
	return append(ps, s.tg.Others...)
}

// take samples now and appends the sample.
func (s *sampler) take(ctx context.Context) (sample, error) {
	smp := sample{T: time.Now(), CPU: map[string]time.Duration{}}
	var scraped Metrics
	var err error
	if s.tg.MetricsURL != "" {
		scraped, err = scrapeMetrics(ctx, s.client, s.tg.MetricsURL)
	}
	for _, p := range s.processes() {
		st, perr := readProc(p.PID)
		if perr != nil {
			continue // reported once at the end, by the missing figure
		}
		smp.CPU[p.Name] = st.CPU
		if p.PID == s.tg.Daemon.PID {
			smp.DaemonRSS = st.RSS
		}
	}
	smp.Busy, smp.Total, _ = machineCPU()
	s.mu.Lock()
	switch {
	case scraped != nil:
		var restarted bool
		smp.Metrics, restarted = s.counters.add(scraped)
		if restarted {
			s.restarts++
			s.log.Warn("the daemon restarted: its counters started again from zero; summing them over its processes")
		}
		for _, m := range ReadingMeasurements {
			smp.Stored += smp.Metrics.Sum("fenceline_influx_points_written_total", map[string]string{"measurement": m})
		}
		smp.Rejections = smp.Metrics.Sum("fenceline_ingest_rejections_total", nil)
	case err != nil:
		s.failed++
		// Carry the counts over, so that a failed scrape does not look like
		// a drop to zero.
		if n := len(s.samples); n > 0 {
			smp.Metrics, smp.Stored, smp.Rejections = s.samples[n-1].Metrics, s.samples[n-1].Stored, s.samples[n-1].Rejections
		}
	}
	if smp.DaemonRSS == 0 && scraped != nil {
		smp.DaemonRSS = int64(scraped.Sum("process_resident_memory_bytes", nil))
	}
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
	select {
	case s.updated <- struct{}{}:
	default:
	}
	return smp, err
}

// run samples every period until ctx ends.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.take(ctx); err != nil && ctx.Err() == nil {
				s.log.Debug("sample failed", "err", err)
			}
		}
	}
}

func (s *sampler) last() sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples[len(s.samples)-1]
}

// restarted says how many times the daemon restarted so far.
func (s *sampler) restarted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

func (s *sampler) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}
