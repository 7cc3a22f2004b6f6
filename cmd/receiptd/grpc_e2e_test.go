package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func dialGRPC(t *testing.T, s *server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkGRPC checks every receipt and balance of f over gRPC.
func checkGRPC(t *testing.T, s *server, f *fixture, minPos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := receiptdv1.NewReceiptServiceClient(dialGRPC(t, s))
	for _, r := range f.receipts {
		got, err := c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: r.id, MinPosition: minPos})
		if err != nil {
			t.Errorf("GetReceipt %s: %v", r.id, err)
			continue
		}
		if got.GetUserId() != r.user || got.GetStatus().String() != r.status {
			t.Errorf("gRPC receipt %s: user %s status %s, want %s %s", r.id, got.GetUserId(), got.GetStatus(), r.user, r.status)
		}
		decEq(t, "gRPC receipt "+r.id+" points", got.GetPoints(), r.points)
	}
	for id, u := range f.users {
		b, err := c.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: id, MinPosition: minPos})
		if err != nil {
			t.Errorf("GetBalance %s: %v", id, err)
			continue
		}
		decEq(t, "gRPC balance "+id, b.GetDerivedPoints(), u.derived)
		if int(b.GetReceiptsCompleted()) != u.completed {
			t.Errorf("gRPC balance %s completed = %d, want %d", id, b.GetReceiptsCompleted(), u.completed)
		}
	}
	if _, err := c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "no-such-receipt"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetReceipt of an unknown receipt: %v, want NotFound", err)
	}
}

// TestReflection: server reflection lists the receiptd service.
func TestReflection(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := grpc_reflection_v1.NewServerReflectionClient(dialGRPC(t, s)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, svc := range resp.GetListServicesResponse().GetService() {
		if svc.GetName() == "receiptd.v1.ReceiptService" {
			found = true
		}
	}
	if !found {
		t.Fatalf("reflection lists %v, not receiptd.v1.ReceiptService", resp.GetListServicesResponse().GetService())
	}
}

// TestCallsAnsweredWhileWatchesHoldEveryStreamWorker: the gRPC servers run
// calls on a pool of 64 stream workers (servers.go), and a watch holds its
// worker for its whole life. With more watches open than there are
// workers, a call is answered at once (it runs on a goroutine of its
// own), and every watch still sees the next change.
func TestCallsAnsweredWhileWatchesHoldEveryStreamWorker(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const receipt, user, watches = "5c1e0a77-pool-4a95-ad87-2ae6de6e8df0", "u-pool", 80
	c := receiptdv1.NewReceiptServiceClient(dialGRPC(t, s))
	streams := make([]grpc.ServerStreamingClient[receiptdv1.Receipt], watches)
	for i := range streams {
		w, err := c.WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: receipt, AllowMissing: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Header(); err != nil { // sent once the watch is established
			t.Fatalf("watch %d: %v", i, err)
		}
		streams[i] = w
	}

	callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
	defer callCancel()
	if _, err := c.GetReceipt(callCtx, &receiptdv1.GetReceiptRequest{ReceiptId: receipt}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetReceipt with %d watches open: %v, want NotFound", watches, err)
	}

	body := mustJSON(map[string]any{"eventType": "receipt.validated", "data": map[string]any{
		"applicationDetails": app(), "userID": user, "receiptID": receipt, "currency": "GBP", "subTotal": json.Number("6.33")}})
	if code, _ := s.post(t, "reewild", body, sign(body), "application/json"); code != http.StatusOK {
		t.Fatalf("delivery answered %d", code)
	}
	for i, w := range streams {
		got, err := w.Recv()
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		if got.GetReceiptId() != receipt {
			t.Fatalf("watch %d saw receipt %q", i, got.GetReceiptId())
		}
	}
}
