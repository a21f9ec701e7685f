//go:build linux

package main

import "syscall"

// childSysProcAttr puts the command in its own process group: a Ctrl-C in the terminal then
// reaches it once, passed on by devstack, instead of twice (from the terminal and from us),
// which a daemon may take as "shut down now, don't drain". If devstack dies, the command gets
// SIGTERM rather than running on against services that are gone.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
