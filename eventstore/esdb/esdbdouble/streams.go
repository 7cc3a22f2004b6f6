package esdbdouble

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Metadata keys and values of KurrentDB's gRPC API.
const (
	metaType        = "type"
	metaContentType = "content-type"
	metaCreated     = "created"
	contentTypeJSON = "application/json"
)

type streamsService struct {
	streams.UnimplementedStreamsServer
	d *StreamsDouble
}

// Append implements the client-streaming append: options first, then the
// proposed events, then one answer.
func (s *streamsService) Append(srv streams.Streams_AppendServer) error {
	if err := s.d.wait(srv.Context()); err != nil {
		return err
	}
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "esdbdouble: the first append message must hold the options")
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	if stream == "" {
		return status.Error(codes.InvalidArgument, "esdbdouble: empty stream name")
	}
	if isMetastream(stream) {
		return errMetadata(stream)
	}
	var events []proposed
	size := 0
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		msg := req.GetProposedMessage()
		if msg == nil {
			return status.Error(codes.InvalidArgument, "esdbdouble: expected a proposed message after the options")
		}
		p, err := toProposed(msg)
		if err != nil {
			return err
		}
		size += len(p.data) + len(p.metadata) + len(p.eventType)
		if size > s.d.opts.MaxAppendSize {
			// As the server: InvalidArgument with the exception in the trailers.
			srv.SetTrailer(metadata.Pairs("exception", "maximum-append-size-exceeded", "maximum-append-size", strconv.Itoa(s.d.opts.MaxAppendSize)))
			return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", s.d.opts.MaxAppendSize)
		}
		events = append(events, p)
	}

	d := s.d
	d.mu.Lock()
	if d.tombstoned[stream] {
		d.mu.Unlock()
		return streamDeleted(srv.SetTrailer, stream)
	}
	revs := d.streams[stream]
	current := int64(len(revs)) - 1 // -1: no stream
	ok := true
	switch want := opts.ExpectedStreamRevision.(type) {
	case *streams.AppendReq_Options_Revision:
		ok = current == int64(want.Revision)
	case *streams.AppendReq_Options_NoStream:
		ok = current == -1
	case *streams.AppendReq_Options_StreamExists:
		ok = current >= 0
	case *streams.AppendReq_Options_Any:
	default:
		d.mu.Unlock()
		return status.Error(codes.InvalidArgument, "esdbdouble: no expected stream revision")
	}
	if !ok {
		d.mu.Unlock()
		return srv.SendAndClose(&streams.AppendResp{Result: &streams.AppendResp_WrongExpectedVersion_{
			WrongExpectedVersion: wrongExpectedVersion(opts, current),
		}})
	}
	written := d.appendLocked(stream, events, time.Now())
	dropped := d.drop > 0
	if dropped {
		d.drop--
	}
	last := current + int64(len(events))
	d.mu.Unlock()

	if dropped {
		return status.Error(codes.Unavailable, "esdbdouble: connection lost after the append was committed (injected)")
	}
	success := &streams.AppendResp_Success{}
	if last < 0 {
		success.CurrentRevisionOption = &streams.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		success.CurrentRevisionOption = &streams.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(last)}
	}
	if len(written) == 0 {
		success.PositionOption = &streams.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		// KurrentDB answers with the position of the write's last event.
		p := written[len(written)-1].pos
		success.PositionOption = &streams.AppendResp_Success_Position{Position: &streams.AppendResp_Position{CommitPosition: p, PreparePosition: p}}
	}
	return srv.SendAndClose(&streams.AppendResp{Result: &streams.AppendResp_Success_{Success: success}})
}

// Delete answers that the double does not implement deleting a stream
// softly (the stream's $tb metadata, which a later append writes past):
// receiptd only ever tombstones (Tombstone).
func (s *streamsService) Delete(context.Context, *streams.DeleteReq) (*streams.DeleteResp, error) {
	return nil, status.Error(codes.Unimplemented, "esdbdouble: deleting a stream (soft delete) is not implemented; Tombstone is")
}

