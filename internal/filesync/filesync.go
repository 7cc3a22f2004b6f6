// Package filesync holds the two file-system steps the stores share to make
// a change durable or to destroy a file's contents: syncing a directory
// after a file in it was created, renamed or removed, and overwriting a
// file with zeros before removing it (what the key store and a log sealed
// in place do to the copies that held secrets or personal data in the
// clear). What lies below the file system — copy-on-write, SSD wear
// levelling, snapshots — is out of reach of either.
package filesync

import (
	"io"
	"os"
	"path/filepath"
)

// SyncDir fsyncs directory dir, so that the entries created, renamed or
// removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ZeroAndRemove overwrites the file at path with zeros, syncs it, removes
// it and syncs its directory.
func ZeroAndRemove(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = io.CopyN(f, zeros{}, fi.Size())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
