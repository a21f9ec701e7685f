package spool

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/testenv"
)

// rec is where a record lies on disk, read from its segment before damage.
type rec struct {
	seg    string // path
	segIdx int    // in spool order
	off    int64
	size   int64 // header and body
	id     int
}

// layout walks the records of every segment of dir, oldest first.
func layout(t *testing.T, dir string) []rec {
	t.Helper()
	var out []rec
	for i, path := range segFiles(t, dir) {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		for off := 0; off < len(b); {
			n := int(binary.LittleEndian.Uint32(b[off:]))
			body := string(b[off+headerSize : off+headerSize+n])
			id, err := strconv.Atoi(body[len("m,id=") : len("m,id=")+6])
			require.NoError(t, err)
			out = append(out, rec{seg: path, segIdx: i, off: int64(off), size: int64(headerSize + n), id: id})
			off += headerSize + n
		}
	}
	return out
}

// lastOf is the index in recs of the last record of segment seg.
func lastOf(recs []rec, seg int) int {
	last := -1
	for i, r := range recs {
		if r.segIdx == seg {
			last = i
		}
	}
	return last
}

func setBytes(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

func without(ids []int, drop ...[]int) []int {
	var out []int
	for _, id := range ids {
		if !slices.ContainsFunc(drop, func(d []int) bool { return slices.Contains(d, id) }) {
			out = append(out, id)
		}
	}
	return out
}

// A bad record with intact records after it, or at the end of a segment
// that is not the last, is damage: it is skipped, counted, logged at error
// level and kept in a copy, and every intact record after it is replayed,
// in order. Only the tail of the last segment is a crash's, cut off quietly.
// The old spool cut the segment off at the first bad record, silently
// losing the acked records after it.
func TestDamagedRecords(t *testing.T) {
	const n, size = 100, 80 // 96-byte records: segments of 43, 43 and 14 at 4096 bytes
	for _, tc := range []struct {
		name string
		// damage damages the segments and says which records it lost and
		// which were a torn tail, cut off without counting.
		damage func(t *testing.T, recs []rec) (lost, cut []int)
		// records is what damaged_records_total must say.
		records float64
		// copies of damaged segments kept.
		copies int
		// cursorAt is the record the saved replay position is at (0: none).
		cursorAt int
		// afterOpen damages the segments after Open checked them: replay
		// finds the damage.
		afterOpen bool
	}{
		{name: "a body in the last segment", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off+headerSize+5))
			return []int{90}, nil
		}},
		{name: "a length made too long", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off+1))
			return []int{90}, nil
		}},
		{name: "a length made shorter", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off))
			return []int{90}, nil
		}},
		{name: "a crc", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off+5))
			return []int{90}, nil
		}},
		{name: "an append time", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off+12))
			return []int{90}, nil
		}},
		{name: "the first record", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[0].seg, recs[0].off+headerSize))
			return []int{0}, nil
		}},
		{name: "a record in a segment not the last", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[20].seg, recs[20].off+headerSize+40))
			return []int{20}, nil
		}},
		{name: "the last record of a segment not the last", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			r := recs[lastOf(recs, 0)]
			require.NoError(t, flip(r.seg, r.off+r.size-3))
			return []int{r.id}, nil
		}},
		{name: "the last length of a segment not the last runs past its end", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			r := recs[lastOf(recs, 1)]
			require.NoError(t, flip(r.seg, r.off+2))
			return []int{r.id}, nil
		}},
		{name: "several spots in every segment", records: 4, copies: 3, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			for _, i := range []int{5, 30, 50, 95} {
				require.NoError(t, flip(recs[i].seg, recs[i].off+headerSize+int64(i%50)))
			}
			return []int{5, 30, 50, 95}, nil
		}},
		{name: "two records in a row", records: 2, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[60].seg, recs[60].off+headerSize+70))
			require.NoError(t, flip(recs[61].seg, recs[61].off+headerSize+1))
			return []int{60, 61}, nil
		}},
		{name: "zeros across headers", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			// A stretch whose lengths are gone counts as one record.
			setBytes(t, recs[70].seg, recs[70].off+40, make([]byte, 300))
			return []int{70, 71, 72, 73}, nil
		}},
		{name: "a whole segment not the last", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			first, last := lastOf(recs, 0)+1, lastOf(recs, 1)
			end := recs[last].off + recs[last].size
			setBytes(t, recs[first].seg, 0, bytes.Repeat([]byte{0xaa}, int(end)))
			return seq(recs[first].id, recs[last].id+1), nil
		}},
		{name: "damage, then a torn tail in the last segment", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[95].seg, recs[95].off+headerSize+9))
			require.NoError(t, os.Truncate(recs[99].seg, recs[99].off+50))
			return []int{95}, []int{99}
		}},
		{name: "a byte of the last record of the last segment", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			// Whole (its length runs to the end, its body ends its line):
			// written, fsynced and acked; no crash tore it.
			require.NoError(t, flip(recs[99].seg, recs[99].off+headerSize+5))
			return []int{99}, nil
		}},
		{name: "the last record's final newline", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			r := recs[99]
			setBytes(t, r.seg, r.off+r.size-1, []byte("x"))
			return []int{99}, nil
		}},
		{name: "the last record's length made shorter", records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			// Bytes follow the record it now claims: written whole.
			require.NoError(t, flip(recs[99].seg, recs[99].off))
			return []int{99}, nil
		}},
		{name: "the last record of the last segment in zeros from the middle", damage: func(t *testing.T, recs []rec) ([]int, []int) {
			// What a crash leaves when the size was written before the data.
			r := recs[99]
			setBytes(t, r.seg, r.off+headerSize+10, make([]byte, r.size-headerSize-10))
			return nil, []int{99}
		}},
		{name: "the replay position at the damaged record", records: 1, copies: 1, cursorAt: 90, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off+headerSize+5))
			return []int{90}, nil
		}},
		{name: "damage before the replay position costs nothing", cursorAt: 92, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[90].seg, recs[90].off+headerSize+5))
			return nil, nil // 90 is in InfluxDB already
		}},
		{name: "found on replay: a record in the middle", afterOpen: true, records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, flip(recs[50].seg, recs[50].off+headerSize+5))
			return []int{50}, nil
		}},
		{name: "found on replay: the last record of the last segment", afterOpen: true, records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			// Open found it whole: fsynced and acked, so no crash tore it.
			require.NoError(t, flip(recs[99].seg, recs[99].off+headerSize+5))
			return []int{99}, nil
		}},
		{name: "found on replay: a segment cut short", afterOpen: true, records: 1, copies: 1, damage: func(t *testing.T, recs []rec) ([]int, []int) {
			require.NoError(t, os.Truncate(recs[60].seg, recs[60].off+10))
			return seq(60, recs[lastOf(recs, 1)].id+1), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 4096, ReplayBytes: 500}
			r := start(t, dir, opts)
			for i := range n {
				require.NoError(t, appendWait(t, r.s, line(i, size)))
			}
			r.stop(t)
			recs := layout(t, dir)
			require.Len(t, recs, n)
			require.Equal(t, 2, recs[n-1].segIdx, "three segments")
			byID := map[int]rec{}
			for _, rc := range recs {
				byID[rc.id] = rc
			}
			from := 0
			if tc.cursorAt > 0 {
				from = tc.cursorAt
				c := byID[from]
				seqNum, ok := parseSegmentName(filepath.Base(c.seg))
				require.True(t, ok)
				require.NoError(t, saveCursor(dir, position{seq: seqNum, off: c.off}, (*os.File).Sync))
			}
			var logs testenv.LogBuffer
			var lost, cut []int
			var damaged map[string][]byte // segment contents after the damage
			snapshot := func() {
				damaged = map[string][]byte{}
				for _, path := range segFiles(t, dir) {
					b, err := os.ReadFile(path)
					require.NoError(t, err)
					damaged[path] = b
				}
			}
			if !tc.afterOpen {
				lost, cut = tc.damage(t, recs)
				snapshot()
			}
			r = startLogged(t, dir, opts, logs.Logger())
			if tc.afterOpen {
				lost, cut = tc.damage(t, recs)
				snapshot()
			} else {
				assert.Equal(t, len(without(seq(from, n), lost, cut)), r.s.Stats().Records, "records to replay")
			}
			rp := replay(t, r.s, nil)
			waitFor(t, "drained", func() bool { return len(segFiles(t, dir)) == 0 })
			assert.Equal(t, want(without(seq(from, n), lost, cut)...), ids(rp.lines()), "every intact record after the damage, in order, once")
			assert.Zero(t, r.s.Stats().Records)

			var lostBytes int64
			for _, id := range lost {
				lostBytes += byID[id].size
			}
			assert.Equal(t, float64(lostBytes), counter(t, r.reg, "fenceline_spool_damaged_bytes_total"))
			assert.Equal(t, tc.records, counter(t, r.reg, "fenceline_spool_damaged_records_total"))
			assert.Zero(t, counter(t, r.reg, "fenceline_spool_errors_total"), "damage is not a write error")
			assert.Equal(t, float64(tc.copies), counter(t, r.reg, "fenceline_spool_damaged_segments"))

			// The damaged bytes are kept beside the segment they were in.
			copies, err := filepath.Glob(filepath.Join(dir, "*.seg.damaged"))
			require.NoError(t, err)
			assert.Len(t, copies, tc.copies)
			for _, id := range lost {
				rc := byID[id]
				kept, err := os.ReadFile(rc.seg + ".damaged")
				require.NoError(t, err, "a copy of the segment of record %d", id)
				end := min(rc.off+rc.size, int64(len(damaged[rc.seg])))
				if end <= rc.off {
					continue // cut off the file: no byte of it left to keep
				}
				require.GreaterOrEqual(t, int64(len(kept)), end)
				assert.Equal(t, damaged[rc.seg][rc.off:end], kept[rc.off:end], "record %d's damaged bytes", id)
			}

			out := logs.String()
			if len(lost) == 0 {
				assert.NotContains(t, out, "level=ERROR")
				return
			}
			first := byID[lost[0]]
			assert.Contains(t, out, `level=ERROR msg="spool segment is damaged; skipping the damaged bytes and replaying the intact records after them: the readings in the damaged records are lost`)
			assert.Contains(t, out, fmt.Sprintf("segment=%s offset=%d bytes=", filepath.Base(first.seg), first.off))
			if len(cut) > 0 {
				assert.Contains(t, out, "spool segment ends in a torn record")
			}
		})
	}
}

