package pipeline

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/internal/model"
)

type metrics struct {
	messages              *prometheus.CounterVec
	readings              *prometheus.CounterVec
	rejections            *prometheus.CounterVec
	rejectionsRedelivered prometheus.Counter
	seqRecovered          prometheus.Counter
	seqGaps               prometheus.Counter
	seqMissing            prometheus.Counter
	seqUnknown            prometheus.Counter
	seqDuplicates         prometheus.Counter
	seqLate               prometheus.Counter
	seqResets             prometheus.Counter
	retainedIgnored       prometheus.Counter
	pointTimeShared       prometheus.Counter
	abandoned             prometheus.Counter
	ackLatency            prometheus.Histogram

	// The stream counters, looked up once: indexed by model.Stream, whose
	// values are small (StreamUnknown to StreamStatus). readingsBy has no
	// counter for StreamUnknown (a message of no stream has no readings).
	messagesBy [numStreams]prometheus.Counter
	readingsBy [numStreams]prometheus.Counter
}

// numStreams bounds the values of model.Stream.
const numStreams = int(model.StreamStatus) + 1

// streamIndex is s as an index of the stream counters (unknown values count
// as StreamUnknown).
func streamIndex(s model.Stream) int {
	if int(s) >= numStreams {
		return int(model.StreamUnknown)
	}
	return int(s)
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		messages: f.NewCounterVec(prometheus.CounterOpts{Name: "fenceline_ingest_messages_total",
			Help: "Messages processed, by stream (unknown: the topic did not parse)."}, []string{"stream"}),
		readings: f.NewCounterVec(prometheus.CounterOpts{Name: "fenceline_ingest_readings_accepted_total",
			Help: "Readings that passed validation, by stream."}, []string{"stream"}),
		rejections: f.NewCounterVec(prometheus.CounterOpts{Name: "fenceline_ingest_rejections_total",
			Help: "Rejected messages (whole) and readings, by reason; each is in the dead letters."}, []string{"reason"}),
		rejectionsRedelivered: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_rejections_redelivered_total",
			Help: "Rejections of messages the broker delivered again whose dead letters were written at the first delivery: not recorded or counted again."}),
		seqGaps: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_gaps_total",
			Help: "Times a device's seq jumped forward by more than one."}),
		seqMissing: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_missing_messages_total",
			Help: "Messages skipped by seq jumps (sum of gap sizes); those that arrive later count in fenceline_ingest_sequence_recovered_messages_total too (lost: missing minus recovered)."}),
		seqRecovered: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_recovered_messages_total",
			Help: "Messages counted missing that arrived later, out of order (lost: missing minus recovered)."}),
		seqUnknown: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_unknown_messages_total",
			Help: "Messages skipped by a device's first seq after an unclean stop: stored before the stop, or lost; fenceline cannot tell."}),
		pointTimeShared: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_point_time_shared_readings_total",
			Help: "Readings stored at the point time of an earlier reading of another message of their device (a unit whose clock stands still for hundreds of messages, or that replays old readings): of two that share their tags too, InfluxDB keeps the later only."}),
		seqDuplicates: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_duplicates_total",
			Help: "Messages whose device and seq were seen before (redeliveries); stored idempotently, not re-evaluated."}),
		seqLate: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_out_of_order_total",
			Help: "Messages arriving after a newer message of the same device (those counted missing count recovered too)."}),
		seqResets: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_sequence_resets_total",
			Help: "Times a device's seq went far back (device restarted its counter)."}),
		retainedIgnored: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_retained_ignored_total",
			Help: "Retained messages acked without ingesting (mqtt.retained: ignore)."}),
		abandoned: f.NewCounter(prometheus.CounterOpts{Name: "fenceline_ingest_abandoned_messages_total",
			Help: "Messages left unacked at shutdown; the broker redelivers them."}),
		ackLatency: f.NewHistogram(prometheus.HistogramOpts{Name: "fenceline_ingest_ack_latency_seconds",
			Help:    "Time from taking a message from the broker to its ack going back (stored and evaluated, and every earlier message acked: acks go in arrival order).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	for _, s := range model.Streams {
		m.messagesBy[streamIndex(s)] = m.messages.WithLabelValues(s.String())
		m.readingsBy[streamIndex(s)] = m.readings.WithLabelValues(s.String())
	}
	m.messagesBy[model.StreamUnknown] = m.messages.WithLabelValues(model.StreamUnknown.String())
	for _, r := range Reasons() {
		m.rejections.WithLabelValues(r)
	}
	return m
}

// Reasons is every reason a message or reading is rejected and
// dead-lettered for: the decoder's, the signature checks', over_budget and
// storage_rejected.
func Reasons() []string {
	var out []string
	for _, r := range decode.Reasons {
		out = append(out, string(r))
	}
	out = append(out, devicesig.Reasons...)
	return append(out, string(reasonOverBudget), reasonStorageRejected)
}

// rejectLog limits the "rejected" log lines: at most one a minute for a
// topic and reason (a unit that is not registered, or sends the same bad
// field, is one line a minute with the count of those not logged, not ten
// a second), and at most perSecond a second in all.
type rejectLog struct {
	perSecond int
	second    time.Time
	inSecond  int
	last      map[rejectKey]rejectLogged
	// capped counts the rejections of other topics and reasons that the
	// per-second bound kept from the log, told with the next line logged.
	capped int
}

type rejectKey struct{ topic, reason string }

type rejectLogged struct {
	at         time.Time
	suppressed int
}

// rejectLogKeys bounds the topics remembered: past it they are all
// forgotten (a flood of ever new topics is then limited per second only).
const rejectLogKeys = 4096

func newRejectLog(perSecond int) *rejectLog {
	return &rejectLog{perSecond: perSecond, last: map[rejectKey]rejectLogged{}}
}

// allow reports whether to log a rejection of topic for reason at now, how
// many of the same were not logged since the last one that was, and how
// many others the per-second bound kept from the log since the last line.
func (l *rejectLog) allow(topic, reason string, now time.Time) (ok bool, suppressed, capped int) {
	k := rejectKey{topic, reason}
	prev, seen := l.last[k]
	if seen && now.Sub(prev.at) < time.Minute {
		prev.suppressed++
		l.last[k] = prev
		return false, 0, 0
	}
	if now.Sub(l.second) >= time.Second {
		l.second, l.inSecond = now, 0
	}
	if l.inSecond++; l.inSecond > l.perSecond {
		l.capped++
		return false, 0, 0
	}
	if !seen && len(l.last) >= rejectLogKeys {
		clear(l.last)
	}
	l.last[k] = rejectLogged{at: now}
	capped, l.capped = l.capped, 0
	return true, prev.suppressed, capped
}

// logTopic is a topic for a log line: cut short past maxLogTopic bytes (a
// topic may be 64 KiB long, and a log line is no place for it).
func logTopic(topic string) string {
	const maxLogTopic = 200
	if len(topic) <= maxLogTopic {
		return topic
	}
	cut := topic[:maxLogTopic]
	for len(cut) > 0 && !utf8.ValidString(cut) {
		cut = cut[:len(cut)-1]
	}
	return cut + "…(" + strconv.Itoa(len(topic)) + " bytes)"
}

// flush tells f of the rejections not logged for a topic and reason whose
// minute has passed, and forgets them (and the quiet ones).
func (l *rejectLog) flush(now time.Time, f func(topic, reason string, n int)) {
	for k, v := range l.last {
		if now.Sub(v.at) < time.Minute {
			continue
		}
		if v.suppressed > 0 {
			f(k.topic, k.reason, v.suppressed)
		}
		delete(l.last, k)
	}
}
