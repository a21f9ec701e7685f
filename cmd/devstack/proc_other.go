//go:build !linux

package main

import "syscall"

// childSysProcAttr: see proc_linux.go.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
