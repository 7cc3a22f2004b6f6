package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/authtest"
	"github.com/receiptd/receiptd/internal/ratelimit"
)

// stubService answers the RPCs of the access tests with canned data: the
// receipts r-alice and r-bob (source reewild), any user's balance, ledger
// and receipts, one entity. Its not-found messages are shaped like the real
// service's (they name the receipt), so the tests see the interceptor make
// them uniform for users.
type stubService struct {
	receiptdv1.UnimplementedReceiptServiceServer
	// skipOwnerCheck: ListReceiptEvents answers without AuthorizeOwner
	// (a handler bug the interceptor must catch).
	skipOwnerCheck bool
	// ignoreSendErrors: WatchReceipt keeps going after a failed Send and
	// returns nil.
	ignoreSendErrors bool
}

var stubReceipts = map[string]*receiptdv1.Receipt{
	"r-alice":  {ReceiptId: "r-alice", Source: "reewild", UserId: "alice", Points: "12.5"},
	"r-bob":    {ReceiptId: "r-bob", Source: "reewild", UserId: "bob", Points: "99"},
	"r-nobody": {ReceiptId: "r-nobody", Source: "reewild"},
}

func stubReceipt(op, id string) (*receiptdv1.Receipt, error) {
	r, ok := stubReceipts[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "%s: receipt %q of source %q: not found", op, id, "reewild")
	}
	return r, nil
}

func (s *stubService) GetReceipt(_ context.Context, req *receiptdv1.GetReceiptRequest) (*receiptdv1.Receipt, error) {
	return stubReceipt("GetReceipt", req.GetReceiptId())
}

func (s *stubService) GetBalance(_ context.Context, req *receiptdv1.GetBalanceRequest) (*receiptdv1.Balance, error) {
	return &receiptdv1.Balance{UserId: req.GetUserId(), Source: "reewild", DerivedPoints: "1"}, nil
}

func (s *stubService) ListUserReceipts(_ context.Context, req *receiptdv1.ListUserReceiptsRequest) (*receiptdv1.ListUserReceiptsResponse, error) {
	resp := &receiptdv1.ListUserReceiptsResponse{}
	for _, r := range stubReceipts {
		if r.GetUserId() == req.GetUserId() {
			resp.Receipts = append(resp.Receipts, r)
		}
	}
	return resp, nil
}

func (s *stubService) GetEntity(_ context.Context, req *receiptdv1.GetEntityRequest) (*receiptdv1.Entity, error) {
	return &receiptdv1.Entity{Kind: req.GetKind(), EntityId: req.GetEntityId(), UserId: "alice"}, nil
}

func (s *stubService) ListReceiptEvents(ctx context.Context, req *receiptdv1.ListReceiptEventsRequest) (*receiptdv1.ListReceiptEventsResponse, error) {
	r, err := stubReceipt("ListReceiptEvents", req.GetReceiptId())
	if err != nil {
		return nil, err
	}
	if !s.skipOwnerCheck {
		if err := api.AuthorizeOwner(ctx, r.GetUserId()); err != nil {
			return nil, status.Errorf(codes.NotFound, "ListReceiptEvents: receipt %q of source %q: not found", r.GetReceiptId(), "reewild")
		}
	}
	return &receiptdv1.ListReceiptEventsResponse{Events: []*receiptdv1.ReceiptEvent{{EventType: "receipt.uploaded.v1", UserId: r.GetUserId()}}}, nil
}

func (s *stubService) ListUserLedger(_ context.Context, req *receiptdv1.ListUserLedgerRequest) (*receiptdv1.ListUserLedgerResponse, error) {
	return &receiptdv1.ListUserLedgerResponse{}, nil
}

func (s *stubService) WatchReceipt(req *receiptdv1.WatchReceiptRequest, stream grpc.ServerStreamingServer[receiptdv1.Receipt]) error {
	r, err := stubReceipt("WatchReceipt", req.GetReceiptId())
	if err != nil {
		return err
	}
	for range 2 {
		if err := stream.Send(r); err != nil && !s.ignoreSendErrors {
			return err
		}
	}
	return nil
}

