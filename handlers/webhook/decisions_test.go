package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// receiptView is the receipt's view as the aggregate resolves it from the
// events of its stream, as JSON (so that two views compare with ==).
func receiptView(t *testing.T, events []eventstore.RecordedEvent) string {
	t.Helper()
	r := aggregate.NewReceipt("reewild", burstReceipt)
	for _, e := range events {
		f, err := eventcodec.StageRecorded(e.Event)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	v, err := json.Marshal(r.View())
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// countingStore counts the calls a Store gets.
type countingStore struct {
	eventstore.Store
	mu             sync.Mutex
	appends, reads int
}

func (s *countingStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	s.appends++
	s.mu.Unlock()
	return s.Store.Append(ctx, stream, expected, events...)
}

func (s *countingStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.Store.ReadStream(ctx, stream, from, limit)
}

// TestBurstOfOneReceipt: one receipt's deliveries — every stage, a
// correction, and each sent ten times over (a provider's retries, a
// replay) — arrive at once from 64 connections, on the in-memory double
// and on the embedded store. Every one is answered 200; the stream holds
// exactly one event per distinct delivery, appended with no wrong-revision
// retry (deliveries to one stream take turns) and read once; every answer
// for one body carries the same position; and the view is the one a
// sequential delivery gives.
func TestBurstOfOneReceipt(t *testing.T) {
	distinct := oneReceipt(t, burstReceipt)
	stream := "receipt-reewild." + burstReceipt

	sequential := storedouble.NewMemStoreDouble()
	seq := newReewildHandler(t, sequential, webhook.Options{})
	for _, b := range distinct {
		if w := serveRec(seq, request("reewild", b, secret)); w.Code != http.StatusOK {
			t.Fatalf("sequential delivery: %d %s", w.Code, w.Body)
		}
	}
	want := receiptView(t, sequential.Stream(stream))

	for _, tc := range []struct {
		name string
		open func(t *testing.T) eventstore.Store
	}{
		{"memory", func(t *testing.T) eventstore.Store { return storedouble.NewMemStoreDouble() }},
		{"bolt", func(t *testing.T) eventstore.Store {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &countingStore{Store: tc.open(t)}
			h := newReewildHandler(t, store, webhook.Options{})
			var all [][]byte
			for range 10 {
				all = append(all, distinct...)
			}
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

			work := make(chan []byte, len(all))
			for _, b := range all {
				work <- b
			}
			close(work)
			var (
				mu        sync.Mutex
				positions = map[string]map[string]bool{} // body -> positions answered
				start     = make(chan struct{})
				wg        sync.WaitGroup
			)
			for range 64 {
				wg.Go(func() {
					<-start
					for b := range work {
						w := serveRec(h, request("reewild", b, secret))
						if w.Code != http.StatusOK {
							t.Errorf("answered %d: %s", w.Code, w.Body)
							continue
						}
						mu.Lock()
						if positions[string(b)] == nil {
							positions[string(b)] = map[string]bool{}
						}
						positions[string(b)][w.Header().Get(webhook.PositionHeader)] = true
						mu.Unlock()
					}
				})
			}
			close(start)
			wg.Wait()

			events, err := store.Store.ReadStream(context.Background(), stream, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != len(distinct) {
				t.Fatalf("%d events for %d distinct deliveries", len(events), len(distinct))
			}
			if store.appends != len(distinct) || store.reads != 1 {
				t.Errorf("%d appends and %d stream reads for %d distinct deliveries: want one append each and one read", store.appends, store.reads, len(distinct))
			}
			for _, ps := range positions {
				if len(ps) != 1 {
					t.Errorf("one body answered with positions %v", ps)
				}
			}
			if got := receiptView(t, events); got != want {
				t.Errorf("view after the burst:\n%s\nwant (sequential):\n%s", got, want)
			}
		})
	}
}

// TestDecisionCacheTinyBudget: with a budget that holds no stream, every
// state is dropped as soon as its delivery is answered, and the decisions
// are the same: duplicates found, corrections flagged, one event per
// distinct delivery, across many receipts delivered concurrently.
func TestDecisionCacheTinyBudget(t *testing.T) {
	for _, budget := range []int64{1, 2 << 10, 1 << 30} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			store := &countingStore{Store: storedouble.NewMemStoreDouble()}
			h := newReewildHandler(t, store, webhook.Options{DecisionCacheBytes: budget})
			var all [][]byte
			distinct := 0
			for i := range 12 {
				d := oneReceipt(t, fmt.Sprintf("tiny-%02d", i))
				distinct += len(d)
				all = append(all, d...)
				all = append(all, d...)
			}
			rand.New(rand.NewPCG(3, 4)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			work := make(chan []byte, len(all))
			for _, b := range all {
				work <- b
			}
			close(work)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for b := range work {
						if w := serveRec(h, request("reewild", b, secret)); w.Code != http.StatusOK {
							t.Errorf("answered %d: %s", w.Code, w.Body)
						}
					}
				})
			}
			wg.Wait()
			mem := store.Store.(*storedouble.MemStoreDouble)
			if mem.Count() != distinct || store.appends != distinct {
				t.Fatalf("%d events, %d appends for %d distinct deliveries", mem.Count(), store.appends, distinct)
			}
			corrections := 0
			for i := range 12 {
				for _, e := range mem.Stream(fmt.Sprintf("receipt-reewild.tiny-%02d", i)) {
					if metadataOf(t, e).Correction {
						corrections++
					}
				}
			}
			if corrections != 12 {
				t.Fatalf("%d corrections flagged, want one per receipt", corrections)
			}
			switch {
			case budget == 1 && store.reads < distinct:
				// Every delivery that found no state read its stream.
				t.Errorf("%d stream reads with a budget that holds nothing, want at least %d", store.reads, distinct)
			case budget == 1<<30 && store.reads != 12:
				t.Errorf("%d stream reads with a budget that holds everything, want one per stream", store.reads)
			}
		})
	}
}

