package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/internal/filesync"
	"github.com/receiptd/receiptd/projections"
)

// Errors of a restore's data directory.
var (
	// ErrServerRunning: a file of the data directory is held open by a
	// process, a running receiptd.
	ErrServerRunning = errors.New("in use by a running receiptd")
	// ErrNotEmpty: the data directory holds files and the restore was
	// not told to replace them.
	ErrNotEmpty = errors.New("not empty")
)

// Restored is what Restore did.
type Restored struct {
	// Header is the restored backup's header.
	Header Header
	// Replaced names the files of the data directory that the restore
	// replaced (the log) or removed (the read models).
	Replaced []string
}

// Restore puts the log of the backup file from in place in the data
// directory dir (events.db), for a server or a rebuild to build the read
// models from:
//
//   - the backup's header, its length and its SHA-256 are checked, and the
//     log it holds passes bolt.CheckFile with the header's head, before
//     anything in dir is replaced (a refused backup leaves dir as it was;
//     dir is created if missing);
//   - dir must be empty unless replace (ErrNotEmpty), and no process may
//     hold its events.db or views.db (ErrServerRunning);
//   - the read models of the log being replaced (views.db, its unsynced
//     marker and scratch files) are removed first, then the new log is
//     renamed into place and the rename synced.
//
// Files of dir other than the log and the read models are left as they
// are. ctx ending stops the copy.
func Restore(ctx context.Context, from, dir string, replace bool) (Restored, error) {
	src, err := os.Open(from)
	if err != nil {
		return Restored{}, err
	}
	defer src.Close()
	hdr, err := ReadHeader(src)
	if err != nil {
		return Restored{}, fmt.Errorf("%s: %w", from, err)
	}
	fi, err := src.Stat()
	if err != nil {
		return Restored{}, err
	}
	switch have := uint64(fi.Size()) - HeaderLen; {
	case have < hdr.Size:
		return Restored{}, fmt.Errorf("%s: %w: truncated: %d bytes of log where its header says %d", from, ErrDamaged, have, hdr.Size)
	case have > hdr.Size:
		return Restored{}, fmt.Errorf("%s: %w: %d bytes after the %d bytes of log its header says", from, ErrDamaged, have-hdr.Size, hdr.Size)
	}

	// The data directory: created if missing; not empty only when
	// replacing, and never under a running server.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Restored{}, fmt.Errorf("data dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Restored{}, fmt.Errorf("data dir: %w", err)
	}
	if len(entries) > 0 && !replace {
		names := make([]string, 0, 5)
		for _, e := range entries[:min(len(entries), 5)] {
			names = append(names, e.Name())
		}
		more := ""
		if len(entries) > 5 {
			more = fmt.Sprintf(" and %d more", len(entries)-5)
		}
		return Restored{}, fmt.Errorf("data dir %s is %w (%s%s)", dir, ErrNotEmpty, strings.Join(names, ", "), more)
	}
	eventsPath, viewsPath := filepath.Join(dir, "events.db"), filepath.Join(dir, "views.db")
	for _, p := range []string{eventsPath, viewsPath} {
		if err := checkNotHeld(p); err != nil {
			return Restored{}, err
		}
	}

	// The log, copied beside its place and checked before anything is
	// replaced.
	tmp, err := os.CreateTemp(dir, "events.db.restore-*")
	if err != nil {
		return Restored{}, err
	}
	placed := false
	defer func() {
		if !placed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	sum := sha256.New()
	sum.Write(hdr.fields())
	if _, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(&ctxReader{ctx: ctx, r: src}, int64(hdr.Size))); err != nil {
		return Restored{}, fmt.Errorf("copy the log out of %s: %w", from, err)
	}
	if got := sum.Sum(nil); !bytes.Equal(got, hdr.Sum[:]) {
		return Restored{}, fmt.Errorf("%s: %w: checksum mismatch: the SHA-256 of its header and log is %x, its header records %x", from, ErrDamaged, got, hdr.Sum)
	}
	if err := tmp.Sync(); err != nil {
		return Restored{}, err
	}
	if err := tmp.Close(); err != nil {
		return Restored{}, err
	}
	if head, err := bolt.CheckFile(tmp.Name()); err != nil {
		return Restored{}, fmt.Errorf("%s: the log in it fails its check: %w", from, err)
	} else if head != hdr.Head {
		return Restored{}, fmt.Errorf("%s: %w: the log in it ends at %d, its header says %d", from, ErrDamaged, head, hdr.Head)
	}

	// Read models of the log being replaced must never meet the new
	// one: they go first. Should the restore stop after that, a server
	// started on the directory builds them from the new log.
	var replaced []string
	for _, p := range []string{viewsPath, viewsPath + "-unsynced", eventsPath} {
		if _, err := os.Stat(p); err == nil {
			replaced = append(replaced, filepath.Base(p))
		}
	}
	for _, p := range []string{viewsPath, viewsPath + "-unsynced"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Restored{}, err
		}
	}
	if err := projections.RemoveScratch(viewsPath); err != nil {
		return Restored{}, err
	}
	if err := os.Rename(tmp.Name(), eventsPath); err != nil {
		return Restored{}, err
	}
	placed = true
	if err := filesync.SyncDir(dir); err != nil {
		return Restored{}, err
	}
	return Restored{Header: hdr, Replaced: replaced}, nil
}

// checkNotHeld fails with ErrServerRunning when a process (a server)
// holds the bbolt file at path open. A missing file is not held.
func checkNotHeld(path string) error {
	err := bolt.CheckNotLocked(path, time.Second)
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("%s is %w: stop it before restoring into its data directory", path, ErrServerRunning)
	}
	// Not a bbolt file, or unreadable: a restore that replaces it may.
	return nil
}

// ctxReader reads r until ctx ends: a restore interrupted by a signal
// stops copying.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
