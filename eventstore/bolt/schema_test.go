package bolt

import (
	"bytes"
	"testing"
)

// FuzzOrd: ord is order-preserving and prefix-free, and reads back.
func FuzzOrd(f *testing.F) {
	f.Add(uint64(0), uint64(1))
	f.Add(uint64(255), uint64(256))
	f.Add(^uint64(0), uint64(1)<<56)
	f.Fuzz(func(t *testing.T, a, b uint64) {
		ka, kb := appendOrd(nil, a), appendOrd(nil, b)
		if c := bytes.Compare(ka, kb); (a < b) != (c < 0) || (a == b) != (c == 0) {
			t.Fatalf("ord(%d) = %x, ord(%d) = %x: compare %d", a, ka, b, kb, c)
		}
		if a != b && (bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka)) {
			t.Fatalf("ord(%d) = %x and ord(%d) = %x: one is a prefix of the other", a, ka, b, kb)
		}
		if v, n, ok := parseOrd(append(ka, 0xAA)); !ok || v != a || n != len(ka) || len(ka) > maxOrd {
			t.Fatalf("parseOrd(%x) = %d, %d, %v", ka, v, n, ok)
		}
	})
}
