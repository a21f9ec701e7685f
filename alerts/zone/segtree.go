package zone

import "math"

// seg is one boundary segment.
type seg struct{ a, b xy }

// segFan is how many segments a leaf box holds and how many boxes a box
// of the level above: small, so that a search computes few distances per
// box it opens.
const segFan = 8

// segTree is a bounding-box hierarchy over a zone's boundary segments for
// the nearest-segment search of DistanceM. A ring's consecutive segments
// are neighbours on the ground, so grouping them in ring order gives tight
// boxes without the sorting an R-tree build does; the tree is built once
// per reload and only read after.
type segTree struct {
	segs []seg
	// levels[0][i] bounds segs[i*segFan:(i+1)*segFan]; levels[k][i]
	// bounds levels[k-1][i*segFan:(i+1)*segFan]. The last level has at
	// most segFan boxes.
	levels [][]rect
}

func newSegTree(segs []seg) *segTree {
	t := &segTree{segs: segs}
	n := len(segs)
	box := func(i int) rect { return segBox(segs[i]) }
	for {
		level := make([]rect, 0, (n+segFan-1)/segFan)
		for lo := 0; lo < n; lo += segFan {
			r := box(lo)
			for i := lo + 1; i < min(lo+segFan, n); i++ {
				r = r.union(box(i))
			}
			level = append(level, r)
		}
		t.levels = append(t.levels, level)
		if len(level) <= segFan {
			return t
		}
		n = len(level)
		box = func(i int) rect { return level[i] }
	}
}

// nearest2 is the squared distance in metres from pr's origin to the
// nearest segment. It descends depth-first, nearest box first, skipping
// boxes no nearer than the best segment so far; near a boundary that
// opens a handful of boxes per level.
func (t *segTree) nearest2(pr *projection) float64 {
	best := math.Inf(1)
	top := len(t.levels) - 1
	t.visit(pr, top, 0, len(t.levels[top]), &best)
	return best
}

// visit searches boxes lo..hi of level k.
func (t *segTree) visit(pr *projection, k, lo, hi int, best *float64) {
	boxes := t.levels[k]
	// Distances and indexes of the children, sorted by distance
	// (insertion sort: there are at most segFan).
	var ds [segFan]float64
	var is [segFan]int
	n := 0
	for i := lo; i < hi; i++ {
		d := pr.boxDist2(boxes[i])
		if d >= *best {
			continue
		}
		j := n
		for ; j > 0 && ds[j-1] > d; j-- {
			ds[j], is[j] = ds[j-1], is[j-1]
		}
		ds[j], is[j] = d, i
		n++
	}
	for c := range n {
		if ds[c] >= *best {
			return // sorted: the rest are no nearer
		}
		i := is[c]
		if k == 0 {
			for _, s := range t.segs[i*segFan : min((i+1)*segFan, len(t.segs))] {
				*best = min(*best, pr.segDist2(s.a, s.b))
			}
			continue
		}
		t.visit(pr, k-1, i*segFan, min((i+1)*segFan, len(t.levels[k-1])), best)
	}
}

// minTreeSegments: boundaries with fewer segments are scanned whole by
// DistanceM.
const minTreeSegments = 64

// boundary is a list of segments for DistanceM's nearest-segment search,
// with a segment tree over it when it is long enough to pay.
type boundary struct {
	segs []seg
	tree *segTree // nil for short lists, which are scanned
}

func newBoundary(segs []seg) boundary {
	b := boundary{segs: segs}
	if len(segs) >= minTreeSegments {
		b.tree = newSegTree(segs)
	}
	return b
}

// nearest2 is the squared distance in metres from pr's origin to the
// nearest segment, +Inf when there is none.
func (b *boundary) nearest2(pr *projection) float64 {
	if b.tree != nil {
		return b.tree.nearest2(pr)
	}
	best := math.Inf(1)
	for _, s := range b.segs {
		best = min(best, pr.segDist2(s.a, s.b))
	}
	return best
}

// segBox is the bounding box of s.
func segBox(s seg) rect {
	return rect{Min: xy{min(s.a.X, s.b.X), min(s.a.Y, s.b.Y)}, Max: xy{max(s.a.X, s.b.X), max(s.a.Y, s.b.Y)}}
}

// each calls fn with the index of every segment whose box meets r.
func (t *segTree) each(r rect, fn func(i int)) {
	top := len(t.levels) - 1
	t.eachIn(r, top, 0, len(t.levels[top]), fn)
}

// eachIn searches boxes lo..hi of level k.
func (t *segTree) eachIn(r rect, k, lo, hi int, fn func(i int)) {
	for i := lo; i < hi; i++ {
		if !t.levels[k][i].meets(r) {
			continue
		}
		if k > 0 {
			t.eachIn(r, k-1, i*segFan, min((i+1)*segFan, len(t.levels[k-1])), fn)
			continue
		}
		for j := i * segFan; j < min((i+1)*segFan, len(t.segs)); j++ {
			if segBox(t.segs[j]).meets(r) {
				fn(j)
			}
		}
	}
}
