package model

import "time"

// Alert states.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Subject is who or what an alert is about.
type Subject struct {
	Kind  string `json:"kind"` // imsi | imei | plate | device | patrol
	Value string `json:"value"`
}

// Evidence points at a reading that contributed to an alert.
type Evidence struct {
	Device string    `json:"device"`
	Seq    int64     `json:"seq"`
	TS     time.Time `json:"ts"`
}

// PatrolRef is a patrol near an alert's location.
type PatrolRef struct {
	Device     string    `json:"device"`
	DistanceKm float64   `json:"distance_km"`
	Seen       time.Time `json:"seen"`
}

// Alert is the contract's alert payload.
type Alert struct {
	ID             string      `json:"id"`
	Rule           string      `json:"rule"`
	Severity       string      `json:"severity"`
	State          string      `json:"state"`
	Site           string      `json:"site"`
	Zone           string      `json:"zone"`
	Subject        Subject     `json:"subject"`
	Summary        string      `json:"summary"`
	At             time.Time   `json:"at"`
	RaisedAt       time.Time   `json:"raised_at"`
	Location       *Point      `json:"location"` // null when the alert has no place (a count over a site; a device without a known position)
	Count          int         `json:"count"`
	Evidence       []Evidence  `json:"evidence"`
	Notify         []string    `json:"notify"`
	NearestPatrols []PatrolRef `json:"nearest_patrols"`
	Late           bool        `json:"late"`
	// Repeat numbers the re-sends of a still-firing incident under the
	// rule's repeat_interval (1, 2, …); 0, and absent from the JSON, on
	// the first send. It keeps a re-send from being taken for a duplicate.
	Repeat int `json:"repeat,omitempty"`
	// Ordinal numbers the alert: the engine gives every alert it fires one
	// of its own, which the incident's re-sends and resolution share, and
	// keeps it with the incident across restarts; the outbox keeps it with
	// the alert (and numbers an alert without one). It is not part of the
	// payload. The alert's InfluxDB point time is drawn from it, so that
	// alerts of one series in one millisecond never share a point, whenever
	// and however often each is written, while a re-send rewrites its
	// firing's.
	Ordinal uint64 `json:"-"`
}
