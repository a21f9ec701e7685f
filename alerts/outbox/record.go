package outbox

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
)

// formatVersion is the log format written in the header record.
const formatVersion = 1

// Record types; see the package doc.
const (
	recHeader = "hdr"
	recKeys   = "keys"
	recAlert  = "alert"
	recDone   = "done"
)

// record is one line of the log. Seq numbers start at 1, so that omitempty
// never hides a real one.
type record struct {
	T     string          `json:"t"`
	V     int             `json:"v,omitempty"`
	Next  uint64          `json:"next,omitempty"`
	Seq   uint64          `json:"seq,omitempty"`
	Sinks []string        `json:"sinks,omitempty"`
	Sink  string          `json:"sink,omitempty"`
	Drop  bool            `json:"drop,omitempty"`
	Keys  [][2]string     `json:"keys,omitempty"`
	Alert json.RawMessage `json:"alert,omitempty"`
	// Ord is an alert record's ordinal (model.Alert.Ordinal) when it is
	// not its Seq; a header's, the largest of the alerts taken before it
	// (which a compaction may have dropped).
	Ord uint64 `json:"ord,omitempty"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord writes r as one checksummed line to buf.
func appendRecord(buf *bytes.Buffer, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s record: %w", r.T, err)
	}
	var sum [4]byte
	c := crc32.Checksum(b, crcTable)
	sum[0], sum[1], sum[2], sum[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	var hx [8]byte
	hex.Encode(hx[:], sum[:])
	buf.Grow(len(b) + 10)
	buf.Write(hx[:])
	buf.WriteByte(' ')
	buf.Write(b) // encoding/json never emits a raw LF, so the line stays one line
	buf.WriteByte('\n')
	return nil
}

var (
	errShortLine = errors.New("line too short")
	errChecksum  = errors.New("checksum mismatch")
)

// decodeLine parses one line without its LF.
func decodeLine(line []byte) (*record, error) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, errShortLine
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	body := line[9:]
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if crc32.Checksum(body, crcTable) != want {
		return nil, errChecksum
	}
	r := new(record)
	if err := json.Unmarshal(body, r); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	return r, nil
}
