package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/backup"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

// newLog writes a closed store file of n events under dir and returns its
// path.
func newLog(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "events.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := aggregate.Event{ID: fmt.Sprintf("e-%d", i), Type: "test.happened.v1", Data: fmt.Appendf(nil, `{"i":%d}`, i), Metadata: []byte(`{}`)}
		if _, err := s.Append(context.Background(), fmt.Sprintf("thing-%d", i%7), eventstore.Any, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// readLog reads every event of the closed store file at path.
func readLog(t *testing.T, path string) []eventstore.RecordedEvent {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.ReadAll(context.Background(), eventstore.Start, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// rewrite writes b as the file path.
func rewrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("%s holds %d files (%s), want none", dir, len(entries), entries[0].Name())
	}
}

// TestWriter: the file Create writes is its header (with the SHA-256 of
// the header's fields and the data) and the data, renamed into place only
// once whole; too much or too little data fails and leaves no file.
func TestWriter(t *testing.T) {
	dir := t.TempDir()
	to := filepath.Join(dir, "b")
	data := bytes.Repeat([]byte("receipt "), 1000)
	taken := time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC)
	w, err := backup.Create(to, backup.Header{Head: 42, Size: uint64(len(data)), TakenAt: taken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(to); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target exists before Finish: %v", err)
	}
	for chunk := range slices.Chunk(data, 777) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.DataSum(); !bytes.Equal(got, sha(data)) {
		t.Errorf("DataSum %x, want %x", got, sha(data))
	}
	hdr, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(to)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != backup.HeaderLen+len(data) || !bytes.Equal(b[backup.HeaderLen:], data) {
		t.Fatalf("file of %d bytes, want the %d-byte header and the data", len(b), backup.HeaderLen)
	}
	if string(b[:16]) != "receiptd-backup\n" || binary.BigEndian.Uint32(b[16:]) != 1 || binary.BigEndian.Uint32(b[20:]) != 1 ||
		binary.BigEndian.Uint64(b[24:]) != 42 || binary.BigEndian.Uint64(b[32:]) != uint64(len(data)) || int64(binary.BigEndian.Uint64(b[40:])) != taken.UnixNano() {
		t.Errorf("header %q", b[:48])
	}
	if want := sha(append(b[:48:48], data...)); !bytes.Equal(b[48:80], want) || !bytes.Equal(hdr.Sum[:], want) {
		t.Errorf("checksum %x (Finish: %x), want %x", b[48:80], hdr.Sum, want)
	}
	read, err := backup.ReadHeader(bytes.NewReader(b))
	if err != nil || read != hdr {
		t.Errorf("ReadHeader = %+v, %v; want %+v", read, err, hdr)
	}
	if leftovers, _ := filepath.Glob(to + ".partial-*"); len(leftovers) > 0 {
		t.Errorf("partial files left: %v", leftovers)
	}

	// Too much, too little: no file.
	for _, n := range []int{len(data) + 1, len(data) - 1} {
		to := filepath.Join(t.TempDir(), "b")
		w, err := backup.Create(to, backup.Header{Size: uint64(len(data))})
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(bytes.Repeat([]byte{1}, n))
		_, ferr := w.Finish()
		if n > len(data) && (werr == nil || !strings.Contains(werr.Error(), "more than the")) {
			t.Errorf("%d bytes of %d: Write %v", n, len(data), werr)
		}
		if ferr == nil {
			t.Errorf("%d bytes of %d: Finish succeeded", n, len(data))
		}
		emptyDir(t, filepath.Dir(to))
	}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestReadHeaderRefuses: what is not a backup, and a backup whose header
// is cut or of another version or format.
func TestReadHeaderRefuses(t *testing.T) {
	good := make([]byte, backup.HeaderLen)
	copy(good, "receiptd-backup\n")
	binary.BigEndian.PutUint32(good[16:], 1)
	binary.BigEndian.PutUint32(good[20:], 1)
	if _, err := backup.ReadHeader(bytes.NewReader(good)); err != nil {
		t.Fatalf("a good header: %v", err)
	}
	with := func(at int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[at:], v)
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		is   error
		want string
	}{
		{"short", []byte("hello"), backup.ErrNotBackup, "5 bytes, shorter than a backup's header"},
		{"other file", bytes.Repeat([]byte("SQLite format 3\x00"), 6), backup.ErrNotBackup, "it does not start with"},
		{"cut header", good[:50], backup.ErrDamaged, "truncated within its 80-byte header"},
		{"version 2", with(16, 2), nil, "backup format version 2: this receiptd reads version 1"},
		{"format 2", with(20, 2), backup.ErrDamaged, "unknown data format 2"},
	} {
		_, err := backup.ReadHeader(bytes.NewReader(c.b))
		if err == nil || !strings.Contains(err.Error(), c.want) || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v saying %q", c.name, err, c.is, c.want)
		}
	}
}

// TestOfflineAndRestore: an offline backup of a store file restores into
// an empty data directory as the same log; a data directory that is not
// empty is refused unless replacing, and then its read models go and its
// log is replaced; a store held open refuses both.
func TestOfflineAndRestore(t *testing.T) {
	src := newLog(t, t.TempDir(), 50)
	file := filepath.Join(t.TempDir(), "receiptd.backup")
	hdr, err := backup.Offline(src, file)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Head != 50 || hdr.TakenAt.IsZero() {
		t.Errorf("header %+v, want head 50", hdr)
	}
	if fi, err := os.Stat(file); err != nil || uint64(fi.Size()) != backup.HeaderLen+hdr.Size {
		t.Fatalf("backup file: %v, %v", fi, err)
	}

	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data") // created by the restore
	r, err := backup.Restore(ctx, file, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header != hdr || len(r.Replaced) != 0 {
		t.Errorf("restored %+v, want header %+v and nothing replaced", r, hdr)
	}
	if a, b := readLog(t, src), readLog(t, filepath.Join(dir, "events.db")); len(a) != 50 || !reflect.DeepEqual(a, b) {
		t.Errorf("the restored log (%d events) is not the backed-up one (%d)", len(b), len(a))
	}

	// Not empty: refused; replaced when asked, the read models removed
	// and files of others left.
	other := t.TempDir()
	newLog(t, other, 3)
	views, err := projections.Open(filepath.Join(other, "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	views.Close()
	rewrite(t, filepath.Join(other, "keys.json"), []byte("{}"))
	if _, err := backup.Restore(ctx, file, other, false); !errors.Is(err, backup.ErrNotEmpty) || !strings.Contains(err.Error(), "data dir "+other+" is not empty (events.db, keys.json, views.db)") {
		t.Errorf("restore into a data dir that is not empty: %v", err)
	}
	r, err = backup.Restore(ctx, file, other, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Replaced, []string{"views.db", "events.db"}) {
		t.Errorf("replaced %q, want views.db and events.db", r.Replaced)
	}
	if _, err := os.Stat(filepath.Join(other, "views.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the read models of the replaced log are still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "keys.json")); err != nil {
		t.Errorf("another file was not left: %v", err)
	}
	if n := len(readLog(t, filepath.Join(other, "events.db"))); n != 50 {
		t.Errorf("the replaced log holds %d events, want 50", n)
	}

	// A store held open: no offline backup (bolt.ErrLocked), no restore
	// into its directory (ErrServerRunning), and nothing changed.
	s, err := bolt.Open(src, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := backup.Offline(src, filepath.Join(t.TempDir(), "x")); !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("offline backup of a held store: %v, want bolt.ErrLocked", err)
	}
	if _, err := backup.Restore(ctx, file, filepath.Dir(src), true); !errors.Is(err, backup.ErrServerRunning) || !strings.Contains(err.Error(), "stop it before restoring") {
		t.Errorf("restore under a held store: %v, want ErrServerRunning", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(src)); len(entries) != 1 {
		t.Errorf("the refused restore left %d files beside the held log", len(entries))
	}
}

// TestRestoreRefusesDamaged: a backup cut short, one with bytes after its
// data, one with a changed byte of data, one whose header's head was
// changed (and its checksum made to match) and a stopped restore write
// nothing into the data directory.
func TestRestoreRefusesDamaged(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b")
	if _, err := backup.Offline(newLog(t, t.TempDir(), 20), file); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[backup.HeaderLen+len(good[backup.HeaderLen:])/2] ^= 1
	headChanged := bytes.Clone(good)
	binary.BigEndian.PutUint64(headChanged[24:], 19)
	copy(headChanged[48:80], sha(append(headChanged[:48:48], headChanged[80:]...)))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		b    []byte
		ctx  context.Context
		is   error
		want string
	}{
		{"truncated", good[:len(good)-4096], nil, backup.ErrDamaged, "truncated: "},
		{"longer", append(bytes.Clone(good), 0), nil, backup.ErrDamaged, "1 bytes after the"},
		{"altered", flipped, nil, backup.ErrDamaged, "checksum mismatch"},
		{"head changed", headChanged, nil, backup.ErrDamaged, "the log in it ends at 20, its header says 19"},
		{"not a backup", []byte("no"), nil, backup.ErrNotBackup, "not a receiptd backup"},
		{"stopped", good, canceled, context.Canceled, "copy the log out of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			from := filepath.Join(t.TempDir(), "b")
			rewrite(t, from, c.b)
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			dir := t.TempDir()
			_, err := backup.Restore(ctx, from, dir, false)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want %v saying %q", err, c.is, c.want)
			}
			emptyDir(t, dir)
		})
	}
}

// chunks is a Backup stream as handlers/api's BackupService sends it.
type chunks []*receiptdv1.BackupChunk

func (c *chunks) Recv() (*receiptdv1.BackupChunk, error) {
	if len(*c) == 0 {
		return nil, io.EOF
	}
	m := (*c)[0]
	*c = (*c)[1:]
	return m, nil
}

// stream is the Backup stream of the store file at path: a header, data
// in chunks of 1000 bytes, a trailer.
func stream(t *testing.T, path string) (chunks, []byte) {
	t.Helper()
	sn, err := bolt.OpenSnapshot(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	var data bytes.Buffer
	if _, err := sn.WriteTo(&data); err != nil {
		t.Fatal(err)
	}
	c := chunks{{Part: &receiptdv1.BackupChunk_Header{Header: &receiptdv1.BackupHeader{
		Format: api.BackupFormat, HeadPosition: sn.Head(), SizeBytes: uint64(data.Len()), TakenAt: timestamppb.Now()}}}}
	for chunk := range slices.Chunk(data.Bytes(), 1000) {
		c = append(c, &receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Data{Data: chunk}})
	}
	c = append(c, &receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Trailer{Trailer: &receiptdv1.BackupTrailer{Sha256: sha(data.Bytes())}}})
	return c, data.Bytes()
}

// TestReceive: a whole stream is a backup file that restores; a stream
// without its header, of another format, ending early or with another
// SHA-256 leaves no file.
func TestReceive(t *testing.T) {
	src := newLog(t, t.TempDir(), 30)
	whole, data := stream(t, src)
	file := filepath.Join(t.TempDir(), "b")
	c := slices.Clone(whole)
	hdr, err := backup.Receive(&c, file)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Head != 30 || hdr.Size != uint64(len(data)) {
		t.Errorf("header %+v", hdr)
	}
	dir := t.TempDir()
	if _, err := backup.Restore(context.Background(), file, dir, false); err != nil {
		t.Fatal(err)
	}
	if n := len(readLog(t, filepath.Join(dir, "events.db"))); n != 30 {
		t.Errorf("the received backup restores %d events, want 30", n)
	}

	otherFormat := slices.Clone(whole)
	otherFormat[0] = &receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Header{Header: &receiptdv1.BackupHeader{Format: "sqlite"}}}
	otherSum := slices.Clone(whole)
	otherSum[len(otherSum)-1] = &receiptdv1.BackupChunk{Part: &receiptdv1.BackupChunk_Trailer{Trailer: &receiptdv1.BackupTrailer{Sha256: sha(nil)}}}
	for _, c := range []struct {
		name string
		c    chunks
		want string
	}{
		{"no header", whole[1:], "did not start with a header"},
		{"other format", otherFormat, `format "sqlite"`},
		{"no trailer", whole[:len(whole)-1], "ended without its trailer"},
		{"other sum", otherSum, "does not match the server's SHA-256"},
		{"nothing", nil, "EOF"},
	} {
		dir := t.TempDir()
		if _, err := backup.Receive(&c.c, filepath.Join(dir, "b")); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
		emptyDir(t, dir)
	}
}
