package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// A segment is a file of records, each
//
//	length   uint32 LE   bytes of body
//	crc      uint32 LE   CRC-32C of appended and body
//	appended int64  LE   Unix nanoseconds of the Append
//	body     length bytes (line protocol, newline-terminated lines)
//
// with nothing between records and no file header. A crash can leave the
// last segment ending in part of a record (a torn tail): its length runs
// past the end of the file, or its bytes stop short of its end (zeros where
// the size was written before the data). Open cuts such a tail off;
// everything before it was fsynced before its Append was called back. A
// last record written whole (bytes after the length it claims, or exactly
// to the end of the file with a last byte that is not a zero) whose CRC
// fails was acked: damage, as below (see wholeRecordAt).
//
// A bad record anywhere else (a CRC mismatch, an impossible length) is
// damage, not a crash: the records after it were acked. The scan skips it
// and resynchronises on the next offset where a record of a sane length
// checks out (resync); the chance that damaged bytes pass CRC-32C as well
// is 2^-32 a candidate.
const headerSize = 16

// MaxRecordBytes is the largest body Append takes. The writer's batches are
// a few MiB at most; a length beyond this in a segment is corruption.
const MaxRecordBytes = 256 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the encoded record of body, appended at t, to dst.
func appendRecord(dst []byte, body []byte, t time.Time) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(body)))
	binary.LittleEndian.PutUint64(h[8:16], uint64(t.UnixNano()))
	crc := crc32.Update(0, crcTable, h[8:16])
	crc = crc32.Update(crc, crcTable, body)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, body...)
}

// header is a record's decoded header.
type header struct {
	length   int
	crc      uint32
	appended time.Time
}

func parseHeader(h []byte) header {
	return header{
		length:   int(binary.LittleEndian.Uint32(h[0:4])),
		crc:      binary.LittleEndian.Uint32(h[4:8]),
		appended: time.Unix(0, int64(binary.LittleEndian.Uint64(h[8:16]))),
	}
}

// check verifies body against the header's CRC.
func (h header) check(rawHeader, body []byte) bool {
	crc := crc32.Update(0, crcTable, rawHeader[8:16])
	return crc32.Update(crc, crcTable, body) == h.crc
}

// window serves the sequential small reads of a scan from a buffer: one
// read syscall per 1 MiB instead of two per record.
type window struct {
	f   *os.File
	buf []byte
	off int64 // file offset of buf[0]
	n   int   // valid bytes in buf
}

func newWindow(f *os.File) *window { return &window{f: f, buf: make([]byte, 1<<20)} }

func (w *window) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > len(w.buf) {
		return w.f.ReadAt(p, off) // a large body: straight from the file
	}
	if off < w.off || off+int64(len(p)) > w.off+int64(w.n) {
		n, err := w.f.ReadAt(w.buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		w.off, w.n = off, n
		if n < len(p) {
			copy(p, w.buf[:n])
			return n, io.ErrUnexpectedEOF
		}
	}
	return copy(p, w.buf[off-w.off:w.n]), nil
}

// errTorn marks the end of the valid records of a segment.
var errTorn = errors.New("torn or corrupt record")

// readRecord reads the record at off of f, whose valid part ends at limit.
// It returns the body (in buf's memory when it fits), the header, and the
// offset of the next record; errTorn when what is at off is not a whole,
// intact record.
func readRecord(f io.ReaderAt, off, limit int64, buf []byte) (body []byte, h header, next int64, err error) {
	if limit-off < headerSize {
		return nil, h, off, errTorn
	}
	var raw [headerSize]byte
	if _, err := f.ReadAt(raw[:], off); err != nil {
		return nil, h, off, readErr(err)
	}
	h = parseHeader(raw[:])
	if h.length > MaxRecordBytes || int64(h.length) > limit-off-headerSize {
		return nil, h, off, errTorn
	}
	if cap(buf) >= h.length {
		body = buf[:h.length]
	} else {
		body = make([]byte, h.length)
	}
	if _, err := f.ReadAt(body, off+headerSize); err != nil {
		return nil, h, off, readErr(err)
	}
	if !h.check(raw[:], body) {
		return nil, h, off, errTorn
	}
	return body, h, off + headerSize + int64(h.length), nil
}

