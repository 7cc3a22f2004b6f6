package eventcodec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/receiptd/receiptd/aggregate"
	eventsv2 "github.com/receiptd/receiptd/gen/go/receiptd/events/v2"
	"github.com/receiptd/receiptd/privacy"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kind returns the version-less kind of an event type: the v1 type name
// constant (aggregate.TypeReceiptStageRecorded, …) for both its v1 and its
// v2 name. Any other type is returned unchanged.
func Kind(eventType string) string {
	switch eventType {
	case aggregate.TypeReceiptStageRecordedV2:
		return aggregate.TypeReceiptStageRecorded
	case aggregate.TypeUserEnrolledV2:
		return aggregate.TypeUserEnrolled
	case aggregate.TypeDeliveryQuarantinedV2:
		return aggregate.TypeDeliveryQuarantined
	case aggregate.TypeUserPointsCreditedV2:
		return aggregate.TypeUserPointsCredited
	case aggregate.TypeEntityEventRecordedV2:
		return aggregate.TypeEntityEventRecorded
	}
	return eventType
}

// v2Type returns the v2 name of a kind.
func v2Type(kind string) (string, bool) {
	switch kind {
	case aggregate.TypeReceiptStageRecorded:
		return aggregate.TypeReceiptStageRecordedV2, true
	case aggregate.TypeUserEnrolled:
		return aggregate.TypeUserEnrolledV2, true
	case aggregate.TypeDeliveryQuarantined:
		return aggregate.TypeDeliveryQuarantinedV2, true
	case aggregate.TypeUserPointsCredited:
		return aggregate.TypeUserPointsCreditedV2, true
	case aggregate.TypeEntityEventRecorded:
		return aggregate.TypeEntityEventRecordedV2, true
	}
	return "", false
}

// marshal is deterministic so that an event's bytes are a function of its
// contents (EntityEventRecorded's attributes are a map).
var marshal = proto.MarshalOptions{Deterministic: true}

// Encode returns the v2 event of fact f: id is its event id, meta its
// metadata (complete: correction flag, correlation and causation ids
// included) and raw the provider's body exactly as received, or nil when
// there is none. f.Type is the fact's v1 type (or its v2 name) and f.Data
// the matching struct (aggregate.StageRecorded, …, or a pointer to one);
// the struct's Raw field is not encoded: raw is.
func Encode(id string, f aggregate.Fact, meta aggregate.Metadata, raw []byte) (aggregate.Event, error) {
	return EncodeSealed(id, f, meta, raw, Sealing{})
}

// EncodeSealed is Encode, sealing what s says under s.Key (see Sealing);
// with s.Key nil it is Encode.
func EncodeSealed(id string, f aggregate.Fact, meta aggregate.Metadata, raw []byte, s Sealing) (aggregate.Event, error) {
	fail := func(err error) (aggregate.Event, error) {
		return aggregate.Event{}, fmt.Errorf("eventcodec: encode %s event %s: %w", f.Type, id, err)
	}
	kind := Kind(f.Type)
	typ, ok := v2Type(kind)
	if !ok {
		return fail(fmt.Errorf("no v2 encoding of event type %q", f.Type))
	}
	var (
		m       proto.Message
		dataOK  bool
		payload = f.Data
	)
	switch kind {
	case aggregate.TypeReceiptStageRecorded:
		var v aggregate.StageRecorded
		if v, dataOK = deref[aggregate.StageRecorded](payload); dataOK {
			m = stageRecordedPB(&v)
		}
	case aggregate.TypeUserEnrolled:
		var v aggregate.UserEnrolled
		if v, dataOK = deref[aggregate.UserEnrolled](payload); dataOK {
			m = userEnrolledPB(&v)
		}
	case aggregate.TypeDeliveryQuarantined:
		var v aggregate.Quarantined
		if v, dataOK = deref[aggregate.Quarantined](payload); dataOK {
			m = quarantinedPB(&v)
		}
	case aggregate.TypeUserPointsCredited:
		var v aggregate.PointsCredited
		if v, dataOK = deref[aggregate.PointsCredited](payload); dataOK {
			m = pointsCreditedPB(&v)
		}
	case aggregate.TypeEntityEventRecorded:
		var v aggregate.EntityEventRecorded
		if v, dataOK = deref[aggregate.EntityEventRecorded](payload); dataOK {
			m = entityEventPB(&v)
		}
	}
	if !dataOK {
		return fail(fmt.Errorf("data of type %T", payload))
	}
	if s.Key != nil {
		if err := sealFields(m, s); err != nil {
			return fail(err)
		}
	}
	hashInMetadata(m, meta.BodySHA256)
	data, err := marshalValid(m)
	if err != nil {
		return fail(err)
	}
	md, err := marshalValid(metadataPB(id, &meta))
	if err != nil {
		return fail(err)
	}
	e := aggregate.Event{ID: id, Type: typ, Data: data, Metadata: md}
	if raw != nil {
		if s.Key == nil {
			e.Body, err = compress(raw)
		} else {
			e.Body, err = compressTo(raw, func(frame []byte) ([]byte, error) { return s.Key.Seal(nil, privacy.PurposeBody, frame) })
		}
		if err != nil {
			return fail(err)
		}
	}
	return e, nil
}