// TestDecisionCacheStale: another writer appends to a stream behind the
// cache's back (another node on the same log). The next delivery is
// decided on the stale state, its append refused with a wrong revision;
// the Handler catches up and decides again: a duplicate of what the other
// node wrote is answered duplicate with that event's position, a second
// fact for a slot it filled is flagged a correction, a new stage is
// appended after it.
func TestDecisionCacheStale(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	h := newReewildHandler(t, store, webhook.Options{})
	other := newReewildHandler(t, store, webhook.Options{})
	const stream = "receipt-reewild." + burstReceipt
	d := oneReceipt(t, burstReceipt) // uploaded … scored, awarded, failed, scored corrected
	post := func(h http.Handler, b []byte, status string) answer {
		t.Helper()
		return expect(t, serveRec(h, request("reewild", b, secret)), http.StatusOK, status)
	}
	post(h, d[0], "accepted") // h's cache now holds the stream

	theirs := post(other, d[1], "accepted")
	if a := post(h, d[1], "duplicate"); a.Position != theirs.Position {
		t.Fatalf("duplicate of the other node's event answered position %s, want %s", a.Position, theirs.Position)
	}

	post(other, d[4], "accepted") // scored
	appends := store.AppendCalls()
	post(h, d[7], "accepted") // scored, corrected
	events := store.Stream(stream)
	if len(events) != 4 || !metadataOf(t, events[3]).Correction {
		t.Fatalf("%d events; want the correction flagged as fourth", len(events))
	}
	if store.AppendCalls() != appends+2 {
		t.Fatalf("%d appends for one delivery behind the cache's back, want 2: refused, then appended", store.AppendCalls()-appends)
	}

	post(other, d[2], "accepted") // enriched, behind h's back again
	post(h, d[3], "accepted")     // validated: refused once, then appended
	if got := len(store.Stream(stream)); got != 6 {
		t.Fatalf("%d events, want 6", got)
	}
	for i, e := range store.Stream(stream) {
		if e.Revision != uint64(i) {
			t.Fatalf("event %d at revision %d", i, e.Revision)
		}
	}
}

