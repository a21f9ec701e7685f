package daemon

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The revision make build links in is what the version says, whatever Go
// stamped (nothing, with -buildvcs=false).
func TestVersionSaysTheRevision(t *testing.T) {
	old := revision
	t.Cleanup(func() { revision = old })
	revision = "9681522-dirty"
	v := Version()
	require.True(t, strings.HasPrefix(v, "fenceline "), v)
	require.Contains(t, v, " 9681522-dirty go")
}
