package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/eventstore/storetest"
)

// newLog is the storetest harness: a file in the case's temporary
// directory, verified once the case has closed it.
func newLog(opts bolt.Options) func(t *testing.T) storetest.OpenFunc {
	return func(t *testing.T) storetest.OpenFunc {
		path := filepath.Join(t.TempDir(), "events.db")
		t.Cleanup(func() { verify(t, path) })
		return func(context.Context) (eventstore.Store, error) { return bolt.Open(path, opts) }
	}
}

// verify checks a closed store file, if the test created one.
func verify(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := bolt.Verify(path); err != nil {
		t.Error(err)
	}
}

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts bolt.Options
	}{
		{"GroupCommit", bolt.Options{}},
		{"NoGroupCommit", bolt.WithNoGroupCommit(bolt.Options{})},
		{"BoltBatch", bolt.WithBoltBatch(bolt.Options{})},
		// Every subscriber reads the file; or falls behind the tail often.
		{"NoTail", bolt.Options{TailBytes: -1}},
		{"SmallTail", bolt.Options{TailBytes: 2048}},
		// A file in the layouts written before schema 2 and 3.
		{"Schema1", bolt.WithSchema1(bolt.Options{})},
		{"Schema2", bolt.WithSchema2(bolt.Options{})},
		// The index written with every commit; or folded in cycles of a
		// few commits (a buffer of some 20 entries).
		{"IndexEager", bolt.Options{IndexBufferBytes: -1}},
		{"SmallIndexBuffer", bolt.Options{IndexBufferBytes: 4096}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			storetest.Run(t, storetest.Harness{
				NewLog:   newLog(mode.opts),
				Features: storetest.Features{FreshLog: true, Reopen: true, Subscribe: true},
			})
		})
	}
}

