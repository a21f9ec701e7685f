package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSpoolMaxBytes: the spool's bound has a default of 1 GiB and refuses
// sizes too small to hold a few batches, naming the key and its line.
func TestSpoolMaxBytes(t *testing.T) {
	require.Equal(t, int64(1<<30), Default().Storage.SpoolMaxBytes)
	for _, tc := range []struct {
		name string
		yaml string
		want int64  // loaded value when err is ""
		err  string // substring of the error
	}{
		{name: "default", yaml: "storage: {dir: s}\n", want: 1 << 30},
		{name: "set", yaml: "storage: {dir: s, spool_max_bytes: 67108864}\n", want: 64 << 20},
		{name: "too small", yaml: "storage:\n  dir: s\n  spool_max_bytes: 1000\n", err: "c.yaml:3: storage.spool_max_bytes: must be at least 16 MiB"},
		{name: "negative", yaml: "storage: {dir: s, spool_max_bytes: -1}\n", err: "storage.spool_max_bytes: must be at least 16 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o600))
			cfg, err := Load(p)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg.Storage.SpoolMaxBytes)
		})
	}
}
