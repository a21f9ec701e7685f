package decode

import (
	"time"
)

// minTime is the earliest acceptable ts. The latest is bounded by the future
// check (and, for Unix milliseconds, by maxUnixMilli, the end of year 9999).
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	minUnixMilli = 946684800000    // 2000-01-01T00:00:00Z
	maxUnixMilli = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// zoneCache hands out one *time.Location per UTC offset, so that parsing a ts
// with an offset does not allocate (time.Parse creates a FixedZone each time).
type zoneCache struct {
	lastOff int
	last    *time.Location
	byOff   map[int]*time.Location // at most 2*24*60 entries
}

func (z *zoneCache) get(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	if z.last != nil && z.lastOff == off {
		return z.last
	}
	loc := z.byOff[off]
	if loc == nil {
		if z.byOff == nil {
			z.byOff = make(map[int]*time.Location)
		}
		loc = time.FixedZone("", off)
		z.byOff[off] = loc
	}
	z.lastOff, z.last = off, loc
	return loc
}

// num2 parses two ASCII digits.
func num2(b []byte) (int, bool) {
	if !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) as
// time.Parse(time.RFC3339Nano, …) does, with the same strictness (offset
// hours 00-23), except that the offset is required, and that it takes what
// RFC 3339 allows and time.Parse refuses: a lower-case t and z, and a leap
// second (SS 60, in a minute's last second: taken as the last nanosecond of
// second 59, so that it stays in its minute and before the next one). Like
// time.Parse, it keeps 9 fraction digits of any number RFC 3339 allows. The
// result keeps the offset as its location (UTC for Z and +00:00). It does
// not allocate.
func (z *zoneCache) parseRFC3339(b []byte) (time.Time, bool) {
	const base = len("2006-01-02T15:04:05")
	if len(b) < base+1 {
		return time.Time{}, false
	}
	if b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	y1, ok1 := num2(b[0:2])
	y2, ok2 := num2(b[2:4])
	mo, ok3 := num2(b[5:7])
	d, ok4 := num2(b[8:10])
	h, ok5 := num2(b[11:13])
	mi, ok6 := num2(b[14:16])
	s, ok7 := num2(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return time.Time{}, false
	}
	y := y1*100 + y2
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || h > 23 || mi > 59 || s > 60 {
		return time.Time{}, false
	}
	leap := s == 60
	rest := b[base:]
	ns := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		digits := n - 1
		if digits < 1 {
			return time.Time{}, false
		}
		for i := 1; i < min(n, 10); i++ {
			ns = ns*10 + int(rest[i]-'0')
		}
		for i := digits; i < 9; i++ {
			ns *= 10
		}
		rest = rest[n:]
	}
	if leap {
		s, ns = 59, 999_999_999
	}
	off := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := num2(rest[1:3])
		om, okm := num2(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off = (oh*60 + om) * 60
		if rest[0] == '-' {
			off = -off
		}
	default:
		return time.Time{}, false
	}
	sec := daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+s-off)
	t := time.Unix(sec, int64(ns))
	if off == 0 {
		return t.UTC(), true
	}
	return t.In(z.get(off)), true
}

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (Howard Hinnant's algorithm): cheaper than
// time.Date, which also normalises its arguments.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400                     // [0, 399]
	doy := (153*((m+9)%12)+2)/5 + d - 1    // [0, 365], from March 1st
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return int64(era)*146097 + int64(doe) - 719468
}