// openStore opens a store in a new file, closed and verified at cleanup.
func openStore(t *testing.T, opts bolt.Options) (*bolt.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	t.Cleanup(func() { verify(t, path) })
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// poll waits until cond holds, checking every millisecond until ctx ends.
func poll(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// recv receives from ch, failing the test if ctx ends first.
func recv[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		var zero T
		return zero
	}
}

func event(i int) aggregate.Event {
	return aggregate.Event{
		ID:       fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		Type:     "test.appended.v1",
		Data:     fmt.Appendf(nil, `{"n":%d}`, i),
		Metadata: []byte(`{"source":"test"}`),
	}
}

// holdFirstCommit returns options whose first commit waits, with its write
// transaction open, until release is called; held is closed once it waits.
func holdFirstCommit() (opts bolt.Options, held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var once sync.Once
	opts = bolt.WithBeforeCommit(bolt.Options{}, func() {
		once.Do(func() {
			close(h)
			<-r
		})
	})
	var rOnce sync.Once
	return opts, h, func() { rOnce.Do(func() { close(r) }) }
}

// TestGroupCommitOneTransactionForQueued: appends that queue while a commit
// runs all go into the next single transaction.
func TestGroupCommitOneTransactionForQueued(t *testing.T) {
	const writers = 64
	opts, held, release := holdFirstCommit()
	s, _ := openStore(t, opts)
	t.Cleanup(release)
	ctx := deadline(t)

	errs := make(chan error, writers)
	appendOne := func(i int) {
		_, err := s.Append(ctx, fmt.Sprintf("receipt-test.%d", i), eventstore.NoStream, event(i))
		errs <- err
	}
	go appendOne(0)
	recv(t, ctx, held, "the first commit")
	for i := 1; i < writers; i++ {
		go appendOne(i)
	}
	poll(t, ctx, "appends to queue", func() bool { return bolt.QueueLen(s) == writers-1 })
	release()
	for range writers {
		if err := recv(t, ctx, errs, "an append"); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Commits != 2 || st.Appends != writers || st.Events != writers {
		t.Fatalf("stats %+v, want 2 commits for %d appends", st, writers)
	}
}

// TestGroupCommitUnderLoad: with many concurrent writers the committer
// shares each fsync between many appends.
func TestGroupCommitUnderLoad(t *testing.T) {
	const writers, each = 64, 20
	s, _ := openStore(t, bolt.Options{})
	ctx := deadline(t)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("receipt-load.%d", w)
			for i := range each {
				if _, err := s.Append(ctx, stream, eventstore.ExpectedRevision(i-1), event(w*each+i)); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	t.Logf("%d appends in %d commits (%.1f per commit)", st.Appends, st.Commits, float64(st.Appends)/float64(st.Commits))
	if st.Appends != writers*each || st.Commits*4 > st.Appends {
		t.Fatalf("stats %+v: want %d appends in at most a quarter as many commits", st, writers*each)
	}
}

// TestStatsWithoutCommitter: without group commit, every append is its own
// commit; bbolt's DB.Batch shares commits between concurrent appends.
func TestStatsWithoutCommitter(t *testing.T) {
	const writers, each = 8, 5
	for _, mode := range []struct {
		name   string
		opts   bolt.Options
		shared bool
	}{
		{"NoGroupCommit", bolt.WithNoGroupCommit(bolt.Options{}), false},
		{"BoltBatch", bolt.WithBoltBatch(bolt.Options{}), true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s, _ := openStore(t, mode.opts)
			ctx := deadline(t)
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						if _, err := s.Append(ctx, fmt.Sprintf("receipt-stats.%d", w), eventstore.ExpectedRevision(i-1), event(i)); err != nil {
							errs[w] = err
							return
						}
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			// A refused append commits nothing.
			if _, err := s.Append(ctx, "receipt-stats.0", eventstore.NoStream, event(0)); !errors.Is(err, eventstore.ErrWrongRevision) {
				t.Fatalf("got %v, want ErrWrongRevision", err)
			}
			st := s.Stats()
			ok := st.Appends == writers*each && st.Events == writers*each && st.WrongRevisions == 1 && st.Commits > 0
			if mode.shared {
				ok = ok && st.Commits < st.Appends
			} else {
				ok = ok && st.Commits == st.Appends
			}
			if !ok {
				t.Fatalf("stats %+v after %d appends and one refused", st, writers*each)
			}
		})
	}
}

// TestGroupCommitChecksInOrder: in one transaction each append is checked
// against the stream as the appends before it left it, and a refused append
// fails alone.
func TestGroupCommitChecksInOrder(t *testing.T) {
	opts, held, release := holdFirstCommit()
	s, _ := openStore(t, opts)
	t.Cleanup(release)
	ctx := deadline(t)

	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "receipt-test.hold", eventstore.NoStream, event(0))
		first <- err
	}()
	recv(t, ctx, held, "the first commit")

	x, y := "receipt-test.x", "receipt-test.y"
	steps := []struct {
		stream   string
		expected eventstore.ExpectedRevision
		wantRev  int64                       // -1: refused
		actual   eventstore.ExpectedRevision // when refused
	}{
		{x, eventstore.NoStream, 0, 0},
		{x, eventstore.NoStream, -1, eventstore.Exact(0)},
		{x, eventstore.Exact(0), 1, 0},
		{y, eventstore.Exact(3), -1, eventstore.NoStream},
		{y, eventstore.Any, 0, 0},
		{x, eventstore.Exact(1), 2, 0},
		{y, eventstore.Exact(1), -1, eventstore.Exact(0)},
	}
	type outcome struct {
		res eventstore.AppendResult
		err error
	}
	outs := make([]chan outcome, len(steps))
	for i, st := range steps {
		outs[i] = make(chan outcome, 1)
		go func() {
			res, err := s.Append(ctx, st.stream, st.expected, event(i+1))
			outs[i] <- outcome{res, err}
		}()
		// One at a time, so that the queue holds them in this order.
		poll(t, ctx, "the append to queue", func() bool { return bolt.QueueLen(s) == i+1 })
	}
	release()
	if err := recv(t, ctx, first, "the first append"); err != nil {
		t.Fatal(err)
	}
	pos := uint64(1)
	for i, st := range steps {
		o := recv(t, ctx, outs[i], "an append")
		if st.wantRev < 0 {
			var wre *eventstore.WrongRevisionError
			if !errors.As(o.err, &wre) || wre.Actual != st.actual {
				t.Fatalf("step %d (%s at %s): got %v, want a wrong revision with the stream at %s", i, st.stream, st.expected, o.err, st.actual)
			}
			continue
		}
		pos++
		if o.err != nil || o.res.NextRevision != uint64(st.wantRev) || o.res.Position.Commit != pos {
			t.Fatalf("step %d (%s at %s): got %+v, %v; want revision %d at %d", i, st.stream, st.expected, o.res, o.err, st.wantRev, pos)
		}
	}
	if st := s.Stats(); st.Commits != 2 || st.Appends != 5 || st.WrongRevisions != 3 {
		t.Fatalf("stats %+v, want 2 commits, 5 appends, 3 wrong revisions", st)
	}
}

