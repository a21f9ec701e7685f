package tagcap

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/influxwriter"
	"github.com/fenceline/fenceline/internal/model"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, path string, max int) (*Cap, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := Open(path, max, quiet, reg)
	require.NoError(t, err)
	return c, reg
}

// The Cap is the bound of the line encoder.
var _ influxwriter.TagBound = (*Cap)(nil)

// store is what the encoder does with the values of one tag: Admit, and
// for a value refused "other" with its text, counted.
func store(c *Cap, tag string, vs ...string) (tags, texts []string) {
	for _, v := range vs {
		text := ""
		if v != "" && !c.Admit(tag, v) {
			c.Overflowed(tag, v)
			v, text = model.OverflowTag, v
		}
		tags, texts = append(tags, v), append(texts, text)
	}
	return tags, texts
}

func techs(c *Cap, vs ...string) (tags, texts []string) { return store(c, TagTech, vs...) }

func TestCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tag-values.json")
	c, _ := open(t, path, 2)
	tags, texts := techs(c, "lte", "", "nr", "gsm", "lte", "other", "gsm")
	assert.Equal(t, []string{"lte", "", "nr", "other", "lte", "other", "other"}, tags,
		"the first two values are tags; an empty one is no tag; \"other\" sent by a device stays")
	assert.Equal(t, []string{"", "", "", "gsm", "", "", "gsm"}, texts, "the text of a value over the bound is kept")
	assert.Equal(t, 2.0, testutil.ToFloat64(c.overflow.WithLabelValues(TagTech)))
	assert.Equal(t, 2.0, testutil.ToFloat64(c.values.WithLabelValues(TagTech)))

	colors, colorTexts := store(c, TagPlateColor, "blue", "yellow", "green")
	types, _ := store(c, TagVehicleType, "K33", "H11", "K33")
	assert.Equal(t, []string{"blue", "yellow", "other"}, colors, "each tag has a bound of its own")
	assert.Equal(t, "green", colorTexts[2])
	assert.Equal(t, []string{"K33", "H11", "K33"}, types)

	// A restart keeps what was admitted: no room for new values.
	again, _ := open(t, path, 2)
	tags, _ = techs(again, "umts", "nr")
	assert.Equal(t, []string{"other", "nr"}, tags)
}

// Admit counts nothing: the encoder asks once per tag set and counts every
// reading it writes with "other" through Overflowed. A refusal is for good,
// which is what lets the encoder cache it.
func TestCapAdmitAndOverflowed(t *testing.T) {
	c, _ := open(t, "", 1)
	require.True(t, c.Admit(TagTech, "lte"))
	for range 3 {
		require.False(t, c.Admit(TagTech, "nr"))
		require.True(t, c.Admit(TagTech, "lte"))
	}
	assert.Zero(t, testutil.ToFloat64(c.overflow.WithLabelValues(TagTech)), "Admit counts nothing")
	for range 5 {
		c.Overflowed(TagTech, "nr")
	}
	c.Overflowed(TagMCC, "310")
	assert.Equal(t, 5.0, testutil.ToFloat64(c.overflow.WithLabelValues(TagTech)))
	assert.Equal(t, 1.0, testutil.ToFloat64(c.overflow.WithLabelValues(TagMCC)))
	assert.Equal(t, 4, c.quiet[TagTech], "one warning a minute per tag")
	assert.Zero(t, c.quiet[TagMCC])

	// A tag that is not bounded admits everything and counts nothing.
	for _, v := range []string{"inbound", "outbound", "sideways"} {
		assert.True(t, c.Admit("direction", v))
	}
	c.Overflowed("direction", "sideways")
	assert.Zero(t, testutil.ToFloat64(c.overflow.WithLabelValues("direction")))
}

func TestCapUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tag-values.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"tech": ["gsm", "lte"`), 0o600))
	c, _ := open(t, path, 2)
	tags, _ := techs(c, "nr")
	assert.Equal(t, []string{"nr"}, tags)
	again, _ := open(t, path, 2)
	assert.Equal(t, 1.0, testutil.ToFloat64(again.values.WithLabelValues(TagTech)), "rewritten whole")
	_, err := Open("", 0, quiet, prometheus.NewRegistry())
	require.Error(t, err)
}

func TestCapNil(t *testing.T) {
	var c *Cap
	assert.True(t, c.Admit(TagTech, "lte"))
	c.Overflowed(TagTech, "lte")
}

// A value that cannot be a tag as sent is refused whatever the bound, and
// kept whole as text: a trailing backslash would escape the tag's
// separator (InfluxDB stored `x\` as "x"), `\\` was no tag at all, and one
// before an escaped character made InfluxDB 1.8 run the line into the next
// (see model.TagFits). It is counted apart from the bound's overflow, and
// never admitted.
func TestCapRefusesValuesThatCannotBeTags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tag-values.json")
	c, _ := open(t, path, 100)
	vs := []string{`x\`, `\\`, `Q\`, "a\x01b", "bad\xffutf8", `K\33`, `\ \="`, "blue"}
	tags, texts := store(c, TagPlateColor, vs...)
	assert.Equal(t, []string{"other", "other", "other", "other", "other", "other", "other", "blue"}, tags)
	assert.Equal(t, []string{`x\`, `\\`, `Q\`, "a\x01b", "bad\xffutf8", `K\33`, `\ \="`, ""}, texts)
	assert.Equal(t, 7.0, testutil.ToFloat64(c.unfit.WithLabelValues(TagPlateColor)))
	assert.Zero(t, testutil.ToFloat64(c.overflow.WithLabelValues(TagPlateColor)), "no overflow of the bound")
	assert.Equal(t, 1.0, testutil.ToFloat64(c.values.WithLabelValues(TagPlateColor)), "only the values that fit are admitted")
}

// A value an older fenceline admitted that no longer fits is not taken
// from the file: admitted, it would still be written as a tag.
func TestCapForgetsKeptValuesThatNoLongerFit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tag-values.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"plate_color": ["blue", "K\\33"]}`), 0o600))
	c, _ := open(t, path, 100)
	tags, texts := store(c, TagPlateColor, "blue", `K\33`)
	assert.Equal(t, []string{"blue", "other"}, tags)
	assert.Equal(t, []string{"", `K\33`}, texts)
	assert.Equal(t, 1.0, testutil.ToFloat64(c.values.WithLabelValues(TagPlateColor)))
}

// Past the first few values (kept in an array) the map holds the rest.
func TestCapManyValues(t *testing.T) {
	c, _ := open(t, "", 12)
	var vs []string
	for i := range 13 {
		vs = append(vs, string(rune('a'+i)))
	}
	first, _ := techs(c, vs...)
	again, _ := techs(c, vs...)
	want := append(append([]string{}, vs[:12]...), "other")
	assert.Equal(t, want, first)
	assert.Equal(t, want, again)
}

// mcc and operator come from the IMSI's digits, which a garbled or hostile
// IMSI makes anything: they are bounded too.
func TestCapMCCAndOperator(t *testing.T) {
	c, _ := open(t, "", 2)
	var mccs, ops []string
	for _, imsi := range []string{"460001", "428991", "310150", "460011"} {
		mccs, ops = append(mccs, imsi[:3]), append(ops, imsi[:5])
	}
	mcc, mccText := store(c, TagMCC, mccs...)
	op, opText := store(c, TagOperator, ops...)
	assert.Equal(t, []string{"460", "428", "other", "460"}, mcc)
	assert.Equal(t, []string{"", "", "310", ""}, mccText)
	assert.Equal(t, []string{"46000", "42899", "other", "other"}, op)
	assert.Equal(t, []string{"", "", "31015", "46001"}, opText)
}
