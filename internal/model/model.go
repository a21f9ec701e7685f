// Package model holds the domain types that flow from ingest to storage and
// to the alert engine: devices, decoded readings and alerts. Both ingest and
// alerts import it so that neither imports the other.
package model

import (
	"time"
	"unicode/utf8"
)

// Kind is a device kind, the third level of a device topic.
type Kind string

// Device kinds of the contract.
const (
	KindFence      Kind = "fence"
	KindCheckpoint Kind = "checkpoint"
	KindPatrol     Kind = "patrol"
)

// Valid reports whether k is one of the contract's kinds.
func (k Kind) Valid() bool {
	return k == KindFence || k == KindCheckpoint || k == KindPatrol
}

// Stream is the last level of a device topic.
type Stream uint8

// Streams of the contract. StreamUnknown is the zero value.
const (
	StreamUnknown Stream = iota
	StreamDetections
	StreamPasses
	StreamPosition
	StreamStatus
)

// Streams lists the known streams, for pre-creating metric labels.
var Streams = []Stream{StreamDetections, StreamPasses, StreamPosition, StreamStatus}

func (s Stream) String() string {
	switch s {
	case StreamDetections:
		return "detections"
	case StreamPasses:
		return "passes"
	case StreamPosition:
		return "position"
	case StreamStatus:
		return "status"
	}
	return "unknown"
}

// ParseStream maps a topic level to a Stream (StreamUnknown if it is none).
func ParseStream(s string) Stream {
	switch s {
	case "detections":
		return StreamDetections
	case "passes":
		return StreamPasses
	case "position":
		return StreamPosition
	case "status":
		return StreamStatus
	}
	return StreamUnknown
}

// AllowedFor reports whether a device of kind k may publish on stream s:
// detections from fences, passes from checkpoints, positions from patrols,
// status from any kind.
func (s Stream) AllowedFor(k Kind) bool {
	switch s {
	case StreamStatus:
		return k.Valid()
	case StreamDetections:
		return k == KindFence
	case StreamPasses:
		return k == KindCheckpoint
	case StreamPosition:
		return k == KindPatrol
	}
	return false
}

// Point is a WGS84 position in degrees.
type Point struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// Device is one registered device (rules.yaml `devices`).
type Device struct {
	ID   string
	Kind Kind
	Site string
	Name string
	// Pos is the registered position; HasPos is false for devices without
	// one (patrols), whose readings must then carry their own position.
	Pos    Point
	HasPos bool
	// ExpectEvery is how often the device is expected to report (0: the
	// silence rule's own `after`).
	ExpectEvery time.Duration
}

// Meta describes the message a batch of readings came from.
type Meta struct {
	Topic    string
	Site     string
	Kind     Kind
	Device   string
	Stream   Stream
	Seq      int64
	Time     time.Time // the message's ts
	Received time.Time // when fenceline took the message from the broker
}

// OptFloat is an optional number: OK is false when the payload lacked it.
type OptFloat struct {
	V  float64
	OK bool
}

// OptInt is an optional integer.
type OptInt struct {
	V  int64
	OK bool
}

// OptBool is an optional boolean.
type OptBool struct {
	V  bool
	OK bool
}

// Some returns a present OptFloat. A negative zero is zero: its sign means
// nothing in a reading, and stored it would read "-0".
func Some(v float64) OptFloat {
	if v == 0 {
		v = 0
	}
	return OptFloat{V: v, OK: true}
}

// SomeInt returns a present OptInt.
func SomeInt(v int64) OptInt { return OptInt{V: v, OK: true} }

// SomeBool returns a present OptBool.
func SomeBool(v bool) OptBool { return OptBool{V: v, OK: true} }

// Stamp is the time of one reading: Time is the reading's own ts (else the
// message's); PointNS is the InfluxDB point time in Unix nanoseconds, Time
// truncated to the millisecond plus a deterministic sub-millisecond offset
// derived from the message's seq and the reading's index (see PointTime), so
// that distinct readings never share a point and a redelivered message
// rewrites exactly the same points.
type Stamp struct {
	Time    time.Time
	PointNS int64
	Index   int // position of the reading in its message
}

