package projections

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
)

// sliceStore serves ReadAll and Head from events at positions 1…n.
type sliceStore struct {
	eventstore.Store
	events []eventstore.RecordedEvent
}

func (m *sliceStore) Head(context.Context) (eventstore.Position, error) {
	return m.events[len(m.events)-1].Position, nil
}

func (m *sliceStore) ReadAll(_ context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	i := 0
	for i < len(m.events) && !after.Less(m.events[i].Position) {
		i++
	}
	return m.events[i:min(i+limit, len(m.events))], nil
}

// v1Log returns the log of testdata/v1log.json.gz and the digests of its
// read models (see TestDigestsOfAnOlderVersionsLog).
func v1Log(t *testing.T) ([]eventstore.RecordedEvent, []ModelSummary) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "v1log.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var events []eventstore.RecordedEvent
	if err := json.NewDecoder(zr).Decode(&events); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "v1log.digests.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []ModelSummary
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	return events, want
}

// A bulk build gives the digests of an older version's rebuild (testdata,
// see TestDigestsOfAnOlderVersionsLog), with its ops in memory or spilled
// to files in any number of partitions, with a budget that holds them or
// not (then the ledger and index are written out early and the ledger's
// Totals fixed in the file); and it leaves no spill file behind.
func TestBulkBuildMatchesOlderDigests(t *testing.T) {
	events, want := v1Log(t)
	store := &sliceStore{events: events}
	head, _ := store.Head(context.Background())
	for _, tt := range []struct {
		parts  int
		budget int64
	}{{0, DefaultCacheBytes}, {1, DefaultCacheBytes}, {3, DefaultCacheBytes}, {16, DefaultCacheBytes}, {0, 16 << 10}, {7, 8 << 10}} {
		dir := t.TempDir()
		d, err := Open(filepath.Join(dir, "views.db"), WithCacheBytes(tt.budget))
		if err != nil {
			t.Fatal(err)
		}
		s, err := d.openScratch("test")
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.bulkBuild(context.Background(), store, head, tt.parts)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Checkpoint(); got != head || n != len(events) {
			t.Errorf("%d parts: checkpoint %s after %d events, want %s after %d", tt.parts, got, n, head, len(events))
		}
		got, _, err := s.Summaries(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%d parts, budget %d: %+v, want %+v", tt.parts, tt.budget, got[i], want[i])
			}
		}
		s.discard()
		d.Close()
		if left, _ := filepath.Glob(filepath.Join(dir, "*spill*")); len(left) > 0 {
			t.Errorf("spill files left: %v", left)
		}
	}
}
