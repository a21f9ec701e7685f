// Package tagcap bounds the distinct values of the InfluxDB tags whose
// values are device text: tech, mcc and operator (detections: the latter two
// are digits of an IMSI, which a garbled or hostile one makes anything),
// plate_color and vehicle_type (passes). The contract bounds tag values by devices, sites, rules and code
// lists, never by what is seen; these three are code lists in practice, but
// a device sends whatever it likes, and every new value is a new series for
// ever (a camera with a bug, a forger). So each of them admits its first
// Max distinct values as tags; a later new value is stored with the tag
// "other" and its text in a field of its own (tech_text, plate_color_text,
// vehicle_type_text): nothing is lost, and the series stay bounded. The
// values admitted are kept in a file in storage.dir, so that a restart does
// not admit Max more.
package tagcap

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fenceline/fenceline/internal/atomicfile"
	"github.com/fenceline/fenceline/internal/model"
)

// The tags bounded, by their InfluxDB names.
const (
	TagTech        = "tech"
	TagMCC         = "mcc"
	TagOperator    = "operator"
	TagPlateColor  = "plate_color"
	TagVehicleType = "vehicle_type"
)

var tags = []string{TagTech, TagMCC, TagOperator, TagPlateColor, TagVehicleType}

// Cap admits tag values up to its bound. It is used by one goroutine (the
// pipeline's).
type Cap struct {
	max  int
	path string // "" keeps nothing on disk
	seen map[string]*valueSet
	log  *slog.Logger
	// The sets of the tags, for the hot path.
	tech, mcc, operator, plateColor, vehicleType *valueSet

	overflow *prometheus.CounterVec
	values   *prometheus.GaugeVec

	warned map[string]time.Time // per tag: the last overflow warning
	quiet  map[string]int       // per tag: overflows not logged since
}

// Open returns a Cap admitting max values per tag, with the values already
// admitted read from path (none if it does not exist). A file that cannot
// be read or parsed (a crash mid-write on a disk that lied about fsync, an
// edit gone wrong) is logged and started afresh: it may admit max values
// more, which is no reason to keep fenceline from starting.
func Open(path string, max int, log *slog.Logger, reg prometheus.Registerer) (*Cap, error) {
	if max < 1 {
		return nil, fmt.Errorf("tag value bound %d: must be at least 1", max)
	}
	f := promauto.With(reg)
	c := &Cap{
		max: max, path: path, seen: map[string]*valueSet{}, log: log.With("component", "tagcap"),
		overflow: f.NewCounterVec(prometheus.CounterOpts{Name: "fenceline_ingest_tag_overflow_readings_total",
			Help: "Readings stored with the tag \"other\" (their text in <tag>_text) because the tag had reached influx.max_tag_values distinct values."}, []string{"tag"}),
		values: f.NewGaugeVec(prometheus.GaugeOpts{Name: "fenceline_ingest_tag_values",
			Help: "Distinct values admitted as tags, per tag whose values are device text (bounded by influx.max_tag_values)."}, []string{"tag"}),
		warned: map[string]time.Time{}, quiet: map[string]int{},
	}
	for _, t := range tags {
		c.seen[t] = &valueSet{all: map[string]struct{}{}}
		c.overflow.WithLabelValues(t)
	}
	c.tech, c.mcc, c.operator = c.seen[TagTech], c.seen[TagMCC], c.seen[TagOperator]
	c.plateColor, c.vehicleType = c.seen[TagPlateColor], c.seen[TagVehicleType]
	if path != "" {
		kept, err := readKept(path)
		if err != nil {
			c.log.Warn("tag values file unreadable; starting afresh (it is rewritten at the next new value)", "file", path, "err", err)
		}
		for t, vs := range kept {
			if s := c.seen[t]; s != nil {
				for _, v := range vs {
					s.add(v)
				}
			}
		}
	}
	for _, t := range tags {
		c.values.WithLabelValues(t).Set(float64(len(c.seen[t].all)))
	}
	return c, nil
}

