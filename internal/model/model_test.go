package model

import (
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
		})
	}
}

// Messages whose seqs are less than 244 apart never share a point time in
// their first 4096 readings: 244 consecutive full messages, all read in the
// same millisecond, are 999,424 distinct times.
func TestPointTimeAcrossSeqs(t *testing.T) {
	at := time.UnixMilli(1795741804120)
	seen := make(map[int64]int64, offsetSpace)
	for seq := int64(1000); seq < 1000+seqSlots; seq++ {
		for i := range seqStride {
			ns := PointTime(at, seq, i)
			if other, ok := seen[ns]; ok {
				t.Fatalf("seq %d reading %d shares its time with seq %d", seq, i, other)
			}
			seen[ns] = seq
		}
	}
}
