package bolt_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// The lazy index (pending.go): entries held in memory, folded in cycles,
// read again from the events after a crash.

// indexModes are buffers that keep every entry of a test in memory (the
// default), end a cycle every few commits, and write the index with every
// commit.
var indexModes = []struct {
	name string
	opts bolt.Options
}{
	{"Default", bolt.Options{}},
	{"SmallBuffer", bolt.Options{IndexBufferBytes: 4096}},
	{"Eager", bolt.Options{IndexBufferBytes: -1}},
}

// crashImage copies the file of an open store while it commits nothing:
// what a crash (SIGKILL, power loss after the last fsync) leaves.
func crashImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "crashed.db")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestIndexAfterCrash appends to many streams, takes the file as a crash
// leaves it (with index entries held only in memory), opens it: every
// stream reads back whole and in order, its next append gets the next
// revision and a stale expected revision is refused; the file verifies
// after a Close, and again after a second crash image.
func TestIndexAfterCrash(t *testing.T) {
	for _, m := range indexModes {
		t.Run(m.name, func(t *testing.T) {
			ctx := deadline(t)
			s, path := openStore(t, m.opts)
			const streams = 300
			revs := make([]int, streams)
			// Each stream gets its own number of events, in rounds, so
			// that commits interleave streams; a writer owns the streams k
			// with k%8 == w.
			var wg sync.WaitGroup
			for round := range 12 {
				wg = sync.WaitGroup{}
				for w := range 8 {
					wg.Go(func() {
						for k := w; k < streams; k += 8 {
							if (k+round)%3 == 0 {
								continue
							}
							e := event(round*streams + k)
							res, err := s.Append(ctx, fmt.Sprintf("receipt-crash.%d", k), eventstore.ExpectedRevision(revs[k]-1), e)
							if err != nil {
								t.Error(err)
								return
							}
							if res.NextRevision != uint64(revs[k]) {
								t.Errorf("stream %d: revision %d, want %d", k, res.NextRevision, revs[k])
							}
							revs[k]++
						}
					})
				}
				wg.Wait()
			}
			if t.Failed() {
				return
			}
			check := func(s *bolt.Store) {
				t.Helper()
				for k := range streams {
					evs, err := s.ReadStream(ctx, fmt.Sprintf("receipt-crash.%d", k), 0, 0)
					if err != nil || len(evs) != revs[k] {
						t.Fatalf("stream %d: %d events, %v; want %d", k, len(evs), err, revs[k])
					}
					for i, e := range evs {
						if e.Revision != uint64(i) {
							t.Fatalf("stream %d: event %d has revision %d", k, i, e.Revision)
						}
					}
					if evs, err := s.ReadStream(ctx, fmt.Sprintf("receipt-crash.%d", k), 2, 1); err != nil || len(evs) != min(1, max(0, revs[k]-2)) {
						t.Fatalf("stream %d from 2: %d events, %v", k, len(evs), err)
					}
				}
			}
			check(s)
			pending := bolt.PendingEntries(s)
			t.Logf("%d index entries in memory at the crash", pending)

			crashed := crashImage(t, path)
			s2, err := bolt.Open(crashed, m.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := bolt.PendingEntries(s2); got != pending && m.opts.IndexBufferBytes > 0 {
				// A small buffer's entries in memory after Open are those
				// after the indexed position: more than at the crash.
				t.Logf("%d index entries in memory after Open", got)
			}
			check(s2)
			for k := range streams {
				stream := fmt.Sprintf("receipt-crash.%d", k)
				if _, err := s2.Append(ctx, stream, eventstore.ExpectedRevision(revs[k]-2), event(1e6+k)); revs[k] > 0 && !errorsIsWrongRevision(err) {
					t.Fatalf("stream %d: stale expected revision: %v", k, err)
				}
				res, err := s2.Append(ctx, stream, eventstore.ExpectedRevision(revs[k]-1), event(2e6+k))
				if err != nil || res.NextRevision != uint64(revs[k]) {
					t.Fatalf("stream %d after the crash: %+v, %v; want revision %d", k, res, err, revs[k])
				}
				revs[k]++
			}
			check(s2)
			crashed2 := crashImage(t, crashed)
			if err := s2.Close(); err != nil {
				t.Fatal(err)
			}
			verify(t, crashed)
			verify(t, crashed2)
			s3, err := bolt.Open(crashed2, m.opts)
			if err != nil {
				t.Fatal(err)
			}
			check(s3)
			if err := s3.Close(); err != nil {
				t.Fatal(err)
			}
			if n := bolt.PendingEntries(s3); n != 0 {
				t.Fatalf("%d index entries in memory after Close", n)
			}
		})
	}
}

func errorsIsWrongRevision(err error) bool { return errors.Is(err, eventstore.ErrWrongRevision) }

// TestReadStreamWhileFolding reads streams while 8 writers append to them
// and the committer folds their entries in cycles of a few commits: a read
// never misses an event acknowledged before it began, and never has a gap.
func TestReadStreamWhileFolding(t *testing.T) {
	for _, m := range indexModes {
		t.Run(m.name, func(t *testing.T) {
			ctx := deadline(t)
			s, _ := openStore(t, m.opts)
			const streams = 64
			var acked [streams]atomic.Int64
			var stop atomic.Bool
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := 0; !stop.Load() && i < 150; i++ {
						k := w + 8*(i%(streams/8))
						rev := acked[k].Load()
						if _, err := s.Append(ctx, fmt.Sprintf("receipt-fold.%d", k), eventstore.ExpectedRevision(rev-1), event(w*1000+i)); err != nil {
							t.Error(err)
							return
						}
						acked[k].Add(1)
					}
				})
			}
			var readers sync.WaitGroup
			reads := atomic.Int64{}
			for r := range 2 {
				readers.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(r), 9))
					for !stop.Load() {
						k := rng.IntN(streams)
						want := acked[k].Load()
						evs, err := s.ReadStream(ctx, fmt.Sprintf("receipt-fold.%d", k), 0, 0)
						if err != nil {
							t.Error(err)
							return
						}
						if int64(len(evs)) < want {
							t.Errorf("stream %d: read %d events, %d acknowledged before", k, len(evs), want)
							return
						}
						for i, e := range evs {
							if e.Revision != uint64(i) {
								t.Errorf("stream %d: event %d has revision %d", k, i, e.Revision)
								return
							}
						}
						reads.Add(1)
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			readers.Wait()
			t.Logf("%d reads", reads.Load())
		})
	}
}

