package projections_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// TestRebuildIfAhead: read models built from a longer log than the one
// they now follow (a log restored from a backup) are rebuilt from it and
// say so; read models at or behind the log's head are left as they are.
func TestRebuildIfAhead(t *testing.T) {
	ctx := context.Background()
	long, short := newLogStore(t), newLogStore(t)
	randomLog(long, rand.New(rand.NewPCG(5, 6)), 30)
	randomLog(short, rand.New(rand.NewPCG(5, 6)), 10)
	db := openAt(t, filepath.Join(t.TempDir(), "views.db"))
	defer db.Close()
	feed(t, long, db, rand.New(rand.NewPCG(7, 8)))
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	// At the head: nothing to do.
	before := dump(t, db)
	if err := db.RebuildIfAhead(ctx, long.store, logger); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 || !bytes.Equal(dump(t, db), before) {
		t.Errorf("read models at the log's head were touched:\n%s", logs.String())
	}

	// Ahead of the log: rebuilt from it, as a fresh build of it would be.
	if err := db.RebuildIfAhead(ctx, short.store, logger); err != nil {
		t.Fatal(err)
	}
	if cp := db.Checkpoint(); cp != short.head() {
		t.Errorf("checkpoint %v after the rebuild, want the log's head %v", cp, short.head())
	}
	if !strings.Contains(logs.String(), "the read models are ahead of the log") || !strings.Contains(logs.String(), "read models rebuilt from the log") {
		t.Errorf("logged:\n%s", logs.String())
	}
	fresh := openAt(t, filepath.Join(t.TempDir(), "views.db"))
	defer fresh.Close()
	feed(t, short, fresh, rand.New(rand.NewPCG(9, 10)))
	if !bytes.Equal(dump(t, db), dump(t, fresh)) {
		t.Error("the rebuilt read models differ from ones built from the log")
	}
}