// Tombstone deletes a stream for good, as the server does: the stream
// gets a $streamDeleted event, reads of it and appends to it fail with the
// server's stream-deleted exception from then on, and a second tombstone
// too. The double never scavenges: the stream's events stay in $all, as
// they do on a server until its next scavenge.
func (s *streamsService) Tombstone(ctx context.Context, req *streams.TombstoneReq) (*streams.TombstoneResp, error) {
	if err := s.d.wait(ctx); err != nil {
		return nil, err
	}
	opts := req.GetOptions()
	stream := string(opts.GetStreamIdentifier().GetStreamName())
	switch {
	case stream == "":
		return nil, status.Error(codes.InvalidArgument, "esdbdouble: empty stream name")
	case isMetastream(stream):
		return nil, errMetadata(stream)
	}
	d := s.d
	d.mu.Lock()
	if d.tombstoned[stream] {
		d.mu.Unlock()
		return nil, streamDeleted(func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }, stream)
	}
	current := int64(len(d.streams[stream])) - 1
	ok := true
	switch want := opts.GetExpectedStreamRevision().(type) {
	case *streams.TombstoneReq_Options_Revision:
		ok = current == int64(want.Revision)
	case *streams.TombstoneReq_Options_NoStream:
		ok = current == -1
	case *streams.TombstoneReq_Options_StreamExists:
		ok = current >= 0
	case *streams.TombstoneReq_Options_Any:
	default:
		d.mu.Unlock()
		return nil, status.Error(codes.InvalidArgument, "esdbdouble: no expected stream revision")
	}
	if !ok {
		d.mu.Unlock()
		// As the server: FailedPrecondition with the exception in the
		// trailers.
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "wrong-expected-version", "stream-name", stream,
			"actual-version", strconv.FormatInt(current, 10)))
		return nil, status.Errorf(codes.FailedPrecondition, "Append failed due to WrongExpectedVersion. Stream: %s, Expected version: %v, Actual version: %d", stream, opts.GetExpectedStreamRevision(), current)
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	written := d.appendLocked(stream, []proposed{{id: id, eventType: "$streamDeleted", contentType: "application/octet-stream"}}, time.Now())
	d.tombstoned[stream] = true
	p := written[0].pos
	d.mu.Unlock()
	return &streams.TombstoneResp{PositionOption: &streams.TombstoneResp_Position_{Position: &streams.TombstoneResp_Position{CommitPosition: p, PreparePosition: p}}}, nil
}

// streamDeleted is the server's answer about a tombstoned stream:
// FailedPrecondition, with the exception and the stream's name in the
// trailers (which the client turns into ErrorCodeStreamDeleted).
func streamDeleted(setTrailer func(metadata.MD), stream string) error {
	setTrailer(metadata.Pairs("exception", "stream-deleted", "stream-name", stream))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", stream)
}

// BatchAppend answers that the double does not implement batch appends
// (ServerFeatures does not list it, so clients use Append).
func (s *streamsService) BatchAppend(streams.Streams_BatchAppendServer) error {
	return status.Error(codes.Unimplemented, "esdbdouble: batch append is not implemented (use Append)")
}

// isMetastream reports whether stream is the metadata stream of another
// ("$$name"), where KurrentDB keeps $maxCount, $maxAge, $tb, ACLs…
func isMetastream(stream string) bool { return strings.HasPrefix(stream, "$$") }

// errMetadata refuses a read or write of stream metadata: the double would
// otherwise store $maxCount or $tb and never apply them, which a test could
// not tell from a server that did.
func errMetadata(stream string) error {
	return status.Errorf(codes.Unimplemented, "esdbdouble: stream metadata ($maxCount, $maxAge, $tb, $acl) is not implemented: %q", stream)
}

// wrongExpectedVersion fills both the current fields and the 20.6.0 ones, as
// the server does.
func wrongExpectedVersion(opts *streams.AppendReq_Options, current int64) *streams.AppendResp_WrongExpectedVersion {
	empty := &shared.Empty{}
	w := &streams.AppendResp_WrongExpectedVersion{}
	switch want := opts.ExpectedStreamRevision.(type) {
	case *streams.AppendReq_Options_Revision:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: want.Revision}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: want.Revision}
	case *streams.AppendReq_Options_NoStream:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: empty}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: ^uint64(0)}
	case *streams.AppendReq_Options_StreamExists:
		w.ExpectedRevisionOption = &streams.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: empty}
		w.ExpectedRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: empty}
	}
	if current < 0 {
		w.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: empty}
		w.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: empty}
	} else {
		w.CurrentRevisionOption = &streams.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
		w.CurrentRevisionOption_20_6_0 = &streams.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(current)}
	}
	return w
}