func (s *stubService) WatchUser(req *receiptdv1.WatchUserRequest, stream grpc.ServerStreamingServer[receiptdv1.Balance]) error {
	return stream.Send(&receiptdv1.Balance{UserId: req.GetUserId()})
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// accessEnv is a gRPC server with the access interceptors over svc, on a
// loopback TCP listener and on a GatewayListener, the REST gateway over the
// latter on an httptest server, and a direct gRPC client.
type accessEnv struct {
	conn   *grpc.ClientConn
	client receiptdv1.ReceiptServiceClient
	rest   *httptest.Server
	// handler is what rest serves: the gateway, with the remote address
	// setRemote set.
	handler http.Handler
	logs    *syncBuffer
	access  *api.Access

	mu     sync.Mutex
	remote string // if set, the REST client's address as the HTTP server sees it
}

func newAccessEnv(t *testing.T, o api.AccessOptions, svc receiptdv1.ReceiptServiceServer) *accessEnv {
	t.Helper()
	env := &accessEnv{logs: &syncBuffer{}}
	o.Logger = slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.DefaultSource == "" {
		o.DefaultSource = "reewild" // as the server always sets it: its first source
	}
	gwl := api.NewGatewayListener()
	o.Gateway = gwl
	acc, err := api.NewAccess(o)
	if err != nil {
		t.Fatal(err)
	}
	env.access = acc
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(acc.Unary), grpc.ChainStreamInterceptor(acc.Stream))
	receiptdv1.RegisterReceiptServiceServer(srv, svc)
	receiptdv1.RegisterAuditServiceServer(srv, stubAudit{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	go srv.Serve(gwl)
	t.Cleanup(srv.Stop)

	env.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.conn.Close() })
	env.client = receiptdv1.NewReceiptServiceClient(env.conn)

	gwConn, err := grpc.NewClient("passthrough:///receiptd-gateway", grpc.WithContextDialer(gwl.DialContext), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gwConn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gw, err := api.NewGateway(ctx, gwConn, api.GatewayOptions{Access: acc})
	if err != nil {
		t.Fatal(err)
	}
	env.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.mu.Lock()
		if env.remote != "" {
			r.RemoteAddr = env.remote
		}
		env.mu.Unlock()
		gw.ServeHTTP(w, r)
	})
	env.rest = httptest.NewServer(env.handler)
	t.Cleanup(env.rest.Close)
	return env
}

// stubAudit answers the AuditService RPCs at once with empty answers.
type stubAudit struct {
	receiptdv1.UnimplementedAuditServiceServer
}

func (stubAudit) Audit(context.Context, *receiptdv1.AuditRequest) (*receiptdv1.AuditReport, error) {
	return &receiptdv1.AuditReport{}, nil
}

func (stubAudit) Rebuild(context.Context, *receiptdv1.RebuildRequest) (*receiptdv1.RebuildResponse, error) {
	return &receiptdv1.RebuildResponse{}, nil
}

func (stubAudit) ReprocessQuarantined(context.Context, *receiptdv1.ReprocessQuarantinedRequest) (*receiptdv1.ReprocessQuarantinedResponse, error) {
	return &receiptdv1.ReprocessQuarantinedResponse{}, nil
}

func (e *accessEnv) setRemote(addr string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remote = addr
}

type restAnswer struct {
	code   int
	header http.Header
	body   string
}

func (e *accessEnv) get(t *testing.T, path, authorization string, extra ...string) restAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.rest.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Add(extra[i], extra[i+1])
	}
	resp, err := e.rest.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return restAnswer{resp.StatusCode, resp.Header, string(body)}
}

func withAuth(ctx context.Context, authorization string) context.Context {
	if authorization == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
}

// httpStatus is how the gateway answers each gRPC code of the table.
var httpStatus = map[codes.Code]int{
	codes.OK:                http.StatusOK,
	codes.Unauthenticated:   http.StatusUnauthorized,
	codes.PermissionDenied:  http.StatusForbidden,
	codes.NotFound:          http.StatusNotFound,
	codes.ResourceExhausted: http.StatusTooManyRequests,
	codes.Internal:          http.StatusInternalServerError,
}

// rpcCall is one RPC of the table, by both doors.
type rpcCall struct {
	name string
	grpc func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error
	rest string // GET path
}

func unaryCall[T any](f func(context.Context) (T, error)) func(context.Context) error {
	return func(ctx context.Context) error { _, err := f(ctx); return err }
}

