package zone

// xy is a position in degrees: X longitude, Y latitude.
type xy struct{ X, Y float64 }

// rect is an axis-aligned box in degrees.
type rect struct{ Min, Max xy }

func (r rect) contains(p xy) bool {
	return p.X >= r.Min.X && p.X <= r.Max.X && p.Y >= r.Min.Y && p.Y <= r.Max.Y
}

// meets reports whether r and o share a point.
func (r rect) meets(o rect) bool {
	return r.Min.X <= o.Max.X && o.Min.X <= r.Max.X && r.Min.Y <= o.Max.Y && o.Min.Y <= r.Max.Y
}

func (r rect) union(o rect) rect {
	return rect{
		Min: xy{min(r.Min.X, o.Min.X), min(r.Min.Y, o.Min.Y)},
		Max: xy{max(r.Max.X, o.Max.X), max(r.Max.Y, o.Max.Y)},
	}
}

// ring is a closed ring (pts[0] == pts[len(pts)-1]) with a band index:
// its latitude range is cut into horizontal bands, each listing the
// segments that overlap it. A ray cast along a parallel then looks only at
// the segments of one band — in practice the few where the parallel
// crosses the boundary — so a 5,000-vertex border strip costs about as
// much as a square.
type ring struct {
	pts []xy
	box rect

	// bandStart[k]..bandStart[k+1] delimit band k's segments in bandSegs
	// (segment i runs from pts[i] to pts[i+1]). Nil for small rings, which
	// are scanned whole.
	bandStart []int32
	bandSegs  []int32
	bandInv   float64 // bands per degree of latitude
}

// minIndexedSegments: below this a plain scan beats the index's
// bookkeeping.
const minIndexedSegments = 16

// maxBandEntriesPerSegment bounds the index's size: a ring whose segments
// span many bands (long north–south edges) gets fewer, taller bands
// rather than a quadratic index.
const maxBandEntriesPerSegment = 4

func newRing(pts []xy) ring {
	r := ring{pts: pts, box: rect{Min: pts[0], Max: pts[0]}}
	for _, p := range pts[1:] {
		r.box = r.box.union(rect{p, p})
	}
	nseg := len(pts) - 1
	if nseg < minIndexedSegments || r.box.Max.Y == r.box.Min.Y {
		return r
	}
	// About four segments a band on a ring whose parallels cross it twice.
	for nb := nseg / 4; nb >= 1; nb /= 2 {
		inv := float64(nb) / (r.box.Max.Y - r.box.Min.Y)
		total := 0
		for i := range nseg {
			lo, hi := r.segBands(i, inv, nb)
			total += hi - lo + 1
		}
		if total > maxBandEntriesPerSegment*nseg && nb > 1 {
			continue
		}
		r.bandInv = inv
		r.bandStart = make([]int32, nb+1)
		r.bandSegs = make([]int32, total)
		for i := range nseg {
			lo, hi := r.segBands(i, inv, nb)
			for k := lo; k <= hi; k++ {
				r.bandStart[k+1]++
			}
		}
		for k := 1; k <= nb; k++ {
			r.bandStart[k] += r.bandStart[k-1]
		}
		next := make([]int32, nb)
		copy(next, r.bandStart[:nb])
		for i := range nseg {
			lo, hi := r.segBands(i, inv, nb)
			for k := lo; k <= hi; k++ {
				r.bandSegs[next[k]] = int32(i)
				next[k]++
			}
		}
		break
	}
	return r
}

// band is the band of latitude y, clamped to the ring's bands.
func (r *ring) band(y, inv float64, nb int) int {
	return min(max(int((y-r.box.Min.Y)*inv), 0), nb-1)
}

func (r *ring) segBands(i int, inv float64, nb int) (int, int) {
	a, b := r.pts[i].Y, r.pts[i+1].Y
	return r.band(min(a, b), inv, nb), r.band(max(a, b), inv, nb)
}

// locate casts a ray from p towards +X: in is whether p is inside the
// ring, on whether p is on its boundary (then in is meaningless).
func (r *ring) locate(p xy) (in, on bool) {
	if !r.box.contains(p) {
		return false, false
	}
	if r.bandStart == nil {
		for i := 0; i+1 < len(r.pts); i++ {
			toggle, on := crossing(r.pts[i], r.pts[i+1], p)
			if on {
				return false, true
			}
			in = in != toggle
		}
		return in, false
	}
	nb := len(r.bandStart) - 1
	k := r.band(p.Y, r.bandInv, nb)
	for _, i := range r.bandSegs[r.bandStart[k]:r.bandStart[k+1]] {
		toggle, on := crossing(r.pts[i], r.pts[i+1], p)
		if on {
			return false, true
		}
		in = in != toggle
	}
	return in, false
}

// crossing tests segment a–b against the ray from p towards +X: toggle
// when the ray crosses it, on when p lies on it. The test is half-open in
// Y (a vertex on the ray's line counts for one of its two segments only),
// so a ray through a vertex is counted once, and exact for points on
// horizontal and vertical edges and on vertices.
func crossing(a, b, p xy) (toggle, on bool) {
	if (a.Y > p.Y) != (b.Y > p.Y) {
		x := a.X + (p.Y-a.Y)*(b.X-a.X)/(b.Y-a.Y)
		if a.X == b.X {
			x = a.X // exact on vertical edges
		}
		if p.X == x {
			return false, true
		}
		return p.X < x, false
	}
	if a.Y == p.Y && b.Y == p.Y {
		return false, p.X >= min(a.X, b.X) && p.X <= max(a.X, b.X)
	}
	return false, a == p || b == p
}

// polygon is an exterior ring and its holes.
type polygon struct {
	outer ring
	holes []ring
}

// contains reports whether p is inside the polygon or on its boundary
// (a hole's boundary included).
func (pg *polygon) contains(p xy) bool {
	in, on := pg.outer.locate(p)
	if on {
		return true
	}
	if !in {
		return false
	}
	for i := range pg.holes {
		in, on := pg.holes[i].locate(p)
		if on {
			return true
		}
		if in {
			return false
		}
	}
	return true
}

// signedArea is the ring's area in square degrees, positive when
// counter-clockwise.
func signedArea(pts []xy) float64 {
	var a float64
	o := pts[0]
	for i := 0; i+1 < len(pts); i++ {
		p, q := pts[i], pts[i+1]
		a += (p.X-o.X)*(q.Y-o.Y) - (q.X-o.X)*(p.Y-o.Y)
	}
	return a / 2
}
