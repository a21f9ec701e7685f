//go:build !linux

package influxwriter

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
