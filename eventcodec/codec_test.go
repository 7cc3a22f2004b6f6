package eventcodec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
)

// decode decodes e's data by its kind.
func decode(e aggregate.Event) (any, error) {
	switch eventcodec.Kind(e.Type) {
	case aggregate.TypeReceiptStageRecorded:
		return eventcodec.StageRecorded(e)
	case aggregate.TypeUserEnrolled:
		return eventcodec.UserEnrolled(e)
	case aggregate.TypeDeliveryQuarantined:
		return eventcodec.Quarantined(e)
	case aggregate.TypeUserPointsCredited:
		return eventcodec.PointsCredited(e)
	case aggregate.TypeEntityEventRecorded:
		return eventcodec.EntityEventRecorded(e)
	}
	return nil, errors.New("unknown kind")
}

// canonical is the JSON of a payload struct without its raw body: exact
// decimals as their text, times with their offsets.
func canonical(tb testing.TB, v any) string {
	tb.Helper()
	return string(encodeJSON(tb, withRaw(v, nil)))
}

func allFacts(tb testing.TB) []testFact {
	return append(append(seedFacts(tb), benchFacts(tb, 2)...), oddFacts()...)
}

// TestRoundTrip: a v2 event decodes to the fact, metadata and body it was
// encoded from, whatever the fact's kind and values.
func TestRoundTrip(t *testing.T) {
	for _, f := range allFacts(t) {
		e, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if eventcodec.Kind(e.Type) != f.fact.Type || e.Type == f.fact.Type || e.ID != f.id {
			t.Fatalf("%s: type %q id %q (kind %q)", f.name, e.Type, e.ID, eventcodec.Kind(e.Type))
		}
		got, err := decode(e)
		if err != nil {
			t.Fatalf("%s: decode: %v", f.name, err)
		}
		if g, w := canonical(t, got), canonical(t, f.fact.Data); g != w {
			t.Errorf("%s: data\n got %s\nwant %s", f.name, g, w)
		}
		m, err := eventcodec.Metadata(e)
		if err != nil {
			t.Fatalf("%s: metadata: %v", f.name, err)
		}
		if !reflect.DeepEqual(m, f.meta) {
			t.Errorf("%s: metadata\n got %+v\nwant %+v", f.name, m, f.meta)
		}
		raw, err := eventcodec.RawBody(e)
		if err != nil {
			t.Fatalf("%s: raw body: %v", f.name, err)
		}
		if !bytes.Equal(raw, f.body) || (f.body == nil) != (e.Body == nil) {
			t.Errorf("%s: raw body %q (stored %d bytes), want %q", f.name, raw, len(e.Body), f.body)
		}
		if len(f.body) > 0 && bytes.Contains(e.Data, f.body[:len(f.body)/2]) {
			t.Errorf("%s: data holds the raw body", f.name)
		}
	}
}

// TestV1Compatible: the events the handler wrote before v2 decode, through
// the codec, to what json.Unmarshal gave the readers before (Raw aside,
// which RawBody returns as v1 stored it).
func TestV1Compatible(t *testing.T) {
	for _, f := range allFacts(t) {
		if f.body != nil && !json.Valid(f.body) {
			continue // v1 could not store it
		}
		e := v1Event(t, f)
		got, err := decode(e)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		want := reflect.New(reflect.TypeOf(got))
		if err := json.Unmarshal(e.Data, want.Interface()); err != nil {
			t.Fatal(err)
		}
		want.Elem().FieldByName("Raw").SetBytes(nil)
		if !reflect.DeepEqual(got, want.Elem().Interface()) {
			t.Errorf("%s: v1 data\n got %+v\nwant %+v", f.name, got, want.Elem().Interface())
		}
		m, err := eventcodec.Metadata(e)
		wantM, errM := aggregate.DecodeMetadata(e)
		if err != nil || errM != nil || !reflect.DeepEqual(m, wantM) {
			t.Errorf("%s: v1 metadata %+v (%v), want %+v (%v)", f.name, m, err, wantM, errM)
		}
		raw, err := eventcodec.RawBody(e)
		var compact bytes.Buffer
		if f.body != nil {
			if err := json.Compact(&compact, f.body); err != nil {
				t.Fatal(err)
			}
		}
		if err != nil || !bytes.Equal(raw, compact.Bytes()) {
			t.Errorf("%s: v1 raw body %q (%v), want %q", f.name, raw, err, compact.Bytes())
		}
	}
}

