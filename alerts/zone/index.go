package zone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tidwall/rtree"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// maxFileBytes bounds a zone file; see maxVertices.
const maxFileBytes = 64 << 20

// Index is the compiled set of zones with an R-tree over their bounding
// boxes. It is immutable after Build and safe for concurrent readers; a
// reload builds a new Index and swaps it in whole.
type Index struct {
	zones []*Zone // in the order of the rules file
	byID  map[string]*Zone
	tree  rtree.RTreeGN[float64, *Zone]
}

// maxRadiusM is half the Earth's circumference: a circle that wide covers
// it all.
const maxRadiusM = 20_015_000

// Build compiles the zone specs of a rules file. baseDir resolves relative
// `file:` paths; file is the rules file's path, named in problems.
//
// Every problem is returned, each keyed like `zones[2].geojson`. The Index
// holds the zones that compiled, so that a caller listing problems can
// still look at the rest; a reload must treat any problem as failure.
func Build(specs []config.ZoneSpec, baseDir, file string) (*Index, config.Problems) {
	ix := &Index{byID: make(map[string]*Zone, len(specs))}
	var probs config.Problems
	firstAt := make(map[string]int, len(specs))
	for i, spec := range specs {
		key := fmt.Sprintf("zones[%d]", i)
		idOK := true
		switch j, dup := firstAt[spec.ID]; {
		case strings.TrimSpace(spec.ID) == "":
			probs.Add(file, key+".id", "missing zone id")
			idOK = false
		case dup:
			probs.Add(file, key+".id", "duplicate zone id %q (first at zones[%d])", spec.ID, j)
			idOK = false
		case strings.TrimSpace(spec.ID) != spec.ID:
			probs.Add(file, key+".id", "zone id %q has spaces around it (it is compared as written)", spec.ID)
			idOK = false
		case config.LineProblem(spec.ID) != "":
			// It goes into alerts (their zone, and summaries) as a name does.
			probs.Add(file, key+".id", "%s", config.LineProblem(spec.ID))
			idOK = false
		case strings.Contains(spec.ID, `\`):
			// See model.TagFits: sent as it is, InfluxDB 1.8 could refuse
			// the alert and those written with it.
			probs.Add(file, key+".id", "zone id %q holds a backslash, which the alert measurement's zone tag cannot store", spec.ID)
			idOK = false
		default:
			firstAt[spec.ID] = i
		}
		z, ps := compile(spec, key, baseDir, file)
		probs = append(probs, ps...)
		if z == nil || !idOK {
			continue
		}
		ix.zones = append(ix.zones, z)
		ix.byID[z.ID] = z
		ix.tree.Insert([2]float64{z.bbox.Min.X, z.bbox.Min.Y}, [2]float64{z.bbox.Max.X, z.bbox.Max.Y}, z)
	}
	return ix, probs
}

// compile builds one zone from exactly one of geojson, file and circle.
func compile(spec config.ZoneSpec, key, baseDir, file string) (*Zone, config.Problems) {
	var probs config.Problems
	var sources []string
	if spec.GeoJSON != nil {
		sources = append(sources, "geojson")
	}
	if spec.File != "" {
		sources = append(sources, "file")
	}
	if spec.Circle != nil {
		sources = append(sources, "circle")
	}
	switch len(sources) {
	case 0:
		probs.Add(file, key, "zone needs one of geojson, file or circle")
		return nil, probs
	case 1:
	default:
		probs.Add(file, key, "zone has %s: give exactly one of geojson, file or circle", strings.Join(sources, " and "))
		return nil, probs
	}

	if msg := config.LineProblem(spec.Name); msg != "" {
		probs.Add(file, key+".name", "%s", msg)
	}
	for i, u := range spec.Units {
		if msg := config.LineProblem(u); msg != "" {
			probs.Add(file, fmt.Sprintf("%s.units[%d]", key, i), "%s", msg)
		}
	}
	// Units is copied: the Index outlives the decoded rules it came from.
	z := &Zone{ID: spec.ID, Site: spec.Site, Name: spec.Name, Units: slices.Clone(spec.Units)}
	switch {
	case spec.Circle != nil:
		c := spec.Circle
		ok := true
		if !(c.Lat >= -90 && c.Lat <= 90) {
			probs.Add(file, key+".circle.lat", "latitude %g out of range [-90, 90]", c.Lat)
			ok = false
		}
		if !(c.Lon >= -180 && c.Lon <= 180) {
			probs.Add(file, key+".circle.lon", "longitude %g out of range [-180, 180]", c.Lon)
			ok = false
		}
		if c.Lat == 0 && c.Lon == 0 {
			// What an absent centre decodes to: no border runs there.
			probs.Add(file, key+".circle", "needs its centre (lat and lon)")
			ok = false
		}
		if !(c.RadiusM > 0) || math.IsInf(c.RadiusM, 0) {
			probs.Add(file, key+".circle.radius_m", "radius_m must be a positive number of metres, got %g", c.RadiusM)
			ok = false
		} else if c.RadiusM > maxRadiusM {
			// Beyond it the circle covers the whole Earth: most likely a
			// radius written in another unit.
			probs.Add(file, key+".circle.radius_m", "radius_m %g is more than half the Earth's circumference (%g m): is it in metres?", c.RadiusM, float64(maxRadiusM))
			ok = false
		}
		if !ok {
			return nil, probs
		}
		z.circle = newCircle(model.Point{Lat: c.Lat, Lon: c.Lon}, c.RadiusM)
		z.bbox = circleBBox(z.circle)

	case spec.GeoJSON != nil:
		data, err := inlineJSON(spec.GeoJSON)
		if err != nil {
			probs.Add(file, key+".geojson", "%v", err)
			return nil, probs
		}
		polys, errs := parseGeoJSON(data)
		for _, err := range errs {
			k, msg := key+".geojson", err.Error()
			if pe, ok := errors.AsType[*pathError](err); ok && pe.path != "" {
				k, msg = k+"."+pe.path, pe.err.Error()
			}
			probs.Add(file, k, "%s", msg)
		}
		if len(errs) > 0 {
			return nil, probs
		}
		z.setPolys(polys)

	default:
		path := spec.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		data, err := readFile(path)
		if err != nil {
			probs.Add(file, key+".file", "%v", err)
			return nil, probs
		}
		polys, errs := parseGeoJSON(data)
		for _, err := range errs {
			probs.Add(file, key+".file", "%s: %v", path, err)
		}
		if len(errs) > 0 {
			return nil, probs
		}
		z.setPolys(polys)
	}
	z.center = z.computeCenter()
	return z, probs
}

func (z *Zone) setPolys(polys []polygon) {
	z.polys = polys
	z.bbox = polys[0].outer.box
	for i := range polys[1:] {
		z.bbox = z.bbox.union(polys[i+1].outer.box)
	}
	z.buildBoundaries()
}

// circleBBox is the lon/lat box of a spherical cap. Its longitude half-width
// is asin(sin(r/R)/cos(lat)), wider than r/(R·cos(lat)) would say, so that
// the R-tree never misses a point inside the circle.
func circleBBox(c *circle) rect {
	ang := c.r / earthRadiusM
	dLat := ang * 180 / math.Pi
	r := rect{
		Min: xy{X: -180, Y: max(c.c.Lat-dLat, -90)},
		Max: xy{X: 180, Y: min(c.c.Lat+dLat, 90)},
	}
	if r.Min.Y == -90 || r.Max.Y == 90 || ang >= math.Pi/2 {
		return r // reaches a pole: every longitude
	}
	s := math.Sin(ang) / c.cosLat
	if s >= 1 {
		return r
	}
	dLon := math.Asin(s) * 180 / math.Pi
	if c.c.Lon-dLon < -180 || c.c.Lon+dLon > 180 {
		return r // across the antimeridian: every longitude, conservatively
	}
	r.Min.X, r.Max.X = c.c.Lon-dLon, c.c.Lon+dLon
	return r
}

func readFile(path string) ([]byte, error) {
	data, err := config.ReadFile(path, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("cannot read zone file %s: %w", path, err)
	}
	// Editors on Windows start a file with a byte-order mark, which is no
	// JSON.
	return bytes.TrimPrefix(data, []byte("\uFEFF")), nil
}

// inlineJSON turns an inline `geojson:` value into JSON. YAML decodes it
// into maps and slices (with int or float64 numbers, and map[any]any where
// a key is not a string); a string is taken as JSON text, which lets an
// operator paste GeoJSON as a block scalar.
func inlineJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		if t := strings.TrimSpace(v); t != "" && t != "null" && t[0] != '{' && t[0] != '[' {
			// A block scalar of JSON starts with its object; anything
			// else is no GeoJSON (and its JSON error would be cryptic).
			return nil, errors.New("a string that is no GeoJSON object: give the object (or a JSON text starting with '{')")
		}
		return []byte(v), nil
	case []byte:
		return v, nil
	case json.RawMessage:
		return v, nil
	}
	norm, err := stringKeys(v, 0)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(norm)
	if err != nil {
		return nil, fmt.Errorf("cannot convert to GeoJSON: %w", err)
	}
	return data, nil
}

// maxDepth bounds the nesting of inline GeoJSON (a MultiPolygon is five
// levels deep under its object); deeper input is not GeoJSON and would
// only risk the stack.
const maxDepth = 64

func stringKeys(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("GeoJSON nested too deeply")
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			n, err := stringKeys(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("GeoJSON keys are strings, got %v", k)
			}
			n, err := stringKeys(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			n, err := stringKeys(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return v, nil
}

// Containing calls fn for each zone containing p (boundary included),
// stopping early if fn returns false. It walks the R-tree of bounding
// boxes and then each candidate's indexed point-in-polygon test, and
// allocates nothing.
func (ix *Index) Containing(p model.Point, fn func(*Zone) bool) {
	if ix == nil {
		return
	}
	pt := [2]float64{p.Lon, p.Lat}
	ix.tree.Search(pt, pt, func(_, _ [2]float64, z *Zone) bool {
		if z.Contains(p) {
			return fn(z)
		}
		return true
	})
}

// Near calls fn for each zone whose bounding box, grown by marginM metres,
// contains p, stopping early if fn returns false: the zones a subject may
// be entering or leaving, whose DistanceM the hysteresis rules then check.
func (ix *Index) Near(p model.Point, marginM float64, fn func(*Zone) bool) {
	if ix == nil || !validPoint(p) {
		return
	}
	if !(marginM > 0) {
		marginM = 0 // negative or NaN: the point alone
	}
	pr := newProjection(p)
	b := pr.box(marginM)
	ix.tree.Search([2]float64{b.Min.X, b.Min.Y}, [2]float64{b.Max.X, b.Max.Y},
		func(_, _ [2]float64, z *Zone) bool { return fn(z) })
}

// Get returns the zone with the given id, or nil.
func (ix *Index) Get(id string) *Zone {
	if ix == nil {
		return nil
	}
	return ix.byID[id]
}

// Len is the number of zones.
func (ix *Index) Len() int {
	if ix == nil {
		return 0
	}
	return len(ix.zones)
}

// All calls fn for each zone in the order of the rules file, stopping
// early if fn returns false.
func (ix *Index) All(fn func(*Zone) bool) {
	if ix == nil {
		return
	}
	for _, z := range ix.zones {
		if !fn(z) {
			return
		}
	}
}
