package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/receiptd/receiptd/backup"
	"github.com/receiptd/receiptd/config"
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
	var cfg config.Config
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
func restore(ctx context.Context, cfg config.Config, from string, force bool) (restoreResult, error) {
	start := time.Now()
	if cfg.Store.Kind != "embedded" {
		return restoreResult{}, fmt.Errorf("the configured log is in %s: restore it with the cluster's own tools (README, \"Operating receiptd\"); receiptd restores the embedded store only", cfg.Store.Kind)
	}
	dir := cfg.DataDir
	r, err := backup.Restore(ctx, from, dir, force)
	if errors.Is(err, backup.ErrNotEmpty) {
		return restoreResult{}, fmt.Errorf("%w: restore into an empty one, or pass --force to replace its log and read models", err)
	}
	if err != nil {
		return restoreResult{}, err
	}
	hdr := r.Header

	// The read models, rebuilt from it, within the memory budget.
	mem := cfg.Memory(false)
	mem.Apply(nil)
	store, err := openStore(cfg, mem)
	if err != nil {
		return restoreResult{}, fmt.Errorf("open the restored log: %w", err)
	}
	defer store.Close()
	views, err := projections.Open(filepath.Join(dir, "views.db"), projections.WithCacheBytes(mem.Records))
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
		Rebuild: rb, Replaced: r.Replaced, Took: time.Since(start).Round(time.Millisecond).String(),
	}, nil
}
