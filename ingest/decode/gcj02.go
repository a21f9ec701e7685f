package decode

import "math"

// GCJ-02 ("Mars coordinates") is WGS84 plus a deterministic, smooth offset
// (about 500 m around Baotou) defined inside a rough bounding box of China.
// The forward transform below is the widely published one; the inverse is
// computed by fixed-point iteration on it.

const (
	gcjA  = 6378245.0              // Krasovsky 1940 semi-major axis used by GCJ-02
	gcjEE = 0.00669342162296594323 // its first eccentricity squared

	gcjTolerance = 1e-10 // degrees; about 0.01 mm
	gcjMaxIter   = 30
)

// outOfChina reports whether a point is outside the bounding box where the
// GCJ-02 offset is applied. The box is the one of the published algorithm; it
// is coarse (it contains Mongolia, for instance), which is what devices that
// implement GCJ-02 do too.
func outOfChina(lat, lon float64) bool {
	return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271
}

// gcjDelta is the GCJ-02 offset, in degrees, at a WGS84 point.
func gcjDelta(lat, lon float64) (dLat, dLon float64) {
	x, y := lon-105.0, lat-35.0
	dLat = -100.0 + 2.0*x + 3.0*y + 0.2*y*y + 0.1*x*y + 0.2*math.Sqrt(math.Abs(x))
	dLat += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	dLat += (20.0*math.Sin(y*math.Pi) + 40.0*math.Sin(y/3.0*math.Pi)) * 2.0 / 3.0
	dLat += (160.0*math.Sin(y/12.0*math.Pi) + 320.0*math.Sin(y*math.Pi/30.0)) * 2.0 / 3.0

	dLon = 300.0 + x + 2.0*y + 0.1*x*x + 0.1*x*y + 0.1*math.Sqrt(math.Abs(x))
	dLon += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	dLon += (20.0*math.Sin(x*math.Pi) + 40.0*math.Sin(x/3.0*math.Pi)) * 2.0 / 3.0
	dLon += (150.0*math.Sin(x/12.0*math.Pi) + 300.0*math.Sin(x/30.0*math.Pi)) * 2.0 / 3.0

	radLat := lat / 180.0 * math.Pi
	magic := math.Sin(radLat)
	magic = 1 - gcjEE*magic*magic
	sqrtMagic := math.Sqrt(magic)
	dLat = (dLat * 180.0) / ((gcjA * (1 - gcjEE)) / (magic * sqrtMagic) * math.Pi)
	dLon = (dLon * 180.0) / (gcjA / sqrtMagic * math.Cos(radLat) * math.Pi)
	return dLat, dLon
}

// WGS84ToGCJ02 converts a WGS84 point to GCJ-02. Outside China the two are
// the same.
func WGS84ToGCJ02(lat, lon float64) (float64, float64) {
	if outOfChina(lat, lon) {
		return lat, lon
	}
	dLat, dLon := gcjDelta(lat, lon)
	return lat + dLat, lon + dLon
}

// GCJ02ToWGS84 converts a GCJ-02 point to WGS84: it finds the WGS84 point
// whose forward transform is the given point, to within 1e-10 degrees
// (the iteration converges in 3-4 steps because the offset varies slowly).
// Outside China the two are the same.
func GCJ02ToWGS84(lat, lon float64) (float64, float64) {
	if outOfChina(lat, lon) {
		return lat, lon
	}
	wLat, wLon := lat, lon
	for range gcjMaxIter {
		dLat, dLon := gcjDelta(wLat, wLon)
		// Residual of the forward transform at the current estimate.
		rLat, rLon := wLat+dLat-lat, wLon+dLon-lon
		wLat -= rLat
		wLon -= rLon
		if math.Abs(rLat) < gcjTolerance && math.Abs(rLon) < gcjTolerance {
			break
		}
	}
	return wLat, wLon
}
