package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// --help says what the tool does and exits 0, as fenceline-sim's does; a
// flag it does not know is a usage error.
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "usage: fenceline-load [flags]")
	require.Contains(t, stderr.String(), "-messages")
	stderr.Reset()
	require.Equal(t, 2, run([]string{"--nope"}, &stdout, &stderr))
}
