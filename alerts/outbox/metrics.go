package outbox

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the outbox's self-metrics. Sink names are bounded by the
// configuration ("mqtt", "influx", "webhook-<n>"), so they are label values.
type metrics struct {
	delivered  *prometheus.CounterVec
	failures   *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	pending    *prometheus.GaugeVec
	latency    *prometheus.HistogramVec
	duplicates prometheus.Counter
	accepted   prometheus.Counter

	fsync        prometheus.Histogram
	writeErrors  prometheus.Counter
	compactions  prometheus.Counter
	corrupt      prometheus.Counter
	logBytes     prometheus.Gauge
	removedSinks prometheus.Counter
	full         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		delivered: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "delivered_total",
			Help: "Alerts delivered, by sink (a delivery repeated after a crash counts again).",
		}, []string{"sink"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "delivery_failures_total",
			Help: "Failed delivery attempts, by sink: retried ones and permanent ones.",
		}, []string{"sink"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "dropped_total",
			Help: "Alerts a sink refused for good (permanent failure) and that were dropped for it.",
		}, []string{"sink"}),
		pending: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "pending",
			Help: "Alerts durable in the outbox and not yet delivered to the sink.",
		}, []string{"sink"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "delivery_latency_seconds",
			Help: "Time from an alert's raised_at to its delivery, by sink.",
			// From a healthy sink (tens of ms) to a long outage (hours).
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600},
		}, []string{"sink"}),
		duplicates: f.NewCounter(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "duplicates_total",
			Help: "Alerts not accepted because their id and state were already accepted.",
		}),
		accepted: f.NewCounter(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "accepted_total",
			Help: "Alerts made durable in the outbox.",
		}),
		fsync: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "fsync_duration_seconds",
			Help:    "Duration of the outbox log's fsyncs (one per group of appends and acks).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 0.1 ms … ~6 s
		}),
		writeErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "write_errors_total",
			Help: "Failed attempts to make a group of alerts durable (write, fsync or the rewrite after one); the group is kept and written again.",
		}),
		compactions: f.NewCounter(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "compactions_total",
			Help: "Rewrites of the outbox log down to its pending alerts and dedupe keys.",
		}),
		corrupt: f.NewCounter(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "corrupt_records_total",
			Help: "Records in the middle of the log skipped on load because they were damaged.",
		}),
		logBytes: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "log_bytes",
			Help: "Size of the outbox log.",
		}),
		removedSinks: f.NewCounter(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "removed_sink_deliveries_dropped_total",
			Help: "Pending deliveries dropped on open because their sink is no longer configured.",
		}),
		full: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "fenceline", Subsystem: "outbox", Name: "full",
			Help: "1 while intake waits for the outbox: alerts.max_pending alerts wait for delivery.",
		}),
	}
}

// sinkMetrics are one sink's pre-resolved series; resolving them at Open
// also makes dashboards show zeros for a healthy sink.
type sinkMetrics struct {
	delivered, failures, dropped prometheus.Counter
	pending                      prometheus.Gauge
	latency                      prometheus.Observer
}

func (m *metrics) forSink(name string) sinkMetrics {
	return sinkMetrics{
		delivered: m.delivered.WithLabelValues(name),
		failures:  m.failures.WithLabelValues(name),
		dropped:   m.dropped.WithLabelValues(name),
		pending:   m.pending.WithLabelValues(name),
		latency:   m.latency.WithLabelValues(name),
	}
}
