package model

import (
	"math"
	"testing"
	"time"
)

func TestPointTime(t *testing.T) {
	at := time.Date(2026, 11, 26, 23, 10, 4, 120_456_789, time.FixedZone("CST", 8*3600))
	ms := at.UnixMilli() * int64(time.Millisecond)
	for _, tc := range []struct {
		name     string
		seq      int64
		readings int
	}{
		{"first seq", 0, 20},
		{"a large seq", 1_000_000_000_007, 20},
		{"a negative seq", -5, 20},
		{"a message at the bound", 77, MaxReadingsPerMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(map[int64]bool, tc.readings)
			for i := range tc.readings {
				ns := PointTime(at, tc.seq, i)
				if ns < ms || ns >= ms+int64(time.Millisecond) {
					t.Fatalf("reading %d: %d is outside the reading's millisecond %d", i, ns, ms)
				}
				if seen[ns] {
					t.Fatalf("reading %d shares its time with another reading of the message", i)
				}
				seen[ns] = true
				if got := ReadingIndex(ns, tc.seq); got != i {
					t.Fatalf("ReadingIndex = %d, want %d", got, i)
				}
			}
			// Each move level's times meet no other level's, stay in the
			// millisecond, and give the reading's index back.
			for level := uint8(1); level < MoveLevels; level++ {
				for i := range tc.readings {
					moved := PointTime(at, MovedSeq(tc.seq, level), i)
					if seen[moved] || moved < ms || moved >= ms+int64(time.Millisecond) {
						t.Fatalf("reading %d moved to level %d: %d meets another level's times or leaves its millisecond", i, level, moved)
					}
					seen[moved] = true
					if got := ReadingIndex(moved, tc.seq); got != i {
						t.Fatalf("ReadingIndex of a time at level %d = %d, want %d", level, got, i)
					}
				}
			}
		})
	}
}

// Messages close in seq never share a point time, even all read in the
// same millisecond (a unit whose clock froze, a backlog replayed with one
// ts): messages of up to `readings` readings whose seqs are less than
// `apart` apart have distinct times. README.md gives this table.
func TestPointTimeAcrossSeqs(t *testing.T) {
	at := time.UnixMilli(1795741804120)
	ms := at.UnixMilli() * int64(time.Millisecond)
	for _, tc := range []struct {
		name     string
		readings int
		apart    int64
	}{
		{"messages of 20", 20, 28_462},
		{"messages of 100", 100, 8_849},
		{"messages of 500", 500, 1_189},
		{"messages of 1000", 1000, 726},
		{"messages of 2000", 2000, 263},
		{"messages of 4096", 4096, 200},
		{"the most detections 256 KiB holds", 14_563, 63},
		{"the most passes 256 KiB holds", 20_165, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, first := range []int64{0, 999_990, 1_795_741_804} {
				taken := make([]bool, time.Millisecond) // by offset
				for seq := first; seq < first+tc.apart; seq++ {
					for i := range tc.readings {
						off := PointTime(at, seq, i) - ms
						if taken[off] {
							t.Fatalf("seq %d reading %d shares its time with a message less than %d seqs from it", seq, i, tc.apart)
						}
						taken[off] = true
					}
				}
			}
		})
	}
}

// The readings of a message past its 4096th do not take the times of the
// next messages' readings (they did with a fixed 4096 offsets per seq).
func TestPointTimeLargeMessageAndItsNext(t *testing.T) {
	at := time.UnixMilli(1795741804120)
	times := map[int64]bool{}
	for i := range 5000 {
		times[PointTime(at, 700, i)] = true
	}
	for i := range 10 {
		if times[PointTime(at, 701, i)] {
			t.Fatalf("reading %d of seq 701 takes the time of a reading of seq 700", i)
		}
	}
}

func TestSomeNegativeZero(t *testing.T) {
	if v := Some(math.Copysign(0, -1)).V; math.Signbit(v) {
		t.Fatalf("Some(-0) = %v, want 0", v)
	}
	if v := Some(-1.5).V; v != -1.5 {
		t.Fatalf("Some(-1.5) = %v", v)
	}
}

// Level 4 is the half millisecond moved messages took when there was one
// level: a redelivery of such a message takes its points again. The levels
// come in turn, each once before the first again.
func TestMoveLevels(t *testing.T) {
	if got := MovedSeq(7, 4); got != 500_007 {
		t.Fatalf("MovedSeq(7, 4) = %d, want 500007", got)
	}
	seen := map[uint8]bool{}
	l := uint8(0)
	for range MoveLevels {
		if seen[l] {
			t.Fatalf("level %d comes twice in a cycle", l)
		}
		seen[l] = true
		l = NextMoveLevel(l)
	}
	if l != 0 || NextMoveLevel(0) != 4 {
		t.Fatalf("the cycle does not start at level 4 and come back to 0")
	}
}
