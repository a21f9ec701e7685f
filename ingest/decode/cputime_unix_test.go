//go:build unix

package decode

import "syscall"

// processCPU returns the CPU time (user+system) of the process so far, in
// nanoseconds. Benchmarks report it next to wall time because on a shared
// machine wall time also counts the time other processes had the CPU.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
