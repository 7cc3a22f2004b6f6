package api_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// panicky panics in GetReceipt (a nil map write, as a real bug would) and
// in WatchReceipt after its first message; GetBalance works.
type panicky struct{ *stubService }

func (panicky) GetReceipt(context.Context, *receiptdv1.GetReceiptRequest) (*receiptdv1.Receipt, error) {
	var m map[string]int
	m["boom"]++
	return nil, nil
}

func (panicky) WatchReceipt(req *receiptdv1.WatchReceiptRequest, stream grpc.ServerStreamingServer[receiptdv1.Receipt]) error {
	if err := stream.Send(&receiptdv1.Receipt{ReceiptId: req.GetReceiptId()}); err != nil {
		return err
	}
	panic("watch went wrong")
}

// TestRecovery (issue 12, item 4): a panicking handler, unary or
// streaming, by gRPC or through the REST gateway, is answered INTERNAL
// (500), logged with its stack and counted, and the server goes on
// answering. Without the interceptor the panic ends the process (the
// whole test binary, here), webhooks included.
func TestRecovery(t *testing.T) {
	logs := &syncBuffer{}
	var panics atomic.Int32
	rec := api.Recovery{Logger: slog.New(slog.NewJSONHandler(logs, nil)), OnPanic: func(string) { panics.Add(1) }}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(rec.Unary), grpc.ChainStreamInterceptor(rec.Stream))
	receiptdv1.RegisterReceiptServiceServer(srv, panicky{&stubService{}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := receiptdv1.NewReceiptServiceClient(conn)
	ctx := context.Background()

	_, err = c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "r1"})
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != "GetReceipt: internal error" {
		t.Errorf("unary panic: %v, want INTERNAL \"GetReceipt: internal error\"", err)
	}
	w, err := c.WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Errorf("the watch's first message: %v", err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Internal {
		t.Errorf("stream panic: %v, want INTERNAL", err)
	}
	gw, err := api.NewGateway(ctx, conn, api.GatewayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rest := httptest.NewServer(gw)
	t.Cleanup(rest.Close)
	resp, err := rest.Client().Get(rest.URL + "/v1/receipts/r1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "nil map") {
		t.Errorf("REST: %d %s, want 500 without the panic's text", resp.StatusCode, body)
	}
	// Still serving.
	if _, err := c.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: "u1"}); err != nil {
		t.Errorf("after the panics: %v", err)
	}
	if panics.Load() != 3 || !strings.Contains(logs.String(), "assignment to entry in nil map") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("%d panics counted; logs:\n%s", panics.Load(), logs)
	}
}
