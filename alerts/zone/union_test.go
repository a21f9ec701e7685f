package zone

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// box is a closed counter-clockwise rectangle ring from lon0, lat0 to lon1,
// lat1.
func box(lon0, lat0, lon1, lat1 float64) [][2]float64 {
	return [][2]float64{{lon0, lat0}, {lon1, lat0}, {lon1, lat1}, {lon0, lat1}, {lon0, lat0}}
}

// multiJSON writes a MultiPolygon, each polygon its outer ring then its
// holes, with every digit of the coordinates.
func multiJSON(polys ...[][][2]float64) string {
	var b strings.Builder
	b.WriteString(`{"type":"MultiPolygon","coordinates":[`)
	for i, rings := range polys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j, r := range rings {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			for k, p := range r {
				if k > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "[%s,%s]", strconv.FormatFloat(p[0], 'g', -1, 64), strconv.FormatFloat(p[1], 'g', -1, 64))
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestDistanceMUnion: a zone of several polygons measures to the boundary
// of their union, so that a seam between members, or an edge one member
// draws inside another, is no edge a subject must go past.
func TestDistanceMUnion(t *testing.T) {
	// Two squares sharing the edge lon 112.1, as a FeatureCollection
	// (a border strip drawn in segments) and as a MultiPolygon.
	seamFC := one(t, config.ZoneSpec{GeoJSON: `{"type":"FeatureCollection","features":[
		{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[112.0,44.0],[112.1,44.0],[112.1,44.1],[112.0,44.1],[112.0,44.0]]]}},
		{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[112.1,44.0],[112.2,44.0],[112.2,44.1],[112.1,44.1],[112.1,44.0]]]}}]}`})
	seamMulti := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{box(112.0, 44.0, 112.1, 44.1)},
		[][][2]float64{box(112.1, 44.0, 112.2, 44.1)})})
	// A T-junction: the east member's west edge (44.05 to 44.15) shares
	// only the north half of the west member's east edge (44.0 to 44.1),
	// and each has a vertex in the middle of the other's edge.
	tee := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{box(112.0, 44.0, 112.1, 44.1)},
		[][][2]float64{box(112.1, 44.05, 112.2, 44.15)})})
	// Three members along a seam drawn in different pieces: the west
	// member's east edge is one edge, the east side two members.
	split := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{box(112.0, 44.0, 112.1, 44.1)},
		[][][2]float64{box(112.1, 44.0, 112.2, 44.04)},
		[][][2]float64{box(112.1, 44.04, 112.2, 44.1)})})
	// Members 0.5 cm apart: closer than unionBoundary looks, so the gap
	// is no boundary to a point inside, while a point in it is outside,
	// by the few millimetres to the nearest edge.
	sliver := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{box(112.0, 44.0, 112.1, 44.1)},
		[][][2]float64{box(112.10000005, 44.0, 112.2, 44.1)})})
	// Overlapping members (validity lets members of a zone overlap): the
	// east one crosses the west one's east edge.
	overlap := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{box(112.0, 44.0, 112.1, 44.1)},
		[][][2]float64{box(112.05, 44.02, 112.15, 44.08)})})
	// A square with a hole, the hole filled by a second member; and the
	// same hole only half filled.
	holed := [][2]float64{{112.0, 44.0}, {112.2, 44.0}, {112.2, 44.2}, {112.0, 44.2}, {112.0, 44.0}}
	hole := [][2]float64{{112.05, 44.05}, {112.05, 44.15}, {112.15, 44.15}, {112.15, 44.05}, {112.05, 44.05}}
	filled := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{holed, hole},
		[][][2]float64{box(112.05, 44.05, 112.15, 44.15)})})
	halfFilled := one(t, config.ZoneSpec{GeoJSON: multiJSON(
		[][][2]float64{holed, hole},
		[][][2]float64{box(112.05, 44.05, 112.1, 44.15)})})

	// at is lat, lon moved m metres east.
	at := func(lat, lon, m float64) model.Point { return east(model.Point{Lat: lat, Lon: lon}, m) }
	tests := []struct {
		name string
		z    *Zone
		p    model.Point
		// The nearest stretch of the real boundary, from a to b
		// ([lon, lat]): DistanceM is the distance to it, negative when
		// p is outside.
		a, b [2]float64
		in   bool
	}{
		{"seam, FeatureCollection: 20 m east of the seam, 5.5 km inside", seamFC, at(44.05, 112.1, 20), [2]float64{112.1, 44.1}, [2]float64{112.2, 44.1}, true},
		{"seam, FeatureCollection: 20 m west of the seam", seamFC, at(44.05, 112.1, -20), [2]float64{112.0, 44.1}, [2]float64{112.1, 44.1}, true},
		{"seam, FeatureCollection: on the seam", seamFC, at(44.05, 112.1, 0), [2]float64{112.0, 44.1}, [2]float64{112.2, 44.1}, true},
		{"seam, FeatureCollection: on the seam, 100 m inside the north edge", seamFC, north(at(44.1, 112.1, 0), -100), [2]float64{112.0, 44.1}, [2]float64{112.2, 44.1}, true},
		{"seam, FeatureCollection: 100 m inside the north edge, away from the seam", seamFC, north(at(44.1, 112.05, 0), -100), [2]float64{112.0, 44.1}, [2]float64{112.1, 44.1}, true},
		{"seam, FeatureCollection: 100 m north of the seam's end", seamFC, north(at(44.1, 112.1, 0), 100), [2]float64{112.0, 44.1}, [2]float64{112.2, 44.1}, false},
		{"seam, FeatureCollection: 30 m east of the east edge", seamFC, at(44.05, 112.2, 30), [2]float64{112.2, 44.0}, [2]float64{112.2, 44.1}, false},
		{"seam, MultiPolygon: 20 m east of the seam", seamMulti, at(44.05, 112.1, 20), [2]float64{112.1, 44.1}, [2]float64{112.2, 44.1}, true},
		{"seam, MultiPolygon: 20 m west of the seam", seamMulti, at(44.05, 112.1, -20), [2]float64{112.0, 44.1}, [2]float64{112.1, 44.1}, true},
		{"seam, MultiPolygon: 100 m inside the south edge at the seam", seamMulti, north(at(44.0, 112.1, 0), 100), [2]float64{112.0, 44.0}, [2]float64{112.2, 44.0}, true},
		{"T-junction: 20 m west of the shared stretch", tee, at(44.07, 112.1, -20), [2]float64{112.1, 44.05}, [2]float64{112.2, 44.05}, true},
		{"T-junction: 20 m east of the shared stretch", tee, at(44.09, 112.1, 20), [2]float64{112.0, 44.1}, [2]float64{112.1, 44.1}, true},
		{"T-junction: 20 m west of the unshared stretch (a real edge)", tee, at(44.03, 112.1, -20), [2]float64{112.1, 44.0}, [2]float64{112.1, 44.05}, true},
		{"T-junction: 20 m east of the unshared stretch, outside", tee, at(44.03, 112.1, 20), [2]float64{112.1, 44.0}, [2]float64{112.1, 44.05}, false},
		{"T-junction: 20 m east of the east member's unshared stretch", tee, at(44.13, 112.1, 20), [2]float64{112.1, 44.1}, [2]float64{112.1, 44.15}, true},
		{"seam in two pieces: 20 m east, at the east members' joint", split, north(at(44.04, 112.1, 20), 10), [2]float64{112.0, 44.0}, [2]float64{112.2, 44.0}, true},
		{"seam in two pieces: 20 m west, at the east members' joint", split, north(at(44.04, 112.1, -20), 10), [2]float64{112.0, 44.0}, [2]float64{112.2, 44.0}, true},
		{"sliver: 20 m east of the gap", sliver, at(44.05, 112.1, 20), [2]float64{112.1, 44.1}, [2]float64{112.2, 44.1}, true},
		{"sliver: in the gap", sliver, at(44.05, 112.100000025, 0), [2]float64{112.1, 44.0}, [2]float64{112.1, 44.1}, false},
		{"overlap: 20 m west of the west member's east edge, inside both", overlap, at(44.05, 112.1, -20), [2]float64{112.1, 44.08}, [2]float64{112.15, 44.08}, true},
		{"overlap: 20 m east of the east member's west edge, inside both", overlap, at(44.05, 112.05, 20), [2]float64{112.0, 44.0}, [2]float64{112.0, 44.1}, true},
		{"overlap: 20 m east of the east member's east edge", overlap, at(44.05, 112.15, 20), [2]float64{112.15, 44.02}, [2]float64{112.15, 44.08}, false},
		{"overlap: 20 m east of the west member's east edge, outside the east one", overlap, at(44.09, 112.1, 20), [2]float64{112.1, 44.08}, [2]float64{112.1, 44.1}, false},
		{"filled hole: 20 m inside the hole's west edge", filled, at(44.1, 112.05, 20), [2]float64{112.0, 44.0}, [2]float64{112.0, 44.2}, true},
		{"filled hole: 20 m outside the hole's west edge", filled, at(44.1, 112.05, -20), [2]float64{112.0, 44.0}, [2]float64{112.0, 44.2}, true},
		{"half-filled hole: 20 m inside the hole's west edge", halfFilled, at(44.1, 112.05, 20), [2]float64{112.1, 44.05}, [2]float64{112.1, 44.15}, true},
		{"half-filled hole: 20 m west of the filling's east edge (a real edge)", halfFilled, at(44.1, 112.1, -20), [2]float64{112.1, 44.05}, [2]float64{112.1, 44.15}, true},
		{"half-filled hole: 20 m east of the filling, in the hole", halfFilled, at(44.1, 112.1, 20), [2]float64{112.1, 44.05}, [2]float64{112.1, 44.15}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.in, tt.z.Contains(tt.p))
			pr := newProjection(tt.p)
			want := pr.segDistM(xy{tt.a[0], tt.a[1]}, xy{tt.b[0], tt.b[1]})
			if !tt.in {
				want = -want
			}
			assert.InDelta(t, want, tt.z.DistanceM(tt.p), 1e-6)
		})
	}
}

