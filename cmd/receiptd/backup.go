package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// A backup file is a fixed header followed by the embedded store's file
// (events.db as of one read transaction), byte for byte:
//
//	offset size
//	0      16   magic "receiptd-backup\n"
//	16     4    version, big-endian (1)
//	20     4    data format, big-endian (1: bolt, the embedded store's bbolt file)
//	24     8    head: commit position of the last event in the backup
//	32     8    data length in bytes
//	40     8    taken at, Unix nanoseconds (the server's clock)
//	48     32   SHA-256 of bytes 0..47 of the header followed by the data
//	80          data
//
// The checksum covers the header's fields too, so a changed head or length
// fails it as a changed byte of data does. A restore reads the header,
// checks the file's length against it, and hashes the data as it copies it.
const (
	backupMagic      = "receiptd-backup\n"
	backupVersion    = 1
	backupFormatBolt = 1
	backupHeaderLen  = 80
	backupSumAt      = 48
)

// backupHeader is the header of a backup file.
type backupHeader struct {
	Head    uint64
	Size    uint64
	TakenAt time.Time
	Sum     [sha256.Size]byte
}

// fields encodes the header up to its checksum.
func (h backupHeader) fields() []byte {
	b := make([]byte, 0, backupHeaderLen)
	b = append(b, backupMagic...)
	b = binary.BigEndian.AppendUint32(b, backupVersion)
	b = binary.BigEndian.AppendUint32(b, backupFormatBolt)
	b = binary.BigEndian.AppendUint64(b, h.Head)
	b = binary.BigEndian.AppendUint64(b, h.Size)
	return binary.BigEndian.AppendUint64(b, uint64(h.TakenAt.UnixNano()))
}

// Errors of reading a backup file.
var (
	errNotBackup     = errors.New("not a receiptd backup")
	errBackupDamaged = errors.New("the backup is damaged or was altered")
)

// readBackupHeader reads and checks the header of a backup file.
func readBackupHeader(r io.Reader) (backupHeader, error) {
	var b [backupHeaderLen]byte
	if n, err := io.ReadFull(r, b[:]); err != nil {
		if n >= len(backupMagic) && string(b[:len(backupMagic)]) == backupMagic {
			return backupHeader{}, fmt.Errorf("%w: truncated within its %d-byte header", errBackupDamaged, backupHeaderLen)
		}
		return backupHeader{}, fmt.Errorf("%w: %d bytes, shorter than a backup's header", errNotBackup, n)
	}
	if string(b[:len(backupMagic)]) != backupMagic {
		return backupHeader{}, fmt.Errorf("%w: it does not start with %q", errNotBackup, backupMagic)
	}
	if v := binary.BigEndian.Uint32(b[16:]); v != backupVersion {
		return backupHeader{}, fmt.Errorf("backup format version %d: this receiptd reads version %d", v, backupVersion)
	}
	if f := binary.BigEndian.Uint32(b[20:]); f != backupFormatBolt {
		return backupHeader{}, fmt.Errorf("%w: unknown data format %d", errBackupDamaged, f)
	}
	h := backupHeader{
		Head:    binary.BigEndian.Uint64(b[24:]),
		Size:    binary.BigEndian.Uint64(b[32:]),
		TakenAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[40:]))).UTC(),
	}
	copy(h.Sum[:], b[backupSumAt:])
	return h, nil
}

// backupWriter writes a backup file: a temporary file beside the target,
// renamed over it once whole and synced, so a failed or interrupted backup
// never leaves a file by the target's name.
type backupWriter struct {
	to   string
	f    *os.File
	hdr  backupHeader
	sum  hash.Hash // the file's checksum: header fields, then data
	data hash.Hash // the data alone, to compare with the server's
	n    uint64
}

func createBackup(to string, hdr backupHeader) (*backupWriter, error) {
	f, err := os.CreateTemp(filepath.Dir(to), filepath.Base(to)+".partial-*")
	if err != nil {
		return nil, err
	}
	w := &backupWriter{to: to, f: f, hdr: hdr, sum: sha256.New(), data: sha256.New()}
	fields := hdr.fields()
	w.sum.Write(fields)
	// The checksum is written once the data is: zeros until then.
	if _, err := f.Write(append(fields, make([]byte, sha256.Size)...)); err != nil {
		w.abort()
		return nil, err
	}
	return w, nil
}

func (w *backupWriter) Write(p []byte) (int, error) {
	if w.n+uint64(len(p)) > w.hdr.Size {
		return 0, fmt.Errorf("more than the %d bytes announced", w.hdr.Size)
	}
	n, err := w.f.Write(p)
	w.sum.Write(p[:n])
	w.data.Write(p[:n])
	w.n += uint64(n)
	return n, err
}

