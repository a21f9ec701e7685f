package decode

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRFC3339(t *testing.T) {
	var z zoneCache
	for _, tc := range []struct {
		in   string
		ok   bool
		want time.Time
	}{
		{"2026-11-26T23:10:04.120+08:00", true, time.Date(2026, 11, 26, 15, 10, 4, 120e6, time.UTC)},
		{"2026-11-26T15:10:04Z", true, time.Date(2026, 11, 26, 15, 10, 4, 0, time.UTC)},
		{"2026-11-26T15:10:04.123456789Z", true, time.Date(2026, 11, 26, 15, 10, 4, 123456789, time.UTC)},
		{"2026-11-26T15:10:04.1-00:30", true, time.Date(2026, 11, 26, 15, 40, 4, 1e8, time.UTC)},
		{"2026-11-26T15:10:04+00:00", true, time.Date(2026, 11, 26, 15, 10, 4, 0, time.UTC)},
		{"2024-02-29T00:00:00Z", true, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"2000-02-29T00:00:00Z", true, time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"2100-02-29T00:00:00Z", false, time.Time{}},
		{"2026-02-29T00:00:00Z", false, time.Time{}},
		{"2026-11-26T15:10:04", false, time.Time{}},                                     // no offset
		{"2026-11-26 15:10:04Z", false, time.Time{}},                                    // space
		{"2026-11-26t15:10:04z", true, time.Date(2026, 11, 26, 15, 10, 4, 0, time.UTC)}, // lower case: RFC 3339 allows it
		{"2026-11-26t15:10:04.5+08:00", true, time.Date(2026, 11, 26, 7, 10, 4, 5e8, time.UTC)},
		{"2026-11-26T24:00:00Z", false, time.Time{}},                                                                     // hour 24
		{"2026-11-26T23:59:60Z", true, time.Date(2026, 11, 26, 23, 59, 59, 999_999_999, time.UTC)},                       // leap second
		{"2016-12-31T23:59:60.5Z", true, time.Date(2016, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},                     // within it
		{"2016-12-31T23:59:61Z", false, time.Time{}},                                                                     // no second 61
		{"2026-13-01T00:00:00Z", false, time.Time{}},                                                                     // month 13
		{"2026-00-01T00:00:00Z", false, time.Time{}},                                                                     // month 0
		{"2026-11-00T00:00:00Z", false, time.Time{}},                                                                     // day 0
		{"2026-11-26T15:10:04.Z", false, time.Time{}},                                                                    // empty fraction
		{"2026-11-26T15:10:04.1234567891Z", true, time.Date(2026, 11, 26, 15, 10, 4, 123456789, time.UTC)},               // 10 digits: 9 kept
		{"2026-11-26T15:10:04.12345678999999999999+08:00", true, time.Date(2026, 11, 26, 7, 10, 4, 123456789, time.UTC)}, // RFC 3339 sets no limit
		{"2026-11-26T15:10:04+24:00", false, time.Time{}},
		{"2026-11-26T15:10:04+08:60", false, time.Time{}},
		{"2026-11-26T15:10:04+0800", false, time.Time{}},
		{"2026-11-26T15:10:04+08", false, time.Time{}},
		{"2026-11-26T15:10:04ZZ", false, time.Time{}},
		{"+2026-11-26T15:10:04Z", false, time.Time{}},
		{"2026-1-26T15:10:04Z", false, time.Time{}},
		{"", false, time.Time{}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := z.parseRFC3339([]byte(tc.in))
			require.Equal(t, tc.ok, ok)
			if !ok {
				return
			}
			assert.True(t, tc.want.Equal(got), "got %v want %v", got, tc.want)
			std, err := time.Parse(time.RFC3339Nano, stdForm(tc.in))
			require.NoError(t, err, "time.Parse agrees it is valid (in upper case)")
			assert.True(t, std.Equal(got))
			_, off := got.Zone()
			_, stdOff := std.Zone()
			assert.Equal(t, stdOff, off, "offset kept")
		})
	}
}

func TestParseRFC3339NoAlloc(t *testing.T) {
	var z zoneCache
	b := []byte("2026-11-26T23:10:04.120+08:00")
	z.parseRFC3339(b) // fill the zone cache
	allocs := testing.AllocsPerRun(100, func() { z.parseRFC3339(b) })
	assert.Zero(t, allocs)
}

var rfc3339Shape = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`)

// stdForm is s as time.Parse reads what parseRFC3339 makes of it: upper
// case, and a leap second as the last nanosecond of second 59.
func stdForm(s string) string {
	s = upperTZ(s)
	if len(s) > 19 && s[17:19] == "60" {
		rest := s[19:]
		if rest != "" && rest[0] == '.' {
			n := 1
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				n++
			}
			rest = rest[n:]
		}
		s = s[:17] + "59.999999999" + rest
	}
	return s
}

// FuzzParseRFC3339 checks the parser against time.Parse: whatever it accepts,
// time.Parse accepts as the same instant and offset (a leap second as the
// last nanosecond before it); whatever time.Parse accepts with an explicit
// offset, it accepts.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{
		"2026-11-26T23:10:04.120+08:00", "2026-11-26T15:10:04Z", "2000-02-29T00:00:00-23:59",
		"2026-11-26T15:10:04,5Z", "2026-11-26T15:10:04.5", "9999-12-31T23:59:59.999999999Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var z zoneCache
		got, ok := z.parseRFC3339([]byte(s))
		std, err := time.Parse(time.RFC3339Nano, stdForm(s))
		if ok {
			if err != nil {
				t.Fatalf("%q: accepted, time.Parse says %v", s, err)
			}
			if !std.Equal(got) {
				t.Fatalf("%q: %v, time.Parse %v", s, got, std)
			}
			_, o1 := got.Zone()
			_, o2 := std.Zone()
			if o1 != o2 {
				t.Fatalf("%q: offset %d, time.Parse %d", s, o1, o2)
			}
			return
		}
		if err != nil {
			return
		}
		// time.Parse accepted: only the documented differences are allowed
		// (it also takes a comma before the fraction and, in its fallback
		// path, some 1-digit fields and offset minutes of 60).
		if !rfc3339Shape.MatchString(s) {
			return
		}
		t.Fatalf("%q: refused, time.Parse accepts as %v", s, std)
	})
}

func TestDaysFromCivil(t *testing.T) {
	for _, d := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		assert.Equal(t, d.Unix()/86400, daysFromCivil(d.Year(), int(d.Month()), d.Day()), d.String())
	}
	for day := time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2031; day = day.AddDate(0, 0, 1) {
		require.Equal(t, day.Unix()/86400, daysFromCivil(day.Year(), int(day.Month()), day.Day()), day.String())
	}
}

// upperTZ is s with the lower-case t and z RFC 3339 allows (and time.Parse
// refuses) in upper case.
func upperTZ(s string) string {
	b := []byte(s)
	if len(b) > 10 && b[10] == 't' {
		b[10] = 'T'
	}
	if n := len(b); n > 0 && b[n-1] == 'z' {
		b[n-1] = 'Z'
	}
	return string(b)
}
