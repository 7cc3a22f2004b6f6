//go:build !linux

package webhook_test

// threadCPU is not measured here.
func threadCPU() int64 { return 0 }
