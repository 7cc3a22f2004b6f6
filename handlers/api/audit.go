package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

// Auditor audits and rebuilds the read models against the log,
// implemented by *projections.Admin. Audit and Rebuild return errors
// matching projections.ErrBusy while another one runs.
type Auditor interface {
	Audit(ctx context.Context, opts projections.AuditOptions) (projections.AuditReport, error)
	Rebuild(ctx context.Context, opts projections.RebuildOptions) (projections.RebuildResult, error)
	WaitFor(ctx context.Context, position uint64) error
}

var (
	_ Auditor = (*projections.Admin)(nil)
	_ Auditor = (*projections.AuditMetrics)(nil)
)

// AuditService implements receiptdv1.AuditServiceServer over an Auditor.
// Its RPCs are administrative (the access rules give them the admin
// scope) and may run for as long as replaying the log takes.
type AuditService struct {
	receiptdv1.UnsafeAuditServiceServer

	auditor Auditor
	service
}

var _ receiptdv1.AuditServiceServer = (*AuditService)(nil)

// NewAuditService returns the AuditService over a for the configured
// sources.
func NewAuditService(a Auditor, sources []string, opts ...Option) (*AuditService, error) {
	if a == nil {
		return nil, errors.New("api: new audit service: nil Auditor")
	}
	svc, err := newService("audit service", a, sources, opts)
	if err != nil {
		return nil, err
	}
	return &AuditService{auditor: a, service: svc}, nil
}

// Audit implements receiptdv1.AuditServiceServer.
func (s *AuditService) Audit(ctx context.Context, req *receiptdv1.AuditRequest) (*receiptdv1.AuditReport, error) {
	const op = "Audit"
	source, err := s.sourceOrAll(op, req.GetSource())
	if err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "%s: limit %d is negative", op, req.GetLimit())
	}
	return query(ctx, &s.service, op, "the read models", req.GetMinPosition(),
		func(ctx context.Context) (projections.AuditReport, error) {
			return s.auditor.Audit(ctx, projections.AuditOptions{Source: source, Limit: int(req.GetLimit())})
		},
		func(rep projections.AuditReport) (*receiptdv1.AuditReport, error) {
			out, err := auditReportToProto(rep)
			if err == nil {
				s.log.InfoContext(ctx, "audit", "position", rep.Position.String(), "clean", rep.Clean(), "took", rep.Took.String())
			}
			return out, err
		})
}

// Rebuild implements receiptdv1.AuditServiceServer.
func (s *AuditService) Rebuild(ctx context.Context, req *receiptdv1.RebuildRequest) (*receiptdv1.RebuildResponse, error) {
	const op = "Rebuild"
	names := projections.Names()
	if p := req.GetProjection(); p != "" && !slices.Contains(names, p) {
		return nil, status.Errorf(codes.InvalidArgument, "%s: unknown projection %q (one of %s, or empty for all)", op, p, strings.Join(names, ", "))
	}
	subject := "every read model"
	if p := req.GetProjection(); p != "" {
		subject = fmt.Sprintf("read model %q", p)
	}
	return query(ctx, &s.service, op, subject, req.GetMinPosition(),
		func(ctx context.Context) (projections.RebuildResult, error) {
			return s.auditor.Rebuild(ctx, projections.RebuildOptions{Projection: req.GetProjection()})
		},
		func(res projections.RebuildResult) (*receiptdv1.RebuildResponse, error) {
			s.log.InfoContext(ctx, "rebuilt read models", "projection", res.Projection, "position", res.Position.String(), "events", res.Events, "took", res.Took.String())
			return rebuildResultToProto(res), nil
		})
}
