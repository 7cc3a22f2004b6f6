package projections_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/projections"
)

// textReports are reports to print: an audit that found one difference
// and every kind of finding (more than it lists of some), a clean audit of
// one source with nothing to list, a full rebuild, a one-model rebuild.
func textReports() (dirty, clean projections.AuditReport, full, one projections.RebuildResult) {
	d := decimal.RequireFromString
	dirty = projections.AuditReport{
		Position: eventstore.Position{Commit: 120, Prepare: 120},
		Models: []projections.ModelCheck{
			{Name: "receipts", Matches: false, Differences: 2, First: &projections.KeyDifference{Bucket: "receipts", Key: "reewild/r007", Kind: projections.DiffValue},
				Live: projections.ModelSummary{Keys: 41}, Rebuilt: projections.ModelSummary{Keys: 41}},
			{Name: "balances", Matches: true, Live: projections.ModelSummary{Keys: 9}, Rebuilt: projections.ModelSummary{Keys: 9}},
		},
		UnreconciledTotal: 1,
		Unreconciled: []projections.UnreconciledUser{{Source: "reewild", UserID: "u2", ReportedLifetime: d("100.5"),
			Awarded: d("90"), Credited: d("5"), Derived: d("95"), Difference: d("10.5")}},
		AnomaliesTotal: 3,
		Anomalies: []projections.AnomalousReceipt{{Source: "reewild", ReceiptID: "r001", UserID: "u1", Status: aggregate.StatusCompleted,
			Anomalies: []aggregate.Anomaly{{Kind: "amount_changed"}, {Kind: "award_before_upload"}}}},
		QuarantinedTotal: 1,
		Quarantined: []projections.QuarantinedDelivery{{Source: "reusely", Position: 77, ProviderEventType: "receipt.weird", Reason: "unknown event type",
			BodySHA256: "0123456789abcdef0123456789abcdef"}},
		SkippedTotal: 1,
		Skipped:      []projections.SkippedEvent{{Position: 99, Stream: "receipt-reewild-r009", Type: "receipt.stage_recorded.v1", Error: "bad data"}},
		Took:         1234567 * time.Microsecond,
	}
	clean = projections.AuditReport{
		Position: eventstore.Position{Commit: 7, Prepare: 6},
		Source:   "reewild",
		Models:   []projections.ModelCheck{{Name: "receipts", Matches: true, Live: projections.ModelSummary{Keys: 3}, Rebuilt: projections.ModelSummary{Keys: 3}}},
		Took:     2 * time.Millisecond,
	}
	full = projections.RebuildResult{Position: eventstore.Position{Commit: 120, Prepare: 120}, Events: 120,
		Models:          []projections.ModelSummary{{Name: "receipts", Keys: 41, Digest: "ab12"}, {Name: "balances", Keys: 9, Digest: "cd34"}},
		SummaryPosition: eventstore.Position{Commit: 121, Prepare: 121}, Took: 3500 * time.Microsecond}
	one = projections.RebuildResult{Projection: "ledger", Position: eventstore.Position{Commit: 5, Prepare: 5}, Events: 5,
		Models: []projections.ModelSummary{{Name: "ledger", Keys: 2, Digest: "ef56"}}, SummaryPosition: eventstore.Position{Commit: 5, Prepare: 5}}
	return
}

// TestReportsAsText: the text `receiptd audit` and `receiptd rebuild`
// print, to the byte.
func TestReportsAsText(t *testing.T) {
	dirty, clean, full, one := textReports()
	for _, c := range []struct {
		name  string
		write func(*bytes.Buffer) error
		want  string
	}{
		{"audit that differs", func(b *bytes.Buffer) error { return dirty.WriteText(b) }, `audit of the read models against the log at position 120 (findings: every source; took 1.235s)

READ MODEL  MATCHES  KEYS LIVE/REBUILT  DIFFERENT KEYS  FIRST DIFFERENCE
receipts    NO       41/41              2               receipts reewild/r007 (value differs)
balances    yes      9/9                0               -

users whose reported balance differs from the derived one: 1
SOURCE   USER  REPORTED LIFETIME  AWARDED  CREDITED  DERIVED  REPORTED - AWARDED
reewild  u2    100.5              90       5         95       10.5

receipts with anomalies: 3 (first 1 shown)
SOURCE   RECEIPT  USER  STATUS     ANOMALIES
reewild  r001     u1    COMPLETED  amount_changed, award_before_upload

quarantined deliveries: 1
SOURCE   POSITION  EVENT TYPE     REASON              BODY SHA-256
reusely  77        receipt.weird  unknown event type  0123456789abcdef…

events the read models could not apply: 1
POSITION  STREAM                TYPE                       ERROR
99        receipt-reewild-r009  receipt.stage_recorded.v1  bad data

NOT CLEAN: 1 read model(s) differ from their rebuild from the log; run ` + "`" + `receiptd rebuild` + "`" + ` (or POST /v1/rebuild on a running server)
`},
		{"clean audit of one source", func(b *bytes.Buffer) error { return clean.WriteText(b) }, `audit of the read models against the log at position 7/6 (findings: source reewild; took 2ms)

READ MODEL  MATCHES  KEYS LIVE/REBUILT  DIFFERENT KEYS  FIRST DIFFERENCE
receipts    yes      3/3                0               -

users whose reported balance differs from the derived one: 0

receipts with anomalies: 0

quarantined deliveries: 0

events the read models could not apply: 0

clean: every read model matches its rebuild from the log
`},
		{"rebuild of every read model", func(b *bytes.Buffer) error { return full.WriteText(b) }, `rebuilt every read model from the log: 120 events replayed in 4ms, swapped in at position 120

READ MODEL  KEYS  DIGEST (SHA-256, at position 121)
receipts    41    ab12
balances    9     cd34
`},
		{"rebuild of one read model", func(b *bytes.Buffer) error { return one.WriteText(b) }, `rebuilt read model ledger from the log: 5 events replayed in 0s, swapped in at position 5

READ MODEL  KEYS  DIGEST (SHA-256, at position 5)
ledger      2     ef56
`},
	} {
		var b bytes.Buffer
		if err := c.write(&b); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if b.String() != c.want {
			t.Errorf("%s: wrote\n%s\nwant\n%s", c.name, b.String(), c.want)
		}
	}
	if dirty.Differing() != 1 || dirty.Clean() || clean.Differing() != 0 || !clean.Clean() {
		t.Errorf("Differing %d, %d; Clean %v, %v", dirty.Differing(), clean.Differing(), dirty.Clean(), clean.Clean())
	}
	// A failing writer: its error, not a panic or a partial success.
	broken := errors.New("disk full")
	if err := dirty.WriteText(failAfter{n: 100, err: broken}); !errors.Is(err, broken) {
		t.Errorf("audit to a failing writer: %v", err)
	}
	if err := full.WriteText(failAfter{n: 10, err: broken}); !errors.Is(err, broken) {
		t.Errorf("rebuild to a failing writer: %v", err)
	}
}

// failAfter fails every write longer than n bytes.
type failAfter struct {
	n   int
	err error
}

func (f failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, f.err
	}
	return len(p), nil
}
