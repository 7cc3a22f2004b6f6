package projections_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/projections"
)

// TestWaitChange: a watcher wakes for a batch that touched its view, not
// for one that did not, and always when it cannot tell.
func TestWaitChange(t *testing.T) {
	db := openDB(t)
	var l log
	r1, r2 := projections.ReceiptKey("reewild", "r1"), projections.ReceiptKey("reewild", "r2")
	bg := context.Background()

	mark := db.Mark()
	l.stage("r1", "u1", aggregate.StageUploaded, "a")
	if err := db.Apply(l.events); err != nil {
		t.Fatal(err)
	}
	next, err := db.WaitChange(bg, mark, r1)
	if err != nil || next == mark {
		t.Fatalf("WaitChange(r1) after a batch touching r1: %v, %v", next, err)
	}
	// The balance of the user the event named changed too.
	if _, err := db.WaitChange(bg, mark, projections.UserKey("reewild", "u1")); err != nil {
		t.Fatal(err)
	}
	// r2 was not touched: WaitChange waits until its context ends.
	ctx, cancel := context.WithTimeout(bg, 30*time.Millisecond)
	defer cancel()
	if _, err := db.WaitChange(ctx, mark, r2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChange(r2) after a batch not touching it: %v", err)
	}
	// Nothing applied since next: waits.
	ctx2, cancel2 := context.WithTimeout(bg, 30*time.Millisecond)
	defer cancel2()
	if _, err := db.WaitChange(ctx2, next, r1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChange with nothing applied: %v", err)
	}

	// A waiter blocked on r2 wakes when a later batch touches it.
	woke := make(chan error, 1)
	go func() {
		_, err := db.WaitChange(bg, next, r2)
		woke <- err
	}()
	l.events = nil
	l.stage("r3", "u1", aggregate.StageUploaded, "c") // not r2
	l.stage("r2", "u2", aggregate.StageUploaded, "b")
	if err := db.Apply(l.events[:1]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		t.Fatalf("WaitChange(r2) returned %v after a batch touching only r3", err)
	default:
	}
	if err := db.Apply(l.events[1:]); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatal(err)
	}

	// A mark older than every remembered batch: the watcher re-reads.
	old := db.Mark()
	for i := range 100 {
		l.events = nil
		l.stage(fmt.Sprint("many-", i), "u3", aggregate.StageUploaded, fmt.Sprint("m", i))
		if err := db.Apply(l.events); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.WaitChange(bg, old, r2); err != nil {
		t.Fatalf("WaitChange from a forgotten moment: %v", err)
	}
}
