package influxwriter

import (
	"errors"
	"fmt"
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
}

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
