//go:build unix

package pipelinebench

import (
	"syscall"
	"time"
)

// processCPU is the process's user+system CPU time so far. Benchmarks report
// it next to wall time: on a shared machine wall time also counts the time
// other processes had the CPU.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
