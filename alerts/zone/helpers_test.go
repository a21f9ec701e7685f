package zone

import (
	"math"
	"math/rand/v2"

	"github.com/fenceline/fenceline/internal/model"
)

// jaggedRing is a closed star-shaped ring of n vertices around c whose
// radius wanders between 0.5 and 1.5 times r metres: simple (it never
// crosses itself) yet as irregular as a surveyed boundary.
func jaggedRing(c model.Point, r float64, n int, seed uint64) [][2]float64 {
	rng := rand.New(rand.NewPCG(seed, 42))
	kx := mPerDegLat * math.Cos(c.Lat*math.Pi/180)
	ring := make([][2]float64, 0, n+1)
	rad := r
	// Each step moves the radius by up to ±2.5 segment lengths, so that a
	// horizontal line crosses a 5,000-vertex ring a few times, not dozens
	// of times, while small rings stay irregular.
	jag := min(0.2, 5*2*math.Pi/float64(n))
	for i := range n {
		a := 2 * math.Pi * float64(i) / float64(n)
		rad = min(max(rad*(1+jag*(rng.Float64()-0.5)), 0.5*r), 1.5*r)
		ring = append(ring, [2]float64{c.Lon + rad*math.Cos(a)/kx, c.Lat + rad*math.Sin(a)/mPerDegLat})
	}
	// Rounded as polygonJSON writes them, so that the closing position
	// equals the first exactly.
	for i := range ring {
		ring[i][0] = math.Round(ring[i][0]*1e7) / 1e7
		ring[i][1] = math.Round(ring[i][1]*1e7) / 1e7
	}
	return append(ring, ring[0])
}

// segDistM is the distance in metres from pr's origin to the segment a–b.
func (pr *projection) segDistM(a, b xy) float64 { return math.Sqrt(pr.segDist2(a, b)) }

// haversineM is the great-circle distance between a and b in metres.
func haversineM(a, b model.Point) float64 {
	c := circle{c: a, cosLat: math.Cos(a.Lat * math.Pi / 180)}
	return c.distanceM(b)
}
