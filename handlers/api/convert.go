package api

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

// errUnconvertible: a read-model value the API has no representation for (a
// stage or status added to aggregate but not to the proto, a count out of
// range). A programming error: it surfaces as Internal, and the conversion
// tests walk every aggregate stage and status to keep it from happening.
var errUnconvertible = errors.New("api: read-model value cannot be converted")

// receiptToProto converts a receipt view to the receiptd.v1 Receipt.
func receiptToProto(v aggregate.ReceiptView) (*receiptdv1.Receipt, error) {
	st, err := statusToProto(v.Status)
	if err != nil {
		return nil, fmt.Errorf("convert receipt %q: %w", v.ReceiptID, err)
	}
	r := &receiptdv1.Receipt{
		ReceiptId:     v.ReceiptID,
		Source:        v.Source,
		UserId:        v.UserID,
		Status:        st,
		Points:        decimalString(v.Points),
		TotalCo2E:     decimalString(v.CO2e),
		Stages:        make([]*receiptdv1.StageProgress, 0, len(v.Stages)),
		Anomalies:     make([]*receiptdv1.Anomaly, 0, len(v.Anomalies)),
		UserIds:       append([]string(nil), v.UserIDs...),
		Merchant:      v.Merchant,
		Currency:      v.Currency,
		HealthPoints:  decimalString(v.HealthPoints),
		BonusPoints:   decimalString(v.BonusPoints),
		TransactionId: v.TransactionID,
	}
	if r.GreenProducts, err = toInt32("green products", v.GreenProducts); err != nil {
		return nil, fmt.Errorf("convert receipt %q: %w", v.ReceiptID, err)
	}
	for _, sv := range v.Stages {
		sp, err := stageViewToProto(sv)
		if err != nil {
			return nil, fmt.Errorf("convert receipt %q: %w", v.ReceiptID, err)
		}
		r.Stages = append(r.Stages, sp)
	}
	if v.Failure != nil {
		code, err := toInt32("failure code", v.Failure.Code)
		if err != nil {
			return nil, fmt.Errorf("convert receipt %q: %w", v.ReceiptID, err)
		}
		r.Failure = &receiptdv1.Failure{Code: code, Name: v.Failure.Name, Message: v.Failure.Message}
	}
	for _, a := range v.Anomalies {
		r.Anomalies = append(r.Anomalies, &receiptdv1.Anomaly{Kind: a.Kind, Detail: a.Detail})
	}
	r.Amount = optionalDecimal(v.Amount)
	return r, nil
}

func stageViewToProto(sv aggregate.StageView) (*receiptdv1.StageProgress, error) {
	stage, err := stageToProto(sv.Stage)
	if err != nil {
		return nil, err
	}
	corrections, err := toInt32("stage "+string(sv.Stage)+" corrections", int64(sv.Corrections))
	if err != nil {
		return nil, err
	}
	sp := &receiptdv1.StageProgress{Stage: stage, Reported: sv.Reported, Corrections: corrections}
	if sv.OccurredAt != nil {
		sp.OccurredAt = timestamppb.New(*sv.OccurredAt)
	}
	return sp, nil
}

// stageToProto maps a stage by name; aggregate.Stages and the proto enum
// list the same stages in the same order.
func stageToProto(s aggregate.Stage) (receiptdv1.Stage, error) {
	switch s {
	case aggregate.StageUploaded:
		return receiptdv1.Stage_STAGE_UPLOADED, nil
	case aggregate.StageExtracted:
		return receiptdv1.Stage_STAGE_EXTRACTED, nil
	case aggregate.StageEnriched:
		return receiptdv1.Stage_STAGE_ENRICHED, nil
	case aggregate.StageValidated:
		return receiptdv1.Stage_STAGE_VALIDATED, nil
	case aggregate.StageScored:
		return receiptdv1.Stage_STAGE_SCORED, nil
	case aggregate.StageAwarded:
		return receiptdv1.Stage_STAGE_AWARDED, nil
	case aggregate.StageFailed:
		return receiptdv1.Stage_STAGE_FAILED, nil
	default:
		return receiptdv1.Stage_STAGE_UNSPECIFIED, fmt.Errorf("stage %q: %w", string(s), errUnconvertible)
	}
}

func statusToProto(s aggregate.ReceiptStatus) (receiptdv1.ReceiptStatus, error) {
	switch s {
	case aggregate.StatusInProgress:
		return receiptdv1.ReceiptStatus_RECEIPT_STATUS_IN_PROGRESS, nil
	case aggregate.StatusCompleted:
		return receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED, nil
	case aggregate.StatusFailed:
		return receiptdv1.ReceiptStatus_RECEIPT_STATUS_FAILED, nil
	default:
		return receiptdv1.ReceiptStatus_RECEIPT_STATUS_UNSPECIFIED, fmt.Errorf("receipt status %q: %w", string(s), errUnconvertible)
	}
}

