package membudget

import (
	"testing"

	"github.com/receiptd/receiptd/internal/bytesize"
)

// TestPlan: the plan for the server and for the offline commands, the
// cache sizes set explicitly, and the caches' shares leaving most of the
// budget to the heap's work.
func TestPlan(t *testing.T) {
	const b = Default
	check := func(name string, p, want Plan) {
		t.Helper()
		if p != want {
			t.Errorf("%s: plan %+v, want %+v", name, p, want)
		}
	}
	check("serve", New(Request{Budget: b, Serving: true}), Plan{Budget: b, GoLimit: b - b/goLimitMargin, GCPercent: gcPercentServing,
		Decisions: b / shareDecisions, Records: b / shareRecords, Tail: b / shareTail, Mapped: b / shareMapped})
	check("offline", New(Request{Budget: b}), Plan{Budget: b, GoLimit: b - b/goLimitMargin, GCPercent: gcPercent,
		Records: b / offlineShareRecords, Mapped: b / shareMapped})
	p := New(Request{Budget: b, Serving: true, Keys: true})
	if caches := p.Decisions + p.Records + p.Tail + p.Keys; caches > b/2 {
		t.Errorf("the caches take %s of %s", bytesize.Size(caches), bytesize.Size(b))
	}
	const g = 1 << 30
	if p := New(Request{Budget: g, Serving: true, Keys: true}); p.Records != g/shareRecords || p.Keys != g/shareKeys || p.GoLimit != g-g/goLimitMargin {
		t.Errorf("1GiB with privacy: %+v", p)
	}
	if p := New(Request{Budget: 512 << 20, Serving: true, DecisionCacheBytes: 1 << 20, Keys: true, KeyCacheBytes: 2 << 20}); p.Decisions != 1<<20 || p.Keys != 2<<20 || p.Records != (512<<20)/shareRecords {
		t.Errorf("explicit sizes: %+v", p)
	}
	if p := New(Request{Budget: b, Serving: true, KeyCacheBytes: 2 << 20}); p.Keys != 0 {
		t.Errorf("keys without a keyring: %+v", p)
	}
}

// TestParseStatm: the shared field of a statm line, and lines that are
// not one.
func TestParseStatm(t *testing.T) {
	if n, ok := parseStatmShared([]byte("254105 98713 40561 3512 0 70238 0\n"), 4096); !ok || n != 40561*4096 {
		t.Errorf("statm: %d %v, want %d", n, ok, 40561*4096)
	}
	for _, bad := range []string{"", "1 2", "1 2 x 4", "1 2 -3 4"} {
		if n, ok := parseStatmShared([]byte(bad), 4096); ok {
			t.Errorf("%q: %d, want no value", bad, n)
		}
	}
}
