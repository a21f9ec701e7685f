//go:build !unix

package decode

func processCPU() int64 { return 0 }
