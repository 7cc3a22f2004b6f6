package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// TestRewrite: an offline rewrite changes the events its function changes,
// in place (same positions, streams, revisions, times, ids, types), leaves
// the others byte for byte, keeps no old record in the file (freed pages
// included), and the store appends on from where it was.
func TestRewrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	secret := func(i int) string { return fmt.Sprintf("secret-of-event-%04d", i) }
	for i := range 2500 {
		e := event(i)
		e.Data = fmt.Appendf(nil, `{"n":%d,"who":%q}`, i, secret(i))
		if i%3 == 0 {
			e.Body = []byte("body " + secret(i))
		}
		if _, err := s.Append(ctx, fmt.Sprintf("s-%d", i%7), eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	before := readAll(t, s)
	if _, err := bolt.Rewrite(path, 0, nil); !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("Rewrite of a file a store holds: %v, want ErrLocked", err)
	}
	s.Close()

	n, err := bolt.Rewrite(path, 0, func(e eventstore.RecordedEvent) (aggregate.Event, bool, error) {
		if !bytes.Contains(e.Data, []byte("secret")) || e.Position.Commit%2 == 0 {
			return aggregate.Event{}, false, nil
		}
		out := e.Event
		out.Data = bytes.ReplaceAll(e.Data, []byte("secret-of"), []byte("sealed-xx"))
		if out.Body != nil {
			out.Body = bytes.ReplaceAll(out.Body, []byte("secret-of"), []byte("sealed-xx"))
		}
		out.ID, out.Type = "ignored", "ignored" // id and type stay
		return out, true, nil
	})
	if err != nil || n != 1250 {
		t.Fatalf("Rewrite: %d, %v; want 1250", n, err)
	}
	for _, suffix := range []string{".shred", ".compact"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", suffix, err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if i%2 == 0 { // position i+1 is odd: rewritten
			if bytes.Contains(raw, []byte(secret(i))) {
				t.Fatalf("the file still holds %q, rewritten away", secret(i))
			}
		} else if !bytes.Contains(raw, []byte(secret(i))) {
			t.Fatalf("the file lost %q, which was not rewritten", secret(i))
		}
	}

	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after := readAll(t, s)
	if len(after) != len(before) {
		t.Fatalf("%d events after, %d before", len(after), len(before))
	}
	for i, a := range after {
		b := before[i]
		if a.Position != b.Position || a.Stream != b.Stream || a.Revision != b.Revision || !a.RecordedAt.Equal(b.RecordedAt) || a.ID != b.ID || a.Type != b.Type || !bytes.Equal(a.Metadata, b.Metadata) {
			t.Fatalf("event %d: %+v, was %+v", i, a, b)
		}
		want := b.Data
		if b.Position.Commit%2 == 1 {
			want = bytes.ReplaceAll(b.Data, []byte("secret-of"), []byte("sealed-xx"))
		}
		if !bytes.Equal(a.Data, want) {
			t.Fatalf("event %d data %s, want %s", i, a.Data, want)
		}
	}
	res, err := s.Append(ctx, "s-3", eventstore.Exact(after[len(after)-1-3].Revision), event(9999))
	if err != nil || res.Position.Commit != uint64(len(before)+1) {
		t.Fatalf("append after the rewrite: %+v %v", res, err)
	}
}

func readAll(t *testing.T, s *bolt.Store) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for after := eventstore.Start; ; {
		page, err := s.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}
