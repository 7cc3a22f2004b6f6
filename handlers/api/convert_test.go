package api

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/projections"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func wantProto(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", prototext.Format(got), prototext.Format(want))
	}
}

func TestReceiptToProto(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 30, 0, 500, time.UTC)
	amount := dec("23.40")
	v := aggregate.ReceiptView{
		ReceiptID:     "fb2c91",
		Source:        "reewild",
		UserID:        "027KO2",
		Status:        aggregate.StatusCompleted,
		Points:        dec("1656.54"),
		BonusPoints:   dec("100.00"),
		HealthPoints:  dec("0.5"),
		CO2e:          dec("123456789012345678901234567890.000000000001"),
		GreenProducts: 4,
		TransactionID: "tx-77",
		Merchant:      "Tesco",
		Currency:      "GBP",
		Amount:        &amount,
		Stages: []aggregate.StageView{
			{Stage: aggregate.StageUploaded, Reported: true, OccurredAt: &at},
			{Stage: aggregate.StageExtracted, Reported: true, Corrections: 2},
			{Stage: aggregate.StageFailed, Reported: true},
		},
		Failure: &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE", Message: "m"},
		Anomalies: []aggregate.Anomaly{
			{Kind: aggregate.AnomalyConflictingTerminals, Detail: "AWARDED and FAILED"},
		},
		UserIDs:  []string{"027KO2", "X"},
		Snapshot: &aggregate.Snapshot{AvailablePoints: dec("1")},
	}
	got, err := receiptToProto(v)
	if err != nil {
		t.Fatal(err)
	}
	amountStr := "23.4"
	wantProto(t, got, &receiptdv1.Receipt{
		ReceiptId:     "fb2c91",
		Source:        "reewild",
		UserId:        "027KO2",
		Status:        receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED,
		Points:        "1656.54",
		TotalCo2E:     "123456789012345678901234567890.000000000001",
		HealthPoints:  "0.5",
		BonusPoints:   "100",
		GreenProducts: 4,
		TransactionId: "tx-77",
		Merchant:      "Tesco",
		Currency:      "GBP",
		Amount:        &amountStr,
		Stages: []*receiptdv1.StageProgress{
			{Stage: receiptdv1.Stage_STAGE_UPLOADED, Reported: true, OccurredAt: timestamppb.New(at)},
			{Stage: receiptdv1.Stage_STAGE_EXTRACTED, Reported: true, Corrections: 2},
			{Stage: receiptdv1.Stage_STAGE_FAILED, Reported: true},
		},
		Failure:   &receiptdv1.Failure{Code: 5, Name: "FAILED_VALIDATE", Message: "m"},
		Anomalies: []*receiptdv1.Anomaly{{Kind: "conflicting_terminal_events", Detail: "AWARDED and FAILED"}},
		UserIds:   []string{"027KO2", "X"},
	})

	// The zero view: decimals are "0", amount and failure absent.
	got, err = receiptToProto(aggregate.ReceiptView{ReceiptID: "z", Status: aggregate.StatusInProgress})
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, got, &receiptdv1.Receipt{
		ReceiptId:    "z",
		Status:       receiptdv1.ReceiptStatus_RECEIPT_STATUS_IN_PROGRESS,
		Points:       "0",
		TotalCo2E:    "0",
		HealthPoints: "0",
		BonusPoints:  "0",
	})
}

// TestStagesAndStatusesMap checks that every aggregate stage and status
// maps to its own proto value, and that every proto value but UNSPECIFIED
// is reached: adding one on one side only fails here.
func TestStagesAndStatusesMap(t *testing.T) {
	seenStages := map[receiptdv1.Stage]aggregate.Stage{}
	for i, s := range aggregate.Stages {
		p, err := stageToProto(s)
		if err != nil {
			t.Errorf("stage %s: %v", s, err)
			continue
		}
		if p.String() != "STAGE_"+string(s) {
			t.Errorf("stage %s maps to %s", s, p)
		}
		if int(p) != i+1 {
			t.Errorf("stage %s is number %d in the proto, %d in aggregate.Stages: the orders differ", s, p, i+1)
		}
		if prev, dup := seenStages[p]; dup {
			t.Errorf("stages %s and %s both map to %s", prev, s, p)
		}
		seenStages[p] = s
	}
	if want := len(receiptdv1.Stage_name) - 1; len(seenStages) != want {
		t.Errorf("aggregate.Stages reach %d proto stages, the proto has %d", len(seenStages), want)
	}

	statuses := []aggregate.ReceiptStatus{aggregate.StatusInProgress, aggregate.StatusCompleted, aggregate.StatusFailed}
	seenStatuses := map[receiptdv1.ReceiptStatus]bool{}
	for _, s := range statuses {
		p, err := statusToProto(s)
		if err != nil {
			t.Errorf("status %s: %v", s, err)
			continue
		}
		if p.String() != "RECEIPT_STATUS_"+string(s) {
			t.Errorf("status %s maps to %s", s, p)
		}
		seenStatuses[p] = true
	}
	if want := len(receiptdv1.ReceiptStatus_name) - 1; len(seenStatuses) != want {
		t.Errorf("aggregate statuses reach %d proto statuses, the proto has %d", len(seenStatuses), want)
	}
}

