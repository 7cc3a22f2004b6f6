package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/receiptd/receiptd/backup"
	"github.com/receiptd/receiptd/datadir"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

const backupUsage = `Usage: receiptd backup --to FILE [--data-dir DIR] [--config FILE] [--json]
       receiptd backup --server HOST:PORT --to FILE [--api-key REF] [--tls | --ca-file PEM] [--json]

Copies the embedded store's log (events.db) to FILE: a consistent snapshot
taken in one read transaction, with a header holding the head position and
a SHA-256 of the whole. The read models are not copied ('receiptd restore'
rebuilds them from the log), so a backup is as large as the log.

With --server it asks a running receiptd (BackupService.Backup, admin
scope), which goes on ingesting meanwhile: the backup holds every delivery
acknowledged before it began. Without it, it reads the data directory of a
stopped server; a running server holds the store's lock, and then the
offline backup is refused and says to use --server.

The file is written beside FILE and renamed into place once complete and
synced. A KurrentDB log is backed up with the cluster's own backup (README,
"Operating receiptd").

`

// backupResult is what `receiptd backup --json` prints.
type backupResult struct {
	File    string    `json:"file"`
	Head    uint64    `json:"head"`
	Bytes   uint64    `json:"bytes"`
	TakenAt time.Time `json:"taken_at"`
	SHA256  string    `json:"sha256"`
	Took    string    `json:"took"`
}

// runBackup is `receiptd backup`: 0 backed up, 1 failed, 2 usage.
func runBackup(args []string, stdout, stderr io.Writer) int {
	var a adminFlags
	var to string
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, backupUsage)
		fs.PrintDefaults()
	}
	a.add(fs)
	fs.StringVar(&to, "to", "", "the backup file to write (required)")
	if err := a.parse(fs, args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
		}
		return 2
	}
	if to == "" {
		fmt.Fprintln(stderr, "receiptd backup: --to FILE is required")
		return 2
	}
	stopProfile, err := a.startProfile()
	if err != nil {
		fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
		return 2
	}
	defer stopProfile()
	ctx, stop := signalContext()
	defer stop()

	start := time.Now()
	var hdr backup.Header
	if a.Server != "" {
		conn, withAuth, err := a.Dial()
		if err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
			return 2
		}
		defer conn.Close()
		stream, err := receiptdv1.NewBackupServiceClient(conn).Backup(withAuth(ctx), &receiptdv1.BackupRequest{})
		if err == nil {
			hdr, err = backup.Receive(stream, to)
		}
		if err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %s: %v\n", a.Server, err)
			return 1
		}
	} else {
		if hdr, err = datadir.BackupOffline(a.cfg, to); err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
			return 1
		}
	}
	res := backupResult{File: to, Head: hdr.Head, Bytes: hdr.Size, TakenAt: hdr.TakenAt, SHA256: hex.EncodeToString(hdr.Sum[:]), Took: time.Since(start).Round(time.Millisecond).String()}
	if a.json {
		if err := printJSON(stdout, res); err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "backed up the log, events 1 to %d (%d bytes, taken at %s), to %s in %s\nsha256 %s\n",
		res.Head, res.Bytes, res.TakenAt.Format(time.RFC3339), res.File, res.Took, res.SHA256)
	return 0
}
