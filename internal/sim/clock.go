package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Speed is how fast simulated time runs against real time: 1 is real time,
// 60 one simulated minute per second. SpeedMax publishes as fast as the
// broker acknowledges, without pacing.
type Speed float64

// SpeedMax is the unpaced speed.
const SpeedMax Speed = 0

// Paced reports whether messages wait for their time.
func (s Speed) Paced() bool { return s > 0 }

func (s Speed) String() string {
	if !s.Paced() {
		return "max"
	}
	return strconv.FormatFloat(float64(s), 'g', -1, 64)
}

// Set parses "max" or a positive number (flag.Value).
func (s *Speed) Set(v string) error {
	if v == "max" {
		*s = SpeedMax
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("want a positive number or max, got %q", v)
	}
	*s = Speed(f)
	return nil
}

// realDuration is how long d of simulated time takes at speed s.
func (s Speed) realDuration(d time.Duration) time.Duration {
	if !s.Paced() {
		return 0
	}
	return time.Duration(float64(d) / float64(s))
}

// MaxAhead is how far the simulated clock may run ahead of the real one.
// The daemon rejects a ts more than 5 minutes in the future; a minute is
// left for clock skew and for messages waiting in queues.
const MaxAhead = 4 * time.Minute

// DefaultStart is the start of a run when none is given. Real time (speed
// 1 or slower) starts now: message times are the real ones. Faster runs
// start duration ago (on a whole minute), so that the simulated clock
// reaches the real one no earlier than the end of the run: the daemon
// rejects readings from the future, not from the past (it marks the alerts
// they raise late). An accelerated run without end would overtake the real
// clock, so it has no default start.
func DefaultStart(now time.Time, speed Speed, d time.Duration) (time.Time, error) {
	if speed.Paced() && speed <= 1 {
		return now.Truncate(time.Second), nil
	}
	if d <= 0 {
		return time.Time{}, errors.New("an accelerated run needs a duration (it would overtake the real clock); use --duration, or --speed 1 to run until stopped")
	}
	return now.Add(-d).Truncate(time.Minute), nil
}

// CheckClock returns an error when a run from start for d (0: no end) at
// speed, begun at the real time now, would put the simulated clock more
// than MaxAhead past the real one: the daemon would reject its messages.
// Both clocks move linearly, so checking the run's two ends is enough.
func CheckClock(start time.Time, d time.Duration, speed Speed, now time.Time) error {
	if ahead := start.Sub(now); ahead > MaxAhead {
		return fmt.Errorf("the run starts %s ahead of the real clock; the daemon rejects messages more than 5m in the future", ahead.Round(time.Second))
	}
	if d == 0 {
		if !speed.Paced() || speed > 1 {
			return fmt.Errorf("a run without end at speed %s would overtake the real clock; give it a duration", speed)
		}
		return nil
	}
	simEnd, realEnd := start.Add(d), now.Add(speed.realDuration(d))
	if ahead := simEnd.Sub(realEnd); ahead > MaxAhead {
		return fmt.Errorf("at speed %s the simulated clock would end %s ahead of the real one (the daemon rejects messages more than 5m in the future): start at %s or earlier",
			speed, ahead.Round(time.Second), start.Add(-ahead).Format(time.RFC3339))
	}
	return nil
}
