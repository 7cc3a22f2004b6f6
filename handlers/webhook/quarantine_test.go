package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// TestQuarantineStream: Quarantined pages through a source's quarantined
// deliveries with their raw bodies; ReprocessQuarantined takes the first
// ones or the one at a position, and a position no quarantined delivery is
// at (another stream's event, or past the end) is ErrNotQuarantined.
func TestQuarantineStream(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.New(store, []webhook.Provider{p}, webhook.Options{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	post := func(body []byte) uint64 {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, request("reewild", body, secret))
		pos, err := strconv.ParseUint(w.Header().Get(webhook.PositionHeader), 10, 64)
		if w.Code != http.StatusOK || err != nil {
			t.Fatalf("delivery: %d %s", w.Code, w.Body)
		}
		return pos
	}
	var bodies [][]byte
	var positions []uint64
	var accepted uint64
	for i := range 3 {
		body := fmt.Appendf(nil, `{"eventType":"receipt.teleported","data":{"receiptID":"r%d"}}`, i)
		bodies, positions = append(bodies, body), append(positions, post(body))
		if i == 0 {
			accepted = post([]byte(`{"eventType":"receipt.uploaded","data":{"receiptID":"ok","userID":"u1"}}`))
		}
	}
	ctx := context.Background()

	recs, err := h.Quarantined(ctx, "reewild", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Revision != 1 || recs[0].Position != positions[1] || !bytes.Equal(recs[0].Raw, bodies[1]) ||
		recs[0].ProviderEventType != "receipt.teleported" || recs[0].Reason == "" || !recs[0].ReceivedAt.Equal(now) || recs[0].Source != "reewild" {
		t.Fatalf("records from revision 1: %+v", recs)
	}
	if recs, err := h.Quarantined(ctx, "nosuch", 0, 10); err != nil || len(recs) != 0 {
		t.Errorf("a source with no quarantine: %v, %v", recs, err)
	}

	res, more, err := h.ReprocessQuarantined(ctx, "reewild", 0, 2)
	if err != nil || !more || len(res) != 2 || res[0].QuarantinedPosition != positions[0] || res[1].QuarantinedPosition != positions[1] ||
		res[0].Outcome != "quarantined" || res[0].Reason == "" {
		t.Fatalf("first two: %+v, more %v, %v", res, more, err)
	}
	res, more, err = h.ReprocessQuarantined(ctx, "reewild", positions[2], 500)
	if err != nil || more || len(res) != 1 || res[0].QuarantinedPosition != positions[2] {
		t.Fatalf("at %d: %+v, more %v, %v", positions[2], res, more, err)
	}
	for _, pos := range []uint64{accepted, positions[2] + 100} {
		if _, _, err := h.ReprocessQuarantined(ctx, "reewild", pos, 500); !errors.Is(err, webhook.ErrNotQuarantined) {
			t.Errorf("at %d: %v, want ErrNotQuarantined", pos, err)
		}
	}
}
