package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A hangup (the terminal closed) reaches the command as Ctrl-C does: as an
// interrupt, which the command's script traps to stop the simulator and let
// the daemon drain; passed on as a hangup, it ended the script at once.
func TestHangupReachesTheCommandAsAnInterrupt(t *testing.T) {
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	script := `trap 'echo INT > "$2"; exit 0' INT
trap 'echo HUP > "$2"; exit 0' HUP
: > "$1"
while :; do sleep 0.05; done`
	sigs := make(chan os.Signal, 1)
	done := make(chan int, 1)
	go func() {
		done <- runCommand(slog.New(slog.DiscardHandler), sigs, []string{"sh", "-c", script, "sh", ready, got})
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 10*time.Second, 10*time.Millisecond, "the script traps its signals")
	sigs <- syscall.SIGHUP
	select {
	case code := <-done:
		require.Equal(t, 0, code)
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not stop")
	}
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	require.Equal(t, "INT\n", string(b))
}