// TestSubscribeCommitBetweenReadAndWait: an event committed after
// Subscribe found nothing to read, but before it waits for a commit, is
// delivered (the subscriber registered for the notification before reading).
func TestSubscribeCommitBetweenReadAndWait(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts bolt.Options
	}{
		{"GroupCommit", bolt.Options{}},
		{"NoGroupCommit", bolt.WithNoGroupCommit(bolt.Options{})},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := deadline(t)
			var s *bolt.Store
			ready := make(chan struct{})
			var once sync.Once
			opts := bolt.WithAfterSubscribeRead(mode.opts, func(n int) {
				if n > 0 {
					return
				}
				once.Do(func() {
					<-ready // s is set
					if _, err := s.Append(ctx, "receipt-test.window", eventstore.NoStream, event(1)); err != nil {
						t.Errorf("append in the window: %v", err)
					}
				})
			})
			s, _ = openStore(t, opts)
			close(ready)
			got := make(chan eventstore.RecordedEvent, 1)
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- s.Subscribe(sctx, eventstore.Start, func(_ context.Context, batch []eventstore.RecordedEvent) error {
					got <- batch[0]
					cancel()
					return nil
				})
			}()
			if e := recv(t, ctx, got, "the event committed between read and wait"); e.Stream != "receipt-test.window" {
				t.Fatalf("delivered %s", e.Stream)
			}
			if err := recv(t, ctx, done, "Subscribe to return"); !errors.Is(err, context.Canceled) {
				t.Fatalf("Subscribe: %v", err)
			}
		})
	}
}

func TestCommitFailureIsUnavailable(t *testing.T) {
	s, path := openStore(t, bolt.Options{MaxSize: 1 << 20})
	ctx := deadline(t)
	stream := "receipt-test.full"
	data := []byte(`{"blob":"` + strings.Repeat("x", 64<<10) + `"}`)
	acked := 0
	var err error
	for ; acked < 64; acked++ {
		e := event(acked)
		e.Data = data
		if _, err = s.Append(ctx, stream, eventstore.ExpectedRevision(acked-1), e); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatalf("appended %d KiB into a file capped at 1 MiB", acked*64)
	}
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append past MaxSize: got %v, want ErrUnavailable", err)
	}
	if st := s.Stats(); st.Unavailable != 1 || st.Appends != uint64(acked) {
		t.Fatalf("stats %+v, want %d appends and 1 unavailable", st, acked)
	}
	evs, err := s.ReadStream(ctx, stream, 0, 0)
	if err != nil || len(evs) != acked {
		t.Fatalf("ReadStream after the failed commit: %d events, %v; want %d", len(evs), err, acked)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if evs, err := s2.ReadStream(ctx, stream, 0, 0); err != nil || len(evs) != acked {
		t.Fatalf("ReadStream after reopening: %d events, %v; want %d", len(evs), err, acked)
	}
	res, err := s2.Append(ctx, stream, eventstore.Exact(uint64(acked-1)), event(1000))
	if err != nil || res.NextRevision != uint64(acked) || res.Position.Commit != uint64(acked+1) {
		t.Fatalf("append after reopening without the cap: %+v, %v; want revision %d at %d", res, err, acked, acked+1)
	}
}

