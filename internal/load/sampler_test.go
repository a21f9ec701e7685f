package load

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The sampler's stored and rejected counts go on from where they were when
// the daemon restarts (its counters start from zero again), and stand still
// over a failed scrape: a progress log read stored=-134755, and the run
// waited its whole settle period for a total it never saw.
func TestSamplerOverARestart(t *testing.T) {
	const head = "# TYPE process_start_time_seconds gauge\n# TYPE fenceline_influx_points_written_total counter\n" +
		"# TYPE fenceline_ingest_rejections_total counter\n# TYPE process_cpu_seconds_total counter\n"
	expo := func(start, stored, rejected, cpu string) string {
		return head + "process_start_time_seconds " + start + "\n" +
			"fenceline_influx_points_written_total{measurement=\"phone_detection\"} " + stored + "\n" +
			"fenceline_influx_points_written_total{measurement=\"alert\"} 1000\n" + // not a reading
			"fenceline_ingest_rejections_total{reason=\"bad_rssi\"} " + rejected + "\n" +
			"process_cpu_seconds_total " + cpu + "\n"
	}
	scrapes := []string{
		expo("1000", "100", "2", "20"),
		expo("1000", "134755", "9", "42"),
		"", // the daemon is down: a failed scrape
		expo("2000", "40", "1", "0.5"),
		expo("2000", "200", "3", "3"),
	}
	next := make(chan string, len(scrapes))
	for _, s := range scrapes {
		next <- s
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s := <-next
		if s == "" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, s)
	}))
	defer srv.Close()
	smp := newSampler(Target{MetricsURL: srv.URL}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))

	for i, want := range []struct {
		stored, rejections float64
		failed             bool
		restarts           int
	}{
		{stored: 100, rejections: 2},
		{stored: 134755, rejections: 9},
		{stored: 134755, rejections: 9, failed: true},
		{stored: 134795, rejections: 10, restarts: 1},
		{stored: 134955, rejections: 12, restarts: 1},
	} {
		s, err := smp.take(context.Background())
		require.Equal(t, want.failed, err != nil, "scrape %d: %v", i, err)
		require.Equal(t, want.stored, s.Stored, "scrape %d", i)
		require.Equal(t, want.rejections, s.Rejections, "scrape %d", i)
		require.Equal(t, want.rejections, s.Metrics.Sum("fenceline_ingest_rejections_total", nil), "scrape %d: the report's figures", i)
		require.Equal(t, want.restarts, smp.restarted(), "scrape %d", i)
	}
	all := smp.all()
	require.InDelta(t, 25.0, daemonCPU(all[0], all[len(all)-1], "fenceline"), 1e-9, "22 s of the first process, 3 s of the second")
}

// The daemon's CPU comes from /proc while its process lives through the
// window, else from its metrics (summed over its processes): its pid gone
// at the end of the window made it the negative of the CPU at the start.
func TestDaemonCPU(t *testing.T) {
	metrics := func(cpu float64) Metrics {
		return Metrics{"process_cpu_seconds_total": {{Value: cpu, Cumulative: true}}}
	}
	for _, tc := range []struct {
		name string
		a, b sample
		want float64
	}{
		{"proc", sample{CPU: map[string]time.Duration{"fenceline": time.Second}, Metrics: metrics(1)},
			sample{CPU: map[string]time.Duration{"fenceline": 3 * time.Second}, Metrics: metrics(9)}, 2},
		{"pid gone: metrics", sample{CPU: map[string]time.Duration{"fenceline": 22 * time.Second}, Metrics: metrics(22)},
			sample{CPU: map[string]time.Duration{}, Metrics: metrics(30)}, 8},
		{"no pid: metrics", sample{Metrics: metrics(22)}, sample{Metrics: metrics(30)}, 8},
		{"pid gone, no metrics", sample{CPU: map[string]time.Duration{"fenceline": 22 * time.Second}}, sample{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.want, daemonCPU(tc.a, tc.b, "fenceline"), 1e-9)
		})
	}
}
