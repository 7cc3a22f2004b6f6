package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
	"github.com/shopspring/decimal"
)

func openDB(t *testing.T) *projections.DB {
	t.Helper()
	db, err := projections.Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// log builds recorded events with consecutive positions.
type log struct {
	pos    uint64
	events []eventstore.RecordedEvent
}

func (l *log) add(typ string, data any) eventstore.RecordedEvent {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	l.pos++
	e := eventstore.RecordedEvent{
		Event:      aggregate.Event{ID: fmt.Sprint(l.pos), Type: typ, Data: raw, Metadata: []byte(`{}`)},
		Stream:     "s",
		Position:   eventstore.Position{Commit: l.pos, Prepare: l.pos},
		RecordedAt: recordedAt(l.pos),
	}
	l.events = append(l.events, e)
	return e
}

// recordedAt is the RecordedAt the log gives the event at position pos.
func recordedAt(pos uint64) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(pos) * time.Second)
}

func (l *log) stage(receipt, user string, s aggregate.Stage, hash string) eventstore.RecordedEvent {
	return l.add(aggregate.TypeReceiptStageRecorded, aggregate.StageRecorded{Source: "reewild", ReceiptID: receipt, UserID: user, Stage: s, BodySHA256: hash})
}

func (l *log) award(receipt, user, points, hash string, snap *aggregate.Snapshot) eventstore.RecordedEvent {
	return l.add(aggregate.TypeReceiptStageRecorded, aggregate.StageRecorded{
		Source: "reewild", ReceiptID: receipt, UserID: user, Stage: aggregate.StageAwarded, BodySHA256: hash,
		Award: &aggregate.Award{Points: decimal.RequireFromString(points), CO2e: decimal.RequireFromString("0.5"), HealthPoints: decimal.RequireFromString("1.25"), GreenProducts: 2, Snapshot: snap},
	})
}

func mustBalance(t *testing.T, db *projections.DB, user string) projections.Balance {
	t.Helper()
	b, err := db.Balance(context.Background(), "reewild", user)
	if err != nil {
		t.Fatalf("Balance(%s): %v", user, err)
	}
	return b
}

