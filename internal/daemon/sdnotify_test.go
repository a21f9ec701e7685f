package daemon

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// NOTIFY_SOCKET names a socket in the file system or, starting with @, an
// abstract one (systemd uses both); without it, nothing is sent.
func TestSDNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	require.NoError(t, sdNotify("READY=1"), "not run by systemd")

	for name, addr := range map[string]string{
		"file":     t.TempDir() + "/notify",
		"abstract": fmt.Sprintf("@fenceline-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		t.Run(name, func(t *testing.T) {
			listen := addr
			if listen[0] == '@' {
				listen = "\x00" + listen[1:]
			}
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: listen, Net: "unixgram"})
			require.NoError(t, err)
			defer conn.Close()
			t.Setenv("NOTIFY_SOCKET", addr)
			require.NoError(t, sdNotify("STOPPING=1"))
			buf := make([]byte, 64)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			n, err := conn.Read(buf)
			require.NoError(t, err)
			require.Equal(t, "STOPPING=1", string(buf[:n]))
		})
	}
	t.Setenv("NOTIFY_SOCKET", t.TempDir()+"/nobody-listens")
	require.Error(t, sdNotify("READY=1"))
}
