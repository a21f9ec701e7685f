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

// A daemon that restarts starts its counters from zero again: the scrapes
// are summed over its processes, as Prometheus's increase() does, not
// subtracted across the restart.
func TestCountersSumOverRestarts(t *testing.T) {
	const head = `# TYPE process_start_time_seconds gauge
# TYPE stored_total counter
# TYPE queue gauge
# TYPE lat histogram
`
	for _, tc := range []struct {
		name      string
		scrapes   []string
		metric    string
		match     map[string]string
		want      []float64 // the metric's sum after each scrape
		restarted []bool
	}{
		{
			name:      "no restart",
			scrapes:   []string{"stored_total 10", "stored_total 15", "stored_total 15", "stored_total 20"},
			metric:    "stored_total",
			want:      []float64{10, 15, 15, 20},
			restarted: []bool{false, false, false, false},
		},
		{
			name:      "a counter goes down",
			scrapes:   []string{"stored_total 100", "stored_total 130", "stored_total 5", "stored_total 12"},
			metric:    "stored_total",
			want:      []float64{100, 130, 135, 142},
			restarted: []bool{false, false, true, false},
		},
		{
			name:      "two restarts",
			scrapes:   []string{"stored_total 100", "stored_total 3", "stored_total 9", "stored_total 1"},
			metric:    "stored_total",
			want:      []float64{100, 103, 109, 110},
			restarted: []bool{false, true, false, true},
		},
		{
			name: "the start time changes though the counter grew past its old value",
			scrapes: []string{
				"process_start_time_seconds 1000\nstored_total 10",
				"process_start_time_seconds 2000\nstored_total 40",
				"process_start_time_seconds 2000\nstored_total 45",
			},
			metric:    "stored_total",
			want:      []float64{10, 50, 55},
			restarted: []bool{false, true, false},
		},
		{
			name: "a series the new process has not exposed yet keeps its total",
			scrapes: []string{
				"stored_total{m=\"a\"} 7\nstored_total{m=\"b\"} 50",
				"stored_total{m=\"b\"} 2",
				"stored_total{m=\"a\"} 1\nstored_total{m=\"b\"} 4",
			},
			metric:    "stored_total",
			match:     map[string]string{"m": "a"},
			want:      []float64{7, 7, 8},
			restarted: []bool{false, true, false},
		},
		{
			name:      "a gauge is as scraped",
			scrapes:   []string{"queue 10\nstored_total 1", "queue 3\nstored_total 2", "queue 8\nstored_total 0"},
			metric:    "queue",
			want:      []float64{10, 3, 8},
			restarted: []bool{false, false, true},
		},
		{
			name: "histogram buckets",
			scrapes: []string{
				"lat_bucket{le=\"1\"} 4\nlat_bucket{le=\"+Inf\"} 6\nlat_count 6\nlat_sum 9",
				"lat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_count 2\nlat_sum 3",
			},
			metric:    "lat_count",
			want:      []float64{6, 8},
			restarted: []bool{false, true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c counters
			for i, s := range tc.scrapes {
				m, err := ParseMetrics(strings.NewReader(head + s + "\n"))
				require.NoError(t, err)
				got, restarted := c.add(m)
				require.Equal(t, tc.want[i], got.Sum(tc.metric, tc.match), "scrape %d", i)
				require.Equal(t, tc.restarted[i], restarted, "scrape %d", i)
			}
		})
	}
}

// The quantiles of a histogram across a restart are those of the
// observations of both processes.
func TestHistogramDeltaOverARestart(t *testing.T) {
	var c counters
	scrape := func(s string) Metrics {
		m, err := ParseMetrics(strings.NewReader("# TYPE h histogram\n" + s))
		require.NoError(t, err)
		out, _ := c.add(m)
		return out
	}
	before := scrape("h_bucket{le=\"0.1\"} 10\nh_bucket{le=\"1\"} 10\nh_bucket{le=\"+Inf\"} 10\n")
	// 50 fast ones, then a restart and 50 slow ones.
	scrape("h_bucket{le=\"0.1\"} 60\nh_bucket{le=\"1\"} 60\nh_bucket{le=\"+Inf\"} 60\n")
	after := scrape("h_bucket{le=\"0.1\"} 0\nh_bucket{le=\"1\"} 50\nh_bucket{le=\"+Inf\"} 50\n")
	h, ok := histogramDelta(before, after, "h")
	require.True(t, ok)
	require.Equal(t, 100.0, h.Count)
	require.InDelta(t, 0.1, h.P50, 1e-9)
	require.InDelta(t, 0.982, h.P99, 1e-9) // 49 of the slow ones in (0.1, 1]
}

func TestParseMetricsCumulative(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(`# TYPE c_total counter
c_total 1
# TYPE g gauge
g 1
# TYPE h histogram
h_bucket{le="+Inf"} 1
h_sum 1
h_count 1
# TYPE s summary
s{quantile="0.5"} 1
s_sum 1
s_count 1
untyped 1
`))
	require.NoError(t, err)
	for name, want := range map[string]bool{"c_total": true, "g": false, "h_bucket": true, "h_sum": true, "h_count": true,
		"s": false, "s_sum": true, "s_count": true, "untyped": false} {
		require.Equal(t, want, m[name][0].Cumulative, name)
	}
}
