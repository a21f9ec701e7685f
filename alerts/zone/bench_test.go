package zone

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// Inner Mongolia, roughly: the benchmark's zones and points fall in it.
const (
	imLatMin, imLatMax = 37.5, 50.0
	imLonMin, imLonMax = 97.5, 126.0
)

// benchZones is 1,000 zones spread over Inner Mongolia: 900 small
// polygons (8 to 60 vertices, 300 m to 3 km across), 10 border strips of
// 5,000 vertices and 30 km, 90 circles of 200 m to 5 km.
func benchZones(tb testing.TB) (*Index, []model.Point) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	at := func() model.Point {
		return model.Point{
			Lat: imLatMin + rng.Float64()*(imLatMax-imLatMin),
			Lon: imLonMin + rng.Float64()*(imLonMax-imLonMin),
		}
	}
	specs := make([]config.ZoneSpec, 0, 1000)
	for i := range 1000 {
		spec := config.ZoneSpec{ID: fmt.Sprintf("z%04d", i), Site: "mdl"}
		c := at()
		switch {
		case i%100 == 0:
			spec.GeoJSON = polygonJSON(jaggedRing(c, 30_000, 5000, uint64(i)))
		case i%10 == 5:
			spec.Circle = &config.CircleSpec{Lat: c.Lat, Lon: c.Lon, RadiusM: 200 + rng.Float64()*4800}
		default:
			spec.GeoJSON = polygonJSON(jaggedRing(c, 150+rng.Float64()*1350, 8+rng.IntN(53), uint64(i)))
		}
		specs = append(specs, spec)
	}
	ix, probs := Build(specs, "", "rules.yaml")
	if len(probs) > 0 {
		tb.Fatal(probs)
	}
	// Half the points at zones (as fence units are), half anywhere.
	pts := make([]model.Point, 4096)
	for i := range pts {
		if i%2 == 0 {
			z := ix.zones[rng.IntN(len(ix.zones))]
			c := z.Center()
			pts[i] = east(north(c, (rng.Float64()-0.5)*2000), (rng.Float64()-0.5)*2000)
		} else {
			pts[i] = at()
		}
	}
	return ix, pts
}

func BenchmarkContaining(b *testing.B) {
	ix, pts := benchZones(b)
	n := 0
	count := func(*Zone) bool { n++; return true }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ix.Containing(pts[i&(len(pts)-1)], count)
	}
	b.ReportMetric(float64(n)/float64(b.N), "zones/op")
}

func BenchmarkNear(b *testing.B) {
	ix, pts := benchZones(b)
	count := func(*Zone) bool { return true }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ix.Near(pts[i&(len(pts)-1)], 100, count)
	}
}

// BenchmarkContains5000 is the point-in-polygon test alone on a
// 5,000-vertex polygon, with points inside its bounding box.
func BenchmarkContains5000(b *testing.B) {
	z := one(b, config.ZoneSpec{GeoJSON: polygonJSON(jaggedRing(aolunsumu, 30_000, 5000, 1))})
	rng := rand.New(rand.NewPCG(1, 1))
	pts := make([]model.Point, 1024)
	for i := range pts {
		pts[i] = east(north(aolunsumu, (rng.Float64()-0.5)*80_000), (rng.Float64()-0.5)*80_000)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		z.Contains(pts[i&(len(pts)-1)])
	}
}

