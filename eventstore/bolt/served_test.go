package bolt_test

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/bench/benchdata"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// BenchmarkLogSizeServed fills a log as `go run ./bench` fills the one its
// rebuilds replay: its first 250,000 deliveries (the universe of 250,000
// receipts and 25,000 users, seed 1, shuffled, 20% exact re-deliveries)
// signed and sent by 64 concurrent senders through receiptd's webhook
// handler (verify, decode, decide, append; in process, no HTTP
// connection, no read models) to a new store opened as the server opens it
// (a map of 64 GiB). It reports the file's size per event as ls sees it
// once the store is closed (file-B), the pages in use (used-B), the share
// of them free, and the mean body of the deliveries appended (body-B):
// issue 13's log size target is file-B <= body-B. Modes: schema2 (the
// layout before schema 3, 4 KiB pages) and the store as it is.
//
//	go test ./eventstore/bolt/ -run '^$' -bench LogSizeServed -benchtime 1x -timeout 1h
func BenchmarkLogSizeServed(b *testing.B) {
	const (
		deliveries = 250_000
		dup        = 0.2
		secret     = "bench-secret-0123456789"
	)
	u := benchdata.Universe{Seed: 1, Users: 25000, Receipts: 250000}
	// The bench's sequence (bench/payloads.go): a permutation, and before
	// each next delivery, with probability dup, an earlier one again.
	rng := rand.New(rand.NewPCG(1, 1^0x5eed))
	perm := make([]uint32, u.Size())
	for i := range perm {
		perm[i] = uint32(i)
	}
	rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	seq := make([]uint32, 0, deliveries)
	next := 0
	for len(seq) < deliveries {
		if next > 0 && rng.Float64() < dup {
			seq = append(seq, perm[rng.IntN(next)])
			continue
		}
		seq = append(seq, perm[next])
		next++
	}
	body := 0
	for _, k := range perm[:next] {
		body += len(u.Delivery(nil, int(k)))
	}
	for _, m := range []loadedMode{
		{"schema2", bolt.WithSchema2(bolt.WithPageSize(bolt.Options{}, 4096))},
		{"now", bolt.Options{}},
	} {
		b.Run(m.name, func(b *testing.B) {
			var (
				st     bolt.SpaceStats
				events uint64
			)
			for range b.N {
				path := filepath.Join(b.TempDir(), "events.db")
				opts := m.opts
				opts.InitialMmapSize = 64 << 30
				s, err := bolt.Open(path, opts)
				if err != nil {
					b.Fatal(err)
				}
				p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte(secret)}})
				if err != nil {
					b.Fatal(err)
				}
				h, err := webhook.New(s, []webhook.Provider{p}, webhook.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				mux := http.NewServeMux()
				h.Register(mux)
				start := time.Now()
				var (
					wg   sync.WaitGroup
					mu   sync.Mutex
					at   int
					fail string
				)
				for range 64 {
					wg.Go(func() {
						var buf []byte
						for {
							mu.Lock()
							i := at
							at++
							mu.Unlock()
							if i >= len(seq) || fail != "" {
								return
							}
							buf = u.Delivery(buf[:0], int(seq[i]))
							r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", bytes.NewReader(buf))
							r.Header.Set("Content-Type", "application/json")
							r.Header.Set(reewild.SignatureHeader, reewild.Sign([]byte(secret), buf))
							w := httptest.NewRecorder()
							mux.ServeHTTP(w, r)
							if w.Code != http.StatusOK {
								mu.Lock()
								fail = w.Body.String()
								mu.Unlock()
								return
							}
						}
					})
				}
				wg.Wait()
				if fail != "" {
					b.Fatal(fail)
				}
				took := time.Since(start)
				events = s.Stats().Events
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				if st, err = bolt.Space(path); err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: %d deliveries, %d events in %v", m.name, len(seq), events, took.Round(time.Millisecond))
			}
			n := float64(events)
			b.ReportMetric(float64(st.FileBytes)/n, "file-B")
			b.ReportMetric(float64(st.HighWater)/n, "used-B")
			b.ReportMetric(100*float64(st.FreeBytes)/float64(st.HighWater), "free-%")
			b.ReportMetric(float64(body)/float64(next), "body-B")
		})
	}
}
