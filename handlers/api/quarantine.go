package api

import (
	"context"
	"encoding/base64"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/webhook"
)

// Quarantine reads a source's quarantined deliveries from the log and runs
// them through the current decoders: *webhook.Handler, the ingest that
// quarantined them. Errors matching webhook.ErrNotQuarantined become
// NOT_FOUND.
type Quarantine interface {
	// Quarantined returns up to limit records of source's quarantine
	// stream, from stream revision from on, oldest first.
	Quarantined(ctx context.Context, source string, from uint64, limit int) ([]webhook.QuarantineRecord, error)
	// ReprocessQuarantined re-processes source's quarantined delivery at
	// commit position position, or (position 0) its first limit ones;
	// more reports whether the stream holds others after them.
	ReprocessQuarantined(ctx context.Context, source string, position uint64, limit int) (results []webhook.ReprocessedDelivery, more bool, err error)
}

var _ Quarantine = (*webhook.Handler)(nil)

// WithQuarantine gives an AuditService the quarantine its ListQuarantined
// and ReprocessQuarantined use. Without it they answer UNIMPLEMENTED.
func WithQuarantine(q Quarantine) Option {
	return func(o *options) { o.quarantine = q }
}

// Limits of the quarantine RPCs.
const (
	DefaultQuarantinePageSize = 100
	MaxQuarantinePageSize     = 500
	// MaxQuarantinePageBytes bounds a ListQuarantined page by its encoded
	// size, raw bodies included: a page ends before the delivery that
	// would take it past this, and holds at least one. So the largest
	// answer is this plus one delivery (at most ingest's body limit, plus
	// its fields): the server's send limit and the gateway's receive
	// limit must allow that (package config checks it: Config.MinSendMsgBytes).
	MaxQuarantinePageBytes = 4 << 20
	// quarantineBatch is how many records ListQuarantined reads at a time,
	// so that a page of small deliveries takes few reads while the
	// deliveries held in memory beyond a full page stay few.
	quarantineBatch = 16
	// MaxReprocess bounds the deliveries one ReprocessQuarantined runs.
	MaxReprocess = 500
)

// quarantineSource resolves a quarantine request's source, once the
// service has a quarantine.
func (s *AuditService) quarantineSource(op, source string) (string, error) {
	if s.quarantine == nil {
		return "", status.Errorf(codes.Unimplemented, "%s: this server keeps no quarantine to read", op)
	}
	return s.source(op, source)
}

// ListQuarantined implements receiptdv1.AuditServiceServer.
func (s *AuditService) ListQuarantined(ctx context.Context, req *receiptdv1.ListQuarantinedRequest) (*receiptdv1.ListQuarantinedResponse, error) {
	const op = "ListQuarantined"
	source, err := s.quarantineSource(op, req.GetSource())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "%s: page_size %d is negative", op, size)
	case size == 0:
		size = DefaultQuarantinePageSize
	}
	size = min(size, MaxQuarantinePageSize)
	var from uint64
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err == nil {
			from, err = strconv.ParseUint(string(raw), 10, 64)
		}
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: invalid page_token", op)
		}
	}
	// Read a batch at a time (one more than may fit, to know whether a
	// next page exists) until the page holds size deliveries or
	// MaxQuarantinePageBytes.
	out := &receiptdv1.ListQuarantinedResponse{}
	pageBytes := 0
	for {
		want := min(quarantineBatch, size-len(out.Deliveries)) + 1
		recs, err := s.quarantine.Quarantined(ctx, source, from, want)
		if err != nil {
			return nil, toStatus(ctx, s.log, op, "quarantine of source "+strconv.Quote(source), err)
		}
		for _, r := range recs {
			d := &receiptdv1.QuarantinedDelivery{
				Source: r.Source, Position: r.Position, ProviderEventType: r.ProviderEventType,
				Reason: r.Reason, BodySha256: r.BodySHA256, RawBody: string(r.Raw), Forgotten: r.Forgotten,
			}
			if !r.ReceivedAt.IsZero() {
				d.ReceivedAt = timestamppb.New(r.ReceivedAt)
			}
			n := protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(d)) // as a field of the page
			if len(out.Deliveries) == size || len(out.Deliveries) > 0 && pageBytes+n > MaxQuarantinePageBytes {
				out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(r.Revision, 10)))
				return out, nil
			}
			out.Deliveries = append(out.Deliveries, d)
			pageBytes += n
			from = r.Revision + 1
		}
		if len(recs) < want {
			return out, nil
		}
	}
}

// ReprocessQuarantined implements receiptdv1.AuditServiceServer.
func (s *AuditService) ReprocessQuarantined(ctx context.Context, req *receiptdv1.ReprocessQuarantinedRequest) (*receiptdv1.ReprocessQuarantinedResponse, error) {
	const op = "ReprocessQuarantined"
	source, err := s.quarantineSource(op, req.GetSource())
	if err != nil {
		return nil, err
	}
	subject := "quarantine of source " + strconv.Quote(source)
	if p := req.GetPosition(); p != 0 {
		subject = "quarantined delivery at " + strconv.FormatUint(p, 10) + " of source " + strconv.Quote(source)
	}
	res, more, err := s.quarantine.ReprocessQuarantined(ctx, source, req.GetPosition(), MaxReprocess)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	out := &receiptdv1.ReprocessQuarantinedResponse{Truncated: more, Results: make([]*receiptdv1.ReprocessedDelivery, 0, len(res))}
	for _, r := range res {
		out.Results = append(out.Results, &receiptdv1.ReprocessedDelivery{
			QuarantinedPosition: r.QuarantinedPosition, Outcome: r.Outcome, Stream: r.Stream,
			Position: r.Position.Commit, ProviderEventType: r.EventType, Reason: r.Reason,
		})
		s.log.InfoContext(ctx, "re-processed a quarantined delivery", "source", source, "quarantined_position", r.QuarantinedPosition, "outcome", r.Outcome, "stream", r.Stream, "position", r.Position.Commit)
	}
	return out, nil
}
