//go:build !unix

package pipelinebench

import "time"

func processCPU() time.Duration { return 0 }
