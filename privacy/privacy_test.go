package privacy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/privacy"
)

func newKEK(t testing.TB) *privacy.KEK {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	k, err := privacy.ParseKEK([]byte(hex.EncodeToString(b)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	forms := map[string][]byte{
		"raw":       raw,
		"hex":       []byte(hex.EncodeToString(raw)),
		"hex upper": bytes.ToUpper([]byte(hex.EncodeToString(raw))),
		"base64":    []byte(base64.StdEncoding.EncodeToString(raw)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(raw)),
		"newline":   []byte(hex.EncodeToString(raw) + "\n"),
	}
	var fp string
	for name, v := range forms {
		k, err := privacy.ParseKEK(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fp == "" {
			fp = k.Fingerprint()
		} else if k.Fingerprint() != fp {
			t.Errorf("%s: fingerprint %s, want %s (one key, several spellings)", name, k.Fingerprint(), fp)
		}
	}
	for name, v := range map[string][]byte{
		"short":        []byte("too short"),
		"31 bytes":     bytes.Repeat([]byte{1}, 31),
		"hex 62":       []byte(hex.EncodeToString(raw[:31])),
		"base64 of 16": []byte(base64.StdEncoding.EncodeToString(raw[:16])),
		"passphrase":   []byte("correct horse battery staple, but not 32 bytes"),
	} {
		_, err := privacy.ParseKEK(v)
		if !errors.Is(err, privacy.ErrBadKEK) {
			t.Errorf("%s: %v, want ErrBadKEK", name, err)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), v) {
			t.Errorf("%s: the error holds the value: %v", name, err)
		}
	}
}

// memLog is a Log in memory, with tombstones as KurrentDB has them.
type memLog struct {
	mu      sync.Mutex
	streams map[string][]eventstore.RecordedEvent
	deleted map[string]bool
	pos     uint64
}

func newMemLog() *memLog {
	return &memLog{streams: map[string][]eventstore.RecordedEvent{}, deleted: map[string]bool{}}
}

func (l *memLog) Append(_ context.Context, stream string, expected eventstore.ExpectedRevision, events ...aggregate.Event) (eventstore.AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.deleted[stream] {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, eventstore.ErrStreamDeleted)
	}
	cur := l.streams[stream]
	actual := eventstore.ExpectedAfter(cur)
	if expected != eventstore.Any && expected != actual {
		return eventstore.AppendResult{}, &eventstore.WrongRevisionError{Stream: stream, Expected: expected, Actual: actual}
	}
	for _, e := range events {
		l.pos++
		cur = append(cur, eventstore.RecordedEvent{Event: e, Stream: stream, Revision: uint64(len(cur)), Position: eventstore.Position{Commit: l.pos, Prepare: l.pos}})
	}
	l.streams[stream] = cur
	return eventstore.AppendResult{NextRevision: uint64(len(cur) - 1)}, nil
}

func (l *memLog) ReadStream(_ context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.deleted[stream] {
		return nil, fmt.Errorf("read %s: %w", stream, eventstore.ErrStreamDeleted)
	}
	var out []eventstore.RecordedEvent
	for _, e := range l.streams[stream] {
		if e.Revision >= from && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *memLog) Tombstone(_ context.Context, stream string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.deleted[stream] {
		return fmt.Errorf("tombstone %s: %w", stream, eventstore.ErrStreamDeleted)
	}
	l.deleted[stream] = true
	delete(l.streams, stream)
	return nil
}

// stores are the Store implementations every store test runs on; open
// opens the same store again (a restart, or another node).
var stores = []struct {
	name string
	make func(t *testing.T) (open func() privacy.Store)
}{
	{"file", func(t *testing.T) func() privacy.Store {
		path := filepath.Join(t.TempDir(), "keys.db")
		return func() privacy.Store {
			s, err := privacy.OpenFileStore(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}},
	{"stream", func(t *testing.T) func() privacy.Store {
		log := newMemLog()
		return func() privacy.Store { return privacy.NewStreamStore(log) }
	}},
}

func TestStores(t *testing.T) {
	ctx := context.Background()
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			open := st.make(t)
			kek := newKEK(t)
			s := open()
			r, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{kek}, privacy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			alice := privacy.Subject{Source: "reewild", ID: "027KO2"}
			bob := privacy.Subject{Source: "reewild", ID: "bob"}

			k1, err := r.SealKey(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			again, err := r.SealKey(ctx, alice)
			if err != nil || again.ID != k1.ID {
				t.Fatalf("second SealKey: %v, %v; want the same key %s", again, err, k1.ID)
			}
			kb, err := r.SealKey(ctx, bob)
			if err != nil || kb.ID == k1.ID {
				t.Fatalf("bob's key: %v, %v; want another key than alice's", kb, err)
			}
			box, err := k1.Seal(nil, privacy.PurposeFields, []byte("alice@example.com"))
			if err != nil {
				t.Fatal(err)
			}
			pseudonym := r.Pseudonym("email", "Alice@Example.com ")
			if pseudonym != r.Pseudonym("email", "alice@example.com") || !privacy.IsPseudonym(pseudonym) {
				t.Errorf("pseudonym %q: want one id whatever the case and spaces", pseudonym)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}

			// Reopened (a restart, or another node): same keys, same pepper.
			r2, err := privacy.NewKeyring(ctx, open(), []*privacy.KEK{kek}, privacy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			if got := r2.Pseudonym("email", "alice@example.com"); got != pseudonym {
				t.Errorf("pseudonym after reopening %q, want %q", got, pseudonym)
			}
			plain, err := privacy.OpenWith(ctx, r2, privacy.PurposeFields, box)
			if err != nil || string(plain) != "alice@example.com" {
				t.Fatalf("open after reopening: %q, %v", plain, err)
			}
			if at, err := r2.Forgotten(ctx, alice); err != nil || !at.IsZero() {
				t.Fatalf("Forgotten before forgetting: %v, %v", at, err)
			}

			ids, at, err := r2.Forget(ctx, alice)
			if err != nil || len(ids) != 1 || ids[0] != k1.ID {
				t.Fatalf("Forget: %v, %v; want [%s]", ids, err, k1.ID)
			}
			if _, err := privacy.OpenWith(ctx, r2, privacy.PurposeFields, box); !errors.Is(err, privacy.ErrForgotten) {
				t.Fatalf("open after forgetting: %v, want ErrForgotten", err)
			}
			if got, err := r2.Forgotten(ctx, alice); err != nil || !got.Equal(at) {
				t.Fatalf("Forgotten: %v, %v; want %v", got, err, at)
			}
			if _, ok, err := r2.Current(ctx, alice); ok || err != nil {
				t.Fatalf("Current after forgetting: %v, %v", ok, err)
			}
			// Bob is untouched.
			if k, err := r2.Key(ctx, kb.ID); err != nil || k.ID != kb.ID {
				t.Fatalf("bob's key after alice was forgotten: %v", err)
			}
			// A later delivery about alice is sealed under a fresh key.
			k2, err := r2.SealKey(ctx, alice)
			if err != nil || k2.ID == k1.ID {
				t.Fatalf("SealKey after forgetting: %v, %v; want a fresh key", k2, err)
			}
			// Forgetting again destroys that one only.
			ids, _, err = r2.Forget(ctx, alice)
			if err != nil || len(ids) != 1 || ids[0] != k2.ID {
				t.Fatalf("second Forget: %v, %v", ids, err)
			}
			// A subject never seen: nothing to destroy, but recorded.
			ids, _, err = r2.Forget(ctx, privacy.Subject{Source: "reewild", ID: "nobody"})
			if err != nil || len(ids) != 0 {
				t.Fatalf("Forget of an unknown subject: %v, %v", ids, err)
			}
			var unknown privacy.KeyID
			if _, err := r2.Key(ctx, unknown); !errors.Is(err, privacy.ErrUnknownKey) {
				t.Fatalf("Key of an id never stored: %v, want ErrUnknownKey", err)
			}
		})
	}
}

// TestConcurrentSealKey: many goroutines (and, for the stream store, two
// keyrings as two nodes) asking for a new subject's key all get one key.
func TestConcurrentSealKey(t *testing.T) {
	ctx := context.Background()
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			open := st.make(t)
			kek := newKEK(t)
			rings := []*privacy.Keyring{}
			s := open()
			r, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{kek}, privacy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rings = append(rings, r)
			if st.name == "stream" {
				r2, err := privacy.NewKeyring(ctx, open(), []*privacy.KEK{kek}, privacy.Options{})
				if err != nil {
					t.Fatal(err)
				}
				rings = append(rings, r2)
			}
			sub := privacy.Subject{Source: "retm", ID: "4821"}
			ids := make(chan privacy.KeyID, 32)
			var wg sync.WaitGroup
			for i := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := rings[i%len(rings)].SealKey(ctx, sub)
					if err != nil {
						t.Error(err)
						return
					}
					ids <- k.ID
				}()
			}
			wg.Wait()
			close(ids)
			seen := map[privacy.KeyID]bool{}
			for id := range ids {
				seen[id] = true
			}
			if len(seen) != 1 {
				t.Fatalf("%d keys for one subject, want 1", len(seen))
			}
		})
	}
}