// toProposed checks a proposed message as the server does: an id, and the
// type and content-type metadata.
func toProposed(msg *streams.AppendReq_ProposedMessage) (proposed, error) {
	id, err := fromUUID(msg.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "esdbdouble: event id: %v", err)
	}
	md := msg.GetMetadata()
	eventType, ok := md[metaType]
	if !ok {
		return proposed{}, status.Errorf(codes.InvalidArgument, "Required Metadata Property '%s' is missing", metaType)
	}
	contentType, ok := md[metaContentType]
	if !ok {
		return proposed{}, status.Errorf(codes.InvalidArgument, "Required Metadata Property '%s' is missing", metaContentType)
	}
	return proposed{
		id:          id,
		eventType:   eventType,
		contentType: contentType,
		data:        append([]byte(nil), msg.GetData()...),
		metadata:    append([]byte(nil), msg.GetCustomMetadata()...),
	}, nil
}

// Read serves stream reads, $all reads and $all subscriptions.
func (s *streamsService) Read(req *streams.ReadReq, srv streams.Streams_ReadServer) error {
	s.d.reads.Add(1)
	if err := s.d.wait(srv.Context()); err != nil {
		return err
	}
	opts := req.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "esdbdouble: read without options")
	}
	if opts.GetResolveLinks() {
		return status.Error(codes.Unimplemented, "esdbdouble: resolving links is not implemented")
	}
	f, err := newFilter(opts.GetFilter())
	if err != nil {
		return err
	}
	w := writer{srv: srv, stringIDs: opts.GetUuidOption().GetString_() != nil}
	switch count := opts.CountOption.(type) {
	case *streams.ReadReq_Options_Subscription:
		all := opts.GetAll()
		if all == nil {
			return status.Error(codes.Unimplemented, "esdbdouble: subscriptions to a stream are not implemented (only to $all)")
		}
		return s.subscribe(srv.Context(), w, all, f)
	case *streams.ReadReq_Options_Count:
		switch {
		case opts.GetStream() != nil:
			if f != nil {
				return status.Error(codes.InvalidArgument, "esdbdouble: a filter applies to $all only")
			}
			if name := string(opts.GetStream().GetStreamIdentifier().GetStreamName()); isMetastream(name) {
				return errMetadata(name)
			}
			return s.readStream(w, opts.GetStream(), opts.GetReadDirection(), count.Count)
		case opts.GetAll() != nil:
			return s.readAll(w, opts.GetAll(), opts.GetReadDirection(), count.Count, f)
		}
		return status.Error(codes.InvalidArgument, "esdbdouble: read of neither a stream nor $all")
	default:
		return status.Error(codes.InvalidArgument, "esdbdouble: read without a count or a subscription")
	}
}

