package projections_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/projections"
)

// TestBulkBuildMatchesApply: a rebuild (the bulk build) gives the same
// read models, byte for byte, as applying the log in log order through
// Apply, for logs of every kind of event, with a budget that holds the
// bulk build's ops in memory and with budgets so small that they go to
// spill files and the ledger is written out early (its Totals fixed in
// the file).
func TestBulkBuildMatchesApply(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2, 3} {
		l := newLogStore(t)
		rng := rand.New(rand.NewPCG(seed, 99))
		randomLog(l, rng, 300)
		live := openDB(t)
		feed(t, l, live, rng)
		want := dump(t, live)
		for _, budget := range []int64{projections.DefaultCacheBytes, 64 << 10, 8 << 10} {
			db, err := projections.Open(filepath.Join(t.TempDir(), "views.db"), projections.WithCacheBytes(budget))
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.Rebuild(ctx, l.store, projections.RebuildOptions{})
			if err != nil {
				t.Fatalf("seed %d, budget %d: %v", seed, budget, err)
			}
			if res.Position != l.head() {
				t.Errorf("seed %d, budget %d: rebuilt to %v, the log ends at %v", seed, budget, res.Position, l.head())
			}
			if got := dump(t, db); !bytes.Equal(got, want) {
				t.Errorf("seed %d, budget %d: the rebuild differs from Apply in log order: %s", seed, budget, firstDiff(got, want))
			}
			db.Close()
		}
	}
}
