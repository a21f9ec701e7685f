package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fenceline/fenceline/config"
)

// diskWarning warns when storage.dir's file system has less room than the
// spool and the dead letters may take: the disk then fills before either
// reaches its bound. Nothing is lost (a full disk stops intake, as a full
// spool does), but the spool's own alert does not fire; its errors' does.
// It says nothing when the free space cannot be read.
func diskWarning(cfg *config.Config) *config.Problem {
	free, ok := freeBytes(cfg.Storage.Dir)
	bound := cfg.Storage.SpoolMaxBytes + cfg.Storage.DeadLetterMaxBytes
	if !ok || bound <= free {
		return nil
	}
	return &config.Problem{File: cfg.Path, Key: "storage.spool_max_bytes", Msg: fmt.Sprintf(
		"with storage.dead_letter_max_bytes (%s together) is more than the free space of storage.dir's file system (%s): "+
			"the disk fills first (intake stops and nothing is lost, but FencelineSpoolFull does not fire: FencelineStorageWriteErrors does); "+
			"lower them or give storage.dir more room", bytesText(bound), bytesText(free))}
}

// freeBytes is the room left to an unprivileged user in the file system of
// dir, or of its nearest existing parent (it is made at start).
func freeBytes(dir string) (int64, bool) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(dir, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), true
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, os.ErrNotExist) || parent == dir {
			return 0, false
		}
		dir = parent
	}
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