func (s *streamsService) readStream(w writer, o *streams.ReadReq_Options_StreamOptions, dir streams.ReadReq_Options_ReadDirection, count uint64) error {
	name := string(o.GetStreamIdentifier().GetStreamName())
	d := s.d
	d.mu.Lock()
	if d.tombstoned[name] {
		d.mu.Unlock()
		return streamDeleted(w.srv.SetTrailer, name)
	}
	revs, ok := d.streams[name]
	if !ok {
		d.mu.Unlock()
		return w.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_StreamNotFound_{
			StreamNotFound: &streams.ReadResp_StreamNotFound{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)}},
		}})
	}
	n := uint64(len(revs))
	var out []record
	switch dir {
	case streams.ReadReq_Options_Forwards:
		from := uint64(0)
		switch r := o.RevisionOption.(type) {
		case *streams.ReadReq_Options_StreamOptions_Revision:
			from = r.Revision
		case *streams.ReadReq_Options_StreamOptions_End:
			from = n
		}
		for rev := from; rev < n && uint64(len(out)) < count; rev++ {
			out = append(out, d.log[revs[rev]])
		}
	case streams.ReadReq_Options_Backwards:
		from := int64(n) - 1
		switch r := o.RevisionOption.(type) {
		case *streams.ReadReq_Options_StreamOptions_Revision:
			from = min(from, int64(min(r.Revision, uint64(n))))
		case *streams.ReadReq_Options_StreamOptions_Start:
			from = min(from, 0)
		}
		for rev := from; rev >= 0 && uint64(len(out)) < count; rev-- {
			out = append(out, d.log[revs[rev]])
		}
	}
	d.mu.Unlock()
	for _, r := range out {
		if err := w.event(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *streamsService) readAll(w writer, o *streams.ReadReq_Options_AllOptions, dir streams.ReadReq_Options_ReadDirection, count uint64, f *filter) error {
	d := s.d
	var out []record
	d.mu.Lock()
	switch dir {
	case streams.ReadReq_Options_Forwards:
		// From a position: the event at it and those after.
		i := 0
		switch p := o.AllOption.(type) {
		case *streams.ReadReq_Options_AllOptions_Position:
			at := position{p.Position.GetCommitPosition(), p.Position.GetPreparePosition()}
			i = searchLog(d.log, func(r record) bool { return !r.position().less(at) })
		case *streams.ReadReq_Options_AllOptions_End:
			i = len(d.log)
		}
		for ; i < len(d.log) && uint64(len(out)) < count; i++ {
			if f.match(d.log[i]) {
				out = append(out, d.log[i])
			}
		}
	case streams.ReadReq_Options_Backwards:
		// From a position: the events before it.
		i := len(d.log) - 1
		switch p := o.AllOption.(type) {
		case *streams.ReadReq_Options_AllOptions_Position:
			at := position{p.Position.GetCommitPosition(), p.Position.GetPreparePosition()}
			i = searchLog(d.log, func(r record) bool { return !r.position().less(at) }) - 1
		case *streams.ReadReq_Options_AllOptions_Start:
			i = -1
		}
		for ; i >= 0 && uint64(len(out)) < count; i-- {
			if f.match(d.log[i]) {
				out = append(out, d.log[i])
			}
		}
	}
	d.mu.Unlock()
	for _, r := range out {
		if err := w.event(r); err != nil {
			return err
		}
	}
	return nil
}

// subscribe serves a subscription to $all: confirmation, catch-up,
// caught-up, live, until the client goes away or the double stops.
func (s *streamsService) subscribe(ctx context.Context, w writer, o *streams.ReadReq_Options_AllOptions, f *filter) error {
	if f != nil && f.mult == 0 {
		// As the server, which refuses it before confirming.
		return status.Error(codes.InvalidArgument, "esdbdouble: subscription filter with checkpoint interval multiplier 0")
	}
	d := s.d
	d.mu.Lock()
	stopped := d.stopped
	var cursor position
	fromStart := false
	switch p := o.AllOption.(type) {
	case *streams.ReadReq_Options_AllOptions_Start:
		fromStart = true
	case *streams.ReadReq_Options_AllOptions_End:
		if n := len(d.log); n > 0 {
			cursor = d.log[n-1].position()
		} else {
			fromStart = true
		}
	case *streams.ReadReq_Options_AllOptions_Position:
		// Subscriptions start strictly after their position.
		cursor = position{p.Position.GetCommitPosition(), p.Position.GetPreparePosition()}
	}
	d.mu.Unlock()

	var id [16]byte
	_, _ = rand.Read(id[:])
	if err := w.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Confirmation{
		Confirmation: &streams.ReadResp_SubscriptionConfirmation{SubscriptionId: formatUUID(id)},
	}}); err != nil {
		return err
	}
	every := f.checkpointEvery()
	scanned := 0
	caughtUp := false
	for {
		d.mu.Lock()
		batch, changed := d.afterLocked(cursor, fromStart, readChunk)
		d.mu.Unlock()
		for _, r := range batch {
			cursor, fromStart = r.position(), false
			scanned++
			if f.match(r) {
				if err := w.event(r); err != nil {
					return err
				}
				d.sent.Add(1)
			}
			if every > 0 && scanned%every == 0 {
				if err := w.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Checkpoint_{
					Checkpoint: &streams.ReadResp_Checkpoint{CommitPosition: cursor.commit, PreparePosition: cursor.prepare},
				}}); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := w.srv.Send(caughtUpAt(time.Now(), cursor)); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-stopped:
			return status.Error(codes.Unavailable, "esdbdouble: stopped")
		}
	}
}

// caughtUpAt returns the caught-up message of a subscription to $all, as
// KurrentDB 24.10 and later send it: the server's time (field 1, a
// google.protobuf.Timestamp) and the position caught up at, that of the
// last event the subscription scanned (field 3, commit and prepare). The v4
// Go client's protos predate both fields, so they travel as unknown fields,
// which the encoder writes as they are and a current client reads.
func caughtUpAt(now time.Time, at position) *streams.ReadResp {
	const fieldTimestamp, fieldPosition = 1, 3
	ts, _ := proto.Marshal(timestamppb.New(now)) // cannot fail
	var pos []byte
	pos = protowire.AppendTag(pos, 1, protowire.VarintType)
	pos = protowire.AppendVarint(pos, at.commit)
	pos = protowire.AppendTag(pos, 2, protowire.VarintType)
	pos = protowire.AppendVarint(pos, at.prepare)
	var raw []byte
	raw = protowire.AppendTag(raw, fieldTimestamp, protowire.BytesType)
	raw = protowire.AppendBytes(raw, ts)
	raw = protowire.AppendTag(raw, fieldPosition, protowire.BytesType)
	raw = protowire.AppendBytes(raw, pos)
	m := &streams.ReadResp_CaughtUp{}
	m.ProtoReflect().SetUnknown(raw)
	return &streams.ReadResp{Content: &streams.ReadResp_CaughtUp_{CaughtUp: m}}
}