// The black-box tester's case: 100 acked batches of 816 bytes in one
// segment of 81,600 bytes, one byte overwritten at offset 40,000 (in the
// 50th record). The old spool cut the segment at 39,984 with a warning
// about a crash, losing 51 acked batches without a count.
func TestOneDamagedByteLosesOneRecord(t *testing.T) {
	dir := t.TempDir()
	seg, size := oneSegment(t, dir, 100, 800)
	require.Equal(t, int64(81600), size)
	setBytes(t, seg, 40000, []byte("X")) // printf X | dd of=… bs=1 seek=40000 conv=notrunc

	var logs testenv.LogBuffer
	r := startLogged(t, dir, Options{}, logs.Logger())
	assert.Equal(t, 99, r.s.Stats().Records)
	assert.Equal(t, 816.0, counter(t, r.reg, "fenceline_spool_damaged_bytes_total"))
	assert.Equal(t, 1.0, counter(t, r.reg, "fenceline_spool_damaged_records_total"))
	assert.Equal(t, 1.0, counter(t, r.reg, "fenceline_spool_damaged_segments"))
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "segment=0000000000000001.seg offset=39984 bytes=816 records=1")
	assert.NotContains(t, logs.String(), "torn record")

	rp := replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return len(segFiles(t, dir)) == 0 })
	assert.Equal(t, want(without(seq(0, 100), []int{49})...), ids(rp.lines()))
	kept, err := os.ReadFile(seg + ".damaged")
	require.NoError(t, err)
	assert.Len(t, kept, 81600, "the damaged segment is kept whole")
	assert.Equal(t, byte('X'), kept[40000])
	r.stop(t)

	// A restart after the replay neither reports nor counts it again; the
	// copy waits for someone to deal with it.
	r = start(t, dir, Options{})
	assert.Zero(t, counter(t, r.reg, "fenceline_spool_damaged_bytes_total"))
	assert.Equal(t, 1.0, counter(t, r.reg, "fenceline_spool_damaged_segments"))
}

