package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/config"
)

// restoreState says which file it restored from: the log line that follows
// names it, and a damaged state file must not be named as the one restored.
func TestRestoreStateSaysWhichFile(t *testing.T) {
	newEngine := func() *engine.Engine {
		rs, ps := engine.Compile(&config.Rules{}, engine.Options{})
		require.Empty(t, ps)
		return engine.New(rs, engine.Options{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	}
	var saved bytes.Buffer
	require.NoError(t, newEngine().Snapshot().Save(&saved))

	for _, tc := range []struct {
		name        string
		state, prev []byte // nil: no such file
		from        string // "" : nothing restored
		notExist    bool
	}{
		{"the last save", saved.Bytes(), saved.Bytes(), "alert-state.json", false},
		{"the previous save, the last damaged", []byte(`{"rules":[`), saved.Bytes(), "alert-state.json.prev", false},
		{"the previous save, the last gone", nil, saved.Bytes(), "alert-state.json.prev", false},
		{"the previous save, the last readable but changed since it was written", bytes.Replace(saved.Bytes(), []byte(`"version":1`), []byte(`"version":1 `), 1), saved.Bytes(), "alert-state.json.prev", false},
		{"none, both damaged", []byte(`{`), []byte(`{`), "", false},
		{"none, the last damaged and no previous save (no first start)", []byte(`{`), nil, "", false},
		{"none, the last changed since it was written and no previous save", bytes.Replace(saved.Bytes(), []byte(`"version":1`), []byte(`"version":1 `), 1), nil, "", false},
		{"none, a first start", nil, nil, "", true},
		{"the previous save, a device in the last one's place", []byte("/dev/zero"), saved.Bytes(), "alert-state.json.prev", false},
		{"the previous save, a FIFO in the last one's place", []byte("fifo"), saved.Bytes(), "alert-state.json.prev", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alert-state.json")
			for f, data := range map[string][]byte{path: tc.state, path + ".prev": tc.prev} {
				switch string(data) {
				case "":
				case "/dev/zero":
					require.NoError(t, os.Symlink("/dev/zero", f))
				case "fifo":
					require.NoError(t, syscall.Mkfifo(f, 0o600))
				default:
					require.NoError(t, os.WriteFile(f, data, 0o600))
				}
			}
			_, _, from, err := restoreState(newEngine(), path, slog.New(slog.DiscardHandler))
			if tc.from == "" {
				require.Error(t, err)
				require.Equal(t, tc.notExist, errors.Is(err, os.ErrNotExist))
				require.Empty(t, from)
				return
			}
			require.NoError(t, err)
			require.Equal(t, filepath.Join(filepath.Dir(path), tc.from), from)
		})
	}
}

// The daemon file's checksum (for a reload to tell it changed) reads a
// regular file only: a FIFO put in its place held every later reload.
func TestFileSumReadsOnlyARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fenceline.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for _, p := range []string{fifo, "/dev/zero"} {
		_, ok := fileSum(p)
		require.False(t, ok, p)
	}
	f := filepath.Join(dir, "f.yaml")
	require.NoError(t, os.WriteFile(f, []byte("a: 1\n"), 0o600))
	_, ok := fileSum(f)
	require.True(t, ok)
}
