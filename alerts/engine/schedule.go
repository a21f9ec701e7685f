package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fenceline/fenceline/config"
)

// schedule is a compiled `schedule`: daily windows in a time zone.
type schedule struct {
	loc     *time.Location
	windows []window
}

// window is [from, to) in minutes after local midnight; from > to wraps
// midnight. days is a bitmask of the weekdays (time.Weekday bits) on which
// the window starts; 0x7f when the rule names none.
type window struct {
	from, to int
	days     uint8
}

const allDays = 0x7f

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// compileSchedule checks and compiles spec; key is its path for problems.
func compileSchedule(spec *config.ScheduleSpec, def *time.Location, file, key string, ps *config.Problems) *schedule {
	s := &schedule{loc: def}
	if spec.TZ != "" {
		loc, err := time.LoadLocation(spec.TZ)
		switch {
		case err != nil:
			ps.Add(file, key+".tz", "unknown time zone %q: %v", spec.TZ, err)
		case spec.TZ == "Local":
			ps.Add(file, key+".tz", "%s", config.LocalZoneProblem)
		default:
			s.loc = loc
		}
	}
	if len(spec.Windows) == 0 {
		ps.Add(file, key+".windows", "a schedule needs at least one window")
	}
	for i, w := range spec.Windows {
		wk := fmt.Sprintf("%s.windows[%d]", key, i)
		from, err := parseClock(w.From, false)
		if err != nil {
			ps.Add(file, wk+".from", "%v", err)
		}
		to, err2 := parseClock(w.To, true)
		if err2 != nil {
			ps.Add(file, wk+".to", "%v", err2)
		}
		if err == nil && err2 == nil && from == to {
			ps.Add(file, wk, "from and to are equal (%s): the window would be empty; use 00:00–24:00 for a whole day", w.From)
		}
		win := window{from: from, to: to, days: allDays}
		if len(w.Days) > 0 {
			win.days = 0
			for j, d := range w.Days {
				wd, ok := weekdays[strings.ToLower(d)]
				if !ok {
					ps.Add(file, fmt.Sprintf("%s.days[%d]", wk, j), "unknown day %q (mon, tue, wed, thu, fri, sat, sun)", d)
					continue
				}
				win.days |= 1 << wd
			}
		}
		s.windows = append(s.windows, win)
	}
	return s
}

// parseClock reads "HH:MM" as minutes after midnight; "24:00" is allowed as
// the end of a window.
func parseClock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	digits := func(v string) bool { return len(v) == 2 && '0' <= v[0] && v[0] <= '9' && '0' <= v[1] && v[1] <= '9' }
	if !ok || !digits(h) || !digits(m) {
		// Digits only: Atoi takes a sign, "+6:00" would be 06:00.
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !end)) {
		return 0, fmt.Errorf("time %q is not HH:MM (00:00–23:59%s)", s, map[bool]string{true: ", or 24:00", false: ""}[end])
	}
	return hh*60 + mm, nil
}

// active reports whether t falls in one of the windows. A window that wraps
// midnight belongs to the day it starts on: "fri 20:00–06:00" covers
// Saturday 05:59.
func (s *schedule) active(t time.Time) bool {
	if s == nil {
		return true
	}
	lt := t.In(s.loc)
	hh, mm, _ := lt.Clock()
	return s.activeAt(hh*60+mm, lt.Weekday())
}

// activeAt is active for a local minute of the day and weekday.
func (s *schedule) activeAt(m int, wd time.Weekday) bool {
	day := uint8(1) << wd
	prev := uint8(1) << ((wd + 6) % 7)
	for _, w := range s.windows {
		if w.from < w.to {
			if m >= w.from && m < w.to && w.days&day != 0 {
				return true
			}
			continue
		}
		if m >= w.from && w.days&day != 0 {
			return true
		}
		if m < w.to && w.days&prev != 0 {
			return true
		}
	}
	return false
}