// marshalValid marshals m. Protobuf strings must be UTF-8, which a string
// from a header or a byte-truncated one may not be: such a string is
// stored with each run of invalid bytes replaced by U+FFFD, as the v1 JSON
// encoding replaced each invalid byte.
func marshalValid(m proto.Message) ([]byte, error) {
	b, err := marshal.Marshal(m)
	if err == nil {
		return b, nil
	}
	if !toValidUTF8(m.ProtoReflect()) {
		return nil, err
	}
	return marshal.Marshal(m)
}

// toValidUTF8 replaces invalid UTF-8 in every string of m and reports
// whether it changed one.
func toValidUTF8(m protoreflect.Message) bool {
	changed := false
	fix := func(v protoreflect.Value) (protoreflect.Value, bool) {
		if s := v.String(); !utf8.ValidString(s) {
			return protoreflect.ValueOfString(strings.ToValidUTF8(s, "\uFFFD")), true
		}
		return v, false
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			mp := v.Map()
			var bad []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				if !utf8.ValidString(k.String()) || fd.MapValue().Kind() == protoreflect.StringKind && !utf8.ValidString(v.String()) {
					bad = append(bad, k)
				}
				return true
			})
			for _, k := range bad {
				v := mp.Get(k)
				mp.Clear(k)
				nk, _ := fix(k.Value())
				if fd.MapValue().Kind() == protoreflect.StringKind {
					v, _ = fix(v)
				}
				mp.Set(nk.MapKey(), v)
				changed = true
			}
		case fd.Kind() == protoreflect.StringKind && !fd.IsList():
			if nv, ok := fix(v); ok {
				m.Set(fd, nv)
				changed = true
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsList():
			changed = toValidUTF8(v.Message()) || changed
		}
		return true
	})
	return changed
}

// hashInMetadata leaves the body hash out of a payload whose hash is the
// metadata's, and says so in the payload.
func hashInMetadata(m proto.Message, metaHash string) {
	if metaHash == "" {
		return
	}
	type hashed interface {
		GetBodySha256() []byte
		GetBodySha256Text() string
	}
	h := m.(hashed)
	if !hashIs(h.GetBodySha256(), h.GetBodySha256Text(), metaHash) {
		return
	}
	switch x := m.(type) {
	case *eventsv2.StageRecorded:
		x.BodySha256, x.BodySha256Text, x.BodySha256InMetadata = nil, "", true
	case *eventsv2.UserEnrolled:
		x.BodySha256, x.BodySha256Text, x.BodySha256InMetadata = nil, "", true
	case *eventsv2.Quarantined:
		x.BodySha256, x.BodySha256Text, x.BodySha256InMetadata = nil, "", true
	case *eventsv2.PointsCredited:
		x.BodySha256, x.BodySha256Text, x.BodySha256InMetadata = nil, "", true
	case *eventsv2.EntityEventRecorded:
		x.BodySha256, x.BodySha256Text, x.BodySha256InMetadata = nil, "", true
	}
}

