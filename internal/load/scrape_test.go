package load

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP fenceline_influx_points_written_total Points acknowledged by InfluxDB, by measurement.
# TYPE fenceline_influx_points_written_total counter
fenceline_influx_points_written_total{measurement="alert"} 3
fenceline_influx_points_written_total{measurement="phone_detection"} 400000
fenceline_influx_points_written_total{measurement="vehicle_pass"} 1.5e+06
fenceline_ingest_rejections_total{reason="bad_rssi"} 7
fenceline_ingest_rejections_total{reason="unknown_device"} 2 1700000000000
weird{a="x\"y",b="back\\slash",c="line\nbreak",} 1
process_cpu_seconds_total 12.5
`
	m, err := ParseMetrics(strings.NewReader(text))
	require.NoError(t, err)
	require.Equal(t, 1_900_003.0, m.Sum("fenceline_influx_points_written_total", nil))
	require.Equal(t, 400_000.0, m.Sum("fenceline_influx_points_written_total", map[string]string{"measurement": "phone_detection"}))
	require.Equal(t, 9.0, m.Sum("fenceline_ingest_rejections_total", nil))
	require.Equal(t, map[string]float64{"bad_rssi": 7, "unknown_device": 2}, m.ByLabel("fenceline_ingest_rejections_total", "reason"))
	require.Equal(t, 12.5, m.Sum("process_cpu_seconds_total", nil))
	require.Equal(t, map[string]string{"a": `x"y`, "b": `back\slash`, "c": "line\nbreak"}, m["weird"][0].Labels)
	require.Zero(t, m.Sum("absent", nil))

	_, err = ParseMetrics(strings.NewReader("broken{a=\"x\" 1\n"))
	require.Error(t, err)
	_, err = ParseMetrics(strings.NewReader("novalue\n"))
	require.Error(t, err)
}

func TestHistogramDelta(t *testing.T) {
	parse := func(s string) Metrics {
		m, err := ParseMetrics(strings.NewReader(s))
		require.NoError(t, err)
		return m
	}
	before := parse(`h_bucket{le="0.01"} 10
h_bucket{le="0.1"} 10
h_bucket{le="1"} 10
h_bucket{le="+Inf"} 10
`)
	// 100 more: 50 under 10 ms, 40 in (10 ms, 100 ms], 9 in (100 ms, 1 s], 1 above.
	after := parse(`h_bucket{le="0.01"} 60
h_bucket{le="0.1"} 100
h_bucket{le="1"} 109
h_bucket{le="+Inf"} 110
`)
	h, ok := histogramDelta(before, after, "h")
	require.True(t, ok)
	require.Equal(t, 100.0, h.Count)
	require.InDelta(t, 0.01, h.P50, 1e-9)
	require.InDelta(t, 1.0, h.P99, 1e-9)
	_, ok = histogramDelta(before, after, "absent")
	require.False(t, ok)
}