// TestIndexAfterFailedCommit: a commit that fails (the file at its
// MaxSize) leaves the entries in memory as the file has them: the stream
// goes on at the next revision once there is room.
func TestIndexAfterFailedCommit(t *testing.T) {
	for _, m := range indexModes {
		t.Run(m.name, func(t *testing.T) {
			opts := m.opts
			opts.MaxSize = 1 << 20
			s, _ := openStore(t, opts)
			ctx := deadline(t)
			big := event(0)
			big.Data = make([]byte, 48<<10)
			var n int
			for ; n < 64; n++ {
				if _, err := s.Append(ctx, "receipt-test.full", eventstore.ExpectedRevision(n-1), big); err != nil {
					break
				}
				if _, err := s.Append(ctx, "receipt-test.small", eventstore.ExpectedRevision(n-1), event(n)); err != nil {
					t.Fatal(err)
				}
			}
			if n == 64 {
				t.Fatal("never full")
			}
			res, err := s.Append(ctx, "receipt-test.small", eventstore.ExpectedRevision(n-1), event(100))
			if err != nil {
				t.Skipf("no room left for a small event either: %v", err)
			}
			if res.NextRevision != uint64(n) {
				t.Fatalf("after the failed commit: revision %d, want %d", res.NextRevision, n)
			}
			if evs, err := s.ReadStream(ctx, "receipt-test.full", 0, 0); err != nil || len(evs) != n {
				t.Fatalf("full stream: %d events, %v; want %d", len(evs), err, n)
			}
		})
	}
}
