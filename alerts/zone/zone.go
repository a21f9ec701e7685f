package zone

import (
	"math"
	"slices"

	"github.com/tidwall/geojson/geometry"

	"github.com/fenceline/fenceline/internal/model"
)

// earthRadiusM is the mean Earth radius (IUGG). A sphere is within 0.5% of
// WGS84 everywhere, which at zone scales (hundreds of metres to tens of
// kilometres) is well inside the metre the hysteresis rules need.
const earthRadiusM = 6_371_008.8

// mPerDegLat is metres per degree of latitude (and of longitude at the
// equator) on that sphere.
const mPerDegLat = earthRadiusM * math.Pi / 180

// Zone is one geofence: a set of polygons (with holes) or a circle.
// It is immutable once built and safe for concurrent use.
type Zone struct {
	ID, Site, Name string
	// Units are the units to notify for alerts in this zone.
	Units []string

	polys  []*geometry.Poly
	rects  []geometry.Rect // rects[i] is polys[i]'s bounding box
	circle *circle
	bbox   geometry.Rect // lon/lat bounding box of the whole zone
	center model.Point
}

// circle is kept as centre and radius rather than a polygon approximation:
// containment is then exact, cheap, and its distance is a subtraction.
type circle struct {
	c      model.Point
	r      float64 // metres
	cosLat float64
	// hav is the haversine of the radius' central angle: p is inside
	// when hav(p, c) <= hav, which saves the asin and sqrt per test.
	hav float64
}

func newCircle(c model.Point, r float64) *circle {
	s := math.Sin(r / earthRadiusM / 2)
	hav := s * s
	if r/earthRadiusM >= math.Pi { // the whole sphere
		hav = 1
	}
	return &circle{c: c, r: r, cosLat: math.Cos(c.Lat * math.Pi / 180), hav: hav}
}

// havTo returns the haversine of the central angle between p and the centre.
func (c *circle) havTo(p model.Point) float64 {
	dLat := (p.Lat - c.c.Lat) * math.Pi / 180
	dLon := (p.Lon - c.c.Lon) * math.Pi / 180
	sLat, sLon := math.Sin(dLat/2), math.Sin(dLon/2)
	return sLat*sLat + c.cosLat*math.Cos(p.Lat*math.Pi/180)*sLon*sLon
}

// distanceM is the great-circle distance from p to the centre.
func (c *circle) distanceM(p model.Point) float64 {
	h := min(max(c.havTo(p), 0), 1)
	return 2 * earthRadiusM * math.Asin(math.Sqrt(h))
}

// haversineM is the great-circle distance between a and b in metres.
func haversineM(a, b model.Point) float64 {
	c := circle{c: a, cosLat: math.Cos(a.Lat * math.Pi / 180)}
	return c.distanceM(b)
}

// Contains reports whether p is inside the zone. The boundary counts as
// inside (a fence unit placed on the fence line is in its zone), and so
// does a hole's boundary; the inside of a hole does not.
func (z *Zone) Contains(p model.Point) bool {
	if z.circle != nil {
		return z.circle.havTo(p) <= z.circle.hav
	}
	gp := geometry.Point{X: p.Lon, Y: p.Lat}
	for i, poly := range z.polys {
		// The bounding-box test first: most zones returned by the R-tree
		// for a MultiPolygon are far from all but one of its parts.
		if z.rects[i].ContainsPoint(gp) && poly.ContainsPoint(gp) {
			return true
		}
	}
	return false
}

// DistanceM is the distance in metres from p to the zone's boundary,
// positive when p is inside, negative outside (0 on the boundary). The
// hysteresis rules compare it with hysteresis_m: a subject has exited only
// when it is more than hysteresis_m outside, entered when more than
// hysteresis_m inside.
//
// Polygon distances are measured in a local equirectangular projection
// centred on p, exact to well under a metre for distances of tens of
// kilometres at Inner Mongolia's latitudes. A point that is not a valid
// position is infinitely far outside.
func (z *Zone) DistanceM(p model.Point) float64 {
	if !validPoint(p) {
		return math.Inf(-1)
	}
	if z.circle != nil {
		return z.circle.r - z.circle.distanceM(p)
	}
	d := z.boundaryDistanceM(p)
	if z.Contains(p) {
		return d
	}
	return -d
}

func validPoint(p model.Point) bool {
	return p.Lat >= -90 && p.Lat <= 90 && p.Lon >= -180 && p.Lon <= 180
}

// projection is the local equirectangular projection around a point:
// x = (lon-lon0)*kx, y = (lat-lat0)*ky in metres.
type projection struct {
	origin geometry.Point
	kx, ky float64
}

func newProjection(p model.Point) projection {
	kx := mPerDegLat * math.Cos(p.Lat*math.Pi/180)
	// At the poles a degree of longitude is no distance at all; keep kx
	// positive so that box sizes (h/kx) stay finite.
	kx = max(kx, 1e-3)
	return projection{origin: geometry.Point{X: p.Lon, Y: p.Lat}, kx: kx, ky: mPerDegLat}
}

// segDistM is the distance in metres from the projection's origin to seg.
func (pr *projection) segDistM(seg geometry.Segment) float64 {
	ax, ay := (seg.A.X-pr.origin.X)*pr.kx, (seg.A.Y-pr.origin.Y)*pr.ky
	bx, by := (seg.B.X-pr.origin.X)*pr.kx, (seg.B.Y-pr.origin.Y)*pr.ky
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = min(max(-(ax*dx+ay*dy)/l2, 0), 1)
	}
	return math.Hypot(ax+t*dx, ay+t*dy)
}