var tableCalls = []rpcCall{
	{"GetReceipt r-alice", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "r-alice"})
		return err
	}, "/v1/receipts/r-alice"},
	{"GetReceipt r-bob", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "r-bob"})
		return err
	}, "/v1/receipts/r-bob"},
	{"GetReceipt missing", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "r-missing"})
		return err
	}, "/v1/receipts/r-missing"},
	{"GetReceipt of no user", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "r-nobody"})
		return err
	}, "/v1/receipts/r-nobody"},
	{"GetBalance alice", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: "alice"})
		return err
	}, "/v1/users/alice/balance"},
	{"GetBalance bob", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: "bob"})
		return err
	}, "/v1/users/bob/balance"},
	{"ListUserReceipts alice", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: "alice"})
		return err
	}, "/v1/users/alice/receipts"},
	{"ListUserReceipts bob", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: "bob"})
		return err
	}, "/v1/users/bob/receipts"},
	{"ListUserLedger bob", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.ListUserLedger(ctx, &receiptdv1.ListUserLedgerRequest{UserId: "bob"})
		return err
	}, "/v1/users/bob/ledger"},
	{"ListReceiptEvents r-alice", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.ListReceiptEvents(ctx, &receiptdv1.ListReceiptEventsRequest{ReceiptId: "r-alice"})
		return err
	}, "/v1/receipts/r-alice/events"},
	{"ListReceiptEvents r-bob", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.ListReceiptEvents(ctx, &receiptdv1.ListReceiptEventsRequest{ReceiptId: "r-bob"})
		return err
	}, "/v1/receipts/r-bob/events"},
	{"GetEntity", func(ctx context.Context, c receiptdv1.ReceiptServiceClient) error {
		_, err := c.GetEntity(ctx, &receiptdv1.GetEntityRequest{Kind: "offer", EntityId: "93092"})
		return err
	}, "/v1/entities/offer/93092"},
}

// TestAccessTable is the principal × RPC × code table, through gRPC and
// through REST.
func TestAccessTable(t *testing.T) {
	k := getKeys(t)
	env := newAccessEnv(t, api.AccessOptions{
		Authenticator: newCredentials(t, func() time.Time { return testNow }),
		DefaultSource: "reewild",
	}, &stubService{})
	alice := "Bearer " + k.idp.Sign(t, claims("alice"))
	bob := "Bearer " + k.idpEC.Sign(t, jwt.MapClaims{"iss": testIssuerEC, "aud": testAudience, "uid": "bob", "exp": testNow.Add(time.Hour).Unix()})
	expired := "Bearer " + k.idp.Sign(t, claims("alice", func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Hour).Unix() }))
	const (
		OK  = codes.OK
		U   = codes.Unauthenticated
		P   = codes.PermissionDenied
		NF  = codes.NotFound
		all = -1
	)
	every := func(c codes.Code) []codes.Code {
		out := make([]codes.Code, len(tableCalls))
		for i := range out {
			out[i] = c
		}
		return out
	}
	principals := []struct {
		name          string
		authorization string
		want          []codes.Code // in tableCalls order
	}{
		{"no credentials", "", every(U)},
		{"unknown API key", "Bearer rk_not_a_key", every(U)},
		{"Basic scheme", "Basic " + readerKey, every(U)},
		{"expired token", expired, every(U)},
		{"alg none", "Bearer " + authtest.None(t, claims("alice")), every(U)},
		{"read:all key", "Bearer " + readerKey, []codes.Code{OK, OK, NF, OK, OK, OK, OK, OK, OK, OK, OK, OK}},
		{"admin-only key", "Bearer " + adminKey, every(P)},
		{"read:all+admin key", "bearer " + bothKey, []codes.Code{OK, OK, NF, OK, OK, OK, OK, OK, OK, OK, OK, OK}},
		{"user alice", alice, []codes.Code{OK, NF, NF, NF, OK, P, OK, P, P, OK, NF, P}},
		{"user bob (ES256, reewild only)", bob, []codes.Code{NF, OK, NF, NF, P, OK, P, OK, OK, NF, OK, P}},
	}
	for _, p := range principals {
		if len(p.want) != len(tableCalls) {
			t.Fatalf("%s: %d expectations for %d calls", p.name, len(p.want), len(tableCalls))
		}
		for i, call := range tableCalls {
			want := p.want[i]
			t.Run(p.name+"/"+call.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(withAuth(context.Background(), p.authorization), 10*time.Second)
				defer cancel()
				if got := status.Code(call.grpc(ctx, env.client)); got != want {
					t.Errorf("gRPC: %v, want %v", got, want)
				}
				a := env.get(t, call.rest, p.authorization)
				if a.code != httpStatus[want] {
					t.Errorf("REST GET %s: %d, want %d (%s)", call.rest, a.code, httpStatus[want], a.body)
				}
				if want == U && a.header.Get("WWW-Authenticate") == "" {
					t.Errorf("REST 401 without WWW-Authenticate")
				}
			})
		}
	}

	// Health answers without credentials.
	if _, err := healthpb.NewHealthClient(env.conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check without credentials: %v", err)
	}

	// Keys and tokens never reach the logs; principal names do.
	logs := env.logs.String()
	for _, secret := range []string{readerKey, adminKey, bothKey, api.HashAPIKey(readerKey), strings.TrimPrefix(alice, "Bearer "), strings.Split(alice, ".")[2], strings.Split(bob, ".")[2], "rk_not_a_key"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a credential (%.12s…)", secret)
		}
	}
	for _, want := range []string{`"principal":"alice"`, `"principal":"ops-console"`, "access refused", "expired"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %s", want)
		}
	}
}

