package zone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// maxVertices bounds the vertices of one zone. Real border strips run to a
// few tens of thousands; the cap only stops a mistaken file (a whole
// country's coastline) from eating the daemon's memory on reload.
const maxVertices = 1_000_000

// pathError is a GeoJSON problem at a JSON path such as
// `features[2].geometry.coordinates[0][5]`.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string {
	if e.path == "" {
		return e.err.Error()
	}
	return e.path + ": " + e.err.Error()
}

func (e *pathError) Unwrap() error { return e.err }

func atPath(path string, format string, args ...any) error {
	return &pathError{path: path, err: fmt.Errorf(format, args...)}
}

// gjObject is the subset of a GeoJSON object that zones use. Decoding into
// raw members first lets each level report its own path.
type gjObject struct {
	Type        string            `json:"type"`
	Coordinates json.RawMessage   `json:"coordinates"`
	Geometry    json.RawMessage   `json:"geometry"`
	Features    []json.RawMessage `json:"features"`
}

// rawPoly is one polygon as decoded: rings of [lon, lat] positions, the
// first ring the exterior, the others holes. A coordinate is a pointer so
// that a null is seen (nil) rather than read as 0: a polygon with one
// latitude null would otherwise reach down to the equator.
type rawPoly [][][]*float64

// parseGeoJSON returns the polygons of a Polygon, MultiPolygon, Feature of
// either, or FeatureCollection of such Features. Every problem found is
// returned, not only the first, so that `fenceline check` lists them all.
func parseGeoJSON(data []byte) ([]polygon, []error) {
	var p parser
	p.object(data, "", levelTop)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if len(p.polys) == 0 {
		return nil, []error{errors.New("no polygons")}
	}
	return p.polys, nil
}

type parser struct {
	polys    []polygon
	vertices int
	errs     []error
}

func (p *parser) fail(path, format string, args ...any) {
	p.errs = append(p.errs, atPath(path, format, args...))
}

func join(path, member string) string {
	if path == "" {
		return member
	}
	return path + "." + member
}

// level says which GeoJSON objects may stand where.
type level int

const (
	levelTop      level = iota // a zone: geometry, Feature or FeatureCollection
	levelMember                // a FeatureCollection's member: a Feature
	levelGeometry              // a Feature's geometry
)

// object parses the GeoJSON object data at path.
func (p *parser) object(data []byte, path string, lv level) {
	if t := bytes.TrimSpace(data); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		p.fail(path, "missing GeoJSON object")
		return
	}
	var o gjObject
	if err := json.Unmarshal(data, &o); err != nil {
		p.fail(path, "invalid GeoJSON: %w", jsonErr(data, err))
		return
	}
	if lv == levelMember && o.Type != "Feature" {
		p.fail(join(path, "type"), "FeatureCollection members must be Features, not %q", o.Type)
		return
	}
	switch o.Type {
	case "Polygon":
		var rings rawPoly
		if err := unmarshalCoords(o.Coordinates, &rings); err != nil {
			p.fail(join(path, "coordinates"), "%w", err)
			return
		}
		p.polygon(rings, join(path, "coordinates"))
	case "MultiPolygon":
		var polys []rawPoly
		if err := unmarshalCoords(o.Coordinates, &polys); err != nil {
			p.fail(join(path, "coordinates"), "%w", err)
			return
		}
		if len(polys) == 0 {
			p.fail(join(path, "coordinates"), "MultiPolygon has no polygons")
		}
		for i, rings := range polys {
			p.polygon(rings, fmt.Sprintf("%s[%d]", join(path, "coordinates"), i))
		}
	case "Feature":
		if lv == levelGeometry {
			p.fail(join(path, "type"), "a Feature cannot be a geometry")
			return
		}
		p.object(o.Geometry, join(path, "geometry"), levelGeometry)
	case "FeatureCollection":
		if lv != levelTop {
			p.fail(join(path, "type"), "a FeatureCollection cannot be a geometry")
			return
		}
		if len(o.Features) == 0 {
			p.fail(join(path, "features"), "FeatureCollection has no features")
		}
		for i, f := range o.Features {
			p.object(f, fmt.Sprintf("%s[%d]", join(path, "features"), i), levelMember)
		}
	case "":
		p.fail(join(path, "type"), "missing GeoJSON type")
	default:
		p.fail(join(path, "type"), "GeoJSON type %q is not supported (use Polygon, MultiPolygon, or a Feature or FeatureCollection of them)", o.Type)
	}
}

