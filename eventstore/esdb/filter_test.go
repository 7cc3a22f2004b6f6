package esdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

// TestOnlyReceiptdEvents: ReadAll, Head and Subscribe skip system events
// and other applications' streams, whether they come before, between or
// after receiptd's; Subscribe has the server filter them.
func TestOnlyReceiptdEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startDouble(t, esdbdouble.Options{})
	s := open(t, d.URL(), esdb.Options{Categories: []string{"extra"}})

	tombstones := 0 // foreign events in a selected stream: the server filter passes them
	foreign := func(n int) {
		for i := range n {
			switch i % 4 {
			case 0:
				d.AppendSystemEvent("$stats-127.0.0.1:2113", "$statsCollected")
			case 1:
				d.AppendSystemEvent("inventory-other.app", "item.added") // another application
			case 2:
				d.AppendSystemEvent("receipts-lookalike.1", "x.y") // "receipts-" is not "receipt-"
			case 3:
				d.AppendSystemEvent("receipt-test.tombstoned", "$streamDeleted") // a system type in a receiptd stream
				tombstones++
			}
		}
	}
	var want []string
	mine := func(stream string, n int) eventstore.AppendResult {
		t.Helper()
		var res eventstore.AppendResult
		for range n {
			ev := newEvent(len(want))
			var err error
			if res, err = s.Append(ctx, stream, eventstore.Any, ev); err != nil {
				t.Fatal(err)
			}
			want = append(want, ev.ID)
		}
		return res
	}

	if head, err := s.Head(ctx); err != nil || !head.IsStart() {
		t.Fatalf("Head of a log holding only system events: %s, %v; want Start", head, err)
	}
	foreign(300)
	mine("receipt-test.1", 3)
	foreign(50)
	mine("user-test.u1", 2)
	mine("extra-test.x", 1) // a category added by Options
	foreign(10)
	last := mine("quarantine-test", 2)
	foreign(700) // more than one page of Head's backward read

	head, err := s.Head(ctx)
	if err != nil || head != last.Position {
		t.Fatalf("Head: %s, %v; want the last receiptd event at %s", head, err, last.Position)
	}

	var all []eventstore.RecordedEvent
	after := eventstore.Start
	for {
		page, err := s.ReadAll(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}
	checkIDs(t, "ReadAll", all, want)

	sent := d.SubscriptionEventsSent()
	col := newCollector(t, eventstore.Start)
	subscribe(t, s, eventstore.Start, col.handle)
	if err := col.await(ctx, len(want)); err != nil {
		t.Fatal(err)
	}
	foreign(20)
	mine("order-test.o", 1)
	if err := col.await(ctx, len(want)); err != nil {
		t.Fatal(err)
	}
	checkIDs(t, "Subscribe", col.events(), want)
	// The server sent receiptd's events and the $-typed events of its
	// streams (which the Store drops), never the other streams' events.
	if n, w := d.SubscriptionEventsSent()-sent, int64(len(want)+tombstones); n != w {
		t.Fatalf("the server sent %d events, want %d: the subscription is not filtered on the server", n, w)
	}
}

func checkIDs(t *testing.T, what string, got []eventstore.RecordedEvent, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i] {
			t.Fatalf("%s: event %d is %s (%s), want %s", what, i, got[i].ID, got[i].Stream, want[i])
		}
	}
}
