package zone

import (
	"math"
	"slices"
)

// nudge is how far, in degrees (about a centimetre), beside an edge
// unionBoundary looks to tell which sides of it are inside the zone. It is
// far above the rounding of the intersections it computes, and the width
// below which a gap or overlap between members that were drawn to meet
// counts as none: members exported at 7 decimals (1 cm) meet that
// closely. A fix inside such a sliver is outside (Contains says so), but
// only just: points outside measure to every edge, not to this boundary.
const nudge = 1e-7

// unionBoundary returns the parts of edges (every ring edge of a zone's
// members) that are on the boundary of the members' union: a seam where
// two members meet, or an edge inside another member, is not. contains is
// the zone's point test.
//
// Each edge is cut where other edges meet it — proper crossings, and the
// ends of edges that lie on it or within nudge of it (touching vertices,
// the ends of shared or partly shared stretches) — so that its parts are
// each wholly boundary or wholly not. A part is interior when the points
// nudge beside its middle on both sides are inside the zone. Consecutive
// boundary parts of an edge come back as one segment.
//
// The candidates for cutting an edge come from a segment tree over edges,
// so that a zone of two 5,000-vertex members tests a handful of
// neighbours per edge, not every edge of the other member.
func unionBoundary(edges []seg, contains func(xy) bool) []seg {
	tree := newSegTree(edges)
	var out []seg
	var ts []float64
	for i, e := range edges {
		dx, dy := e.b.X-e.a.X, e.b.Y-e.a.Y
		l := math.Hypot(dx, dy)
		if l == 0 {
			continue // a repeated position: the edges beside it cover it
		}
		ts = ts[:0]
		r := segBox(e)
		r.Min.X, r.Min.Y, r.Max.X, r.Max.Y = r.Min.X-nudge, r.Min.Y-nudge, r.Max.X+nudge, r.Max.Y+nudge
		tree.each(r, func(j int) {
			if j != i {
				ts = cuts(e, edges[j], ts)
			}
		})
		ts = append(ts, 0, 1)
		slices.Sort(ts)
		ts = slices.Compact(ts)
		at := func(t float64) xy {
			switch t {
			case 0:
				return e.a
			case 1:
				return e.b
			}
			return xy{e.a.X + t*dx, e.a.Y + t*dy}
		}
		// The unit normal, nudge long.
		nx, ny := -dy/l*nudge, dx/l*nudge
		start := -1 // index in ts of the current run of boundary parts
		for k := 0; k+1 < len(ts); k++ {
			m := at((ts[k] + ts[k+1]) / 2)
			interior := contains(xy{m.X + nx, m.Y + ny}) && contains(xy{m.X - nx, m.Y - ny})
			switch {
			case !interior && start < 0:
				start = k
			case interior && start >= 0:
				out = append(out, seg{at(ts[start]), at(ts[k])})
				start = -1
			}
		}
		if start >= 0 {
			out = append(out, seg{at(ts[start]), e.b})
		}
	}
	return out
}

// cuts appends to ts the positions (0 < t < 1 along e, from e.a) where f
// meets e: a proper crossing, and each end of f on e or within nudge of
// it, projected on e. A cut too many only splits a part in two; one too
// few would leave a part that is partly boundary.
func cuts(e, f seg, ts []float64) []float64 {
	dx, dy := e.b.X-e.a.X, e.b.Y-e.a.Y
	l2 := dx*dx + dy*dy
	for _, q := range [2]xy{f.a, f.b} {
		qx, qy := q.X-e.a.X, q.Y-e.a.Y
		if c := dx*qy - dy*qx; c*c > nudge*nudge*l2 {
			continue // farther than nudge from e's line
		}
		if t := (qx*dx + qy*dy) / l2; t > 0 && t < 1 {
			ts = append(ts, t)
		}
	}
	if properCross(e.a, e.b, f.a, f.b) {
		oa, ob := orient(f.a, f.b, e.a), orient(f.a, f.b, e.b)
		if t := oa / (oa - ob); t > 0 && t < 1 {
			ts = append(ts, t)
		}
	}
	return ts
}
