package zone

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/geojson/geometry"

	"github.com/fenceline/fenceline/internal/model"
)

// TestOracle checks the band-indexed point-in-polygon test against
// tidwall/geojson's geometry package (whose rules for edges and holes
// are the same: boundary inside) and against a plain scan of the same
// rings, on jagged rings with holes, with points anywhere, on vertices
// and on the parallels through vertices (where ray casting goes wrong
// when it goes wrong).
func TestOracle(t *testing.T) {
	for seed := range uint64(15) {
		n := []int{5, 17, 64, 500, 5000}[seed%5]
		outer := jaggedRing(aolunsumu, 10_000, n, seed)
		hole := jaggedRing(aolunsumu, 2_000, 40, seed+100)

		toXY := func(r [][2]float64) []xy {
			out := make([]xy, len(r))
			for i, p := range r {
				out[i] = xy{p[0], p[1]}
			}
			return out
		}
		toGeom := func(r [][2]float64) []geometry.Point {
			out := make([]geometry.Point, len(r))
			for i, p := range r {
				out[i] = geometry.Point{X: p[0], Y: p[1]}
			}
			return out
		}
		ours := polygon{outer: newRing(toXY(outer)), holes: []ring{newRing(toXY(hole))}}
		plain := polygon{outer: ring{pts: ours.outer.pts, box: ours.outer.box}, holes: []ring{{pts: ours.holes[0].pts, box: ours.holes[0].box}}}
		theirs := geometry.NewPoly(toGeom(outer), [][]geometry.Point{toGeom(hole)}, &geometry.IndexOptions{Kind: geometry.RTree, MinPoints: 64})

		rng := rand.New(rand.NewPCG(seed, 9))
		var pts []xy
		for range 1000 {
			pts = append(pts, xy{
				ours.outer.box.Min.X + rng.Float64()*(ours.outer.box.Max.X-ours.outer.box.Min.X),
				ours.outer.box.Min.Y + rng.Float64()*(ours.outer.box.Max.Y-ours.outer.box.Min.Y),
			})
		}
		for _, r := range [][][2]float64{outer, hole} {
			step := max(1, len(r)/400)
			for i := 0; i < len(r); i += step {
				v := r[i]
				pts = append(pts, xy{v[0], v[1]})
				// Level with a vertex, a little to either side.
				pts = append(pts, xy{v[0] - 1e-4, v[1]}, xy{v[0] + 1e-4, v[1]})
				if i+1 < len(r) {
					w := r[i+1]
					pts = append(pts, xy{(v[0] + w[0]) / 2, v[1]})
				}
			}
		}
		for i, p := range pts {
			want := theirs.ContainsPoint(geometry.Point{X: p.X, Y: p.Y})
			require.Equal(t, want, ours.contains(p), "seed %d n %d point %v", seed, n, p)
			if i%4 == 0 { // the plain scan is slow on big rings, under -race
				require.Equal(t, want, plain.contains(p), "plain: seed %d n %d point %v", seed, n, p)
			}
		}
	}
}

// TestBandIndexBounded checks that a ring of long north–south edges gets
// a bounded index rather than one entry per segment per band.
func TestBandIndexBounded(t *testing.T) {
	// A comb: 500 teeth from 41 to 42 N.
	var pts []xy
	for i := range 500 {
		x := 110 + float64(i)*0.001
		pts = append(pts, xy{x, 41}, xy{x, 42}, xy{x + 0.0005, 42}, xy{x + 0.0005, 41})
	}
	pts = append(pts, xy{110.5, 40.9}, xy{110, 40.9}, pts[0])
	r := newRing(pts)
	require.NotNil(t, r.bandStart)
	require.LessOrEqual(t, len(r.bandSegs), maxBandEntriesPerSegment*(len(pts)-1))
	pg := polygon{outer: r}
	require.True(t, pg.contains(xy{110.00025, 41.5}))
	require.False(t, pg.contains(xy{110.00075, 41.5}))
	require.True(t, pg.contains(xy{110.2, 40.95}))
}

// TestIndexScan checks Containing and Near against a scan of every zone,
// on the benchmark's 1,000 zones and on small sets.
func TestIndexScan(t *testing.T) {
	ix, pts := benchZones(t)
	check := func(t *testing.T, ix *Index, pts []model.Point) {
		t.Helper()
		for _, p := range pts {
			var got, want []string
			ix.Containing(p, func(z *Zone) bool { got = append(got, z.ID); return true })
			for _, z := range ix.zones {
				if z.Contains(p) {
					want = append(want, z.ID)
				}
			}
			require.ElementsMatch(t, want, got, "Containing %v", p)

			got, want = got[:0], want[:0]
			ix.Near(p, 2000, func(z *Zone) bool { got = append(got, z.ID); return true })
			pr := newProjection(p)
			q := pr.box(2000)
			for _, z := range ix.zones {
				b := z.bbox
				if b.Min.X <= q.Max.X && b.Max.X >= q.Min.X && b.Min.Y <= q.Max.Y && b.Max.Y >= q.Min.Y {
					want = append(want, z.ID)
				}
			}
			require.ElementsMatch(t, want, got, "Near %v", p)
		}
	}
	check(t, ix, pts[:1024])
	for n := range 20 {
		small := &Index{zones: ix.zones[:n], byID: ix.byID}
		for _, z := range small.zones {
			small.tree.Insert([2]float64{z.bbox.Min.X, z.bbox.Min.Y}, [2]float64{z.bbox.Max.X, z.bbox.Max.Y}, z)
		}
		check(t, small, pts[:128])
	}
	t.Run("NaN and negative margins mean the point alone", func(t *testing.T) {
		for _, m := range []float64{math.NaN(), -5, 0} {
			n := 0
			ix.Near(model.Point{Lat: 38, Lon: 126.5}, m, func(*Zone) bool { n++; return true })
			require.Zero(t, n, "margin %v", m)
		}
	})
}