func unmarshalCoords(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return errors.New("missing coordinates")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("invalid coordinates: %w", err)
	}
	return nil
}

// polygon validates one polygon's rings and compiles them with their band
// indexes.
func (p *parser) polygon(rings rawPoly, path string) {
	if len(rings) == 0 {
		p.fail(path, "polygon has no rings")
		return
	}
	ok := true
	pts := make([][]xy, len(rings))
	for i, ring := range rings {
		pts[i] = p.ring(ring, fmt.Sprintf("%s[%d]", path, i))
		ok = ok && pts[i] != nil
	}
	if !ok {
		return
	}
	if where, msg := polygonProblem(pts, path); msg != "" {
		p.fail(where, "%s", msg)
		return
	}
	pg := polygon{outer: newRing(pts[0])}
	for _, h := range pts[1:] {
		pg.holes = append(pg.holes, newRing(h))
	}
	p.polys = append(p.polys, pg)
}

func (p *parser) ring(ring [][]*float64, path string) []xy {
	if len(ring) < 4 {
		p.fail(path, "ring has %d positions, a closed ring needs at least 4", len(ring))
		return nil
	}
	p.vertices += len(ring)
	if p.vertices > maxVertices {
		p.fail(path, "zone has more than %d vertices", maxVertices)
		return nil
	}
	pts := make([]xy, len(ring))
	// A ring with lat and lon swapped is wrong at every position: report
	// the first and count the rest rather than print thousands of lines.
	bad, firstBad := 0, ""
	var firstErr error
	for i, pos := range ring {
		var err error
		switch {
		case len(pos) < 2:
			err = fmt.Errorf("position needs [lon, lat], got %d numbers", len(pos))
		case pos[0] == nil || pos[1] == nil:
			err = fmt.Errorf("position %s holds null, want [lon, lat] numbers", positionText(pos))
		case !(*pos[0] >= -180 && *pos[0] <= 180) || !(*pos[1] >= -90 && *pos[1] <= 90):
			err = fmt.Errorf("position [%g, %g] out of range (GeoJSON is [lon, lat]: lon in [-180, 180], lat in [-90, 90])", *pos[0], *pos[1])
		default:
			pts[i] = xy{X: *pos[0], Y: *pos[1]}
			continue
		}
		if bad == 0 {
			firstBad, firstErr = fmt.Sprintf("%s[%d]", path, i), err
		}
		bad++
	}
	switch {
	case bad == 1:
		p.fail(firstBad, "%w", firstErr)
	case bad > 1:
		p.fail(firstBad, "%w (and %d more bad positions in this ring)", firstErr, bad-1)
	}
	if bad > 0 {
		return nil
	}
	if pts[0] != pts[len(pts)-1] {
		p.fail(path, "ring is not closed: first position %s differs from last %s", positionText(ring[0]), positionText(ring[len(ring)-1]))
		return nil
	}
	if signedArea(pts) == 0 {
		p.fail(path, "ring has no area (all positions on one line, or a ring crossing itself whose parts cancel out)")
		return nil
	}
	return pts
}

// jsonErr adds the line of a syntax error, which encoding/json reports only
// as a byte offset.
func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 && int(se.Offset) <= len(data) {
		line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
		return fmt.Errorf("line %d: %w", line, err)
	}
	// A value of the wrong JSON type: say which, not which Go type it
	// did not fit.
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("a JSON %s where a GeoJSON object (with \"type\") belongs", te.Value)
		}
		return fmt.Errorf("%s: a JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.Kind()))
	}
	return err
}

// jsonKind names a Go kind as the JSON type it decodes.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Bool:
		return "boolean"
	}
	return "number"
}

// positionText prints a decoded position as its JSON: [110.1, null].
func positionText(pos []*float64) string {
	parts := make([]string, len(pos))
	for i, c := range pos {
		parts[i] = "null"
		if c != nil {
			parts[i] = strconv.FormatFloat(*c, 'g', -1, 64)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
