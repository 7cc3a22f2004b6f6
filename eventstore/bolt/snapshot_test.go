package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// TestSnapshotDuringAppends: a snapshot taken while writers append holds
// every append acknowledged before it began, nothing past its head, and is a
// file Open opens (and Verify passes). With a memory map larger than the
// file (Options.InitialMmapSize), the writers are not held up meanwhile:
// they append while it is open.
func TestSnapshotDuringAppends(t *testing.T) {
	s, _ := openStore(t, bolt.Options{InitialMmapSize: 256 << 20})
	ctx, cancel := context.WithCancel(deadline(t))
	const writers = 8
	var (
		stop  atomic.Bool
		acked atomic.Uint64 // the highest position acknowledged so far
		wg    sync.WaitGroup
		errs  = make([]error, writers)
		done  = make([]int, writers)
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				res, err := s.Append(ctx, fmt.Sprintf("receipt-snap.%d", w), eventstore.ExpectedRevision(i-1), event(w*100000+i))
				if err != nil {
					errs[w] = err
					return
				}
				for {
					cur := acked.Load()
					if res.Position.Commit <= cur || acked.CompareAndSwap(cur, res.Position.Commit) {
						break
					}
				}
				done[w]++
			}
		})
	}
	t.Cleanup(func() { stop.Store(true); cancel(); wg.Wait() })
	poll(t, ctx, "some appends", func() bool { return acked.Load() >= 200 })

	before := acked.Load()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if sn.Head() < before {
		t.Fatalf("snapshot head %d is before position %d, acknowledged before it began", sn.Head(), before)
	}
	// Appends go on while the snapshot is open.
	atOpen := acked.Load()
	poll(t, ctx, "appends while the snapshot is open", func() bool { return acked.Load() >= atOpen+100 })
	path := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := sn.WriteTo(f)
	if err != nil {
		t.Fatal(err)
	}
	if n != sn.Size() {
		t.Errorf("WriteTo wrote %d bytes, Size said %d", n, sn.Size())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	head := sn.Head()
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sn.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	stop.Store(true)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	if got, err := bolt.CheckFile(path); err != nil || got != head {
		t.Fatalf("CheckFile: head %d, %v; want %d", got, err, head)
	}
	if err := bolt.Verify(path); err != nil {
		t.Fatal(err)
	}
	copied, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	if h, _ := copied.Head(ctx); h.Commit != head {
		t.Fatalf("the copy's head is %d, the snapshot's %d", h.Commit, head)
	}
	want, err := s.ReadAll(ctx, eventstore.Start, int(head))
	if err != nil {
		t.Fatal(err)
	}
	got, err := copied.ReadAll(ctx, eventstore.Start, int(head)+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != int(head) || len(want) != int(head) {
		t.Fatalf("copy holds %d events, live %d up to head %d", len(got), len(want), head)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d differs:\n copy %+v\n live %+v", i+1, got[i], want[i])
		}
	}
	t.Logf("snapshot of %d events (%d bytes) while %d writers appended %v in all", head, n, writers, done)
}

// TestOpenSnapshotOffline: a store file no process holds is snapshotted
// read-only; one a Store holds is refused with ErrLocked; a
// missing file is not created.
func TestOpenSnapshotOffline(t *testing.T) {
	ctx := deadline(t)
	s, path := openStore(t, bolt.Options{})
	for i := range 5 {
		if _, err := s.Append(ctx, fmt.Sprintf("receipt-off.%d", i), eventstore.NoStream, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bolt.OpenSnapshot(path, 50*time.Millisecond); !errors.Is(err, bolt.ErrLocked) {
		t.Fatalf("OpenSnapshot of a file a Store holds: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Snapshot of a closed store: %v", err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := bolt.OpenSnapshot(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if sn.Head() != 5 {
		t.Errorf("head %d, want 5", sn.Head())
	}
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("an offline snapshot changed the file")
	}
	missing := filepath.Join(t.TempDir(), "events.db")
	if _, err := bolt.OpenSnapshot(missing, time.Second); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenSnapshot of a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("OpenSnapshot created the missing file")
	}
}

// TestCheckFileRefusesDamage: a copy cut short, one whose meta pages were
// overwritten, and a bbolt file that is no event store all fail CheckFile.
// (bbolt keeps no checksum of values: a changed byte inside an event is
// for the backup's SHA-256 to catch, not for CheckFile.)
func TestCheckFileRefusesDamage(t *testing.T) {
	ctx := deadline(t)
	s, path := openStore(t, bolt.Options{})
	for i := range 300 {
		if _, err := s.Append(ctx, fmt.Sprintf("receipt-dmg.%d", i%7), eventstore.Any, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if head, err := bolt.CheckFile(path); err != nil || head != 300 {
		t.Fatalf("CheckFile of a good file: %d, %v", head, err)
	}
	space, err := bolt.Space(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Both meta pages (0 and 1) overwritten: bbolt finds no valid one.
	garbled := bytes.Clone(good)
	for i := range 2 * space.PageSize {
		garbled[i] = 0xA5
	}
	// A bbolt file of something else.
	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for name, p := range map[string]string{
		"truncated":   write("truncated", good[:space.HighWater/2]),
		"meta pages":  write("garbled", garbled),
		"not a store": other,
	} {
		if _, err := bolt.CheckFile(p); err == nil {
			t.Errorf("CheckFile of a file with its %s passed", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
