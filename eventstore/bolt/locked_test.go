package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore/bolt"
)

// TestOpenLocked: a file another Store holds open is ErrLocked after the
// lock timeout, and opens once that Store is closed.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	first, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(path, bolt.Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := bolt.Open(path, bolt.Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

// TestCheckNotLocked: a file a Store holds is ErrLocked; a missing file,
// a closed one and a file that is not bbolt's are not.
func TestCheckNotLocked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	if err := bolt.CheckNotLocked(path, 50*time.Millisecond); err != nil {
		t.Errorf("missing file: %v", err)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.CheckNotLocked(path, 50*time.Millisecond); !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("file held by a Store: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bolt.CheckNotLocked(path, 50*time.Millisecond); err != nil {
		t.Errorf("closed file: %v", err)
	}
	other := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(other, []byte("not a bbolt file, and long enough to have a header"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := bolt.CheckNotLocked(other, 50*time.Millisecond); err == nil || errors.Is(err, bolt.ErrLocked) {
		t.Errorf("a file that is not bbolt's: %v, want another error", err)
	}
}
