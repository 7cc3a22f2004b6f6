package webhook

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/internal/storedouble"
)

// readAndDecide is how a delivery was decided before the decision cache
// (up to commit 0770c6c): read the whole stream, decode every event's
// metadata, decide, and find the duplicated event's position with a second
// scan. It is kept here as the baseline of BenchmarkDecide.
func readAndDecide(ctx context.Context, store eventstore.Store, f aggregate.Fact) (aggregate.Decision, eventstore.Position, error) {
	read, err := store.ReadStream(ctx, f.Stream, 0, 0)
	if err != nil {
		return aggregate.Decision{}, eventstore.Position{}, err
	}
	history := make([]aggregate.Metadata, 0, len(read))
	for _, e := range read {
		m, err := eventcodec.Metadata(e.Event)
		if err != nil {
			return aggregate.Decision{}, eventstore.Position{}, err
		}
		history = append(history, m)
	}
	d, err := aggregate.Decide(history, f)
	if err != nil || d.Outcome != aggregate.Duplicate {
		return d, eventstore.Position{}, err
	}
	for i, m := range history {
		if m.DedupeKey == f.DedupeKey {
			return d, read[i].Position, nil
		}
	}
	return d, eventstore.Position{}, fmt.Errorf("duplicate not found")
}

// BenchmarkDecide compares deciding a delivery to a receipt stream of 8
// events from the decision cache (a hit: take the stream's turn, decide,
// give it back) with reading and decoding the stream as before, in the
// same run, on the in-memory double and on the embedded store, for a
// duplicate and for a new stage.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	const stream = "receipt-reewild.fb2cdc63-6d13-4176-89ae-7a424b69d7b5"
	stages := []string{"UPLOADED", "EXTRACTED", "ENRICHED", "VALIDATED", "SCORED", "AWARDED", "FAILED", "SCORED"}
	fact := func(i int) aggregate.Fact {
		sha := fmt.Sprintf("%064x", i)
		return aggregate.Fact{
			Stream: stream, Type: aggregate.TypeReceiptStageRecorded,
			DedupeKey: fmt.Sprintf("receipt.%s:fb2cdc63-6d13-4176-89ae-7a424b69d7b5:%s", strings.ToLower(stages[i%len(stages)]), sha),
			SlotKey:   "stage:" + stages[i%len(stages)],
		}
	}
	fill := func(b *testing.B, store eventstore.Store) {
		raw := strings.Repeat("x", 1800) // a stored event's data is ~2 KB
		for i := range stages {
			f := fact(i)
			id := EventID("reewild", f.DedupeKey, fmt.Sprintf("%064x", i))
			md, err := encodeJSON(aggregate.Metadata{
				Source: "reewild", ProviderEventType: "receipt." + strings.ToLower(stages[i]), ReceivedAt: time.Now().UTC(),
				Scheme: "hmac-sha256", KeyID: "sha256:0c1d2e3f", BodySHA256: fmt.Sprintf("%064x", i),
				DedupeKey: f.DedupeKey, SlotKey: f.SlotKey, CorrelationID: id, CausationID: id,
			})
			if err != nil {
				b.Fatal(err)
			}
			ev := aggregate.Event{ID: id, Type: f.Type, Data: []byte(`{"raw":"` + raw + `"}`), Metadata: md}
			if _, err := store.Append(ctx, stream, eventstore.Any, ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	stores := []struct {
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
	cases := []struct {
		name string
		fact aggregate.Fact
		want aggregate.Outcome
	}{
		{"duplicate", fact(4), aggregate.Duplicate},
		{"new", fact(len(stages) + 1), aggregate.Append},
	}
	for _, st := range stores {
		store := st.open(b)
		fill(b, store)
		d := newDecisions(DefaultDecisionCacheBytes)
		h := &Handler{store: store, decisions: d}
		for _, tc := range cases {
			b.Run(st.name+"/"+tc.name+"/cache-hit", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					s, err := d.acquire(ctx, stream)
					if err != nil {
						b.Fatal(err)
					}
					if !s.known {
						if err := h.catchUp(ctx, s); err != nil {
							b.Fatal(err)
						}
					}
					dec, _, err := s.decide(tc.fact, keysOf(tc.fact.DedupeKey, tc.fact.SlotKey))
					d.release(s)
					if err != nil || dec.Outcome != tc.want {
						b.Fatal(dec, err)
					}
				}
			})
			b.Run(st.name+"/"+tc.name+"/read-and-decide", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					dec, _, err := readAndDecide(ctx, store, tc.fact)
					if err != nil || dec.Outcome != tc.want {
						b.Fatal(dec, err)
					}
				}
			})
		}
	}
}
