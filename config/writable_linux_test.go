package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A storage.dir that cannot be made where it lies (a read-only mount, here
// /proc/sys, which even root cannot write) is a problem for check, as it is
// for run: systemd's ExecStartPre check must stop a crash loop.
func TestCheckStorageDirNotWritable(t *testing.T) {
	cfg := Default()
	dir := t.TempDir()
	cfg.Path = filepath.Join(dir, "c.yaml")
	cfg.RulesFile = filepath.Join(dir, "rules.yaml")
	cfg.Storage.Dir = "/proc/sys/fenceline-state"
	var got []string
	for _, p := range cfg.CheckFiles() {
		if p.Key == "storage.dir" {
			got = append(got, p.Error())
		}
	}
	require.Len(t, got, 1)
	require.Contains(t, got[0], "storage.dir: /proc/sys/fenceline-state: /proc/sys is not writable")
}
