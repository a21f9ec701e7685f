package decode

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// metres between two nearby points (equirectangular; enough at this scale).
func metres(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371008.8
	x := (lon2 - lon1) * math.Pi / 180 * math.Cos((lat1+lat2)/2*math.Pi/180)
	y := (lat2 - lat1) * math.Pi / 180
	return r * math.Hypot(x, y)
}

func TestGCJ02RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lat, lon float64
	}{
		{"Baotou centre", 40.656, 109.835},
		{"Bailingmiao", 41.703, 110.435},
		{"Aolunsumu", 41.960, 110.486},
		{"Manduhla", 42.62, 110.15},
		{"Salaqi", 40.57, 110.52},
		{"Beijing", 39.9042, 116.4074},
		{"Kashgar", 39.4704, 75.9898},
		{"Sanya", 18.2528, 109.5119},
		{"Mohe", 52.9722, 122.5386},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gLat, gLon := WGS84ToGCJ02(tc.lat, tc.lon)
			off := metres(tc.lat, tc.lon, gLat, gLon)
			assert.Greater(t, off, 50.0, "GCJ-02 is offset inside China")
			assert.Less(t, off, 1000.0)
			wLat, wLon := GCJ02ToWGS84(gLat, gLon)
			assert.Less(t, metres(tc.lat, tc.lon, wLat, wLon), 0.1, "round trip within 0.1 m")
			assert.InDelta(t, tc.lat, wLat, 1e-7)
			assert.InDelta(t, tc.lon, wLon, 1e-7)
		})
	}
}

func TestGCJ02BaotouOffset(t *testing.T) {
	// About 500 m around Baotou (the contract's figure).
	gLat, gLon := WGS84ToGCJ02(40.656, 109.835)
	off := metres(40.656, 109.835, gLat, gLon)
	assert.InDelta(t, 500, off, 250)
}

func TestGCJ02OutsideChina(t *testing.T) {
	for _, p := range [][2]float64{
		{35.6812, 139.7671},  // Tokyo
		{55.7558, 37.6173},   // Moscow
		{-33.8688, 151.2093}, // Sydney
		{0.5, 100},           // south of the box
	} {
		lat, lon := GCJ02ToWGS84(p[0], p[1])
		assert.Equal(t, p[0], lat)
		assert.Equal(t, p[1], lon)
		lat, lon = WGS84ToGCJ02(p[0], p[1])
		assert.Equal(t, p[0], lat)
		assert.Equal(t, p[1], lon)
	}
}
