package load

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run; it is written as JSON and printed as a
// table.
type Report struct {
	Name    string    `json:"name,omitempty"`
	Started time.Time `json:"started"`
	Profile Profile   `json:"profile"`

	Published  PublishReport `json:"published"`
	Accounting Accounting    `json:"accounting"`
	// DeadLettered is the rejections the daemon counted during the run
	// (fenceline_ingest_rejections_total), by reason: each is kept in its
	// dead-letter store.
	DeadLettered         float64            `json:"dead_lettered"`
	DeadLetteredByReason map[string]float64 `json:"dead_lettered_by_reason,omitempty"`

	EndToEnd   EndToEnd        `json:"end_to_end"`
	Throughput []ThroughputSec `json:"throughput"`

	StoredLatency Summary      `json:"publish_to_stored_latency"`
	PubAckLatency Summary      `json:"publish_to_puback_latency"`
	Alerts        AlertsReport `json:"alerts"`

	Daemon    DaemonReport    `json:"daemon"`
	Processes []ProcessReport `json:"processes"`
	Machine   MachineReport   `json:"machine"`
	Notes     []string        `json:"notes,omitempty"`
}

// Profile is what a run was asked to do.
type Profile struct {
	World       WorldSpec     `json:"world"`
	Traffic     Traffic       `json:"traffic"`
	Messages    int           `json:"messages,omitempty"`
	Duration    time.Duration `json:"duration_ns,omitempty"`
	Rate        float64       `json:"rate_msgs_per_s"` // 0: as fast as the broker takes them
	Inflight    int           `json:"inflight"`
	Connections int           `json:"connections"`
	QoS         byte          `json:"qos"`
}

// PublishReport is the publishing side.
type PublishReport struct {
	Messages       int64            `json:"messages"`
	Readings       int64            `json:"readings"`
	ByStream       map[string]int64 `json:"messages_by_stream"`
	Invalid        int64            `json:"invalid_messages"`
	Failed         int64            `json:"failed"`
	Seconds        float64          `json:"seconds"`
	MessagesPerSec float64          `json:"messages_per_s"`
	ReadingsPerSec float64          `json:"readings_per_s"`
}

// EndToEnd is from the first publish to the last expected reading stored.
type EndToEnd struct {
	Complete       bool    `json:"complete"` // every expected reading was stored in time
	Seconds        float64 `json:"seconds"`
	ReadingsPerSec float64 `json:"readings_per_s"`
}

// ThroughputSec is one second of the run.
type ThroughputSec struct {
	Second    int     `json:"second"`
	Published float64 `json:"published_readings"`
	Stored    float64 `json:"stored_readings"`
	// DaemonCPU is the daemon's CPU share in that second (1 = one core).
	DaemonCPU float64 `json:"daemon_cpu,omitempty"`
}

// AlertsReport is the alerting side.
type AlertsReport struct {
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"` // distinct expected alerts received
	Missing    int64   `json:"missing"`
	Duplicates int64   `json:"duplicates"` // the same id and state again
	Other      int64   `json:"other"`      // alerts of other rules, or about no published message
	Malformed  int     `json:"malformed,omitempty"`
	Latency    Summary `json:"publish_to_alert_latency"`
}

// DaemonReport is the daemon's own cost.
type DaemonReport struct {
	PID int `json:"pid,omitempty"`
	// InProcess: the daemon ran inside the load tool, whose publishing
	// its CPU figures then include.
	InProcess           bool    `json:"in_process,omitempty"`
	CPUSeconds          float64 `json:"cpu_seconds"`
	CPUMicrosPerReading float64 `json:"cpu_us_per_reading"`
	PeakRSSBytes        int64   `json:"peak_rss_bytes"` // the largest sampled RSS, or VmHWM when larger
	SeqGaps             float64 `json:"seq_gaps"`       // fenceline_ingest_sequence_gaps_total during the run
	SeqDuplicates       float64 `json:"seq_duplicates"` // fenceline_ingest_sequence_duplicates_total during the run
	// Histograms are the daemon's own histograms over the run (seconds;
	// lines for the batch size): where the time went.
	Histograms map[string]HistogramDelta `json:"histograms,omitempty"`
	// Counters are the daemon's counters of trouble that moved during the
	// run: write retries and errors, backpressure waits.
	Counters map[string]float64 `json:"counters,omitempty"`
	// LinesPerWrite is the points written over the write requests made.
	LinesPerWrite float64 `json:"lines_per_write,omitempty"`
}

