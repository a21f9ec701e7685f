package zone

import (
	"fmt"
	"math"
	"slices"
)

// The checks of a polygon that decoding alone does not make: a zone the
// operator drew wrong must be refused by `check`, not turned silently into
// a different area.

// antimeridianEdge returns the index of the first edge of pts that spans
// more than 180° of longitude, -1 if none. Such an edge is a ring drawn
// across the antimeridian: read as written (as GeoJSON says it must be), it
// goes the long way round, and the zone covers the rest of the world's
// longitudes instead of the strip it was meant to.
func antimeridianEdge(pts []xy) int {
	for i := 0; i+1 < len(pts); i++ {
		if math.Abs(pts[i+1].X-pts[i].X) > 180 {
			return i
		}
	}
	return -1
}

// segment is edge i of ring r of a polygon.
type segment struct {
	a, b xy
	r, i int
}

func (s *segment) minX() float64 { return min(s.a.X, s.b.X) }
func (s *segment) maxX() float64 { return max(s.a.X, s.b.X) }

// crossingEdges finds two edges of the polygon's rings (the outer ring
// first, then its holes) that cross each other: a ring that crosses itself
// (a bow-tie: its lobes count as inside or cancel out, depending on the
// test), or a hole that crosses the outer ring or another hole. Only proper
// crossings count — edges that touch at a vertex, as the neighbouring edges
// of a ring do, do not. ok is false when none cross. A sweep along X visits
// only the pairs whose longitude ranges overlap: near-linear for the
// shapes zones have, a 5,000-vertex border strip included.
func crossingEdges(rings [][]xy) (s, t segment, touch, ok bool) {
	var segs []segment
	nseg := make([]int, len(rings)) // a ring's edges, once repeated positions are skipped
	for r, pts := range rings {
		for i := 0; i+1 < len(pts); i++ {
			if pts[i] == pts[i+1] {
				continue // a repeated position: no edge
			}
			segs = append(segs, segment{a: pts[i], b: pts[i+1], r: r, i: nseg[r]})
			nseg[r]++
		}
	}
	adjacent := func(a, b segment) bool {
		if a.r != b.r {
			return false
		}
		d := a.i - b.i
		return d == 1 || d == -1 || d == nseg[a.r]-1 || d == 1-nseg[a.r]
	}
	slices.SortFunc(segs, func(x, y segment) int {
		return cmpFloat(x.minX(), y.minX())
	})
	var active []segment
	for _, cur := range segs {
		// Drop the segments that end before this one starts.
		active = slices.DeleteFunc(active, func(a segment) bool { return a.maxX() < cur.minX() })
		for _, a := range active {
			cross := properCross(a.a, a.b, cur.a, cur.b)
			// Within a ring, edges that are not neighbours must not even
			// touch: a ring through one of its own vertices or edges
			// pinches the zone into parts. Rings of a polygon may touch
			// at a point (a hole against the outer ring).
			touches := !cross && a.r == cur.r && !adjacent(a, cur) && touch2(a, cur)
			if cross || touches {
				s, t := a, cur
				if s.r > t.r || (s.r == t.r && s.i > t.i) {
					s, t = t, s
				}
				return s, t, touches, true
			}
		}
		active = append(active, cur)
	}
	return segment{}, segment{}, false, false
}

// touch2 reports whether segments a and b share a point: an end of one on
// the other.
func touch2(a, b segment) bool {
	return onSegment(a.a, a.b, b.a) || onSegment(a.a, a.b, b.b) || onSegment(b.a, b.b, a.a) || onSegment(b.a, b.b, a.b)
}

// onSegment reports whether p lies on segment a–b.
func onSegment(a, b, p xy) bool {
	return orient(a, b, p) == 0 &&
		p.X >= min(a.X, b.X) && p.X <= max(a.X, b.X) && p.Y >= min(a.Y, b.Y) && p.Y <= max(a.Y, b.Y)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// properCross reports whether segments p1–p2 and q1–q2 cross at a point
// inside both: each one's ends lie strictly on either side of the other.
func properCross(p1, p2, q1, q2 xy) bool {
	d1 := orient(q1, q2, p1)
	d2 := orient(q1, q2, p2)
	d3 := orient(p1, p2, q1)
	d4 := orient(p1, p2, q2)
	return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))
}

// orient is the sign of the turn a→b→c: > 0 left, < 0 right, 0 collinear.
func orient(a, b, c xy) float64 {
	return (b.X-a.X)*(c.Y-a.Y) - (b.Y-a.Y)*(c.X-a.X)
}

// polygonProblem returns what is wrong with a polygon whose rings each
// decoded (closed, in range, with an area), "" if nothing; path names the
// polygon's coordinates.
func polygonProblem(rings [][]xy, path string) (where, msg string) {
	for r, pts := range rings {
		if i := antimeridianEdge(pts); i >= 0 {
			return fmt.Sprintf("%s[%d][%d]", path, r, i), fmt.Sprintf(
				"the edge from [%g, %g] to [%g, %g] spans more than 180° of longitude: a zone across the antimeridian must be cut there into two polygons (a MultiPolygon, RFC 7946 §3.1.9); as written it covers the other %g° of the globe",
				pts[i].X, pts[i].Y, pts[i+1].X, pts[i+1].Y, 360-math.Abs(pts[i+1].X-pts[i].X))
		}
	}
	if s, t, touches, ok := crossingEdges(rings); ok {
		what, verb := "the ring crosses itself", "crosses"
		if touches {
			what, verb = "the ring touches itself", "touches"
		}
		if s.r != t.r {
			what = "a hole crosses the outer ring"
			if s.r > 0 {
				what = "two holes cross each other"
			}
		}
		return fmt.Sprintf("%s[%d]", path, t.r), fmt.Sprintf(
			"%s: edge %d ([%g, %g] to [%g, %g]) %s edge %d of ring %d ([%g, %g] to [%g, %g]); draw the zone without crossings (several areas: a MultiPolygon)",
			what, t.i, t.a.X, t.a.Y, t.b.X, t.b.Y, verb, s.i, s.r, s.a.X, s.a.Y, s.b.X, s.b.Y)
	}
	outer := newRing(rings[0])
	for h, pts := range rings[1:] {
		// Holes do not cross the outer ring (above): one vertex tells
		// whether a hole is inside it.
		for _, p := range pts {
			in, on := outer.locate(p)
			if on {
				continue
			}
			if !in {
				return fmt.Sprintf("%s[%d]", path, h+1), "the hole lies outside the polygon's outer ring: a hole must be inside it"
			}
			break
		}
	}
	return "", ""
}
