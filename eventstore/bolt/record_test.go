package bolt

import (
	"bytes"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
)

func FuzzRecord(f *testing.F) {
	f.Add("receipt-reewild.fb2c", uint64(0), int64(0), "receipt.stage_recorded.v1", "7d444840-9dc0-11d1-b245-5ffdce74fad2",
		[]byte(`{"stage":"AWARDED","points":"1656.54"}`), []byte(`{"source":"reewild"}`), []byte(nil))
	f.Add("receipt-reewild.fb2c", uint64(3), int64(99), aggregate.TypeReceiptStageRecordedV2, "7d444840-9dc0-11d1-b245-5ffdce74fad2",
		[]byte{0x0a, 0x07, 'r', 'e', 'e', 'w', 'i', 'l', 'd'}, []byte{0x0a, 0x01, 'x'}, []byte{0x28, 0xb5, 0x2f, 0xfd, 0})
	f.Add("s", uint64(1<<63), int64(-1), "t", "", []byte{}, []byte(nil), []byte{})
	f.Add("\x00\xff", ^uint64(0), time.Now().UnixNano(), "", "7D444840-9DC0-11D1-B245-5FFDCE74FAD2", []byte{0, 1, 2}, []byte{0xff}, []byte{1})
	f.Fuzz(func(t *testing.T, stream string, rev uint64, at int64, typ, id string, data, meta, body []byte) {
		for _, v1 := range []bool{false, true} {
			e := aggregate.Event{ID: id, Type: typ, Data: data, Metadata: meta, Body: body}
			var rec []byte
			if v1 {
				e.Body = nil
				rec = appendRecordV1(nil, stream, e)
				if len(rec) != recordLenV1(stream, e) {
					t.Fatalf("v1 record of %d bytes, recordLenV1 says %d", len(rec), recordLenV1(stream, e))
				}
			} else {
				rec = appendRecord(nil, stream, e)
				if len(rec) != recordLen(stream, e) {
					t.Fatalf("record of %d bytes, recordLen says %d", len(rec), recordLen(stream, e))
				}
			}
			stampRecord(rec, rev, at)
			got, err := decodeRecord(42, rec)
			if err != nil {
				t.Fatal(err)
			}
			if got.Stream != stream || got.Revision != rev || got.RecordedAt.UnixNano() != at || got.Position.Commit != 42 ||
				got.ID != id || got.Type != typ || !bytes.Equal(got.Data, data) || !bytes.Equal(got.Metadata, meta) ||
				!bytes.Equal(got.Body, e.Body) || (e.Body == nil) != (got.Body == nil) {
				t.Fatalf("round trip (v1 %v): got %+v", v1, got)
			}
			// The result shares nothing with the record, and its byte
			// fields do not overlap.
			for i := range rec {
				rec[i] = 0xAA
			}
			got.Metadata = append(got.Metadata, 'x')
			got.Data = append(got.Data, 'y')
			if !bytes.Equal(got.Data[:len(data)], data) || !bytes.Equal(got.Metadata[:len(meta)], meta) || !bytes.Equal(got.Body, e.Body) {
				t.Fatal("decoded event aliases the record or its own fields")
			}
			// Any prefix or corruption of a record fails cleanly.
			for n := range min(len(rec), 64) {
				_, _ = decodeRecord(1, rec[:n])
			}
			_, _ = decodeRecord(1, data)
		}
	})
}

// TestRecordCompact: a UUID id and a listed type take 16 bytes and one.
func TestRecordCompact(t *testing.T) {
	e := aggregate.Event{ID: "7d444840-9dc0-11d1-b245-5ffdce74fad2", Type: aggregate.TypeReceiptStageRecordedV2}
	if got, want := len(appendRecord(nil, "s", e)), recordHeader+1+2+1+16+1+1; got != want {
		t.Fatalf("record of %d bytes, want %d", got, want)
	}
	for i := 1; i < len(typeCodes); i++ {
		for j := 1; j < i; j++ {
			if typeCodes[i] == typeCodes[j] {
				t.Fatalf("type %q listed twice", typeCodes[i])
			}
		}
	}
}
