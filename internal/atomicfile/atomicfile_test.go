package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFileAndAbort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, WriteFile(path, []byte("one")))
	require.NoError(t, WriteFile(path, []byte("two")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(got))

	f, err := Create(path)
	require.NoError(t, err)
	_, err = f.WriteString("torn")
	require.NoError(t, err)
	f.Abort()
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(got), "an aborted write leaves the old content")
	_, err = os.Stat(path + ".tmp")
	require.ErrorIs(t, err, os.ErrNotExist, "and no temporary file")
}