// TestDistanceMUnionJagged checks the union's boundary on irregular
// members against what it must be: from a point inside at distance d,
// every point nearer than d is inside, and the nearest boundary point
// found has the outside right beside it. The members are a jagged ring
// cut in two along a seam through its centre (with a vertex of the seam
// on one side only) and two jagged rings overlapping.
func TestDistanceMUnionJagged(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int // vertices of the jagged ring(s)
	}{
		{"small, scanned", 40},
		{"large, through the segment tree", 600},
	} {
		r := jaggedRing(aolunsumu, 10_000, tc.n, 3)
		cut := halves(r, model.Point{Lat: 41.962, Lon: 110.487})
		other := jaggedRing(east(aolunsumu, 8_000), 10_000, tc.n, 4)
		for _, zc := range []struct {
			name    string
			geojson string
		}{
			{"cut in two", multiJSON(cut[0], cut[1])},
			{"overlapping", multiJSON([][][2]float64{r}, [][][2]float64{other})},
		} {
			t.Run(tc.name+", "+zc.name, func(t *testing.T) {
				z := one(t, config.ZoneSpec{GeoJSON: zc.geojson})
				require.Less(t, len(z.rim.segs), len(z.edges.segs), "some edges are interior")
				checkUnionDistances(t, z)
			})
		}
	}
}