// box is the lon/lat rectangle of half-size h metres around the origin.
func (pr *projection) box(h float64) geometry.Rect {
	dx, dy := h/pr.kx, h/pr.ky
	return geometry.Rect{
		Min: geometry.Point{X: pr.origin.X - dx, Y: pr.origin.Y - dy},
		Max: geometry.Point{X: pr.origin.X + dx, Y: pr.origin.Y + dy},
	}
}

// boundaryDistanceM finds the nearest boundary segment through the rings'
// segment indexes: it searches a square of half-size h around p, growing h
// fourfold until a segment within h is found. Any segment closer than h
// crosses that square, so the first hit within h is the nearest. A point
// near a 5,000-vertex border strip thus looks at a handful of segments,
// not all of them.
func (z *Zone) boundaryDistanceM(p model.Point) float64 {
	pr := newProjection(p)
	best := math.Inf(1)
	visit := func(seg geometry.Segment, _ int) bool {
		if d := pr.segDistM(seg); d < best {
			best = d
		}
		return true
	}
	for h := 256.0; ; h *= 4 {
		box := pr.box(h)
		// Past half the Earth's circumference every segment is in reach:
		// search them all, which also ends the loop.
		last := h > math.Pi*earthRadiusM || box.ContainsRect(z.bbox)
		if last {
			box = geometry.Rect{
				Min: geometry.Point{X: math.Inf(-1), Y: math.Inf(-1)},
				Max: geometry.Point{X: math.Inf(1), Y: math.Inf(1)},
			}
		}
		for _, poly := range z.polys {
			searchRing(poly.Exterior, box, visit)
			for _, hole := range poly.Holes {
				searchRing(hole, box, visit)
			}
		}
		if last || best <= h {
			return best
		}
	}
}

func searchRing(r geometry.Ring, box geometry.Rect, visit func(geometry.Segment, int) bool) {
	if r.Rect().IntersectsRect(box) {
		r.Search(box, visit)
	}
}

// Center is a representative point of the zone, inside it: the centre of
// a circle; for polygons the centroid of the largest part when that lies
// inside, else the middle of the widest inside stretch of the horizontal
// line through the part's middle (a C-shaped strip's centroid is outside).
func (z *Zone) Center() model.Point { return z.center }

func (z *Zone) computeCenter() model.Point {
	if z.circle != nil {
		return z.circle.c
	}
	var largest *geometry.Poly
	var largestArea float64
	for _, poly := range z.polys {
		a := math.Abs(signedArea(poly.Exterior))
		if largest == nil || a > largestArea {
			largest, largestArea = poly, a
		}
	}
	if largest == nil {
		return model.Point{}
	}
	if c, ok := centroid(largest.Exterior); ok && z.Contains(c) {
		return c
	}
	r := largest.Rect()
	if c, ok := scanlineCenter(largest, (r.Min.Y+r.Max.Y)/2); ok && z.Contains(c) {
		return c
	}
	first := largest.Exterior.PointAt(0)
	return model.Point{Lat: first.Y, Lon: first.X}
}

func signedArea(r geometry.Ring) float64 {
	var a float64
	n := r.NumPoints()
	for i := 0; i+1 < n; i++ {
		p, q := r.PointAt(i), r.PointAt(i+1)
		a += p.X*q.Y - q.X*p.Y
	}
	return a / 2
}

func centroid(r geometry.Ring) (model.Point, bool) {
	var a, cx, cy float64
	n := r.NumPoints()
	// Relative to the first point, so that the products do not lose
	// precision to large absolute longitudes.
	o := r.PointAt(0)
	for i := 0; i+1 < n; i++ {
		p, q := r.PointAt(i), r.PointAt(i+1)
		px, py, qx, qy := p.X-o.X, p.Y-o.Y, q.X-o.X, q.Y-o.Y
		c := px*qy - qx*py
		a += c
		cx += (px + qx) * c
		cy += (py + qy) * c
	}
	if a == 0 {
		return model.Point{}, false
	}
	return model.Point{Lat: o.Y + cy/(3*a), Lon: o.X + cx/(3*a)}, true
}

// scanlineCenter returns the middle of the widest stretch of the line
// lat = y that lies inside poly.
func scanlineCenter(poly *geometry.Poly, y float64) (model.Point, bool) {
	var xs []float64
	cross := func(r geometry.Ring) {
		n := r.NumPoints()
		for i := 0; i+1 < n; i++ {
			a, b := r.PointAt(i), r.PointAt(i+1)
			// Half-open in y, so that a vertex on the line counts once.
			if (a.Y > y) != (b.Y > y) {
				xs = append(xs, a.X+(y-a.Y)*(b.X-a.X)/(b.Y-a.Y))
			}
		}
	}
	cross(poly.Exterior)
	for _, h := range poly.Holes {
		cross(h)
	}
	slices.Sort(xs)
	best, bestW := -1, 0.0
	for i := 0; i+1 < len(xs); i += 2 {
		if w := xs[i+1] - xs[i]; w > bestW {
			best, bestW = i, w
		}
	}
	if best < 0 {
		return model.Point{}, false
	}
	return model.Point{Lat: y, Lon: (xs[best] + xs[best+1]) / 2}, true
}
