package deadletter

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	written        prometheus.Counter
	bytes          prometheus.Gauge
	fsync          prometheus.Histogram
	writeErrors    prometheus.Counter
	evictedRecords prometheus.Counter
	evictedBytes   prometheus.Counter
}

// newMetrics registers the store's metrics. Rejections by reason are counted
// by the callers, which know the reasons; these are about the store.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	const ns, sub = "fenceline", "deadletter"
	return &metrics{
		written: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "written_records_total",
			Help: "Records written and fsynced to the dead-letter store."}),
		bytes: f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "bytes",
			Help: "Total size of the dead-letter segments on disk."}),
		fsync: f.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds",
			Help:    "Duration of the fsync of each group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		writeErrors: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_errors_total",
			Help: "Failed writes, fsyncs or evictions of dead-letter segments."}),
		evictedRecords: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "evicted_records_total",
			Help: "Records deleted with the oldest segments to keep the store within its max_bytes."}),
		evictedBytes: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "evicted_bytes_total",
			Help: "Bytes deleted with the oldest segments to keep the store within its max_bytes."}),
	}
}
