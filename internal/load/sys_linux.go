//go:build linux

package load

import "syscall"

// daemonSysProcAttr puts the daemon in its own process group, so that a
// Ctrl-C reaches only the load tool (which then stops the stack in order),
// and has the kernel kill it if the load tool dies without stopping it.
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
