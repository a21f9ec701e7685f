package daemon

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/config"
)

// check warns when storage.dir's file system has less room than the spool
// and the dead letters may take; a folder not made yet is measured on its
// nearest parent.
func TestDiskWarning(t *testing.T) {
	dir := t.TempDir()
	free, ok := freeBytes(dir)
	require.True(t, ok)
	for _, tc := range []struct {
		name          string
		dir           string
		spool, letter int64
		warn          bool
	}{
		{"room for both", dir, 16 << 20, 1 << 20, free < 17<<20},
		{"a spool bound past the disk", dir, free, 1 << 20, true},
		{"a folder not made yet", filepath.Join(dir, "not", "yet"), free, 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Path: "fenceline.yaml", Storage: config.Storage{Dir: tc.dir, SpoolMaxBytes: tc.spool, DeadLetterMaxBytes: tc.letter}}
			w := diskWarning(cfg)
			if !tc.warn {
				assert.Nil(t, w)
				return
			}
			require.NotNil(t, w)
			assert.Equal(t, "storage.spool_max_bytes", w.Key)
			assert.Contains(t, w.Msg, "is more than the free space of storage.dir's file system")
		})
	}
}