// TestNotFoundDoesNotLeak: a user asking for someone else's receipt gets
// exactly the answer of a receipt that does not exist, by both doors.
func TestNotFoundDoesNotLeak(t *testing.T) {
	k := getKeys(t)
	env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, &stubService{})
	alice := "Bearer " + k.idp.Sign(t, claims("alice"))
	ctx := withAuth(context.Background(), alice)
	for _, rpc := range []struct {
		name string
		call func(id string) error
		rest string
	}{
		{"GetReceipt", func(id string) error {
			_, err := env.client.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: id})
			return err
		}, "/v1/receipts/%s"},
		{"ListReceiptEvents", func(id string) error {
			_, err := env.client.ListReceiptEvents(ctx, &receiptdv1.ListReceiptEventsRequest{ReceiptId: id})
			return err
		}, "/v1/receipts/%s/events"},
	} {
		other, missing := rpc.call("r-bob"), rpc.call("r-missing")
		if status.Code(other) != codes.NotFound || status.Convert(other).Proto().String() != status.Convert(missing).Proto().String() {
			t.Errorf("%s: someone else's = %v; missing = %v: want the same NOT_FOUND", rpc.name, other, missing)
		}
		a, b := env.get(t, fmt.Sprintf(rpc.rest, "r-bob"), alice), env.get(t, fmt.Sprintf(rpc.rest, "r-missing"), alice)
		if a.code != http.StatusNotFound || a.body != b.body {
			t.Errorf("%s REST: someone else's = %d %s; missing = %d %s", rpc.name, a.code, a.body, b.code, b.body)
		}
	}
	// A backend still sees the service's own message.
	_, err := env.client.GetReceipt(withAuth(context.Background(), "Bearer "+readerKey), &receiptdv1.GetReceiptRequest{ReceiptId: "r-missing"})
	if !strings.Contains(status.Convert(err).Message(), `"r-missing"`) {
		t.Errorf("backend's not found = %v, want the service's message", err)
	}
}