// Detection is one phone sensed by a fence unit. Empty strings are absent.
type Detection struct {
	Stamp
	Loc      Point // WGS84: the message's loc, else the device's position
	IMSI     string
	IMEI     string
	MAC      string // lower-case, colon separated
	MCC      string // first 3 digits of IMSI, "" without IMSI
	MNC      string // 2 or 3 digits after the MCC, "" without IMSI
	Operator string // MCC+MNC, "" without IMSI
	RSSI     OptFloat
	Tech     string
}

// OverflowTag is the value of a tag from device text (tech, plate_color,
// vehicle_type) whose bound of distinct values was reached, or that cannot
// be a tag as sent (TagFits); the text is then stored in a field of its own
// (tech_text, …).
const OverflowTag = "other"

// TagFits reports whether s can be an InfluxDB tag value as it is: valid
// UTF-8, no control characters (line protocol has no escape for them in a
// tag) and no backslash. A trailing backslash escapes the separator after
// it; one before a character the encoder escapes (`\ ` becomes `\\ `)
// makes InfluxDB 1.8's line splitter, which skips backslash pairs, read a
// bare separator there, and a `"` later in the tags then runs the line into
// the next ones: the whole write refused, the good readings after it too.
func TagFits(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			return tagFitsSlow(s[i:])
		}
	}
	return true
}

