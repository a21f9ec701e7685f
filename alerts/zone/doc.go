// Package zone compiles the geofences of the rules file — GeoJSON
// Polygons and MultiPolygons (inline, or files holding a Feature or
// FeatureCollection) and circles — and answers which zones contain a
// point, how far a point is from a zone's boundary, and which zones are
// near enough to matter for hysteresis.
//
// # Semantics
//
// Coordinates are WGS84 [lon, lat], edges are straight lines in lon/lat
// (as GeoJSON and every map that draws it treat them). A point on a
// boundary, including a hole's, is inside: a fence unit on the fence line
// is in its zone. A zone of several polygons (a MultiPolygon, or a
// FeatureCollection such as a border strip drawn in segments) is their
// union, which its members may overlap to make: DistanceM measures to the
// union's boundary, so a seam where two members meet is no edge to a
// subject crossing it. Circles are exact spherical caps (haversine), not
// polygons. DistanceM works in a local equirectangular projection around
// the point, well within a metre at zone scales.
//
// # Cost
//
// [Index.Containing] walks an R-tree of zone bounding boxes
// (github.com/tidwall/rtree), then tests each candidate: a circle with one
// haversine, a polygon with a ray cast over a band index — each ring's
// latitude range cut into bands that list the segments overlapping them,
// so the cast looks only at the segments where the point's parallel
// crosses the boundary. A 5,000-vertex border strip costs about as much
// as a square. Nothing allocates. DistanceM on large zones walks a box
// hierarchy over the boundary's segments, nearest box first. Finding the
// boundary of a union is done once per reload: about 20 ms for two
// 5,000-vertex members, a third of that zone's build. (A packed
// STR tree with branch-free box tests in place of tidwall/rtree measured
// no faster on 1,000 zones, so the zone level stays with the library.)
//
// # Why not a geometry library
//
// We measured point-in-polygon for a 5,000-vertex ring with a 200-vertex
// hole, random points in its bounding box (ns per test, one core):
//
//	own band index (this package)                     ~80 ns   0 allocs
//	golang/geo s2.Polygon.ContainsPoint              ~650 ns   1 alloc
//	tidwall/geojson geometry.Poly, RTree index       ~750 ns   0 allocs
//	tidwall/geojson geometry.Poly, default QuadTree ~1,500 ns  0 allocs
//	tidwall/geojson geometry.Poly, no index        ~25,000 ns  0 allocs
//	paulmach/orb planar.PolygonContains           ~170,000 ns  0 allocs
//
// All three handle holes and multipolygons. paulmach/orb (v0.14, actively
// maintained, the broadest feature set) has no segment index: every test
// scans every vertex. golang/geo (S2, maintained, untagged pseudo-versions)
// indexes well but works on the sphere with geodesic edges and a
// semi-open boundary model, so "on the edge is inside" cannot be had, and
// each query converts the point to a unit vector and allocates.
// tidwall/geojson (v1.4.5 of 2023, Tile38's geometry) matches our edge
// semantics and is what we first built on, but its compressed segment
// indexes visit every index node along the point's parallel, so a
// jagged 5,000-vertex strip costs 0.7–1.5 µs, several times the budget of
// 300 ns for a whole Containing call over 1,000 zones.
//
// The band index is under 200 lines, has no dependency, and is checked in
// the tests against tidwall/geojson on thousands of points, on vertices
// and on the parallels through vertices (TestOracle). We parse GeoJSON
// ourselves with encoding/json for the same reason we validate it
// ourselves: each problem names its JSON path (zones[2].geojson.
// coordinates[0][5]) so that `fenceline check` can say what is wrong.
package zone
