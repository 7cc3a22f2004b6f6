package eventcodec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/privacy"
)

func newKeyring(t *testing.T) *privacy.Keyring {
	t.Helper()
	s, err := privacy.OpenFileStore(filepath.Join(t.TempDir(), "keys.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := privacy.ParseKEK(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	r, err := privacy.NewKeyring(context.Background(), s, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// personalFacts: a user.enrolled with an e-mail and an entity event with
// personal and other attributes, beside every other fact.
func personalFacts(t *testing.T) []testFact {
	body := []byte(`{"customer":{"id":4821,"name":"Sara Al-Harbi","phone":"0551234567","email":"sara@example.com"},"x":"` + string(bytes.Repeat([]byte("y"), 200)) + `"}`)
	h := sha(body)
	meta := aggregate.Metadata{Source: "retm", ReceivedAt: receivedAt, Scheme: "bearer", BodySHA256: h, DedupeKey: "d:" + h, CorrelationID: "x", CausationID: "x"}
	entity := testFact{
		name: "customer", id: "aaaaaaaa-2222-5333-8444-555555555555", body: body, meta: meta,
		fact: aggregate.Fact{Stream: "customer-retm.4821", Type: aggregate.TypeEntityEventRecorded, DedupeKey: "d:" + h, Data: aggregate.EntityEventRecorded{
			Source: "retm", Kind: "customer", EntityID: "4821", EventType: "customer.created", Status: "created",
			Attributes: map[string]string{"name": "Sara Al-Harbi", "phone": "0551234567", "email": "sara@example.com", "reference": "ref-1"},
			BodySHA256: h,
		}},
	}
	return append(allFacts(t), entity)
}

var personalAttributes = []string{"name", "name_localized", "phone", "email"}

// TestSealed: an event encoded with a key holds neither its raw body nor
// its personal fields in the clear; the decoders return everything else as
// the clear encoding does (and no error); the key opens the rest exactly;
// once the key is destroyed they read as forgotten, never as a failure.
func TestSealed(t *testing.T) {
	ctx := context.Background()
	ring := newKeyring(t)
	sub := privacy.Subject{Source: "s", ID: "subject-1"}
	key, err := ring.SealKey(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	type sealedEvent struct {
		f testFact
		e aggregate.Event
	}
	var events []sealedEvent
	for _, f := range personalFacts(t) {
		before := maps.Clone(attributes(f.fact.Data))
		clearEv, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
		if err != nil {
			t.Fatal(err)
		}
		e, err := eventcodec.EncodeSealed(f.id, f.fact, f.meta, f.body, eventcodec.Sealing{Key: key, Attributes: personalAttributes})
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if !reflect.DeepEqual(attributes(f.fact.Data), before) {
			t.Fatalf("%s: EncodeSealed changed the fact's attributes", f.name)
		}
		if e.Type != clearEv.Type || e.ID != clearEv.ID || !bytes.Equal(e.Metadata, clearEv.Metadata) {
			t.Fatalf("%s: type, id or metadata differ from the clear encoding", f.name)
		}
		for _, secret := range secretsOf(f) {
			for what, b := range map[string][]byte{"data": e.Data, "metadata": e.Metadata, "body": e.Body} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: %s holds %q in the clear", f.name, what, secret)
				}
			}
		}
		if f.body != nil && !privacy.IsSealed(e.Body) {
			t.Errorf("%s: body not sealed", f.name)
		}
		if _, err := eventcodec.RawBody(e); f.body != nil && !errors.Is(err, eventcodec.ErrSealed) {
			t.Errorf("%s: RawBody of a sealed body: %v, want ErrSealed", f.name, err)
		}
		if ids := eventcodec.SealedKeys(e); f.body != nil && (len(ids) != 1 || ids[0] != key.ID) {
			t.Errorf("%s: SealedKeys %v, want [%s]", f.name, ids, key.ID)
		}
		if eventcodec.IsSealed(clearEv) {
			t.Errorf("%s: the clear encoding reads as sealed", f.name)
		}

		// Decoding: the clear fields as the clear encoding gives them.
		gotClear, err := decode(clearEv)
		if err != nil {
			t.Fatal(err)
		}
		gotSealed, err := decode(e)
		if err != nil {
			t.Fatalf("%s: decode sealed: %v", f.name, err)
		}
		opened := openFields(t, ring, gotSealed)
		if g, w := canonical(t, opened), canonical(t, gotClear); g != w {
			t.Errorf("%s: sealed, decoded and opened\n got %s\nwant %s", f.name, g, w)
		}
		raw, forgotten, err := eventcodec.OpenRawBody(ctx, ring, e)
		if err != nil || forgotten || !bytes.Equal(raw, f.body) {
			t.Fatalf("%s: OpenRawBody: %q %v %v", f.name, raw, forgotten, err)
		}
		events = append(events, sealedEvent{f, e})
	}

	if _, _, err := ring.Forget(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for _, se := range events {
		raw, forgotten, err := eventcodec.OpenRawBody(ctx, ring, se.e)
		if se.f.body != nil && (err != nil || !forgotten || raw != nil) {
			t.Errorf("%s: OpenRawBody after forgetting: %q %v %v; want forgotten", se.f.name, raw, forgotten, err)
		}
		got, err := decode(se.e)
		if err != nil {
			t.Fatalf("%s: decode after forgetting: %v", se.f.name, err)
		}
		if s := sealedOf(got); s != nil {
			p, forgotten, err := eventcodec.OpenPersonal(ctx, ring, s)
			if err != nil || !forgotten || p.Email != "" || p.Attributes != nil {
				t.Errorf("%s: OpenPersonal after forgetting: %+v %v %v", se.f.name, p, forgotten, err)
			}
		}
		if _, err := eventcodec.Metadata(se.e); err != nil {
			t.Errorf("%s: metadata after forgetting: %v", se.f.name, err)
		}
	}
}

// TestEncodeSealedWithoutKey: no key, the bytes of Encode.
func TestEncodeSealedWithoutKey(t *testing.T) {
	for _, f := range personalFacts(t) {
		a, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
		if err != nil {
			t.Fatal(err)
		}
		b, err := eventcodec.EncodeSealed(f.id, f.fact, f.meta, f.body, eventcodec.Sealing{Attributes: personalAttributes})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: EncodeSealed without a key differs from Encode", f.name)
		}
	}
}

func attributes(data any) map[string]string {
	switch x := data.(type) {
	case aggregate.EntityEventRecorded:
		return x.Attributes
	case *aggregate.EntityEventRecorded:
		return x.Attributes
	}
	return nil
}

// secretsOf are the personal values of a fact: its e-mail, its personal
// attributes, and a stretch of its raw body.
func secretsOf(f testFact) []string {
	var out []string
	switch x := f.fact.Data.(type) {
	case aggregate.UserEnrolled:
		if x.Email != "" {
			out = append(out, x.Email)
		}
	case aggregate.EntityEventRecorded:
		for _, k := range personalAttributes {
			if v := x.Attributes[k]; v != "" {
				out = append(out, v)
			}
		}
	}
	if len(f.body) >= 48 {
		out = append(out, string(f.body[16:48]))
	}
	return out
}

func sealedOf(v any) []byte {
	switch x := v.(type) {
	case aggregate.UserEnrolled:
		return x.Sealed
	case aggregate.EntityEventRecorded:
		return x.Sealed
	}
	return nil
}

// openFields opens a decoded payload's sealed fields back into it.
func openFields(t *testing.T, o privacy.Opener, v any) any {
	t.Helper()
	p, forgotten, err := eventcodec.OpenPersonal(context.Background(), o, sealedOf(v))
	if err != nil || forgotten {
		t.Fatalf("OpenPersonal: %v %v", forgotten, err)
	}
	switch x := v.(type) {
	case aggregate.UserEnrolled:
		x.Sealed = nil
		if p.Email != "" {
			x.Email = p.Email
		}
		return x
	case aggregate.EntityEventRecorded:
		x.Sealed = nil
		if len(p.Attributes) > 0 {
			if x.Attributes == nil {
				x.Attributes = map[string]string{}
			}
			maps.Copy(x.Attributes, p.Attributes)
		}
		return x
	}
	return v
}

// goldenEvents reads the stored events of a golden file.
func goldenEvents(t *testing.T, file string) []aggregate.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var golden []goldenEvent
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	out := make([]aggregate.Event, 0, len(golden))
	for _, g := range golden {
		out = append(out, g.event())
	}
	return out
}

// TestSealEventInPlace: an existing event of either version, sealed in
// place (receiptd privacy seal), keeps its id, type and metadata, decodes
// to the same clear fields, opens to the same personal fields and raw
// body, holds none of them in the clear, and reads as forgotten once the
// key is gone. Sealing twice changes nothing.
func TestSealEventInPlace(t *testing.T) {
	ctx := context.Background()
	ring := newKeyring(t)
	sub := privacy.Subject{Source: "s", ID: "in-place"}
	key, err := ring.SealKey(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []aggregate.Event
	// The golden logs, and a customer with personal attributes in both
	// versions.
	pf := personalFacts(t)
	customer := pf[len(pf)-1]
	v2customer, err := eventcodec.Encode(customer.id, customer.fact, customer.meta, customer.body)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string][]aggregate.Event{
		"v1_log.json":    goldenEvents(t, "v1_log.json"),
		"golden_v2.json": goldenEvents(t, "golden_v2.json"),
		"customer":       {v1Event(t, customer), v2customer},
	}
	for _, file := range []string{"v1_log.json", "golden_v2.json", "customer"} {
		for _, e := range logs[file] {
			if eventcodec.IsSealed(e) {
				t.Fatalf("%s %s: sealed before sealing", file, e.ID)
			}
			s, err := eventcodec.SealEvent(e, eventcodec.Sealing{Key: key, Attributes: personalAttributes})
			if err != nil {
				t.Fatalf("%s %s: %v", file, e.ID, err)
			}
			if s.ID != e.ID || s.Type != e.Type || !bytes.Equal(s.Metadata, e.Metadata) {
				t.Fatalf("%s %s: id, type or metadata changed", file, e.ID)
			}
			want, err := decode(e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decode(s)
			if err != nil {
				t.Fatalf("%s %s: decode sealed: %v", file, e.ID, err)
			}
			if g, w := canonical(t, openFields(t, ring, got)), canonical(t, want); g != w {
				t.Errorf("%s %s:\n got %s\nwant %s", file, e.ID, g, w)
			}
			raw, err := eventcodec.RawBody(e)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > 0 {
				opened, forgotten, err := eventcodec.OpenRawBody(ctx, ring, s)
				if err != nil || forgotten || !bytes.Equal(opened, raw) {
					t.Fatalf("%s %s: OpenRawBody %q %v %v, want %q", file, e.ID, opened, forgotten, err, raw)
				}
				if _, err := eventcodec.RawBody(s); !errors.Is(err, eventcodec.ErrSealed) {
					t.Errorf("%s %s: RawBody of the sealed event: %v", file, e.ID, err)
				}
				if bytes.Contains(s.Data, raw[:min(len(raw), 40)]) || bytes.Contains(s.Body, raw[:min(len(raw), 40)]) {
					t.Errorf("%s %s: the raw body is still in the clear", file, e.ID)
				}
				if ids := eventcodec.SealedKeys(s); len(ids) == 0 || ids[0] != key.ID {
					t.Errorf("%s %s: SealedKeys %v", file, e.ID, ids)
				}
			}
			if f, ok := want.(aggregate.UserEnrolled); ok && f.Email != "" && bytes.Contains(s.Data, []byte(f.Email)) {
				t.Errorf("%s %s: the e-mail is still in the clear", file, e.ID)
			}
			if f, ok := want.(aggregate.EntityEventRecorded); ok {
				for _, a := range personalAttributes {
					if v := f.Attributes[a]; v != "" && bytes.Contains(s.Data, []byte(v)) {
						t.Errorf("%s %s: attribute %s is still in the clear", file, e.ID, a)
					}
				}
			}
			again, err := eventcodec.SealEvent(s, eventcodec.Sealing{Key: key})
			if err != nil || !reflect.DeepEqual(again, s) && eventcodec.IsSealed(s) {
				t.Errorf("%s %s: sealing twice changed it: %v", file, e.ID, err)
			}
			sealed = append(sealed, s)
		}
	}
	if _, _, err := ring.Forget(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for _, s := range sealed {
		if _, err := decode(s); err != nil {
			t.Errorf("%s: decode after forgetting: %v", s.ID, err)
		}
		if raw, forgotten, err := eventcodec.OpenRawBody(ctx, ring, s); eventcodec.IsSealed(s) && (err != nil || raw != nil || !forgotten) {
			t.Errorf("%s: OpenRawBody after forgetting: %q %v %v", s.ID, raw, forgotten, err)
		}
	}
}
