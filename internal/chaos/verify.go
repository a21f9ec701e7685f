package chaos

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fenceline/fenceline/ingest/deadletter"
	"github.com/fenceline/fenceline/internal/load"
	"github.com/fenceline/fenceline/internal/model"
)

// Observed is what the run left behind: InfluxDB's points, the dead
// letters, the alerts received.
type Observed struct {
	// Points counts the stored points by reading key; Unexpected counts
	// points that are no published reading's (a reading written under a
	// second time would show here).
	Points     map[Key]int
	Unexpected int
	// DeadLetters counts dead-letter records by message (topic, payload)
	// and rejection.
	DeadLetters map[dlKey]int
	Alerts      []Alert
	NotAlerts   int
}

type dlKey struct {
	topic, payload string
	Rejection
}

// Observe reads the points of the measurements in InfluxDB, the dead
// letters in dlDir and the alerts received by sub.
func Observe(ctx context.Context, in *load.Influx, dlDir string, sub *AlertSubscriber, expected map[Key]bool) (*Observed, error) {
	o := &Observed{Points: map[Key]int{}, DeadLetters: map[dlKey]int{}}
	for _, m := range []string{"phone_detection", "vehicle_pass"} {
		err := in.ScanPoints(ctx, m, time.Unix(0, 0), time.Now().Add(time.Hour), func(device string, ns, seq int64) {
			idx := model.ReadingIndex(ns, seq)
			k := Key{Device: device, Seq: seq, Index: idx}
			if !expected[k] {
				o.Unexpected++
				return
			}
			o.Points[k]++
		})
		if err != nil {
			return nil, err
		}
	}
	err := deadletter.Read(dlDir, deadletter.Filter{}, func(r deadletter.Record) error {
		o.DeadLetters[dlKey{topic: r.Topic, payload: string(r.Payload), Rejection: Rejection{Reason: r.Reason, Index: r.Index}}]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	if sub != nil {
		o.Alerts, o.NotAlerts = sub.Received()
	}
	return o, nil
}

// ExpectedKeys is every reading the messages must have stored.
func ExpectedKeys(msgs []*Message) map[Key]bool {
	out := map[Key]bool{}
	for _, m := range msgs {
		for _, k := range m.Valid {
			out[k] = true
		}
	}
	return out
}

// Row is the account of one phase (or of the whole run).
type Row struct {
	Phase     string
	Messages  int // published (acknowledged by the broker)
	Readings  int // valid readings published
	Stored    int // of those, stored in InfluxDB
	Rejects   int // rejections expected (invalid readings and messages)
	DeadLet   int // of those, found in the dead letters
	Dup       int // readings stored more than once, or under a time of their own
	Lost      int // valid readings not stored + rejections not dead-lettered
	Alerts    int // alerts expected
	AlertsGot int // distinct incidents received for them
	AlertDup  int // subjects with more than one incident, or one incident twice in a state
	AlertLost int
	// DLCopies counts dead letters kept more than once (a message
	// redelivered after a crash is rejected again: allowed, not a loss).
	DLCopies int
}

// Account compares what the messages required with what was observed, per
// phase (names[i] names phase i) and in total (the last row).
func Account(msgs []*Message, names []string, o *Observed) []Row {
	rows := make([]Row, len(names)+1)
	for i, n := range names {
		rows[i].Phase = n
	}
	total := &rows[len(names)]
	total.Phase = "total"
	// Alerts by subject: distinct ids and how often each id+state came.
	type incident struct{ id, state string }
	bySubject := map[string]map[incident]int{}
	for _, a := range o.Alerts {
		if bySubject[a.Subject] == nil {
			bySubject[a.Subject] = map[incident]int{}
		}
		bySubject[a.Subject][incident{a.ID, a.State}]++
	}
	for _, m := range msgs {
		for _, r := range []*Row{&rows[m.Phase], total} {
			r.Messages++
			for _, k := range m.Valid {
				r.Readings++
				switch n := o.Points[k]; {
				case n == 0:
					r.Lost++
				default:
					r.Stored++
					r.Dup += n - 1
				}
			}
			for _, rej := range m.Rejected {
				r.Rejects++
				n := o.DeadLetters[dlKey{topic: m.Topic, payload: string(m.Payload), Rejection: rej}]
				if n == 0 {
					r.Lost++
				} else {
					r.DeadLet++
					r.DLCopies += n - 1
				}
			}
			if m.Alert != "" {
				r.Alerts++
				inc := bySubject[m.Alert]
				firing := 0
				for k := range inc {
					if k.state == "firing" {
						firing++
					}
				}
				switch {
				case firing == 0:
					r.AlertLost++
				case firing > 1:
					r.AlertsGot++
					r.AlertDup += firing - 1
				default:
					r.AlertsGot++
				}
			}
		}
	}
	total.Dup += o.Unexpected
	return rows
}

// Clean reports whether the row proves zero loss and zero duplication.
func (r Row) Clean() bool {
	return r.Lost == 0 && r.Dup == 0 && r.AlertLost == 0 && r.AlertDup == 0 &&
		r.Stored == r.Readings && r.DeadLet == r.Rejects && r.AlertsGot == r.Alerts
}

// Table renders rows as a fixed-width table for the test log and the issue.
func Table(rows []Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-40s %8s %8s %8s %8s %8s %5s %5s %7s %5s %5s\n",
		"fault", "messages", "readings", "stored", "rejects", "deadlet", "dup", "lost", "alerts", "a.dup", "a.lost")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-40s %8d %8d %8d %8d %8d %5d %5d %3d/%-3d %5d %5d\n",
			r.Phase, r.Messages, r.Readings, r.Stored, r.Rejects, r.DeadLet, r.Dup, r.Lost,
			r.AlertsGot, r.Alerts, r.AlertDup, r.AlertLost)
	}
	return b.String()
}

// Missing lists up to n expected outcomes that were not observed, for a
// failure message.
func Missing(msgs []*Message, o *Observed, n int) []string {
	var out []string
	for _, m := range msgs {
		for _, k := range m.Valid {
			if o.Points[k] == 0 {
				out = append(out, fmt.Sprintf("phase %d: reading %s seq %d #%d not stored", m.Phase, k.Device, k.Seq, k.Index))
			}
		}
		for _, rej := range m.Rejected {
			if o.DeadLetters[dlKey{topic: m.Topic, payload: string(m.Payload), Rejection: rej}] == 0 {
				out = append(out, fmt.Sprintf("phase %d: %s rejection %s#%d of %q not dead-lettered", m.Phase, m.Topic, rej.Reason, rej.Index, trim(m.Payload)))
			}
		}
	}
	sort.Strings(out)
	if len(out) > n {
		out = append(out[:n], fmt.Sprintf("… and %d more", len(out)-n))
	}
	return out
}

func trim(p []byte) string {
	if len(p) > 60 {
		return string(bytes.ToValidUTF8(p[:60], nil)) + "…"
	}
	return string(p)
}
