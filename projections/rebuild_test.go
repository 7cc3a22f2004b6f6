package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
	bbolt "go.etcd.io/bbolt"
)

// logStore is a real embedded store the tests append deliveries to.
type logStore struct {
	t     testing.TB
	store eventstore.Store
	n     int
	t0    time.Time
	// pending, when not nil, collects appends for flush to write
	// concurrently (one fsync for many, as under webhook load).
	pending []pendingEvent
}

type pendingEvent struct {
	stream string
	event  aggregate.Event
}

// flush appends the pending events from 16 writers, in an order of their
// choosing.
func (l *logStore) flush() {
	l.t.Helper()
	work := make(chan pendingEvent)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for p := range work {
				if _, err := l.store.Append(context.Background(), p.stream, eventstore.Any, p.event); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for _, p := range l.pending {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		l.t.Fatal(err)
	}
	l.pending = nil
}

func newLogStore(t testing.TB) *logStore {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &logStore{t: t, store: s, t0: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

// append appends one event with metadata like the webhook handler's, and
// returns its position.
func (l *logStore) append(stream, typ string, data any, providerType string) eventstore.Position {
	l.t.Helper()
	l.n++
	raw, err := json.Marshal(data)
	if err != nil {
		l.t.Fatal(err)
	}
	meta, err := json.Marshal(aggregate.Metadata{
		Source: "reewild", ProviderEventType: providerType, DeliveryID: fmt.Sprintf("dlv-%d", l.n),
		ReceivedAt: l.t0.Add(time.Duration(l.n) * time.Second), Scheme: "hmac-sha256", KeyID: "sha256:0123456789ab",
		BodySHA256: fmt.Sprintf("body-%d", l.n), DedupeKey: fmt.Sprint(l.n),
	})
	if err != nil {
		l.t.Fatal(err)
	}
	ev := aggregate.Event{ID: fmt.Sprintf("e-%d", l.n), Type: typ, Data: raw, Metadata: meta}
	if l.pending != nil {
		l.pending = append(l.pending, pendingEvent{stream, ev})
		return eventstore.Start
	}
	res, err := l.store.Append(context.Background(), stream, eventstore.Any, ev)
	if err != nil {
		l.t.Fatal(err)
	}
	return res.Position
}

func (l *logStore) stage(f aggregate.StageRecorded) eventstore.Position {
	if f.Source == "" {
		f.Source = "reewild"
	}
	if f.BodySHA256 == "" {
		f.BodySHA256 = fmt.Sprintf("%s-%s-%d", f.ReceiptID, f.Stage, l.n)
	}
	return l.append(aggregate.StreamID(aggregate.CategoryReceipt, f.Source, f.ReceiptID), aggregate.TypeReceiptStageRecorded, f, "receipt."+strings.ToLower(string(f.Stage)))
}

func (l *logStore) head() eventstore.Position {
	h, err := l.store.Head(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	return h
}

func tp(t time.Time) *time.Time { return &t }

// randomLog appends n receipts' worth of deliveries of every kind the read
// models know: stages in random order, awards with snapshots, corrections,
// conflicting terminals, user mismatches, credits, enrolments, entity
// events, quarantined deliveries and an undecodable event.
func randomLog(l *logStore, rng *rand.Rand, n int) {
	l.pending = []pendingEvent{}
	defer l.flush()
	users := []string{"u1", "u2", "u3", "u4"}
	for i := range n {
		id := fmt.Sprintf("r%03d", i)
		user := users[rng.IntN(len(users))]
		at := l.t0.Add(time.Duration(i) * time.Minute)
		var facts []aggregate.StageRecorded
		for j, s := range aggregate.Stages[:5] {
			if rng.IntN(3) > 0 {
				f := aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: s}
				if rng.IntN(2) == 0 {
					f.OccurredAt = tp(at.Add(time.Duration(j) * time.Second))
				}
				facts = append(facts, f)
			}
		}
		switch rng.IntN(5) {
		case 0, 1:
			pts := decimal.New(rng.Int64N(100000), -2)
			facts = append(facts, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageAwarded, OccurredAt: tp(at.Add(time.Duration(rng.IntN(600)) * time.Second)),
				Award: &aggregate.Award{TransactionID: "tx-" + id, Points: pts, CO2e: decimal.New(rng.Int64N(1e9), -9), HealthPoints: decimal.RequireFromString("1.5"), GreenProducts: 2,
					Snapshot: &aggregate.Snapshot{LifetimePoints: pts, AvailablePoints: pts, NumTransactions: int64(i)}}})
			if rng.IntN(4) == 0 { // a correction
				facts = append(facts, aggregate.StageRecorded{ReceiptID: id, UserID: users[rng.IntN(len(users))], Stage: aggregate.StageAwarded, OccurredAt: tp(at.Add(time.Hour)),
					Award: &aggregate.Award{TransactionID: "tx2-" + id, Points: decimal.New(rng.Int64N(1000), -1)}})
			}
		case 2:
			facts = append(facts, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageFailed, Failure: &aggregate.Failure{Code: int64(1 + rng.IntN(5)), Name: []string{"FAILED_UPLOAD", "FAILED_EXTRACT", "FAILED_VALIDATE"}[rng.IntN(3)]}})
		case 3: // both terminals
			facts = append(facts,
				aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageFailed, Failure: &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE"}},
				aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageAwarded, Award: &aggregate.Award{Points: decimal.RequireFromString("3.33")}})
		}
		if len(facts) == 0 {
			facts = append(facts, aggregate.StageRecorded{ReceiptID: id, UserID: user, Stage: aggregate.StageUploaded})
		}
		rng.Shuffle(len(facts), func(a, b int) { facts[a], facts[b] = facts[b], facts[a] })
		for _, f := range facts {
			l.stage(f)
		}
		switch rng.IntN(8) {
		case 0:
			l.append(aggregate.StreamID(aggregate.CategoryUser, "reward", user), aggregate.TypeUserPointsCredited, aggregate.PointsCredited{
				Source: "reward", BalanceSource: "reewild", UserID: user, TransactionID: "c-" + id, Points: decimal.RequireFromString("2.25"), BodySHA256: "c-" + id}, "balance.credit_points_issued")
		case 1:
			l.append(aggregate.StreamID(aggregate.CategoryUser, "reewild", user), aggregate.TypeUserEnrolled, aggregate.UserEnrolled{Source: "reewild", UserID: user, BodySHA256: "enrol-" + id}, "user.enrolled")
		case 2:
			l.append(aggregate.StreamID(aggregate.CategoryOffer, "reusely", id), aggregate.TypeEntityEventRecorded, aggregate.EntityEventRecorded{
				Source: "reusely", Kind: aggregate.CategoryOffer, EntityID: id, EventType: "offer.created", Status: "Active", StatusAt: tp(at), UserID: user, BodySHA256: "o-" + id}, "offer.created")
		case 3:
			l.append(aggregate.QuarantineStream("reewild"), aggregate.TypeDeliveryQuarantined, aggregate.Quarantined{Source: "reewild", ProviderEventType: "receipt.teleported", Reason: "unknown event type", BodySHA256: "q-" + id}, "receipt.teleported")
		}
	}
	// One event no read model can decode: skipped, and listed by audits.
	l.append(aggregate.StreamID(aggregate.CategoryReceipt, "reewild", "broken"), aggregate.TypeReceiptStageRecorded, map[string]any{"stage": "NOPE", "receipt_id": "broken", "source": "reewild", "body_sha256": "x"}, "receipt.nope")
}