// halves cuts the closed star-shaped ring r around c in two along the
// polyline from its first vertex through c to its middle vertex; the
// first half has an extra vertex halfway from c to the middle vertex.
func halves(r [][2]float64, c model.Point) [2][][][2]float64 {
	n := len(r) - 1
	m := n / 2
	cc := [2]float64{c.Lon, c.Lat}
	mid := [2]float64{(cc[0] + r[m][0]) / 2, (cc[1] + r[m][1]) / 2}
	a := append([][2]float64{}, r[:m+1]...)
	a = append(a, mid, cc, r[0])
	b := append([][2]float64{}, r[m:n+1]...)
	b = append(b, cc, r[m])
	return [2][][][2]float64{{a}, {b}}
}

// checkUnionDistances tests DistanceM at points spread over z's box.
func checkUnionDistances(t *testing.T, z *Zone) {
	t.Helper()
	inside := 0
	for i := range 300 {
		p := model.Point{
			Lat: z.bbox.Min.Y + (z.bbox.Max.Y-z.bbox.Min.Y)*float64(i%17+1)/18,
			Lon: z.bbox.Min.X + (z.bbox.Max.X-z.bbox.Min.X)*float64(i/17+1)/19,
		}
		d := z.DistanceM(p)
		if d < 0 {
			continue
		}
		inside++
		pr := newProjection(p)
		step := func(q xy, dx, dy float64) xy { return xy{q.X + dx/pr.kx, q.Y + dy/pr.ky} }
		o := xy{p.Lon, p.Lat}
		// Nothing nearer than d is outside (sampled on two circles).
		for k := range 720 {
			a := 2 * math.Pi * float64(k) / 720
			for _, f := range []float64{0.5, 0.999} {
				q := step(o, f*d*math.Cos(a), f*d*math.Sin(a))
				require.True(t, z.containsXY(q), "point %v, d %g: %v at %g·d is outside", p, d, q, f)
			}
		}
		// The nearest rim point has the outside within half a metre.
		var near xy
		best := math.Inf(1)
		for _, s := range z.rim.segs {
			if d2 := pr.segDist2(s.a, s.b); d2 < best {
				best = d2
				near = nearestOn(&pr, s)
			}
		}
		out := false
		for k := range 64 {
			a := 2 * math.Pi * float64(k) / 64
			out = out || !z.containsXY(step(near, 0.5*math.Cos(a), 0.5*math.Sin(a)))
		}
		require.True(t, out, "point %v, d %g: nearest rim point %v is no boundary", p, d, near)
	}
	require.Greater(t, inside, 50)
}

