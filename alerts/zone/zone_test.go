package zone

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// Facts of the contract.
var (
	aolunsumu   = model.Point{Lat: 41.960, Lon: 110.486}
	bailingmiao = model.Point{Lat: 41.703, Lon: 110.435}
	manduhla    = model.Point{Lat: 42.62, Lon: 110.15}
	baotou      = model.Point{Lat: 40.656, Lon: 109.835}
)

const ruinsGeoJSON = `{"type":"Polygon","coordinates":[[[110.478,41.955],[110.495,41.955],[110.495,41.967],[110.478,41.967],[110.478,41.955]]]}`

// north returns p moved m metres north (south when negative).
func north(p model.Point, m float64) model.Point {
	return model.Point{Lat: p.Lat + m/mPerDegLat, Lon: p.Lon}
}

// east returns p moved m metres east.
func east(p model.Point, m float64) model.Point {
	return model.Point{Lat: p.Lat, Lon: p.Lon + m/(mPerDegLat*math.Cos(p.Lat*math.Pi/180))}
}

func build(t testing.TB, specs ...config.ZoneSpec) *Index {
	t.Helper()
	ix, probs := Build(specs, "testdata", "rules.yaml")
	require.Empty(t, probs)
	require.Equal(t, len(specs), ix.Len())
	return ix
}

func one(t testing.TB, spec config.ZoneSpec) *Zone {
	t.Helper()
	if spec.ID == "" {
		spec.ID = "z"
	}
	z := build(t, spec).Get(spec.ID)
	require.NotNil(t, z)
	return z
}

func TestContains(t *testing.T) {
	ruins := one(t, config.ZoneSpec{ID: "aolunsumu-ruins", GeoJSON: ruinsGeoJSON})
	// A 1°×1° square with a hole from 110.4 to 110.6 E, 41.4 to 41.6 N.
	holed := one(t, config.ZoneSpec{GeoJSON: `{"type":"Polygon","coordinates":[
		[[110,41],[111,41],[111,42],[110,42],[110,41]],
		[[110.4,41.4],[110.4,41.6],[110.6,41.6],[110.6,41.4],[110.4,41.4]]]}`})
	multi := one(t, config.ZoneSpec{GeoJSON: `{"type":"MultiPolygon","coordinates":[
		[[[110,41],[110.1,41],[110.1,41.1],[110,41.1],[110,41]]],
		[[[111,42],[111.1,42],[111.1,42.1],[111,42.1],[111,42]]]]}`})
	// A C open to the east: its centroid lies in the gap.
	cshape := one(t, config.ZoneSpec{GeoJSON: `{"type":"Polygon","coordinates":[[
		[110,41],[111,41],[111,41.2],[110.2,41.2],[110.2,41.8],[111,41.8],[111,42],[110,42],[110,41]]]}`})
	port := one(t, config.ZoneSpec{ID: "mdl-port", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: 1500}})

	tests := []struct {
		name string
		z    *Zone
		p    model.Point
		want bool
	}{
		{"ruins: Aolunsumu ancient city inside", ruins, aolunsumu, true},
		{"ruins: Bailingmiao outside", ruins, bailingmiao, false},
		{"ruins: Baotou outside", ruins, baotou, false},
		{"ruins: on the south edge", ruins, model.Point{Lat: 41.955, Lon: 110.486}, true},
		{"ruins: on the east edge", ruins, model.Point{Lat: 41.96, Lon: 110.495}, true},
		{"ruins: on the south-west vertex", ruins, model.Point{Lat: 41.955, Lon: 110.478}, true},
		{"ruins: on the north-east vertex", ruins, model.Point{Lat: 41.967, Lon: 110.495}, true},
		{"ruins: just south of the edge", ruins, model.Point{Lat: 41.9549, Lon: 110.486}, false},
		{"ruins: just east of the vertex", ruins, model.Point{Lat: 41.967, Lon: 110.4951}, false},
		{"ruins: level with the edge, beyond it", ruins, model.Point{Lat: 41.955, Lon: 110.5}, false},
		{"ruins: NaN", ruins, model.Point{Lat: math.NaN(), Lon: 110.486}, false},
		{"hole: in the ring", holed, model.Point{Lat: 41.2, Lon: 110.2}, true},
		{"hole: in the hole", holed, model.Point{Lat: 41.5, Lon: 110.5}, false},
		{"hole: on the hole's edge counts as inside", holed, model.Point{Lat: 41.5, Lon: 110.4}, true},
		{"hole: on the hole's vertex", holed, model.Point{Lat: 41.6, Lon: 110.6}, true},
		{"hole: outside", holed, model.Point{Lat: 42.5, Lon: 110.5}, false},
		{"multi: first part", multi, model.Point{Lat: 41.05, Lon: 110.05}, true},
		{"multi: second part", multi, model.Point{Lat: 42.05, Lon: 111.05}, true},
		{"multi: between the parts (inside the combined box)", multi, model.Point{Lat: 41.5, Lon: 110.5}, false},
		{"c-shape: in the gap", cshape, model.Point{Lat: 41.5, Lon: 110.6}, false},
		{"c-shape: in the spine", cshape, model.Point{Lat: 41.5, Lon: 110.1}, true},
		{"circle: centre", port, manduhla, true},
		{"circle: 1.4 km north", port, north(manduhla, 1400), true},
		{"circle: 1.6 km north", port, north(manduhla, 1600), false},
		{"circle: 1.4 km east", port, east(manduhla, 1400), true},
		{"circle: 1.6 km east", port, east(manduhla, 1600), false},
		{"circle: 1.4 km south-west", port, east(north(manduhla, -990), -990), true},
		{"circle: Baotou", port, baotou, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.z.Contains(tt.p))
		})
	}
}

