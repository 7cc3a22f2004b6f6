package api

import (
	"context"
	"errors"
	"fmt"
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

	reader StatsReader
	service
}

var _ receiptdv1.StatsServiceServer = (*StatsService)(nil)

// NewStatsService returns the StatsService serving r for the configured
// sources. A request names one of them, or none for every source with
// statistics.
func NewStatsService(r StatsReader, sources []string, opts ...Option) (*StatsService, error) {
	if r == nil {
		return nil, errors.New("api: new stats service: nil StatsReader")
	}
	svc, err := newService("stats service", r, sources, opts)
	if err != nil {
		return nil, err
	}
	return &StatsService{reader: r, service: svc}, nil
}

// GetStats implements receiptdv1.StatsServiceServer.
func (s *StatsService) GetStats(ctx context.Context, req *receiptdv1.GetStatsRequest) (*receiptdv1.Stats, error) {
	const op = "GetStats"
	source, err := s.sourceOrAll(op, req.GetSource())
	if err != nil {
		return nil, err
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
	if source != "" {
		subject = fmt.Sprintf("statistics of source %q", source)
	}
	return query(ctx, &s.service, op, subject, req.GetMinPosition(),
		func(ctx context.Context) (projections.Stats, error) {
			q := projections.StatsQuery{Source: source, From: req.GetFrom(), To: req.GetTo()}
			if s.overdue != nil {
				q.Overdue = &projections.OverdueQuery{Now: s.overdue.Now(), After: s.overdue.After}
			}
			return s.reader.Stats(ctx, q)
		}, statsToProto)
}
