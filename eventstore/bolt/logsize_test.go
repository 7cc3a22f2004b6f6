package bolt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/bench/benchdata"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// A loggedEvent is one of the bench's deliveries as the webhook handler
// appends it, in both encodings. (This test imports the Reewild provider
// and the codec to make realistic events; the store itself imports
// neither.)
type loggedEvent struct {
	stream string
	v1, v2 aggregate.Event
	body   int
}

var (
	loggedMu     sync.Mutex
	loggedEvents = map[int][]loggedEvent{}
)

// benchLog returns the deliveries of the bench's universe (seed 1, 1
// user in 10 receipts, its default mix) for receipts receipts, normalized
// and encoded v1 and v2, in the order of a random permutation (the bench
// sends them shuffled).
func benchLog(tb testing.TB, receipts int) []loggedEvent {
	tb.Helper()
	loggedMu.Lock()
	defer loggedMu.Unlock()
	if evs, ok := loggedEvents[receipts]; ok {
		return evs
	}
	var out []loggedEvent
	func() {
		p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{[]byte("bench-secret-0123456789")}})
		if err != nil {
			tb.Fatal(err)
		}
		u := benchdata.Universe{Seed: 1, Users: receipts / 10, Receipts: receipts}
		at := time.Date(2025, 11, 21, 15, 5, 3, 0, time.UTC)
		for k := range u.Size() {
			body := u.Delivery(nil, k)
			sum := sha256.Sum256(body)
			d := webhook.Delivery{Body: body, BodySHA256: hex.EncodeToString(sum[:]), ReceivedAt: at,
				Verification: webhook.Verification{Scheme: "hmac-sha256", KeyID: "sha256:0badc0de"}}
			n, err := p.Normalize(d)
			if err != nil {
				tb.Fatal(err)
			}
			id := webhook.EventID("reewild", n.Fact.DedupeKey, d.BodySHA256)
			meta := aggregate.Metadata{Source: "reewild", ProviderEventType: n.EventType, ReceivedAt: at,
				Scheme: d.Verification.Scheme, KeyID: d.Verification.KeyID, BodySHA256: d.BodySHA256,
				DedupeKey: n.Fact.DedupeKey, SlotKey: n.Fact.SlotKey, CorrelationID: id, CausationID: id}
			v2, err := eventcodec.Encode(id, n.Fact, meta, body)
			if err != nil {
				tb.Fatal(err)
			}
			v1 := aggregate.Event{ID: id, Type: n.Fact.Type, Data: encodeJSON(tb, n.Fact.Data), Metadata: encodeJSON(tb, meta)}
			out = append(out, loggedEvent{stream: n.Fact.Stream, v1: v1, v2: v2, body: len(body)})
		}
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}()
	loggedEvents[receipts] = out
	return out
}