// payloadHash returns the body hash of a payload decoded by the generated
// code: its own, or the metadata's.
func payloadHash(e aggregate.Event, raw []byte, text string, inMetadata bool) (string, error) {
	if !inMetadata {
		return hashText(raw, text), nil
	}
	raw, text, err := metadataHash(e.Metadata)
	if err != nil {
		return "", err
	}
	return hashText(raw, text), nil
}

func deref[T any](v any) (T, bool) {
	switch x := v.(type) {
	case T:
		return x, true
	case *T:
		if x != nil {
			return *x, true
		}
	}
	var zero T
	return zero, false
}

// badEvent wraps a decoding failure of e.
func badEvent(e aggregate.Event, what string, err error) error {
	if err == nil {
		return fmt.Errorf("eventcodec: decode %s of %s event %s: %w", what, e.Type, e.ID, aggregate.ErrBadEvent)
	}
	return fmt.Errorf("eventcodec: decode %s of %s event %s: %w: %w", what, e.Type, e.ID, aggregate.ErrBadEvent, err)
}

// errKind is the error of a decoder given an event of another kind.
func errKind(e aggregate.Event, want string) error {
	return fmt.Errorf("eventcodec: decode %s event %s as %s: %w", e.Type, e.ID, want, aggregate.ErrBadEvent)
}

// decodeV1 decodes v1 JSON data into v.
func decodeV1(e aggregate.Event, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return badEvent(e, "data", err)
	}
	return nil
}

// StageRecorded decodes the data of a receipt.stage_recorded event of
// either version. Raw is left nil (see RawBody).
func StageRecorded(e aggregate.Event) (aggregate.StageRecorded, error) {
	var f aggregate.StageRecorded
	switch e.Type {
	case aggregate.TypeReceiptStageRecordedV2:
		if err := decodeStageRecordedWire(e.Data, e.Metadata, &f); err != nil {
			return aggregate.StageRecorded{}, badEvent(e, "data", err)
		}
	case aggregate.TypeReceiptStageRecorded:
		if err := decodeV1(e, &f); err != nil {
			return aggregate.StageRecorded{}, err
		}
		f.Raw = nil
	default:
		return f, errKind(e, aggregate.TypeReceiptStageRecorded)
	}
	return f, nil
}

// UserEnrolled decodes the data of a user.enrolled event of either version.
// Raw is left nil (see RawBody).
func UserEnrolled(e aggregate.Event) (aggregate.UserEnrolled, error) {
	var f aggregate.UserEnrolled
	switch e.Type {
	case aggregate.TypeUserEnrolledV2:
		if err := decodeUserEnrolledWire(e.Data, e.Metadata, &f); err != nil {
			return aggregate.UserEnrolled{}, badEvent(e, "data", err)
		}
	case aggregate.TypeUserEnrolled:
		if err := decodeV1(e, &f); err != nil {
			return aggregate.UserEnrolled{}, err
		}
		f.Raw = nil
	default:
		return f, errKind(e, aggregate.TypeUserEnrolled)
	}
	return f, nil
}

// Quarantined decodes the data of a delivery.quarantined event of either
// version. Raw is left nil (see RawBody).
func Quarantined(e aggregate.Event) (aggregate.Quarantined, error) {
	var f aggregate.Quarantined
	switch e.Type {
	case aggregate.TypeDeliveryQuarantinedV2:
		var m eventsv2.Quarantined
		if err := proto.Unmarshal(e.Data, &m); err != nil {
			return f, badEvent(e, "data", err)
		}
		f = aggregate.Quarantined{Source: m.GetSource(), ProviderEventType: m.GetProviderEventType(), Reason: m.GetReason()}
		var err error
		if f.BodySHA256, err = payloadHash(e, m.GetBodySha256(), m.GetBodySha256Text(), m.GetBodySha256InMetadata()); err != nil {
			return aggregate.Quarantined{}, badEvent(e, "metadata", err)
		}
	case aggregate.TypeDeliveryQuarantined:
		if err := decodeV1(e, &f); err != nil {
			return aggregate.Quarantined{}, err
		}
		f.Raw = nil
	default:
		return f, errKind(e, aggregate.TypeDeliveryQuarantined)
	}
	return f, nil
}

