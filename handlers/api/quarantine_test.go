package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/webhook"
)

// fakeQuarantine holds quarantine records per source, revision = index.
type fakeQuarantine struct {
	mu        sync.Mutex
	records   map[string][]webhook.QuarantineRecord
	reprocess []string // "source@position" per call
}

func (q *fakeQuarantine) Quarantined(_ context.Context, source string, from uint64, limit int) ([]webhook.QuarantineRecord, error) {
	recs := q.records[source]
	if from >= uint64(len(recs)) {
		return nil, nil
	}
	recs = recs[from:]
	return recs[:min(limit, len(recs))], nil
}

func (q *fakeQuarantine) ReprocessQuarantined(_ context.Context, source string, position uint64, limit int) ([]webhook.ReprocessedDelivery, bool, error) {
	q.mu.Lock()
	q.reprocess = append(q.reprocess, fmt.Sprintf("%s@%d", source, position))
	q.mu.Unlock()
	var out []webhook.ReprocessedDelivery
	for _, r := range q.records[source] {
		if position != 0 && r.Position != position {
			continue
		}
		out = append(out, webhook.ReprocessedDelivery{QuarantinedPosition: r.Position, Reprocessed: webhook.Reprocessed{
			Outcome: "quarantined", Stream: "quarantine-" + source, Position: eventstore.Position{Commit: r.Position, Prepare: r.Position},
			EventType: r.ProviderEventType, Reason: "still unknown"}})
	}
	if position != 0 && len(out) == 0 {
		return nil, false, fmt.Errorf("nothing at %d: %w", position, webhook.ErrNotQuarantined)
	}
	return out, len(out) > limit, nil
}

func newQuarantineEnv(t *testing.T) (*testEnv, *fakeQuarantine) {
	q := &fakeQuarantine{records: map[string][]webhook.QuarantineRecord{}}
	at := time.Date(2025, 11, 21, 15, 4, 19, 0, time.UTC)
	for i := range 5 {
		q.records["reewild"] = append(q.records["reewild"], webhook.QuarantineRecord{Revision: uint64(i), Position: uint64(10 + i), ReceivedAt: at,
			Quarantined: aggregate.Quarantined{Source: "reewild", ProviderEventType: "receipt.teleported", Reason: "unknown event type", BodySHA256: "ab", Raw: json.RawMessage(`{"eventType":"receipt.teleported"}`)}})
	}
	return newTestEnv(t, api.WithQuarantine(q)), q
}

