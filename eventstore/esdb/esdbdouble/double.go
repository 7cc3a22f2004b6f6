package esdbdouble

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Options tune a StreamsDouble. The zero value is a plain-text double whose
// limits are KurrentDB's defaults.
type Options struct {
	// TLS, when set, makes the double serve TLS with this configuration
	// (connect with esdb://127.0.0.1:PORT?tlsCAFile=… or tlsVerifyCert=false).
	TLS *tls.Config

	// MaxAppendSize bounds the bytes of one append's events (data, metadata
	// and type), like the server's MaxAppendSize. Zero means 1 MiB, the
	// server's default.
	MaxAppendSize int

	// NoSystemEvents leaves the log empty at start. By default the double
	// writes a few $-prefixed events first, as a fresh server has.
	NoSystemEvents bool

	// ServerVersion is what ServerFeatures reports. Empty means "24.10.0".
	ServerVersion string
}

const (
	defaultMaxAppendSize = 1 << 20
	defaultServerVersion = "24.10.0"
	// recordOverhead is added to the size of a record's fields to advance
	// the log position, so that positions look like byte offsets.
	recordOverhead = 83
	// readChunk bounds the events copied out of the log under the lock at a
	// time by a read or a subscription.
	readChunk = 256
	// ticksPerSecond: KurrentDB's "created" metadata counts .NET ticks of
	// 100 ns since the Unix epoch.
	ticksPerSecond = int64(time.Second / 100)
)

// StreamsDouble is an in-memory KurrentDB Streams API on a loopback port.
// Its methods are safe for concurrent use.
type StreamsDouble struct {
	opts Options

	mu      sync.Mutex
	log     []record         // in position order
	streams map[string][]int // stream name -> indices into log, by revision
	// tombstoned are the streams deleted for good (Tombstone).
	tombstoned map[string]bool
	nextPos    uint64
	changed    chan struct{} // closed and replaced after every append
	drop       int           // appends left whose response is dropped
	stopped    chan struct{} // closed by Stop, replaced by Restart

	delay atomic.Int64 // nanoseconds every call waits before it is handled
	sent  atomic.Int64 // events sent by subscriptions
	reads atomic.Int64 // Read calls: reads of a stream or $all, subscriptions

	srvMu  sync.Mutex
	srv    *grpc.Server
	addr   string // host:port, fixed by the first Start
	served sync.WaitGroup
	closed bool
}

// record is one event in the log.
type record struct {
	stream      string
	revision    uint64
	id          [16]byte
	eventType   string
	contentType string
	data        []byte
	metadata    []byte
	created     int64 // ticks since the Unix epoch
	pos         uint64
}

// New returns a double holding a fresh log. It serves nothing until Start.
func New(opts Options) *StreamsDouble {
	if opts.MaxAppendSize <= 0 {
		opts.MaxAppendSize = defaultMaxAppendSize
	}
	if opts.ServerVersion == "" {
		opts.ServerVersion = defaultServerVersion
	}
	d := &StreamsDouble{
		opts:       opts,
		streams:    map[string][]int{},
		tombstoned: map[string]bool{},
		changed:    make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if !opts.NoSystemEvents {
		for _, e := range []struct{ stream, eventType string }{
			{"$users", "$User"},
			{"$user-admin", "$UserCreated"},
			{"$users", "$User"},
			{"$user-ops", "$UserCreated"},
			{"$$$scavenges", "$metadata"},
			{"$settings", "$settings"},
		} {
			d.AppendSystemEvent(e.stream, e.eventType)
		}
	}
	return d
}

// Start serves the double on 127.0.0.1 on a port the system chooses.
func (d *StreamsDouble) Start() error {
	d.srvMu.Lock()
	defer d.srvMu.Unlock()
	if d.closed {
		return errors.New("esdbdouble: start: closed")
	}
	if d.srv != nil {
		return errors.New("esdbdouble: start: already serving")
	}
	addr := d.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return d.serveLocked(addr)
}

// serveLocked listens on addr and serves a new gRPC server. d.srvMu is held.
func (d *StreamsDouble) serveLocked(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("esdbdouble: listen %s: %w", addr, err)
	}
	d.addr = lis.Addr().String()
	opts := []grpc.ServerOption{
		// The client pings every 10 s, with or without a call in flight;
		// gRPC's default policy would answer that with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(d.opts.MaxAppendSize + 1<<20),
	}
	if d.opts.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(d.opts.TLS)))
	}
	srv := grpc.NewServer(opts...)
	streams.RegisterStreamsServer(srv, &streamsService{d: d})
	serverfeatures.RegisterServerFeaturesServer(srv, &featuresService{d: d})
	d.srv = srv
	d.served.Go(func() { _ = srv.Serve(lis) })
	return nil
}

// Addr returns the address the double listens on (127.0.0.1:PORT); empty
// before the first Start.
func (d *StreamsDouble) Addr() string {
	d.srvMu.Lock()
	defer d.srvMu.Unlock()
	return d.addr
}

// URL returns a connection string for the double:
// esdb://127.0.0.1:PORT?tls=false, or without tls=false when it serves TLS
// (add tlsCAFile or tlsVerifyCert=false).
func (d *StreamsDouble) URL() string {
	if d.opts.TLS != nil {
		return "esdb://" + d.Addr()
	}
	return "esdb://" + d.Addr() + "?tls=false"
}

// Stop drops every connection and stops listening, ending every call in
// flight (clients see codes.Unavailable), as a crash would. The log is kept:
// Restart serves it again.
func (d *StreamsDouble) Stop() {
	d.srvMu.Lock()
	defer d.srvMu.Unlock()
	d.stopLocked()
}

