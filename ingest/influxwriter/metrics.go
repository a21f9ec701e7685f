package influxwriter

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of one HTTP write request.
const (
	outcomeSuccess  = "success"  // 2xx
	outcomeRetry    = "retry"    // a retryable failure; the same body is sent again
	outcomeRejected = "rejected" // 400/413/422: split or bisected, or the lines were rejected for good
	outcomeSpooled  = "spooled"  // not sent (or sent and failed): the body is durable in the spool
)

// Error classes of failed write requests.
const (
	classNetwork    = "network"     // no HTTP answer: refused, reset, timeout
	classTLS        = "tls"         // no HTTP answer: the TLS handshake failed (see noAnswerClass)
	classServer     = "server"      // 5xx and unexpected statuses
	classThrottled  = "throttled"   // 429
	classAuth       = "auth"        // 401, 403
	classNotFound   = "not_found"   // 404: database (or bucket) not found
	classTooLarge   = "too_large"   // 413
	classBadRequest = "bad_request" // 400, 422: bad points, "partial write"
)

var errorClasses = []string{classNetwork, classTLS, classServer, classThrottled, classAuth, classNotFound, classTooLarge, classBadRequest}

type metrics struct {
	points     map[string]prometheus.Counter
	batches    map[string]prometheus.Counter
	errors     map[string]prometheus.Counter
	duration   prometheus.Histogram
	pending    prometheus.Gauge
	full       prometheus.Gauge
	batchLines prometheus.Histogram

	spooledLines     prometheus.Counter
	replayedLines    prometheus.Counter
	replayRejected   prometheus.Counter
	replayedRequests prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	const ns, sub = "fenceline", "influx"
	points := f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "points_written_total",
		Help: "Points acknowledged by InfluxDB, by measurement, written directly or replayed from the spool."}, []string{"measurement"})
	batches := f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_batches_total",
		Help: "Batches written by outcome: success, retry (retryable failure), rejected (400/413/422), spooled (to disk instead)."}, []string{"outcome"})
	errs := f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_errors_total",
		Help: "Failed HTTP write requests by class."}, []string{"class"})
	m := &metrics{
		points:  map[string]prometheus.Counter{},
		batches: map[string]prometheus.Counter{},
		errors:  map[string]prometheus.Counter{},
		duration: f.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "write_duration_seconds",
			Help:    "Duration of HTTP write requests, whatever their outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		pending: f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "pending_lines",
			Help: "Lines accepted by the writer and not yet acknowledged by InfluxDB (queued or in flight)."}),
		full: f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "pending_full",
			Help: "1 while a write waits for the pending lines to drop below influx.max_pending_lines: intake is stopped and the broker holds the backlog."}),
		batchLines: f.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "batch_lines",
			Help:    "Lines per batch taken for writing.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		spooledLines: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spooled_lines_total",
			Help: "Lines InfluxDB did not take that were fsynced to the spool instead (their messages are acked)."}),
		replayedLines: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replayed_lines_total",
			Help: "Spooled lines acknowledged by InfluxDB on replay."}),
		replayRejected: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replay_rejected_lines_total",
			Help: "Spooled lines InfluxDB refused for good on replay (handed to the dead letters)."}),
		replayedRequests: f.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replay_requests_total",
			Help: "HTTP write requests of the spool's replay, whatever their outcome."}),
	}
	// Pre-created so that dashboards show zeros rather than gaps.
	for _, l := range Measurements {
		m.points[l] = points.WithLabelValues(l)
	}
	for _, l := range []string{outcomeSuccess, outcomeRetry, outcomeRejected, outcomeSpooled} {
		m.batches[l] = batches.WithLabelValues(l)
	}
	for _, l := range errorClasses {
		m.errors[l] = errs.WithLabelValues(l)
	}
	return m
}
