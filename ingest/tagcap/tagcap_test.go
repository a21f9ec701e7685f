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

func techs(c *Cap, vs ...string) (tags, texts []string) {
	b := &model.Batch{}
	for _, v := range vs {
		b.Detections = append(b.Detections, model.Detection{Tech: v})
	}
	c.Batch(b)
	for _, d := range b.Detections {
		tags, texts = append(tags, d.Tech), append(texts, d.TechText)
	}
	return tags, texts
}

func TestCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tag-values.json")
	c, _ := open(t, path, 2)
	tags, texts := techs(c, "lte", "", "nr", "gsm", "lte", "other", "gsm")
	assert.Equal(t, []string{"lte", "", "nr", "other", "lte", "other", "other"}, tags,
		"the first two values are tags; an empty one is no tag; \"other\" sent by a device stays")
	assert.Equal(t, []string{"", "", "", "gsm", "", "", "gsm"}, texts, "the text of a value over the bound is kept")
	assert.Equal(t, 2.0, testutil.ToFloat64(c.overflow.WithLabelValues(TagTech)))
	assert.Equal(t, 2.0, testutil.ToFloat64(c.values.WithLabelValues(TagTech)))

	b := &model.Batch{Passes: []model.Pass{{PlateColor: "blue", VehicleType: "K33"}, {PlateColor: "yellow", VehicleType: "H11"}, {PlateColor: "green", VehicleType: "K33"}}}
	c.Batch(b)
	assert.Equal(t, model.Pass{PlateColor: "other", PlateColorText: "green", VehicleType: "K33"}, b.Passes[2], "each tag has a bound of its own")

	// A restart keeps what was admitted: no room for new values.
	again, _ := open(t, path, 2)
	tags, _ = techs(again, "umts", "nr")
	assert.Equal(t, []string{"other", "nr"}, tags)
}

// A damaged file does not keep fenceline from starting: it starts afresh,
// and the file is rewritten whole at the next new value.
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
	b := &model.Batch{Detections: []model.Detection{{Tech: "lte"}}}
	c.Batch(b)
	assert.Equal(t, "lte", b.Detections[0].Tech)
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
	b := &model.Batch{}
	for _, imsi := range []string{"460001", "428991", "310150", "460011"} {
		b.Detections = append(b.Detections, model.Detection{IMSI: imsi, MCC: imsi[:3], Operator: imsi[:5]})
	}
	c.Batch(b)
	var mcc, op []string
	for _, d := range b.Detections {
		mcc, op = append(mcc, d.MCC+"|"+d.MCCText), append(op, d.Operator+"|"+d.OperatorText)
	}
	assert.Equal(t, []string{"460|", "428|", "other|310", "460|"}, mcc)
	assert.Equal(t, []string{"46000|", "42899|", "other|31015", "other|46001"}, op)
}
