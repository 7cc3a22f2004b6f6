package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

func eventstoreAt(p uint64) eventstore.Position { return eventstore.Position{Commit: p, Prepare: p} }

func auditReport() projections.AuditReport {
	sum := projections.ModelSummary{Name: "receipts", Keys: 120, Digest: "aa"}
	return projections.AuditReport{
		Position: eventstoreAt(310),
		Models: []projections.ModelCheck{
			{Name: "receipts", Differences: 1, Live: sum, Rebuilt: projections.ModelSummary{Name: "receipts", Keys: 120, Digest: "bb"},
				First: &projections.KeyDifference{Bucket: "receipts", Key: "reewild/r7", KeyHex: "72", Kind: projections.DiffValue}},
			{Name: "balances", Matches: true, Live: sum, Rebuilt: sum},
		},
		UnreconciledTotal: 1,
		Unreconciled: []projections.UnreconciledUser{{Source: "reewild", UserID: "027KO2", ReportedLifetime: dec("1656.54"), ReportedAvailable: dec("1656.54"),
			Awarded: dec("74.28"), Credited: dec("0"), Derived: dec("74.28"), Difference: dec("1582.26")}},
		AnomaliesTotal:   2,
		Anomalies:        []projections.AnomalousReceipt{{Source: "reewild", ReceiptID: "r9", UserID: "u1", Status: aggregate.StatusCompleted, Anomalies: []aggregate.Anomaly{{Kind: "correction", Detail: "x"}}}},
		QuarantinedTotal: 1,
		Quarantined:      []projections.QuarantinedDelivery{{Source: "reewild", Position: 17, ProviderEventType: "receipt.teleported", Reason: "unknown event type", BodySHA256: "cc"}},
		Took:             1500 * time.Millisecond,
	}
}

func TestAudit(t *testing.T) {
	env := newTestEnv(t)
	env.auditor.report = auditReport()
	ctx := context.Background()
	rep, err := env.auditC.Audit(ctx, &receiptdv1.AuditRequest{Source: "reewild", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetClean() || rep.GetPosition() != 310 || rep.GetModels()[0].GetFirstDifference().GetKey() != "reewild/r7" || rep.GetAnomalousReceiptsTotal() != 2 ||
		rep.GetUnreconciledUsers()[0].GetDifference() != "1582.26" || rep.GetQuarantined()[0].GetPosition() != 17 {
		t.Errorf("report %v", rep)
	}
	if o := env.auditor.audits[0]; o.Source != "reewild" || o.Limit != 5 {
		t.Errorf("options %+v", o)
	}
	code, body := get(t, env, "/v1/audit?source=reewild", nil)
	if code != http.StatusOK {
		t.Fatalf("REST audit: %d %v", code, body)
	}
	wantFields(t, "AuditReport", body, map[string]any{"clean": false, "position": "310", "took": "1.500s", "skipped": []any{}, "skippedTotal": 0})
	for _, tc := range []struct {
		name string
		req  *receiptdv1.AuditRequest
		code codes.Code
	}{
		{"unknown source", &receiptdv1.AuditRequest{Source: "nosuch"}, codes.NotFound},
		{"negative limit", &receiptdv1.AuditRequest{Limit: -1}, codes.InvalidArgument},
	} {
		if _, err := env.auditC.Audit(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	env.auditor.err = projections.ErrBusy
	if code, body := get(t, env, "/v1/audit", nil); code != http.StatusConflict {
		t.Errorf("audit while another runs: %d %v", code, body)
	}
}

func TestRebuild(t *testing.T) {
	env := newTestEnv(t)
	env.auditor.result = projections.RebuildResult{Projection: "balances", Position: eventstoreAt(310), Events: 310, SummaryPosition: eventstoreAt(312),
		Models: []projections.ModelSummary{{Name: "balances", Keys: 9, Digest: "dd"}}, Took: time.Second}
	ctx := context.Background()
	res, err := env.auditC.Rebuild(ctx, &receiptdv1.RebuildRequest{Projection: "balances"})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetPosition() != 310 || res.GetSummaryPosition() != 312 || res.GetModels()[0].GetDigest() != "dd" || env.auditor.rebuilds[0].Projection != "balances" {
		t.Errorf("rebuild %v", res)
	}
	if _, err := env.auditC.Rebuild(ctx, &receiptdv1.RebuildRequest{Projection: "nope"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown projection: %v", err)
	}
	if len(env.auditor.rebuilds) != 1 {
		t.Errorf("an invalid rebuild reached the auditor")
	}
	resp, err := env.rest.Client().Post(env.rest.URL+"/v1/rebuild", "application/json", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || env.auditor.rebuilds[1].Projection != "" {
		t.Errorf("REST rebuild of everything: %d %+v", resp.StatusCode, env.auditor.rebuilds)
	}
}

// TestReportsFromProto: what a client turns the server's answers back into
// is the report and the result the server made (as JSON, which is what
// `receiptd audit --json` prints).
func TestReportsFromProto(t *testing.T) {
	rep := auditReport()
	rep.SkippedTotal = 1
	rep.Skipped = []projections.SkippedEvent{{Position: 9, Stream: "receipt-reewild.r1", Type: "receipt.stage_recorded.v1", EventID: "e9", Error: "bad"}}
	env := newTestEnv(t)
	env.auditor.report = rep
	env.auditor.result = projections.RebuildResult{Projection: "balances", Position: eventstoreAt(310), Events: 310, SummaryPosition: eventstoreAt(312),
		Took: time.Second, Models: []projections.ModelSummary{{Name: "balances", Keys: 3, Digest: "dd"}}}
	ctx := context.Background()

	resp, err := env.auditC.Audit(ctx, &receiptdv1.AuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := api.AuditReportFromProto(resp)
	if err != nil {
		t.Fatal(err)
	}
	wantSameJSON(t, got, rep)

	resp.Clean = !resp.Clean
	resp.UnreconciledUsers[0].Difference = "lots"
	if _, err := api.AuditReportFromProto(resp); err == nil || !strings.Contains(err.Error(), "clean flag") || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("a report with a bad decimal and a wrong clean flag: %v", err)
	}

	rb, err := env.auditC.Rebuild(ctx, &receiptdv1.RebuildRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantSameJSON(t, api.RebuildResultFromProto(rb), env.auditor.result)
}

func wantSameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}
