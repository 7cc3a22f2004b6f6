package main_test

import (
	"context"
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
