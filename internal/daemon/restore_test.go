package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
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
		{"none, a first start", nil, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alert-state.json")
			for f, data := range map[string][]byte{path: tc.state, path + ".prev": tc.prev} {
				if data != nil {
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