// TestForgetOnAnotherNode: a keyring with Recheck stops opening a
// subject's values once another keyring on the same store forgot it and
// Recheck has passed.
func TestForgetOnAnotherNode(t *testing.T) {
	ctx := context.Background()
	log := newMemLog()
	kek := newKEK(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	a, err := privacy.NewKeyring(ctx, privacy.NewStreamStore(log), []*privacy.KEK{kek}, privacy.Options{Recheck: 5 * time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	b, err := privacy.NewKeyring(ctx, privacy.NewStreamStore(log), []*privacy.KEK{kek}, privacy.Options{Recheck: 5 * time.Second, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	sub := privacy.Subject{Source: "reewild", ID: "u1"}
	k, err := a.SealKey(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	box, _ := k.Seal(nil, privacy.PurposeBody, []byte("body"))
	if _, err := privacy.OpenWith(ctx, b, privacy.PurposeBody, box); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Forget(ctx, sub); err != nil {
		t.Fatal(err)
	}
	now = now.Add(6 * time.Second)
	if _, err := privacy.OpenWith(ctx, b, privacy.PurposeBody, box); !errors.Is(err, privacy.ErrForgotten) {
		t.Fatalf("the other node after Recheck: %v, want ErrForgotten", err)
	}
	k2, err := b.SealKey(ctx, sub)
	if err != nil || k2.ID == k.ID {
		t.Fatalf("the other node's key after the forget: %v, %v; want a fresh one", k2, err)
	}
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	s := privacy.NewStreamStore(newMemLog())
	r, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{newKEK(t)}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := r.SealKey(ctx, privacy.Subject{Source: "s", ID: "a"})
	other, _ := r.SealKey(ctx, privacy.Subject{Source: "s", ID: "b"})
	box, err := k.Seal([]byte("prefix"), privacy.PurposeBody, []byte("the raw body"))
	if err != nil {
		t.Fatal(err)
	}
	box = box[len("prefix"):]
	if !privacy.IsSealed(box) || bytes.Contains(box, []byte("raw body")) {
		t.Fatalf("box %x", box)
	}
	if id, ok := privacy.SealedKeyID(box); !ok || id != k.ID {
		t.Fatalf("SealedKeyID %v %v", id, ok)
	}
	if len(box) != len("the raw body")+privacy.BoxOverhead {
		t.Errorf("box of %d bytes, want %d", len(box), len("the raw body")+privacy.BoxOverhead)
	}
	again, _ := k.Seal(nil, privacy.PurposeBody, []byte("the raw body"))
	if bytes.Equal(again, box) {
		t.Error("two seals of one value are equal: nonces repeat")
	}
	if _, err := k.Open(nil, privacy.PurposeFields, box); !errors.Is(err, privacy.ErrTampered) {
		t.Errorf("opened for another purpose: %v", err)
	}
	if _, err := other.Open(nil, privacy.PurposeBody, box); !errors.Is(err, privacy.ErrTampered) {
		t.Errorf("opened with another key: %v", err)
	}
	for i := 0; i < len(box); i++ {
		bad := bytes.Clone(box)
		bad[i] ^= 0x40
		if _, err := privacy.OpenWith(ctx, r, privacy.PurposeBody, bad); err == nil {
			t.Fatalf("byte %d changed and the box still opens", i)
		}
	}
	if _, err := privacy.OpenWith(ctx, nil, privacy.PurposeBody, box); !errors.Is(err, privacy.ErrUnknownKey) {
		t.Errorf("open without keys: %v", err)
	}
	if privacy.IsSealed([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}) {
		t.Error("a zstd frame taken for a sealed value")
	}
}

// TestRotation: keys wrapped under an old KEK open while it is listed
// after the new one; Rewrap moves them, after which the old KEK can go.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	oldKEK, newK := newKEK(t), newKEK(t)
	open := func(keks ...*privacy.KEK) (*privacy.Keyring, error) {
		s, err := privacy.OpenFileStore(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := privacy.NewKeyring(ctx, s, keks, privacy.Options{})
		if err != nil {
			s.Close()
		}
		return r, err
	}
	r, err := open(oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	sub := privacy.Subject{Source: "reewild", ID: "u"}
	k, _ := r.SealKey(ctx, sub)
	box, _ := k.Seal(nil, privacy.PurposeFields, []byte("x"))
	pseudonym := r.Pseudonym("email", "a@b")
	r.Close()

	if _, err := open(newK); !errors.Is(err, privacy.ErrNoKEK) {
		t.Fatalf("open with the new KEK alone before a rewrap: %v, want ErrNoKEK", err)
	}
	r, err = open(newK, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := privacy.OpenWith(ctx, r, privacy.PurposeFields, box); err != nil {
		t.Fatal(err)
	}
	n, err := r.Rewrap(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Rewrap: %d, %v; want 2 (the key and the pepper)", n, err)
	}
	r.Close()
	r, err = open(newK)
	if err != nil {
		t.Fatalf("open with the new KEK alone after the rewrap: %v", err)
	}
	defer r.Close()
	if _, err := privacy.OpenWith(ctx, r, privacy.PurposeFields, box); err != nil {
		t.Fatal(err)
	}
	if r.Pseudonym("email", "a@b") != pseudonym {
		t.Error("the pepper changed with the rewrap")
	}
}

// keyFileBytes reads every file in dir.
func dirBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestFileStoreLeavesNoCopy: after Destroy, no byte sequence of the
// destroyed key's wrapped record is anywhere in the directory's files,
// while the other subjects' keys are; the compaction's own files are gone.
func TestFileStoreLeavesNoCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	s, err := privacy.OpenFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{newKEK(t)}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var subs []privacy.Subject
	for i := range 200 {
		sub := privacy.Subject{Source: "reewild", ID: fmt.Sprintf("user-%03d", i)}
		if _, err := r.SealKey(ctx, sub); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	victim := subs[77]
	rec, ok, err := s.Current(ctx, victim)
	if err != nil || !ok {
		t.Fatal(err)
	}
	other, _, _ := s.Current(ctx, subs[78])
	if _, _, err := r.Forget(ctx, victim); err != nil {
		t.Fatal(err)
	}
	files := dirBytes(t, dir)
	if len(files) != 1 || files["keys.db"] == nil {
		t.Fatalf("files after a forget: %d, want keys.db alone", len(files))
	}
	for name, b := range files {
		for _, part := range [][]byte{rec.Wrapped, rec.Wrapped[9:25], rec.Wrapped[len(rec.Wrapped)-16:]} {
			if bytes.Contains(b, part) {
				t.Errorf("%s still holds %d bytes of the destroyed wrapped key", name, len(part))
			}
		}
	}
	if !bytes.Contains(files["keys.db"], other.Wrapped) {
		t.Error("another subject's key is not in the file")
	}
	// Still usable after the swap.
	if _, err := r.SealKey(ctx, privacy.Subject{Source: "reewild", ID: "new"}); err != nil {
		t.Fatal(err)
	}
}

// TestFileStoreRecovers: a crash after the swap leaves keys.db.shred (a
// link to the old file): Open zeroes and removes it. A crash before the
// swap leaves it linked to keys.db itself: Open compacts again.
func TestFileStoreRecovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")

	secret := []byte("an old file's bytes that must go")
	if err := os.WriteFile(path+".shred", bytes.Repeat(secret, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := privacy.OpenFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{newKEK(t)}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub := privacy.Subject{Source: "s", ID: "x"}
	k, _ := r.SealKey(ctx, sub)
	rec, _, _ := s.Current(ctx, sub)
	if _, err := os.Stat(path + ".shred"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("shred file after open: %v", err)
	}
	// Destroy without the compaction (as if the process died between the
	// delete and the swap, with the link made): the record's bytes are in
	// a freed page.
	r.Close()
	if err := os.Link(path, path+".shred"); err != nil {
		t.Fatal(err)
	}
	s2, err := privacy.OpenFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".shred"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("shred link after open: %v", err)
	}
	got, err := s2.Get(ctx, k.ID)
	if err != nil || !bytes.Equal(got.Wrapped, rec.Wrapped) {
		t.Fatalf("the key after a recovered compaction: %v", err)
	}
	s2.Close()
}

// TestDestroyKeys: a key store restored from before a forget holds the
// forgotten key again; DestroyKeys with the ids the log recorded destroys
// it (and the subject's claim on it), leaves the others, and the file
// keeps no copy.
func TestDestroyKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	kek := newKEK(t)
	s, err := privacy.OpenFileStore(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := privacy.NewKeyring(ctx, s, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := privacy.Subject{Source: "s", ID: "alice"}, privacy.Subject{Source: "s", ID: "bob"}
	ka, _ := r.SealKey(ctx, alice)
	kb, _ := r.SealKey(ctx, bob)
	rec, _, _ := s.Current(ctx, alice)
	r.Close()
	backup, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Forget Alice, then restore the old key file.
	s, _ = privacy.OpenFileStore(path, 0)
	r, _ = privacy.NewKeyring(ctx, s, []*privacy.KEK{kek}, privacy.Options{})
	ids, _, err := r.Forget(ctx, alice)
	if err != nil || len(ids) != 1 {
		t.Fatal(ids, err)
	}
	r.Close()
	if err := os.WriteFile(path, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ = privacy.OpenFileStore(path, 0)
	r, err = privacy.NewKeyring(ctx, s, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Key(ctx, ka.ID); err != nil {
		t.Fatalf("the restored key store lacks Alice's key: %v", err)
	}
	destroyed, err := r.DestroyKeys(ctx, ids)
	if err != nil || len(destroyed) != 1 || destroyed[0] != ka.ID {
		t.Fatalf("DestroyKeys: %v %v", destroyed, err)
	}
	if _, err := r.Key(ctx, ka.ID); !errors.Is(err, privacy.ErrForgotten) {
		t.Fatalf("Alice's key after DestroyKeys: %v", err)
	}
	if _, ok, _ := r.Current(ctx, alice); ok {
		t.Fatal("Alice still has a current key")
	}
	if _, err := r.Key(ctx, kb.ID); err != nil {
		t.Fatalf("Bob's key: %v", err)
	}
	if again, err := r.DestroyKeys(ctx, ids); err != nil || len(again) != 0 {
		t.Fatalf("DestroyKeys again: %v %v", again, err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, rec.Wrapped[9:25]) {
		t.Fatal("the key file still holds Alice's wrapped key")
	}
}
