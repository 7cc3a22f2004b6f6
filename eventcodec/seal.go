package eventcodec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/receiptd/receiptd/aggregate"
	eventsv2 "github.com/receiptd/receiptd/gen/go/receiptd/events/v2"
	"github.com/receiptd/receiptd/privacy"
	"google.golang.org/protobuf/proto"
)

// ErrSealed: RawBody was asked for a body sealed under a subject's data
// key; OpenRawBody opens it.
var ErrSealed = errors.New("eventcodec: sealed under a subject's data key")

// Sealing says what EncodeSealed seals, and under which key: the event's
// raw body always, and the personal fields of its payload (a
// user.enrolled's email; an entity event's Attributes named here). The
// rest of the payload — ids, amounts, points, CO2e, statuses, stages —
// stays in the clear, so that every read model and audit works on a log
// whose keys were destroyed.
type Sealing struct {
	// Key is the subject's data key; nil seals nothing.
	Key *privacy.Key
	// Attributes are the names of an EntityEventRecorded's attributes
	// that are personal data.
	Attributes []string
}

// sealFields moves the personal fields of m into its sealed field.
func sealFields(m proto.Message, s Sealing) error {
	var (
		personal eventsv2.Personal
		target   *[]byte
	)
	switch x := m.(type) {
	case *eventsv2.UserEnrolled:
		personal.Email, x.Email = x.Email, ""
		target = &x.Sealed
	case *eventsv2.EntityEventRecorded:
		var clearAttrs map[string]string
		for k, v := range x.Attributes {
			if slices.Contains(s.Attributes, k) {
				if personal.Attributes == nil {
					personal.Attributes = map[string]string{}
				}
				personal.Attributes[k] = v
				continue
			}
			if clearAttrs == nil {
				clearAttrs = map[string]string{}
			}
			clearAttrs[k] = v
		}
		x.Attributes = clearAttrs // a new map: the fact's own stays as it was
		target = &x.Sealed
	default:
		return nil
	}
	if personal.Email == "" && len(personal.Attributes) == 0 {
		return nil
	}
	plain, err := marshalValid(&personal)
	if err != nil {
		return err
	}
	*target, err = s.Key.Seal(nil, privacy.PurposeFields, plain)
	return err
}

// Personal is what a payload's sealed field holds, opened.
type Personal struct {
	// Email is a user.enrolled's email.
	Email string
	// Attributes are an entity event's personal attributes.
	Attributes map[string]string
}

// OpenPersonal opens a payload's sealed field (aggregate.UserEnrolled's
// or EntityEventRecorded's Sealed) with the key it names. forgotten is
// true, with a zero Personal and a nil error, when that key was destroyed:
// the subject was forgotten, which is no failure. An empty sealed opens
// to nothing.
func OpenPersonal(ctx context.Context, o privacy.Opener, sealed []byte) (p Personal, forgotten bool, err error) {
	if len(sealed) == 0 {
		return Personal{}, false, nil
	}
	plain, err := privacy.OpenWith(ctx, o, privacy.PurposeFields, sealed)
	if errors.Is(err, privacy.ErrForgotten) {
		return Personal{}, true, nil
	}
	if err != nil {
		return Personal{}, false, fmt.Errorf("eventcodec: open personal fields: %w", err)
	}
	var m eventsv2.Personal
	if err := proto.Unmarshal(plain, &m); err != nil {
		return Personal{}, false, fmt.Errorf("eventcodec: open personal fields: %w: %w", aggregate.ErrBadEvent, err)
	}
	return Personal{Email: m.GetEmail(), Attributes: m.GetAttributes()}, false, nil
}

// OpenRawBody is RawBody for an event whose body may be sealed: a sealed
// one is opened with the key it names. forgotten is true, with a nil body
// and a nil error, when that key was destroyed.
func OpenRawBody(ctx context.Context, o privacy.Opener, e aggregate.Event) (raw []byte, forgotten bool, err error) {
	if !isV2(e.Type) {
		box, _ := v1Sealed(e)
		if box == nil {
			raw, err := RawBody(e)
			return raw, false, err
		}
		frame, err := privacy.OpenWith(ctx, o, privacy.PurposeBody, box)
		if errors.Is(err, privacy.ErrForgotten) {
			return nil, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("eventcodec: raw body of %s event %s: %w", e.Type, e.ID, err)
		}
		// v1 kept the body compacted: no SHA-256 to check it against.
		if raw, err = decompress(frame); err != nil {
			return nil, false, badEvent(e, "body", err)
		}
		return raw, false, nil
	}
	if !privacy.IsSealed(e.Body) {
		raw, err := RawBody(e)
		return raw, false, err
	}
	frame, err := privacy.OpenWith(ctx, o, privacy.PurposeBody, e.Body)
	if errors.Is(err, privacy.ErrForgotten) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("eventcodec: raw body of %s event %s: %w", e.Type, e.ID, err)
	}
	raw, err = openedBody(e, frame)
	return raw, false, err
}