// TestStreamNames: stream names that are prefixes of one another, hold any
// byte, or sit on the uvarint length boundary, among enough streams to span
// many pages, keep their own revisions.
func TestStreamNames(t *testing.T) {
	s, _ := openStore(t, bolt.Options{})
	ctx := deadline(t)
	names := []string{
		"s", "s\x00", "s\xff", "s\xff\xff\xff\xff\xff\xff\xff\xff", "ss", "\x00", "\xff",
		strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 129), strings.Repeat("\xff", 1024),
	}
	for i := range 1500 {
		names = append(names, fmt.Sprintf("receipt-filler.%05d", i))
	}
	// Three rounds, so that every stream is appended to while the others
	// already exist; within a round, 32 writers share the commits.
	for round := range 3 {
		next := make(chan string)
		errs := make([]error, 32)
		var wg sync.WaitGroup
		for w := range errs {
			wg.Go(func() {
				for name := range next {
					res, err := s.Append(ctx, name, eventstore.ExpectedRevision(round-1), event(round))
					if err == nil && res.NextRevision != uint64(round) {
						err = fmt.Errorf("revision %d", res.NextRevision)
					}
					if err != nil {
						errs[w] = fmt.Errorf("round %d, stream %q: %w", round, name, err)
						for range next {
						}
						return
					}
				}
			})
		}
		for _, name := range names {
			next <- name
		}
		close(next)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range names[:11] {
		evs, err := s.ReadStream(ctx, name, 0, 0)
		if err != nil || len(evs) != 3 {
			t.Fatalf("stream %d %q: %d events, %v; want 3", i, name, len(evs), err)
		}
		for rev, e := range evs {
			if e.Stream != name || e.Revision != uint64(rev) {
				t.Fatalf("stream %q: got %q@%d at index %d", name, e.Stream, e.Revision, rev)
			}
		}
	}
	if _, err := s.Append(ctx, strings.Repeat("x", 1025), eventstore.Any, event(0)); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("append to a stream name of 1025 bytes: got %v, want ErrInvalid", err)
	}
}

func TestAppendValidation(t *testing.T) {
	s, _ := openStore(t, bolt.Options{MaxAppendBytes: 1 << 10})
	ctx := deadline(t)
	noType := event(1)
	noType.Type = ""
	big := event(2)
	big.Data = make([]byte, 2<<10)
	for _, tc := range []struct {
		name     string
		expected eventstore.ExpectedRevision
		events   []aggregate.Event
	}{
		{"no type", eventstore.Any, []aggregate.Event{event(0), noType}},
		{"too big", eventstore.Any, []aggregate.Event{big}},
		{"bad expected revision", -3, []aggregate.Event{event(3)}},
	} {
		if _, err := s.Append(ctx, "receipt-test.invalid", tc.expected, tc.events...); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
	}
	if err := s.Subscribe(ctx, eventstore.Start, nil); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("Subscribe with a nil handler: got %v, want ErrInvalid", err)
	}
}

