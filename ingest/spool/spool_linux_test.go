package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A segment replayed after a restart (not the one being appended to) is
// deleted and closed: a deleted file still open keeps its disk space, and
// on a full disk that space is what fenceline needs back.
func TestDrainedSegmentsClosed(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir, Options{SegmentBytes: 4096})
	for i := range 100 {
		require.NoError(t, appendWait(t, r.s, line(i, 100)))
	}
	r.stop(t)

	r = start(t, dir, Options{SegmentBytes: 4096})
	rp := replay(t, r.s, nil)
	waitFor(t, "drained", func() bool { return r.s.Stats().Records == 0 && len(segFiles(t, dir)) == 0 })
	waitFor(t, "no deleted segment open", func() bool {
		fds, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
			if err == nil && strings.HasPrefix(target, dir) && strings.HasSuffix(target, "(deleted)") {
				return false
			}
		}
		return true
	})
	rp.stop(t)
}
