package zone

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"

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

	polys  []polygon
	circle *circle
	bbox   rect // lon/lat bounding box of the whole zone
	// edges are every edge of every ring, outer rings and holes: a point
	// outside is outside every member, so its nearest edge is its
	// distance to the zone.
	edges boundary
	// rim is the boundary of the members' union, for points inside: a
	// seam between two members is no boundary. The same as edges for a
	// single polygon.
	rim    boundary
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

// Contains reports whether p is inside the zone. The boundary counts as
// inside (a fence unit placed on the fence line is in its zone), and so
// does a hole's boundary; the inside of a hole does not.
func (z *Zone) Contains(p model.Point) bool {
	if z.circle != nil {
		return z.circle.havTo(p) <= z.circle.hav
	}
	return z.containsXY(xy{X: p.Lon, Y: p.Lat})
}

func (z *Zone) containsXY(q xy) bool {
	for i := range z.polys {
		if z.polys[i].contains(q) {
			return true
		}
	}
	return false
}

// DistanceM is the distance in metres from p to the zone's boundary,
// positive when p is inside, negative outside (0 on the boundary). The
// boundary is that of the union of the zone's polygons: a seam where two
// members of a MultiPolygon or FeatureCollection meet is inside. The
// hysteresis rules compare it with hysteresis_m: a subject has exited only
// when it is more than hysteresis_m outside, entered when more than
// hysteresis_m inside.
//
// Polygon distances are measured in a local equirectangular projection
// centred on p. Its error grows as d²·tan(lat)/R: within a metre up to
// about 2.5 km from the boundary at Inner Mongolia's latitudes, where
// hysteresis looks, and about 15 m at 10 km. Circle distances are exact
// on the sphere. A point that is not a valid position is infinitely far
// outside. The sign always agrees with Contains.
func (z *Zone) DistanceM(p model.Point) float64 {
	if !validPoint(p) {
		return math.Inf(-1)
	}
	in := z.Contains(p)
	var d float64
	if z.circle != nil {
		// Contains compares haversines; a point a hair outside can
		// round to a distance of zero or more: keep the sign honest.
		d = z.circle.r - z.circle.distanceM(p)
		switch {
		case in && d < 0:
			d = 0
		case !in && d >= 0:
			d = -math.SmallestNonzeroFloat64
		}
		return d
	}
	pr := newProjection(p)
	if in {
		return math.Sqrt(z.rim.nearest2(&pr))
	}
	return -math.Sqrt(z.edges.nearest2(&pr))
}

func validPoint(p model.Point) bool {
	return p.Lat >= -90 && p.Lat <= 90 && p.Lon >= -180 && p.Lon <= 180
}

// projection is the local equirectangular projection around a point:
// x = (lon-lon0)*kx, y = (lat-lat0)*ky in metres.
type projection struct {
	origin xy
	kx, ky float64
}

func newProjection(p model.Point) projection {
	kx := mPerDegLat * math.Cos(p.Lat*math.Pi/180)
	// At the poles a degree of longitude is no distance at all; keep kx
	// positive so that box sizes (h/kx) stay finite.
	kx = max(kx, 1e-3)
	return projection{origin: xy{X: p.Lon, Y: p.Lat}, kx: kx, ky: mPerDegLat}
}

// segDist2 is the squared distance in metres from the projection's origin
// to the segment a–b: searches compare squares, which order the same and
// cost no square root.
func (pr *projection) segDist2(a, b xy) float64 {
	ax, ay := (a.X-pr.origin.X)*pr.kx, (a.Y-pr.origin.Y)*pr.ky
	bx, by := (b.X-pr.origin.X)*pr.kx, (b.Y-pr.origin.Y)*pr.ky
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = min(max(-(ax*dx+ay*dy)/l2, 0), 1)
	}
	ex, ey := ax+t*dx, ay+t*dy
	return ex*ex + ey*ey
}

// box is the lon/lat rectangle of half-size h metres around the origin.
func (pr *projection) box(h float64) rect {
	dx, dy := h/pr.kx, h/pr.ky
	return rect{
		Min: xy{X: pr.origin.X - dx, Y: pr.origin.Y - dy},
		Max: xy{X: pr.origin.X + dx, Y: pr.origin.Y + dy},
	}
}

// boxDist2 is the squared distance in metres from the projection's origin
// to the box r: a lower bound for anything inside it, as the projection is
// linear along each axis.
func (pr *projection) boxDist2(r rect) float64 {
	dx := max(r.Min.X-pr.origin.X, 0, pr.origin.X-r.Max.X) * pr.kx
	dy := max(r.Min.Y-pr.origin.Y, 0, pr.origin.Y-r.Max.Y) * pr.ky
	return dx*dx + dy*dy
}

