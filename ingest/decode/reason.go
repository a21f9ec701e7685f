package decode

import "strconv"

// Reason says why a message or a reading was rejected. The set is fixed (see
// Reasons), so it is safe to use as a metric label.
type Reason string

// Whole-message reasons: the message is rejected as a whole (Reject.Index -1).
const (
	BadTopic         Reason = "bad_topic"          // topic is not border/{site}/{kind}/{device}/{stream}
	UnknownDevice    Reason = "unknown_device"     // device is not in the registry
	DeviceMismatch   Reason = "device_mismatch"    // topic site/kind disagree with the registry
	StreamNotAllowed Reason = "stream_not_allowed" // e.g. passes from a fence
	TooLarge         Reason = "too_large"          // payload above Options.MaxPayload
	MalformedJSON    Reason = "malformed_json"     // not UTF-8, not JSON, or not an object
	BadVersion       Reason = "bad_version"        // v missing or not 1
	BadSeq           Reason = "bad_seq"            // seq missing, not an integer or out of [0, 2^53]
	NoReadings       Reason = "no_readings"        // detections/passes array missing (or null)
)

// Reasons used both for whole messages and for single readings.
const (
	BadTS       Reason = "bad_ts"       // ts missing, malformed, before 2000 or after 9999
	FutureTS    Reason = "future_ts"    // ts more than Options.MaxFuture after now
	NoPosition  Reason = "no_position"  // no position in the payload (or lat 0, lon 0) and none registered
	BadPosition Reason = "bad_position" // lat/lon missing, not numbers, or out of range
	BadDatum    Reason = "bad_datum"    // datum is neither wgs84 nor gcj02
	BadField    Reason = "bad_field"    // a known field has the wrong type, range or length, or is duplicated
)

// Reading reasons: one reading is rejected (Reject.Index >= 0), the others of
// its message are kept.
const (
	NoIdentifier    Reason = "no_identifier"     // a detection without imsi, imei and mac
	BadIMSI         Reason = "bad_imsi"          // imsi not a string of 6-15 digits
	BadIMEI         Reason = "bad_imei"          // imei not 14-16 digits, or a 15-digit one failing Luhn
	BadMAC          Reason = "bad_mac"           // mac not 6 hex octets separated by ':' or '-'
	BadRSSI         Reason = "bad_rssi"          // rssi not a number in [-150, 0]
	NoPlate         Reason = "no_plate"          // a pass without a plate string
	BadDirection    Reason = "bad_direction"     // direction not inbound|outbound|unknown
	TooManyReadings Reason = "too_many_readings" // reading past model.MaxReadingsPerMessage
)

// Reasons lists every Reason, for pre-creating metric label values.
var Reasons = []Reason{
	BadTopic, UnknownDevice, DeviceMismatch, StreamNotAllowed, TooLarge,
	MalformedJSON, BadVersion, BadSeq, NoReadings,
	BadTS, FutureTS, NoPosition, BadPosition, BadDatum, BadField,
	NoIdentifier, BadIMSI, BadIMEI, BadMAC, BadRSSI, NoPlate, BadDirection,
	TooManyReadings,
}

// Reject is one rejection: of the whole message (Index -1) or of the reading
// at Index in the message's readings array (0 for the single reading of a
// position or status message).
type Reject struct {
	Reason Reason
	Index  int
	// Detail is one line for an operator, e.g. "detections[3].imsi: 17
	// digits, want 6-15". It never contains an identifier (IMSI, IMEI, MAC,
	// plate): the raw payload, kept in the dead-letter store, has them.
	Detail string
}

func (r Reject) String() string {
	if r.Index < 0 {
		return string(r.Reason) + ": " + r.Detail
	}
	return string(r.Reason) + " (reading " + strconv.Itoa(r.Index) + "): " + r.Detail
}
