package zone

import (
	"math"
	"os"
	"testing"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// FuzzBuild feeds GeoJSON bytes to Build: it must never panic, and a zone
// it accepts must answer sensibly — its Center inside it, DistanceM finite
// and its sign agreeing with Contains, the index finding it at its Center.
func FuzzBuild(f *testing.F) {
	f.Add([]byte(ruinsGeoJSON))
	f.Add([]byte(`{"type":"MultiPolygon","coordinates":[[[[110,41],[110.1,41],[110.1,41.1],[110,41.1],[110,41]]],[[[111,42],[111.1,42],[111.1,42.1],[111,42.1],[111,42]]]]}`))
	f.Add([]byte(`{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,42],[110,41]],[[110.4,41.4],[110.4,41.6],[110.6,41.6],[110.6,41.4],[110.4,41.4]]]}`))
	// Members meeting at a seam, at a T-junction, overlapping, and one
	// filling another's hole: DistanceM then measures to their union.
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[112,44],[112.1,44],[112.1,44.1],[112,44.1],[112,44]]]}},{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[112.1,44],[112.2,44],[112.2,44.1],[112.1,44.1],[112.1,44]]]}}]}`))
	f.Add([]byte(`{"type":"MultiPolygon","coordinates":[[[[112,44],[112.1,44],[112.1,44.1],[112,44.1],[112,44]]],[[[112.1,44.05],[112.2,44.05],[112.2,44.15],[112.1,44.15],[112.1,44.05]]]]}`))
	f.Add([]byte(`{"type":"MultiPolygon","coordinates":[[[[110,41],[110.1,41],[110.1,41.1],[110,41.1],[110,41]]],[[[110.05,41.02],[110.15,41.02],[110.15,41.08],[110.05,41.08],[110.05,41.02]]]]}`))
	f.Add([]byte(`{"type":"MultiPolygon","coordinates":[[[[110,41],[111,41],[111,42],[110,42],[110,41]],[[110.4,41.4],[110.4,41.6],[110.6,41.6],[110.6,41.4],[110.4,41.4]]],[[[110.4,41.4],[110.6,41.4],[110.6,41.6],[110.4,41.6],[110.4,41.4]]]]}`))
	f.Add([]byte(`{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,1],[0,0]]]}}`))
	f.Add([]byte(`{"type":"FeatureCollection","features":[]}`))
	f.Add([]byte(`{"type":"Polygon","coordinates":[[[180,90],[-180,90],[-180,-90],[180,-90],[180,90]]]}`))
	f.Add([]byte(`{"type":"Polygon","coordinates":[[[1e-300,0],[1,1e300]]]}`))
	for _, name := range []string{"testdata/border-strip.geojson", "testdata/ruins-feature.geojson", "testdata/bad-syntax.geojson"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, probs := Build([]config.ZoneSpec{{ID: "f", GeoJSON: data}}, "", "rules.yaml")
		z := ix.Get("f")
		if len(probs) > 0 {
			if z != nil {
				t.Fatalf("zone built despite %v", probs)
			}
			return
		}
		if z == nil {
			t.Fatal("no zone and no problem")
		}
		c := z.Center()
		if !z.Contains(c) {
			t.Fatalf("centre %v outside its zone", c)
		}
		found := false
		ix.Containing(c, func(*Zone) bool { found = true; return true })
		if !found {
			t.Fatalf("Containing misses the zone at its centre %v", c)
		}
		for _, p := range []model.Point{c, aolunsumu, {Lat: c.Lat + 0.001, Lon: c.Lon}, {Lat: 90, Lon: 180}, {Lat: -90, Lon: -180}} {
			d := z.DistanceM(p)
			if math.IsNaN(d) || math.IsInf(d, 0) || (d >= 0) != z.Contains(p) {
				t.Fatalf("DistanceM(%v) = %g, Contains %v", p, d, z.Contains(p))
			}
			ix.Near(p, 100, func(*Zone) bool { return true })
		}
	})
}

// FuzzCircle: a circle that Build accepts contains its centre, the index
// finds it wherever it contains a point, and DistanceM's sign agrees with
// Contains, also a hair from the edge.
func FuzzCircle(f *testing.F) {
	f.Add(42.62, 110.15, 1500.0, 42.6326, 110.15)
	f.Add(85.0, 0.0, 1e6, 88.0, 179.0)
	f.Add(0.0, 179.99, 5000.0, 0.0, -179.99)
	f.Add(-90.0, 0.0, 1.0, -90.0, 45.0)
	f.Fuzz(func(t *testing.T, lat, lon, r, plat, plon float64) {
		ix, probs := Build([]config.ZoneSpec{{ID: "c", Circle: &config.CircleSpec{Lat: lat, Lon: lon, RadiusM: r}}}, "", "rules.yaml")
		z := ix.Get("c")
		if len(probs) > 0 {
			if z != nil {
				t.Fatalf("zone built despite %v", probs)
			}
			return
		}
		if !z.Contains(z.Center()) {
			t.Fatal("centre outside")
		}
		p := model.Point{Lat: plat, Lon: plon}
		if !validPoint(p) {
			return
		}
		in := z.Contains(p)
		if d := z.DistanceM(p); math.IsNaN(d) || (d >= 0) != in {
			t.Fatalf("DistanceM %g, Contains %v", d, in)
		}
		found := false
		ix.Containing(p, func(*Zone) bool { found = true; return false })
		if found != in {
			t.Fatalf("Containing %v, Contains %v", found, in)
		}
	})
}
