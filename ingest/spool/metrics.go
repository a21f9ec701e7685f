package spool

import (
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	bytes    prometheus.Gauge
	full     prometheus.Gauge
	appended prometheus.Counter
	replayed prometheus.Counter
	refused  prometheus.Counter
	errors   prometheus.Counter
	fsync    prometheus.Histogram

	damagedBytes   prometheus.Counter
	damagedRecords prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Spool) *metrics {
	f := promauto.With(reg)
	const ns, sub = "fenceline", "spool"
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "oldest_age_seconds",
		Help: "Age of the oldest spooled batch not yet replayed to InfluxDB; 0 when there is none."},
		func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.records == 0 || s.oldest.IsZero() {
				return 0
			}
			return max(s.opts.Now().Sub(s.oldest).Seconds(), 0)
		})
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "records",
		Help: "Spooled batches not yet replayed to InfluxDB."},
		func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(s.records)
		})
	f.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "damaged_segments",
		Help: "Copies of damaged segments (<segment>.damaged) in the spool folder, kept for salvage: 0 once someone dealt with them."},
		func() float64 {
			entries, err := os.ReadDir(s.dir)
			if err != nil {
				return 0
			}
			n := 0
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), damagedSuffix) {
					n++
				}
			}
			return float64(n)
		})
	return &metrics{
		bytes: f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "bytes",
			Help: "Size of the spool's segments on disk (what storage.spool_max_bytes bounds)."}),
		full: f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "full",
			Help: "1 while the spool refuses batches because storage.spool_max_bytes is reached: intake is then held back by InfluxDB alone."}),
		appended: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "appended_records_total",
			Help: "Batches written and fsynced to the spool."}),
		replayed: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replayed_records_total",
			Help: "Spooled batches acknowledged by InfluxDB on replay."}),
		refused: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "refused_records_total",
			Help: "Batches the spool refused because it was full (they stay in memory and are retried)."}),
		errors: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failed writes, fsyncs, reads or deletions of spool segments."}),
		damagedBytes: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "damaged_bytes_total",
			Help: "Bytes of spool segments skipped because they were damaged (a bad CRC or length with intact records after it, or at the end of a segment not the last): the readings in them are lost."}),
		damagedRecords: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "damaged_records_total",
			Help: "Spooled batches lost to damage, as far as the damaged bytes' length fields tell (a stretch whose lengths are damaged counts as one)."}),
		fsync: f.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds",
			Help:    "Duration of the fsync of each group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
	}
}