// readErr turns a short read (the file is shorter than its recorded size)
// into errTorn and wraps anything else.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errTorn
	}
	return fmt.Errorf("spool: read: %w", err)
}

// segmentName is the file name of segment seq: the sequence number orders
// segments (not the clock, which may be set back).
func segmentName(seq uint64) string { return fmt.Sprintf("%016d.seg", seq) }

func parseSegmentName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(num) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	return seq, err == nil
}

// damage is a stretch [from, to) of a segment that holds no intact record,
// followed by an intact record or by the end of the segment; records is how
// many records it held, as far as their lengths tell (see recordsIn).
type damage struct {
	from, to int64
	records  int
}

// intactAt reports whether an intact record of a sane length (1 byte to
// MaxRecordBytes, within size) starts at off of r, and how many bytes it
// checked the CRC of. Before reading the body it checks that the body ends
// in a newline (Append takes newline-terminated line protocol): random
// bytes pass the length check once in 64 offsets, and this once in 256
// more, so damage of random binary data costs little CRC work. It reads the
// body in pieces into scratch: a damaged length must not make it allocate.
// Bytes past the end of the file are no record; other read errors are
// returned.
func intactAt(r io.ReaderAt, off, size int64, scratch []byte) (bool, int64, error) {
	if size-off < headerSize {
		return false, 0, nil
	}
	var raw [headerSize]byte
	if _, err := r.ReadAt(raw[:], off); err != nil {
		return false, 0, shortRead(err)
	}
	h := parseHeader(raw[:])
	if h.length == 0 || h.length > MaxRecordBytes || int64(h.length) > size-off-headerSize {
		return false, 0, nil
	}
	end := off + headerSize + int64(h.length)
	if _, err := r.ReadAt(scratch[:1], end-1); err != nil {
		return false, 0, shortRead(err)
	}
	if scratch[0] != '\n' {
		return false, 0, nil
	}
	crc := crc32.Update(0, crcTable, raw[8:16])
	for pos := off + headerSize; pos < end; {
		p := scratch[:min(int64(len(scratch)), end-pos)]
		if _, err := r.ReadAt(p, pos); err != nil {
			return false, 0, shortRead(err)
		}
		crc = crc32.Update(crc, crcTable, p)
		pos += int64(len(p))
	}
	return crc == h.crc, int64(h.length), nil
}

// shortRead is nil for the end of the file (no record there) and err
// wrapped otherwise.
func shortRead(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return fmt.Errorf("spool: read: %w", err)
}

// resyncBudget bounds the bytes one resync checks CRCs of (a few seconds'
// work). Damage that is text or zeros costs next to nothing; a stretch of
// random binary data costs about 64 bytes of CRC for each of its bytes
// times the rest of the segment, divided by 256 (the newline check), so
// that only megabytes of random data in a large segment exhaust it.
const resyncBudget = 16 << 30

// resync returns the first offset from from on where an intact record
// starts in r (whose bytes end at size), scanning byte by byte, or -1 when
// there is none or the search exhausted resyncBudget (gaveUp: intact
// records may follow; that is damage, never a torn tail). r should be a
// window: most offsets are refused on their header alone.
func resync(r io.ReaderAt, from, size int64) (at int64, gaveUp bool, err error) {
	scratch := make([]byte, 64<<10)
	budget := int64(resyncBudget)
	for p := from; size-p >= headerSize; p++ {
		ok, checked, err := intactAt(r, p, size, scratch)
		if err != nil {
			return 0, false, err
		}
		if ok {
			return p, false, nil
		}
		if budget -= checked; budget < 0 {
			return -1, true, nil
		}
	}
	return -1, false, nil
}

// recordsIn counts the records in d by following the length fields from
// d.from: when they lead exactly to d.to, only bodies were damaged and the
// count is exact; otherwise a length is damaged too and d counts as one
// record (it held at least one).
func recordsIn(r io.ReaderAt, d damage) int {
	n := 0
	for p := d.from; d.to-p >= headerSize; {
		var raw [headerSize]byte
		if _, err := r.ReadAt(raw[:], p); err != nil {
			break
		}
		l := int64(parseHeader(raw[:]).length)
		if l == 0 || l > d.to-p-headerSize {
			break
		}
		n++
		p += headerSize + l
		if p == d.to {
			return n
		}
	}
	return 1
}