// writer sends events as the server does.
type writer struct {
	srv       streams.Streams_ReadServer
	stringIDs bool
}

func (w writer) event(r record) error {
	id := &shared.UUID{}
	if w.stringIDs {
		id.Value = &shared.UUID_String_{String_: formatUUID(r.id)}
	} else {
		id.Value = &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
			MostSignificantBits:  int64(binary.BigEndian.Uint64(r.id[:8])),
			LeastSignificantBits: int64(binary.BigEndian.Uint64(r.id[8:])),
		}}
	}
	return w.srv.Send(&streams.ReadResp{Content: &streams.ReadResp_Event{Event: &streams.ReadResp_ReadEvent{
		Event: &streams.ReadResp_ReadEvent_RecordedEvent{
			Id:               id,
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata: map[string]string{
				metaType:        r.eventType,
				metaContentType: r.contentType,
				metaCreated:     strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.metadata,
			Data:           r.data,
		},
		// Every event is self-committed, so its position is known on a
		// stream read as on a read of $all.
		Position: &streams.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}})
}

// filter is a server-side filter of $all.
type filter struct {
	onType   bool // the event type, else the stream name
	prefixes []string
	re       *regexp.Regexp
	window   int // max search window, or countWindow
	mult     int // checkpoint interval multiplier, > 0
}

// countWindow is the search window of a filter whose window is "count":
// the server's read batch size.
const countWindow = 32

func newFilter(o *streams.ReadReq_Options_FilterOptions) (*filter, error) {
	if o == nil {
		return nil, nil
	}
	f := &filter{mult: int(o.GetCheckpointIntervalMultiplier())}
	var expr *streams.ReadReq_Options_FilterOptions_Expression
	switch x := o.Filter.(type) {
	case *streams.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = x.StreamIdentifier
	case *streams.ReadReq_Options_FilterOptions_EventType:
		expr, f.onType = x.EventType, true
	default:
		return nil, status.Error(codes.InvalidArgument, "esdbdouble: filter on neither stream name nor event type")
	}
	switch w := o.Window.(type) {
	case *streams.ReadReq_Options_FilterOptions_Max:
		f.window = int(w.Max)
	case *streams.ReadReq_Options_FilterOptions_Count:
		f.window = countWindow
	default:
		return nil, status.Error(codes.InvalidArgument, "esdbdouble: filter with no window (max or count)")
	}
	if f.window <= 0 {
		return nil, status.Error(codes.InvalidArgument, "esdbdouble: filter max search window 0")
	}
	if expr.GetRegex() != "" {
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "esdbdouble: filter regex: %v", err)
		}
		f.re = re
	} else {
		f.prefixes = expr.GetPrefix()
	}
	return f, nil
}

func (f *filter) match(r record) bool {
	if f == nil {
		return true
	}
	subject := r.stream
	if f.onType {
		subject = r.eventType
	}
	if f.re != nil {
		return f.re.MatchString(subject)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

// checkpointEvery returns after how many scanned events a filtered
// subscription sends a checkpoint: window × multiplier, for a max window as
// for a count window (0: never, without a filter).
func (f *filter) checkpointEvery() int {
	if f == nil {
		return 0
	}
	return f.window * f.mult
}

func searchLog(log []record, pred func(record) bool) int {
	lo, hi := 0, len(log)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if pred(log[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

func fromUUID(u *shared.UUID) ([16]byte, error) {
	var id [16]byte
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		binary.BigEndian.PutUint64(id[:8], uint64(v.Structured.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(v.Structured.GetLeastSignificantBits()))
		return id, nil
	case *shared.UUID_String_:
		s := strings.ReplaceAll(v.String_, "-", "")
		if len(s) != 32 {
			return id, fmt.Errorf("%q is not a UUID", v.String_)
		}
		for i := range 16 {
			b, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
			if err != nil {
				return id, fmt.Errorf("%q is not a UUID", v.String_)
			}
			id[i] = byte(b)
		}
		return id, nil
	default:
		return id, errors.New("missing")
	}
}

type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
	d *StreamsDouble
}

// GetSupportedMethods answers what the client asks when it connects.
func (f *featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const svc = "event_store.client.streams.streams"
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: f.d.opts.ServerVersion,
		Methods: []*serverfeatures.SupportedMethod{
			{ServiceName: svc, MethodName: "read"},
			{ServiceName: svc, MethodName: "append"},
		},
	}, nil
}