// TestFailClosed: an RPC without a rule is refused to everyone, and a
// handler that answers a user without checking ownership is caught.
func TestFailClosed(t *testing.T) {
	k := getKeys(t)
	alice := "Bearer " + k.idp.Sign(t, claims("alice"))
	t.Run("no rule", func(t *testing.T) {
		rules := api.Rules()
		delete(rules, receiptdv1.ReceiptService_GetBalance_FullMethodName)
		env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow }), Rules: rules}, &stubService{})
		for _, auth := range []string{"", "Bearer " + bothKey, alice} {
			_, err := env.client.GetBalance(withAuth(context.Background(), auth), &receiptdv1.GetBalanceRequest{UserId: "alice"})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%.20q: %v, want PermissionDenied", auth, err)
			}
		}
		if a := env.get(t, "/v1/users/alice/balance", "Bearer "+bothKey); a.code != http.StatusForbidden {
			t.Errorf("REST: %d", a.code)
		}
		if !strings.Contains(env.logs.String(), "no rule for this method") {
			t.Error("a missing rule is not logged")
		}
		// Loopback mode is no way around it.
		env = newAccessEnv(t, api.AccessOptions{Rules: rules}, &stubService{})
		if _, err := env.client.GetBalance(context.Background(), &receiptdv1.GetBalanceRequest{UserId: "alice"}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("loopback: %v, want PermissionDenied", err)
		}
	})
	t.Run("handler skips the owner check", func(t *testing.T) {
		env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, &stubService{skipOwnerCheck: true})
		_, err := env.client.ListReceiptEvents(withAuth(context.Background(), alice), &receiptdv1.ListReceiptEventsRequest{ReceiptId: "r-bob"})
		if status.Code(err) != codes.Internal {
			t.Errorf("user: %v, want Internal", err)
		}
		if _, err := env.client.ListReceiptEvents(withAuth(context.Background(), "Bearer "+readerKey), &receiptdv1.ListReceiptEventsRequest{ReceiptId: "r-bob"}); err != nil {
			t.Errorf("backend: %v", err)
		}
		if !strings.Contains(env.logs.String(), "without checking ownership") {
			t.Error("the skipped check is not logged")
		}
	})
}

// TestStreams: the streaming interceptor checks the request a user sends
// (WatchUser) and the owner of every message sent (WatchReceipt).
func TestStreams(t *testing.T) {
	k := getKeys(t)
	alice := withAuth(context.Background(), "Bearer "+k.idp.Sign(t, claims("alice")))
	for _, ignore := range []bool{false, true} {
		env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, &stubService{ignoreSendErrors: ignore})
		recvAll := func(s interface {
			Recv() (*receiptdv1.Receipt, error)
		}) (int, error) {
			n := 0
			for {
				if _, err := s.Recv(); err != nil {
					if err == io.EOF {
						return n, nil
					}
					return n, err
				}
				n++
			}
		}
		s, err := env.client.WatchReceipt(alice, &receiptdv1.WatchReceiptRequest{ReceiptId: "r-alice"})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := recvAll(s); n != 2 || err != nil {
			t.Errorf("watch own receipt: %d messages, %v", n, err)
		}
		s, err = env.client.WatchReceipt(alice, &receiptdv1.WatchReceiptRequest{ReceiptId: "r-bob"})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := recvAll(s); n != 0 || status.Code(err) != codes.NotFound || status.Convert(err).Message() != "WatchReceipt: not found" {
			t.Errorf("watch bob's receipt (handler ignores send errors: %v): %d messages, %v; want none, uniform NotFound", ignore, n, err)
		}
		u, err := env.client.WatchUser(alice, &receiptdv1.WatchUserRequest{UserId: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Recv(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("watch bob's balance: %v, want PermissionDenied", err)
		}
		u, err = env.client.WatchUser(alice, &receiptdv1.WatchUserRequest{UserId: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := u.Recv(); err != nil || b.GetUserId() != "alice" {
			t.Errorf("watch own balance: %v, %v", b, err)
		}
		// The same by REST: refused before the first message, so with the
		// status code of the refusal.
		if !ignore {
			for path, want := range map[string]int{
				"/v1/receipts/r-alice/watch": http.StatusOK, "/v1/receipts/r-bob/watch": http.StatusNotFound,
				"/v1/users/alice/watch": http.StatusOK, "/v1/users/bob/watch": http.StatusForbidden,
			} {
				if a := env.get(t, path, "Bearer "+k.idp.Sign(t, claims("alice"))); a.code != want {
					t.Errorf("REST %s: %d, want %d: %s", path, a.code, want, a.body)
				}
			}
		}
		// Health's Watch is public and streams too.
		hw, err := healthpb.NewHealthClient(env.conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hw.Recv(); err != nil {
			t.Errorf("health watch: %v", err)
		}
	}
}

// TestUserSources: a user of an issuer limited to some sources reads only
// those; empty means the default source.
func TestUserSources(t *testing.T) {
	k := getKeys(t)
	for _, def := range []string{"reewild", "reap"} {
		env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow }), DefaultSource: def}, &stubService{})
		bob := withAuth(context.Background(), "Bearer "+k.idpEC.Sign(t, jwt.MapClaims{"iss": testIssuerEC, "aud": testAudience, "uid": "bob", "exp": testNow.Add(time.Hour).Unix()}))
		for src, want := range map[string]codes.Code{"reewild": codes.OK, "reap": codes.PermissionDenied, "": map[bool]codes.Code{true: codes.OK, false: codes.PermissionDenied}[def == "reewild"]} {
			_, err := env.client.GetBalance(bob, &receiptdv1.GetBalanceRequest{UserId: "bob", Source: src})
			if status.Code(err) != want {
				t.Errorf("default %s, source %q: %v, want %v", def, src, err, want)
			}
		}
	}
}

