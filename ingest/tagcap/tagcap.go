// Package tagcap bounds the distinct values of the InfluxDB tags whose
// values are device text: tech, mcc and operator (detections: the latter two
// are digits of an IMSI, which a garbled or hostile one makes anything),
// plate_color and vehicle_type (passes). The contract bounds tag values by
// devices, sites, rules and code lists, never by what is seen; these are
// code lists in practice, but a device sends whatever it likes, and every
// new value is a new series for ever (a camera with a bug, a forger). So
// each of them admits its first Max distinct values as tags; a later new
// value is stored with the tag "other" and its text in a field of its own
// (tech_text, mcc_text, operator_text, plate_color_text, vehicle_type_text):
// nothing is lost, and the series stay bounded. The values admitted are kept
// in a file in storage.dir, so that a restart does not admit Max more. A
// value that cannot be a tag as sent (model.TagFits: a backslash,
// a control character, invalid UTF-8) is refused the same way, whatever
// the bound: as a tag it would be stored mangled, or not at all.
//
// A Cap only decides and counts; the line encoder (ingest/influxwriter)
// substitutes. It asks once per tag set it has not cached, not per reading:
// an answer never changes, so it caches it with the encoded tags.
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

// Cap admits tag values up to its bound. It is used by one goroutine: the
// pipeline's, which encodes the readings (influxwriter.Writer.Write).
type Cap struct {
	max  int
	path string // "" keeps nothing on disk
	seen map[string]*valueSet
	log  *slog.Logger
	// The sets of the tags, for the hot path.
	tech, mcc, operator, plateColor, vehicleType *valueSet

	overflow *prometheus.CounterVec
	unfit    *prometheus.CounterVec
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
		unfit: f.NewCounterVec(prometheus.CounterOpts{Name: "fenceline_ingest_tag_unfit_readings_total",
			Help: "Readings stored with the tag \"other\" (their text in <tag>_text) because their value cannot be a tag as sent: it holds a backslash (the decoder rejects control characters and invalid UTF-8 before)."}, []string{"tag"}),
		values: f.NewGaugeVec(prometheus.GaugeOpts{Name: "fenceline_ingest_tag_values",
			Help: "Distinct values admitted as tags, per tag whose values are device text (bounded by influx.max_tag_values)."}, []string{"tag"}),
		warned: map[string]time.Time{}, quiet: map[string]int{},
	}
	for _, t := range tags {
		c.seen[t] = &valueSet{all: map[string]struct{}{}, overflow: c.overflow.WithLabelValues(t), unfit: c.unfit.WithLabelValues(t)}
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
					// One admitted by an older fenceline that no longer
					// fits (a backslash inside) is forgotten: admitted, it
					// would still be written as a tag.
					if model.TagFits(v) {
						s.add(v)
					}
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

// Admit reports whether v may be stored as a value of tag: it is one
// already, or there is room for it (then it is remembered, and kept in the
// file). It counts nothing: the caller stores a value refused as
// model.OverflowTag and says so with Overflowed, once per reading, whether
// it asked Admit or reused an answer it had. An answer never changes (the
// sets only grow, and a refusal means the set is full), so a caller may keep
// it for as long as it likes. A tag that is not bounded admits everything,
// and so does "other" sent by a device: it is the value of the overflow
// anyway. A nil Cap admits everything.
func (c *Cap) Admit(tag, v string) bool {
	if c == nil {
		return true
	}
	s := c.set(tag)
	if s == nil || v == model.OverflowTag || s.has(v) {
		return true
	}
	if len(s.all) >= c.max || !model.TagFits(v) {
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

// Overflowed counts a reading stored with the tag "other" in place of its
// value v of tag, which Admit refused, and warns at most once a minute.
func (c *Cap) Overflowed(tag, v string) {
	if c == nil {
		return
	}
	s := c.set(tag)
	if s == nil {
		return
	}
	if !model.TagFits(v) {
		s.unfit.Inc()
		c.warnUnfit(tag)
		return
	}
	s.overflow.Inc()
	c.warn(tag)
}

// set returns the values of tag, nil if tag is not bounded. A switch rather
// than c.seen: Overflowed runs for every reading over the bound.
func (c *Cap) set(tag string) *valueSet {
	switch tag {
	case TagTech:
		return c.tech
	case TagMCC:
		return c.mcc
	case TagOperator:
		return c.operator
	case TagPlateColor:
		return c.plateColor
	case TagVehicleType:
		return c.vehicleType
	}
	return nil
}

// valueSet is the values admitted for one tag: all of them, and the first
// few, which nearly every reading has, in an array that is faster to scan
// than the map is to hash.
type valueSet struct {
	last string // the value found last: the readings of a message share most
	hot  [8]string
	n    int
	all  map[string]struct{}

	overflow prometheus.Counter // the tag's overflow_readings_total
	unfit    prometheus.Counter // the tag's unfit_readings_total
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

// warnUnfit logs a value of tag that cannot be a tag at most once a minute
// (the value itself is device text: not logged).
func (c *Cap) warnUnfit(tag string) {
	key := tag + " unfit"
	now := time.Now()
	if now.Sub(c.warned[key]) < time.Minute {
		c.quiet[key]++
		return
	}
	c.log.Warn("a device sent a tag value that cannot be a tag as it is (a backslash: the decoder refuses control characters and invalid UTF-8 before); stored as \"other\" with its text in a field",
		"tag", tag, "field", tag+"_text", "same_warnings_not_logged", c.quiet[key])
	c.warned[key], c.quiet[key] = now, 0
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
