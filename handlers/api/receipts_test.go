package api_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/api"
)

// inProgressReader is the fake reader with the index of receipts in
// progress: every receipt of the fake that is in progress, first recorded
// before before.
type inProgressReader struct {
	*fakeReader
	mu    sync.Mutex
	calls []time.Time
}

func (r *inProgressReader) InProgress(_ context.Context, source string, before time.Time, pageSize int, _ string) ([]aggregate.ReceiptView, string, error) {
	r.mu.Lock()
	r.calls = append(r.calls, before)
	r.mu.Unlock()
	r.fakeReader.mu.Lock()
	defer r.fakeReader.mu.Unlock()
	var out []aggregate.ReceiptView
	for _, id := range []string{"old", "new"} { // the fake's index order
		v, ok := r.receipts[source+"/"+id]
		first, has := v.FirstRecorded()
		if ok && v.Status == aggregate.StatusInProgress && has && (before.IsZero() || first.Before(before)) && len(out) < pageSize {
			out = append(out, v)
		}
	}
	return out, "", nil
}

func inProgressView(id string, recorded time.Time) aggregate.ReceiptView {
	v := aggregate.ReceiptView{ReceiptID: id, Source: "reewild", UserID: "u1", Status: aggregate.StatusInProgress}
	for _, s := range aggregate.Stages {
		sv := aggregate.StageView{Stage: s}
		if s == aggregate.StageUploaded {
			sv.Reported, sv.RecordedAt = true, &recorded
		}
		v.Stages = append(v.Stages, sv)
	}
	return v
}

// TestListReceiptsOverdue: GET /v1/receipts?status=overdue lists the
// receipts in progress past the source's window at the injected clock's
// "now", each with the overdue anomaly, which GetReceipt shows too;
// status=in_progress lists them all; another status is 400.
func TestListReceiptsOverdue(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var clock atomic.Int64 // the fake clock
	clock.Store(t0.Add(24 * time.Hour).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	window := aggregate.DefaultOverdueAfter
	r := &inProgressReader{fakeReader: newFakeReader()}
	r.receipts["reewild/old"] = inProgressView("old", t0)                   // 24 h: overdue
	r.receipts["reewild/new"] = inProgressView("new", t0.Add(12*time.Hour)) // 12 h: not yet
	env := newTestEnvOver(t, r, api.WithOverdue(api.Overdue{
		Now:   now,
		After: func(string) time.Duration { return window },
	}))

	code, body := get(t, env, "/v1/receipts?status=overdue&source=reewild", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, body)
	}
	list, _ := body["receipts"].([]any)
	if len(list) != 1 {
		t.Fatalf("overdue: %v", body)
	}
	rec := list[0].(map[string]any)
	if rec["receiptId"] != "old" {
		t.Fatalf("overdue: %v", rec)
	}
	if an, _ := rec["anomalies"].([]any); len(an) != 1 || an[0].(map[string]any)["kind"] != "overdue" {
		t.Fatalf("anomalies: %v", rec["anomalies"])
	}
	r.mu.Lock()
	got := r.calls[len(r.calls)-1]
	r.mu.Unlock()
	if !got.Equal(now().Add(-window)) {
		t.Fatalf("read the index before %v, want now - window %v", got, now().Add(-window))
	}

	code, body = get(t, env, "/v1/receipts?status=IN_PROGRESS", nil)
	if list, _ := body["receipts"].([]any); code != http.StatusOK || len(list) != 2 {
		t.Fatalf("in progress: %d %v", code, body)
	}
	for _, q := range []string{"", "?status=completed", "?status=overdue&page_size=-1"} {
		if code, body := get(t, env, "/v1/receipts"+q, nil); code != http.StatusBadRequest {
			t.Fatalf("%q: %d %v", q, code, body)
		}
	}
	if code, _ := get(t, env, "/v1/receipts?status=overdue&source=nope", nil); code != http.StatusNotFound {
		t.Fatalf("unknown source: %d", code)
	}

	code, body = get(t, env, "/v1/receipts/old", nil)
	if an, _ := body["anomalies"].([]any); code != http.StatusOK || len(an) != 1 {
		t.Fatalf("GetReceipt of an overdue receipt: %d %v", code, body)
	}
	code, body = get(t, env, "/v1/receipts/new", nil)
	if an, _ := body["anomalies"].([]any); code != http.StatusOK || len(an) != 0 {
		t.Fatalf("GetReceipt of a receipt within its window: %d %v", code, body)
	}
	// The clock moves on: the second one is overdue too.
	clock.Add(int64(12 * time.Hour))
	code, body = get(t, env, "/v1/receipts?status=overdue", nil)
	if list, _ := body["receipts"].([]any); code != http.StatusOK || len(list) != 2 {
		t.Fatalf("later: %d %v", code, body)
	}
}