// TestLoopbackDefault: without access configuration only loopback clients
// may query, judged by the TCP peer for gRPC and by the HTTP client for
// REST; x-forwarded-for counts only from the in-process gateway.
func TestLoopbackDefault(t *testing.T) {
	env := newAccessEnv(t, api.AccessOptions{DefaultSource: "reewild"}, &stubService{})
	if _, err := env.client.GetBalance(context.Background(), &receiptdv1.GetBalanceRequest{UserId: "bob"}); err != nil {
		t.Errorf("gRPC from loopback: %v", err)
	}
	if a := env.get(t, "/v1/users/bob/balance", ""); a.code != http.StatusOK {
		t.Errorf("REST from loopback: %d %s", a.code, a.body)
	}
	// A loopback client claiming to forward a remote one is still loopback.
	if a := env.get(t, "/v1/users/bob/balance", "", "X-Forwarded-For", "203.0.113.9"); a.code != http.StatusOK {
		t.Errorf("REST from loopback with X-Forwarded-For: %d", a.code)
	}
	env.setRemote("203.0.113.9:40000")
	if a := env.get(t, "/v1/users/bob/balance", ""); a.code != http.StatusForbidden {
		t.Errorf("REST from a remote client: %d, want 403", a.code)
	}
	if a := env.get(t, "/v1/users/bob/balance", "", "X-Forwarded-For", "127.0.0.1"); a.code != http.StatusForbidden {
		t.Errorf("REST from a remote client forging X-Forwarded-For: %d, want 403", a.code)
	}
	env.setRemote("[2001:db8::1]:40000")
	if a := env.get(t, "/v1/users/bob/balance", ""); a.code != http.StatusForbidden {
		t.Errorf("REST from a remote IPv6 client: %d, want 403", a.code)
	}
	env.setRemote("[::1]:40000")
	if a := env.get(t, "/v1/users/bob/balance", ""); a.code != http.StatusOK {
		t.Errorf("REST from IPv6 loopback: %d, want 200", a.code)
	}

	// The gRPC door, called directly: a remote peer forging
	// x-forwarded-for, and a peer that only looks like a gateway.
	handler := func(context.Context, any) (any, error) { return &receiptdv1.Balance{}, nil }
	info := &grpc.UnaryServerInfo{FullMethod: receiptdv1.ReceiptService_GetBalance_FullMethodName}
	for name, p := range map[string]net.Addr{
		"remote TCP peer":         &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 5000},
		"another gateway":         api.NewGatewayListener().Addr(),
		"IPv4-mapped remote peer": &net.TCPAddr{IP: net.ParseIP("::ffff:203.0.113.9"), Port: 5000},
	} {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: p})
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-forwarded-for", "127.0.0.1"))
		if _, err := env.access.Unary(ctx, &receiptdv1.GetBalanceRequest{UserId: "bob"}, info, handler); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s with x-forwarded-for 127.0.0.1: %v, want PermissionDenied", name, err)
		}
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 5000}})
	if _, err := env.access.Unary(ctx, &receiptdv1.GetBalanceRequest{UserId: "bob"}, info, handler); err != nil {
		t.Errorf("IPv4-mapped loopback peer: %v", err)
	}
	if _, err := env.access.Unary(context.Background(), &receiptdv1.GetBalanceRequest{UserId: "bob"}, info, handler); status.Code(err) != codes.PermissionDenied {
		t.Errorf("no peer: %v, want PermissionDenied", err)
	}
}