// finish checks the length, writes the checksum, syncs the file and renames
// it into place.
func (w *backupWriter) finish() (backupHeader, error) {
	if w.n != w.hdr.Size {
		w.abort()
		return backupHeader{}, fmt.Errorf("received %d bytes of the %d announced", w.n, w.hdr.Size)
	}
	copy(w.hdr.Sum[:], w.sum.Sum(nil))
	if _, err := w.f.WriteAt(w.hdr.Sum[:], backupSumAt); err != nil {
		w.abort()
		return backupHeader{}, err
	}
	if err := w.f.Sync(); err != nil {
		w.abort()
		return backupHeader{}, err
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return backupHeader{}, err
	}
	if err := os.Rename(w.f.Name(), w.to); err != nil {
		os.Remove(w.f.Name())
		return backupHeader{}, err
	}
	return w.hdr, syncDir(filepath.Dir(w.to))
}

// abort removes the temporary file.
func (w *backupWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

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
	var hdr backupHeader
	if a.server != "" {
		conn, withAuth, err := dialServer(&a)
		if err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
			return 2
		}
		defer conn.Close()
		stream, err := receiptdv1.NewBackupServiceClient(conn).Backup(withAuth(ctx), &receiptdv1.BackupRequest{})
		if err == nil {
			hdr, err = receiveBackup(stream, to)
		}
		if err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %s: %v\n", a.server, err)
			return 1
		}
	} else {
		if hdr, err = backupOffline(a.cfg, to); err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
			return 1
		}
	}
	res := backupResult{File: to, Head: hdr.Head, Bytes: hdr.Size, TakenAt: hdr.TakenAt, SHA256: hex.EncodeToString(hdr.Sum[:]), Took: time.Since(start).Round(time.Millisecond).String()}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "receiptd backup: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "backed up the log, events 1 to %d (%d bytes, taken at %s), to %s in %s\nsha256 %s\n",
		res.Head, res.Bytes, res.TakenAt.Format(time.RFC3339), res.File, res.Took, res.SHA256)
	return 0
}

// backupSnapshotter is what the Backup RPC copies: the embedded store's
// snapshots; nil for another log (the RPC then refuses).
func backupSnapshotter(store eventstore.Store) api.Snapshotter {
	s, ok := store.(*bolt.Store)
	if !ok {
		return nil
	}
	return func() (api.Snapshot, error) {
		sn, err := s.Snapshot()
		if err != nil {
			return nil, err
		}
		return sn, nil
	}
}

// backupOffline copies the events.db of a stopped server.
func backupOffline(cfg Config, to string) (backupHeader, error) {
	if cfg.Store.Kind != "embedded" {
		return backupHeader{}, fmt.Errorf("the log is in %s: back it up with the cluster's own backup (README, \"Operating receiptd\")", cfg.Store.Kind)
	}
	path := filepath.Join(cfg.DataDir, "events.db")
	sn, err := bolt.OpenSnapshot(path, time.Second)
	if errors.Is(err, bolt.ErrLocked) {
		return backupHeader{}, fmt.Errorf("the embedded store %s is %w: back it up online instead, through that server: `receiptd backup --server HOST:GRPC_PORT --to %s` (gRPC receiptd.v1.BackupService/Backup)", path, errServerRunning, to)
	}
	if err != nil {
		return backupHeader{}, err
	}
	defer sn.Close()
	w, err := createBackup(to, backupHeader{Head: sn.Head(), Size: uint64(sn.Size()), TakenAt: time.Now().UTC()})
	if err != nil {
		return backupHeader{}, err
	}
	if _, err := sn.WriteTo(w); err != nil {
		w.abort()
		return backupHeader{}, err
	}
	return w.finish()
}

// receiveBackup writes a Backup stream to the file to.
func receiveBackup(stream receiptdv1.BackupService_BackupClient, to string) (backupHeader, error) {
	first, err := stream.Recv()
	if err != nil {
		return backupHeader{}, err
	}
	h := first.GetHeader()
	if h == nil {
		return backupHeader{}, errors.New("the stream did not start with a header")
	}
	if h.GetFormat() != api.BackupFormat {
		return backupHeader{}, fmt.Errorf("the server sends data of format %q; this receiptd writes %q", h.GetFormat(), api.BackupFormat)
	}
	w, err := createBackup(to, backupHeader{Head: h.GetHeadPosition(), Size: h.GetSizeBytes(), TakenAt: h.GetTakenAt().AsTime().UTC()})
	if err != nil {
		return backupHeader{}, err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			w.abort()
			return backupHeader{}, errors.New("the stream ended without its trailer")
		}
		if err != nil {
			w.abort()
			return backupHeader{}, err
		}
		if t := m.GetTrailer(); t != nil {
			if !bytes.Equal(t.GetSha256(), w.data.Sum(nil)) {
				w.abort()
				return backupHeader{}, fmt.Errorf("the data received does not match the server's SHA-256 %x", t.GetSha256())
			}
			return w.finish()
		}
		if _, err := w.Write(m.GetData()); err != nil {
			w.abort()
			return backupHeader{}, err
		}
	}
}
