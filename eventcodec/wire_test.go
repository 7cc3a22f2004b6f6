package eventcodec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	eventsv2 "github.com/receiptd/receiptd/gen/go/receiptd/events/v2"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"
)

// The reference decoders: the generated messages, converted. The wire
// decoders must agree with them on every input.

func stageRecordedFromPB(m *eventsv2.StageRecorded, metadata []byte, f *aggregate.StageRecorded) error {
	*f = aggregate.StageRecorded{
		Source: m.GetSource(), ReceiptID: m.GetReceiptId(), UserID: m.GetUserId(),
		Stage: stageName(m.GetStage(), m.GetStageName()), OccurredAt: timePtr(m.GetOccurredAt()),
		Merchant: m.GetMerchant(), Currency: m.GetCurrency(),
	}
	var err error
	if f.BodySHA256, err = refHash(m.GetBodySha256(), m.GetBodySha256Text(), m.GetBodySha256InMetadata(), metadata); err != nil {
		return err
	}
	if f.Amount, err = decimalPtr(m.GetAmount()); err != nil {
		return err
	}
	if a := m.GetAward(); a != nil {
		aw := &aggregate.Award{TransactionID: a.GetTransactionId(), GreenProducts: a.GetGreenProducts()}
		for _, d := range []struct {
			dst *decimal.Decimal
			src *eventsv2.Decimal
		}{{&aw.Points, a.GetPoints()}, {&aw.BonusPoints, a.GetBonusPoints()}, {&aw.HealthPoints, a.GetHealthPoints()}, {&aw.CO2e, a.GetCo2E()}} {
			if *d.dst, err = decimalValue(d.src); err != nil {
				return err
			}
		}
		if s := a.GetSnapshot(); s != nil {
			sn := &aggregate.Snapshot{NumTransactions: s.GetNumTransactions()}
			if sn.AvailablePoints, err = decimalValue(s.GetAvailablePoints()); err != nil {
				return err
			}
			if sn.LifetimePoints, err = decimalValue(s.GetLifetimePoints()); err != nil {
				return err
			}
			aw.Snapshot = sn
		}
		f.Award = aw
	}
	if fl := m.GetFailure(); fl != nil {
		f.Failure = &aggregate.Failure{Code: fl.GetCode(), Name: fl.GetName(), Message: fl.GetMessage()}
	}
	return nil
}

func metadataFromPB(id string, m *eventsv2.Metadata) aggregate.Metadata {
	md := aggregate.Metadata{
		Source: m.GetSource(), ProviderEventType: m.GetProviderEventType(), DeliveryID: m.GetDeliveryId(),
		Scheme: m.GetScheme(), KeyID: m.GetKeyId(), BodySHA256: hashText(m.GetBodySha256(), m.GetBodySha256Text()),
		DedupeKey: m.GetDedupeKey(), SlotKey: m.GetSlotKey(), Correction: m.GetCorrection(),
		CorrelationID: id, CausationID: id,
	}
	if t := timePtr(m.GetReceivedAt()); t != nil {
		md.ReceivedAt = *t
	}
	if m.GetDedupeKeyEventTypePrefix() {
		md.DedupeKey = md.ProviderEventType + ":" + md.DedupeKey
	}
	if m.GetDedupeKeyHashSuffix() && len(m.GetBodySha256()) == hashLen {
		md.DedupeKey += md.BodySHA256
	}
	if m.CorrelationId != nil {
		md.CorrelationID = m.GetCorrelationId()
	}
	if m.CausationId != nil {
		md.CausationID = m.GetCausationId()
	}
	return md
}

func userEnrolledFromPB(m *eventsv2.UserEnrolled, metadata []byte) (aggregate.UserEnrolled, error) {
	f := aggregate.UserEnrolled{
		Source: m.GetSource(), UserID: m.GetUserId(), Email: m.GetEmail(), EnrolledAt: timePtr(m.GetEnrolledAt()),
	}
	if len(m.GetSealed()) > 0 {
		f.Sealed = m.GetSealed()
	}
	var err error
	f.BodySHA256, err = refHash(m.GetBodySha256(), m.GetBodySha256Text(), m.GetBodySha256InMetadata(), metadata)
	return f, err
}

// refHash is a payload's body hash, from the metadata decoded by the
// generated code when the payload says it is there.
func refHash(raw []byte, text string, inMetadata bool, metadata []byte) (string, error) {
	if !inMetadata {
		return hashText(raw, text), nil
	}
	var m eventsv2.Metadata
	if err := proto.Unmarshal(metadata, &m); err != nil {
		return "", err
	}
	return hashText(m.GetBodySha256(), m.GetBodySha256Text()), nil
}

// checkWire decodes b both ways as each message the wire decoders read and
// fails when they disagree: on the error, or on the value.
func checkWire(t *testing.T, b, metadata []byte) {
	t.Helper()
	{
		var m eventsv2.StageRecorded
		var want aggregate.StageRecorded
		errG := proto.Unmarshal(b, &m)
		if errG == nil {
			errG = stageRecordedFromPB(&m, metadata, &want)
		}
		var got aggregate.StageRecorded
		errW := decodeStageRecordedWire(b, metadata, &got)
		compare(t, "StageRecorded", b, errG, errW, got, want)
	}
	{
		var m eventsv2.UserEnrolled
		var want aggregate.UserEnrolled
		errG := proto.Unmarshal(b, &m)
		if errG == nil {
			want, errG = userEnrolledFromPB(&m, metadata)
		}
		var got aggregate.UserEnrolled
		errW := decodeUserEnrolledWire(b, metadata, &got)
		compare(t, "UserEnrolled", b, errG, errW, got, want)
	}
	{
		want, errG := refHash(nil, "", true, b)
		raw, text, errW := metadataHash(b)
		compare(t, "metadataHash", b, errG, errW, hashText(raw, text), want)
	}
	{
		var m eventsv2.Metadata
		var want aggregate.Metadata
		errG := proto.Unmarshal(b, &m)
		if errG == nil {
			want = metadataFromPB("the-id", &m)
		}
		var got aggregate.Metadata
		errW := decodeMetadataWire(b, "the-id", &got)
		compare(t, "Metadata", b, errG, errW, got, want)
	}
}

