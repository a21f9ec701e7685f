package influxwriter

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling OS thread has used: on a loaded
// machine it measures the encoder's own work rather than the time it waited
// for a CPU. The caller locks its goroutine to the thread.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
