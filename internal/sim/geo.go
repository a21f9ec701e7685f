package sim

import (
	"math"
	"math/rand/v2"

	"github.com/fenceline/fenceline/internal/model"
)

const earthRadiusKm = 6371.0088

func rad(d float64) float64 { return d * math.Pi / 180 }

// distanceKm is the great-circle distance between two points.
func distanceKm(a, b model.Point) float64 {
	dLat, dLon := rad(b.Lat-a.Lat), rad(b.Lon-a.Lon)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(rad(a.Lat))*math.Cos(rad(b.Lat))*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}

// bearing is the initial compass bearing from a to b in degrees [0, 360).
func bearing(a, b model.Point) float64 {
	y := math.Sin(rad(b.Lon-a.Lon)) * math.Cos(rad(b.Lat))
	x := math.Cos(rad(a.Lat))*math.Sin(rad(b.Lat)) - math.Sin(rad(a.Lat))*math.Cos(rad(b.Lat))*math.Cos(rad(b.Lon-a.Lon))
	d := math.Mod(math.Atan2(y, x)*180/math.Pi+360, 360)
	if d >= 359.5 {
		d = 0 // so that rounding to whole degrees never gives 360
	}
	return d
}

// toward moves from a towards b by km (at most to b). Linear in degrees:
// the legs the simulator moves along are a few kilometres long.
func toward(a, b model.Point, km float64) model.Point {
	d := distanceKm(a, b)
	if d <= km || d == 0 {
		return b
	}
	f := km / d
	return model.Point{Lat: a.Lat + (b.Lat-a.Lat)*f, Lon: a.Lon + (b.Lon-a.Lon)*f}
}

// jitter moves p by a normally distributed error of sigma metres per axis,
// as a GPS fix scatters.
func jitter(r *rand.Rand, p model.Point, sigmaM float64) model.Point {
	const mPerDeg = 111_320.0
	return model.Point{
		Lat: p.Lat + r.NormFloat64()*sigmaM/mPerDeg,
		Lon: p.Lon + r.NormFloat64()*sigmaM/(mPerDeg*math.Cos(rad(p.Lat))),
	}
}

// round rounds x to n decimals, so that payloads carry the precision a
// device would, not float noise.
func round(x float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(x*p) / p
}
