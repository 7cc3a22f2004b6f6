package projections

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
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
func v1Log(t testing.TB) ([]eventstore.RecordedEvent, []ModelSummary) {
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
// not (then the ledger and index go to sorted runs early, and the
// ledger's Totals are set as the runs are merged); and it leaves no spill
// file or sorted run behind.
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
		if s.bulkFeed != nil || s.bulkFeedDraftV.out != nil {
			t.Errorf("%d parts, budget %d: the build's feed (and its chunks) still held", tt.parts, tt.budget)
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
		for _, pattern := range []string{"*spill*", "*run-*"} {
			if left, _ := filepath.Glob(filepath.Join(dir, pattern)); len(left) > 0 {
				t.Errorf("%d parts, budget %d: files left: %v", tt.parts, tt.budget, left)
			}
		}
	}
}

// What a bulk build digests as it writes (bulkdigest.go) is what the
// summaries read back from the file give: the feed's summary, and the
// receipt records' canonical values in key order when the ops were in one
// partition (none otherwise). Its spool files are gone with the scratch
// file.
func TestBulkDigestsMatchTheFile(t *testing.T) {
	events, want := v1Log(t)
	store := &sliceStore{events: events}
	head, _ := store.Head(context.Background())
	defer SetFeedSpillBytes(16 << 10)() // the feed's records spill too
	for _, tt := range []struct {
		parts  int
		budget int64
		spools bool
	}{{0, DefaultCacheBytes, true}, {1, DefaultCacheBytes, true}, {3, DefaultCacheBytes, false}, {0, 16 << 10, false}} {
		dir := t.TempDir()
		d, err := Open(filepath.Join(dir, "views.db"), WithCacheBytes(tt.budget))
		if err != nil {
			t.Fatal(err)
		}
		s, err := d.openScratch("test")
		if err != nil {
			t.Fatal(err)
		}
		s.wantDigests = true
		if _, err := s.bulkBuild(context.Background(), store, head, tt.parts); err != nil {
			t.Fatal(err)
		}
		pre := s.digests
		if pre == nil || pre.at != head {
			t.Fatalf("%d parts, budget %d: digests %+v, want some at %s", tt.parts, tt.budget, pre, head)
		}
		if _, ok := pre.models["feed"]; !ok {
			t.Errorf("%d parts, budget %d: no feed summary", tt.parts, tt.budget)
		}
		if got := len(pre.spools) > 0; got != tt.spools {
			t.Errorf("%d parts, budget %d: receipt spools %v, want %v", tt.parts, tt.budget, got, tt.spools)
		}
		fromFile, at, err := s.summaries(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, at2, err := s.summaries(pre)
		if err != nil {
			t.Fatal(err)
		}
		if at != head || at2 != head {
			t.Errorf("summaries at %s and %s, want %s", at, at2, head)
		}
		for i := range fromFile {
			if got[i] != fromFile[i] {
				t.Errorf("%d parts, budget %d: digested while writing %+v, from the file %+v", tt.parts, tt.budget, got[i], fromFile[i])
			}
			if i < len(want) && got[i] != want[i] {
				t.Errorf("%d parts, budget %d: %+v, want %+v", tt.parts, tt.budget, got[i], want[i])
			}
		}
		s.discard()
		d.Close()
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 1 {
			t.Errorf("files left: %v", left)
		}
	}
}

// BenchmarkSummaries digests the read models of testdata/v1log's rebuild
// reading them back from the file (file), and from what the bulk build
// digested as it wrote (bulk: the feed's summary, the receipt records'
// spools).
//
//	go test -run '^$' -bench Summaries -benchmem ./projections/
func BenchmarkSummaries(b *testing.B) {
	events, _ := v1Log(b)
	store := &sliceStore{events: events}
	head, _ := store.Head(context.Background())
	d, err := Open(filepath.Join(b.TempDir(), "views.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	s, err := d.openScratch("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer s.discard()
	s.wantDigests = true
	if _, err := s.bulkBuild(context.Background(), store, head, 0); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pre  *bulkDigests
	}{{"file", nil}, {"bulk", s.digests}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.summaries(c.pre); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// keyHashBytes is FNV-1a of source 0x00 receipt id, and opKey reads an
// op's receipt as decodeOp does.
func TestOpKeyAndHash(t *testing.T) {
	for _, c := range [][2]string{{"reewild", "fb2c"}, {"a", ""}, {"", "b"}, {"same", "same"}, {"", ""}} {
		h := fnv.New32a()
		h.Write([]byte(c[0] + "\x00" + c[1]))
		if got := keyHash(c[0], c[1]); got != h.Sum32() {
			t.Errorf("keyHash(%q, %q) = %x, want %x", c[0], c[1], got, h.Sum32())
		}
		w := benc{}
		w.str(c[0])
		w.str(c[1])
		w.uvarint(7)
		k, err := opKey(w.b)
		if err != nil || k != c[0]+"\x00"+c[1] {
			t.Errorf("opKey of %q/%q: %q, %v", c[0], c[1], k, err)
		}
		r := newBdec(w.b)
		if s, id := r.str(), r.str(); r.err != nil || s != c[0] || id != c[1] {
			t.Errorf("bdec of %q/%q: %q/%q, %v", c[0], c[1], s, id, r.err)
		}
	}
	if _, err := opKey([]byte{3}); err == nil {
		t.Error("opKey of a back reference first: no error")
	}
}

// isStream is stream == aggregate.StreamID(category, source, id).
func TestIsStream(t *testing.T) {
	for _, c := range [][3]string{{"receipt", "reewild", "fb2c"}, {"receipt", "", ""}, {"offer", "reusely", "9.3-0"}, {"", "a", "b"}} {
		want := aggregate.StreamID(c[0], c[1], c[2])
		for _, stream := range []string{want, want + "x", want[:len(want)-1], "x" + want[1:], "receipt-reewild-fb2c", ""} {
			if got := isStream(stream, c[0], c[1], c[2]); got != (stream == want) {
				t.Errorf("isStream(%q, %q, %q, %q) = %v", stream, c[0], c[1], c[2], got)
			}
		}
	}
}
