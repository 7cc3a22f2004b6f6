package projections_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
)

// The audit contract across versions: testdata/v1log.json.gz is a log of
// v1 JSON events of every kind (randomLog: 400 receipts with corrections,
// conflicting terminals, user mismatches, credits, enrolments, entities,
// quarantine and an undecodable event), and testdata/v1log.digests.json
// the read-model digests that rebuilding it gave with the code before the
// record cache and the hand-written encoders (commit 4ef7f21). Rebuilding
// it now, or applying it as a live Runner would in batches of any size,
// must give the same digests: an audit of read models built by one
// version against a rebuild by another finds nothing. The feed's digest
// is not in that file (the feed came later, schema 6): every rebuild and
// apply here must give the one the first rebuild gives, including
// rebuilds whose records and feed spill (the second budget).
func TestDigestsOfAnOlderVersionsLog(t *testing.T) {
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
	var want []projections.ModelSummary
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	want = append(want, projections.ModelSummary{Name: "feed"})
	check := func(what string, got []projections.ModelSummary) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d models, want %d", what, len(got), len(want))
		}
		for i := range want {
			if want[i].Name == "feed" && want[i].Keys == 0 && got[i].Name == "feed" && got[i].Keys > 0 {
				want[i] = got[i] // the first digest of the feed is the one the others must give
			}
			if got[i] != want[i] {
				t.Errorf("%s: %+v, want %+v", what, got[i], want[i])
			}
		}
	}

	defer projections.SetFeedSpillBytes(16 << 10)()                           // the feed's records spill too
	for _, budget := range []int64{projections.DefaultCacheBytes, 64 << 10} { // the second spills records
		db, err := projections.Open(filepath.Join(t.TempDir(), "views.db"), projections.WithCacheBytes(budget))
		if err != nil {
			t.Fatal(err)
		}
		res, err := db.Rebuild(context.Background(), &memStore{events: events}, projections.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		check("rebuild", res.Models)

		live, err := projections.Open(filepath.Join(t.TempDir(), "live.db"), projections.WithCacheBytes(budget))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(budget), 1))
		for i := 0; i < len(events); {
			n := 1 + rng.IntN(300)
			if err := live.Apply(events[i:min(i+n, len(events))]); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		sums, _, err := live.Summaries(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		check("live apply", sums)
		db.Close()
		live.Close()
	}
}
