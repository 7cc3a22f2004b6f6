package eventcodec

import (
	"context"
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
	if !isV2(e.Type) || !privacy.IsSealed(e.Body) {
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
