package privacy_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/privacy"
)

// seqLog is a privacy.ClaimLog in memory: events in position order.
type seqLog struct {
	mu     sync.Mutex
	events []eventstore.RecordedEvent
}

func (l *seqLog) append(body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := uint64(len(l.events) + 1)
	l.events = append(l.events, eventstore.RecordedEvent{Event: aggregate.Event{Body: body}, Position: eventstore.Position{Commit: p, Prepare: p}})
}

func (l *seqLog) Head(context.Context) (eventstore.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return eventstore.Start, nil
	}
	return l.events[len(l.events)-1].Position, nil
}

func (l *seqLog) ReadAll(_ context.Context, after eventstore.Position, limit int) ([]eventstore.RecordedEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []eventstore.RecordedEvent
	for _, e := range l.events {
		if after.Less(e.Position) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// pooled opens a Keyring with a key pool over the key file at path and
// log; its claims are committed only when asked (Forget, Close).
func pooled(t testing.TB, path string, kek *privacy.KEK, log privacy.ClaimLog) (*privacy.Keyring, *privacy.FileStore) {
	t.Helper()
	s, err := privacy.OpenFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := privacy.NewKeyring(context.Background(), s, []*privacy.KEK{kek}, privacy.Options{Log: log, PoolSize: 8, ClaimInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

func seal(t testing.TB, k *privacy.Key, text string) []byte {
	t.Helper()
	box, err := k.Seal(nil, privacy.PurposeBody, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func opens(t testing.TB, r *privacy.Keyring, box []byte, want string) {
	t.Helper()
	got, err := privacy.OpenWith(context.Background(), r, privacy.PurposeBody, box)
	if err != nil || string(got) != want {
		t.Fatalf("open: %q, %v; want %q", got, err, want)
	}
}

func current(t testing.TB, s privacy.Store, sub privacy.Subject) (privacy.KeyID, bool) {
	t.Helper()
	rec, ok, err := s.Current(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	return rec.ID, ok
}

// TestKeyPoolCrash: new subjects get pooled keys whose claims are only in
// memory; the process dies before committing them, after the log got
// events sealed under two of the three. The next start finds both claims
// in the log (the claim boxes), so forgetting a subject destroys the key
// its events are sealed under, and hands neither key to anyone else; the
// third key, under which nothing reached the log, sealed nothing durable.
func TestKeyPoolCrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	kek := newKEK(t)
	log := &seqLog{}
	alice, bob, carol := privacy.Subject{Source: "s", ID: "alice"}, privacy.Subject{Source: "s", ID: "bob"}, privacy.Subject{Source: "s", ID: "carol"}

	r, s := pooled(t, path, kek, log)
	ka, _ := r.SealKey(ctx, alice)
	kb, _ := r.SealKey(ctx, bob)
	kc, _ := r.SealKey(ctx, carol)
	if ka.ID == kb.ID || ka.ID == kc.ID || kb.ID == kc.ID {
		t.Fatal("two subjects share a pooled key")
	}
	if id, ok, _ := r.Current(ctx, alice); !ok || id != ka.ID {
		t.Fatal("Current does not see a claim not committed yet")
	}
	if _, ok := current(t, s, alice); ok {
		t.Fatal("the claim is in the key file before a commit (the test's premise)")
	}
	if again, _ := r.SealKey(ctx, alice); again.ID != ka.ID {
		t.Fatal("a second SealKey took another key")
	}
	boxA, boxB := seal(t, ka, "alice's body"), seal(t, kb, "bob's body")
	if len(boxA) <= len("alice's body")+privacy.BoxOverhead {
		t.Error("a box sealed before the claim is durable does not name its subject")
	}
	log.append([]byte("a clear body"))
	log.append(boxA)
	log.append(boxB)
	log.append(seal(t, ka, "alice again"))
	aliceWrapped, err := s.Get(ctx, ka.ID)
	if err != nil {
		t.Fatal(err)
	}
	r.Crash()

	r, s = pooled(t, path, kek, log)
	if id, ok := current(t, s, alice); !ok || id != ka.ID {
		t.Fatalf("Alice's key after the crash: %v %v, want %v", id, ok, ka.ID)
	}
	if id, ok := current(t, s, bob); !ok || id != kb.ID {
		t.Fatalf("Bob's key after the crash: %v %v, want %v", id, ok, kb.ID)
	}
	if _, ok := current(t, s, carol); ok {
		t.Fatal("Carol has a key after the crash though nothing was sealed for her")
	}
	opens(t, r, boxA, "alice's body")
	opens(t, r, boxB, "bob's body")
	for _, sub := range []privacy.Subject{carol, {Source: "s", ID: "dave"}, {Source: "s", ID: "erin"}} {
		k, err := r.SealKey(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		if k.ID == ka.ID || k.ID == kb.ID {
			t.Fatalf("%v got a key another subject's events are sealed under", sub)
		}
	}
	ids, _, err := r.Forget(ctx, alice)
	if err != nil || !slices.Equal(ids, []privacy.KeyID{ka.ID}) {
		t.Fatalf("Forget(alice) = %v, %v; want %v", ids, err, ka.ID)
	}
	if _, err := privacy.OpenWith(ctx, r, privacy.PurposeBody, boxA); !errors.Is(err, privacy.ErrForgotten) {
		t.Fatalf("Alice's body after Forget: %v", err)
	}
	opens(t, r, boxB, "bob's body")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, aliceWrapped.Wrapped[9:25]) {
		t.Fatal("the key file still holds Alice's wrapped key")
	}
}

// TestKeyPoolClose: Close commits the claims; a box sealed once the claim
// is durable is a plain box; the next start reads nothing to recover.
func TestKeyPoolClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	kek := newKEK(t)
	log := &seqLog{}
	alice := privacy.Subject{Source: "s", ID: "alice"}
	r, s := pooled(t, path, kek, log)
	ka, _ := r.SealKey(ctx, alice)
	log.append(seal(t, ka, "before"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if box := seal(t, ka, "after"); len(box) != len("after")+privacy.BoxOverhead {
		t.Errorf("a box sealed after the claim is durable is %d bytes, want %d", len(box), len("after")+privacy.BoxOverhead)
	}
	r, s = pooled(t, path, kek, log)
	defer r.Close()
	if id, ok := current(t, s, alice); !ok || id != ka.ID {
		t.Fatalf("Alice's key after Close: %v %v", id, ok)
	}
	opens(t, r, log.events[0].Body, "before")
	if k, _ := r.SealKey(ctx, alice); k.ID != ka.ID {
		t.Fatal("Alice got another key")
	}
}

// TestKeyPoolForgetPending: forgetting a subject whose claim is not
// committed yet destroys its key.
func TestKeyPoolForgetPending(t *testing.T) {
	ctx := context.Background()
	r, _ := pooled(t, filepath.Join(t.TempDir(), "keys.db"), newKEK(t), &seqLog{})
	defer r.Close()
	alice := privacy.Subject{Source: "s", ID: "alice"}
	ka, _ := r.SealKey(ctx, alice)
	box := seal(t, ka, "x")
	ids, _, err := r.Forget(ctx, alice)
	if err != nil || !slices.Equal(ids, []privacy.KeyID{ka.ID}) {
		t.Fatalf("Forget = %v, %v; want %v", ids, err, ka.ID)
	}
	if _, err := privacy.OpenWith(ctx, r, privacy.PurposeBody, box); !errors.Is(err, privacy.ErrForgotten) {
		t.Fatalf("open after Forget: %v", err)
	}
	if k, _ := r.SealKey(ctx, alice); k.ID == ka.ID {
		t.Fatal("a delivery after Forget sealed under the destroyed key")
	}
}

// TestKeyPoolCrashThenOtherKey: after a crash lost Alice's claim, a
// keyring without the log (receiptd privacy seal) gives her a key of its
// own before the server starts again; the recovery then keeps both as
// hers, and forgetting her destroys both.
func TestKeyPoolCrashThenOtherKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	kek := newKEK(t)
	log := &seqLog{}
	alice := privacy.Subject{Source: "s", ID: "alice"}
	r, _ := pooled(t, path, kek, log)
	ka, _ := r.SealKey(ctx, alice)
	box := seal(t, ka, "pooled")
	log.append(box)
	r.Crash()

	s, err := privacy.OpenFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := plain.SealKey(ctx, alice)
	if k2.ID == ka.ID {
		t.Fatal("the premise: a key of its own")
	}
	box2 := seal(t, k2, "own")
	plain.Close()

	r, _ = pooled(t, path, kek, log)
	defer r.Close()
	opens(t, r, box, "pooled")
	opens(t, r, box2, "own")
	ids, _, err := r.Forget(ctx, alice)
	slices.SortFunc(ids, func(a, b privacy.KeyID) int { return bytes.Compare(a[:], b[:]) })
	want := []privacy.KeyID{ka.ID, k2.ID}
	slices.SortFunc(want, func(a, b privacy.KeyID) int { return bytes.Compare(a[:], b[:]) })
	if err != nil || !slices.Equal(ids, want) {
		t.Fatalf("Forget = %v, %v; want %v", ids, err, want)
	}
	for _, b := range [][]byte{box, box2} {
		if _, err := privacy.OpenWith(ctx, r, privacy.PurposeBody, b); !errors.Is(err, privacy.ErrForgotten) {
			t.Fatalf("open after Forget: %v", err)
		}
	}
}

// TestKeyPoolCrashAfterCommit: Alice's claim is committed (with the log's
// head at the time), Bob's is not when the process dies; Bob's event
// comes after the recorded head, so the next start reads it and finds
// his claim; Alice's events, before and after the commit, open.
func TestKeyPoolCrashAfterCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	kek := newKEK(t)
	log := &seqLog{}
	alice, bob := privacy.Subject{Source: "s", ID: "alice"}, privacy.Subject{Source: "s", ID: "bob"}
	r, s := pooled(t, path, kek, log)
	ka, _ := r.SealKey(ctx, alice)
	log.append(seal(t, ka, "alice 1"))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if id, ok := current(t, s, alice); !ok || id != ka.ID {
		t.Fatal("Alice's claim is not committed by Flush")
	}
	kb, _ := r.SealKey(ctx, bob)
	log.append(seal(t, kb, "bob 1"))
	log.append(seal(t, ka, "alice 2"))
	r.Crash()

	r, s = pooled(t, path, kek, log)
	defer r.Close()
	if id, ok := current(t, s, bob); !ok || id != kb.ID {
		t.Fatalf("Bob's key after the crash: %v %v, want %v", id, ok, kb.ID)
	}
	for i, want := range []string{"alice 1", "bob 1", "alice 2"} {
		opens(t, r, log.events[i].Body, want)
	}
	ids, _, err := r.Forget(ctx, bob)
	if err != nil || !slices.Equal(ids, []privacy.KeyID{kb.ID}) {
		t.Fatalf("Forget(bob) = %v, %v; want %v", ids, err, kb.ID)
	}
	opens(t, r, log.events[0].Body, "alice 1")
}