func (d *StreamsDouble) stopLocked() {
	if d.srv == nil {
		return
	}
	d.mu.Lock()
	close(d.stopped)
	d.mu.Unlock()
	d.srv.Stop()
	d.served.Wait()
	d.srv = nil
	d.mu.Lock()
	d.stopped = make(chan struct{})
	d.mu.Unlock()
}

// Restart stops the double if it is serving and serves the same log again
// on the same port.
func (d *StreamsDouble) Restart() error {
	d.srvMu.Lock()
	defer d.srvMu.Unlock()
	if d.closed {
		return errors.New("esdbdouble: restart: closed")
	}
	d.stopLocked()
	if d.addr == "" {
		return errors.New("esdbdouble: restart: never started")
	}
	var err error
	// The port was just released; another process could take it, but on
	// loopback that is unlikely, so a few tries suffice.
	for range 50 {
		if err = d.serveLocked(d.addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Close stops the double for good.
func (d *StreamsDouble) Close() {
	d.srvMu.Lock()
	defer d.srvMu.Unlock()
	d.stopLocked()
	d.closed = true
}

// DropAppendResponses makes the next n appends commit their events and then
// fail with codes.Unavailable instead of answering, as when the connection
// drops after the server committed: the client cannot tell whether its
// events were written.
func (d *StreamsDouble) DropAppendResponses(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drop = n
}

// SetDelay makes every call wait delay before the double handles it, as an
// overloaded server would; zero removes the delay.
func (d *StreamsDouble) SetDelay(delay time.Duration) { d.delay.Store(int64(delay)) }

// wait applies the delay set by SetDelay, or returns the status of ctx's end.
func (d *StreamsDouble) wait(ctx context.Context) error {
	delay := time.Duration(d.delay.Load())
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// SubscriptionEventsSent returns how many events the double's subscriptions
// have sent, to check that a filter was applied on the server's side.
func (d *StreamsDouble) SubscriptionEventsSent() int64 { return d.sent.Load() }

// Reads returns how many Read calls the double has received (reads of a
// stream or of $all, and subscriptions), to check that a client did not
// read back what it needed not.
func (d *StreamsDouble) Reads() int64 { return d.reads.Load() }

// AppendSystemEvent appends an event of eventType to stream with no
// expected revision check, as the server itself writes its $-prefixed
// streams (stats, users, metadata). Tests use it to put system events, or
// other applications' events, in $all.
func (d *StreamsDouble) AppendSystemEvent(stream, eventType string) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	d.mu.Lock()
	defer d.mu.Unlock()
	d.appendLocked(stream, []proposed{{id: id, eventType: eventType, contentType: "application/json", data: []byte(`{}`)}}, time.Now())
}

// Event is an event as the double holds it, for tests to inspect.
type Event struct {
	Stream    string
	Revision  uint64
	ID        string
	Type      string
	Data      []byte
	Metadata  []byte
	Position  uint64 // commit and prepare position
	CreatedAt time.Time
}

// StreamEvents returns the events of stream, by revision.
func (d *StreamsDouble) StreamEvents(stream string) []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Event
	for _, i := range d.streams[stream] {
		r := d.log[i]
		out = append(out, Event{
			Stream: r.stream, Revision: r.revision, ID: formatUUID(r.id), Type: r.eventType,
			Data: append([]byte(nil), r.data...), Metadata: append([]byte(nil), r.metadata...),
			Position: r.pos, CreatedAt: fromTicks(r.created),
		})
	}
	return out
}

// Len returns the number of events in the log, system events included.
func (d *StreamsDouble) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.log)
}

// proposed is an event of an append request.
type proposed struct {
	id          [16]byte
	eventType   string
	contentType string
	data        []byte
	metadata    []byte
}

// appendLocked appends events to stream and wakes subscribers. d.mu is held.
func (d *StreamsDouble) appendLocked(stream string, events []proposed, now time.Time) []record {
	created := toTicks(now)
	revs := d.streams[stream]
	first := len(d.log)
	for _, e := range events {
		r := record{
			stream:      stream,
			revision:    uint64(len(revs)),
			id:          e.id,
			eventType:   e.eventType,
			contentType: e.contentType,
			data:        e.data,
			metadata:    e.metadata,
			created:     created,
			pos:         d.nextPos,
		}
		d.nextPos += uint64(recordOverhead + len(stream) + len(e.eventType) + len(e.data) + len(e.metadata))
		revs = append(revs, len(d.log))
		d.log = append(d.log, r)
	}
	d.streams[stream] = revs
	if len(events) > 0 {
		close(d.changed)
		d.changed = make(chan struct{})
	}
	return d.log[first:len(d.log):len(d.log)]
}

// afterLocked returns up to max records with a position strictly after pos (all
// records from the start when fromStart), and the channel closed at the next
// append. d.mu is held.
func (d *StreamsDouble) afterLocked(pos position, fromStart bool, max int) ([]record, <-chan struct{}) {
	i := 0
	if !fromStart {
		i = searchLog(d.log, func(r record) bool { return pos.less(r.position()) })
	}
	j := min(len(d.log), i+max)
	return append([]record(nil), d.log[i:j]...), d.changed
}

// position is a commit/prepare pair, compared by commit then prepare.
type position struct{ commit, prepare uint64 }

func (p position) less(q position) bool {
	if p.commit != q.commit {
		return p.commit < q.commit
	}
	return p.prepare < q.prepare
}

func (r record) position() position { return position{r.pos, r.pos} }

func toTicks(t time.Time) int64 { return t.UnixNano() / 100 }

func fromTicks(ticks int64) time.Time {
	return time.Unix(ticks/ticksPerSecond, ticks%ticksPerSecond*100).UTC()
}

func formatUUID(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
