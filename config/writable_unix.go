//go:build unix

package config

import "syscall"

// writable reports why the process cannot create files in dir, if it
// cannot: permissions, or a read-only mount (a systemd unit's
// ProtectSystem=strict outside its StateDirectory).
func writable(dir string) error {
	const wOK = 2 // W_OK
	return syscall.Access(dir, wOK)
}