func TestConvertRejectsUnknownValues(t *testing.T) {
	for name, v := range map[string]aggregate.ReceiptView{
		"status":      {ReceiptID: "r", Status: "LOST"},
		"empty":       {ReceiptID: "r"},
		"stage":       {ReceiptID: "r", Status: aggregate.StatusInProgress, Stages: []aggregate.StageView{{Stage: "SHREDDED"}}},
		"corrections": {ReceiptID: "r", Status: aggregate.StatusInProgress, Stages: []aggregate.StageView{{Stage: aggregate.StageScored, Corrections: math.MaxInt32 + 1}}},
		"code":        {ReceiptID: "r", Status: aggregate.StatusFailed, Failure: &aggregate.Failure{Code: math.MinInt32 - 1}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := receiptToProto(v); !errors.Is(err, errUnconvertible) {
				t.Errorf("receiptToProto = %v, want errUnconvertible", err)
			}
		})
	}
	if _, err := receiptToProto(aggregate.ReceiptView{ReceiptID: "r", Status: aggregate.StatusCompleted, GreenProducts: math.MaxInt32 + 1}); !errors.Is(err, errUnconvertible) {
		t.Errorf("receiptToProto with green products out of range = %v, want errUnconvertible", err)
	}
	for name, b := range map[string]projections.Balance{
		"receipts failed":       {ReceiptsFailed: math.MaxInt32 + 1},
		"total green products":  {TotalGreenProducts: math.MinInt32 - 1},
		"reported transactions": {Reported: &aggregate.Snapshot{NumTransactions: math.MaxInt32 + 1}},
	} {
		if _, err := balanceToProto(b); !errors.Is(err, errUnconvertible) {
			t.Errorf("balanceToProto with %s out of range = %v, want errUnconvertible", name, err)
		}
	}
	farFuture := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, e := range map[string]projections.Entity{
		"event count": {Kind: "offer", ID: "o", EventCount: math.MaxInt32 + 1},
		"status_at":   {Kind: "offer", ID: "o", StatusAt: &farFuture},
		"occurred_at": {Kind: "offer", ID: "o", Timeline: []projections.EntityEvent{{OccurredAt: &farFuture}}},
	} {
		if _, err := entityToProto(e); !errors.Is(err, errUnconvertible) {
			t.Errorf("entityToProto with %s out of range = %v, want errUnconvertible", name, err)
		}
	}
}

