package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The cursor file holds the replay position: segment seq (8 bytes LE),
// offset (8 bytes LE) and the CRC-32C of both (4 bytes LE). It is replaced
// whole (write, fsync, rename), so a crash leaves the old or the new one;
// either is a position whose records before it were acknowledged by
// InfluxDB. A missing or damaged cursor means "from the oldest segment".
const cursorName = "cursor"

func loadCursor(dir string) (position, bool) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil || len(b) != 20 {
		return position{}, false
	}
	if crc32.Checksum(b[:16], crcTable) != binary.LittleEndian.Uint32(b[16:20]) {
		return position{}, false
	}
	return position{
		seq: binary.LittleEndian.Uint64(b[0:8]),
		off: int64(binary.LittleEndian.Uint64(b[8:16])),
	}, true
}

func saveCursor(dir string, p position, sync func(*os.File) error) error {
	var b [20]byte
	binary.LittleEndian.PutUint64(b[0:8], p.seq)
	binary.LittleEndian.PutUint64(b[8:16], uint64(p.off))
	binary.LittleEndian.PutUint32(b[16:20], crc32.Checksum(b[:16], crcTable))
	tmp := filepath.Join(dir, cursorName+".tmp")
	if err := writeCursor(tmp, b[:], sync); err != nil {
		// A full disk fails the write: the half-written file is no use,
		// and would be left in the spool's folder for ever.
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: save cursor: %w", err)
	}
	// The rename need not reach the disk at once: an older cursor only
	// means replaying some records again.
	if err := os.Rename(tmp, filepath.Join(dir, cursorName)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: save cursor: %w", err)
	}
	return nil
}

func writeCursor(path string, b []byte, sync func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := sync(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
