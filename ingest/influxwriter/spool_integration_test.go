package influxwriter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/ingest/spool"
	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/testenv"
)

// A real InfluxDB stops: every batch is called back (nil) once spooled,
// without waiting for it; it starts again and the spool drains into it:
// every reading once, and the writer back to writing directly.
func TestIntegrationSpoolRestart(t *testing.T) {
	t.Parallel()
	in := testenv.Influx(t)
	sp := openSpool(t, spool.Options{})
	s := startInfluxWriter(t, in, Config{BatchSize: 100, Spool: sp, MaxBackoff: 200 * time.Millisecond})
	const messages, per = 300, 10
	write := func(from, to int) {
		var batches []*model.Batch
		for i := from; i < to; i++ {
			b := detectionBatch(int64(i), per)
			shift(b, time.Duration(i)*time.Millisecond)
			batches = append(batches, b)
		}
		for i, err := range writeAll(t, s.w, batches) {
			require.NoError(t, err, "message %d", from+i)
		}
	}
	write(0, 100)
	require.NoError(t, in.Stop())
	write(100, 200) // called back while InfluxDB is down: spooled
	assert.False(t, s.w.Healthy())
	assert.NoError(t, s.w.ReadyToStore())
	assert.Positive(t, sp.Stats().Records)
	assert.Positive(t, counter(t, s.reg, "fenceline_influx_spooled_lines_total"))

	require.NoError(t, in.Restart(itContext(t)))
	write(200, messages)
	waitFor(t, func() bool { return sp.Stats().Records == 0 })
	n, err := in.Count(itContext(t), MeasurementDetection)
	require.NoError(t, err)
	assert.Equal(t, messages*per, n)
	// Every (seq, index) once: the point times are distinct and complete.
	rows := query(t, in, "SELECT seq FROM "+MeasurementDetection)
	seen := map[int64]bool{}
	for _, r := range rows {
		ts := integer(t, r["time"])
		require.False(t, seen[ts], "point time %d twice", ts)
		seen[ts] = true
	}
	for i := range messages {
		for j := range per {
			want := model.PointTime(t0.Add(time.Duration(i)*time.Millisecond), int64(i), j)
			require.True(t, seen[want], "message %d reading %d missing", i, j)
		}
	}
	assert.True(t, s.w.Healthy())
	assert.Zero(t, sp.Stats().Bytes)
	require.NoError(t, s.w.Close(itContext(t)))
}
