//go:build !linux

package load

import "syscall"

func daemonSysProcAttr() *syscall.SysProcAttr { return nil }
