package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// The ablation servers split ingest's cost: the webhook handler alone over
// an in-memory store (HTTP, verify, decode, decide; no disk), then over the
// embedded store (plus the durable append), each without the read models
// that receiptd keeps up to date in the same process. They run as child
// processes, like receiptd and the reference handler, with receiptd's
// http.Server settings.

const ingestOnlyArg = "ingest-only-server"

// runIngestOnly serves the webhook handler over the store named by kind
// ("mem", or "bolt" in dir) until killed.
func runIngestOnly(kind, dir string) error {
	var store eventstore.Store
	switch kind {
	case "mem":
		store = newMemStore()
	case "bolt":
		s, err := bolt.Open(filepath.Join(dir, "events.db"), bolt.Options{})
		if err != nil {
			return err
		}
		store = s
	default:
		return fmt.Errorf("unknown store %q", kind)
	}
	defer store.Close()
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte(benchSecret)}})
	if err != nil {
		return err
	}
	h, err := webhook.New(store, []webhook.Provider{p}, webhook.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	// Profiles of the ablation servers, for digging (bench-only processes).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Info("listening", "http", lis.Addr().String())
	return srv.Serve(lis)
}

func startIngestOnly(kind, dir string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startChild(exec.Command(self, ingestOnlyArg, kind, dir))
}

// memStore is a minimal in-memory eventstore.Store: appends with the
// expected-revision check, stream reads, head. No durability, no
// subscriptions: only what ingest uses.
type memStore struct {
	mu      sync.RWMutex
	streams map[string][]eventstore.RecordedEvent
	head    uint64
}

func newMemStore() *memStore { return &memStore{streams: map[string][]eventstore.RecordedEvent{}} }

func (s *memStore) Append(_ context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.streams[stream]
	actual := eventstore.NoStream
	if len(cur) > 0 {
		actual = eventstore.Exact(cur[len(cur)-1].Revision)
	}
	if expected != eventstore.Any && expected != actual {
		return eventstore.AppendResult{}, &eventstore.WrongRevisionError{Stream: stream, Expected: expected, Actual: actual}
	}
	var res eventstore.AppendResult
	for _, e := range events {
		s.head++
		rec := eventstore.RecordedEvent{Event: e, Stream: stream, Revision: uint64(len(cur)),
			Position: eventstore.Position{Commit: s.head, Prepare: s.head}, RecordedAt: time.Now()}
		rec.Data = append([]byte(nil), e.Data...)
		rec.Metadata = append([]byte(nil), e.Metadata...)
		rec.Body = append([]byte(nil), e.Body...)
		cur = append(cur, rec)
		res = eventstore.AppendResult{NextRevision: rec.Revision, Position: rec.Position}
	}
	s.streams[stream] = cur
	return res, nil
}

func (s *memStore) ReadStream(_ context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur := s.streams[stream]
	if from >= uint64(len(cur)) {
		return nil, nil
	}
	out := cur[from:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return append([]eventstore.RecordedEvent(nil), out...), nil
}

func (s *memStore) ReadAll(context.Context, eventstore.Position, int) ([]eventstore.RecordedEvent, error) {
	return nil, errors.ErrUnsupported
}

func (s *memStore) Subscribe(context.Context, eventstore.Position, func(context.Context, []eventstore.RecordedEvent) error) error {
	return errors.ErrUnsupported
}

func (s *memStore) Head(context.Context) (eventstore.Position, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return eventstore.Position{Commit: s.head, Prepare: s.head}, nil
}

func (s *memStore) Close() error { return nil }
