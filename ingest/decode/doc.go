// Package decode turns one MQTT message from a device (topic, payload,
// receive time) into a model.Batch of validated readings and a list of
// rejections, following the contract (/work/shared/CONTRACT.md: "MQTT
// topics", "Payloads", "Rules of reading").
//
// It is the daemon's hot path. A Decoder parses a payload in one strict pass
// into a reusable tape of pointer-free tokens (tape.go), reads the known keys
// from it, copies all string values of a message into one buffer that
// becomes a single string (one allocation per message, shared by the
// readings as substrings), and parses timestamps without allocating. A
// Decoder is not safe for concurrent use.
//
// The tape replaces fastjson, which was the first design: fastjson accepts
// NaN, Infinity, malformed numbers, control characters and unknown escapes,
// so it needed a validation pass of its own, and its pointer-linked values
// cost a visit per key and GC write barriers. Parse, validation and the
// whole decode of a 20-detection message now cost about twice what
// fastjson's parse alone costs (BenchmarkBaselineFastjsonParse); with
// fastjson it was over three times.
//
// # Order of checks
//
// Whole-message checks run first, in this order, and the first failure
// rejects the message (one Reject with Index -1): topic (bad_topic), device
// registered (unknown_device), registry site and kind equal to the topic's
// (device_mismatch), stream allowed for the kind (stream_not_allowed), size
// (too_large, before any parsing), UTF-8 and JSON (malformed_json), a
// top-level object (malformed_json), duplicated known keys (bad_field), v
// (bad_version), seq (bad_seq), ts (bad_ts, future_ts); then, for detections
// and passes, loc (bad_position, bad_datum, no_position) and the readings
// array (no_readings, bad_field).
//
// Each reading is then checked on its own; the first failing check names the
// reason. Detections: object, duplicate keys, imsi, imei, mac,
// at-least-one-identifier, rssi, tech, ts. Passes: object, duplicate keys,
// plate, direction, plate_color, vehicle_type, vehicle_color, image,
// speed_kmh, lane, heading, confidence, ts. The single reading of a position
// or status message has index 0, and a problem with its fields (including
// its lat/lon/datum) rejects that reading (Index 0), not the message: the
// envelope was sound, so its seq still counts for gap detection.
//
// # Choices where the contract is silent
//
// Strict where a payload is ambiguous or malformed, lossless otherwise:
// nothing is dropped silently, and a rejection always names a reason.
//
//   - JSON must be RFC 8259 in valid UTF-8, nested at most 64 deep. NaN,
//     Infinity, leading zeros, control characters in strings and unknown
//     escapes are malformed_json. An escaped unpaired UTF-16 surrogate is
//     valid JSON but no text (it has no UTF-8 form): refused in the field
//     that holds it (bad_field, or the field's own reason: a reading, or
//     the message for a top-level field), ignored in an unknown key.
//     Numbers that overflow float64 (1e400) are bad_field (or the field's
//     own reason).
//   - Unknown keys are ignored (forward compatibility), at every level. A
//     known key that appears twice in one object is ambiguous and rejected
//     (bad_field): the message for top-level and loc keys, else the reading.
//   - A payload of another stream is stream_not_allowed as a whole, so that
//     it is dead-lettered rather than read as the topic's stream with its
//     readings ignored: a detections or passes array (even empty) in a
//     message of another stream, or a patrol's status message with a fix
//     (lat, lon, loc, speed_kmh, heading, accuracy_m) and no status field.
//   - null is the same as an absent key. For the identifiers (imsi, imei,
//     mac) and the optional text fields (tech, plate_color, vehicle_type,
//     vehicle_color, image, power, fw, direction) an empty string is absent
//     too; an empty plate is the contract's "no plate read" (model.NoPlate).
//     v, seq and ts must be present (bad_version, bad_seq, bad_ts); an
//     absent or null readings array is no_readings; an empty one is a valid
//     message with no readings.
//   - v is the integer 1 (1.0 is accepted, "1" is not). seq, lane,
//     uptime_s, queue and integer ts are JSON numbers with an integral value
//     up to 2^53 (18231, 18231.0 and 1.8231e4 are equal; 1.5 and
//     9007199254740993 are refused), read exactly, without going through
//     float64.
//   - ts: RFC 3339 as time.RFC3339Nano parses it (T and Z in either case,
//     as RFC 3339 allows; a leap second :60, which time.Parse refuses, is
//     the last nanosecond of its minute, whatever the minute: a unit's clock
//     is not asked to know the leap-second table) with a mandatory offset
//     and at most 9 fraction digits;
//     or integer Unix milliseconds. The reading's time keeps the offset it
//     was written with (UTC for Z, +00:00 and milliseconds). An instant
//     before 2000-01-01T00:00:00Z is bad_ts, more than Options.MaxFuture
//     after Now is future_ts. A reading's own ts follows the same rules and
//     rejects only that reading. Stamp.Index is the reading's index in the
//     message's array, also for the readings of a message whose earlier
//     readings were rejected.
//   - Position: lat in [-90, 90], lon in [-180, 180], both or neither.
//     datum is matched without regard to ASCII case (WGS84, gcj02) and is
//     checked even when the position comes from the registry. A loc object
//     must hold lat and lon (an empty loc is bad_position, not "use the
//     registered position"). A detections or passes message without loc
//     but with lat or lon at the top level (as a patrol's fix has them)
//     is at that position, with the top-level datum, checked as loc's
//     (bad_position, bad_datum; a top-level datum alone is checked too);
//     loc and a top-level position together are bad_position. A position
//     message may likewise give its fix in a loc object. Readings carry no position of their own: lat and lon
//     inside a detection or pass are unknown keys. A message without any
//     from a device without a registered position is no_position as a
//     whole, even if its readings array is empty. gcj02 is converted with
//     the iterative inverse of the standard transform (to 1e-10 degrees);
//     its "outside China" test is the standard bounding box, as the devices'
//     own GCJ-02 implementations use. The registered position is WGS84.
//   - imsi: 6-15 digits. MNC is 3 digits for the MCCs listed in
//     threeDigitMNC (North America, the Caribbean, 405 India, 708, 722, 732,
//     750), else 2; MCC, MNC and Operator are substrings of the IMSI. imei:
//     14-16 digits, Luhn-checked when 15. mac: 6 hex octets with one kind of
//     separator (':' or '-', not mixed), 3 groups of 4 separated by '.', or
//     12 hex digits, stored lower-case with ':'.
//     Identifiers must be JSON strings. A detection needs one of the three.
//   - rssi: a number in [-150, 0] (decimals kept). tech: at most 32 bytes of
//     [A-Za-z0-9 ._/+-] (it is an InfluxDB tag), stored lower-case.
//   - plate: a JSON string (else no_plate) of at most 256 bytes; normalised
//     by mapping U+FF01-U+FF5E to ASCII and U+3000 to a space, upper-casing
//     every letter (Unicode simple case mapping, so Cyrillic works),
//     collapsing runs of white space to one space, and trimming. Nothing
//     else is removed (a middle dot or an inner space stays): matching
//     "蒙B 12345" with "蒙B12345" is for the consumer to decide. Characters
//     that show nothing (Unicode format characters such as a zero-width
//     space or a byte-order mark, variation selectors, Hangul fillers) are
//     dropped. A plate whose letters and digits (model.PlateKey) are 无牌 or
//     無牌 (无 牌, 无-牌, (无牌)), or fewer than two ("", "-", "?", "0"), is
//     model.NoPlate (model.IsNoPlate).
//   - direction: inbound|outbound|unknown, any ASCII case, stored lower-case;
//     white space around it and full-width letters are read as in plates.
//   - plate_color and vehicle_type are codes stored as tags: full-width
//     forms half-width (as plates), trimmed of white space, plate_color in
//     ASCII lower case ("Blue" is "blue"), vehicle_type in ASCII upper
//     case ("k33" is "K33"); white space only is absent.
//   - Other text fields are stored as sent, at most 256 bytes (image 2048),
//     without control characters (bad_field).
//   - Ranges: speed_kmh [0, 500] (passes and positions), heading [0, 360],
//     confidence [0, 1], lane >= 0, accuracy_m [0, 100000], battery_pct
//     [0, 100], temp_c [-100, 150], signal_dbm [-200, 0], uptime_s and
//     queue >= 0, tamper a JSON bool.
//   - Readings past model.MaxReadingsPerMessage are rejected one by one
//     (too_many_readings) without being read; the first ones are kept.
//   - Details never contain identifiers: IMSI, IMEI, MAC and plate values
//     are described by length and position only, other strings are quoted
//     only when short and nearly digit-free, numbers only when short.
package decode
