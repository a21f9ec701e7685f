package engine

import (
	"math"
	"slices"
	"strings"

	"github.com/fenceline/fenceline/alerts/zone"
	"github.com/fenceline/fenceline/internal/model"
)

// A zoneView is what the rules of one source see at one position: the zones
// containing it, sorted by id, and the rules to run there, in rule order —
// the rules without zones (and enter/exit rules, which watch their zones
// from outside too) and the rules with a zone among them, each with its
// zones among them. Fences and checkpoints report from the same few
// positions over and over, so the engine keeps the views of recent
// positions (viewCache) rather than search a thousand zones and visit every
// rule for every message.
type zoneView struct {
	p     model.Point
	src   Source
	zones []*zone.Zone
	rules []candidate
	zbuf  []*zone.Zone // the candidates' zones, back to back
}

// has reports whether the rule of st is one of v's.
func (v *zoneView) has(st *ruleState) bool {
	for i := range v.rules {
		if v.rules[i].st == st {
			return true
		}
	}
	return false
}

// candidate is one rule of a view; zones is nil for a rule without zones
// (or an enter/exit rule).
type candidate struct {
	st       *ruleState
	zones    []*zone.Zone
	off, end int32 // zones in zbuf, while the view is built
}

// viewCache holds the views of recent (position, source) pairs: 4-way
// set-associative, 256 sets, a set's ways replaced in turn. Views are
// recycled with their slices, so a patrol's ever new positions cost no
// allocation once the cache is full. install replaces it (zones and rules
// change on reload).
type viewCache struct {
	sets [viewSets][viewWays]*zoneView
	next [viewSets]uint8
}

const (
	viewBits = 8
	viewSets = 1 << viewBits
	viewWays = 4
)

func viewHash(p model.Point, src Source) uint64 {
	h := math.Float64bits(p.Lat)*0x9E3779B97F4A7C15 ^ math.Float64bits(p.Lon)
	h = (h ^ uint64(src)) * 0xBF58476D1CE4E5B9
	return h ^ h>>31
}

// viewAt returns the view at r's position for r's source. The view stays
// valid until the next viewAt for another position (it may be recycled).
func (e *Engine) viewAt(r *reading) *zoneView {
	if !r.hasPos || e.rs.Zones == nil {
		return &e.noPos[r.src]
	}
	if v := r.view; v != nil && v.p == r.p && v.src == r.src {
		return v
	}
	set := &e.views.sets[viewHash(r.p, r.src)>>(64-viewBits)]
	for _, v := range set {
		if v != nil && v.p == r.p && v.src == r.src {
			r.view = v
			return v
		}
	}
	next := &e.views.next[viewHash(r.p, r.src)>>(64-viewBits)]
	w := *next
	*next = (w + 1) % viewWays
	v := set[w]
	if v == nil {
		v = new(zoneView)
		set[w] = v
	}
	e.buildView(v, r.p, r.src)
	r.view = v
	return v
}

// buildView fills v with the view at p for src.
func (e *Engine) buildView(v *zoneView, p model.Point, src Source) {
	v.p, v.src = p, src
	e.hits = e.hits[:0]
	e.rs.Zones.Containing(p, e.collectHit)
	slices.SortFunc(e.hits, func(a, b *zone.Zone) int { return strings.Compare(a.ID, b.ID) })
	v.zones = append(v.zones[:0], e.hits...)

	rules := e.bySource[src]
	marks := slices.Grow(e.marks[:0], len(rules))[:len(rules)]
	clear(marks)
	e.marks = marks
	idx := e.zoneIdx[src]
	for _, z := range v.zones {
		for _, i := range idx[z] {
			marks[i] = true
		}
	}
	v.rules, v.zbuf = v.rules[:0], v.zbuf[:0]
	for i, st := range rules {
		if !zonedRule(st.rule) {
			v.rules = append(v.rules, candidate{st: st})
			continue
		}
		if !marks[i] {
			continue
		}
		off := len(v.zbuf)
		for _, z := range v.zones {
			if st.rule.hasZone(z) {
				v.zbuf = append(v.zbuf, z)
			}
		}
		v.rules = append(v.rules, candidate{st: st, off: int32(off), end: int32(len(v.zbuf))})
	}
	for i := range v.rules { // zbuf has stopped growing
		if c := &v.rules[i]; c.end > c.off {
			c.zones = v.zbuf[c.off:c.end:c.end]
		}
	}
}
