package deadletter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
)

// A message the broker delivers again — its first delivery was
// dead-lettered but not acked, as when fenceline stops before the message's
// other parts are stored — would be recorded, and counted, a second time.
// The store remembers the keys of its latest records (topic, reason, index
// and payload: a redelivery is the same message again) so that its caller
// can tell (Kept). They are the records of the last few minutes before a
// stop that matter: the messages in flight then. So the keys are bounded by
// count, and a start reads them back from the newest records only.
const (
	recentMax       = 1 << 16  // keys remembered
	recentReadBytes = 16 << 20 // of the newest segments, read at Open
)

// recentKeys is a bounded set of record keys: a map, and a ring that says
// which key to forget next.
type recentKeys struct {
	seed maphash.Seed
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newRecentKeys() *recentKeys {
	return &recentKeys{seed: maphash.MakeSeed(), set: map[uint64]struct{}{}}
}

// key is rec's identity as a message's rejection. The receive time and the
// detail are not part of it: a redelivery is received later, and its detail
// says the same of the same payload.
func (k *recentKeys) key(rec *Record) uint64 {
	var h maphash.Hash
	h.SetSeed(k.seed)
	h.WriteString(rec.Topic)
	h.WriteByte(0)
	h.WriteString(rec.Reason)
	h.WriteByte(0)
	var idx [8]byte
	binary.LittleEndian.PutUint64(idx[:], uint64(int64(rec.Index)))
	h.Write(idx[:])
	h.Write(rec.Payload)
	return h.Sum64()
}

func (k *recentKeys) has(key uint64) bool {
	_, ok := k.set[key]
	return ok
}

func (k *recentKeys) add(key uint64) {
	if k.has(key) {
		return
	}
	if len(k.ring) < recentMax {
		k.ring = append(k.ring, key)
	} else {
		delete(k.set, k.ring[k.next])
		k.ring[k.next] = key
		k.next = (k.next + 1) % recentMax
	}
	k.set[key] = struct{}{}
}

// load adds the keys of the newest records of the segments in dir (oldest
// first), up to recentReadBytes of them. A line it cannot read is skipped:
// Read reports damage, this only remembers.
func (k *recentKeys) load(dir string, segs []segment) error {
	budget := int64(recentReadBytes)
	first := len(segs)
	for first > 0 && budget > 0 {
		first--
		budget -= segs[first].size
	}
	for i := first; i < len(segs); i++ {
		skip := int64(0)
		if i == first && budget < 0 {
			skip = -budget // the older part of the oldest segment read
		}
		if err := k.loadSegment(filepath.Join(dir, segs[i].name), skip); err != nil {
			return err
		}
	}
	return nil
}

func (k *recentKeys) loadSegment(path string, skip int64) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(skip, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	if skip > 0 {
		// The middle of a record, most likely: start at the next one.
		if _, err := r.ReadBytes('\n'); err != nil {
			return nil
		}
	}
	for {
		raw, err := r.ReadBytes('\n')
		if err != nil {
			return nil // the end, or a torn last line
		}
		if rec, ok := decodeRecord(raw); ok {
			k.add(k.key(&rec))
		}
	}
}
