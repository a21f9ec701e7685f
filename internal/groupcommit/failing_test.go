package groupcommit

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFailing(t *testing.T) {
	f := Failing{What: "dead letters cannot be written"}
	require.NoError(t, f.Err())
	disk := errors.New("no space left on device")
	f.Set(disk)
	require.ErrorIs(t, f.Err(), disk)
	require.EqualError(t, f.Err(), "dead letters cannot be written: no space left on device")
	f.Set(nil)
	require.NoError(t, f.Err())
}
