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
// with nothing between records and no file header. A crash can leave a
// segment ending in part of a record (a torn tail): its length runs past the
// end of the file, or its CRC does not match. Open cuts such a tail off;
// everything before it was fsynced before its Append was called back.
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