// balanceToProto converts a balance view to the receiptd.v1 Balance. With
// no reported snapshot yet, the reported fields are zero.
func balanceToProto(b projections.Balance) (*receiptdv1.Balance, error) {
	var reportedTxs int64
	if b.Reported != nil {
		reportedTxs = b.Reported.NumTransactions
	}
	var counts [5]int32
	for i, c := range []struct {
		name string
		n    int64
	}{
		{"receipts completed", b.ReceiptsCompleted},
		{"receipts failed", b.ReceiptsFailed},
		{"receipts in progress", b.ReceiptsInProgress},
		{"total green products", b.TotalGreenProducts},
		{"reported transactions", reportedTxs},
	} {
		n, err := toInt32(c.name, c.n)
		if err != nil {
			return nil, fmt.Errorf("convert balance of user %q: %w", b.UserID, err)
		}
		counts[i] = n
	}
	out := &receiptdv1.Balance{
		UserId:                  b.UserID,
		Source:                  b.Source,
		ReportedAvailablePoints: "0",
		ReportedLifetimePoints:  "0",
		ReportedNumTransactions: counts[4],
		AwardedPoints:           decimalString(b.AwardedPoints),
		CreditedPoints:          decimalString(b.CreditedPoints),
		DerivedPoints:           decimalString(b.DerivedPoints),
		Reconciled:              b.Reconciled,
		ReceiptsCompleted:       counts[0],
		ReceiptsFailed:          counts[1],
		ReceiptsInProgress:      counts[2],
		TotalCo2E:               decimalString(b.TotalCO2e),
		TotalGreenProducts:      counts[3],
		TotalHealthPoints:       decimalString(b.TotalHealthPoints),
		Enrolled:                b.Enrolled,
	}
	if s := b.Reported; s != nil {
		out.ReportedAvailablePoints = decimalString(s.AvailablePoints)
		out.ReportedLifetimePoints = decimalString(s.LifetimePoints)
	}
	return out, nil
}

// entityToProto converts an entity view (with or without its timeline) to
// the receiptd.v1 Entity.
func entityToProto(v projections.Entity) (*receiptdv1.Entity, error) {
	fail := func(err error) (*receiptdv1.Entity, error) {
		return nil, fmt.Errorf("convert %s %q: %w", v.Kind, v.ID, err)
	}
	count, err := toInt32("event count", v.EventCount)
	if err != nil {
		return fail(err)
	}
	e := &receiptdv1.Entity{
		Kind:          v.Kind,
		EntityId:      v.ID,
		Source:        v.Source,
		Status:        v.Status,
		Amount:        optionalDecimal(v.Amount),
		Currency:      v.Currency,
		UserId:        v.UserID,
		FirstPosition: v.FirstPosition,
		LastPosition:  v.LastPosition,
		EventCount:    count,
		Timeline:      make([]*receiptdv1.EntityEvent, 0, len(v.Timeline)),
	}
	for _, t := range []struct {
		name string
		t    *time.Time
		out  **timestamppb.Timestamp
	}{
		{"status_at", v.StatusAt, &e.StatusAt},
		{"first_seen", &v.FirstSeen, &e.FirstSeen},
		{"last_seen", &v.LastSeen, &e.LastSeen},
	} {
		if *t.out, err = timestampToProto(t.name, t.t); err != nil {
			return fail(err)
		}
	}
	for i, ev := range v.Timeline {
		out := &receiptdv1.EntityEvent{
			EventType:  ev.EventType,
			Status:     ev.Status,
			Amount:     optionalDecimal(ev.Amount),
			Currency:   ev.Currency,
			UserId:     ev.UserID,
			Attributes: maps.Clone(ev.Attributes),
			BodySha256: ev.BodySHA256,
			Position:   ev.Position,
		}
		for _, t := range []struct {
			name string
			t    *time.Time
			out  **timestamppb.Timestamp
		}{
			{"status_at", ev.StatusAt, &out.StatusAt},
			{"occurred_at", ev.OccurredAt, &out.OccurredAt},
			{"recorded_at", &ev.RecordedAt, &out.RecordedAt},
		} {
			if *t.out, err = timestampToProto(fmt.Sprintf("timeline[%d].%s", i, t.name), t.t); err != nil {
				return fail(err)
			}
		}
		e.Timeline = append(e.Timeline, out)
	}
	return e, nil
}

// timestampToProto converts a time to a Timestamp: nil for nil or the zero
// time (not known), and errUnconvertible for a time a Timestamp cannot hold
// (before year 1 or after 9999), which the JSON mapping would refuse.
func timestampToProto(what string, t *time.Time) (*timestamppb.Timestamp, error) {
	if t == nil || t.IsZero() {
		return nil, nil
	}
	ts := timestamppb.New(*t)
	if err := ts.CheckValid(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %w", what, t, err, errUnconvertible)
	}
	return ts, nil
}

// optionalDecimal renders d as an optional decimal string field: nil for
// nil.
func optionalDecimal(d *decimal.Decimal) *string {
	if d == nil {
		return nil
	}
	s := decimalString(*d)
	return &s
}

// decimalString renders d exactly, with no exponent and no trailing zeros
// after the point: "1656.54", "15", and "0" for zero.
func decimalString(d decimal.Decimal) string { return d.String() }

func toInt32(what string, n int64) (int32, error) {
	if n < math.MinInt32 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%s %d out of int32 range: %w", what, n, errUnconvertible)
	}
	return int32(n), nil
}