func TestDistanceM(t *testing.T) {
	ruins := one(t, config.ZoneSpec{ID: "aolunsumu-ruins", GeoJSON: ruinsGeoJSON})
	holed := one(t, config.ZoneSpec{GeoJSON: `{"type":"Polygon","coordinates":[
		[[110,41],[111,41],[111,42],[110,42],[110,41]],
		[[110.4,41.4],[110.4,41.6],[110.6,41.6],[110.6,41.4],[110.4,41.4]]]}`})
	port := one(t, config.ZoneSpec{Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: 1500}})
	northEdge := model.Point{Lat: 41.967, Lon: 110.486}
	// The ruins box is 0.017° wide: 110.486 is 667 m from its west edge
	// and 745 m from its east edge, 555 m from its south edge.
	tests := []struct {
		name string
		z    *Zone
		p    model.Point
		want float64
		tol  float64
	}{
		{"100 m north of the north edge", ruins, north(northEdge, 100), -100, 1},
		{"100 m inside the north edge", ruins, north(northEdge, -100), 100, 1},
		{"on the north edge", ruins, northEdge, 0, 0.01},
		{"1 km north of the north edge", ruins, north(northEdge, 1000), -1000, 1},
		{"diagonally off the north-east vertex", ruins, east(north(model.Point{Lat: 41.967, Lon: 110.495}, 300), 400), -500, 1},
		{"Aolunsumu, nearest the south edge", ruins, aolunsumu, 556, 2},
		{"Bailingmiao, 28 km south", ruins, bailingmiao, -28_000, 400},
		{"in the hole, 100 m from its west edge", holed, east(model.Point{Lat: 41.5, Lon: 110.4}, 100), -100, 1},
		{"in the ring, 100 m west of the hole", holed, east(model.Point{Lat: 41.5, Lon: 110.4}, -100), 100, 1},
		{"circle: 1.4 km from the centre", port, north(manduhla, 1400), 100, 0.5},
		{"circle: 1.6 km from the centre", port, north(manduhla, 1600), -100, 0.5},
		{"circle: centre", port, manduhla, 1500, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.InDelta(t, tt.want, tt.z.DistanceM(tt.p), tt.tol)
		})
	}
	t.Run("invalid point is infinitely far outside", func(t *testing.T) {
		assert.True(t, math.IsInf(ruins.DistanceM(model.Point{Lat: math.NaN()}), -1))
		assert.True(t, math.IsInf(port.DistanceM(model.Point{Lat: 91}), -1))
	})
}

// TestDistanceMIndexed checks the growing-box search against a plain scan of
// every segment, on a 5,000-vertex polygon whose segment index is in use.
func TestDistanceMIndexed(t *testing.T) {
	ring := jaggedRing(aolunsumu, 20_000, 5000, 1)
	z := one(t, config.ZoneSpec{GeoJSON: polygonJSON(ring)})
	for i := range 400 {
		// Points from the centre out to 60 km, all around.
		a := float64(i) * 2.399963 // golden angle
		r := float64(i) * 150
		p := east(north(aolunsumu, r*math.Sin(a)), r*math.Cos(a))
		pr := newProjection(p)
		brute := math.Inf(1)
		for _, pg := range z.polys {
			pts := pg.outer.pts
			for j := 0; j+1 < len(pts); j++ {
				brute = min(brute, pr.segDistM(pts[j], pts[j+1]))
			}
		}
		got := z.DistanceM(p)
		require.InDelta(t, brute, math.Abs(got), 1e-6, "point %d %v", i, p)
		require.Equal(t, z.Contains(p), got >= 0, "point %d %v", i, p)
	}
}

