package api_test

import (
	"context"
	"errors"
	"fmt"
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

func receiptEvents() []projections.HistoryEvent {
	at := time.Date(2025, 11, 21, 15, 5, 2, 0, time.UTC)
	pts := dec("74.28")
	meta := projections.EventMeta{
		ProviderEventType: "receipt.uploaded", ReceivedAt: at.Add(time.Second), Scheme: "hmac-sha256",
		KeyID: "sha256:0a1b2c3d4e5f", BodySHA256: "9f86d081884c7d65",
	}
	awardMeta := meta
	awardMeta.ProviderEventType, awardMeta.BodySHA256, awardMeta.Correction = "rewards.awarded", "60303ae22b998861", true
	return []projections.HistoryEvent{
		{Position: eventstore.Position{Commit: 3, Prepare: 3}, Revision: 0, ID: "e1", Type: aggregate.TypeReceiptStageRecorded,
			RecordedAt: at.Add(2 * time.Second), Meta: meta, Stage: aggregate.StageUploaded, OccurredAt: &at, UserID: "027KO2"},
		{Position: eventstore.Position{Commit: 9, Prepare: 9}, Revision: 1, ID: "e2", Type: aggregate.TypeReceiptStageRecorded,
			RecordedAt: at.Add(time.Minute), Meta: awardMeta, Stage: aggregate.StageAwarded, UserID: "027KO2", Points: &pts, TransactionID: "tx-1"},
		{Position: eventstore.Position{Commit: 12, Prepare: 12}, Revision: 2, ID: "e3", Type: "receipt.future_event.v9", RecordedAt: at.Add(time.Hour)},
	}
}

func TestListReceiptEvents(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) { f.receipts["reewild/fb2c91"] = completedReceipt() })
	env.events.events["reewild/fb2c91"] = receiptEvents()
	ctx := context.Background()

	resp, err := env.client.ListReceiptEvents(ctx, &receiptdv1.ListReceiptEventsRequest{ReceiptId: "fb2c91", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != 2 || resp.GetNextPageToken() == "" {
		t.Fatalf("first page: %v", resp)
	}
	up := resp.GetEvents()[0]
	if up.GetPosition() != 3 || up.GetStage() != receiptdv1.Stage_STAGE_UPLOADED || up.GetDelivery().GetScheme() != "hmac-sha256" ||
		up.GetDelivery().GetProviderEventType() != "receipt.uploaded" || up.GetOccurredAt().AsTime().Second() != 2 || up.Points != nil {
		t.Errorf("first event %v", up)
	}
	aw := resp.GetEvents()[1]
	if aw.GetPoints() != "74.28" || !aw.GetDelivery().GetCorrection() || aw.GetRevision() != 1 {
		t.Errorf("award %v", aw)
	}
	resp, err = env.client.ListReceiptEvents(ctx, &receiptdv1.ListReceiptEventsRequest{ReceiptId: "fb2c91", PageSize: 2, PageToken: resp.GetNextPageToken()})
	if err != nil || len(resp.GetEvents()) != 1 || resp.GetEvents()[0].GetStage() != receiptdv1.Stage_STAGE_UNSPECIFIED || resp.GetNextPageToken() != "" {
		t.Fatalf("second page: %v, %v", resp, err)
	}

	// REST, with every field of an event.
	code, body := get(t, env, "/v1/receipts/fb2c91/events", nil)
	if code != http.StatusOK {
		t.Fatalf("REST: %d %v", code, body)
	}
	events := body["events"].([]any)
	first := events[0].(map[string]any)
	wantKeys(t, "ReceiptEvent", first, "position", "revision", "eventId", "eventType", "recordedAt", "delivery", "stage", "occurredAt", "userId", "transactionId", "failure")
	wantFields(t, "ReceiptEvent", first, map[string]any{"position": "3", "revision": "0", "stage": "STAGE_UPLOADED", "failure": nil})
	wantKeys(t, "Delivery", first["delivery"].(map[string]any), "providerEventType", "deliveryId", "receivedAt", "scheme", "keyId", "bodySha256", "correction")
	wantFields(t, "Delivery", first["delivery"].(map[string]any), map[string]any{"receivedAt": "2025-11-21T15:05:03Z", "keyId": "sha256:0a1b2c3d4e5f", "bodySha256": "9f86d081884c7d65"})

	for _, tc := range []struct {
		name string
		req  *receiptdv1.ListReceiptEventsRequest
		code codes.Code
	}{
		{"unknown receipt", &receiptdv1.ListReceiptEventsRequest{ReceiptId: "nope"}, codes.NotFound},
		{"no id", &receiptdv1.ListReceiptEventsRequest{}, codes.InvalidArgument},
		{"negative page", &receiptdv1.ListReceiptEventsRequest{ReceiptId: "fb2c91", PageSize: -1}, codes.InvalidArgument},
		{"bad token", &receiptdv1.ListReceiptEventsRequest{ReceiptId: "fb2c91", PageToken: "x"}, codes.InvalidArgument},
		{"unknown source", &receiptdv1.ListReceiptEventsRequest{ReceiptId: "fb2c91", Source: "nosuch"}, codes.NotFound},
	} {
		if _, err := env.client.ListReceiptEvents(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
}

func TestListReceiptEventsWithoutEventLog(t *testing.T) {
	svc, err := api.NewReceiptService(newFakeReader(), []string{"reewild"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ListReceiptEvents(context.Background(), &receiptdv1.ListReceiptEventsRequest{ReceiptId: "r"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("without an event log: %v", err)
	}
}

func TestListUserLedger(t *testing.T) {
	env := newTestEnv(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env.reader.Set(func(f *fakeReader) {
		f.ledgers["reewild/027KO2"] = []projections.LedgerEntry{
			{Position: 8, RecordedAt: at, Kind: projections.LedgerAward, Source: "reewild", ReceiptID: "fb2c91", TransactionID: "tx-1",
				Points: dec("74.28"), Total: dec("74.28"), Event: projections.EventMeta{ProviderEventType: "rewards.awarded", ReceivedAt: at, Scheme: "hmac-sha256", BodySHA256: "ab"}},
			{Position: 11, RecordedAt: at, Kind: projections.LedgerCredit, Source: "reward", TransactionID: "c-9",
				Points: dec("0.72"), Total: dec("75"), Event: projections.EventMeta{ProviderEventType: "balance.credit_points_issued", ReceivedAt: at}},
			{Position: 15, RecordedAt: at, Kind: projections.LedgerAwardMoved, Source: "reewild", ReceiptID: "fb2c91",
				Points: dec("-74.28"), Total: dec("0.72")},
		}
	})
	ctx := context.Background()
	resp, err := env.client.ListUserLedger(ctx, &receiptdv1.ListUserLedgerRequest{UserId: "027KO2"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range resp.GetEntries() {
		kinds = append(kinds, e.GetKind().String()+" "+e.GetPoints()+" "+e.GetTotal())
	}
	if !equalStrings(kinds, []string{"LEDGER_ENTRY_KIND_AWARD 74.28 74.28", "LEDGER_ENTRY_KIND_CREDIT 0.72 75", "LEDGER_ENTRY_KIND_AWARD_MOVED -74.28 0.72"}) {
		t.Errorf("ledger %v", kinds)
	}
	code, body := get(t, env, "/v1/users/027KO2/ledger?page_size=1", nil)
	if code != http.StatusOK || body["nextPageToken"] != "page-2" {
		t.Fatalf("REST: %d %v", code, body)
	}
	entry := body["entries"].([]any)[0].(map[string]any)
	wantKeys(t, "LedgerEntry", entry, "position", "kind", "points", "total", "source", "receiptId", "transactionId", "recordedAt", "delivery")
	wantFields(t, "LedgerEntry", entry, map[string]any{"position": "8", "kind": "LEDGER_ENTRY_KIND_AWARD", "points": "74.28", "total": "74.28", "receiptId": "fb2c91"})
	if code, _ := get(t, env, "/v1/users/ghost/ledger", nil); code != http.StatusNotFound {
		t.Errorf("unknown user: %d", code)
	}
	env.reader.Set(func(f *fakeReader) { f.err = errors.New("disk on fire") })
	if _, err := env.client.ListUserLedger(ctx, &receiptdv1.ListUserLedgerRequest{UserId: "027KO2"}); status.Code(err) != codes.Internal {
		t.Errorf("internal: %v", err)
	}
}

// TestListReceiptEventsLogDown: with the log unavailable (KurrentDB down)
// or closed (the server stopping), a receipt's events are UNAVAILABLE, 503
// over REST (clients retry), never INTERNAL.
func TestListReceiptEventsLogDown(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) { f.receipts["reewild/fb2c91"] = completedReceipt() })
	for _, cause := range []error{eventstore.ErrUnavailable, eventstore.ErrClosed} {
		env.events.mu.Lock()
		env.events.err = fmt.Errorf("esdb: read stream receipt-reewild.fb2c91: %w", cause)
		env.events.mu.Unlock()
		_, err := env.client.ListReceiptEvents(context.Background(), &receiptdv1.ListReceiptEventsRequest{ReceiptId: "fb2c91"})
		if status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "esdb") {
			t.Errorf("%v: %v, want UNAVAILABLE without the store's text", cause, err)
		}
		if code, _ := get(t, env, "/v1/receipts/fb2c91/events", nil); code != http.StatusServiceUnavailable {
			t.Errorf("%v: REST %d, want 503", cause, code)
		}
	}
}
