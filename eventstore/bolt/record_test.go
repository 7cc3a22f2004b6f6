package bolt

import (
	"bytes"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
)

func FuzzRecord(f *testing.F) {
	f.Add("receipt-reewild.fb2c", uint64(0), int64(0), "receipt.stage_recorded.v1", "7d444840-9dc0-11d1-b245-5ffdce74fad2",
		[]byte(`{"stage":"AWARDED","points":"1656.54"}`), []byte(`{"source":"reewild"}`))
	f.Add("s", uint64(1<<63), int64(-1), "t", "", []byte{}, []byte(nil))
	f.Add("\x00\xff", ^uint64(0), time.Now().UnixNano(), "", "id", []byte{0, 1, 2}, []byte{0xff})
	f.Fuzz(func(t *testing.T, stream string, rev uint64, at int64, typ, id string, data, meta []byte) {
		e := aggregate.Event{ID: id, Type: typ, Data: data, Metadata: meta}
		rec := appendRecord(nil, stream, e)
		if len(rec) != recordLen(stream, e) {
			t.Fatalf("record of %d bytes, recordLen says %d", len(rec), recordLen(stream, e))
		}
		stampRecord(rec, rev, at)
		got, err := decodeRecord(42, rec)
		if err != nil {
			t.Fatal(err)
		}
		if got.Stream != stream || got.Revision != rev || got.RecordedAt.UnixNano() != at || got.Position.Commit != 42 ||
			got.ID != id || got.Type != typ || !bytes.Equal(got.Data, data) || !bytes.Equal(got.Metadata, meta) {
			t.Fatalf("round trip: got %+v", got)
		}
		// The result shares nothing with the record, and data and metadata
		// do not overlap.
		for i := range rec {
			rec[i] = 0xAA
		}
		got.Metadata = append(got.Metadata, 'x')
		if !bytes.Equal(got.Data, data) || !bytes.Equal(got.Metadata[:len(meta)], meta) {
			t.Fatal("decoded event aliases the record or its own fields")
		}
		// Any prefix or corruption of a record fails cleanly.
		for n := range min(len(rec), 64) {
			_, _ = decodeRecord(1, rec[:n])
		}
		_, _ = decodeRecord(1, data)
	})
}