func TestCenter(t *testing.T) {
	tests := []struct {
		name string
		spec config.ZoneSpec
		want model.Point
	}{
		{"circle: its centre", config.ZoneSpec{Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: 1500}}, manduhla},
		{"square: its centroid", config.ZoneSpec{GeoJSON: ruinsGeoJSON}, model.Point{Lat: 41.961, Lon: 110.4865}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := one(t, tt.spec).Center()
			assert.InDelta(t, tt.want.Lat, c.Lat, 1e-9)
			assert.InDelta(t, tt.want.Lon, c.Lon, 1e-9)
		})
	}
	t.Run("C-shape: inside although its centroid is not", func(t *testing.T) {
		z := one(t, config.ZoneSpec{GeoJSON: `{"type":"Polygon","coordinates":[[
			[110,41],[111,41],[111,41.2],[110.2,41.2],[110.2,41.8],[111,41.8],[111,42],[110,42],[110,41]]]}`})
		assert.True(t, z.Contains(z.Center()), "%v", z.Center())
	})
	t.Run("MultiPolygon: inside the largest part", func(t *testing.T) {
		z := one(t, config.ZoneSpec{GeoJSON: `{"type":"MultiPolygon","coordinates":[
			[[[110,41],[110.1,41],[110.1,41.1],[110,41.1],[110,41]]],
			[[[111,42],[111.5,42],[111.5,42.5],[111,42.5],[111,42]]]]}`})
		assert.InDelta(t, 42.25, z.Center().Lat, 1e-9)
		assert.InDelta(t, 111.25, z.Center().Lon, 1e-9)
	})
	t.Run("jagged polygons: always inside", func(t *testing.T) {
		for seed := range uint64(50) {
			z := one(t, config.ZoneSpec{GeoJSON: polygonJSON(jaggedRing(aolunsumu, 3000, 40, seed))})
			assert.True(t, z.Contains(z.Center()), "seed %d: %v", seed, z.Center())
		}
	})
}

func TestFiles(t *testing.T) {
	ix := build(t,
		config.ZoneSpec{ID: "aolunsumu-ruins", Site: "mdl", Name: "Aolunsumu ancient city", Units: []string{"station-mdl"}, File: "ruins-feature.geojson"},
		config.ZoneSpec{ID: "border-strip", Site: "mdl", File: "border-strip.geojson"},
	)
	ruins := ix.Get("aolunsumu-ruins")
	require.NotNil(t, ruins)
	assert.Equal(t, "mdl", ruins.Site)
	assert.Equal(t, "Aolunsumu ancient city", ruins.Name)
	assert.Equal(t, []string{"station-mdl"}, ruins.Units)
	strip := ix.Get("border-strip")
	require.NotNil(t, strip)

	tests := []struct {
		name string
		z    *Zone
		p    model.Point
		want bool
	}{
		{"Feature: Aolunsumu inside", ruins, aolunsumu, true},
		{"Feature: Bailingmiao outside", ruins, bailingmiao, false},
		{"FeatureCollection: Polygon feature", strip, model.Point{Lat: 42.65, Lon: 109.8}, true},
		{"FeatureCollection: MultiPolygon feature, first part", strip, model.Point{Lat: 42.66, Lon: 110.5}, true},
		{"FeatureCollection: MultiPolygon feature, second part", strip, model.Point{Lat: 42.7, Lon: 111.2}, true},
		{"FeatureCollection: Manduhla port, in the gap", strip, manduhla, false},
		{"FeatureCollection: between the parts", strip, model.Point{Lat: 42.7, Lon: 110.85}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.z.Contains(tt.p))
		})
	}

	t.Run("absolute path", func(t *testing.T) {
		abs, err := filepath.Abs("testdata/ruins-feature.geojson")
		require.NoError(t, err)
		ix, probs := Build([]config.ZoneSpec{{ID: "r", File: abs}}, "/nonexistent", "rules.yaml")
		require.Empty(t, probs)
		assert.True(t, ix.Get("r").Contains(aolunsumu))
	})

	t.Run("byte-order mark", func(t *testing.T) {
		data, err := os.ReadFile("testdata/ruins-feature.geojson")
		require.NoError(t, err)
		p := filepath.Join(t.TempDir(), "bom.geojson")
		require.NoError(t, os.WriteFile(p, append([]byte("\uFEFF"), data...), 0o600))
		ix, probs := Build([]config.ZoneSpec{{ID: "r", File: p}}, "/nonexistent", "rules.yaml")
		require.Empty(t, probs)
		assert.True(t, ix.Get("r").Contains(aolunsumu))
	})
}

