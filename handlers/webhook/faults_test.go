package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// This file injects store faults under ingest: a store that cannot fsync,
// is closed, is full, or stalls past the deadline. Whatever the fault, a
// delivery is answered 503 with Retry-After within the store deadline and
// never 200, nothing is stored, readiness (webhook.StoreHealth) goes false,
// and it comes back by itself when the store does.

// fakeClock is a settable clock for StoreHealth's hold.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// faultFixture is a handler over a memStoreDouble wrapped in a StoreHealth.
type faultFixture struct {
	*fixture
	health *webhook.StoreHealth
	clock  *fakeClock
}

const (
	faultDeadline   = 150 * time.Millisecond
	faultRetryAfter = 2 * time.Second
	faultHold       = 5 * time.Second
)

func newFaultFixture(t *testing.T) *faultFixture {
	t.Helper()
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	ff := &faultFixture{
		fixture: &fixture{t: t, store: storedouble.NewMemStoreDouble(), mux: http.NewServeMux(), logs: &lockedBuffer{}},
		clock:   &fakeClock{now: now},
	}
	ff.health = webhook.NewStoreHealth(ff.store, webhook.HealthOptions{Hold: faultHold, Clock: ff.clock.Now})
	h, err := webhook.New(ff.health, []webhook.Provider{p}, webhook.Options{
		StoreDeadline: faultDeadline,
		RetryAfter:    faultRetryAfter,
		Logger:        slog.New(slog.NewJSONHandler(ff.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Register(ff.mux)
	return ff
}

// distinctDelivery returns a delivery no other call returns: a new receipt.
var deliverySeq atomic.Int64

func distinctDelivery() []byte {
	return fmt.Appendf(nil, `{"eventType":"receipt.extracted","data":{"userID":"u-faults","receiptID":"faults-%d","subTotal":6.33}}`, deliverySeq.Add(1))
}

func TestStoreFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		// inject makes the double fail; heal (nil: the fault does not heal
		// in this process) undoes it.
		inject, heal func(s *storedouble.MemStoreDouble)
	}{
		{
			name: "cannot fsync",
			inject: func(s *storedouble.MemStoreDouble) {
				setAppendHook(s, func(context.Context, string, int) error {
					return fmt.Errorf("bolt: append: commit: %w: fdatasync: input/output error", eventstore.ErrUnavailable)
				})
			},
			heal: func(s *storedouble.MemStoreDouble) { setAppendHook(s, nil) },
		},
		{
			name: "full",
			inject: func(s *storedouble.MemStoreDouble) {
				setAppendHook(s, func(context.Context, string, int) error {
					return fmt.Errorf("bolt: append: %w: database reached its maximum size: write: no space left on device", eventstore.ErrUnavailable)
				})
			},
			heal: func(s *storedouble.MemStoreDouble) { setAppendHook(s, nil) },
		},
		{
			name: "queue full",
			inject: func(s *storedouble.MemStoreDouble) {
				setAppendHook(s, func(context.Context, string, int) error {
					return fmt.Errorf("bolt: append: %w: 16384 appends already waiting for a commit", eventstore.ErrUnavailable)
				})
			},
			heal: func(s *storedouble.MemStoreDouble) { setAppendHook(s, nil) },
		},
		{
			name: "stalls past the deadline",
			inject: func(s *storedouble.MemStoreDouble) {
				setAppendHook(s, func(ctx context.Context, _ string, _ int) error {
					<-ctx.Done()
					return fmt.Errorf("bolt: append: waiting for commit: %w", ctx.Err())
				})
			},
			heal: func(s *storedouble.MemStoreDouble) { setAppendHook(s, nil) },
		},
		{
			name: "reads fail",
			inject: func(s *storedouble.MemStoreDouble) {
				setReadHook(s, func(context.Context, string, int) error {
					return fmt.Errorf("esdb: read stream: %w: connection refused", eventstore.ErrUnavailable)
				})
			},
			heal: func(s *storedouble.MemStoreDouble) { setReadHook(s, nil) },
		},
		{
			name:   "closed",
			inject: func(s *storedouble.MemStoreDouble) { _ = s.Close() },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultFixture(t)
			// A healthy start: one delivery recorded, ready.
			expect(t, f.post(distinctDelivery()), http.StatusOK, "accepted")
			if err := f.health.Ready(context.Background()); err != nil {
				t.Fatalf("healthy store not ready: %v", err)
			}
			stored := f.store.Count()

			tc.inject(f.store)

			// Concurrent deliveries, new ones and quarantine-bound ones
			// (which need an append too): every one 503 + Retry-After,
			// within the deadline, none stored.
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range 4 {
						body := distinctDelivery()
						if (w+i)%3 == 0 {
							body = fmt.Appendf(nil, `{"eventType":"receipt.teleported","n":%d}`, deliverySeq.Add(1))
						}
						start := time.Now()
						rec := httptest.NewRecorder()
						f.mux.ServeHTTP(rec, request("reewild", body, secret))
						if elapsed := time.Since(start); elapsed > faultDeadline+time.Second {
							t.Errorf("answered after %v: past the %v deadline", elapsed, faultDeadline)
						}
						if rec.Code != http.StatusServiceUnavailable {
							t.Errorf("answered %d, want 503: %s", rec.Code, rec.Body)
							continue
						}
						if got := rec.Header().Get("Retry-After"); got != "2" {
							t.Errorf("Retry-After %q, want 2", got)
						}
						if rec.Header().Get(webhook.PositionHeader) != "" {
							t.Error("a 503 carries a position")
						}
					}
				})
			}
			wg.Wait()
			if got := f.store.Count(); got != stored {
				t.Fatalf("%d events stored during the fault", got-stored)
			}
			err := f.health.Ready(context.Background())
			if !errors.Is(err, webhook.ErrNotReady) {
				t.Fatalf("Ready during the fault = %v, want ErrNotReady", err)
			}

			if tc.heal == nil {
				return // a closed store does not reopen (see TestClosedStoreIsNeverReady)
			}
			// Without traffic, readiness comes back after the hold (the
			// half-open state), and goes away again at the next failure.
			f.clock.Advance(faultHold - time.Millisecond)
			if err := f.health.Ready(context.Background()); err == nil {
				t.Fatal("ready again before the hold has passed")
			}
			f.clock.Advance(time.Millisecond)
			if err := f.health.Ready(context.Background()); err != nil {
				t.Fatalf("not ready after the hold with no failure meanwhile: %v", err)
			}
			expect(t, f.post(distinctDelivery()), http.StatusServiceUnavailable, "")
			if err := f.health.Ready(context.Background()); err == nil {
				t.Fatal("ready right after a failed delivery")
			}

			// The store heals: the next delivery is recorded, and readiness
			// is back at once.
			tc.heal(f.store)
			expect(t, f.post(distinctDelivery()), http.StatusOK, "accepted")
			if err := f.health.Ready(context.Background()); err != nil {
				t.Fatalf("not ready after a successful append: %v", err)
			}
			if got := f.store.Count(); got != stored+1 {
				t.Fatalf("%d events after healing, want %d", got, stored+1)
			}
			if st := f.health.Stats(); st.Failures == 0 || st.Successes == 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestClosedStoreIsNeverReady: once the embedded store is closed, ingest
// answers 503 and readiness stays false however long it waits: Head fails.
func TestClosedStoreIsNeverReady(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: now}
	health := webhook.NewStoreHealth(s, webhook.HealthOptions{Clock: clock.Now})
	if err := health.Ready(context.Background()); err != nil {
		t.Fatalf("open store not ready: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.New(health, []webhook.Provider{p}, webhook.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	w := serveRec(mux, request("reewild", distinctDelivery(), secret))
	expect(t, w, http.StatusServiceUnavailable, "")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	for _, d := range []time.Duration{0, time.Hour} {
		clock.Advance(d)
		if err := health.Ready(context.Background()); !errors.Is(err, webhook.ErrNotReady) || !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("Ready on a closed store after %v = %v", d, err)
		}
	}
}

// TestHealthIgnoresRequestFaults: errors that say nothing about the store
// (a wrong revision, an invalid append, a cancelled caller) do not make
// ingest unready.
func TestHealthIgnoresRequestFaults(t *testing.T) {
	for _, err := range []error{
		&eventstore.WrongRevisionError{Stream: "s", Expected: eventstore.NoStream, Actual: eventstore.Exact(0)},
		fmt.Errorf("append: %w: events over 4 MiB", eventstore.ErrInvalid),
		fmt.Errorf("append: %w", context.Canceled),
	} {
		store := storedouble.NewMemStoreDouble()
		store.OnAppend = func(context.Context, string, int) error { return err }
		h := webhook.NewStoreHealth(store, webhook.HealthOptions{})
		if _, got := h.Append(context.Background(), "receipt-reewild.x", eventstore.Any, okEvent()); !errors.Is(got, err) {
			t.Fatalf("Append returned %v, want %v", got, err)
		}
		if r := h.Ready(context.Background()); r != nil {
			t.Errorf("after %v: Ready = %v", err, r)
		}
	}
}

// TestStoreFullOnDisk runs ingest on the embedded store capped by MaxSize:
// deliveries are accepted until the file is full, then answered 503 with
// Retry-After, never 200; every delivery answered 200 is in the log and
// nothing else is; readiness goes false. Reopened without the cap (an
// operator freed space), the same log takes the rest, and readiness returns.
func TestStoreFullOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(opts bolt.Options) (*bolt.Store, *webhook.StoreHealth, *http.ServeMux) {
		s, err := bolt.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		health := webhook.NewStoreHealth(s, webhook.HealthOptions{})
		h, err := webhook.New(health, []webhook.Provider{p}, webhook.Options{
			StoreDeadline: time.Second, RetryAfter: faultRetryAfter, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		h.Register(mux)
		return s, health, mux
	}
	store, health, mux := serve(bolt.Options{MaxSize: 1 << 20})
	body := readExample(t, "rewards.awarded")
	accepted := map[string]bool{}
	var refused []string
	for i := 0; len(refused) < 20; i++ {
		if i > 5000 {
			t.Fatal("1 MiB never filled")
		}
		id := fmt.Sprintf("full-%05d-6d13-4176-89ae-7a424b69d7b5", i)
		b := []byte(strings.ReplaceAll(string(body), exampleReceipt, id))
		start := time.Now()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, request("reewild", b, secret))
		switch rec.Code {
		case http.StatusOK:
			if len(refused) > 0 {
				// bbolt may find room again for a smaller commit; that is
				// fine as long as it is durable (checked below).
				t.Logf("delivery %d accepted after %d refusals", i, len(refused))
			}
			accepted[id] = true
		case http.StatusServiceUnavailable:
			if rec.Header().Get("Retry-After") != "2" {
				t.Fatalf("503 without Retry-After 2: %v", rec.Header())
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("503 after %v", d)
			}
			refused = append(refused, id)
		default:
			t.Fatalf("delivery %d answered %d: %s", i, rec.Code, rec.Body)
		}
	}
	if len(accepted) == 0 {
		t.Fatal("nothing accepted before the store filled")
	}
	if err := health.Ready(context.Background()); !errors.Is(err, webhook.ErrNotReady) {
		t.Fatalf("Ready with a full store = %v", err)
	}
	t.Logf("%d deliveries accepted, then %d refused", len(accepted), len(refused))
	checkLog := func(s eventstore.Store, want map[string]bool) {
		t.Helper()
		all, err := s.ReadAll(context.Background(), eventstore.Start, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(want) {
			t.Fatalf("log holds %d events, %d deliveries were acknowledged", len(all), len(want))
		}
		for id := range want {
			evs, err := s.ReadStream(context.Background(), "receipt-reewild."+id, 0, 0)
			if err != nil || len(evs) != 1 {
				t.Fatalf("acknowledged receipt %s: %d events, %v", id, len(evs), err)
			}
		}
	}
	checkLog(store, accepted)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Space is freed: the same log takes the refused deliveries (the
	// providers' retries), and readiness is back.
	store, health, mux = serve(bolt.Options{})
	defer store.Close()
	for _, id := range refused {
		expect(t, serveRec(mux, request("reewild", []byte(strings.ReplaceAll(string(body), exampleReceipt, id)), secret)), http.StatusOK, "accepted")
		accepted[id] = true
	}
	if err := health.Ready(context.Background()); err != nil {
		t.Fatalf("not ready after the retries succeeded: %v", err)
	}
	checkLog(store, accepted)
}

// setAppendHook and setReadHook set the double's fault hooks under its
// lock, while deliveries may be running.
func setAppendHook(s *storedouble.MemStoreDouble, fn func(context.Context, string, int) error) {
	s.SetOnAppend(fn)
}

func setReadHook(s *storedouble.MemStoreDouble, fn func(context.Context, string, int) error) {
	s.SetOnRead(fn)
}

// exampleReceipt is the receipt id of the examples/reewild payloads.
const exampleReceipt = "fb2cdc63-6d13-4176-89ae-7a424b69d7b5"

// okEvent is a well-formed event to append directly.
func okEvent() aggregate.Event {
	return aggregate.Event{ID: "00000000-0000-5000-8000-000000000000", Type: aggregate.TypeReceiptStageRecorded, Data: []byte(`{}`), Metadata: []byte(`{}`)}
}

func serveRec(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