func TestListQuarantined(t *testing.T) {
	env, _ := newQuarantineEnv(t)
	ctx := context.Background()
	// Pages of two over five records, the default source.
	var got []uint64
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		resp, err := env.auditC.ListQuarantined(ctx, &receiptdv1.ListQuarantinedRequest{PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range resp.GetDeliveries() {
			got = append(got, d.GetPosition())
			if d.GetRawBody() != `{"eventType":"receipt.teleported"}` || d.GetReason() != "unknown event type" || d.GetReceivedAt().AsTime().Year() != 2025 {
				t.Errorf("delivery %v", d)
			}
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[10 11 12 13 14]" {
		t.Errorf("positions %v", got)
	}
	code, body := get(t, env, "/v1/quarantine?source=reewild&page_size=1", nil)
	if code != http.StatusOK {
		t.Fatalf("REST: %d %v", code, body)
	}
	if ds := body["deliveries"].([]any); len(ds) != 1 || ds[0].(map[string]any)["rawBody"] != `{"eventType":"receipt.teleported"}` || body["nextPageToken"] == "" {
		t.Errorf("REST body %v", body)
	}
	for _, tc := range []struct {
		name string
		req  *receiptdv1.ListQuarantinedRequest
		code codes.Code
	}{
		{"unknown source", &receiptdv1.ListQuarantinedRequest{Source: "nosuch"}, codes.NotFound},
		{"negative page size", &receiptdv1.ListQuarantinedRequest{PageSize: -1}, codes.InvalidArgument},
		{"bad token", &receiptdv1.ListQuarantinedRequest{PageToken: "!!"}, codes.InvalidArgument},
	} {
		if _, err := env.auditC.ListQuarantined(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	// Without a quarantine the RPCs are unimplemented, not empty.
	bare := newTestEnv(t)
	if _, err := bare.auditC.ListQuarantined(ctx, &receiptdv1.ListQuarantinedRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("without a quarantine: %v", err)
	}
	if _, err := bare.auditC.ReprocessQuarantined(ctx, &receiptdv1.ReprocessQuarantinedRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("without a quarantine: %v", err)
	}
}

func TestReprocessQuarantined(t *testing.T) {
	env, q := newQuarantineEnv(t)
	ctx := context.Background()
	resp, err := env.auditC.ReprocessQuarantined(ctx, &receiptdv1.ReprocessQuarantinedRequest{Position: 12})
	if err != nil {
		t.Fatal(err)
	}
	if rs := resp.GetResults(); len(rs) != 1 || rs[0].GetQuarantinedPosition() != 12 || rs[0].GetOutcome() != "quarantined" || rs[0].GetReason() != "still unknown" || resp.GetTruncated() {
		t.Errorf("results %v", resp)
	}
	if _, err := env.auditC.ReprocessQuarantined(ctx, &receiptdv1.ReprocessQuarantinedRequest{Position: 99}); status.Code(err) != codes.NotFound {
		t.Errorf("no delivery at the position: %v", err)
	}
	if _, err := env.auditC.ReprocessQuarantined(ctx, &receiptdv1.ReprocessQuarantinedRequest{Source: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown source: %v", err)
	}
	r, err := env.rest.Client().Post(env.rest.URL+"/v1/quarantine/reprocess", "application/json", bytes.NewReader([]byte(`{"source":"reewild"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Results []struct {
			QuarantinedPosition string `json:"quarantinedPosition"`
			Outcome             string `json:"outcome"`
		} `json:"results"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || len(body.Results) != 5 || body.Results[0].QuarantinedPosition != "10" {
		t.Errorf("REST re-process of every delivery: %d %+v", r.StatusCode, body)
	}
	if fmt.Sprint(q.reprocess) != "[reewild@12 reewild@99 reewild@0]" {
		t.Errorf("calls %v (the unknown source must not reach the quarantine)", q.reprocess)
	}
}

// TestQuarantinePagesByBytes (issue 12, item 5): a ListQuarantined page is
// bounded by its size as well as by its count, so that five 900 KB
// deliveries come in two pages that each fit the 4 MiB a gRPC client
// receives by default, not in one answer the gateway's connection refuses;
// and an answer that is over a client's limit anyway is a 500 over REST,
// not the 429 of a rate limit, which a client would retry.
func TestQuarantinePagesByBytes(t *testing.T) {
	q := &fakeQuarantine{records: map[string][]webhook.QuarantineRecord{}}
	add := func(source string, n, size int) {
		for i := range n {
			raw := fmt.Sprintf(`{"eventType":"receipt.teleported","pad":"%s"}`, strings.Repeat(string(rune('a'+i)), size))
			q.records[source] = append(q.records[source], webhook.QuarantineRecord{Revision: uint64(i), Position: uint64(100 + i),
				Quarantined: aggregate.Quarantined{Source: source, ProviderEventType: "receipt.teleported", Reason: "unknown event type", Raw: json.RawMessage(raw)}})
		}
	}
	add("reewild", 5, 900_000)
	add("reap", 1, 5_000_000) // one delivery alone over 4 MiB
	env := newTestEnv(t, api.WithQuarantine(q))

	var sizes []int
	tok, n := "", 0
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		code, raw := getRaw(t, env, "/v1/quarantine?page_size=500&page_token="+tok)
		var page struct {
			Deliveries    []json.RawMessage `json:"deliveries"`
			NextPageToken string            `json:"nextPageToken"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &page) != nil {
			t.Fatalf("REST page %d: %d %.200s", pages+1, code, raw)
		}
		sizes = append(sizes, len(page.Deliveries))
		n += len(page.Deliveries)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if n != 5 || len(sizes) < 2 {
		t.Errorf("pages of %v deliveries, want all 5 over at least 2 pages", sizes)
	}
	t.Logf("five 900 KB deliveries came in pages of %v", sizes)

	// One delivery over the gateway connection's receive limit: the page
	// holds it anyway (a page is never empty), the gateway's client
	// refuses it, and REST says 500.
	code, raw := getRaw(t, env, "/v1/quarantine?source=reap")
	if code != http.StatusInternalServerError || !strings.Contains(string(raw), "larger than max") {
		t.Errorf("an answer over the gateway's receive limit: %d %.200s, want 500", code, raw)
	}
}

// getRaw sends GET path to env's REST server and returns the status and
// the body.
func getRaw(t *testing.T, env *testEnv, path string) (int, []byte) {
	t.Helper()
	resp, err := env.rest.Client().Get(env.rest.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}
