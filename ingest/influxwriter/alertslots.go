package influxwriter

import (
	"sync"
	"time"

	"github.com/fenceline/fenceline/internal/model"
)

// alertSlots gives each alert point written by this process a time of its
// own within its series. AlertPointTime's offset keeps alerts that share an
// event time apart with high odds only: a crowd of watch-listed phones in
// one message is dozens of alerts of one series in one millisecond. When an
// alert's time is already taken in its series by another alert, the next
// free nanosecond of the same half-millisecond is used instead; the same alert
// written again (a retry, a re-send) finds its own slot. The table forgets
// the oldest slots past maxAlertSlots: an alert written again after that —
// or after a restart — takes AlertPointTime's time again, which is its own
// unless it had been moved, and then it is at worst a second point, never a
// lost one.
type alertSlots struct {
	mu    sync.Mutex
	owner map[alertSlot]string // the id and state holding each slot
	order []alertSlot          // oldest first, for forgetting
	next  int                  // index of the oldest entry of order once it is full
}

type alertSlot struct {
	series string // measurement tags: rule, severity, site, state, zone
	ns     int64
}

const maxAlertSlots = 10000

// time returns the point time of a, whose event time (or, without one, its
// raised_at) is at.
func (s *alertSlots) time(a *model.Alert, at time.Time) time.Time {
	base := AlertPointTime(a.ID, a.State, at)
	ms, off := base.Truncate(time.Millisecond), int64(base.Sub(base.Truncate(time.Millisecond)))
	lo, size := alertOffsets(a.State) // a moved alert stays in its state's half
	series := a.Rule + "\x00" + a.Severity + "\x00" + a.Site + "\x00" + a.State + "\x00" + a.Zone
	who := a.ID + "\x00" + a.State
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner == nil {
		s.owner = make(map[alertSlot]string)
	}
	for i := range size {
		t := ms.Add(time.Duration(lo + (off-lo+i)%size))
		k := alertSlot{series, t.UnixNano()}
		switch owner, taken := s.owner[k]; {
		case owner == who:
			return t
		case !taken:
			s.remember(k, who)
			return t
		}
	}
	return base // half a million alerts of one series and state in one millisecond
}

func (s *alertSlots) remember(k alertSlot, who string) {
	if len(s.order) < maxAlertSlots {
		s.order = append(s.order, k)
	} else {
		delete(s.owner, s.order[s.next])
		s.order[s.next] = k
		s.next = (s.next + 1) % maxAlertSlots
	}
	s.owner[k] = who
}
