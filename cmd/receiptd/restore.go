package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/projections"
)

const restoreUsage = `Usage: receiptd restore --from FILE [--data-dir DIR] [--config FILE] [--force] [--json]

Restores a backup made by 'receiptd backup' into the data directory of a
stopped server: checks the backup's header, length and SHA-256 (a truncated
or altered backup is refused before anything is written), writes the log
(events.db), and rebuilds the read models (views.db) from it. Then
'receiptd audit --data-dir DIR' is clean.

A data directory that is not empty is refused unless --force: then its log
and read models are replaced (other files are left as they are). A running
server on it is never overwritten. The embedded store only: a KurrentDB log
is restored with the cluster's own tools (README, "Operating receiptd").

`

// restoreResult is what `receiptd restore --json` prints.
type restoreResult struct {
	DataDir  string                    `json:"data_dir"`
	Head     uint64                    `json:"head"`
	Bytes    uint64                    `json:"bytes"`
	TakenAt  time.Time                 `json:"taken_at"`
	SHA256   string                    `json:"sha256"`
	Rebuild  projections.RebuildResult `json:"rebuild"`
	Replaced []string                  `json:"replaced,omitempty"`
	Took     string                    `json:"took"`
}

// runRestore is `receiptd restore`: 0 restored, 1 failed (nothing is
// changed when the backup is refused), 2 usage.
func runRestore(args []string, stdout, stderr io.Writer) int {
	var cfg Config
	var from string
	var force, asJSON bool
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, restoreUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&from, "from", "", "the backup file to restore (required)")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "the data directory to restore into")
	fs.StringVar(&cfg.File, "config", "", "YAML config file: the store must be the embedded one")
	fs.BoolVar(&force, "force", false, "replace the log and read models of a data directory that is not empty")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "receiptd restore: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if from == "" {
		fmt.Fprintln(stderr, "receiptd restore: --from FILE is required")
		return 2
	}
	if err := cfg.Load(); err != nil {
		fmt.Fprintf(stderr, "receiptd restore: %v\n", err)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	res, err := restore(ctx, cfg, from, force)
	if err != nil {
		fmt.Fprintf(stderr, "receiptd restore: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "receiptd restore: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "restored the log, events 1 to %d (%d bytes, backup taken at %s, sha256 %s), into %s\n",
		res.Head, res.Bytes, res.TakenAt.Format(time.RFC3339), res.SHA256, filepath.Join(res.DataDir, "events.db"))
	if len(res.Replaced) > 0 {
		fmt.Fprintf(stdout, "replaced (--force): %s\n", strings.Join(res.Replaced, ", "))
	}
	fmt.Fprintf(stdout, "rebuilt the read models from it: %d events replayed; took %s in all\n", res.Rebuild.Events, res.Took)
	return 0
}

// restore does `receiptd restore`.
func restore(ctx context.Context, cfg Config, from string, force bool) (restoreResult, error) {
	start := time.Now()
	if cfg.Store.Kind != "embedded" {
		return restoreResult{}, fmt.Errorf("the configured log is in %s: restore it with the cluster's own tools (README, \"Operating receiptd\"); receiptd restores the embedded store only", cfg.Store.Kind)
	}
	src, err := os.Open(from)
	if err != nil {
		return restoreResult{}, err
	}
	defer src.Close()
	hdr, err := readBackupHeader(src)
	if err != nil {
		return restoreResult{}, fmt.Errorf("%s: %w", from, err)
	}
	fi, err := src.Stat()
	if err != nil {
		return restoreResult{}, err
	}
	switch have := uint64(fi.Size()) - backupHeaderLen; {
	case have < hdr.Size:
		return restoreResult{}, fmt.Errorf("%s: %w: truncated: %d bytes of log where its header says %d", from, errBackupDamaged, have, hdr.Size)
	case have > hdr.Size:
		return restoreResult{}, fmt.Errorf("%s: %w: %d bytes after the %d bytes of log its header says", from, errBackupDamaged, have-hdr.Size, hdr.Size)
	}

	// The data directory: created if missing; not empty only with
	// --force, and never under a running server.
	dir := cfg.DataDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return restoreResult{}, fmt.Errorf("data dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return restoreResult{}, fmt.Errorf("data dir: %w", err)
	}
	if len(entries) > 0 && !force {
		names := make([]string, 0, 5)
		for _, e := range entries[:min(len(entries), 5)] {
			names = append(names, e.Name())
		}
		more := ""
		if len(entries) > 5 {
			more = fmt.Sprintf(" and %d more", len(entries)-5)
		}
		return restoreResult{}, fmt.Errorf("data dir %s is not empty (%s%s): restore into an empty one, or pass --force to replace its log and read models", dir, strings.Join(names, ", "), more)
	}
	eventsPath, viewsPath := filepath.Join(dir, "events.db"), filepath.Join(dir, "views.db")
	for _, p := range []string{eventsPath, viewsPath} {
		if err := checkNotHeld(p); err != nil {
			return restoreResult{}, err
		}
	}

	// The log, copied beside its place and checked before anything is
	// replaced.
	tmp, err := os.CreateTemp(dir, "events.db.restore-*")
	if err != nil {
		return restoreResult{}, err
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
		return restoreResult{}, fmt.Errorf("copy the log out of %s: %w", from, err)
	}
	if got := sum.Sum(nil); !bytes.Equal(got, hdr.Sum[:]) {
		return restoreResult{}, fmt.Errorf("%s: %w: checksum mismatch: the SHA-256 of its header and log is %x, its header records %x", from, errBackupDamaged, got, hdr.Sum)
	}
	if err := tmp.Sync(); err != nil {
		return restoreResult{}, err
	}
	if err := tmp.Close(); err != nil {
		return restoreResult{}, err
	}
	if head, err := bolt.CheckFile(tmp.Name()); err != nil {
		return restoreResult{}, fmt.Errorf("%s: the log in it fails its check: %w", from, err)
	} else if head != hdr.Head {
		return restoreResult{}, fmt.Errorf("%s: %w: the log in it ends at %d, its header says %d", from, errBackupDamaged, head, hdr.Head)
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
			return restoreResult{}, err
		}
	}
	if err := projections.RemoveScratch(viewsPath); err != nil {
		return restoreResult{}, err
	}
	if err := os.Rename(tmp.Name(), eventsPath); err != nil {
		return restoreResult{}, err
	}
	placed = true
	if err := syncDir(dir); err != nil {
		return restoreResult{}, err
	}

	// The read models, rebuilt from it, within the memory budget.
	mem := cfg.memory(false)
	mem.apply(nil)
	store, err := openStore(cfg, mem)
	if err != nil {
		return restoreResult{}, fmt.Errorf("open the restored log: %w", err)
	}
	defer store.Close()
	views, err := projections.Open(viewsPath, projections.WithCacheBytes(mem.Records))
	if err != nil {
		return restoreResult{}, err
	}
	defer views.Close()
	rb, err := views.Rebuild(ctx, store, projections.RebuildOptions{})
	if err != nil {
		return restoreResult{}, fmt.Errorf("the log is restored; rebuilding the read models failed (a server started on %s builds them): %w", dir, err)
	}
	return restoreResult{
		DataDir: dir, Head: hdr.Head, Bytes: hdr.Size, TakenAt: hdr.TakenAt, SHA256: hex.EncodeToString(hdr.Sum[:]),
		Rebuild: rb, Replaced: replaced, Took: time.Since(start).Round(time.Millisecond).String(),
	}, nil
}

// checkNotHeld fails when a process (a server) holds the bbolt file at
// path open. A missing file is not held.
func checkNotHeld(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%s is %w: stop it before restoring into its data directory", path, errServerRunning)
	}
	if err != nil {
		// Not a bbolt file, or unreadable: --force replaces it.
		return nil
	}
	return db.Close()
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
