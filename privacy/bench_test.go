package privacy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/receiptd/receiptd/privacy"
)

// BenchmarkSealKeyNew times giving a new subject a key, one caller at a
// time and with 64 callers at once (a server's connections): without the
// pool, created in the key file by an fsynced commit (concurrent
// creations committed in groups); with it (the server's way, Options.Log),
// taken from the keys created ahead of need (a pool large enough for the
// run), the claims committed in the background every 500 ms:
//
//	go test -run '^$' -bench SealKeyNew -benchmem -benchtime 20000x ./privacy/
func BenchmarkSealKeyNew(b *testing.B) {
	for _, bc := range []struct {
		pool bool
		par  int
	}{{false, 1}, {false, 64}, {true, 1}, {true, 64}} {
		b.Run(fmt.Sprintf("pool=%v/callers=%d", bc.pool, bc.par), func(b *testing.B) {
			par := bc.par
			s, err := privacy.OpenFileStore(filepath.Join(b.TempDir(), "keys.db"), 0)
			if err != nil {
				b.Fatal(err)
			}
			opts := privacy.Options{}
			if bc.pool {
				// A pool that does not run dry during the run: the time
				// a delivery waits, not the refill's (BenchmarkKeyPoolCommit).
				opts.Log, opts.PoolSize = &seqLog{}, 4*b.N+64
			}
			r, err := privacy.NewKeyring(context.Background(), s, []*privacy.KEK{newKEK(b)}, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var n atomic.Int64
			b.SetParallelism(par) // par × GOMAXPROCS goroutines
			b.ResetTimer()
			if par == 1 {
				for range b.N { // not b.Loop: the pool's size needs b.N
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