// encodeJSON is how the webhook handler wrote v1 data (with the raw body,
// which the normalizers set) and metadata.
func encodeJSON(tb testing.TB, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// BenchmarkLogSize appends the bench's deliveries (4,000 receipts and 400
// enrolments: 24,400 events, shuffled, by 64 concurrent writers as the
// server's handlers do) to a new file and reports what the file holds per
// event: file-B (the file's size: it grows in steps of 1 to 16 MiB),
// used-B (the pages bbolt has used), events-B and streams-B (the pages of
// the events bucket and of the streams index: names and index in schema
// 2), record-B (the mean record), written-B (bytes written to the file,
// per event), beside body-B, the mean delivered body. Modes: v1 (JSON
// events in version 1 records, as the store was written before v2) and v2
// (eventcodec's events in version 2 records; schema1 and schema2: in the
// index layouts written before schema 3, 4 KiB pages as then; page4k:
// schema 3 with 4 KiB pages). Each b.N iteration writes a new file; the
// figures are the last one's. On a log this small the file's growth step
// weighs: BenchmarkLogSizeServed and BenchmarkAppendLoaded measure logs of
// 200,000 and 300,000 events.
//
//	go test -run '^$' -bench LogSize -benchtime 1x ./eventstore/bolt/
func BenchmarkLogSize(b *testing.B) {
	evs := benchLog(b, 4000)
	for _, m := range []struct {
		name string
		v2   bool
		opts bolt.Options
	}{
		{"v1", false, bolt.WithSchema1(bolt.WithRecordV1(bolt.WithPageSize(bolt.Options{}, 4096)))},
		{"v2-schema1", true, bolt.WithSchema1(bolt.WithPageSize(bolt.Options{}, 4096))},
		{"v2-schema2", true, bolt.WithSchema2(bolt.WithPageSize(bolt.Options{}, 4096))},
		{"v2-page4k", true, bolt.WithPageSize(bolt.Options{}, 4096)},
		{"v2", true, bolt.Options{}},
	} {
		b.Run(m.name, func(b *testing.B) {
			var (
				st      bolt.SpaceStats
				err     error
				written int64
			)
			for range b.N {
				path := filepath.Join(b.TempDir(), "events.db")
				w0 := procWritten(b)
				appendAll(b, path, m.opts, evs, m.v2)
				written = procWritten(b) - w0
				if st, err = bolt.Space(path); err != nil {
					b.Fatal(err)
				}
			}
			body, rec := 0, 0
			for _, e := range evs {
				body += e.body
				rec += bolt.RecordLen(e.stream, e.v2)
			}
			n := float64(len(evs))
			b.ReportMetric(float64(st.FileBytes)/n, "file-B")
			b.ReportMetric(float64(st.HighWater)/n, "used-B")
			if m.v2 {
				b.ReportMetric(float64(rec)/n, "record-B")
			}
			b.ReportMetric(float64(st.Alloc["events"])/n, "events-B")
			b.ReportMetric(float64(st.Alloc["streams"]+st.Alloc["names"]+st.Alloc["index"])/n, "streams-B")
			b.ReportMetric(float64(body)/n, "body-B")
			if written > 0 {
				b.ReportMetric(float64(written)/n, "written-B")
			}
		})
	}
}

// procWritten returns the bytes this process has passed to write calls
// (wchar in /proc/self/io), or 0 where there is none.
func procWritten(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// appendAll appends evs to a new store at path with 64 writers.
func appendAll(tb testing.TB, path string, opts bolt.Options, evs []loggedEvent, v2 bool) {
	s, err := bolt.Open(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	appendEvents(tb, s, evs, v2)
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// appendTo appends the v2 events of evs to s with 64 writers.
func appendTo(tb testing.TB, s *bolt.Store, evs []loggedEvent) { appendEvents(tb, s, evs, true) }

func appendEvents(tb testing.TB, s *bolt.Store, evs []loggedEvent, v2 bool) {
	var (
		next   atomic.Int64
		failed atomic.Value
		wg     sync.WaitGroup
	)
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(evs) {
					return
				}
				e := evs[i].v1
				if v2 {
					e = evs[i].v2
				}
				if _, err := s.Append(context.Background(), evs[i].stream, eventstore.Any, e); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkReadStream reads whole streams (a receipt's six events, a
// user's one) at random from a log of the bench's deliveries, in the
// layouts written before schema 3 and in schema 3 (the entries held in
// memory, then all in the index), same run.
//
//	go test -run '^$' -bench ReadStream -benchmem ./eventstore/bolt/
func BenchmarkReadStream(b *testing.B) {
	evs := benchLog(b, 4000)
	streams := map[string]bool{}
	for _, e := range evs {
		streams[e.stream] = true
	}
	names := make([]string, 0, len(streams))
	for s := range streams {
		names = append(names, s)
	}
	slices.Sort(names)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, m := range []struct {
		name string
		opts bolt.Options
	}{
		{"schema1", bolt.WithSchema1(bolt.Options{})},
		{"schema2", bolt.WithSchema2(bolt.Options{})},
		{"schema3-memory", bolt.Options{}},
		{"schema3", bolt.Options{}},
	} {
		path := filepath.Join(b.TempDir(), "events.db")
		s, err := bolt.Open(path, m.opts)
		if err != nil {
			b.Fatal(err)
		}
		appendTo(b, s, evs)
		if m.name != "schema3-memory" {
			// Reopened: schema 3's entries are all in the index.
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			s, err = bolt.Open(path, m.opts)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if evs, err := s.ReadStream(context.Background(), names[i%len(names)], 0, 0); err != nil || len(evs) == 0 {
					b.Fatal(err, len(evs))
				}
			}
		})
		s.Close()
	}
}
