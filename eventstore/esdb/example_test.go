package esdb_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

// Open a Store, append to a stream with an expected revision, and read it
// back. The in-process double stands in for a KurrentDB node here; in
// production the connection string names the cluster, e.g.
// "esdb://admin:changeit@node1:2113,node2:2113,node3:2113".
func ExampleOpen() {
	d := esdbdouble.New(esdbdouble.Options{})
	if err := d.Start(); err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := esdb.Open(ctx, d.URL(), esdb.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	stream := aggregate.StreamID(aggregate.CategoryReceipt, "reewild", "fb2cdc63")
	ev := aggregate.Event{
		ID:   "0b0c1d2e-3f40-5152-8364-758697a8b9ca",
		Type: aggregate.TypeReceiptStageRecorded,
		Data: []byte(`{"stage":"EXTRACTED"}`),
	}
	res, err := s.Append(ctx, stream, eventstore.NoStream, ev)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended at revision", res.NextRevision)

	_, err = s.Append(ctx, stream, eventstore.NoStream, ev)
	fmt.Println("again at no-stream:", err)

	evs, err := s.ReadStream(ctx, stream, 0, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(evs), "event:", evs[0].Type, evs[0].Position == res.Position)
	// Output:
	// appended at revision 0
	// again at no-stream: esdb: eventstore: append to "receipt-reewild.fb2cdc63": expected revision no-stream, stream is at 0
	// 1 event: receipt.stage_recorded.v1 true
}
