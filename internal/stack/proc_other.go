//go:build !linux

package stack

import "syscall"

// serviceSysProcAttr: see proc_linux.go. fenceline's stack runs on Linux; elsewhere the
// services simply inherit our process group.
func serviceSysProcAttr() *syscall.SysProcAttr { return nil }
