package webhook_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
)

// budget lets n deliveries of each key through, then asks for wait.
type budget struct {
	mu    sync.Mutex
	n     int
	wait  time.Duration
	taken map[string]int
}

func (b *budget) Take(key string, _ time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.taken[key]++
	if b.taken[key] > b.n {
		return false, b.wait
	}
	return true, 0
}

// TestSourceLimit: past its source's limit a delivery is answered 429 with
// the bucket's wait in whole seconds (rounded up) as Retry-After, before
// it is verified, counted as rate_limited; a path naming no configured
// source takes no token (it is 404 anyway).
func TestSourceLimit(t *testing.T) {
	lim := &budget{n: 1, wait: 2500 * time.Millisecond, taken: map[string]int{}}
	f := newFixture(t, webhook.Options{SourceLimit: lim})
	body := readExample(t, "receipt.enriched")
	expect(t, f.post(body), http.StatusOK, "accepted")

	for _, r := range []*http.Request{request("reewild", body, secret), request("reewild", body, []byte("wrong"))} {
		w := f.do(r)
		a := expect(t, w, http.StatusTooManyRequests, "")
		if got := w.Header().Get("Retry-After"); got != "3" || a.Error != "too many deliveries for this source; retry later" {
			t.Errorf("429: Retry-After %q, error %q", got, a.Error)
		}
	}
	expect(t, f.do(request("nosuch", body, secret)), http.StatusNotFound, "")
	if lim.taken["nosuch"] != 0 || lim.taken["reewild"] != 3 {
		t.Errorf("tokens taken: %v", lim.taken)
	}
	if got := counter(t, f.reg, "reewild", "rate_limited"); got != 2 {
		t.Errorf(`deliveries_total{outcome="rate_limited"} = %v, want 2`, got)
	}
	if got := counter(t, f.reg, "reewild", "bad_signature"); got != 0 {
		t.Errorf("a refused delivery was verified: bad_signature = %v", got)
	}
}
