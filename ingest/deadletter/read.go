package deadletter

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Filter selects records for Read. Zero values select everything.
type Filter struct {
	Since  time.Time // records received at or after Since
	Reason string    // records with exactly this reason
	Limit  int       // at most this many records (0: no limit)
}

// ErrCorrupt reports complete lines that are not records (a damaged disk,
// or a file edited by hand). Read skips them and returns it at the end.
var ErrCorrupt = errors.New("deadletter: corrupt lines")

// Read calls fn with the records of the store in dir that match filter,
// oldest first. It needs no open Store: an operator's tool reads the folder
// of a running daemon. A last line without its newline — torn by a crash, or
// being written right now — is skipped silently. An error from fn stops the
// reading and is returned as is.
func Read(dir string, filter Filter, fn func(Record) error) error {
	segs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	n, corrupt := 0, 0
	for _, sg := range segs {
		done, bad, err := readSegment(filepath.Join(dir, sg.name), filter, &n, fn)
		corrupt += bad
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	if corrupt > 0 {
		return fmt.Errorf("%w: %d skipped", ErrCorrupt, corrupt)
	}
	return nil
}

// readSegment reads one segment; done reports that the limit was reached.
func readSegment(path string, filter Filter, n *int, fn func(Record) error) (done bool, corrupt int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, 0, nil // evicted while we were listing
	}
	if err != nil {
		return false, 0, fmt.Errorf("deadletter: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		raw, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A record longer than the buffer (payloads go up to 256 KiB,
			// more in base64): gather the rest.
			long := append([]byte(nil), raw...)
			for errors.Is(err, bufio.ErrBufferFull) {
				raw, err = r.ReadSlice('\n')
				long = append(long, raw...)
			}
			raw = long
		}
		if errors.Is(err, io.EOF) {
			return false, corrupt, nil // a torn last line, if anything
		}
		if err != nil {
			return false, corrupt, fmt.Errorf("deadletter: read %s: %w", filepath.Base(path), err)
		}
		rec, ok := decodeRecord(raw)
		if !ok {
			corrupt++
			continue
		}
		if !filter.Since.IsZero() && rec.Received.Before(filter.Since) {
			continue
		}
		if filter.Reason != "" && rec.Reason != filter.Reason {
			continue
		}
		if err := fn(rec); err != nil {
			return true, corrupt, err
		}
		*n++
		if filter.Limit > 0 && *n >= filter.Limit {
			return true, corrupt, nil
		}
	}
}

func decodeRecord(raw []byte) (Record, bool) {
	var l line
	if err := json.Unmarshal(raw, &l); err != nil {
		return Record{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, l.Received)
	if err != nil {
		return Record{}, false
	}
	rec := Record{Received: t, Topic: l.Topic, Reason: l.Reason, Detail: l.Detail, Index: l.Index, Payload: l.PayloadB64}
	if l.Payload != nil {
		rec.Payload = []byte(*l.Payload)
	}
	return rec, true
}
