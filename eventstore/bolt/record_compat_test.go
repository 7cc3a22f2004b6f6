package bolt_test

import (
	"bytes"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// TestVersion1RecordsReadOn: a file written before records had a Body and
// streams an id (version 1 records, schema 1) opens, reads back as it was
// written, and takes version 2 records after them in its own layout; both
// read back in one ReadStream and ReadAll.
func TestVersion1RecordsReadOn(t *testing.T) {
	ctx := deadline(t)
	s, path := openStore(t, bolt.WithSchema1(bolt.WithRecordV1(bolt.Options{})))
	old := []aggregate.Event{
		{ID: "7d444840-9dc0-11d1-b245-5ffdce74fad2", Type: aggregate.TypeReceiptStageRecorded,
			Data: []byte(`{"source":"reewild","raw":{"a":1}}`), Metadata: []byte(`{"source":"reewild"}`)},
		{ID: "not-a-uuid", Type: "other.type.v1", Data: []byte(`{}`)},
	}
	if _, err := s.Append(ctx, "receipt-reewild.r1", eventstore.NoStream, old...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := []aggregate.Event{
		{ID: "8d444840-9dc0-11d1-b245-5ffdce74fad2", Type: aggregate.TypeReceiptStageRecordedV2,
			Data: []byte{0x0a, 0x01, 'x'}, Metadata: []byte{0x0a, 0x01, 'y'}, Body: []byte{0x28, 0xb5, 0x2f, 0xfd}},
	}
	if _, err := s.Append(ctx, "receipt-reewild.r1", eventstore.Exact(1), now...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "receipt-reewild.r2", eventstore.NoStream, now[0]); err != nil {
		t.Fatal(err)
	}
	want := append(old, now...)
	got, err := s.ReadStream(ctx, "receipt-reewild.r1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, eventstore.Start, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := s.ReadStream(ctx, "receipt-reewild.r2", 0, 0); err != nil || len(r2) != 1 || r2[0].ID != now[0].ID {
		t.Fatalf("the stream begun in the old file: %v %v", r2, err)
	}
	if len(got) != len(want) || len(all) != len(want) {
		t.Fatalf("read %d and %d events, want %d", len(got), len(all), len(want))
	}
	for i, w := range want {
		for _, g := range []eventstore.RecordedEvent{got[i], all[i]} {
			if g.ID != w.ID || g.Type != w.Type || g.Revision != uint64(i) || !bytes.Equal(g.Data, w.Data) ||
				!bytes.Equal(g.Metadata, w.Metadata) || !bytes.Equal(g.Body, w.Body) || (w.Body == nil) != (g.Body == nil) {
				t.Fatalf("event %d: got %+v, want %+v", i, g, w)
			}
		}
	}
}
