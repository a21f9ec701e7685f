package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// --help says what the tool does, on stdout, and exits 0, as fenceline-sim's
// does; a flag it does not know is a usage error, told on stderr.
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "usage: fenceline-load [flags]", "on stdout, as fenceline --help's")
	require.Contains(t, stdout.String(), "-messages")
	require.Empty(t, stderr.String())
	stdout.Reset()
	require.Equal(t, 2, run([]string{"--nope"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "usage: fenceline-load", "a mistake's usage on stderr")
	require.Empty(t, stdout.String())
}
