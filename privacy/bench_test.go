package privacy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/receiptd/receiptd/privacy"
)

// BenchmarkSealKeyNew times creating a new subject's key in a key file
// (an fsynced commit), one caller at a time and with 64 callers at once
// (a server's connections), whose creations are committed in groups:
//
//	go test -run '^$' -bench SealKeyNew -benchtime 2000x ./privacy/
func BenchmarkSealKeyNew(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", par), func(b *testing.B) {
			s, err := privacy.OpenFileStore(filepath.Join(b.TempDir(), "keys.db"), 0)
			if err != nil {
				b.Fatal(err)
			}
			r, err := privacy.NewKeyring(context.Background(), s, []*privacy.KEK{newKEK(b)}, privacy.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var n atomic.Int64
			b.SetParallelism(par) // par × GOMAXPROCS goroutines
			if par == 1 {
				for b.Loop() {
					if _, err := r.SealKey(context.Background(), privacy.Subject{Source: "s", ID: fmt.Sprint(n.Add(1))}); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := r.SealKey(context.Background(), privacy.Subject{Source: "s", ID: fmt.Sprint(n.Add(1))}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