// BenchmarkDistanceM5000 measures DistanceM on a 5,000-vertex polygon
// for points within 1 km of its boundary, where the hysteresis rules ask
// (Near picks the zones whose box, grown by hysteresis_m, holds the
// point), and for points anywhere within 40 km.
func BenchmarkDistanceM5000(b *testing.B) {
	ring := jaggedRing(aolunsumu, 30_000, 5000, 1)
	z := one(b, config.ZoneSpec{GeoJSON: polygonJSON(ring)})
	rng := rand.New(rand.NewPCG(1, 1))
	near := make([]model.Point, 1024)
	for i := range near {
		v := ring[rng.IntN(len(ring))]
		near[i] = east(north(model.Point{Lat: v[1], Lon: v[0]}, (rng.Float64()-0.5)*2000), (rng.Float64()-0.5)*2000)
	}
	far := make([]model.Point, 1024)
	for i := range far {
		far[i] = east(north(aolunsumu, (rng.Float64()-0.5)*80_000), (rng.Float64()-0.5)*80_000)
	}
	for _, bc := range []struct {
		name string
		pts  []model.Point
	}{{"near-boundary", near}, {"anywhere", far}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				z.DistanceM(bc.pts[i&(len(bc.pts)-1)])
			}
		})
	}
}

func BenchmarkContainsCircle(b *testing.B) {
	z := one(b, config.ZoneSpec{Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: 1500}})
	p := north(manduhla, 1400)
	b.ReportAllocs()
	for b.Loop() {
		z.Contains(p)
	}
}

func BenchmarkBuild5000(b *testing.B) {
	specs := []config.ZoneSpec{{ID: "strip", GeoJSON: polygonJSON(jaggedRing(aolunsumu, 30_000, 5000, 1))}}
	b.ReportAllocs()
	for b.Loop() {
		Build(specs, "", "rules.yaml")
	}
}

// BenchmarkBuildMulti is the build of zones of several polygons, where it
// finds the boundary of their union: a 10,000-vertex jagged ring cut in
// two 5,000-vertex halves, two 5,000-vertex rings overlapping by half,
// and a 30 km strip drawn as 100 segments of 50 vertices.
func BenchmarkBuildMulti(b *testing.B) {
	r := jaggedRing(aolunsumu, 30_000, 10_000, 1)
	cut := halves(r, north(aolunsumu, 300))
	for _, bc := range []struct{ name, geojson string }{
		{"halves", multiJSON(cut[0], cut[1])},
		{"overlapping", multiJSON(
			[][][2]float64{jaggedRing(aolunsumu, 30_000, 5000, 1)},
			[][][2]float64{jaggedRing(east(aolunsumu, 30_000), 30_000, 5000, 2)})},
		{"strip-of-100", stripJSON(aolunsumu, 30_000, 100, 50)},
	} {
		specs := []config.ZoneSpec{{ID: "z", GeoJSON: bc.geojson}}
		if _, probs := Build(specs, "", "rules.yaml"); len(probs) > 0 {
			b.Fatal(probs)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Build(specs, "", "rules.yaml")
			}
		})
	}
}

// stripJSON is an east–west strip of length m metres from c, drawn as n
// adjacent members of k vertices each, with wavy north and south edges;
// each member's east edge has a vertex halfway that its neighbour's west
// edge lacks.
func stripJSON(c model.Point, m float64, n, k int) string {
	w := m / (mPerDegLat * math.Cos(c.Lat*math.Pi/180)) / float64(n)
	edge := func(lon, lat float64) [2]float64 {
		return [2]float64{lon, lat + 0.002*math.Sin(lon*900)}
	}
	polys := make([][][][2]float64, n)
	side := (k - 3) / 2 // positions along each of the north and south edges
	for i := range polys {
		x0 := c.Lon + float64(i)*w
		var ring [][2]float64
		for j := range side {
			ring = append(ring, edge(x0+w*float64(j)/float64(side), c.Lat))
		}
		s, nn := edge(x0+w, c.Lat), edge(x0+w, c.Lat+0.02)
		ring = append(ring, s, [2]float64{s[0], (s[1] + nn[1]) / 2})
		for j := range side {
			ring = append(ring, edge(x0+w*float64(side-j)/float64(side), c.Lat+0.02))
		}
		ring = append(ring, edge(x0, c.Lat+0.02), ring[0])
		polys[i] = [][][2]float64{ring}
	}
	return multiJSON(polys...)
}
