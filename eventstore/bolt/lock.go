package bolt

import (
	"errors"
	"fmt"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// CheckNotLocked reports whether a process holds the bbolt file at path
// open, as a running server holds its store's file and its read models'
// file: then it fails, after lockTimeout, with an error matching
// ErrLocked. A missing file is not locked (nil). Any bbolt file may be
// checked; it is opened read-only and never changed. Another failure to
// open it (not a bbolt file, unreadable) is returned as it is.
func CheckNotLocked(path string, lockTimeout time.Duration) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("bolt: check lock of %s: %w", path, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("bolt: check lock of %s: %w", path, err)
	}
	return db.Close()
}