// TestDecisionCacheAfterUnknownAppend: an append whose outcome is unknown
// (the store failed after writing, or the deadline passed) leaves the
// cache to catch up: the provider's retry of the same body is a duplicate
// if the first attempt landed.
func TestDecisionCacheAfterUnknownAppend(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	h := newReewildHandler(t, store, webhook.Options{})
	d := oneReceipt(t, burstReceipt)
	expect(t, serveRec(h, request("reewild", d[0], secret)), http.StatusOK, "accepted")
	store.SetOnAppend(func(_ context.Context, stream string, _ int) error {
		// The event is written, but the answer is lost.
		if _, err := store.AppendDirect(stream, eventstore.Any, aggregate.Event{
			ID: "landed", Type: aggregate.TypeReceiptStageRecorded, Data: []byte(`{}`),
			Metadata: []byte(`{"source":"reewild","dedupe_key":"receipt.extracted:` + burstReceipt + `:` + sha(d[1]) + `","slot_key":"stage:EXTRACTED"}`),
		}); err != nil {
			t.Error(err)
		}
		return fmt.Errorf("commit: %w", context.DeadlineExceeded)
	})
	expect(t, serveRec(h, request("reewild", d[1], secret)), http.StatusServiceUnavailable, "")
	store.SetOnAppend(nil)
	a := expect(t, serveRec(h, request("reewild", d[1], secret)), http.StatusOK, "duplicate")
	if a.Position != "2" || store.Count() != 2 {
		t.Fatalf("retry answered position %s with %d events", a.Position, store.Count())
	}
}

// TestTurnWaitHonoursTheDeadline: a delivery waiting for its stream's turn
// behind an append that stalls is answered 503 at its deadline, not held.
func TestTurnWaitHonoursTheDeadline(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	h := newReewildHandler(t, store, webhook.Options{StoreDeadline: 100 * time.Millisecond})
	d := oneReceipt(t, burstReceipt)
	stall := make(chan struct{})
	store.SetOnAppend(func(ctx context.Context, _ string, _ int) error {
		select {
		case <-stall:
		case <-ctx.Done():
		}
		return fmt.Errorf("commit: %w", context.DeadlineExceeded)
	})
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Go(func() { codes[i] = serveRec(h, request("reewild", d[i], secret)).Code })
	}
	wg.Wait()
	close(stall)
	for i, c := range codes {
		if c != http.StatusServiceUnavailable {
			t.Errorf("delivery %d: %d, want 503", i, c)
		}
	}
	store.SetOnAppend(nil)
	expect(t, serveRec(h, request("reewild", d[0], secret)), http.StatusOK, "accepted")
}

// TestDecisionCacheMetrics: the collector counts a miss for a stream's
// first delivery, hits after, a stale lookup after another node wrote, and
// the bytes and streams held.
func TestDecisionCacheMetrics(t *testing.T) {
	store := storedouble.NewMemStoreDouble()
	rw, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.New(store, []webhook.Provider{rw}, webhook.Options{Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Collector())
	mux := http.NewServeMux()
	h.Register(mux)
	d := oneReceipt(t, burstReceipt)
	for _, b := range d[:3] {
		expect(t, serveRec(mux, request("reewild", b, secret)), http.StatusOK, "accepted")
	}
	expect(t, serveRec(otherNode(t, store), request("reewild", d[3], secret)), http.StatusOK, "accepted")
	expect(t, serveRec(mux, request("reewild", d[4], secret)), http.StatusOK, "accepted")

	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	// d[0]: miss; d[1], d[2]: hits; d[4]: a hit, refused (d[3] is behind
	// its back), then stale, caught up.
	want := map[string]float64{
		"receiptd_webhook_decision_cache_lookups_total/miss":  1,
		"receiptd_webhook_decision_cache_lookups_total/hit":   3,
		"receiptd_webhook_decision_cache_lookups_total/stale": 1,
		"receiptd_webhook_decision_cache_streams":             1,
		"receiptd_webhook_decision_cache_evictions_total":     0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if b := got["receiptd_webhook_decision_cache_bytes"]; b < 500 || b > 4096 {
		t.Errorf("%v bytes for one five-event stream", b)
	}
}