func TestReceiptAndBalance(t *testing.T) {
	db := openDB(t)
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")
	l.award("r1", "u1", "74.28", "b", &aggregate.Snapshot{LifetimePoints: decimal.RequireFromString("74.29"), AvailablePoints: decimal.RequireFromString("74.29"), NumTransactions: 1})
	l.award("r2", "u1", "0.1", "c", nil)
	l.stage("r3", "u1", aggregate.StageExtracted, "d")
	l.add(aggregate.TypeReceiptStageRecorded, aggregate.StageRecorded{Source: "reewild", ReceiptID: "r4", UserID: "u1", Stage: aggregate.StageFailed, BodySHA256: "e", Failure: &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE"}})
	l.add(aggregate.TypeUserEnrolled, aggregate.UserEnrolled{Source: "reewild", UserID: "u2", BodySHA256: "f"})
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	v, err := db.Receipt(context.Background(), "reewild", "r1")
	if err != nil || v.Status != aggregate.StatusCompleted || v.Points.String() != "74.28" {
		t.Fatalf("r1 = %+v, %v", v, err)
	}
	b := mustBalance(t, db, "u1")
	if b.DerivedPoints.String() != "74.38" || b.ReceiptsCompleted != 2 || b.ReceiptsFailed != 1 || b.ReceiptsInProgress != 1 {
		t.Fatalf("balance = %+v", b)
	}
	if b.TotalCO2e.String() != "1" || b.TotalGreenProducts != 4 || b.TotalHealthPoints.String() != "2.5" {
		t.Fatalf("totals = %+v", b)
	}
	if b.Reported == nil || b.Reconciled {
		t.Fatalf("reported 74.29 vs derived 74.38 must be unreconciled: %+v", b)
	}
	if b2 := mustBalance(t, db, "u2"); !b2.Enrolled || !b2.DerivedPoints.IsZero() || !b2.Reconciled {
		t.Fatalf("enrolled user with nothing awarded = %+v", b2)
	}
	if _, err := db.Balance(context.Background(), "reewild", "nobody"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := db.Receipt(context.Background(), "other", "r1"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("receipt of another source: %v", err)
	}
	if got := db.Checkpoint(); got.Commit != l.pos {
		t.Fatalf("checkpoint = %v, want %d", got, l.pos)
	}
}

func TestApplyIsIdempotentAndOrderFree(t *testing.T) {
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")
	l.award("r1", "u1", "10.5", "b", nil)
	l.award("r1", "u1", "99", "c", nil) // a correction: credited once
	l.stage("r1", "u1", aggregate.StageUploaded, "a")

	db := openDB(t)
	if err := db.Apply(l.events[:2]); err != nil {
		t.Fatal(err)
	}
	if err := db.Apply(l.events); err != nil { // overlapping batch
		t.Fatal(err)
	}
	b := mustBalance(t, db, "u1")
	v, _ := db.Receipt(context.Background(), "reewild", "r1")
	if !b.DerivedPoints.Equal(v.Points) || b.ReceiptsCompleted != 1 {
		t.Fatalf("balance %s / %d completed; receipt shows %s", b.DerivedPoints, b.ReceiptsCompleted, v.Points)
	}

	// The same facts at other positions in another order give the same views.
	var l2 log
	l2.award("r1", "u1", "99", "c", nil)
	l2.award("r1", "u1", "10.5", "b", nil)
	l2.stage("r1", "u1", aggregate.StageUploaded, "a")
	db2 := openDB(t)
	if err := db2.Apply(l2.events); err != nil {
		t.Fatal(err)
	}
	v2, _ := db2.Receipt(context.Background(), "reewild", "r1")
	// Each stage's recorded_at is when receiptd recorded its earliest
	// event: here the logs record the same facts at other times (their
	// positions), so it is compared apart.
	if at := v.Stages[0].RecordedAt; at == nil || !at.Equal(recordedAt(1)) {
		t.Fatalf("UPLOADED recorded at %v, want %v (its first event's, not the re-delivery's)", at, recordedAt(1))
	}
	if at := v2.Stages[5].RecordedAt; at == nil || !at.Equal(recordedAt(1)) {
		t.Fatalf("AWARDED recorded at %v, want %v (the earliest of its two facts)", at, recordedAt(1))
	}
	for _, w := range []*aggregate.ReceiptView{&v, &v2} {
		for i := range w.Stages {
			w.Stages[i].RecordedAt = nil
		}
	}
	a, _ := json.Marshal(v)
	c, _ := json.Marshal(v2)
	if string(a) != string(c) {
		t.Fatalf("views differ by order:\n%s\n%s", a, c)
	}
}

func TestOwnerChangeMovesContribution(t *testing.T) {
	db := openDB(t)
	var l log
	l.stage("r1", "u2", aggregate.StageExtracted, "a") // names u2 first
	l.award("r1", "u1", "5", "b", nil)                 // the award names u1: u1 owns it
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	if b := mustBalance(t, db, "u2"); b.ReceiptsInProgress != 0 || !b.DerivedPoints.IsZero() {
		t.Fatalf("u2 kept the receipt: %+v", b)
	}
	if b := mustBalance(t, db, "u1"); b.ReceiptsCompleted != 1 || b.DerivedPoints.String() != "5" {
		t.Fatalf("u1 = %+v", b)
	}
	list, _, err := db.UserReceipts(context.Background(), "reewild", "u2", 10, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("u2 list = %v, %v", list, err)
	}
	list, _, err = db.UserReceipts(context.Background(), "reewild", "u1", 10, "")
	if err != nil || len(list) != 1 || !hasKind(list[0].Anomalies, aggregate.AnomalyUserMismatch) {
		t.Fatalf("u1 list = %+v, %v", list, err)
	}
}

func hasKind(as []aggregate.Anomaly, kind string) bool {
	for _, a := range as {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

func TestUserReceiptsPagination(t *testing.T) {
	db := openDB(t)
	var l log
	const n = 23
	for i := range n {
		l.stage(fmt.Sprintf("r%02d", i), "u1", aggregate.StageUploaded, fmt.Sprint(i))
	}
	l.stage("x", "u10", aggregate.StageUploaded, "x") // a user id sharing a prefix
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	var got []string
	token := ""
	pages := 0
	for {
		views, next, err := db.UserReceipts(context.Background(), "reewild", "u1", 5, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range views {
			got = append(got, v.ReceiptID)
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(got) != n || pages != 5 {
		t.Fatalf("got %d receipts in %d pages: %v", len(got), pages, got)
	}
	for i, id := range got { // newest first
		if want := fmt.Sprintf("r%02d", n-1-i); id != want {
			t.Fatalf("item %d = %s, want %s", i, id, want)
		}
	}
	if _, _, err := db.UserReceipts(context.Background(), "reewild", "u1", 5, "garbage!"); !errors.Is(err, projections.ErrBadPageToken) {
		t.Fatalf("bad token: %v", err)
	}
	_, next, _ := db.UserReceipts(context.Background(), "reewild", "u1", 5, "")
	if _, _, err := db.UserReceipts(context.Background(), "reewild", "u10", 5, next); !errors.Is(err, projections.ErrBadPageToken) {
		t.Fatalf("another user's token: %v", err)
	}
	if _, _, err := db.UserReceipts(context.Background(), "reewild", "ghost", 5, ""); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestWaitFor(t *testing.T) {
	db := openDB(t)
	var l log
	l.stage("r1", "u1", aggregate.StageUploaded, "a")
	l.stage("r2", "u1", aggregate.StageUploaded, "b")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := db.WaitFor(ctx, 1); !errors.Is(err, projections.ErrBehind) {
		t.Fatalf("WaitFor on empty read models: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- db.WaitFor(ctx, 2)
	}()
	if err := db.Apply(l.events[:1]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("WaitFor(2) returned %v at position 1", err)
	default:
	}
	if err := db.Apply(l.events[1:]); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitFor(2) = %v", err)
	}
}

func TestBadEventIsSkippedNotFatal(t *testing.T) {
	db := openDB(t)
	var l log
	l.add(aggregate.TypeReceiptStageRecorded, map[string]string{"stage": "NOPE", "receipt_id": "r1", "source": "reewild", "body_sha256": "h"})
	l.stage("r2", "u1", aggregate.StageUploaded, "a")
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Receipt(context.Background(), "reewild", "r2"); err != nil {
		t.Fatalf("event after a bad one not applied: %v", err)
	}
	if db.Checkpoint().Commit != 2 {
		t.Fatalf("checkpoint = %v", db.Checkpoint())
	}
}

func TestCheckpointSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "views.db")
	db, err := projections.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var l log
	l.award("r1", "u1", "1.1", "a", nil)
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = projections.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Checkpoint().Commit != 1 {
		t.Fatalf("checkpoint after reopen = %v", db.Checkpoint())
	}
	// Re-delivering the applied event after reopen changes nothing.
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	if b := mustBalance(t, db, "u1"); b.DerivedPoints.String() != "1.1" {
		t.Fatalf("balance after re-delivery = %s", b.DerivedPoints)
	}
}

// Commits are not fsynced; a marker beside the file says so while it is
// open. A marker of another boot (the machine went down meanwhile) makes
// Open discard the file, which may be torn; one of this boot (the process
// died) keeps it.
func TestUnsyncedMarker(t *testing.T) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id on this system: every commit is fsynced")
	}
	path := filepath.Join(t.TempDir(), "views.db")
	var l log
	l.award("r1", "u1", "1", "a", nil)
	for _, tt := range []struct {
		name   string
		marker []byte
		keep   bool
	}{
		{"process crash", bytes.TrimSpace(boot), true},
		{"machine restart", []byte("another-boot"), false},
		{"clean close", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(path)
			db, err := projections.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Apply(l.events); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + "-unsynced"); err != nil {
				t.Fatalf("no marker while open: %v", err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + "-unsynced"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("marker left after Close: %v", err)
			}
			if tt.marker != nil {
				if err := os.WriteFile(path+"-unsynced", tt.marker, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			db, err = projections.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.Checkpoint().Commit == l.pos; got != tt.keep || db.DiscardedUnsynced() == tt.keep {
				t.Fatalf("checkpoint %s, discarded %v; want kept %v", db.Checkpoint(), db.DiscardedUnsynced(), tt.keep)
			}
		})
	}
}
