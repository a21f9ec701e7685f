//go:build linux

package stack

import "syscall"

// serviceSysProcAttr puts a service in its own process group, so a Ctrl-C in the terminal
// reaches only our process (which then shuts the stack down in order) and not the services
// directly, and asks the kernel to kill the service if we die without stopping it (a test
// binary killed on timeout must not leave brokers listening on the machine).
func serviceSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
