package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

// StatsReader is the read side StatsService serves from, implemented by
// *projections.DB. Stats returns an error matching projections.ErrBadQuery
// for a range it cannot answer.
type StatsReader interface {
	Stats(ctx context.Context, q projections.StatsQuery) (projections.Stats, error)
	WaitFor(ctx context.Context, position uint64) error
}

var _ StatsReader = (*projections.DB)(nil)

// StatsService implements receiptdv1.StatsServiceServer over a StatsReader.
type StatsService struct {
	receiptdv1.UnsafeStatsServiceServer

	reader  StatsReader
	sources []string
	options
}

var _ receiptdv1.StatsServiceServer = (*StatsService)(nil)

// NewStatsService returns the StatsService serving r for the configured
// sources. A request names one of them, or none for every source with
// statistics.
func NewStatsService(r StatsReader, sources []string, opts ...Option) (*StatsService, error) {
	const what = "stats service"
	if r == nil {
		return nil, errors.New("api: new stats service: nil StatsReader")
	}
	if err := validateSources(what, sources); err != nil {
		return nil, err
	}
	o, err := newOptions(what, opts)
	if err != nil {
		return nil, err
	}
	return &StatsService{reader: r, sources: slices.Clone(sources), options: o}, nil
}

// GetStats implements receiptdv1.StatsServiceServer.
func (s *StatsService) GetStats(ctx context.Context, req *receiptdv1.GetStatsRequest) (*receiptdv1.Stats, error) {
	const op = "GetStats"
	if req.GetSource() != "" && !slices.Contains(s.sources, req.GetSource()) {
		return nil, status.Errorf(codes.NotFound, "%s: unknown source %q", op, req.GetSource())
	}
	for _, d := range []struct{ field, value string }{{"from", req.GetFrom()}, {"to", req.GetTo()}} {
		if d.value == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d.value); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %s %q is not a day such as 2026-01-31", op, d.field, d.value)
		}
	}
	subject := "statistics of every source"
	if req.GetSource() != "" {
		subject = fmt.Sprintf("statistics of source %q", req.GetSource())
	}
	if err := waitFor(ctx, s.reader, s.maxWait, req.GetMinPosition()); err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	st, err := s.reader.Stats(ctx, projections.StatsQuery{Source: req.GetSource(), From: req.GetFrom(), To: req.GetTo()})
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	out, err := statsToProto(st)
	if err != nil {
		return nil, toStatus(ctx, s.log, op, subject, err)
	}
	return out, nil
}
