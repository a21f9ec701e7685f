package daemon

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// sdNotify tells systemd the daemon's state (sd_notify(3)): READY=1 once it
// runs, RELOADING=1 then READY=1 around a reload, STOPPING=1 at shutdown.
// With Type=notify in the unit, systemd counts the start as done only at
// READY=1: a `systemctl reload` right after `systemctl start` waits for it,
// where with Type=exec its SIGHUP could come before the daemon catches it.
// A no-op without $NOTIFY_SOCKET (not run by systemd); failures are
// returned for the log, never fatal.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd notify socket: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd notify socket: %w", err)
	}
	return nil
}
