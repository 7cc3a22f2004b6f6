package api

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
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
	if sv.RecordedAt != nil {
		sp.RecordedAt = timestamppb.New(*sv.RecordedAt)
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
	var counts [6]int32
	for i, c := range []struct {
		name string
		n    int64
	}{
		{"receipts completed", b.ReceiptsCompleted},
		{"receipts failed", b.ReceiptsFailed},
		{"receipts in progress", b.ReceiptsInProgress},
		{"total green products", b.TotalGreenProducts},
		{"reported transactions", reportedTxs},
		{"amount anomalies", b.AmountAnomalies},
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
		AmountAnomalies:         counts[5],
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

// deliveryToProto converts how an event arrived.
func deliveryToProto(m projections.EventMeta) (*receiptdv1.Delivery, error) {
	received, err := timestampToProto("received_at", &m.ReceivedAt)
	if err != nil {
		return nil, err
	}
	return &receiptdv1.Delivery{
		ProviderEventType: m.ProviderEventType,
		DeliveryId:        m.DeliveryID,
		ReceivedAt:        received,
		Scheme:            m.Scheme,
		KeyId:             m.KeyID,
		BodySha256:        m.BodySHA256,
		Correction:        m.Correction,
	}, nil
}

// historyEventToProto converts an event of a receipt's stream.
func historyEventToProto(e projections.HistoryEvent) (*receiptdv1.ReceiptEvent, error) {
	fail := func(err error) (*receiptdv1.ReceiptEvent, error) {
		return nil, fmt.Errorf("convert event at %s: %w", e.Position, err)
	}
	out := &receiptdv1.ReceiptEvent{
		Position:      e.Position.Commit,
		Revision:      e.Revision,
		EventId:       e.ID,
		EventType:     e.Type,
		UserId:        e.UserID,
		Points:        optionalDecimal(e.Points),
		TransactionId: e.TransactionID,
	}
	var err error
	if e.Stage != "" {
		if out.Stage, err = stageToProto(e.Stage); err != nil {
			return fail(err)
		}
	}
	if out.RecordedAt, err = timestampToProto("recorded_at", &e.RecordedAt); err != nil {
		return fail(err)
	}
	if out.OccurredAt, err = timestampToProto("occurred_at", e.OccurredAt); err != nil {
		return fail(err)
	}
	if out.Delivery, err = deliveryToProto(e.Meta); err != nil {
		return fail(err)
	}
	if f := e.Failure; f != nil {
		code, err := toInt32("failure code", f.Code)
		if err != nil {
			return fail(err)
		}
		out.Failure = &receiptdv1.Failure{Code: code, Name: f.Name, Message: f.Message}
	}
	return out, nil
}

// ledgerKindToProto maps a ledger entry's kind.
func ledgerKindToProto(kind string) (receiptdv1.LedgerEntryKind, error) {
	switch kind {
	case projections.LedgerAward:
		return receiptdv1.LedgerEntryKind_LEDGER_ENTRY_KIND_AWARD, nil
	case projections.LedgerAwardCorrected:
		return receiptdv1.LedgerEntryKind_LEDGER_ENTRY_KIND_AWARD_CORRECTED, nil
	case projections.LedgerAwardMoved:
		return receiptdv1.LedgerEntryKind_LEDGER_ENTRY_KIND_AWARD_MOVED, nil
	case projections.LedgerCredit:
		return receiptdv1.LedgerEntryKind_LEDGER_ENTRY_KIND_CREDIT, nil
	default:
		return receiptdv1.LedgerEntryKind_LEDGER_ENTRY_KIND_UNSPECIFIED, fmt.Errorf("ledger entry kind %q: %w", kind, errUnconvertible)
	}
}

// ledgerEntryToProto converts one ledger entry.
func ledgerEntryToProto(e projections.LedgerEntry) (*receiptdv1.LedgerEntry, error) {
	fail := func(err error) (*receiptdv1.LedgerEntry, error) {
		return nil, fmt.Errorf("convert ledger entry at %d: %w", e.Position, err)
	}
	kind, err := ledgerKindToProto(e.Kind)
	if err != nil {
		return fail(err)
	}
	out := &receiptdv1.LedgerEntry{
		Position:      e.Position,
		Kind:          kind,
		Points:        decimalString(e.Points),
		Total:         decimalString(e.Total),
		Source:        e.Source,
		ReceiptId:     e.ReceiptID,
		TransactionId: e.TransactionID,
	}
	if out.RecordedAt, err = timestampToProto("recorded_at", &e.RecordedAt); err != nil {
		return fail(err)
	}
	if out.Delivery, err = deliveryToProto(e.Event); err != nil {
		return fail(err)
	}
	return out, nil
}

// pipelineStatsToProto converts the statistics of a set of receipts.
func pipelineStatsToProto(p projections.PipelineStats) (*receiptdv1.PipelineStats, error) {
	var counts [5]int32
	for i, c := range []struct {
		name string
		n    int64
	}{
		{"completed", p.Completed},
		{"failed", p.Failed},
		{"timed receipts", p.TimeToTerminal.Count},
		{"provider-timed receipts", p.TimeToTerminal.ProviderTimed},
		{"receipts without a time", p.TimeToTerminal.Missing},
	} {
		n, err := toInt32(c.name, c.n)
		if err != nil {
			return nil, err
		}
		counts[i] = n
	}
	out := &receiptdv1.PipelineStats{
		Completed:     counts[0],
		Failed:        counts[1],
		FailedByStage: make(map[string]int32, len(p.FailedByStage)),
		Points:        decimalString(p.Points),
		TotalCo2E:     decimalString(p.CO2e),
		TimeToTerminal: &receiptdv1.TimeToTerminal{
			Count:         counts[2],
			ProviderTimed: counts[3],
			Missing:       counts[4],
			P50:           durationpb.New(p.TimeToTerminal.P50),
			P90:           durationpb.New(p.TimeToTerminal.P90),
			P99:           durationpb.New(p.TimeToTerminal.P99),
		},
	}
	for stage, n := range p.FailedByStage {
		c, err := toInt32("failures at "+stage, n)
		if err != nil {
			return nil, err
		}
		out.FailedByStage[stage] = c
	}
	return out, nil
}

// statsToProto converts the pipeline statistics.
func statsToProto(st projections.Stats) (*receiptdv1.Stats, error) {
	out := &receiptdv1.Stats{
		From:     st.From,
		To:       st.To,
		Position: st.Position.Commit,
		Sources:  make([]*receiptdv1.SourceStats, 0, len(st.Sources)),
	}
	for _, s := range st.Sources {
		fail := func(err error) (*receiptdv1.Stats, error) {
			return nil, fmt.Errorf("convert statistics of source %q: %w", s.Source, err)
		}
		total, err := pipelineStatsToProto(s.Total)
		if err != nil {
			return fail(err)
		}
		inProgress, err := toInt32("receipts in progress", s.InProgress)
		if err != nil {
			return fail(err)
		}
		overdue, err := toInt32("overdue receipts", s.Overdue)
		if err != nil {
			return fail(err)
		}
		ss := &receiptdv1.SourceStats{Source: s.Source, Total: total, InProgress: inProgress, Overdue: overdue, Days: make([]*receiptdv1.DayStats, 0, len(s.Days))}
		for _, d := range s.Days {
			day, err := pipelineStatsToProto(d.PipelineStats)
			if err != nil {
				return fail(fmt.Errorf("day %s: %w", d.Day, err))
			}
			ss.Days = append(ss.Days, &receiptdv1.DayStats{Day: d.Day, Stats: day})
		}
		out.Sources = append(out.Sources, ss)
	}
	return out, nil
}

func modelSummaryToProto(m projections.ModelSummary) *receiptdv1.ModelSummary {
	return &receiptdv1.ModelSummary{Name: m.Name, Keys: m.Keys, Digest: m.Digest}
}

// auditReportToProto converts an audit's report.
func auditReportToProto(r projections.AuditReport) (*receiptdv1.AuditReport, error) {
	var totals [4]int32
	for i, c := range []struct {
		name string
		n    int64
	}{
		{"unreconciled users", r.UnreconciledTotal},
		{"anomalous receipts", r.AnomaliesTotal},
		{"quarantined deliveries", r.QuarantinedTotal},
		{"skipped events", r.SkippedTotal},
	} {
		n, err := toInt32(c.name, c.n)
		if err != nil {
			return nil, fmt.Errorf("convert audit report: %w", err)
		}
		totals[i] = n
	}
	out := &receiptdv1.AuditReport{
		Position:               r.Position.Commit,
		Clean:                  r.Clean(),
		Source:                 r.Source,
		Took:                   durationpb.New(r.Took),
		Models:                 make([]*receiptdv1.ModelCheck, 0, len(r.Models)),
		UnreconciledUsersTotal: totals[0],
		UnreconciledUsers:      make([]*receiptdv1.UnreconciledUser, 0, len(r.Unreconciled)),
		AnomalousReceiptsTotal: totals[1],
		AnomalousReceipts:      make([]*receiptdv1.AnomalousReceipt, 0, len(r.Anomalies)),
		QuarantinedTotal:       totals[2],
		Quarantined:            make([]*receiptdv1.QuarantinedDelivery, 0, len(r.Quarantined)),
		SkippedTotal:           totals[3],
		Skipped:                make([]*receiptdv1.SkippedEvent, 0, len(r.Skipped)),
	}
	for _, m := range r.Models {
		diffs, err := toInt32("differences of "+m.Name, m.Differences)
		if err != nil {
			return nil, fmt.Errorf("convert audit report: %w", err)
		}
		c := &receiptdv1.ModelCheck{
			Name: m.Name, Matches: m.Matches, Differences: diffs,
			Live: modelSummaryToProto(m.Live), Rebuilt: modelSummaryToProto(m.Rebuilt),
		}
		if f := m.First; f != nil {
			c.FirstDifference = &receiptdv1.KeyDifference{Bucket: f.Bucket, Key: f.Key, KeyHex: f.KeyHex, Kind: f.Kind}
		}
		out.Models = append(out.Models, c)
	}
	for _, u := range r.Unreconciled {
		out.UnreconciledUsers = append(out.UnreconciledUsers, &receiptdv1.UnreconciledUser{
			Source: u.Source, UserId: u.UserID,
			ReportedLifetimePoints: decimalString(u.ReportedLifetime), ReportedAvailablePoints: decimalString(u.ReportedAvailable),
			AwardedPoints: decimalString(u.Awarded), CreditedPoints: decimalString(u.Credited), DerivedPoints: decimalString(u.Derived),
			Difference: decimalString(u.Difference),
		})
	}
	for _, a := range r.Anomalies {
		st, err := statusToProto(a.Status)
		if err != nil {
			return nil, fmt.Errorf("convert audit report: receipt %q: %w", a.ReceiptID, err)
		}
		ar := &receiptdv1.AnomalousReceipt{Source: a.Source, ReceiptId: a.ReceiptID, UserId: a.UserID, Status: st, Anomalies: make([]*receiptdv1.Anomaly, 0, len(a.Anomalies))}
		for _, an := range a.Anomalies {
			ar.Anomalies = append(ar.Anomalies, &receiptdv1.Anomaly{Kind: an.Kind, Detail: an.Detail})
		}
		out.AnomalousReceipts = append(out.AnomalousReceipts, ar)
	}
	for _, q := range r.Quarantined {
		out.Quarantined = append(out.Quarantined, &receiptdv1.QuarantinedDelivery{
			Source: q.Source, Position: q.Position, ProviderEventType: q.ProviderEventType, Reason: q.Reason, BodySha256: q.BodySHA256,
		})
	}
	for _, k := range r.Skipped {
		out.Skipped = append(out.Skipped, &receiptdv1.SkippedEvent{Position: k.Position, Stream: k.Stream, EventType: k.Type, EventId: k.EventID, Error: k.Error})
	}
	return out, nil
}

// rebuildResultToProto converts what a rebuild did.
func rebuildResultToProto(r projections.RebuildResult) *receiptdv1.RebuildResponse {
	out := &receiptdv1.RebuildResponse{
		Projection:      r.Projection,
		Position:        r.Position.Commit,
		Events:          r.Events,
		SummaryPosition: r.SummaryPosition.Commit,
		Took:            durationpb.New(r.Took),
		Models:          make([]*receiptdv1.ModelSummary, 0, len(r.Models)),
	}
	for _, m := range r.Models {
		out.Models = append(out.Models, modelSummaryToProto(m))
	}
	return out
}

// AuditReportFromProto turns an AuditService.Audit answer back into the
// report it was made from, so that a client (receiptd audit --server)
// prints a server's report as it prints one made offline. Log positions
// come back as Commit and Prepare alike. It fails on a decimal it cannot
// parse and on a clean flag that disagrees with the read models, keeping
// what it could convert.
func AuditReportFromProto(r *receiptdv1.AuditReport) (projections.AuditReport, error) {
	var errs []error
	dec := func(s string) decimal.Decimal {
		d, err := decimal.NewFromString(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("decimal %q: %w", s, err))
		}
		return d
	}
	rep := projections.AuditReport{
		Position:          positionFromProto(r.GetPosition()),
		Source:            r.GetSource(),
		Took:              r.GetTook().AsDuration(),
		UnreconciledTotal: int64(r.GetUnreconciledUsersTotal()),
		AnomaliesTotal:    int64(r.GetAnomalousReceiptsTotal()),
		QuarantinedTotal:  int64(r.GetQuarantinedTotal()),
		SkippedTotal:      int64(r.GetSkippedTotal()),
		Unreconciled:      []projections.UnreconciledUser{},
		Anomalies:         []projections.AnomalousReceipt{},
		Quarantined:       []projections.QuarantinedDelivery{},
		Skipped:           []projections.SkippedEvent{},
	}
	for _, m := range r.GetModels() {
		c := projections.ModelCheck{Name: m.GetName(), Matches: m.GetMatches(), Differences: int64(m.GetDifferences()),
			Live: modelSummaryFromProto(m.GetLive()), Rebuilt: modelSummaryFromProto(m.GetRebuilt())}
		if f := m.GetFirstDifference(); f != nil {
			c.First = &projections.KeyDifference{Bucket: f.GetBucket(), Key: f.GetKey(), KeyHex: f.GetKeyHex(), Kind: f.GetKind()}
		}
		rep.Models = append(rep.Models, c)
	}
	for _, u := range r.GetUnreconciledUsers() {
		rep.Unreconciled = append(rep.Unreconciled, projections.UnreconciledUser{
			Source: u.GetSource(), UserID: u.GetUserId(),
			ReportedLifetime: dec(u.GetReportedLifetimePoints()), ReportedAvailable: dec(u.GetReportedAvailablePoints()),
			Awarded: dec(u.GetAwardedPoints()), Credited: dec(u.GetCreditedPoints()), Derived: dec(u.GetDerivedPoints()), Difference: dec(u.GetDifference()),
		})
	}
	for _, a := range r.GetAnomalousReceipts() {
		ar := projections.AnomalousReceipt{Source: a.GetSource(), ReceiptID: a.GetReceiptId(), UserID: a.GetUserId(),
			Status: aggregate.ReceiptStatus(strings.TrimPrefix(a.GetStatus().String(), "RECEIPT_STATUS_"))}
		for _, an := range a.GetAnomalies() {
			ar.Anomalies = append(ar.Anomalies, aggregate.Anomaly{Kind: an.GetKind(), Detail: an.GetDetail()})
		}
		rep.Anomalies = append(rep.Anomalies, ar)
	}
	for _, q := range r.GetQuarantined() {
		rep.Quarantined = append(rep.Quarantined, projections.QuarantinedDelivery{
			Source: q.GetSource(), Position: q.GetPosition(), ProviderEventType: q.GetProviderEventType(), Reason: q.GetReason(), BodySHA256: q.GetBodySha256(),
		})
	}
	for _, k := range r.GetSkipped() {
		rep.Skipped = append(rep.Skipped, projections.SkippedEvent{Position: k.GetPosition(), Stream: k.GetStream(), Type: k.GetEventType(), EventID: k.GetEventId(), Error: k.GetError()})
	}
	if r.GetClean() != rep.Clean() {
		errs = append(errs, errors.New("the report's clean flag disagrees with its read models"))
	}
	return rep, errors.Join(errs...)
}

// RebuildResultFromProto turns an AuditService.Rebuild answer back into the
// result it was made from (see AuditReportFromProto).
func RebuildResultFromProto(r *receiptdv1.RebuildResponse) projections.RebuildResult {
	res := projections.RebuildResult{
		Projection:      r.GetProjection(),
		Position:        positionFromProto(r.GetPosition()),
		Events:          r.GetEvents(),
		SummaryPosition: positionFromProto(r.GetSummaryPosition()),
		Took:            r.GetTook().AsDuration(),
	}
	for _, m := range r.GetModels() {
		res.Models = append(res.Models, modelSummaryFromProto(m))
	}
	return res
}

func modelSummaryFromProto(m *receiptdv1.ModelSummary) projections.ModelSummary {
	return projections.ModelSummary{Name: m.GetName(), Keys: m.GetKeys(), Digest: m.GetDigest()}
}

// positionFromProto is a log position as the API sends it, the commit
// position only: Prepare is set equal to it.
func positionFromProto(p uint64) eventstore.Position {
	return eventstore.Position{Commit: p, Prepare: p}
}
