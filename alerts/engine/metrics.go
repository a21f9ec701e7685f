package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the engine's self-metrics. Rule ids are bounded by the rules
// file, so they are fine as label values; subjects never are labels.
type metrics struct {
	raised    *prometheus.CounterVec
	resent    *prometheus.CounterVec
	readings  *prometheus.CounterVec
	open      *prometheus.GaugeVec
	tracked   *prometheus.GaugeVec
	evicted   *prometheus.CounterVec
	whenErrs  *prometheus.CounterVec
	unused    *prometheus.CounterVec
	failures  *prometheus.CounterVec
	readingsC [numSources]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		raised: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "raised_total",
			Help: "Alerts raised, by rule and state (firing, resolved).",
		}, []string{"rule", "state"}),
		resent: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "resent_total",
			Help: "Firing alerts of still-open incidents sent again (repeat_interval), by rule; not counted in raised_total.",
		}, []string{"rule"}),
		readings: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "readings_evaluated_total",
			Help: "Readings the rules were evaluated on, by source.",
		}, []string{"source"}),
		open: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "open_incidents",
			Help: "Incidents firing and not yet resolved, by rule.",
		}, []string{"rule"}),
		tracked: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "state_entries",
			Help: "Entries of engine state (subjects, windows, cooldowns) kept per rule, updated on each tick.",
		}, []string{"rule"}),
		evicted: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "state_evicted_total",
			Help: "State entries dropped because a rule's bound was reached (not by normal expiry).",
		}, []string{"rule"}),
		whenErrs: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "when_errors_total",
			Help: "Evaluations of a rule's `when` that failed at run time (taken as false).",
		}, []string{"rule"}),
		unused: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "backlog_readings_unused_total",
			Help: "Readings a count or dwell rule could not use: a backlog older than the rule's backlog window or stay while that has an incident open.",
		}, []string{"rule"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fenceline", Subsystem: "alerts", Name: "rule_failures_total",
			Help: "Readings a rule failed on with an internal error (a bug in fenceline; rule \"\" before any rule): the reading is stored, that rule's alerts from it are lost. The log has the details.",
		}, []string{"rule"}),
	}
	// The series of a failure before any rule exists from the start, so
	// that increase() sees its first failure.
	m.failures.WithLabelValues("")
	for s := SourcePhone; s < numSources; s++ {
		m.readingsC[s] = m.readings.WithLabelValues(s.String())
	}
	return m
}

// ruleMetrics are one rule's pre-resolved series, so that the hot path does
// not hash label values.
type ruleMetrics struct {
	firing, resolved prometheus.Counter
	resent           prometheus.Counter
	open, tracked    prometheus.Gauge
	evicted, whenErr prometheus.Counter
	unused           prometheus.Counter
	failed           prometheus.Counter
}

func (m *metrics) forRule(id string) ruleMetrics {
	return ruleMetrics{
		firing:   m.raised.WithLabelValues(id, "firing"),
		resolved: m.raised.WithLabelValues(id, "resolved"),
		resent:   m.resent.WithLabelValues(id),
		open:     m.open.WithLabelValues(id),
		tracked:  m.tracked.WithLabelValues(id),
		evicted:  m.evicted.WithLabelValues(id),
		whenErr:  m.whenErrs.WithLabelValues(id),
		unused:   m.unused.WithLabelValues(id),
		failed:   m.failures.WithLabelValues(id),
	}
}

// dropRule removes the series of a rule that is no longer configured.
func (m *metrics) dropRule(id string) {
	m.raised.DeleteLabelValues(id, "firing")
	m.raised.DeleteLabelValues(id, "resolved")
	m.resent.DeleteLabelValues(id)
	m.open.DeleteLabelValues(id)
	m.tracked.DeleteLabelValues(id)
	m.evicted.DeleteLabelValues(id)
	m.whenErrs.DeleteLabelValues(id)
	m.unused.DeleteLabelValues(id)
	m.failures.DeleteLabelValues(id)
}