// TestYAML decodes the contract's zones as the rules loader does, so that
// inline GeoJSON arrives as YAML maps with int and float64 numbers.
func TestYAML(t *testing.T) {
	const rules = `
zones:
  - {id: aolunsumu-ruins, site: mdl, name: "Aolunsumu ancient city", units: [station-mdl],
     geojson: {"type":"Polygon","coordinates":[[[110.478,41.955],[110.495,41.955],[110.495,41.967],[110.478,41.967],[110.478,41.955]]]}}
  - {id: border-strip, site: mdl, file: border-strip.geojson}
  - {id: mdl-port, site: mdl, circle: {lat: 42.62, lon: 110.15, radius_m: 1500}}
  - id: whole-degrees
    geojson:
      type: Polygon
      coordinates:
        - [[110, 41], [111, 41], [111, 42], [110, 42], [110, 41]]
  - id: block-scalar
    geojson: |
      {"type": "Feature", "geometry": {"type": "Polygon",
        "coordinates": [[[110, 41], [111, 41], [111, 42], [110, 42], [110, 41]]]}}
`
	var r config.Rules
	require.NoError(t, yaml.Unmarshal([]byte(rules), &r))
	ix := build(t, r.Zones...)

	var got []string
	ix.Containing(aolunsumu, func(z *Zone) bool {
		got = append(got, z.ID)
		return true
	})
	assert.ElementsMatch(t, []string{"aolunsumu-ruins", "whole-degrees", "block-scalar"}, got)
	assert.True(t, ix.Get("mdl-port").Contains(north(manduhla, 1400)))
	assert.True(t, ix.Get("border-strip").Contains(model.Point{Lat: 42.65, Lon: 109.8}))
}

func TestInlineMapAnyKeys(t *testing.T) {
	// yaml.v2 and some YAML paths give map[any]any; ints stand for degrees.
	spec := config.ZoneSpec{ID: "z", GeoJSON: map[any]any{
		"type": "Polygon",
		"coordinates": []any{[]any{
			[]any{110, 41}, []any{111, 41}, []any{111.0, 42}, []any{110, 42}, []any{110, 41},
		}},
	}}
	z := one(t, spec)
	assert.True(t, z.Contains(model.Point{Lat: 41.5, Lon: 110.5}))
}

