package api_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

// TestHistoryAndWatchUnderAccessControl: through the access interceptor, a
// user reads and watches their own receipt; another user's receipt reads
// as a missing one (a watch with allow_missing waits for it as it would
// for a receipt not seen yet), so its existence does not leak.
func TestHistoryAndWatchUnderAccessControl(t *testing.T) {
	k := getKeys(t)
	v := newViews(t)
	v.stage("r-alice", "alice", aggregate.StageUploaded, "a")
	v.stage("r-bob", "bob", aggregate.StageUploaded, "b")
	events := &fakeEventLog{events: map[string][]projections.HistoryEvent{
		"reewild/r-alice": {{Position: eventstoreAt(1), Type: aggregate.TypeReceiptStageRecorded, Stage: aggregate.StageUploaded}},
		"reewild/r-bob":   {{Position: eventstoreAt(2), Type: aggregate.TypeReceiptStageRecorded, Stage: aggregate.StageUploaded}},
	}}
	svc, err := api.NewReceiptService(v.db, []string{"reewild"}, api.WithEventLog(events))
	if err != nil {
		t.Fatal(err)
	}
	env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, svc)
	alice := withAuth(context.Background(), "Bearer "+k.idp.Sign(t, claims("alice")))

	if r, err := env.client.ListReceiptEvents(alice, &receiptdv1.ListReceiptEventsRequest{ReceiptId: "r-alice"}); err != nil || len(r.GetEvents()) != 1 {
		t.Errorf("events of alice's receipt: %v, %v", r, err)
	}
	for _, id := range []string{"r-bob", "r-nobody"} {
		if _, err := env.client.ListReceiptEvents(alice, &receiptdv1.ListReceiptEventsRequest{ReceiptId: id}); status.Code(err) != codes.NotFound || status.Convert(err).Message() != "ListReceiptEvents: not found" {
			t.Errorf("events of %s: %v, want the uniform NotFound", id, err)
		}
	}

	s, err := env.client.WatchReceipt(alice, &receiptdv1.WatchReceiptRequest{ReceiptId: "r-alice"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || r.GetUserId() != "alice" {
		t.Fatalf("watch of alice's receipt: %v, %v", r, err)
	}
	for _, id := range []string{"r-bob", "r-nobody"} {
		s, err := env.client.WatchReceipt(alice, &receiptdv1.WatchReceiptRequest{ReceiptId: id})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "WatchReceipt: not found" {
			t.Errorf("watch of %s: %v, want the uniform NotFound", id, err)
		}
		// With allow_missing, both wait alike until the caller leaves.
		ctx, cancel := context.WithTimeout(alice, 100*time.Millisecond)
		s, err = env.client.WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: id, AllowMissing: true})
		if err == nil {
			_, err = s.Recv()
		}
		cancel()
		if status.Code(err) != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("watch of %s with allow_missing: %v, want a wait until the deadline", id, err)
		}
	}
}
