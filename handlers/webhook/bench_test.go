package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// The example deliveries name three receipts; oneReceipt moves them all to
// one.
const (
	burstReceipt  = "fb2cdc63-6d13-4176-89ae-7a424b69d7b5"
	otherReceipt1 = "133f1eb5-2c91-4a95-ad87-2ae6de6e8df0"
	otherReceipt2 = "491d44e2-a2b7-4107-87db-4d5b566e6d2b"
)

// oneReceipt returns the 8 distinct deliveries of one receipt: every stage
// of the examples, in pipeline order (uploaded … awarded, failed), and a
// correction of the scored stage.
func oneReceipt(tb testing.TB, receipt string) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, name := range []string{"receipt.uploaded", "receipt.extracted", "receipt.enriched", "receipt.validated", "receipt.scored", "rewards.awarded", "receipt.failed"} {
		out = append(out, readExample(tb, name))
	}
	scored := readExample(tb, "receipt.scored")
	corrected := bytes.Replace(scored, []byte(`"subTotal": 6.33`), []byte(`"subTotal": 6.34`), 1)
	if bytes.Equal(corrected, scored) {
		tb.Fatal("the scored example changed: update the correction")
	}
	out = append(out, corrected)
	for i, b := range out {
		for _, id := range []string{otherReceipt1, otherReceipt2, burstReceipt} {
			b = bytes.ReplaceAll(b, []byte(id), []byte(receipt))
		}
		out[i] = b
	}
	return out
}

// newReewildHandler serves a reewild source named "reewild" on store.
func newReewildHandler(tb testing.TB, store eventstore.Store, opts webhook.Options) http.Handler {
	tb.Helper()
	rw, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return now }
	}
	h, err := webhook.New(store, []webhook.Provider{rw}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return mux
}

// receiptGen makes the deliveries of receipt number k without allocating:
// the templates of oneReceipt with the receipt id (36 bytes, as the
// examples') written at its offsets.
type receiptGen struct {
	templates [][]byte
	offsets   [][]int
	id        []byte
}

func newReceiptGen(tb testing.TB) *receiptGen {
	g := &receiptGen{id: []byte(receiptNumber(0))}
	for _, t := range oneReceipt(tb, string(g.id)) {
		var offs []int
		for i := 0; ; {
			j := bytes.Index(t[i:], g.id)
			if j < 0 {
				break
			}
			offs = append(offs, i+j)
			i += j + len(g.id)
		}
		g.templates, g.offsets = append(g.templates, t), append(g.offsets, offs)
	}
	return g
}

// receiptNumber is the 36-byte id of receipt k.
func receiptNumber(k int) string { return fmt.Sprintf("bench-%030d", k) }

// body writes delivery i (of len(templates)) of receipt k into dst.
func (g *receiptGen) body(dst []byte, k, i int) []byte {
	dst = append(dst[:0], g.templates[i]...)
	g.id = fmt.Appendf(g.id[:0], "bench-%030d", k)
	for _, off := range g.offsets[i] {
		copy(dst[off:], g.id)
	}
	return dst
}

