package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"
)

// The reference handler is the ceiling ingest is measured against: a bare
// net/http server that reads each body and answers 200 with a body of the
// size receiptd's answer has. It runs as a child process (this binary,
// re-executed with the hidden "reference-server" argument), so that it
// competes for the CPUs with the load generator exactly as receiptd does.

const referenceArg = "reference-server"

// runReference serves until killed. It logs the address it bound as a JSON
// "listening" line on stderr, in receiptd's format.
func runReference() error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	answer := []byte(`{"status":"accepted","position":"123456"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bufs.Get().(*bytes.Buffer)
		b.Reset()
		_, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20))
		bufs.Put(b)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Receiptd-Position", "123456")
		_, _ = w.Write(answer)
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Info("listening", "http", lis.Addr().String())
	return srv.Serve(lis)
}

// startReference starts the reference handler as a child process.
func startReference() (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("reference handler: %w", err)
	}
	return startChild(exec.Command(self, referenceArg))
}