// readKept reads the values admitted before (none if the file does not
// exist).
func readKept(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var kept map[string][]string
	if err := json.Unmarshal(data, &kept); err != nil {
		return nil, err
	}
	return kept, nil
}

// Batch replaces, in b, the values of bounded tags that are over the bound
// by "other", moving their text to the reading's *Text field. A nil Cap
// does nothing.
func (c *Cap) Batch(b *model.Batch) {
	if c == nil {
		return
	}
	for i := range b.Detections {
		d := &b.Detections[i]
		c.bound(c.tech, TagTech, &d.Tech, &d.TechText)
		c.bound(c.mcc, TagMCC, &d.MCC, &d.MCCText)
		c.bound(c.operator, TagOperator, &d.Operator, &d.OperatorText)
	}
	for i := range b.Passes {
		p := &b.Passes[i]
		c.bound(c.plateColor, TagPlateColor, &p.PlateColor, &p.PlateColorText)
		c.bound(c.vehicleType, TagVehicleType, &p.VehicleType, &p.VehicleTypeText)
	}
}

// bound replaces *v, a value of tag (whose values are s), by OverflowTag
// when it is over the bound, moving it to *text.
func (c *Cap) bound(s *valueSet, tag string, v, text *string) {
	if *v != "" && !c.admit(s, tag, *v) {
		*text, *v = *v, model.OverflowTag
	}
}

// valueSet is the values admitted for one tag: all of them, and the first
// few, which nearly every reading has, in an array that is faster to scan
// than the map is to hash.
type valueSet struct {
	last string // the value found last: the readings of a message share most
	hot  [8]string
	n    int
	all  map[string]struct{}
}

func (s *valueSet) has(v string) bool {
	if v == s.last {
		return true
	}
	for _, h := range s.hot[:s.n] {
		if h == v {
			s.last = h
			return true
		}
	}
	if len(s.all) == s.n {
		return false
	}
	_, ok := s.all[v]
	return ok
}

func (s *valueSet) add(v string) {
	if s.has(v) {
		return
	}
	v = strings.Clone(v) // not the message's text it is part of
	s.all[v] = struct{}{}
	if s.n < len(s.hot) {
		s.hot[s.n] = v
		s.n++
	}
}

// admit reports whether v may be a value of tag (whose values are s): it is
// one already, or there is room for it (then it is remembered).
func (c *Cap) admit(s *valueSet, tag, v string) bool {
	if s.has(v) || v == model.OverflowTag {
		return true
	}
	if len(s.all) >= c.max {
		c.overflow.WithLabelValues(tag).Inc()
		c.warn(tag)
		return false
	}
	s.add(v)
	c.values.WithLabelValues(tag).Set(float64(len(s.all)))
	if err := c.save(); err != nil {
		// Kept in memory all the same: a restart may then admit a few
		// values again, which is no reason to refuse this one.
		c.log.Error("could not keep the tag values admitted; a restart may admit more", "err", err)
	}
	return true
}

// warn logs an overflow of tag at most once a minute, with how many were not
// logged since (the value itself is device text: not logged).
func (c *Cap) warn(tag string) {
	now := time.Now()
	if now.Sub(c.warned[tag]) < time.Minute {
		c.quiet[tag]++
		return
	}
	c.log.Warn("tag at its bound of distinct values; new values are stored as \"other\" with their text in a field",
		"tag", tag, "bound", c.max, "field", tag+"_text", "same_warnings_not_logged", c.quiet[tag])
	c.warned[tag], c.quiet[tag] = now, 0
}

// save writes the values admitted to the file, atomically (a new value is
// rare: at most max per tag over the deployment's life).
func (c *Cap) save() error {
	if c.path == "" {
		return nil
	}
	kept := map[string][]string{}
	for t, s := range c.seen {
		vs := make([]string, 0, len(s.all))
		for v := range s.all {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		kept[t] = vs
	}
	data, err := json.MarshalIndent(kept, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(c.path, append(data, '\n'))
}