// Shapes the validity checks must let through: what GIS exports are full
// of, and what a polygon may do.
func TestBuildValidShapes(t *testing.T) {
	for _, tc := range []struct{ name, geojson string }{
		{"repeated positions", `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,41],[111,42],[110,42],[110,42],[110,41]]]}`},
		{"a hole touching the outer ring at a point", `{"type":"Polygon","coordinates":[[[110,41],[112,41],[112,43],[110,43],[110,41]],[[110,42],[111,41.5],[111,42.5],[110,42]]]}`},
		{"two holes", `{"type":"Polygon","coordinates":[[[110,41],[112,41],[112,43],[110,43],[110,41]],[[110.2,41.2],[110.8,41.2],[110.8,41.8],[110.2,41.8],[110.2,41.2]],[[111.2,42.2],[111.8,42.2],[111.8,42.8],[111.2,42.8],[111.2,42.2]]]}`},
		{"a MultiPolygon meeting at the antimeridian", `{"type":"MultiPolygon","coordinates":[[[[179,41],[180,41],[180,42],[179,42],[179,41]]],[[[-180,41],[-179,41],[-179,42],[-180,42],[-180,41]]]]}`},
		{"a concave ring", `{"type":"Polygon","coordinates":[[[110,41],[112,41],[112,43],[111,42],[110,43],[110,41]]]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, probs := Build([]config.ZoneSpec{{ID: "z", GeoJSON: tc.geojson}}, "testdata", "rules.yaml")
			require.Empty(t, probs)
		})
	}
}

func TestBuildProblems(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "dir.geojson")
	require.NoError(t, os.Mkdir(unreadable, 0o755))
	fifo := filepath.Join(dir, "fifo.geojson")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	tests := []struct {
		name string
		spec config.ZoneSpec
		key  string
		msg  string
	}{
		{"missing id", config.ZoneSpec{GeoJSON: ruinsGeoJSON}, "zones[1].id", "missing zone id"},
		{"duplicate id", config.ZoneSpec{ID: "first", GeoJSON: ruinsGeoJSON}, "zones[1].id", `duplicate zone id "first" (first at zones[0])`},
		{"no geometry", config.ZoneSpec{ID: "z"}, "zones[1]", "needs one of geojson, file or circle"},
		{"geojson and circle", config.ZoneSpec{ID: "z", GeoJSON: ruinsGeoJSON, Circle: &config.CircleSpec{Lat: 42, Lon: 110, RadiusM: 10}}, "zones[1]", "geojson and circle: give exactly one"},
		{"geojson and file", config.ZoneSpec{ID: "z", GeoJSON: ruinsGeoJSON, File: "x.geojson"}, "zones[1]", "geojson and file"},
		{"all three", config.ZoneSpec{ID: "z", GeoJSON: ruinsGeoJSON, File: "x", Circle: &config.CircleSpec{}}, "zones[1]", "geojson and file and circle"},
		{"missing file, named where it was looked for", config.ZoneSpec{ID: "z", File: "nope.geojson"}, "zones[1].file", "cannot read zone file testdata/nope.geojson: cannot open: "},
		{"unreadable file", config.ZoneSpec{ID: "z", File: unreadable}, "zones[1].file", "cannot read zone file"},
		{"a FIFO for a file (opening it would wait for a writer)", config.ZoneSpec{ID: "z", File: fifo}, "zones[1].file", "is not a regular file"},
		{"a device for a file", config.ZoneSpec{ID: "z", File: "/dev/zero"}, "zones[1].file", "cannot read zone file /dev/zero: is not a regular file"},
		{"file with bad JSON", config.ZoneSpec{ID: "z", File: "bad-syntax.geojson"}, "zones[1].file", "bad-syntax.geojson: invalid GeoJSON: line 3: invalid character"},
		{"file with a Point", config.ZoneSpec{ID: "z", File: "point.geojson"}, "zones[1].file", `point.geojson: geometry.type: GeoJSON type "Point" is not supported`},
		{"bad JSON", config.ZoneSpec{ID: "z", GeoJSON: `{"type":`}, "zones[1].geojson", "invalid GeoJSON"},
		{"not an object", config.ZoneSpec{ID: "z", GeoJSON: `[1,2]`}, "zones[1].geojson", "invalid GeoJSON: a JSON array where a GeoJSON object"},
		{"a number", config.ZoneSpec{ID: "z", GeoJSON: 42}, "zones[1].geojson", "a JSON number where a GeoJSON object"},
		{"a string that is no JSON", config.ZoneSpec{ID: "z", GeoJSON: "not a map"}, "zones[1].geojson", "a string that is no GeoJSON object"},
		{"type of the wrong type", config.ZoneSpec{ID: "z", GeoJSON: `{"type":7}`}, "zones[1].geojson", "type: a JSON number, want string"},
		{"null", config.ZoneSpec{ID: "z", GeoJSON: `null`}, "zones[1].geojson", "missing GeoJSON object"},
		{"no type", config.ZoneSpec{ID: "z", GeoJSON: `{"coordinates":[]}`}, "zones[1].geojson.type", "missing GeoJSON type"},
		{"Point", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Point","coordinates":[110,41]}`}, "zones[1].geojson.type", `GeoJSON type "Point" is not supported`},
		{"LineString", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"LineString","coordinates":[[110,41],[111,41]]}`}, "zones[1].geojson.type", `"LineString" is not supported`},
		{"GeometryCollection", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"GeometryCollection","geometries":[]}`}, "zones[1].geojson.type", `"GeometryCollection" is not supported`},
		{"no coordinates", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon"}`}, "zones[1].geojson.coordinates", "missing coordinates"},
		{"coordinates of the wrong shape", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[110,41],[111,41]]}`}, "zones[1].geojson.coordinates", "invalid coordinates"},
		{"string coordinate", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[["110","41"]]]}`}, "zones[1].geojson.coordinates", "invalid coordinates"},
		{"no rings", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[]}`}, "zones[1].geojson.coordinates", "polygon has no rings"},
		{"unclosed ring", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,42]]]}`}, "zones[1].geojson.coordinates[0]", "ring is not closed"},
		{"three positions", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[110,41]]]}`}, "zones[1].geojson.coordinates[0]", "ring has 3 positions, a closed ring needs at least 4"},
		{"bad hole", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,42],[110,41]],[[110.4,41.4],[110.5,41.5]]]}`}, "zones[1].geojson.coordinates[1]", "ring has 2 positions"},
		{"one number", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111],[111,42],[110,41]]]}`}, "zones[1].geojson.coordinates[0][1]", "position needs [lon, lat], got 1 numbers"},
		{"latitude out of range", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,91],[111,42],[110,41]]]}`}, "zones[1].geojson.coordinates[0][1]", "position [111, 91] out of range"},
		{"an id with a line break (it goes into alerts)", config.ZoneSpec{ID: "evil\nzone", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,41]]]}`}, "zones[1].id", "must be one line (it goes into alerts): it holds a line break at byte 4"},
		{"an id with a right-to-left override", config.ZoneSpec{ID: "ruins\u202egate", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,41]]]}`}, "zones[1].id", "it holds the invisible formatting character U+202E at byte 5"},
		{"an id with a backslash (no InfluxDB tag)", config.ZoneSpec{ID: `gate\ \="A`, GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,41]]]}`}, "zones[1].id", `zone id "gate\\ \\=\"A" holds a backslash, which the alert measurement's zone tag cannot store`},
		{"an id with spaces around it", config.ZoneSpec{ID: " ruins", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,41]]]}`}, "zones[1].id", "has spaces around it"},
		{"an id with an escape", config.ZoneSpec{ID: "zone\x1b[31m", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,41]]]}`}, "zones[1].id", "it holds the control character U+001B at byte 4"},
		{"a null latitude (not 0: the zone would reach down to the equator)", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[110.1,null],[110.2,41],[110.1,41.1],[110,41]]]}`}, "zones[1].geojson.coordinates[0][1]", "position [110.1, null] holds null, want [lon, lat] numbers"},
		{"a null longitude", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"MultiPolygon","coordinates":[[[[110,41],[111,41],[null,42],[110,41]]]]}`}, "zones[1].geojson.coordinates[0][0][2]", "position [null, 42] holds null"},
		{"longitude out of range", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[181,41],[111,42],[110,41]]]}`}, "zones[1].geojson.coordinates[0][1]", "out of range"},
		{"lat and lon swapped", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[41,110],[41,111],[42,111],[41,110]]]}`}, "zones[1].geojson.coordinates[0][0]", "GeoJSON is [lon, lat]"},
		{"no area", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[112,41],[110,41]]]}`}, "zones[1].geojson.coordinates[0]", "ring has no area"},
		{"bow-tie", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,42],[111,41],[110,42],[110,41]]]}`}, "zones[1].geojson.coordinates[0]", "or a ring crossing itself"},
		{"ring crossing itself", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[112,42],[112,41],[110,41.5],[110,41]]]}`}, "zones[1].geojson.coordinates[0]", "the ring crosses itself: edge 2 ([112, 41] to [110, 41.5]) crosses edge 0 of ring 0"},
		{"ring through a point of its own edge", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[112,43],[112,41],[110.5,41.5],[110,41.5],[110,41]]]}`}, "zones[1].geojson.coordinates[0]", "the ring touches itself"},
		{"ring through its own vertex (a figure 8)", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[112,42],[112,43],[111,43],[111,42],[110,42],[110,41]]]}`}, "zones[1].geojson.coordinates[0]", "the ring touches itself"},
		{"across the antimeridian", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[179,41],[-179,41],[-179,42],[179,42],[179,41]]]}`}, "zones[1].geojson.coordinates[0][0]", "spans more than 180° of longitude: a zone across the antimeridian must be cut"},
		{"hole crossing the outer ring", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,42],[110,41]],[[110.5,41.5],[111.5,41.5],[111.5,41.6],[110.5,41.6],[110.5,41.5]]]}`}, "zones[1].geojson.coordinates[1]", "a hole crosses the outer ring"},
		{"hole outside the outer ring", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,42],[110,41]],[[112,41],[113,41],[113,42],[112,42],[112,41]]]}`}, "zones[1].geojson.coordinates[1]", "the hole lies outside the polygon's outer ring"},
		{"holes crossing each other", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[112,41],[112,43],[110,43],[110,41]],[[110.5,41.5],[111.5,41.5],[111.5,42],[110.5,42],[110.5,41.5]],[[111,41.8],[111.8,41.8],[111.8,42.5],[111,42.5],[111,41.8]]]}`}, "zones[1].geojson.coordinates[2]", "two holes cross each other"},
		{"empty MultiPolygon", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"MultiPolygon","coordinates":[]}`}, "zones[1].geojson.coordinates", "MultiPolygon has no polygons"},
		{"bad part of a MultiPolygon", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"MultiPolygon","coordinates":[[[[110,41],[111,41],[111,42],[110,42],[110,41]]],[[[110,41],[111,41],[111,42],[110,42]]]]}`}, "zones[1].geojson.coordinates[1][0]", "ring is not closed"},
		{"Feature without geometry", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Feature","properties":{}}`}, "zones[1].geojson.geometry", "missing GeoJSON object"},
		{"Feature of a Feature", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"Feature","geometry":{"type":"Feature"}}`}, "zones[1].geojson.geometry.type", "a Feature cannot be a geometry"},
		{"empty FeatureCollection", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"FeatureCollection","features":[]}`}, "zones[1].geojson.features", "FeatureCollection has no features"},
		{"FeatureCollection of a Polygon", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"FeatureCollection","features":[` + ruinsGeoJSON + `]}`}, "zones[1].geojson.features[0].type", `members must be Features, not "Polygon"`},
		{"FeatureCollection with a bad feature", config.ZoneSpec{ID: "z", GeoJSON: `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":` + ruinsGeoJSON + `},{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]}}]}`}, "zones[1].geojson.features[1].geometry.type", `"Point" is not supported`},
		{"YAML NaN", config.ZoneSpec{ID: "z", GeoJSON: map[string]any{"type": "Polygon", "coordinates": []any{[]any{[]any{math.NaN(), 41.0}}}}}, "zones[1].geojson", "cannot convert to GeoJSON"},
		{"YAML non-string key", config.ZoneSpec{ID: "z", GeoJSON: map[any]any{1: "Polygon"}}, "zones[1].geojson", "GeoJSON keys are strings, got 1"},
		{"a radius wider than the Earth", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: 1e12}}, "zones[1].circle.radius_m", "radius_m 1e+12 is more than half the Earth's circumference (2.0015e+07 m): is it in metres?"},
		{"zero radius", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15}}, "zones[1].circle.radius_m", "radius_m must be a positive number of metres, got 0"},
		{"negative radius", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: -5}}, "zones[1].circle.radius_m", "got -5"},
		{"NaN radius", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: math.NaN()}}, "zones[1].circle.radius_m", "got NaN"},
		{"infinite radius", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: math.Inf(1)}}, "zones[1].circle.radius_m", "got +Inf"},
		{"circle latitude", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 142.62, Lon: 110.15, RadiusM: 10}}, "zones[1].circle.lat", "latitude 142.62 out of range"},
		{"circle longitude", config.ZoneSpec{ID: "z", Circle: &config.CircleSpec{Lat: 42.62, Lon: -210.15, RadiusM: 10}}, "zones[1].circle.lon", "longitude -210.15 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs := []config.ZoneSpec{{ID: "first", GeoJSON: ruinsGeoJSON}, tt.spec}
			ix, probs := Build(specs, "testdata", "rules.yaml")
			require.Len(t, probs, 1, "%v", probs)
			assert.Equal(t, "rules.yaml", probs[0].File)
			assert.Equal(t, tt.key, probs[0].Key)
			assert.Contains(t, probs[0].Msg, tt.msg)
			assert.Contains(t, probs.Error(), "rules.yaml: "+tt.key+": ")
			// The good zone is still compiled; the bad one is left out.
			assert.Equal(t, 1, ix.Len())
			assert.NotNil(t, ix.Get("first"))
		})
	}

	t.Run("every problem is reported", func(t *testing.T) {
		specs := []config.ZoneSpec{
			{ID: "a", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42],[110,42]],[[110,91],[110,41],[111,42],[110,41]]]}`},
			{ID: "a", Circle: &config.CircleSpec{Lat: 91, Lon: 181}},
			{},
		}
		_, probs := Build(specs, "testdata", "rules.yaml")
		var keys []string
		for _, p := range probs {
			keys = append(keys, p.Key)
		}
		assert.Equal(t, []string{
			"zones[0].geojson.coordinates[0]",
			"zones[0].geojson.coordinates[1][0]",
			"zones[1].id",
			"zones[1].circle.lat",
			"zones[1].circle.lon",
			"zones[1].circle.radius_m",
			"zones[2].id",
			"zones[2]",
		}, keys)
	})
}

func TestIndex(t *testing.T) {
	ix := build(t,
		config.ZoneSpec{ID: "aolunsumu-ruins", GeoJSON: ruinsGeoJSON},
		config.ZoneSpec{ID: "banner", GeoJSON: `{"type":"Polygon","coordinates":[[[110,41],[111,41],[111,42.5],[110,42.5],[110,41]]]}`},
		config.ZoneSpec{ID: "mdl-port", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: 1500}},
		config.ZoneSpec{ID: "ruins-buffer", Circle: &config.CircleSpec{Lat: 41.960, Lon: 110.486, RadiusM: 3000}},
	)
	collect := func(f func(model.Point, func(*Zone) bool), p model.Point) []string {
		var ids []string
		f(p, func(z *Zone) bool {
			ids = append(ids, z.ID)
			return true
		})
		return ids
	}
	containing := func(p model.Point) []string { return collect(ix.Containing, p) }
	near := func(m float64) func(model.Point, func(*Zone) bool) {
		return func(p model.Point, fn func(*Zone) bool) { ix.Near(p, m, fn) }
	}

	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"Containing: Aolunsumu is in three zones", containing(aolunsumu), []string{"aolunsumu-ruins", "banner", "ruins-buffer"}},
		{"Containing: Bailingmiao", containing(bailingmiao), []string{"banner"}},
		{"Containing: Manduhla port", containing(manduhla), []string{"mdl-port"}},
		{"Containing: 1.6 km from the port", containing(north(manduhla, 1600)), nil},
		{"Containing: Baotou", containing(baotou), nil},
		{"Near: 100 m north of the ruins, no margin", collect(near(0), north(model.Point{Lat: 41.967, Lon: 110.486}, 100)), []string{"banner", "ruins-buffer"}},
		{"Near: 100 m north of the ruins, 150 m margin", collect(near(150), north(model.Point{Lat: 41.967, Lon: 110.486}, 100)), []string{"aolunsumu-ruins", "banner", "ruins-buffer"}},
		{"Near: 1.6 km from the port, 200 m margin", collect(near(200), north(manduhla, 1600)), []string{"mdl-port"}},
		{"Near: Baotou, 10 km margin", collect(near(10_000), baotou), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ElementsMatch(t, tt.want, tt.got)
		})
	}

	t.Run("Containing stops when fn returns false", func(t *testing.T) {
		n := 0
		ix.Containing(aolunsumu, func(*Zone) bool { n++; return false })
		assert.Equal(t, 1, n)
	})
	t.Run("All keeps the file's order", func(t *testing.T) {
		var ids []string
		ix.All(func(z *Zone) bool { ids = append(ids, z.ID); return true })
		assert.Equal(t, []string{"aolunsumu-ruins", "banner", "mdl-port", "ruins-buffer"}, ids)
	})
	t.Run("Get and Len", func(t *testing.T) {
		assert.Equal(t, 4, ix.Len())
		assert.Nil(t, ix.Get("nope"))
		assert.Equal(t, "mdl-port", ix.Get("mdl-port").ID)
	})
	t.Run("nil and empty index", func(t *testing.T) {
		var nilIx *Index
		assert.Equal(t, 0, nilIx.Len())
		assert.Nil(t, nilIx.Get("x"))
		nilIx.Containing(aolunsumu, func(*Zone) bool { t.Fatal("called"); return true })
		nilIx.Near(aolunsumu, 10, func(*Zone) bool { t.Fatal("called"); return true })
		empty, probs := Build(nil, "", "rules.yaml")
		require.Empty(t, probs)
		empty.Containing(aolunsumu, func(*Zone) bool { t.Fatal("called"); return true })
		assert.Equal(t, 0, empty.Len())
	})
	t.Run("concurrent readers", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 2000 {
					p := north(aolunsumu, float64((i*7+g)%4000-2000))
					ix.Containing(p, func(z *Zone) bool { _ = z.DistanceM(p); return true })
					ix.Near(p, 100, func(*Zone) bool { return true })
				}
			})
		}
		wg.Wait()
	})
}

func TestCircleBBox(t *testing.T) {
	// The R-tree must never miss a point of a circle: test points on the
	// circle's edge all around, for small and large circles.
	for _, r := range []float64{1, 1500, 50_000, 2_000_000} {
		t.Run(fmt.Sprintf("r=%gm", r), func(t *testing.T) {
			ix := build(t, config.ZoneSpec{ID: "c", Circle: &config.CircleSpec{Lat: 42.62, Lon: 110.15, RadiusM: r}})
			for i := range 360 {
				a := float64(i) * math.Pi / 180
				p := destination(manduhla, a, r*0.999999)
				found := false
				ix.Containing(p, func(*Zone) bool { found = true; return false })
				require.True(t, found, "bearing %d° %v", i, p)
			}
		})
	}
	t.Run("reaching the pole", func(t *testing.T) {
		ix := build(t, config.ZoneSpec{ID: "c", Circle: &config.CircleSpec{Lat: 85, Lon: 0, RadiusM: 1_000_000}})
		found := false
		ix.Containing(model.Point{Lat: 88, Lon: 179}, func(*Zone) bool { found = true; return false })
		assert.True(t, found)
	})
}

// destination is the point at distance d metres and bearing a (radians)
// from p on the sphere.
func destination(p model.Point, a, d float64) model.Point {
	lat1, lon1 := p.Lat*math.Pi/180, p.Lon*math.Pi/180
	ang := d / earthRadiusM
	lat2 := math.Asin(math.Sin(lat1)*math.Cos(ang) + math.Cos(lat1)*math.Sin(ang)*math.Cos(a))
	lon2 := lon1 + math.Atan2(math.Sin(a)*math.Sin(ang)*math.Cos(lat1), math.Cos(ang)-math.Sin(lat1)*math.Sin(lat2))
	return model.Point{Lat: lat2 * 180 / math.Pi, Lon: lon2 * 180 / math.Pi}
}

func TestHaversine(t *testing.T) {
	// Baotou to Bailingmiao is about 125 km.
	assert.InDelta(t, 125_000, haversineM(baotou, bailingmiao), 2_000)
	assert.InDelta(t, 0, haversineM(manduhla, manduhla), 1e-9)
}

// polygonJSON writes a one-ring Polygon.
func polygonJSON(ring [][2]float64) string {
	var b strings.Builder
	b.WriteString(`{"type":"Polygon","coordinates":[[`)
	for i, p := range ring {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "[%.7f,%.7f]", p[0], p[1])
	}
	b.WriteString(`]]}`)
	return b.String()
}

// MaxDepthM bounds how far inside a zone a point can be: a circle's radius,
// half a polygon's narrower side.
func TestMaxDepthM(t *testing.T) {
	zs, ps := Build([]config.ZoneSpec{
		{ID: "circle", Circle: &config.CircleSpec{Lat: 42, Lon: 110, RadiusM: 300}},
		// About 8 m east-west, 11 m north-south at 42° N.
		{ID: "tiny", GeoJSON: `{"type":"Polygon","coordinates":[[[110.4,42.0],[110.4001,42.0],[110.4001,42.0001],[110.4,42.0001],[110.4,42.0]]]}`},
	}, "testdata", "rules.yaml")
	require.Empty(t, ps)
	assert.InDelta(t, 300, zs.Get("circle").MaxDepthM(), 1e-9)
	assert.InDelta(t, 4.13, zs.Get("tiny").MaxDepthM(), 0.01)
}