func compare[T any](t *testing.T, what string, b []byte, errG, errW error, got, want T) {
	t.Helper()
	if (errG == nil) != (errW == nil) {
		t.Fatalf("%s %x: generated error %v, wire error %v", what, b, errG, errW)
	}
	if errG == nil && !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("%s %x:\n wire      %+v\n generated %+v", what, b, got, want)
	}
}

// normalize makes decimals comparable with DeepEqual (a big.Int's
// internals differ between equal values built differently).
func normalize(v any) any {
	switch x := v.(type) {
	case aggregate.StageRecorded:
		x.Amount = normDec(x.Amount)
		if x.Award != nil {
			a := *x.Award
			a.Points, a.BonusPoints, a.HealthPoints, a.CO2e = *normDec(&a.Points), *normDec(&a.BonusPoints), *normDec(&a.HealthPoints), *normDec(&a.CO2e)
			if a.Snapshot != nil {
				s := *a.Snapshot
				s.AvailablePoints, s.LifetimePoints = *normDec(&s.AvailablePoints), *normDec(&s.LifetimePoints)
				a.Snapshot = &s
			}
			x.Award = &a
		}
		return x
	}
	return v
}

func normDec(d *decimal.Decimal) *decimal.Decimal {
	if d == nil {
		return nil
	}
	// Rebuild from coefficient and exponent: equal decimals of equal
	// representation become DeepEqual.
	n := decimal.NewFromBigInt(d.Coefficient(), d.Exponent())
	return &n
}

// wireSeeds are the Data and Metadata of the golden v2 events, each also
// doubled (every field twice: scalars take the last value, messages
// merge), and a few odd encodings.
func wireSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden_v2.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var golden []struct{ Data, Metadata []byte }
	if err := json.Unmarshal(b, &golden); err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, g := range golden {
		for _, m := range [][]byte{g.Data, g.Metadata} {
			out = append(out, m, append(append([]byte(nil), m...), m...))
		}
	}
	return append(out,
		nil,
		[]byte{0x22, 0x00}, // stage as bytes: skipped
		[]byte{0x20, 0xff, 0xff, 0xff, 0xff, 0x0f},             // stage out of int32 range
		[]byte{0x5a, 0x02, 0x08, 0x01, 0x5a, 0x02, 0x10, 0x03}, // amount twice: merged
		[]byte{0x0a, 0x02, 0xff, 0xfe},                         // invalid UTF-8
		[]byte{0x6a, 0x00, 0x72, 0x00},                         // empty correlation and causation ids
		[]byte{0x0a},                                           // truncated
	)
}

// TestWireMatchesGenerated: over every event the codec tests encode.
func TestWireMatchesGenerated(t *testing.T) {
	seeds := wireSeeds(t)
	for i, b := range seeds {
		checkWire(t, b, seeds[(i+1)%len(seeds)])
	}
}

// FuzzWireMatchesGenerated: over any bytes.
func FuzzWireMatchesGenerated(f *testing.F) {
	seeds := wireSeeds(f)
	for i, b := range seeds {
		f.Add(b, seeds[(i+1)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, b, metadata []byte) { checkWire(t, b, metadata) })
}

// BenchmarkDecodeWire compares the wire decoders with the generated
// messages they replaced, same run, over the golden events' Data (the
// StageRecorded ones) and Metadata.
//
//	go test -run '^$' -bench DecodeWire -benchmem ./eventcodec/
func BenchmarkDecodeWire(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "golden_v2.json"))
	if err != nil {
		b.Fatal(err)
	}
	var golden []struct {
		Type           string
		Data, Metadata []byte
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		b.Fatal(err)
	}
	var stages, metas [][]byte
	for _, g := range golden {
		if g.Type == aggregate.TypeReceiptStageRecordedV2 {
			stages = append(stages, g.Data)
		}
		metas = append(metas, g.Metadata)
	}
	b.Run("stage_recorded/generated", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var m eventsv2.StageRecorded
			var f aggregate.StageRecorded
			if err := proto.Unmarshal(stages[i%len(stages)], &m); err != nil {
				b.Fatal(err)
			}
			if err := stageRecordedFromPB(&m, nil, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stage_recorded/wire", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var f aggregate.StageRecorded
			if err := decodeStageRecordedWire(stages[i%len(stages)], nil, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("metadata/generated", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var m eventsv2.Metadata
			if err := proto.Unmarshal(metas[i%len(metas)], &m); err != nil {
				b.Fatal(err)
			}
			_ = metadataFromPB("id", &m)
		}
	})
	b.Run("metadata/wire", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var m aggregate.Metadata
			if err := decodeMetadataWire(metas[i%len(metas)], "id", &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