// TestDecodeErrors: a decoder given garbage, or an event of another kind,
// fails with aggregate.ErrBadEvent; it never panics.
func TestDecodeErrors(t *testing.T) {
	f := seedFacts(t)[0]
	e, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
	if err != nil {
		t.Fatal(err)
	}
	bad := []aggregate.Event{
		{ID: "x", Type: e.Type, Data: []byte{0xff, 0xff, 0xff}, Metadata: []byte{0x0a, 0x7f}, Body: []byte("not zstd")},
		{ID: "x", Type: f.fact.Type, Data: []byte("{"), Metadata: []byte("nope"), Body: nil},
	}
	for _, b := range bad {
		if _, err := decode(b); !errors.Is(err, aggregate.ErrBadEvent) {
			t.Errorf("%s data: %v", b.Type, err)
		}
		if _, err := eventcodec.Metadata(b); !errors.Is(err, aggregate.ErrBadEvent) {
			t.Errorf("%s metadata: %v", b.Type, err)
		}
	}
	if _, err := eventcodec.RawBody(bad[0]); !errors.Is(err, aggregate.ErrBadEvent) {
		t.Errorf("raw body: %v", err)
	}
	// A body that is a valid frame of other bytes does not match the hash.
	other, err := eventcodec.Encode(f.id, f.fact, f.meta, append([]byte("x"), f.body...))
	if err != nil {
		t.Fatal(err)
	}
	swapped := e
	swapped.Body = other.Body
	if _, err := eventcodec.RawBody(swapped); !errors.Is(err, aggregate.ErrBadEvent) {
		t.Errorf("raw body of another body's frame: %v", err)
	}
	if _, err := eventcodec.UserEnrolled(e); !errors.Is(err, aggregate.ErrBadEvent) {
		t.Errorf("wrong kind: %v", err)
	}
	if _, err := eventcodec.Encode("x", aggregate.Fact{Type: "nope.v1", Data: 1}, aggregate.Metadata{}, nil); err == nil {
		t.Error("encoded an unknown type")
	}
	if _, err := eventcodec.Encode("x", aggregate.Fact{Type: aggregate.TypeUserEnrolled, Data: aggregate.StageRecorded{}}, aggregate.Metadata{}, nil); err == nil {
		t.Error("encoded data of another type")
	}
}

func TestKind(t *testing.T) {
	for v1, v2 := range map[string]string{
		aggregate.TypeReceiptStageRecorded: aggregate.TypeReceiptStageRecordedV2,
		aggregate.TypeUserEnrolled:         aggregate.TypeUserEnrolledV2,
		aggregate.TypeDeliveryQuarantined:  aggregate.TypeDeliveryQuarantinedV2,
		aggregate.TypeUserPointsCredited:   aggregate.TypeUserPointsCreditedV2,
		aggregate.TypeEntityEventRecorded:  aggregate.TypeEntityEventRecordedV2,
	} {
		if eventcodec.Kind(v1) != v1 || eventcodec.Kind(v2) != v1 {
			t.Errorf("Kind(%q) = %q, Kind(%q) = %q", v1, eventcodec.Kind(v1), v2, eventcodec.Kind(v2))
		}
	}
	if eventcodec.Kind("other.v3") != "other.v3" {
		t.Error("Kind changed an unknown type")
	}
}

// TestInvalidUTF8: a string that is not UTF-8 (a header's delivery id, a
// byte-truncated reason) does not make an event unencodable: it is stored
// with U+FFFD for the invalid byte, as v1's JSON stored it.
func TestInvalidUTF8(t *testing.T) {
	f := oddFacts()[2] // entity, with attributes
	d := f.fact.Data.(aggregate.EntityEventRecorded)
	d.Status, d.Attributes = "pa\xffid", map[string]string{"k\xfe": "v\xff", "ok": "fine"}
	f.fact.Data = d
	f.meta.DeliveryID = "msg_\xc3"
	e, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
	if err != nil {
		t.Fatal(err)
	}
	v1 := v1Event(t, f)
	got, err := eventcodec.EntityEventRecorded(e)
	if err != nil {
		t.Fatal(err)
	}
	want, err := eventcodec.EntityEventRecorded(v1)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := canonical(t, got), canonical(t, want); g != w {
		t.Errorf("v2\n got %s\nwant %s (v1)", g, w)
	}
	m, _ := eventcodec.Metadata(e)
	m1, _ := eventcodec.Metadata(v1)
	if m.DeliveryID != m1.DeliveryID || m.DeliveryID != "msg_\uFFFD" {
		t.Errorf("delivery id %q, v1 %q", m.DeliveryID, m1.DeliveryID)
	}
}
