package privacy

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
)

// BenchmarkKeyPoolCommit times the key pool's background commit per key
// (one claim and one new pool key, both random ids), in a key file that
// already holds 20,000 subjects' keys, for the batch each commit holds
// (claims per ClaimInterval: 1,300 new subjects a second give 65 at 50 ms,
// 260 at 200 ms):
//
//	go test -run '^$' -bench KeyPoolCommit -benchmem ./privacy/
func BenchmarkKeyPoolCommit(b *testing.B) {
	for _, batch := range []int{16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := OpenFileStore(filepath.Join(b.TempDir(), "keys.db"), 0)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			kek, err := ParseKEK(make([]byte, 32))
			if err != nil {
				b.Fatal(err)
			}
			r := &Keyring{keks: []*KEK{kek}}
			n := 0
			records := func(count int) []Record {
				recs := make([]Record, count)
				for i := range recs {
					rec, _, err := r.newRecord()
					if err != nil {
						b.Fatal(err)
					}
					recs[i] = rec
				}
				return recs
			}
			claims := func(recs []Record) []poolClaim {
				cs := make([]poolClaim, len(recs))
				for i, rec := range recs {
					n++
					cs[i] = poolClaim{sub: Subject{Source: "reewild", ID: fmt.Sprintf("U%08x", n*2654435761)}, id: rec.ID}
				}
				return cs
			}
			pool := records(20000)
			if err := s.commitPool(pool, nil, nil, eventstore.Start); err != nil {
				b.Fatal(err)
			}
			if err := s.commitPool(nil, claims(pool), nil, eventstore.Start); err != nil {
				b.Fatal(err)
			}
			pool = records(batch)
			if err := s.commitPool(pool, nil, nil, eventstore.Start); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				add := records(batch)
				cs := claims(pool)
				b.StartTimer()
				if err := s.commitPool(add, cs, nil, eventstore.Start); err != nil {
					b.Fatal(err)
				}
				pool = add
			}
		})
	}
}