// PointsCredited decodes the data of a user.points_credited event of either
// version. Raw is left nil (see RawBody).
func PointsCredited(e aggregate.Event) (aggregate.PointsCredited, error) {
	var f aggregate.PointsCredited
	switch e.Type {
	case aggregate.TypeUserPointsCreditedV2:
		var m eventsv2.PointsCredited
		if err := proto.Unmarshal(e.Data, &m); err != nil {
			return f, badEvent(e, "data", err)
		}
		f = aggregate.PointsCredited{
			Source: m.GetSource(), UserID: m.GetUserId(), BalanceSource: m.GetBalanceSource(),
			TransactionID: m.GetTransactionId(), OccurredAt: timePtr(m.GetOccurredAt()), Description: m.GetDescription(),
		}
		var err error
		if f.Points, err = decimalValue(m.GetPoints()); err == nil {
			f.Amount, err = decimalPtr(m.GetAmount())
		}
		if err == nil {
			f.BodySHA256, err = payloadHash(e, m.GetBodySha256(), m.GetBodySha256Text(), m.GetBodySha256InMetadata())
		}
		if err != nil {
			return aggregate.PointsCredited{}, badEvent(e, "data", err)
		}
	case aggregate.TypeUserPointsCredited:
		if err := decodeV1(e, &f); err != nil {
			return aggregate.PointsCredited{}, err
		}
		f.Raw = nil
	default:
		return f, errKind(e, aggregate.TypeUserPointsCredited)
	}
	return f, nil
}

// EntityEventRecorded decodes the data of an entity.event_recorded event of
// either version. Raw is left nil (see RawBody).
func EntityEventRecorded(e aggregate.Event) (aggregate.EntityEventRecorded, error) {
	var f aggregate.EntityEventRecorded
	switch e.Type {
	case aggregate.TypeEntityEventRecordedV2:
		var m eventsv2.EntityEventRecorded
		if err := proto.Unmarshal(e.Data, &m); err != nil {
			return f, badEvent(e, "data", err)
		}
		f = aggregate.EntityEventRecorded{
			Source: m.GetSource(), Kind: m.GetKind(), EntityID: m.GetEntityId(), EventType: m.GetEventType(),
			Status: m.GetStatus(), StatusAt: timePtr(m.GetStatusAt()), OccurredAt: timePtr(m.GetOccurredAt()),
			Currency: m.GetCurrency(), UserID: m.GetUserId(),
		}
		if len(m.GetAttributes()) > 0 {
			f.Attributes = m.GetAttributes()
		}
		if len(m.GetSealed()) > 0 {
			f.Sealed = m.GetSealed()
		}
		var err error
		if f.Amount, err = decimalPtr(m.GetAmount()); err == nil {
			f.BodySHA256, err = payloadHash(e, m.GetBodySha256(), m.GetBodySha256Text(), m.GetBodySha256InMetadata())
		}
		if err != nil {
			return aggregate.EntityEventRecorded{}, badEvent(e, "data", err)
		}
	case aggregate.TypeEntityEventRecorded:
		if err := decodeV1(e, &f); err != nil {
			return aggregate.EntityEventRecorded{}, err
		}
		f.Raw = nil
	default:
		return f, errKind(e, aggregate.TypeEntityEventRecorded)
	}
	return f, nil
}

// isV2 reports whether t is one of the v2 event types.
func isV2(t string) bool { return Kind(t) != t }

// Metadata decodes an event's metadata: v2 binary for a v2 event type, v1
// JSON for any other.
func Metadata(e aggregate.Event) (aggregate.Metadata, error) {
	if !isV2(e.Type) {
		var m aggregate.Metadata
		if err := json.Unmarshal(e.Metadata, &m); err != nil {
			return aggregate.Metadata{}, badEvent(e, "metadata", err)
		}
		return m, nil
	}
	var m aggregate.Metadata
	if err := decodeMetadataWire(e.Metadata, e.ID, &m); err != nil {
		return aggregate.Metadata{}, badEvent(e, "metadata", err)
	}
	return m, nil
}