// FuzzDamage writes segments of records, damages them as the input says
// (flipped or zeroed stretches, a cut-short last segment), before Open or
// while replaying, and checks that nothing panics and that replay returns
// exactly the records whose bytes are untouched, in order: damage never
// takes an intact record after it along.
func FuzzDamage(f *testing.F) {
	f.Add(uint8(30), uint8(2), false, []byte{1, 0x10, 0x02, 0, 0x55})
	f.Add(uint8(10), uint8(0), false, []byte{0, 0x30, 0x00, 3, 0x00, 0, 0x90, 0x01, 255, 0})
	f.Add(uint8(50), uint8(1), true, []byte{1, 0x00, 0x01, 10, 0xff})
	f.Add(uint8(5), uint8(0), true, []byte{0, 0x40, 0x00, 255, 0})
	f.Fuzz(func(t *testing.T, n, segs uint8, afterOpen bool, ops []byte) {
		n = n%60 + 1
		nseg := int(segs%3) + 1
		dir := t.TempDir()
		// Records 20 to 170 bytes long, in nseg segments.
		type loc struct {
			seg      int
			from, to int64
			body     []byte
		}
		var locs []loc
		files := make([][]byte, nseg)
		for i := range int(n) {
			seg := i * nseg / int(n)
			body := line(i, 20+(i*37)%150)
			from := int64(len(files[seg]))
			files[seg] = appendRecord(files[seg], body, time.Unix(1_700_000_000, int64(i)))
			locs = append(locs, loc{seg: seg, from: from, to: int64(len(files[seg])), body: body})
		}
		paths := make([]string, nseg)
		write := func() {
			for i, b := range files {
				if b == nil {
					continue
				}
				paths[i] = filepath.Join(dir, segmentName(uint64(i+1)))
				require.NoError(t, os.WriteFile(paths[i], b, 0o600))
			}
		}
		orig := make([][]byte, nseg)
		for i := range files {
			orig[i] = bytes.Clone(files[i])
		}
		// Each op: segment, offset (2 bytes), length (255: cut the last
		// segment short there), value (0: zero the bytes, else xor).
		damage := func() {
			for len(ops) >= 5 {
				op := ops[:5]
				ops = ops[5:]
				seg := int(op[0]) % nseg
				if len(files[seg]) == 0 {
					continue
				}
				off := int(binary.LittleEndian.Uint16(op[1:3])) % len(files[seg])
				if op[3] == 255 {
					last := nseg - 1
					if len(files[last]) > 0 {
						files[last] = files[last][:off%len(files[last])]
					}
					continue
				}
				for i := off; i < min(off+int(op[3])%32+1, len(files[seg])); i++ {
					if op[4] == 0 {
						files[seg][i] = 0
					} else {
						files[seg][i] ^= op[4]
					}
				}
			}
		}
		var r *running
		if afterOpen {
			write()
			r = start(t, dir, Options{ReplayBytes: 300})
			damage()
			for i, b := range files {
				if paths[i] != "" {
					require.NoError(t, os.WriteFile(paths[i], b, 0o600))
				}
			}
		} else {
			damage()
			write()
			r = start(t, dir, Options{ReplayBytes: 300})
		}
		var intact []string
		lost := false
		for _, l := range locs {
			b := files[l.seg]
			if l.to <= int64(len(b)) && bytes.Equal(b[l.from:l.to], orig[l.seg][l.from:l.to]) {
				intact = append(intact, string(l.body))
			} else {
				lost = true
			}
		}
		rp := replay(t, r.s, nil)
		waitFor(t, "drained", func() bool { return len(segFiles(t, dir)) == 0 })
		got := rp.lines()
		require.Equal(t, intact, got, "exactly the intact records, in order")
		if !lost {
			require.Zero(t, counter(t, r.reg, "fenceline_spool_damaged_bytes_total"))
		}
	})
}