func mustLimiter(t *testing.T, burst int) *ratelimit.Keyed {
	t.Helper()
	l, err := ratelimit.New(0.01, burst, 0) // one token per 100 s: no refill during a test
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRateLimits: per user, per API key and per address, answered 429 /
// RESOURCE_EXHAUSTED with Retry-After, by both doors.
func TestRateLimits(t *testing.T) {
	k := getKeys(t)
	now := time.Unix(1_700_000_000, 0)
	env := newAccessEnv(t, api.AccessOptions{
		Authenticator: newCredentials(t, func() time.Time { return testNow }),
		PerUser:       mustLimiter(t, 2),
		PerAPIKey:     mustLimiter(t, 3),
		Now:           func() time.Time { return now },
	}, &stubService{})
	alice := "Bearer " + k.idp.Sign(t, claims("alice"))
	bob := "Bearer " + k.idp.Sign(t, claims("bob"))

	for i := range 2 {
		if a := env.get(t, "/v1/users/alice/balance", alice); a.code != http.StatusOK {
			t.Fatalf("alice call %d: %d", i, a.code)
		}
	}
	a := env.get(t, "/v1/users/alice/balance", alice)
	if a.code != http.StatusTooManyRequests || a.header.Get("Retry-After") != "100" {
		t.Errorf("alice's third REST call: %d, Retry-After %q; want 429, 100", a.code, a.header.Get("Retry-After"))
	}
	var hdr metadata.MD
	_, err := env.client.GetBalance(withAuth(context.Background(), alice), &receiptdv1.GetBalanceRequest{UserId: "alice"}, grpc.Header(&hdr))
	if status.Code(err) != codes.ResourceExhausted || len(hdr.Get("retry-after")) != 1 {
		t.Errorf("alice over gRPC: %v, header %v", err, hdr)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != 100*time.Second {
		t.Errorf("RetryInfo = %v, want 100s", retry)
	}
	// Bob has his own bucket; API keys have theirs.
	if a := env.get(t, "/v1/users/bob/balance", bob); a.code != http.StatusOK {
		t.Errorf("bob limited by alice's calls: %d", a.code)
	}
	for i := range 4 {
		want := map[bool]int{true: http.StatusOK, false: http.StatusTooManyRequests}[i < 3]
		if a := env.get(t, "/v1/users/bob/balance", "Bearer "+readerKey); a.code != want {
			t.Errorf("API key call %d: %d, want %d", i, a.code, want)
		}
	}

	// Per address: before authentication, so floods of bad credentials
	// are limited too.
	env = newAccessEnv(t, api.AccessOptions{
		Authenticator: newCredentials(t, func() time.Time { return testNow }),
		PerIP:         mustLimiter(t, 2),
		Now:           func() time.Time { return now },
	}, &stubService{})
	if a := env.get(t, "/v1/users/alice/balance", "Bearer rk_bad"); a.code != http.StatusUnauthorized {
		t.Errorf("first bad key: %d", a.code)
	}
	if a := env.get(t, "/v1/users/alice/balance", alice); a.code != http.StatusOK {
		t.Errorf("second call: %d", a.code)
	}
	if a := env.get(t, "/v1/users/alice/balance", alice); a.code != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Errorf("third call from the address: %d %v", a.code, a.header)
	}
	// REST clients are told apart by their own address, not the gateway's.
	env.setRemote("198.51.100.7:1234")
	if a := env.get(t, "/v1/users/alice/balance", alice); a.code != http.StatusOK {
		t.Errorf("another REST client limited by the first one: %d", a.code)
	}
	// Both doors share the table: a direct gRPC client on 127.0.0.1 is the
	// same address as the REST client on 127.0.0.1 that used it up.
	if _, err := env.client.GetBalance(withAuth(context.Background(), alice), &receiptdv1.GetBalanceRequest{UserId: "alice"}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC client on the exhausted address: %v, want ResourceExhausted", err)
	}
}

// TestAuthorizationMetadata: only one Authorization value, scheme Bearer.
func TestAuthorizationMetadata(t *testing.T) {
	env := newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, &stubService{})
	call := func(md metadata.MD) error {
		_, err := env.client.GetBalance(metadata.NewOutgoingContext(context.Background(), md), &receiptdv1.GetBalanceRequest{UserId: "bob"})
		return err
	}
	for name, md := range map[string]metadata.MD{
		"two values":  metadata.Pairs("authorization", "Bearer "+readerKey, "authorization", "Bearer "+readerKey),
		"no scheme":   metadata.Pairs("authorization", readerKey),
		"empty token": metadata.Pairs("authorization", "Bearer "),
		"too long":    metadata.Pairs("authorization", "Bearer "+strings.Repeat("a", api.MaxCredentialLength)),
	} {
		if err := call(md); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, err)
		}
	}
	if err := call(metadata.Pairs("authorization", "BEARER   "+readerKey)); err != nil {
		t.Errorf("scheme is case-insensitive: %v", err)
	}
	// REST: two Authorization headers are two values, refused.
	req, _ := http.NewRequest(http.MethodGet, env.rest.URL+"/v1/users/bob/balance", nil)
	req.Header.Add("Authorization", "Bearer rk_bad")
	req.Header.Add("Authorization", "Bearer "+readerKey)
	resp, err := env.rest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two Authorization headers: %d, want 401", resp.StatusCode)
	}
}