// TestQueueFull: when the committer cannot keep up, Append fails fast with
// ErrUnavailable instead of queueing without bound.
func TestQueueFull(t *testing.T) {
	opts, held, release := holdFirstCommit()
	opts.MaxQueuedAppends = 2
	s, _ := openStore(t, opts)
	t.Cleanup(release)
	ctx := deadline(t)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := s.Append(ctx, fmt.Sprintf("receipt-test.%d", i), eventstore.NoStream, event(i))
			errs <- err
		}()
		if i == 0 {
			recv(t, ctx, held, "the first commit")
		}
	}
	poll(t, ctx, "the queue to fill", func() bool { return bolt.QueueLen(s) == 2 })
	_, err := s.Append(ctx, "receipt-test.3", eventstore.NoStream, event(3))
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append to a full queue: got %v, want ErrUnavailable", err)
	}
	release()
	for range 3 {
		if err := recv(t, ctx, errs, "an append"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAbandonedAppend: an append whose caller gave up before the committer
// reached it is not written.
func TestAbandonedAppend(t *testing.T) {
	opts, held, release := holdFirstCommit()
	s, _ := openStore(t, opts)
	t.Cleanup(release)
	ctx := deadline(t)
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "receipt-test.first", eventstore.NoStream, event(0))
		first <- err
	}()
	recv(t, ctx, held, "the first commit")
	actx, cancel := context.WithCancel(ctx)
	abandoned := make(chan error, 1)
	go func() {
		_, err := s.Append(actx, "receipt-test.abandoned", eventstore.NoStream, event(1))
		abandoned <- err
	}()
	poll(t, ctx, "the append to queue", func() bool { return bolt.QueueLen(s) == 1 })
	cancel()
	if err := recv(t, ctx, abandoned, "the abandoned append"); !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned append: got %v, want context.Canceled", err)
	}
	release()
	if err := recv(t, ctx, first, "the first append"); err != nil {
		t.Fatal(err)
	}
	// Once the queue has been drained, the abandoned append is known not
	// to have been written.
	if _, err := s.Append(ctx, "receipt-test.after", eventstore.NoStream, event(2)); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ReadStream(ctx, "receipt-test.abandoned", 0, 0); err != nil || len(evs) != 0 {
		t.Fatalf("abandoned append: %d events written, %v", len(evs), err)
	}
}

func TestOpenLockedFile(t *testing.T) {
	_, path := openStore(t, bolt.Options{})
	_, err := bolt.Open(path, bolt.Options{LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open of a locked file: got %v, want an error naming the file", err)
	}
}

func TestOpenForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bolt file\n", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := bolt.Open(path, bolt.Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a file that is not a store succeeded")
	}
}

const crashChildEnv = "RECEIPTD_BOLT_CRASH_CHILD"

// TestAcknowledgedAppendsSurviveKill: a child process appends with 8
// writers and reports each acknowledged append; it is killed (SIGKILL, no
// Close) mid-stream, and every acknowledged append must be in the file.
func TestAcknowledgedAppendsSurviveKill(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := filepath.Join(t.TempDir(), "events.db")
	ctx := deadline(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAcknowledgedAppendsSurviveKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		stream string
		rev    uint64
		pos    uint64
		id     string
	}
	var acks []ack
	sc := bufio.NewScanner(out)
	for len(acks) < 500 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != "ack" {
			continue
		}
		rev, err1 := strconv.ParseUint(f[2], 10, 64)
		pos, err2 := strconv.ParseUint(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acks = append(acks, ack{f[1], rev, pos, f[4]})
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if len(acks) < 500 {
		t.Fatalf("child acknowledged only %d appends: %v\n%s", len(acks), sc.Err(), stderr.String())
	}

	verify(t, path)
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, a := range acks {
		evs, err := s.ReadStream(ctx, a.stream, a.rev, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("acknowledged %s@%d: %d events, %v", a.stream, a.rev, len(evs), err)
		}
		if e := evs[0]; e.ID != a.id || e.Position.Commit != a.pos {
			t.Fatalf("acknowledged %s@%d as %s at %d, found %s at %s", a.stream, a.rev, a.id, a.pos, e.ID, e.Position)
		}
	}
}

// crashChild appends until it is killed, printing each acknowledged append.
func crashChild(t *testing.T, path string) {
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100000 {
				stream := fmt.Sprintf("receipt-crash.%d-%d", w, i/10)
				e := event(w*100000 + i)
				res, err := s.Append(context.Background(), stream, eventstore.ExpectedRevision(i%10-1), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("ack %s %d %d %s\n", stream, res.NextRevision, res.Position.Commit, e.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