// RawBody returns the provider's raw body of an event: for a v2 event its
// Body decompressed, exactly the bytes received (nil when it has none),
// checked against the SHA-256 its metadata records; for
// a v1 event the data's raw field, the body as v1 stored it (compacted
// JSON).
func RawBody(e aggregate.Event) ([]byte, error) {
	if isV2(e.Type) {
		if len(e.Body) == 0 {
			return nil, nil
		}
		if privacy.IsSealed(e.Body) {
			id, _ := privacy.SealedKeyID(e.Body)
			return nil, fmt.Errorf("eventcodec: raw body of %s event %s, sealed under key %s: %w", e.Type, e.ID, id, ErrSealed)
		}
		return openedBody(e, e.Body)
	}
	var d struct {
		Raw       json.RawMessage `json:"raw"`
		RawSealed []byte          `json:"raw_sealed"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return nil, badEvent(e, "data", err)
	}
	if id, ok := privacy.SealedKeyID(d.RawSealed); ok {
		return nil, fmt.Errorf("eventcodec: raw body of %s event %s, sealed under key %s: %w", e.Type, e.ID, id, ErrSealed)
	}
	if len(d.Raw) == 0 || string(d.Raw) == "null" {
		return nil, nil
	}
	return d.Raw, nil
}

// openedBody decompresses a v2 body's zstd frame and checks it against the
// metadata's SHA-256.
func openedBody(e aggregate.Event, frame []byte) ([]byte, error) {
	raw, err := decompress(frame)
	if err != nil {
		return nil, badEvent(e, "body", err)
	}
	// The frames carry no checksum: the body's SHA-256 in the metadata
	// is checked instead.
	want, _, err := metadataHash(e.Metadata)
	if err != nil {
		return nil, badEvent(e, "metadata", err)
	}
	if len(want) == hashLen {
		if sum := sha256.Sum256(raw); !bytes.Equal(sum[:], want) {
			return nil, badEvent(e, "body", errors.New("the body does not match its SHA-256 in the metadata"))
		}
	}
	return raw, nil
}

// --- conversions between aggregate structs and the v2 messages ---

func stageRecordedPB(f *aggregate.StageRecorded) *eventsv2.StageRecorded {
	m := &eventsv2.StageRecorded{
		Source: f.Source, ReceiptId: f.ReceiptID, UserId: f.UserID,
		OccurredAt: timePB(f.OccurredAt), Merchant: f.Merchant, Currency: f.Currency,
		Amount: decimalPtrPB(f.Amount),
	}
	if s, ok := stageEnum(f.Stage); ok {
		m.Stage = s
	} else {
		m.StageName = string(f.Stage)
	}
	m.BodySha256, m.BodySha256Text = hashBytes(f.BodySHA256)
	if a := f.Award; a != nil {
		m.Award = &eventsv2.Award{
			TransactionId: a.TransactionID, Points: decimalPB(a.Points), BonusPoints: decimalPB(a.BonusPoints),
			HealthPoints: decimalPB(a.HealthPoints), Co2E: decimalPB(a.CO2e), GreenProducts: a.GreenProducts,
		}
		if s := a.Snapshot; s != nil {
			m.Award.Snapshot = &eventsv2.Snapshot{
				AvailablePoints: decimalPB(s.AvailablePoints), LifetimePoints: decimalPB(s.LifetimePoints),
				NumTransactions: s.NumTransactions,
			}
		}
	}
	if fl := f.Failure; fl != nil {
		m.Failure = &eventsv2.Failure{Code: fl.Code, Name: fl.Name, Message: fl.Message}
	}
	return m
}

func userEnrolledPB(f *aggregate.UserEnrolled) *eventsv2.UserEnrolled {
	m := &eventsv2.UserEnrolled{Source: f.Source, UserId: f.UserID, Email: f.Email, EnrolledAt: timePB(f.EnrolledAt)}
	m.BodySha256, m.BodySha256Text = hashBytes(f.BodySHA256)
	return m
}

func quarantinedPB(f *aggregate.Quarantined) *eventsv2.Quarantined {
	m := &eventsv2.Quarantined{Source: f.Source, ProviderEventType: f.ProviderEventType, Reason: f.Reason}
	m.BodySha256, m.BodySha256Text = hashBytes(f.BodySHA256)
	return m
}

func pointsCreditedPB(f *aggregate.PointsCredited) *eventsv2.PointsCredited {
	m := &eventsv2.PointsCredited{
		Source: f.Source, UserId: f.UserID, BalanceSource: f.BalanceSource, TransactionId: f.TransactionID,
		Points: decimalPB(f.Points), OccurredAt: timePB(f.OccurredAt), Description: f.Description,
		Amount: decimalPtrPB(f.Amount),
	}
	m.BodySha256, m.BodySha256Text = hashBytes(f.BodySHA256)
	return m
}

func entityEventPB(f *aggregate.EntityEventRecorded) *eventsv2.EntityEventRecorded {
	m := &eventsv2.EntityEventRecorded{
		Source: f.Source, Kind: f.Kind, EntityId: f.EntityID, EventType: f.EventType, Status: f.Status,
		StatusAt: timePB(f.StatusAt), OccurredAt: timePB(f.OccurredAt), Amount: decimalPtrPB(f.Amount),
		Currency: f.Currency, UserId: f.UserID, Attributes: f.Attributes,
	}
	m.BodySha256, m.BodySha256Text = hashBytes(f.BodySHA256)
	return m
}

func metadataPB(id string, md *aggregate.Metadata) *eventsv2.Metadata {
	m := &eventsv2.Metadata{
		Source: md.Source, ProviderEventType: md.ProviderEventType, DeliveryId: md.DeliveryID,
		Scheme: md.Scheme, KeyId: md.KeyID, DedupeKey: md.DedupeKey, SlotKey: md.SlotKey,
		Correction: md.Correction,
	}
	if !md.ReceivedAt.IsZero() {
		m.ReceivedAt = timePB(&md.ReceivedAt)
	}
	m.BodySha256, m.BodySha256Text = hashBytes(md.BodySHA256)
	if m.BodySha256 != nil && len(md.DedupeKey) >= hashHexLen && strings.HasSuffix(md.DedupeKey, md.BodySHA256) {
		m.DedupeKey, m.DedupeKeyHashSuffix = md.DedupeKey[:len(md.DedupeKey)-hashHexLen], true
	}
	if p := md.ProviderEventType; p != "" && len(m.DedupeKey) > len(p) && m.DedupeKey[len(p)] == ':' && strings.HasPrefix(m.DedupeKey, p) {
		m.DedupeKey, m.DedupeKeyEventTypePrefix = m.DedupeKey[len(p)+1:], true
	}
	if md.CorrelationID != id {
		m.CorrelationId = proto.String(md.CorrelationID)
	}
	if md.CausationID != id {
		m.CausationId = proto.String(md.CausationID)
	}
	return m
}

// --- body hashes ---

const (
	hashLen    = 32
	hashHexLen = 2 * hashLen
)

// hashBytes returns a body hash as 32 raw bytes when it is 64 lowercase hex
// digits (what hex.EncodeToString gives back), else as text.
func hashBytes(s string) ([]byte, string) {
	if len(s) != hashHexLen {
		return nil, s
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, s
		}
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, s
	}
	return b, ""
}

// hashIs reports whether hashText(b, text) is want, without building
// the text.
func hashIs(b []byte, text, want string) bool {
	if len(b) == 0 {
		return text == want
	}
	if len(b) != hashLen || len(want) != hashHexLen {
		return hashText(b, text) == want
	}
	var buf [hashHexLen]byte
	hex.Encode(buf[:], b)
	return string(buf[:]) == want
}

func hashText(b []byte, text string) string {
	if len(b) == 0 {
		return text
	}
	return hex.EncodeToString(b)
}

// --- stages ---

func stageEnum(s aggregate.Stage) (eventsv2.Stage, bool) {
	switch s {
	case aggregate.StageUploaded:
		return eventsv2.Stage_STAGE_UPLOADED, true
	case aggregate.StageExtracted:
		return eventsv2.Stage_STAGE_EXTRACTED, true
	case aggregate.StageEnriched:
		return eventsv2.Stage_STAGE_ENRICHED, true
	case aggregate.StageValidated:
		return eventsv2.Stage_STAGE_VALIDATED, true
	case aggregate.StageScored:
		return eventsv2.Stage_STAGE_SCORED, true
	case aggregate.StageAwarded:
		return eventsv2.Stage_STAGE_AWARDED, true
	case aggregate.StageFailed:
		return eventsv2.Stage_STAGE_FAILED, true
	}
	return eventsv2.Stage_STAGE_UNSPECIFIED, false
}

func stageName(s eventsv2.Stage, name string) aggregate.Stage { return stageOf(int32(s), name) }

func stageOf(s int32, name string) aggregate.Stage {
	switch eventsv2.Stage(s) {
	case eventsv2.Stage_STAGE_UPLOADED:
		return aggregate.StageUploaded
	case eventsv2.Stage_STAGE_EXTRACTED:
		return aggregate.StageExtracted
	case eventsv2.Stage_STAGE_ENRICHED:
		return aggregate.StageEnriched
	case eventsv2.Stage_STAGE_VALIDATED:
		return aggregate.StageValidated
	case eventsv2.Stage_STAGE_SCORED:
		return aggregate.StageScored
	case eventsv2.Stage_STAGE_AWARDED:
		return aggregate.StageAwarded
	case eventsv2.Stage_STAGE_FAILED:
		return aggregate.StageFailed
	}
	return aggregate.Stage(name)
}

// --- times ---

func timePB(t *time.Time) *eventsv2.Time {
	if t == nil {
		return nil
	}
	_, off := t.Zone()
	return &eventsv2.Time{Seconds: t.Unix(), Nanos: int32(t.Nanosecond()), Offset: int32(off)}
}

// timeValue is a decoded Time message.
type timeValue struct {
	seconds       int64
	nanos, offset int32
}

func timePtr(m *eventsv2.Time) *time.Time {
	if m == nil {
		return nil
	}
	return (&timeValue{m.GetSeconds(), m.GetNanos(), m.GetOffset()}).time()
}

// time restores a time as a JSON round trip would: UTC for offset 0, else
// the local zone when it has that offset at that instant, else a fixed
// zone.
func (v *timeValue) time() *time.Time {
	if v == nil {
		return nil
	}
	t := v.value()
	return &t
}

func (v *timeValue) value() time.Time {
	t := time.Unix(v.seconds, int64(v.nanos))
	if off := int(v.offset); off == 0 {
		t = t.UTC()
	} else if l := t.Local(); zoneOffset(l) == off {
		t = l
	} else {
		t = t.In(time.FixedZone("", off))
	}
	return t
}

func zoneOffset(t time.Time) int { _, off := t.Zone(); return off }

// --- decimals ---

// decimalPB encodes d exactly: its coefficient and exponent, the
// coefficient as text when it does not fit in 64 bits.
func decimalPB(d decimal.Decimal) *eventsv2.Decimal {
	if d.NumDigits() <= 18 {
		// The coefficient fits in an int64: read it without copying it
		// (Coefficient does, into a new big.Int).
		return &eventsv2.Decimal{Unscaled: d.CoefficientInt64(), Exponent: d.Exponent()}
	}
	c := d.Coefficient()
	if c.IsInt64() {
		return &eventsv2.Decimal{Unscaled: c.Int64(), Exponent: d.Exponent()}
	}
	return &eventsv2.Decimal{Text: c.String() + "e" + strconv.FormatInt(int64(d.Exponent()), 10)}
}

func decimalPtrPB(d *decimal.Decimal) *eventsv2.Decimal {
	if d == nil {
		return nil
	}
	return decimalPB(*d)
}

// decimalValue decodes a decimal; an absent one is zero.
func decimalValue(m *eventsv2.Decimal) (decimal.Decimal, error) {
	if m == nil {
		return decimal.Decimal{}, nil
	}
	if t := m.GetText(); t != "" {
		mant, exp, ok := strings.Cut(t, "e")
		c, okc := new(big.Int).SetString(mant, 10)
		e, err := strconv.ParseInt(exp, 10, 32)
		if !ok || !okc || err != nil {
			return decimal.Decimal{}, fmt.Errorf("malformed decimal text %q", t)
		}
		return decimal.NewFromBigInt(c, int32(e)), nil
	}
	return decimal.New(m.GetUnscaled(), m.GetExponent()), nil
}

func decimalPtr(m *eventsv2.Decimal) (*decimal.Decimal, error) {
	if m == nil {
		return nil, nil
	}
	d, err := decimalValue(m)
	if err != nil {
		return nil, err
	}
	return &d, nil
}
