package bolt_test

import (
	"errors"
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