// SealedKeys returns the ids of the data keys e's body and payload are
// sealed under (none for an event sealed with nothing). It reads only
// the body's first bytes and the payload's sealed field.
func SealedKeys(e aggregate.Event) []privacy.KeyID {
	var ids []privacy.KeyID
	if isV2(e.Type) {
		if id, ok := privacy.SealedKeyID(e.Body); ok {
			ids = append(ids, id)
		}
	} else {
		raw, fields := v1Sealed(e)
		for _, b := range [][]byte{raw, fields} {
			if id, ok := privacy.SealedKeyID(b); ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	var sealed []byte
	switch e.Type {
	case aggregate.TypeUserEnrolledV2:
		var f aggregate.UserEnrolled
		if decodeUserEnrolledWire(e.Data, e.Metadata, &f) == nil {
			sealed = f.Sealed
		}
	case aggregate.TypeEntityEventRecordedV2:
		var m eventsv2.EntityEventRecorded
		if proto.Unmarshal(e.Data, &m) == nil {
			sealed = m.GetSealed()
		}
	}
	if id, ok := privacy.SealedKeyID(sealed); ok && !slices.Contains(ids, id) {
		ids = append(ids, id)
	}
	return ids
}

// IsSealed reports whether anything of e is sealed.
func IsSealed(e aggregate.Event) bool { return len(SealedKeys(e)) > 0 }

// SealEvent returns e with what Sealing says sealed, the same event
// otherwise: same id and type, same metadata; the payload's clear fields
// decode to what they did. It is how an existing log is sealed in place
// (receiptd privacy seal). A v2 event is encoded again with EncodeSealed
// from its decoded fact and raw body (the encoding is a function of them,
// so the clear bytes come out as they were). A v1 event stays v1 JSON:
// data.raw becomes data.raw_sealed (the compacted body v1 stored,
// zstd-compressed and sealed) and the personal fields move into
// data.sealed. An event already sealed, or of a type that holds no
// provider body, is returned as it is.
func SealEvent(e aggregate.Event, s Sealing) (aggregate.Event, error) {
	if s.Key == nil || IsSealed(e) {
		return e, nil
	}
	fail := func(err error) (aggregate.Event, error) {
		return aggregate.Event{}, fmt.Errorf("eventcodec: seal %s event %s: %w", e.Type, e.ID, err)
	}
	var fact any
	var err error
	switch Kind(e.Type) {
	case aggregate.TypeReceiptStageRecorded:
		fact, err = StageRecorded(e)
	case aggregate.TypeUserEnrolled:
		fact, err = UserEnrolled(e)
	case aggregate.TypeDeliveryQuarantined:
		fact, err = Quarantined(e)
	case aggregate.TypeUserPointsCredited:
		fact, err = PointsCredited(e)
	case aggregate.TypeEntityEventRecorded:
		fact, err = EntityEventRecorded(e)
	default:
		return e, nil
	}
	if err != nil {
		return fail(err)
	}
	raw, err := RawBody(e)
	if err != nil {
		return fail(err)
	}
	if isV2(e.Type) {
		meta, err := Metadata(e)
		if err != nil {
			return fail(err)
		}
		out, err := EncodeSealed(e.ID, aggregate.Fact{Type: Kind(e.Type), Data: fact}, meta, raw, s)
		if err != nil {
			return fail(err)
		}
		return out, nil
	}
	return sealV1(e, fact, raw, s)
}

// sealV1 seals a v1 JSON event in place.
func sealV1(e aggregate.Event, fact any, raw []byte, s Sealing) (aggregate.Event, error) {
	fail := func(err error) (aggregate.Event, error) {
		return aggregate.Event{}, fmt.Errorf("eventcodec: seal %s event %s: %w", e.Type, e.ID, err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return fail(err)
	}
	var personal eventsv2.Personal
	switch f := fact.(type) {
	case aggregate.UserEnrolled:
		personal.Email = f.Email
		delete(data, "email")
	case aggregate.EntityEventRecorded:
		clearAttrs := map[string]string{}
		for k, v := range f.Attributes {
			if slices.Contains(s.Attributes, k) {
				if personal.Attributes == nil {
					personal.Attributes = map[string]string{}
				}
				personal.Attributes[k] = v
			} else {
				clearAttrs[k] = v
			}
		}
		if personal.Attributes != nil {
			if len(clearAttrs) == 0 {
				delete(data, "attributes")
			} else if b, err := json.Marshal(clearAttrs); err == nil {
				data["attributes"] = b
			} else {
				return fail(err)
			}
		}
	}
	if personal.Email != "" || len(personal.Attributes) > 0 {
		plain, err := marshalValid(&personal)
		if err != nil {
			return fail(err)
		}
		box, err := s.Key.Seal(nil, privacy.PurposeFields, plain)
		if err != nil {
			return fail(err)
		}
		if data["sealed"], err = json.Marshal(box); err != nil {
			return fail(err)
		}
	}
	delete(data, "raw")
	if len(raw) > 0 {
		frame, err := compress(raw)
		if err != nil {
			return fail(err)
		}
		box, err := s.Key.Seal(nil, privacy.PurposeBody, frame)
		if err != nil {
			return fail(err)
		}
		if data[v1RawSealed], err = json.Marshal(box); err != nil {
			return fail(err)
		}
	}
	out := e
	var err error
	if out.Data, err = json.Marshal(data); err != nil {
		return fail(err)
	}
	return out, nil
}

// v1RawSealed is the v1 data field of a sealed raw body.
const v1RawSealed = "raw_sealed"

// v1Sealed reads the sealed boxes of a v1 event: its raw body's and its
// personal fields'.
func v1Sealed(e aggregate.Event) (rawBox, fields []byte) {
	if !bytes.Contains(e.Data, []byte(`"raw_sealed"`)) && !bytes.Contains(e.Data, []byte(`"sealed"`)) {
		return nil, nil
	}
	var d struct {
		Raw    []byte `json:"raw_sealed"`
		Sealed []byte `json:"sealed"`
	}
	if json.Unmarshal(e.Data, &d) != nil {
		return nil, nil
	}
	return d.Raw, d.Sealed
}
