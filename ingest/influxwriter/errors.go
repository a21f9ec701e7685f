package influxwriter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// PermanentError is what a done callback receives when InfluxDB rejected a
// batch's lines for good: they were isolated (a 400 "partial write" bisected
// down to this one message, or a single line still too large) and writing
// them again would fail again. The caller dead-letters the message and acks
// it. Anything else a callback receives is transient: don't ack, the broker
// redelivers.
type PermanentError struct {
	Status  int    // HTTP status of InfluxDB's answer (400, 413, 422)
	Message string // InfluxDB's error message, e.g. "partial write: field type conflict: …"
	// Times are the point times (Unix ns) of the message's lines that were
	// refused, in the order they were isolated: after a "partial write",
	// only the lines InfluxDB refused; otherwise all the lines sent. A
	// reading's point time names it (model.ReadingIndex).
	Times []int64
}

// merge is e with the refused lines of other, another part of the same
// message.
func (e *PermanentError) merge(other *PermanentError) *PermanentError {
	m := *e
	m.Times = append(slices.Clip(e.Times), other.Times...)
	return &m
}

// Permanent reports true: retrying cannot help. The alert sink reads it
// (alerts/sink.AlertWriter) to give up on that alert for InfluxDB only,
// rather than retry it for ever ahead of every later alert.
func (e *PermanentError) Permanent() bool { return true }

func (e *PermanentError) Error() string {
	return fmt.Sprintf("influxdb rejected the points (HTTP %d): %s", e.Status, e.Message)
}

// IsPermanent reports whether err means InfluxDB rejected the lines for good.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

var (
	// ErrClosed is returned by Write after Close (or after Run ended).
	ErrClosed = errors.New("influxwriter: closed")
	// ErrStopped is given to the callbacks of lines that were still queued
	// or in flight when Run's context ended: they were not acknowledged and
	// must not be acked upstream.
	ErrStopped = errors.New("influxwriter: stopped before InfluxDB acknowledged the points")
)

// logSafe is InfluxDB's error message fit for the log: a parse error
// quotes the line it could not parse ("unable to parse '<line>': why"),
// and a line holds identifiers (IMSI, plate) that the log must not. The
// quoted text is withheld, from the first quote to the last "': " (a
// line may itself hold quotes); the dead letter keeps the whole message.
func logSafe(msg string) string {
	const lead = "unable to parse '"
	i := strings.Index(msg, lead)
	if i < 0 {
		return msg
	}
	rest := msg[i+len(lead):]
	end := strings.LastIndex(rest, "': ")
	if end < 0 {
		return msg[:i+len(lead)] + "<line withheld from the log>'"
	}
	return msg[:i+len(lead)] + "<line withheld from the log>" + rest[end:]
}
