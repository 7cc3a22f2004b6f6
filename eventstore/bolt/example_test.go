package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "receiptd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := bolt.Open(filepath.Join(dir, "events.db"), bolt.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	stream := aggregate.StreamID(aggregate.CategoryReceipt, "reewild", "fb2c")
	res, err := s.Append(ctx, stream, eventstore.NoStream, aggregate.Event{
		ID:   "5b0c1c8e-8b8e-5e34-9d5e-0d5f1f6a3c11",
		Type: aggregate.TypeReceiptStageRecorded,
		Data: []byte(`{"stage":"UPLOADED"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended revision", res.NextRevision, "at position", res.Position)

	// A second writer that also believed the stream new loses.
	_, err = s.Append(ctx, stream, eventstore.NoStream, aggregate.Event{ID: "x", Type: aggregate.TypeReceiptStageRecorded})
	fmt.Println("wrong revision:", errors.Is(err, eventstore.ErrWrongRevision))

	events, err := s.ReadStream(ctx, stream, 0, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Printf("%s@%d %s %s\n", e.Stream, e.Revision, e.Type, e.Data)
	}
	// Output:
	// appended revision 0 at position 1
	// wrong revision: true
	// receipt-reewild.fb2c@0 receipt.stage_recorded.v1 {"stage":"UPLOADED"}
}
