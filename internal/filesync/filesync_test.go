package filesync

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestZeroAndRemove: the file's name is gone and its bytes are zeros —
// seen through a second hard link to the same inode, which removing the
// name leaves in place.
func TestZeroAndRemove(t *testing.T) {
	dir := t.TempDir()
	path, link := filepath.Join(dir, "keys.db"), filepath.Join(dir, "link")
	secret := bytes.Repeat([]byte("alice@example.com "), 1000)
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, link); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if err := ZeroAndRemove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there: %v", path, err)
	}
	got, err := os.ReadFile(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(secret) || !bytes.Equal(got, make([]byte, len(secret))) {
		t.Fatalf("the inode holds %d bytes, not %d zeros", len(got), len(secret))
	}
	if err := ZeroAndRemove(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("second ZeroAndRemove: %v, want ErrNotExist", err)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SyncDir of a missing dir: %v", err)
	}
}
