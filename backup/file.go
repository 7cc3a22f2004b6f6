package backup

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/receiptd/receiptd/internal/filesync"
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
	magic      = "receiptd-backup\n"
	version    = 1
	formatBolt = 1
	// HeaderLen is the length of a backup file's header: the data starts
	// there.
	HeaderLen = 80
	sumAt     = 48
)

// Header is the header of a backup file.
type Header struct {
	// Head is the commit position of the last event in the backup.
	Head uint64
	// Size is the length of the data (the store's file) in bytes.
	Size uint64
	// TakenAt is when the backup was taken, by the server's clock.
	TakenAt time.Time
	// Sum is the SHA-256 of the header's fields and the data.
	Sum [sha256.Size]byte
}

// fields encodes the header up to its checksum.
func (h Header) fields() []byte {
	b := make([]byte, 0, HeaderLen)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, version)
	b = binary.BigEndian.AppendUint32(b, formatBolt)
	b = binary.BigEndian.AppendUint64(b, h.Head)
	b = binary.BigEndian.AppendUint64(b, h.Size)
	return binary.BigEndian.AppendUint64(b, uint64(h.TakenAt.UnixNano()))
}

// Errors of reading a backup file.
var (
	// ErrNotBackup: the file is not a receiptd backup at all.
	ErrNotBackup = errors.New("not a receiptd backup")
	// ErrDamaged: the file is a backup, but truncated, longer than its
	// header says, or not what its checksum or head says.
	ErrDamaged = errors.New("the backup is damaged or was altered")
)

// ReadHeader reads and checks the header of a backup file.
func ReadHeader(r io.Reader) (Header, error) {
	var b [HeaderLen]byte
	if n, err := io.ReadFull(r, b[:]); err != nil {
		if n >= len(magic) && string(b[:len(magic)]) == magic {
			return Header{}, fmt.Errorf("%w: truncated within its %d-byte header", ErrDamaged, HeaderLen)
		}
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than a backup's header", ErrNotBackup, n)
	}
	if string(b[:len(magic)]) != magic {
		return Header{}, fmt.Errorf("%w: it does not start with %q", ErrNotBackup, magic)
	}
	if v := binary.BigEndian.Uint32(b[16:]); v != version {
		return Header{}, fmt.Errorf("backup format version %d: this receiptd reads version %d", v, version)
	}
	if f := binary.BigEndian.Uint32(b[20:]); f != formatBolt {
		return Header{}, fmt.Errorf("%w: unknown data format %d", ErrDamaged, f)
	}
	h := Header{
		Head:    binary.BigEndian.Uint64(b[24:]),
		Size:    binary.BigEndian.Uint64(b[32:]),
		TakenAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[40:]))).UTC(),
	}
	copy(h.Sum[:], b[sumAt:])
	return h, nil
}

// Writer writes a backup file: a temporary file beside the target,
// renamed over it once whole and synced, so a failed or interrupted backup
// never leaves a file by the target's name. Write the header's Size bytes
// of data, then Finish; or Abort.
type Writer struct {
	to   string
	f    *os.File
	hdr  Header
	sum  hash.Hash // the file's checksum: header fields, then data
	data hash.Hash // the data alone, to compare with the server's
	n    uint64
}

// Create begins the backup file to with the header hdr (its Sum is
// computed, not read).
func Create(to string, hdr Header) (*Writer, error) {
	f, err := os.CreateTemp(filepath.Dir(to), filepath.Base(to)+".partial-*")
	if err != nil {
		return nil, err
	}
	w := &Writer{to: to, f: f, hdr: hdr, sum: sha256.New(), data: sha256.New()}
	fields := hdr.fields()
	w.sum.Write(fields)
	// The checksum is written once the data is: zeros until then.
	if _, err := f.Write(append(fields, make([]byte, sha256.Size)...)); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// Write writes data; more than the header's Size in all is an error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.n+uint64(len(p)) > w.hdr.Size {
		return 0, fmt.Errorf("more than the %d bytes announced", w.hdr.Size)
	}
	n, err := w.f.Write(p)
	w.sum.Write(p[:n])
	w.data.Write(p[:n])
	w.n += uint64(n)
	return n, err
}

// DataSum is the SHA-256 of the data written so far.
func (w *Writer) DataSum() []byte { return w.data.Sum(nil) }

// Finish checks the length, writes the checksum, syncs the file and
// renames it into place. It returns the header with its Sum.
func (w *Writer) Finish() (Header, error) {
	if w.n != w.hdr.Size {
		w.Abort()
		return Header{}, fmt.Errorf("received %d bytes of the %d announced", w.n, w.hdr.Size)
	}
	copy(w.hdr.Sum[:], w.sum.Sum(nil))
	if _, err := w.f.WriteAt(w.hdr.Sum[:], sumAt); err != nil {
		w.Abort()
		return Header{}, err
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return Header{}, err
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return Header{}, err
	}
	if err := os.Rename(w.f.Name(), w.to); err != nil {
		os.Remove(w.f.Name())
		return Header{}, err
	}
	return w.hdr, filesync.SyncDir(filepath.Dir(w.to))
}

// Abort removes the temporary file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}
