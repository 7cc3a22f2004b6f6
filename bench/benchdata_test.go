package main

import (
	"bytes"
	"testing"

	"github.com/receiptd/receiptd/bench/benchdata"
)

// TestBenchdataMatches: bench/benchdata (what the codec's and the store's
// benchmarks generate) sends exactly the bench's deliveries.
func TestBenchdataMatches(t *testing.T) {
	for _, seed := range []uint64{1, 7} {
		u := universe{seed: seed, nUsers: 40, nReceipts: 400}
		v := benchdata.Universe{Seed: seed, Users: 40, Receipts: 400}
		if u.size() != v.Size() {
			t.Fatalf("size %d, benchdata %d", u.size(), v.Size())
		}
		var a, b []byte
		for k := range u.size() {
			a, b = u.delivery(a[:0], k), v.Delivery(b[:0], k)
			if !bytes.Equal(a, b) {
				t.Fatalf("seed %d delivery %d differs:\n%s\n%s", seed, k, a, b)
			}
		}
	}
}