func tagFitsSlow(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// Pass is one vehicle seen by a checkpoint.
type Pass struct {
	Stamp
	Loc          Point
	Plate        string // normalised; "无牌" when no plate was read
	PlateColor   string
	VehicleType  string
	VehicleColor string
	Direction    string // inbound | outbound | unknown ("" when absent)
	Image        string
	SpeedKmh     OptFloat
	Lane         OptInt
	Heading      OptFloat
	Confidence   OptFloat
}

// NoPlate is the normalised plate of a pass whose plate was not read.
const NoPlate = "无牌"

// Position is one patrol fix.
type Position struct {
	Stamp
	Loc Point
	// Registered says Loc is the device's registered position: the
	// message had no fix (no lat and lon, or 0, 0). Stored there, as the
	// contract says; it tells the rules nothing of where a patrol is.
	Registered bool
	SpeedKmh   OptFloat
	Heading    OptFloat
	AccuracyM  OptFloat
}

// Status is one device health report.
type Status struct {
	Stamp
	BatteryPct OptFloat
	TempC      OptFloat
	UptimeS    OptInt
	Tamper     OptBool
	Power      string
	SignalDbm  OptFloat
	Queue      OptInt
	FW         string
}

// Batch is the accepted content of one message. Exactly one of the slices is
// used, matching Meta.Stream; position and status messages carry one reading.
type Batch struct {
	Meta
	Device     *Device // the registry entry the message was checked against
	Detections []Detection
	Passes     []Pass
	Positions  []Position
	Statuses   []Status
}

// Len is the number of accepted readings in the batch.
func (b *Batch) Len() int {
	return len(b.Detections) + len(b.Passes) + len(b.Positions) + len(b.Statuses)
}

// Reset empties the batch, keeping its slices' capacity for reuse.
func (b *Batch) Reset() {
	*b = Batch{
		Detections: b.Detections[:0],
		Passes:     b.Passes[:0],
		Positions:  b.Positions[:0],
		Statuses:   b.Statuses[:0],
	}
}

// MaxReadingsPerMessage bounds the readings of one message. It is above
// what a 256 KiB payload can hold (20,165 passes with an empty plate, 13
// bytes each with their comma; 14,563 detections), so it guards the decoder
// only: no payload fenceline accepts meets it.
const MaxReadingsPerMessage = 65536

// pointSpread spreads the messages of a device over the sub-millisecond
// offsets of their point times (see PointTime): a message's readings take
// consecutive offsets from (seq*pointSpread) mod 1e6. A multiplier near
// the golden ratio of the million puts messages close in seq far apart in
// the millisecond, for every message size at once, where a fixed slot per
// seq bounds the readings a message may hold without spilling into its
// neighbours' offsets. This one was searched for the best worst case over
// message sizes from 20 readings to 14,563 (the most detections a 256 KiB
// payload can hold; passes with an empty plate fit 20,165): see
// TestPointTimeAcrossSeqs for what it guarantees.
const pointSpread = 634987

// PointTime returns the InfluxDB time (Unix ns) of the reading at index idx of
// the message with sequence number seq, read at t. The offset stays below one
// millisecond, so the time read at millisecond precision is the reading's ts.
// Readings of one message never share a time, and neither do those of
// messages close in seq (how close depends on their size; see
// TestPointTimeAcrossSeqs).
func PointTime(t time.Time, seq int64, idx int) int64 {
	return t.UnixMilli()*int64(time.Millisecond) + (seqBase(seq)+int64(idx))%int64(time.Millisecond)
}

// MovedSeq is the seq whose point times a message takes at move level
// 1 to MoveLevels-1, when another message of its device, with its own seq,
// may already hold them: a unit that restarted its counter and sends a seq
// again, with another payload, perhaps within the same millisecond (one
// without a real-time clock starts every boot at the same ts and seq 1).
// Level j's offsets are j eighths of a millisecond from level 0's (seq's
// own): a message holds fewer readings than an eighth (MaxReadingsPerMessage),
// so no two levels of one seq share a point. Level 4, half a cycle on, is
// the one moved messages took when there was one. At level 4 the points meet
// those of messages of 20 readings only 14,231 seqs away.
func MovedSeq(seq int64, level uint8) int64 {
	// pointSpread is 3 modulo 8: seq+k/8 ms's offsets are 3k eighths on,
	// and 3 is its own inverse modulo 8.
	const eighth = int64(time.Millisecond) / MoveLevels
	return seq + eighth*int64(3*(level%MoveLevels)%MoveLevels)
}

// MoveLevels is the number of distinct point-time levels of one seq: the
// messages of as many counters sending one seq at one millisecond keep
// their own points.
const MoveLevels = 8

// NextMoveLevel is the level a message takes after one at level l: each in
// turn, from a half millisecond on to the eighths between, so that a unit
// that restarts again and again at one ts keeps MoveLevels boots apart.
func NextMoveLevel(l uint8) uint8 { return moveOrder[l%MoveLevels] }

var moveOrder = [MoveLevels]uint8{0: 4, 4: 2, 2: 6, 6: 1, 1: 5, 5: 3, 3: 7, 7: 0}

// MovePointTimes gives b's readings the point times of b.Seq's MovedSeq at
// level.
func (b *Batch) MovePointTimes(level uint8) {
	seq := MovedSeq(b.Seq, level)
	b.EachStamp(func(st *Stamp) { st.PointNS = PointTime(st.Time, seq, st.Index) })
}

// EachStamp calls f with the stamp of each of b's readings.
func (b *Batch) EachStamp(f func(*Stamp)) {
	for i := range b.Detections {
		f(&b.Detections[i].Stamp)
	}
	for i := range b.Passes {
		f(&b.Passes[i].Stamp)
	}
	for i := range b.Positions {
		f(&b.Positions[i].Stamp)
	}
	for i := range b.Statuses {
		f(&b.Statuses[i].Stamp)
	}
}

// ReadingIndex is the index of the reading of message seq whose point time
// is ns: PointTime's inverse (for a time PointTime made; the caller checks),
// for seq or its MovedSeq at any level alike: a message holds far fewer
// readings than the eighth of a millisecond between two levels.
func ReadingIndex(ns, seq int64) int {
	const space = int64(time.Millisecond)
	off := ns % space
	return int(((off-seqBase(seq))%space + space) % space % (space / MoveLevels))
}

func seqBase(seq int64) int64 {
	const space = int64(time.Millisecond)
	s := seq % space
	if s < 0 {
		s += space
	}
	return s * pointSpread % space
}
