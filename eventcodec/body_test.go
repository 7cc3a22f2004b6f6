//go:build unix

package eventcodec

import (
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/receiptd/receiptd/bench/benchdata"
)

// cpuTime is the CPU time this process has used, in nanoseconds: on a
// machine shared with other work it tells more than the wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkBodyLevel compresses the bench's delivery bodies (all kinds, 600
// of them) with each zstd level, same run: zB is the mean frame, body-B the
// mean body, cpu-ns/op the process's CPU time per operation; then
// decompresses them. bodyLevel is chosen from this.
//
//	go test -run '^$' -bench BodyLevel -benchmem ./eventcodec/
func BenchmarkBodyLevel(b *testing.B) {
	u := benchdata.Universe{Seed: 1, Users: 100, Receipts: 100}
	var bodies [][]byte
	raw := 0
	for k := range u.Size() {
		body := u.Delivery(nil, k)
		bodies = append(bodies, body)
		raw += len(body)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
		if err != nil {
			b.Fatal(err)
		}
		frames := make([][]byte, len(bodies))
		z := 0
		for i, body := range bodies {
			frames[i] = enc.EncodeAll(body, nil)
			z += len(frames[i])
		}
		b.Run("encode/"+lvl.String(), func(b *testing.B) {
			b.ReportAllocs()
			var dst []byte
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				dst = enc.EncodeAll(bodies[i%len(bodies)], dst[:0])
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(z)/float64(len(bodies)), "zB")
			b.ReportMetric(float64(raw)/float64(len(bodies)), "body-B")
		})
		b.Run("decode/"+lvl.String(), func(b *testing.B) {
			b.ReportAllocs()
			var dst []byte
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if dst, err = dec.DecodeAll(frames[i%len(frames)], dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}
