package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/testenv"
)

// Once the daemon restarted, whether everything was stored is InfluxDB's
// count of the run's points: the old process's last writes (its flush on
// the way down) are in no scrape, and the run waited its whole settle
// period for a total its metrics never showed, then reported it
// incomplete. The count starts at the run's first point, so that an earlier
// run's points do not make up for missing ones.
func TestIntegrationWaitSettledOverARestart(t *testing.T) {
	influx := testenv.Influx(t)
	tg := Target{Influx: Influx{URL: influx.URL(), Database: influx.Database()}}
	const settle = 3 * time.Second
	for i, tc := range []struct {
		name           string
		stored, before int // points of the run, and of an earlier run 30 s before it
		complete       bool
	}{
		{name: "all stored", stored: 100, complete: true},
		{name: "one missing, an earlier run's point", stored: 99, before: 1, complete: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Each case its own device, so that the cases' points stay apart.
			dev := fmt.Sprintf("F-%03d", i)
			start := time.Now()
			var lines strings.Builder
			for k := range tc.before {
				fmt.Fprintf(&lines, "phone_detection,device=%s seq=%di %d\n", dev, k, start.Add(-30*time.Second).UnixNano()+int64(k))
			}
			for k := range tc.stored {
				fmt.Fprintf(&lines, "phone_detection,device=%s seq=%di %d\n", dev, 1000+k, start.UnixNano()+int64(k))
			}
			require.NoError(t, influx.Write(ctx, lines.String()))

			// The daemon stored 500 before the run, restarted during it and
			// showed 60 of the run's points in its metrics since.
			var scrapes atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				start, stored := 1000, 500
				if scrapes.Add(1) > 1 {
					start, stored = 2000, 60
				}
				fmt.Fprintf(w, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %d\n"+
					"# TYPE fenceline_influx_points_written_total counter\n"+
					"fenceline_influx_points_written_total{measurement=\"phone_detection\"} %d\n", start, stored)
			}))
			defer srv.Close()
			tg.MetricsURL = srv.URL
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			smp := newSampler(tg, 20*time.Millisecond, log)
			base, err := smp.take(ctx)
			require.NoError(t, err)
			sctx, stop := context.WithCancel(ctx)
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				smp.run(sctx)
			}()
			defer func() {
				stop()
				<-sampled
			}()

			began := time.Now()
			complete, err := waitSettled(ctx, smp, nil, tg, &base, start, Accounting{ExpectedStored: 100}, Options{Settle: settle}, log)
			require.NoError(t, err)
			require.Equal(t, tc.complete, complete)
			if tc.complete {
				require.Less(t, time.Since(began), settle, "done before the settle period")
			}
		})
	}
}