// benchStores are the stores the handler benchmarks run on: the in-memory
// double (the handler's own cost) and the embedded store (durable appends:
// an fsync each, since one client does not fill a group commit).
var benchStores = []struct {
	name string
	open func(b *testing.B) eventstore.Store
}{
	{"memory", func(*testing.B) eventstore.Store { return storedouble.NewMemStoreDouble() }},
	{"bolt", func(b *testing.B) eventstore.Store {
		s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// BenchmarkServeHTTP times one delivery through the handler, on each store,
// each case also with privacy on ("-sealed": body and personal fields
// sealed under the user's data key):
//
//   - accepted: a rewards.awarded of a new receipt each time;
//   - duplicate: a re-delivery of a stage of a receipt whose stream holds
//     its 8 events;
//   - receipt: whole receipts, as the bench sends them: each delivery the
//     next of a receipt's 8 (stages, awarded, failed, a correction), so a
//     delivery finds 3.5 events in its stream on average.
func BenchmarkServeHTTP(b *testing.B) {
	serve := func(h http.Handler, body []byte) int {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(reewild.SignatureHeader, reewild.Sign(secret, body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			// Each case in the clear and, with the suffix "-sealed", with
			// privacy on: every delivery sealed under its user's data key
			// (a key file in the benchmark's temporary directory).
			for _, mode := range []string{"", "-sealed"} {
				opts := func(b *testing.B) webhook.Options {
					if mode == "" {
						return webhook.Options{}
					}
					return webhook.Options{Keys: newKeyring(b)}
				}
				b.Run("accepted"+mode, func(b *testing.B) {
					h := newReewildHandler(b, st.open(b), opts(b))
					body := readExample(b, "rewards.awarded")
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						i++
						next := bytes.Replace(body, []byte(burstReceipt), fmt.Appendf(nil, "%036d", i), 1)
						if code := serve(h, next); code != http.StatusOK {
							b.Fatal(code)
						}
					}
				})
				b.Run("duplicate"+mode, func(b *testing.B) {
					h := newReewildHandler(b, st.open(b), opts(b))
					bodies := oneReceipt(b, burstReceipt)
					for _, body := range bodies {
						if code := serve(h, body); code != http.StatusOK {
							b.Fatal(code)
						}
					}
					body := bodies[4]
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					for b.Loop() {
						if code := serve(h, body); code != http.StatusOK {
							b.Fatal(code)
						}
					}
				})
				b.Run("receipt"+mode, func(b *testing.B) {
					store := st.open(b)
					h := newReewildHandler(b, store, opts(b))
					g := newReceiptGen(b)
					var buf []byte
					n, bodies := 0, 0
					b.ReportAllocs()
					for b.Loop() {
						buf = g.body(buf, n/len(g.templates), n%len(g.templates))
						n++
						bodies += len(buf)
						if code := serve(h, buf); code != http.StatusOK {
							b.Fatal(code)
						}
					}
					// What the log holds per event (data, metadata, body), beside
					// the mean body delivered.
					stored, events := 0, 0
					for after := eventstore.Start; ; {
						page, err := store.ReadAll(context.Background(), after, 1000)
						if err != nil {
							b.Fatal(err)
						}
						if len(page) == 0 {
							break
						}
						for _, e := range page {
							stored += len(e.Data) + len(e.Metadata) + len(e.Body)
						}
						events += len(page)
						after = page[len(page)-1].Position
					}
					b.ReportMetric(float64(stored)/float64(events), "stored-B/event")
					b.ReportMetric(float64(bodies)/float64(n), "body-B/delivery")
				})
			}
		})
	}
}

// BenchmarkSealingOverhead measures what privacy costs ingest, in one
// run: two handlers, one storing in the clear and one sealing every
// delivery under its user's data key (Options.Keys), each on its own
// store, serve the same deliveries one after the other, alternating at
// every delivery, so that whatever else the machine does weighs on both
// alike. It reports each one's mean wall time per delivery and the
// overhead, and (on Linux) the CPU time of the thread serving them, which
// another process's load on the machine does not inflate:
//
//	go test -run '^$' -bench SealingOverhead -benchtime 20000x ./handlers/webhook/
//
// "receipt" sends whole receipts as BenchmarkServeHTTP does (every
// delivery names the examples' user, whose key is cached after the
// first); "users" gives every ten receipts a new user, as the load
// generator's universe has (25,000 users for 250,000 receipts), so that
// one delivery in 80 creates a key: an fsynced write of the key file.
func BenchmarkSealingOverhead(b *testing.B) {
	serve := func(h http.Handler, body []byte) int {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reewild", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(reewild.SignatureHeader, reewild.Sign(secret, body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, st := range benchStores {
		for _, newUsers := range []bool{false, true} {
			name := st.name + "/receipt"
			if newUsers {
				name = st.name + "/users"
			}
			b.Run(name, func(b *testing.B) {
				clearH := newReewildHandler(b, st.open(b), webhook.Options{})
				sealedH := newReewildHandler(b, st.open(b), webhook.Options{Keys: newKeyring(b)})
				g := newReceiptGen(b)
				var buf []byte
				var clearT, sealedT time.Duration
				var clearCPU, sealedCPU int64
				n := 0
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for b.Loop() {
					buf = g.body(buf, n/len(g.templates), n%len(g.templates))
					if newUsers {
						buf = bytes.ReplaceAll(buf, []byte("027KO2"), fmt.Appendf(nil, "u%05d", n/len(g.templates)/10%100000))
					}
					n++
					for i, h := range []http.Handler{clearH, sealedH} {
						if n%2 == 0 { // alternate which goes first
							h = []http.Handler{sealedH, clearH}[i]
						}
						start, cpu := time.Now(), threadCPU()
						if code := serve(h, buf); code != http.StatusOK {
							b.Fatal(code)
						}
						if h == clearH {
							clearT += time.Since(start)
							clearCPU += threadCPU() - cpu
						} else {
							sealedT += time.Since(start)
							sealedCPU += threadCPU() - cpu
						}
					}
				}
				b.ReportMetric(float64(clearT.Nanoseconds())/float64(n), "clear-ns/delivery")
				b.ReportMetric(float64(sealedT.Nanoseconds())/float64(n), "sealed-ns/delivery")
				b.ReportMetric(100*(float64(sealedT)/float64(clearT)-1), "overhead-%")
				if clearCPU > 0 {
					b.ReportMetric(float64(clearCPU)/float64(n), "clear-cpu-ns/delivery")
					b.ReportMetric(float64(sealedCPU)/float64(n), "sealed-cpu-ns/delivery")
					b.ReportMetric(100*(float64(sealedCPU)/float64(clearCPU)-1), "cpu-overhead-%")
				}
			})
		}
	}
}
