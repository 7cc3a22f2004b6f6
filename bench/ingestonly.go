package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
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
		// The shared in-memory double: appends and stream reads as the
		// real stores do them (storetest checks it), nothing durable.
		store = storedouble.NewMemStoreDouble()
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
