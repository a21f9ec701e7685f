//go:build !linux

package influxwriter

import "time"

func processCPU(string) (time.Duration, bool) { return 0, false }

func selfCPU() time.Duration { return 0 }