// ProcessReport is one process's CPU over the end-to-end window.
type ProcessReport struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CoreShare is CPU time over wall time: 1 is one core busy all along.
	CoreShare float64 `json:"core_share"`
}

// MachineReport is the whole machine over the end-to-end window.
type MachineReport struct {
	CPUs int `json:"cpus"`
	// BusyShare is the share of all cores busy (any process).
	BusyShare float64 `json:"busy_share"`
	// OthersCores is the cores' worth of CPU that processes other than the
	// reported ones took meanwhile: other work on a shared machine, which
	// slows every figure of the run.
	OthersCores float64 `json:"others_cores"`
}

// WriteJSON writes the reports to path as one JSON array (or object, for
// one report).
func WriteJSON(path string, reports ...*Report) error {
	var v any = reports
	if len(reports) == 1 {
		v = reports[0]
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	title := "load run"
	if r.Name != "" {
		title += " " + r.Name
	}
	p := r.Profile
	rate := "as fast as the broker takes them"
	if p.Rate > 0 {
		rate = fmt.Sprintf("%.0f msgs/s", p.Rate)
	}
	fmt.Fprintf(tw, "== %s: %d devices, %d zones, %d rules; mix %s; %s; QoS %d, %d in flight\n", title,
		p.World.Fences+p.World.Checkpoints+p.World.Patrols, p.World.Zones, RuleCount, mixString(p.Traffic), rate, p.QoS, p.Inflight)
	a := r.Accounting
	row("published", "%d messages, %d readings in %.2f s (%.0f msgs/s, %.0f readings/s); %d invalid, %d failed",
		r.Published.Messages, r.Published.Readings, r.Published.Seconds, r.Published.MessagesPerSec, r.Published.ReadingsPerSec, r.Published.Invalid, r.Published.Failed)
	row("stored", "%d of %d expected readings (%s check)%s", a.Stored, a.ExpectedStored, a.Method, byMeasurement(a))
	row("dead-lettered", "%.0f (expected %d)%s", r.DeadLettered, a.ExpectedRejections, byReason(r.DeadLetteredByReason))
	if a.LostMessages < 0 {
		// A counts check sees readings, not which messages they came in.
		row("lost", "%d readings (whole messages not told by a %s check)", a.LostReadings, a.Method)
	} else {
		row("lost", "%d readings, %d whole messages", a.LostReadings, a.LostMessages)
	}
	row("duplicated", "%d", a.Duplicated)
	if a.Unexpected > 0 || a.Orphans > 0 {
		row("unexpected", "%d points no published reading explains, %d of failed publishes", a.Unexpected, a.Orphans)
	}
	for _, s := range a.LostSample {
		row("", "lost: %s", s)
	}
	e := r.EndToEnd
	complete := ""
	if !e.Complete {
		// Readings, dead letters or alerts: the rows above say which.
		complete = " (INCOMPLETE: not everything expected arrived before it settled: see stored, dead-lettered and alerts)"
	}
	row("end to end", "%.0f readings/s (%.2f s from first publish to last reading stored)%s", e.ReadingsPerSec, e.Seconds, complete)
	lat := func(s Summary) string {
		if s.Count == 0 {
			return "-"
		}
		return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms", s.P50, s.P99, s.Max)
	}
	row("publish→stored", "%s", lat(r.StoredLatency))
	row("publish→PUBACK", "%s", lat(r.PubAckLatency))
	al := r.Alerts
	row("alerts", "%d of %d expected received, %d missing, %d duplicates, %d other", al.Received, al.Expected, al.Missing, al.Duplicates, al.Other)
	row("publish→alert", "%s", lat(al.Latency))
	d := r.Daemon
	inproc := ""
	if d.InProcess {
		inproc = " (in-process: includes the load tool's own CPU)"
	}
	row("daemon CPU", "%.2f s, %.2f µs/reading%s", d.CPUSeconds, d.CPUMicrosPerReading, inproc)
	row("daemon peak RSS", "%.1f MB", float64(d.PeakRSSBytes)/(1<<20))
	row("daemon seq", "%.0f gaps, %.0f duplicates seen", d.SeqGaps, d.SeqDuplicates)
	for _, h := range daemonHistograms {
		if v, ok := d.Histograms[h.name]; ok && v.Count > 0 {
			extra := ""
			if h.name == "fenceline_influx_write_duration_seconds" && d.LinesPerWrite > 0 {
				extra = fmt.Sprintf(" (%.0f lines each on average)", d.LinesPerWrite)
			}
			row("daemon "+h.label, "%.0f×, p50 %s, p99 %s%s", v.Count, h.format(v.P50), h.format(v.P99), extra)
		}
	}
	if len(d.Counters) > 0 {
		var parts []string
		for k, v := range d.Counters {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
		sort.Strings(parts)
		row("daemon trouble", "%s", strings.Join(parts, ", "))
	}
	var procs []string
	for _, pr := range r.Processes {
		procs = append(procs, fmt.Sprintf("%s %.0f%%", pr.Name, 100*pr.CoreShare))
	}
	row("CPU (1 core = 100%)", "%s; machine %.0f%% of %d cores busy, %.0f%% of a core by other processes",
		strings.Join(procs, ", "), 100*r.Machine.BusyShare, r.Machine.CPUs, 100*r.Machine.OthersCores)
	if len(r.Throughput) > 0 {
		// At most 30 columns: a long run is shown in buckets of several
		// seconds (rates still per second).
		step := (len(r.Throughput) + 29) / 30
		var pub, sto []string
		for i := 0; i < len(r.Throughput); i += step {
			var p, s float64
			n := 0
			for _, t := range r.Throughput[i:min(i+step, len(r.Throughput))] {
				p, s, n = p+t.Published, s+t.Stored, n+1
			}
			pub = append(pub, fmt.Sprintf("%.0fk", p/float64(n)/1000))
			sto = append(sto, fmt.Sprintf("%.0fk", s/float64(n)/1000))
		}
		every := ""
		if step > 1 {
			every = fmt.Sprintf(" (%d s buckets)", step)
		}
		row("published/s"+every, "%s", strings.Join(pub, " "))
		row("stored/s"+every, "%s", strings.Join(sto, " "))
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	tw.Flush()
}

func mixString(t Traffic) string {
	var parts []string
	m := t.Mix
	if m.Detections > 0 {
		parts = append(parts, fmt.Sprintf("detections %g (×%d)", m.Detections, t.DetectionBatch))
	}
	if m.Passes > 0 {
		parts = append(parts, fmt.Sprintf("passes %g (×%d)", m.Passes, t.PassBatch))
	}
	if m.Positions > 0 {
		parts = append(parts, fmt.Sprintf("positions %g", m.Positions))
	}
	if m.Statuses > 0 {
		parts = append(parts, fmt.Sprintf("statuses %g", m.Statuses))
	}
	s := strings.Join(parts, ", ")
	if t.ReadingTS > 0 {
		s += fmt.Sprintf(", %g%% with reading ts", 100*t.ReadingTS)
	}
	if t.InvalidShare > 0 {
		s += fmt.Sprintf(", %g%% invalid", 100*t.InvalidShare)
	}
	if t.AlertShare > 0 {
		s += fmt.Sprintf(", %g%% alerting", 100*t.AlertShare)
	}
	return s
}

func byMeasurement(a Accounting) string {
	if len(a.ByMeasurement) < 2 {
		return ""
	}
	names := make([]string, 0, len(a.ByMeasurement))
	for n := range a.ByMeasurement {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, a.ByMeasurement[n].Stored))
	}
	return ": " + strings.Join(parts, ", ")
}

func byReason(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return ": " + strings.Join(parts, ", ")
}

// daemonHistograms are the histograms of the daemon a report shows.
var daemonHistograms = []struct {
	name, label string
	format      func(float64) string
}{
	{"fenceline_ingest_ack_latency_seconds", "receive→ack", fmtSeconds},
	{"fenceline_influx_write_duration_seconds", "influx write", fmtSeconds},
	{"fenceline_outbox_fsync_duration_seconds", "outbox fsync", fmtSeconds},
	{"fenceline_alerts_delivery_latency_seconds", "alert delivery", fmtSeconds},
	{"fenceline_deadletter_fsync_duration_seconds", "dead-letter fsync", fmtSeconds},
}

// daemonCounters are the counters of trouble a report shows when they moved.
var daemonCounters = []struct{ name, label string }{
	{"fenceline_influx_write_errors_total", "influx write errors"},
	{"fenceline_mqtt_backpressure_waits_total", "backpressure waits"},
	{"fenceline_mqtt_connection_lost_total", "mqtt connections lost"},
	{"fenceline_ingest_abandoned_messages_total", "abandoned"},
	{"fenceline_alerts_delivery_failures_total", "alert delivery failures"},
}

func fmtSeconds(v float64) string { return fmt.Sprintf("%.1f ms", v*1000) }
