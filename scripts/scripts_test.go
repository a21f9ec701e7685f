// Package scripts holds the tests of the repository's shell scripts.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A replay starts the daemon with a fresh alert state: the state file and
// its previous save (which the daemon would restore from) are moved aside,
// each replay's under a name of its own, so that a second replay keeps the
// state a live run left.
func TestSetAsideState(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "alert-state.json")
	setAside := func() string {
		out, err := exec.Command("./set-aside-state.sh", state).Output()
		require.NoError(t, err)
		return strings.TrimSpace(string(out))
	}
	require.Empty(t, setAside(), "no state: nothing to do")

	require.NoError(t, os.WriteFile(state, []byte("live"), 0o600))
	require.NoError(t, os.WriteFile(state+".prev", []byte("live, before"), 0o600))
	first := setAside()
	require.NoFileExists(t, state)
	require.NoFileExists(t, state+".prev", "the daemon would restore from it")
	for name, want := range map[string]string{first: "live", first + ".prev": "live, before"} {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		require.Equal(t, want, string(data))
	}

	require.NoError(t, os.WriteFile(state+".prev", []byte("replay"), 0o600))
	second := setAside()
	require.NotEqual(t, first, second, "a second replay does not overwrite the first's")
	require.FileExists(t, first)
	require.FileExists(t, second+".prev")
}
