package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/receiptd/receiptd/config"
	"github.com/receiptd/receiptd/datadir"
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
	res, err := datadir.Restore(ctx, cfg, from, force)
	if err != nil {
		fmt.Fprintf(stderr, "receiptd restore: %v\n", err)
		return 1
	}
	if asJSON {
		if err := printJSON(stdout, res); err != nil {
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