func TestBalanceToProto(t *testing.T) {
	got, err := balanceToProto(projections.Balance{
		Source: "reewild", UserID: "027KO2",
		Reported:           &aggregate.Snapshot{AvailablePoints: dec("1656.54"), LifetimePoints: dec("2000.10"), NumTransactions: 12},
		AwardedPoints:      dec("2000.10"),
		CreditedPoints:     dec("0.000000000000000000001"),
		DerivedPoints:      dec("2000.100000000000000000001"),
		Reconciled:         true,
		ReceiptsCompleted:  3,
		ReceiptsFailed:     2,
		ReceiptsInProgress: 1,
		TotalCO2e:          dec("7.5"),
		TotalGreenProducts: 9,
		TotalHealthPoints:  dec("-1.25"),
		Enrolled:           true,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, got, &receiptdv1.Balance{
		UserId:                  "027KO2",
		Source:                  "reewild",
		ReportedAvailablePoints: "1656.54",
		ReportedLifetimePoints:  "2000.1",
		ReportedNumTransactions: 12,
		AwardedPoints:           "2000.1",
		CreditedPoints:          "0.000000000000000000001",
		DerivedPoints:           "2000.100000000000000000001",
		Reconciled:              true,
		ReceiptsCompleted:       3,
		ReceiptsFailed:          2,
		ReceiptsInProgress:      1,
		TotalCo2E:               "7.5",
		TotalGreenProducts:      9,
		TotalHealthPoints:       "-1.25",
		Enrolled:                true,
	})

	// No snapshot reported yet: the reported fields are zero.
	got, err = balanceToProto(projections.Balance{Source: "reap", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, got, &receiptdv1.Balance{
		UserId:                  "u",
		Source:                  "reap",
		ReportedAvailablePoints: "0",
		ReportedLifetimePoints:  "0",
		AwardedPoints:           "0",
		CreditedPoints:          "0",
		DerivedPoints:           "0",
		TotalCo2E:               "0",
		TotalHealthPoints:       "0",
	})
}

func TestEntityToProto(t *testing.T) {
	seen := time.Date(2025, 11, 21, 15, 0, 1, 500, time.UTC)
	statusAt := time.Date(2025, 11, 21, 16, 0, 0, 0, time.FixedZone("", 3600))
	payout := dec("960.00")
	got, err := entityToProto(projections.Entity{
		Source: "reusely", Kind: "offer", ID: "93092",
		Status: "Delivered", StatusAt: &statusAt,
		Amount: &payout, Currency: "$", UserID: "u1",
		FirstSeen: seen, LastSeen: seen.Add(time.Minute),
		FirstPosition: 3, LastPosition: 1 << 62, EventCount: 250,
		Timeline: []projections.EntityEvent{
			{EventType: "offer.created", OccurredAt: &seen, Attributes: map[string]string{"status_id": "1"}, BodySHA256: "aa", Position: 3, RecordedAt: seen},
			{EventType: "offer.status.updated", Status: "Delivered", StatusAt: &statusAt, Amount: &payout, Currency: "$", UserID: "u1", BodySHA256: "bb", Position: 1 << 62, RecordedAt: seen.Add(time.Minute)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	amount := "960"
	wantProto(t, got, &receiptdv1.Entity{
		Kind: "offer", EntityId: "93092", Source: "reusely",
		Status: "Delivered", StatusAt: timestamppb.New(statusAt),
		Amount: &amount, Currency: "$", UserId: "u1",
		FirstSeen: timestamppb.New(seen), LastSeen: timestamppb.New(seen.Add(time.Minute)),
		FirstPosition: 3, LastPosition: 1 << 62, EventCount: 250,
		Timeline: []*receiptdv1.EntityEvent{
			{EventType: "offer.created", OccurredAt: timestamppb.New(seen), Attributes: map[string]string{"status_id": "1"}, BodySha256: "aa", Position: 3, RecordedAt: timestamppb.New(seen)},
			{EventType: "offer.status.updated", Status: "Delivered", StatusAt: timestamppb.New(statusAt), Amount: &amount, Currency: "$", UserId: "u1", BodySha256: "bb", Position: 1 << 62, RecordedAt: timestamppb.New(seen.Add(time.Minute))},
		},
	})

	// A listed entity (no timeline), with no status, amount or times known.
	got, err = entityToProto(projections.Entity{Source: "reap", Kind: "account", ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	wantProto(t, got, &receiptdv1.Entity{Kind: "account", EntityId: "a", Source: "reap"})
}

// TestLedgerKindsMap checks that every ledger entry kind maps to its own
// proto value, and that every proto value but UNSPECIFIED is reached.
func TestLedgerKindsMap(t *testing.T) {
	seen := map[receiptdv1.LedgerEntryKind]string{}
	for _, k := range []string{projections.LedgerAward, projections.LedgerAwardCorrected, projections.LedgerAwardMoved, projections.LedgerCredit} {
		p, err := ledgerKindToProto(k)
		if err != nil {
			t.Errorf("kind %s: %v", k, err)
			continue
		}
		if p.String() != "LEDGER_ENTRY_KIND_"+strings.ToUpper(k) {
			t.Errorf("kind %s maps to %s", k, p)
		}
		if prev, dup := seen[p]; dup {
			t.Errorf("kinds %s and %s both map to %s", prev, k, p)
		}
		seen[p] = k
	}
	if want := len(receiptdv1.LedgerEntryKind_name) - 1; len(seen) != want {
		t.Errorf("ledger kinds reach %d proto kinds, the proto has %d", len(seen), want)
	}
	if _, err := ledgerEntryToProto(projections.LedgerEntry{Kind: "refund"}); !errors.Is(err, errUnconvertible) {
		t.Errorf("unknown ledger kind: %v", err)
	}
	if _, err := pipelineStatsToProto(projections.PipelineStats{Completed: math.MaxInt32 + 1}); !errors.Is(err, errUnconvertible) {
		t.Errorf("stats count out of range: %v", err)
	}
	if _, err := auditReportToProto(projections.AuditReport{Anomalies: []projections.AnomalousReceipt{{Status: "LOST"}}}); !errors.Is(err, errUnconvertible) {
		t.Errorf("audit of a receipt with an unknown status: %v", err)
	}
}
