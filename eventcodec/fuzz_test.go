package eventcodec_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
)

var fuzzTypes = []string{
	aggregate.TypeReceiptStageRecordedV2, aggregate.TypeUserEnrolledV2, aggregate.TypeDeliveryQuarantinedV2,
	aggregate.TypeUserPointsCreditedV2, aggregate.TypeEntityEventRecordedV2,
	aggregate.TypeReceiptStageRecorded, aggregate.TypeUserEnrolled, aggregate.TypeDeliveryQuarantined,
	aggregate.TypeUserPointsCredited, aggregate.TypeEntityEventRecorded,
}

// FuzzDecode: whatever bytes a log holds, the decoders return a value or an
// error, never panic; and what a v2 event decodes to encodes back to an
// event that decodes to the same.
func FuzzDecode(f *testing.F) {
	for _, tf := range append(seedFacts(f), oddFacts()...) {
		e, err := eventcodec.Encode(tf.id, tf.fact, tf.meta, tf.body)
		if err != nil {
			f.Fatal(err)
		}
		for i, typ := range fuzzTypes {
			if typ == e.Type {
				f.Add(uint8(i), e.Data, e.Metadata, e.Body)
			}
		}
		v1 := v1Event(f, tf)
		for i, typ := range fuzzTypes {
			if typ == v1.Type {
				f.Add(uint8(i), v1.Data, v1.Metadata, []byte(nil))
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, data, metadata, body []byte) {
		e := aggregate.Event{ID: "fuzz", Type: fuzzTypes[int(typ)%len(fuzzTypes)], Data: data, Metadata: metadata, Body: body}
		d, errD := decode(e)
		m, errM := eventcodec.Metadata(e)
		raw, errR := eventcodec.RawBody(e)
		if errD != nil || errM != nil || errR != nil || e.Type == eventcodec.Kind(e.Type) {
			return
		}
		again, err := eventcodec.Encode(e.ID, aggregate.Fact{Type: e.Type, Data: d}, m, raw)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		d2, err := decode(again)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		m2, err := eventcodec.Metadata(again)
		if err != nil {
			t.Fatalf("metadata re-encoded: %v", err)
		}
		if a, b := canonical(t, d), canonical(t, d2); a != b {
			t.Fatalf("data changed on re-encoding:\n%s\n%s", a, b)
		}
		if a, b := string(encodeJSON(t, m)), string(encodeJSON(t, m2)); a != b {
			t.Fatalf("metadata changed on re-encoding:\n%s\n%s", a, b)
		}
	})
}