// TestAdminNeedsAKey (issue 12, item 9): without access configuration a
// loopback client reads, but no RPC that only the admin scope may call
// (audit, rebuild, the quarantine, and every admin RPC added later: the
// test walks the rule table) is open to it. A reverse proxy or a sidecar
// on the same host would otherwise hand admin to every remote user. With
// access configured, admin takes an API key holding the scope.
func TestAdminNeedsAKey(t *testing.T) {
	handler := func(context.Context, any) (any, error) { return &receiptdv1.Balance{}, nil }
	loopback := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5000}})
	env := newAccessEnv(t, api.AccessOptions{DefaultSource: "reewild"}, &stubService{})
	admin := 0
	for method, rule := range api.Rules() {
		if rule.Public {
			continue
		}
		adminOnly := !slices.ContainsFunc(rule.Scopes, func(s api.Scope) bool { return s != api.ScopeAdmin })
		_, err := env.access.Unary(loopback, &receiptdv1.GetBalanceRequest{UserId: "bob"}, &grpc.UnaryServerInfo{FullMethod: method}, handler)
		switch {
		case adminOnly && status.Code(err) != codes.PermissionDenied:
			t.Errorf("%s (admin only) from loopback, no access configured: %v, want PermissionDenied", method, err)
		case adminOnly && !strings.Contains(status.Convert(err).Message(), "admin API key"):
			t.Errorf("%s: %q does not say an admin API key is needed", method, status.Convert(err).Message())
		case !adminOnly && err != nil:
			t.Errorf("%s from loopback, no access configured: %v, want it open", method, err)
		}
		if adminOnly {
			admin++
		}
	}
	if admin < 4 {
		t.Fatalf("only %d admin RPCs in the rule table, want audit, rebuild, list and re-process quarantine at least", admin)
	}
	for _, m := range []string{receiptdv1.AuditService_Rebuild_FullMethodName, receiptdv1.AuditService_ReprocessQuarantined_FullMethodName} {
		if _, err := env.access.Unary(loopback, &receiptdv1.RebuildRequest{}, &grpc.UnaryServerInfo{FullMethod: m}, handler); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s from loopback: %v", m, err)
		}
	}

	// With access configured: a loopback client without a key is
	// unauthenticated, a read:all key is not enough, an admin key is.
	env = newAccessEnv(t, api.AccessOptions{Authenticator: newCredentials(t, func() time.Time { return testNow })}, &stubService{})
	info := &grpc.UnaryServerInfo{FullMethod: receiptdv1.AuditService_Rebuild_FullMethodName}
	for auth, want := range map[string]codes.Code{"": codes.Unauthenticated, "Bearer " + readerKey: codes.PermissionDenied, "Bearer " + adminKey: codes.OK} {
		ctx := metadata.NewIncomingContext(loopback, metadata.Pairs("authorization", auth))
		if _, err := env.access.Unary(ctx, &receiptdv1.RebuildRequest{}, info, handler); status.Code(err) != want {
			t.Errorf("Rebuild from loopback with %.16q: %v, want %v", auth, err, want)
		}
	}
}
