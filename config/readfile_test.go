package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Only regular files are read, and no further than their bound: a FIFO
// named as the config or the rules file held check (and a start, and a
// reload) for ever, /dev/zero as a CA file took gigabytes before it was
// refused, /dev/urandom as a token file hundreds of MB.
func TestReadFileOnlyRegularFilesWithinBounds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	small := filepath.Join(dir, "small")
	require.NoError(t, os.WriteFile(small, []byte("0123456789"), 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(small, link))

	for _, tc := range []struct {
		name, path string
		limit      int
		err        string // "": read
	}{
		{"a regular file", small, 10, ""},
		{"a link to one", link, 10, ""},
		{"a file over the bound", small, 9, "larger than 9 bytes"},
		{"a FIFO", fifo, 10, "is not a regular file"},
		{"a device", "/dev/zero", 10, "is not a regular file"},
		{"a folder", dir, 10, "is not a regular file"},
		{"nothing there", filepath.Join(dir, "nope"), 10, "cannot open: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := ReadFile(tc.path, tc.limit)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "0123456789", string(data))
		})
	}

	// The daemon's file, the rules file and secrets go through it.
	_, err := Load(fifo)
	require.ErrorContains(t, err, "is not a regular file")
	_, err = LoadRules(fifo)
	require.ErrorContains(t, err, "is not a regular file")
	_, err = ReadSecret("/dev/urandom")
	require.ErrorContains(t, err, "is not a regular file")
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat("x", maxSecretBytes+1)), 0o600))
	_, err = ReadSecret(big)
	require.ErrorContains(t, err, "larger than 65536 bytes")
}
