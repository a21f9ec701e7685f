package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A storage.dir that cannot be made where it lies is a problem for check,
// as it is for run: systemd's ExecStartPre check must stop a crash loop.
// Here pseudo file systems, where even root cannot make a folder, though
// access(2) says it may.
func TestCheckStorageDirNotWritable(t *testing.T) {
	for _, tc := range []struct{ dir, in string }{
		{"/proc/sys/fenceline-state", "/proc/sys"},
		{"/proc/fenceline-state", "/proc"},
		{"/sys/fs/fenceline-state", "/sys/fs"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			cfg := Default()
			dir := t.TempDir()
			cfg.Path = filepath.Join(dir, "c.yaml")
			cfg.RulesFile = filepath.Join(dir, "rules.yaml")
			cfg.Storage.Dir = tc.dir
			var got []string
			for _, p := range cfg.CheckFiles() {
				if p.Key == "storage.dir" {
					got = append(got, p.Error())
				}
			}
			require.Len(t, got, 1)
			require.Contains(t, got[0], "storage.dir: "+tc.dir+": cannot write in "+tc.in)
		})
	}
}