// feed applies the whole log to db in batches of random sizes.
func feed(t *testing.T, l *logStore, db *projections.DB, rng *rand.Rand) {
	t.Helper()
	for {
		batch, err := l.store.ReadAll(context.Background(), db.Checkpoint(), 1+rng.IntN(40))
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return
		}
		if err := db.Apply(batch); err != nil {
			t.Fatal(err)
		}
	}
}

func dump(t *testing.T, db *projections.DB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := db.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func openAt(t *testing.T, path string) *projections.DB {
	t.Helper()
	db, err := projections.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// firstDiff returns the first line where two dumps differ.
func firstDiff(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i, la[i], lb[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(la), len(lb))
}

// TestRebuildIsByteIdentical: read models built from one log — rebuilt
// twice, or applied as the log grew in batches of any size — hold the same
// keys and values, byte for byte.
func TestRebuildIsByteIdentical(t *testing.T) {
	l := newLogStore(t)
	rng := rand.New(rand.NewPCG(7, 11))
	randomLog(l, rng, 150)
	ctx := context.Background()

	live := openDB(t)
	feed(t, l, live, rng)
	var dumps [][]byte
	for i := range 2 {
		db := openAt(t, filepath.Join(t.TempDir(), "views.db"))
		res, err := db.Rebuild(ctx, l.store, projections.RebuildOptions{})
		if err != nil {
			t.Fatalf("rebuild %d: %v", i, err)
		}
		if res.Position != l.head() || res.Events != int64(l.head().Commit) {
			t.Fatalf("rebuild %d: at %v after %d events, want the head %v", i, res.Position, res.Events, l.head())
		}
		dumps = append(dumps, dump(t, db))
	}
	if !bytes.Equal(dumps[0], dumps[1]) {
		t.Fatalf("two rebuilds of one log differ: %s", firstDiff(dumps[0], dumps[1]))
	}
	if d := dump(t, live); !bytes.Equal(d, dumps[0]) {
		t.Fatalf("read models applied batch by batch differ from a rebuild: %s", firstDiff(d, dumps[0]))
	}
	// Every projection has something to compare.
	sums, at, err := live.Summaries(ctx)
	if err != nil || at != l.head() {
		t.Fatalf("Summaries: %v at %v", err, at)
	}
	for _, s := range sums {
		if s.Keys == 0 {
			t.Errorf("read model %s is empty: the test log does not exercise it", s.Name)
		}
	}
	// A rebuild in place swaps in the same bytes.
	if _, err := live.Rebuild(ctx, l.store, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := dump(t, live); !bytes.Equal(d, dumps[0]) {
		t.Fatalf("a rebuild in place differs: %s", firstDiff(d, dumps[0]))
	}
}

// corrupt changes the read-model file at path behind the DB's back.
func corrupt(t *testing.T, path string, change func(tx *bbolt.Tx) error) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(change); err != nil {
		t.Fatal(err)
	}
}

func checkOf(t *testing.T, rep projections.AuditReport, name string) projections.ModelCheck {
	t.Helper()
	for _, m := range rep.Models {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("the audit has no read model %s: %+v", name, rep.Models)
	return projections.ModelCheck{}
}

func TestAuditFindsCorruptionAndRebuildRepairsIt(t *testing.T) {
	l := newLogStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	randomLog(l, rng, 60)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "views.db")
	live, err := projections.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, l, live, rng)

	rep, err := live.Audit(ctx, l.store, projections.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.Position != l.head() {
		t.Fatalf("audit of read models fed from the log: clean %v at %v: %+v", rep.Clean(), rep.Position, rep.Models)
	}
	if rep.AnomaliesTotal == 0 || rep.QuarantinedTotal == 0 || rep.SkippedTotal != 1 || rep.UnreconciledTotal == 0 {
		t.Errorf("findings: %d anomalous receipts, %d quarantined, %d skipped, %d unreconciled users; the log has all four",
			rep.AnomaliesTotal, rep.QuarantinedTotal, rep.SkippedTotal, rep.UnreconciledTotal)
	}
	for _, u := range rep.Unreconciled {
		if u.Difference.IsZero() || !u.Difference.Equal(u.ReportedLifetime.Sub(u.Awarded)) {
			t.Errorf("unreconciled user %+v", u)
		}
	}
	live.Close()

	// Corrupt two read models behind the server's back: a receipt's view
	// (its last position), a user's balance (gone).
	corrupt(t, path, func(tx *bbolt.Tx) error {
		if ok, err := projections.SetLastPosition(tx, "reewild", "r007", 1_000_000); err != nil || !ok {
			return fmt.Errorf("receipt r007: %v %v", ok, err)
		}
		return tx.Bucket([]byte("users")).Delete([]byte("reewild\x00u2"))
	})
	live = openAt(t, path)
	rep, err = live.Audit(ctx, l.store, projections.AuditOptions{Source: "reewild", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() {
		t.Fatal("the audit of corrupted read models is clean")
	}
	rc := checkOf(t, rep, "receipts")
	if rc.Matches || rc.Differences != 1 || rc.First == nil || rc.First.Bucket != "receipts" || rc.First.Key != "reewild/r007" || rc.First.Kind != projections.DiffValue {
		t.Errorf("receipts check = %+v (first %+v)", rc, rc.First)
	}
	bc := checkOf(t, rep, "balances")
	if bc.Matches || bc.First == nil || bc.First.Key != "reewild/u2" || bc.First.Kind != projections.DiffOnlyRebuilt || bc.Live.Keys != bc.Rebuilt.Keys-1 {
		t.Errorf("balances check = %+v (first %+v)", bc, bc.First)
	}
	for _, name := range []string{"ledger", "entities", "quarantine", "stats"} {
		if c := checkOf(t, rep, name); !c.Matches || c.Live.Digest != c.Rebuilt.Digest {
			t.Errorf("%s differs though it was not touched: %+v", name, c)
		}
	}
	if len(rep.Anomalies) > 3 || len(rep.Quarantined) > 3 {
		t.Errorf("limit 3: %d anomalies, %d quarantined listed", len(rep.Anomalies), len(rep.Quarantined))
	}

	// Rebuilding one projection repairs it and leaves the others be.
	if _, err := live.Rebuild(ctx, l.store, projections.RebuildOptions{Projection: "receipts"}); err != nil {
		t.Fatal(err)
	}
	rep, err = live.Audit(ctx, l.store, projections.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !checkOf(t, rep, "receipts").Matches || checkOf(t, rep, "balances").Matches {
		t.Errorf("after rebuilding receipts: receipts %+v, balances %+v", checkOf(t, rep, "receipts"), checkOf(t, rep, "balances"))
	}
	if _, err := live.Rebuild(ctx, l.store, projections.RebuildOptions{Projection: "nope"}); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Errorf("rebuild of an unknown projection: %v", err)
	}
	if _, err := live.Rebuild(ctx, l.store, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err = live.Audit(ctx, l.store, projections.AuditOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("audit after a full rebuild: %v, %+v", err, rep.Models)
	}
	if v, err := live.Receipt(ctx, "reewild", "r007"); err != nil || v.Points.String() == "1000000" {
		t.Errorf("r007 after the rebuild: %+v, %v", v, err)
	}
	if scratch, _ := filepath.Glob(path + ".*"); len(scratch) != 0 {
		t.Errorf("files left beside the read models: %v", scratch)
	}
}

// TestOnlineRebuild: the Runner follows a log that keeps growing and
// readers keep reading while every read model is rebuilt and swapped in;
// no read fails, waiters and watchers carry across the swap, the Runner
// goes on with the new file, and the old one is gone.
func TestOnlineRebuild(t *testing.T) {
	l := newLogStore(t)
	rng := rand.New(rand.NewPCG(3, 4))
	randomLog(l, rng, 200)
	path := filepath.Join(t.TempDir(), "views.db")
	live := openAt(t, path)
	runner := projections.NewRunner(l.store, live, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { runner.Run(ctx) })
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := live.WaitFor(wctx, l.head().Commit); err != nil {
		t.Fatal(err)
	}

	// Readers: r000…r049 exist; every read of them must succeed throughout.
	readErrs := make(chan error, 1)
	stopReading := make(chan struct{})
	var readers sync.WaitGroup
	for w := range 4 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopReading:
					return
				default:
				}
				id := fmt.Sprintf("r%03d", (w*13+i)%50)
				if _, err := live.Receipt(ctx, "reewild", id); err != nil {
					select {
					case readErrs <- fmt.Errorf("read %s during the rebuild: %w", id, err):
					default:
					}
					return
				}
			}
		})
	}
	// A writer keeps the log growing.
	stopWriting := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			l.stage(aggregate.StageRecorded{ReceiptID: fmt.Sprintf("live-%d", i), UserID: "u9", Stage: aggregate.StageUploaded})
		}
	})
	// A watcher of a receipt the writer will create after the swap, and a
	// waiter for a position not yet written.
	mark := live.Mark()
	watched := make(chan error, 1)
	go func() {
		_, err := live.WaitChange(wctx, mark, projections.ReceiptKey("reewild", "after-swap"))
		watched <- err
	}()

	res, err := live.Rebuild(ctx, l.store, projections.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	close(stopWriting)
	writer.Wait()
	pos := l.stage(aggregate.StageRecorded{ReceiptID: "after-swap", UserID: "u9", Stage: aggregate.StageUploaded})
	if err := live.WaitFor(wctx, pos.Commit); err != nil {
		t.Fatalf("the Runner did not go on after the swap: %v", err)
	}
	if err := <-watched; err != nil {
		t.Fatalf("a watcher across the swap: %v", err)
	}
	close(stopReading)
	readers.Wait()
	select {
	case err := <-readErrs:
		t.Fatal(err)
	default:
	}
	if v, err := live.Receipt(ctx, "reewild", "after-swap"); err != nil || v.UserID != "u9" {
		t.Fatalf("after-swap: %+v, %v", v, err)
	}
	if res.Events == 0 || res.Position.Commit == 0 {
		t.Errorf("rebuild result %+v", res)
	}
	if scratch, _ := filepath.Glob(path + ".*"); len(scratch) != 0 {
		t.Errorf("files left beside the read models: %v", scratch)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// The live file is the rebuilt one, and it is what the log says.
	rep, err := live.Audit(ctx, l.store, projections.AuditOptions{})
	if err != nil || !rep.Clean() {
		t.Fatalf("audit after an online rebuild: %v %+v", err, rep.Models)
	}
	// Reopening the path finds the rebuilt read models.
	cancel()
	wg.Wait()
	cp := live.Checkpoint()
	live.Close()
	again := openAt(t, path)
	if again.Checkpoint() != cp {
		t.Errorf("reopened at %v, want %v", again.Checkpoint(), cp)
	}
}

func TestRebuildAndAuditOneAtATime(t *testing.T) {
	l := newLogStore(t)
	randomLog(l, rand.New(rand.NewPCG(5, 6)), 5)
	db := openDB(t)
	// A store whose reads block until released holds the first rebuild.
	bs := &blockingStore{Store: l.store, entered: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := db.Rebuild(context.Background(), bs, projections.RebuildOptions{})
		done <- err
	}()
	<-bs.entered
	if _, err := db.Audit(context.Background(), l.store, projections.AuditOptions{}); !errors.Is(err, projections.ErrBusy) {
		t.Errorf("audit during a rebuild: %v, want ErrBusy", err)
	}
	if _, err := db.Rebuild(context.Background(), l.store, projections.RebuildOptions{}); !errors.Is(err, projections.ErrBusy) {
		t.Errorf("rebuild during a rebuild: %v, want ErrBusy", err)
	}
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A canceled rebuild leaves the read models and no scratch file.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Rebuild(ctx, l.store, projections.RebuildOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled rebuild: %v", err)
	}
	if scratch, _ := filepath.Glob(db.Path() + ".*"); len(scratch) != 0 {
		t.Errorf("files left beside the read models: %v", scratch)
	}
}

// blockingStore blocks the first ReadAll until release is closed.
type blockingStore struct {
	eventstore.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	return b.Store.ReadAll(ctx, after, limit)
}

func TestRemoveScratch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "views.db")
	for _, name := range []string{"views.db.scratch-rebuild-abc", "views.db.scratch-audit-def", "events.db"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := projections.RemoveScratch(path); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "events.db" {
		t.Errorf("left %v", left)
	}
}

// BenchmarkRebuild replays a log of 20,000 random receipts' deliveries
// (randomLog: stages, awards, corrections, credits, entities, quarantine)
// into fresh read models, as `receiptd rebuild` does, and reports events/s.
//
//	go test -run '^$' -bench Rebuild -benchtime 3x ./projections/
func BenchmarkRebuild(b *testing.B) {
	l := newLogStore(b)
	randomLog(l, rand.New(rand.NewPCG(1, 2)), 20_000)
	head, err := l.store.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		db, err := projections.Open(filepath.Join(b.TempDir(), "views.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := db.Rebuild(context.Background(), l.store, projections.RebuildOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if db.Checkpoint() != head {
			b.Fatalf("rebuilt to %s, the log ends at %s", db.Checkpoint(), head)
		}
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(head.Commit)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
