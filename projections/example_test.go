package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
)

// An offer's status updates arrive out of order: the one with the newer
// provider time stays the current status.
func ExampleDB_Entity() {
	dir, err := os.MkdirTemp("", "views")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := projections.Open(filepath.Join(dir, "views.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()

	event := func(pos uint64, status string, statusAt time.Time) eventstore.RecordedEvent {
		data, err := json.Marshal(aggregate.EntityEventRecorded{
			Source: "reusely", Kind: aggregate.CategoryOffer, EntityID: "93092",
			EventType: "offer.status.updated", Status: status, StatusAt: &statusAt,
			BodySHA256: fmt.Sprint("body-", pos),
		})
		if err != nil {
			panic(err)
		}
		return eventstore.RecordedEvent{
			Event:      aggregate.Event{ID: fmt.Sprint(pos), Type: aggregate.TypeEntityEventRecorded, Data: data},
			Stream:     aggregate.StreamID(aggregate.CategoryOffer, "reusely", "93092"),
			Position:   eventstore.Position{Commit: pos, Prepare: pos},
			RecordedAt: time.Date(2025, 11, 21, 16, 0, int(pos), 0, time.UTC),
		}
	}
	t0 := time.Date(2025, 11, 21, 15, 0, 0, 0, time.UTC)
	// The runner applies what the log holds, in log order.
	if err := db.Apply([]eventstore.RecordedEvent{
		event(1, "Delivered", t0.Add(2*time.Hour)),
		event(2, "In-Transit", t0.Add(time.Hour)), // older, delivered late
	}); err != nil {
		panic(err)
	}

	offer, err := db.Entity(context.Background(), "reusely", aggregate.CategoryOffer, "93092")
	if err != nil {
		panic(err)
	}
	fmt.Println(offer.Status, offer.StatusAt.Format(time.Kitchen), offer.EventCount)
	for _, e := range offer.Timeline {
		fmt.Println(e.Position, e.Status)
	}
	// Output:
	// Delivered 5:00PM 2
	// 1 Delivered
	// 2 In-Transit
}
