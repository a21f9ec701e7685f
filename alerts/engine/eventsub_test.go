package engine

import (
	"testing"
	"time"
)

func TestEventSubAgreesWithSub(t *testing.T) {
	base := time.Date(2026, 11, 28, 4, 0, 0, 999_999_999, time.UTC)
	tests := []struct {
		name string
		a, b time.Time
	}{
		{"equal", base, base},
		{"nanoseconds borrow", base.Add(time.Nanosecond), base},
		{"before, borrow", base, base.Add(1500 * time.Millisecond)},
		{"other zone", base.In(time.FixedZone("CST", 8*3600)), base.Add(-time.Hour)},
		{"a century", base, base.AddDate(-100, 0, 0)},
		{"just under 2^32 s", base, base.Add(-(1<<32 - 1) * time.Second)},
		{"past 2^32 s: Sub's saturation", base, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"past 2^32 s, negative", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), base},
		{"zero times", time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := eventSub(tc.a, tc.b), tc.a.Sub(tc.b); got != want {
				t.Errorf("eventSub(%v, %v) = %v, want %v", tc.a, tc.b, got, want)
			}
		})
	}
}

func FuzzEventSub(f *testing.F) {
	f.Add(int64(1_764_000_000), int64(5), int64(1_764_000_100), int64(999_999_999))
	f.Add(int64(-62_135_596_800), int64(0), int64(1_764_000_000), int64(0))
	f.Fuzz(func(t *testing.T, as, an, bs, bn int64) {
		a, b := time.Unix(as, an%1e9), time.Unix(bs, bn%1e9)
		if got, want := eventSub(a, b), a.Sub(b); got != want {
			t.Errorf("eventSub(%v, %v) = %v, want %v", a, b, got, want)
		}
	})
}
