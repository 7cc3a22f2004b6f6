package esdb_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/esdb"
	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
	"github.com/receiptd/receiptd/privacy"
)

// TestTombstone: a tombstoned stream reads, and refuses appends, as
// eventstore.ErrStreamDeleted; a second tombstone too.
func TestTombstone(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{NoSystemEvents: true})
	s := open(t, d.URL(), esdb.Options{})
	ctx := context.Background()
	ev := func() aggregate.Event {
		return aggregate.Event{ID: uuid.NewString(), Type: "test.v1", Data: []byte(`{}`), Metadata: []byte(`{}`)}
	}
	if _, err := s.Append(ctx, "storetest-x.gone", eventstore.NoStream, ev()); err != nil {
		t.Fatal(err)
	}
	if err := s.Tombstone(ctx, "storetest-x.gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStream(ctx, "storetest-x.gone", 0, 0); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Fatalf("read a tombstoned stream: %v, want ErrStreamDeleted", err)
	}
	if _, err := s.Append(ctx, "storetest-x.gone", eventstore.Any, ev()); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Fatalf("append to a tombstoned stream: %v, want ErrStreamDeleted", err)
	}
	if err := s.Tombstone(ctx, "storetest-x.gone"); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Fatalf("tombstone twice: %v, want ErrStreamDeleted", err)
	}
	if err := s.Tombstone(ctx, "$system"); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("tombstone a system stream: %v, want ErrInvalid", err)
	}
}

// TestPrivacyKeyStore: the privacy key store on KurrentDB (through the
// double): two nodes share the keys; a forget on one tombstones the key's
// stream, after which both answer ErrForgotten for it (the other once its
// cache is rechecked, here at once) and a new key is made for the subject;
// the key streams never show in the Store's reads of $all.
func TestPrivacyKeyStore(t *testing.T) {
	d := startDouble(t, esdbdouble.Options{NoSystemEvents: true})
	ctx := context.Background()
	kek, err := privacy.ParseKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	node := func() (*esdb.Store, *privacy.Keyring) {
		s := open(t, d.URL(), esdb.Options{})
		r, err := privacy.NewKeyring(ctx, privacy.NewStreamStore(s), []*privacy.KEK{kek}, privacy.Options{Recheck: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s, r
	}
	s1, a := node()
	_, b := node()
	if a.Pseudonym("email", "x@y") != b.Pseudonym("email", "x@y") {
		t.Fatal("two nodes hold two peppers")
	}
	sub := privacy.Subject{Source: "reewild", ID: "027KO2"}
	k, err := a.SealKey(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.SealKey(ctx, sub)
	if err != nil || kb.ID != k.ID {
		t.Fatalf("the other node's key: %v %v, want %s", kb, err, k.ID)
	}
	box, _ := k.Seal(nil, privacy.PurposeFields, []byte("user@example.com"))
	if _, err := privacy.OpenWith(ctx, b, privacy.PurposeFields, box); err != nil {
		t.Fatal(err)
	}
	ids, _, err := a.Forget(ctx, sub)
	if err != nil || len(ids) != 1 || ids[0] != k.ID {
		t.Fatalf("Forget: %v %v", ids, err)
	}
	for name, r := range map[string]*privacy.Keyring{"a": a, "b": b} {
		if _, err := privacy.OpenWith(ctx, r, privacy.PurposeFields, box); !errors.Is(err, privacy.ErrForgotten) {
			t.Errorf("node %s opens a forgotten value: %v", name, err)
		}
	}
	if evs := d.StreamEvents(privacy.KeyStream(k.ID)); len(evs) != 2 || evs[1].Type != "$streamDeleted" {
		t.Fatalf("the key's stream after the forget: %+v", evs)
	}
	k2, err := b.SealKey(ctx, sub)
	if err != nil || k2.ID == k.ID {
		t.Fatalf("a key after the forget: %v %v, want a fresh one", k2, err)
	}
	if at, err := b.Forgotten(ctx, sub); err != nil || at.IsZero() {
		t.Fatalf("Forgotten on the other node: %v %v", at, err)
	}
	all, err := s1.ReadAll(ctx, eventstore.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		t.Errorf("the Store's $all shows %s %s: the key streams must stay out of receiptd's reads", e.Stream, e.Type)
	}
}