// buildBoundaries collects the edges of a polygon zone and, when it has
// several members, the parts of them on the boundary of their union.
func (z *Zone) buildBoundaries() {
	var segs []seg
	add := func(pts []xy) {
		for i := 0; i+1 < len(pts); i++ {
			segs = append(segs, seg{pts[i], pts[i+1]})
		}
	}
	for i := range z.polys {
		add(z.polys[i].outer.pts)
		for _, h := range z.polys[i].holes {
			add(h.pts)
		}
	}
	z.edges = newBoundary(segs)
	z.rim = z.edges
	if len(z.polys) > 1 {
		if rim := unionBoundary(segs, z.containsXY); len(rim) > 0 {
			z.rim = newBoundary(rim)
		}
		// else every edge tested interior, which a bounded zone cannot
		// be; the edges at least keep DistanceM finite.
	}
}

// Center is a representative point of the zone, inside it: the centre of
// a circle; for polygons the centroid of the largest part when that lies
// inside, else the middle of the widest inside stretch of the horizontal
// line through the part's middle (a C-shaped strip's centroid is outside).
func (z *Zone) Center() model.Point { return z.center }

// MaxDepthM is a bound on how far inside the zone a point can be from its
// boundary, in metres: a circle's radius, else half the narrower side of
// the bounding box. A point deeper than that is in no zone of this shape.
// It does not see holes: a zone whose holes leave only a thin band has a
// bound of its outline's.
func (z *Zone) MaxDepthM() float64 {
	if z.circle != nil {
		return z.circle.r
	}
	midLat := (z.bbox.Min.Y + z.bbox.Max.Y) / 2 * math.Pi / 180
	w := (z.bbox.Max.X - z.bbox.Min.X) * mPerDegLat * math.Cos(midLat)
	h := (z.bbox.Max.Y - z.bbox.Min.Y) * mPerDegLat
	return min(w, h) / 2
}

// Digest is a hash of the zone's shape (its circle, or its polygons'
// vertices, wherever each ring starts and whichever way it turns): two
// zones with the same digest contain the same points. A
// rule's fingerprint takes it for zones read from a file, whose spec names
// only the file.
func (z *Zone) Digest() string {
	h := sha256.New()
	var b [8]byte
	put := func(f float64) {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(f))
		h.Write(b[:])
	}
	if c := z.circle; c != nil {
		h.Write([]byte("circle"))
		put(c.c.Lat)
		put(c.c.Lon)
		put(c.r)
	}
	for _, pg := range z.polys {
		h.Write([]byte("polygon"))
		for i, r := range append([]ring{pg.outer}, pg.holes...) {
			if i > 0 {
				h.Write([]byte("hole"))
			}
			// In one order whatever the file's: from the smallest vertex,
			// counter-clockwise (a ring and its reverse are one shape).
			pts := r.pts[:len(r.pts)-1] // closed: the last is the first
			n := len(pts)
			start := 0
			for i, p := range pts {
				if p.X < pts[start].X || p.X == pts[start].X && p.Y < pts[start].Y {
					start = i
				}
			}
			step := 1
			if signedArea(r.pts) < 0 {
				step = n - 1
			}
			for k, i := 0, start; k < n; k, i = k+1, (i+step)%n {
				put(pts[i].X)
				put(pts[i].Y)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (z *Zone) computeCenter() model.Point {
	if z.circle != nil {
		return z.circle.c
	}
	var largest *polygon
	var largestArea float64
	for i := range z.polys {
		a := math.Abs(signedArea(z.polys[i].outer.pts))
		if largest == nil || a > largestArea {
			largest, largestArea = &z.polys[i], a
		}
	}
	if largest == nil {
		return model.Point{}
	}
	if c, ok := centroid(largest.outer.pts); ok && z.Contains(c) {
		return c
	}
	box := largest.outer.box
	if c, ok := scanlineCenter(largest, (box.Min.Y+box.Max.Y)/2); ok && z.Contains(c) {
		return c
	}
	first := largest.outer.pts[0]
	return model.Point{Lat: first.Y, Lon: first.X}
}

func centroid(pts []xy) (model.Point, bool) {
	var a, cx, cy float64
	// Relative to the first point, so that the products do not lose
	// precision to large absolute longitudes.
	o := pts[0]
	for i := 0; i+1 < len(pts); i++ {
		px, py := pts[i].X-o.X, pts[i].Y-o.Y
		qx, qy := pts[i+1].X-o.X, pts[i+1].Y-o.Y
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
// lat = y that lies inside pg.
func scanlineCenter(pg *polygon, y float64) (model.Point, bool) {
	var xs []float64
	cross := func(pts []xy) {
		for i := 0; i+1 < len(pts); i++ {
			a, b := pts[i], pts[i+1]
			// Half-open in y, so that a vertex on the line counts once.
			if (a.Y > y) != (b.Y > y) {
				xs = append(xs, a.X+(y-a.Y)*(b.X-a.X)/(b.Y-a.Y))
			}
		}
	}
	cross(pg.outer.pts)
	for _, h := range pg.holes {
		cross(h.pts)
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