// nearestOn is the point of s nearest pr's origin.
func nearestOn(pr *projection, s seg) xy {
	ax, ay := (s.a.X-pr.origin.X)*pr.kx, (s.a.Y-pr.origin.Y)*pr.ky
	bx, by := (s.b.X-pr.origin.X)*pr.kx, (s.b.Y-pr.origin.Y)*pr.ky
	dx, dy := bx-ax, by-ay
	t := 0.0
	if l2 := dx*dx + dy*dy; l2 > 0 {
		t = min(max(-(ax*dx+ay*dy)/l2, 0), 1)
	}
	return xy{s.a.X + t*(s.b.X-s.a.X), s.a.Y + t*(s.b.Y-s.a.Y)}
}

// TestSinglePolygonBoundary: a zone of one polygon measures to every edge
// of its rings, holes included, as it always has.
func TestSinglePolygonBoundary(t *testing.T) {
	z := one(t, config.ZoneSpec{GeoJSON: multiJSON([][][2]float64{
		{{112.0, 44.0}, {112.2, 44.0}, {112.2, 44.2}, {112.0, 44.2}, {112.0, 44.0}},
		{{112.05, 44.05}, {112.05, 44.15}, {112.15, 44.15}, {112.15, 44.05}, {112.05, 44.05}},
	})})
	assert.Len(t, z.edges.segs, 8)
	assert.Equal(t, z.edges, z.rim)
}
