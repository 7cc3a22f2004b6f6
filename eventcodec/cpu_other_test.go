//go:build !unix

package eventcodec_test

// cpuTime is not measured here.
func cpuTime() int64 { return 0 }
