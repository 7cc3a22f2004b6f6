package console

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// TestOverduePage: the Overdue page lists the source's overdue receipts
// (ListReceipts status "overdue") with their last stage, first recorded
// time and the anomaly's detail; none says so; the receipt page shows each
// stage's recorded time.
func TestOverduePage(t *testing.T) {
	tc := newTestConsole(t)
	page := tc.get("/ui/overdue")
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `id="none-overdue"`) {
		t.Fatalf("no overdue receipts: %d %s", page.Code, page.Body)
	}
	at := timestamppb.New(time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC))
	stages := []*receiptdv1.StageProgress{
		{Stage: receiptdv1.Stage_STAGE_UPLOADED, Reported: true, RecordedAt: at},
		{Stage: receiptdv1.Stage_STAGE_EXTRACTED, Reported: true, RecordedAt: timestamppb.New(at.AsTime().Add(time.Minute))},
		{Stage: receiptdv1.Stage_STAGE_ENRICHED},
	}
	tc.api.receipts["stuck-1"] = &receiptdv1.Receipt{ReceiptId: "stuck-1", Source: "reewild", UserId: "027KO2", Status: receiptdv1.ReceiptStatus_RECEIPT_STATUS_IN_PROGRESS,
		Stages: stages, Anomalies: []*receiptdv1.Anomaly{{Kind: "overdue", Detail: "still in progress 47h0m0s after its first delivery was recorded"}}}
	tc.api.receipts["fresh"] = &receiptdv1.Receipt{ReceiptId: "fresh", Source: "reewild", Status: receiptdv1.ReceiptStatus_RECEIPT_STATUS_IN_PROGRESS, Stages: stages}
	page = tc.get("/ui/overdue?source=reewild")
	body := page.Body.String()
	for _, want := range []string{`href="/ui/receipts/reewild/stuck-1"`, "EXTRACTED", "2026-12-05 09:00:00Z", "still in progress 47h0m0s", `href="/ui/users/reewild/027KO2"`} {
		if page.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("overdue page lacks %q: %d %s", want, page.Code, body)
		}
	}
	if strings.Contains(body, "fresh") || strings.Contains(body, "none-overdue") {
		t.Fatalf("overdue page lists a receipt within its window: %s", body)
	}
	if body := tc.get("/ui/receipts/reewild/stuck-1").Body.String(); !strings.Contains(body, "recorded 2026-12-05 09:01:00.000Z") {
		t.Fatalf("receipt page lacks the recorded time: %s", body)
	}
}
