package groupcommit

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFailing(t *testing.T) {
	f := Failing{What: "dead letters cannot be written", Min: 100 * time.Millisecond, Max: time.Second}
	require.NoError(t, f.Err())
	require.Zero(t, f.Recovered(), "no streak")
	disk := errors.New("no space left on device")
	var waits []time.Duration
	for i := range 6 {
		first, wait := f.Failed(disk)
		require.Equal(t, i == 0, first, "only the streak's first")
		waits = append(waits, wait)
	}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}, waits)
	require.ErrorIs(t, f.Err(), disk)
	require.EqualError(t, f.Err(), "dead letters cannot be written: no space left on device")
	require.Equal(t, 6, f.Recovered())
	require.NoError(t, f.Err())
	first, wait := f.Failed(disk)
	require.True(t, first, "a new streak")
	require.Equal(t, 100*time.Millisecond, wait)
}
