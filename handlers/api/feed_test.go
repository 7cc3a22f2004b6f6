package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/feed"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/authtest"
	"github.com/receiptd/receiptd/internal/feeddouble"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

const feedKey = "rk_feed_7c1e2d3f4a5b"

// feedEnv is a gRPC server with the access interceptor serving the
// FeedService over an in-memory feed (feeddouble), and the REST gateway.
type feedEnv struct {
	src    *feeddouble.Source
	dests  *fakeDestinations
	svc    *api.FeedService
	client receiptdv1.FeedServiceClient
	rest   *httptest.Server
	logs   *syncBuffer
}

func newFeedEnv(t *testing.T, opts ...api.Option) *feedEnv {
	t.Helper()
	k := getKeys(t)
	jwks, err := api.ParseJWKS(authtest.JWKS(t, []*authtest.Key{k.idp}))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := api.NewCredentials(api.CredentialsConfig{
		APIKeys: []api.APIKey{
			{Name: "bank-feed", SHA256: hashOf(t, feedKey), Scopes: []api.Scope{api.ScopeFeed}},
			{Name: "ledger-backend", SHA256: hashOf(t, readerKey), Scopes: []api.Scope{api.ScopeReadAll}},
			{Name: "ops-console", SHA256: hashOf(t, adminKey), Scopes: []api.Scope{api.ScopeAdmin}},
		},
		Issuers: []api.JWTIssuer{{Issuer: testIssuer, Audience: testAudience, Keys: jwks, Sources: []string{"reewild"}}},
		Now:     func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	env := &feedEnv{src: feeddouble.New(), dests: &fakeDestinations{}, logs: &syncBuffer{}}
	gwl := api.NewGatewayListener()
	acc, err := api.NewAccess(api.AccessOptions{Authenticator: creds, Gateway: gwl, DefaultSource: "reewild",
		Logger: slog.New(slog.NewJSONHandler(env.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	env.svc, err = api.NewFeedService(env.src, []string{"reewild", "reap"}, opts,
		api.WithDestinations(env.dests), api.WithCheckpointEvery(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(acc.Unary), grpc.ChainStreamInterceptor(acc.Stream))
	receiptdv1.RegisterFeedServiceServer(srv, env.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	go srv.Serve(gwl)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	env.client = receiptdv1.NewFeedServiceClient(conn)
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
	env.rest = httptest.NewServer(gw)
	t.Cleanup(env.rest.Close)
	return env
}

// fill appends a few log events' feed events: receipts of alice and bob
// (reewild), a balance of each, an entity of reap naming alice.
func (e *feedEnv) fill(t *testing.T, from uint64) []feed.Event {
	t.Helper()
	at := time.Date(2025, 10, 8, 11, 0, 0, 0, time.UTC)
	var all []feed.Event
	for i, user := range []string{"alice", "bob", "alice"} {
		p := from + uint64(i)*2
		r := aggregate.NewReceipt("reewild", fmt.Sprintf("r%d", p))
		if _, err := r.Add(aggregate.StageRecorded{Source: "reewild", ReceiptID: r.ID(), UserID: user, Stage: aggregate.StageAwarded, BodySHA256: "x",
			Award: &aggregate.Award{Points: dec("74.28")}}); err != nil {
			t.Fatal(err)
		}
		v := r.View()
		evs := feed.ReceiptEvents(nil, &v, &at, at)
		view, err := feed.ReceiptViewJSON(&v)
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			evs[i].View = view
		}
		bal, _ := json.Marshal(projections.Balance{Source: "reewild", UserID: user, AwardedPoints: dec("74.28"), DerivedPoints: dec("74.28")})
		evs = append(evs, feed.BalanceChanged("reewild", user, p, bal, &at, at))
		all = append(all, e.src.Append(p, evs...)...)
		ent, _ := json.Marshal(projections.Entity{Source: "reap", Kind: "account", ID: "acc" + user, UserID: user, FirstSeen: at, LastSeen: at})
		all = append(all, e.src.Append(p+1, feed.EntityChanged("reap", "account", "acc"+user, user, p+1, ent, nil, at))...)
	}
	return all
}

// recvAll reads n messages of a subscription (checkpoints included if
// withCheckpoints).
func recvEvents(t *testing.T, s grpc.ServerStreamingClient[receiptdv1.FeedEvent], n int) []*receiptdv1.FeedEvent {
	t.Helper()
	var out []*receiptdv1.FeedEvent
	for len(out) < n {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		if m.GetKind() == feed.KindCheckpoint {
			continue
		}
		out = append(out, m)
	}
	return out
}

func bearerCtx(ctx context.Context, cred string) context.Context {
	return withAuth(ctx, "Bearer "+cred)
}

func TestFeedSubscribe(t *testing.T) {
	env := newFeedEnv(t)
	all := env.fill(t, 1)
	ctx, cancel := context.WithCancel(bearerCtx(context.Background(), feedKey))
	defer cancel()

	s, err := env.client.Subscribe(ctx, &receiptdv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := recvEvents(t, s, len(all))
	for i, m := range got {
		if m.GetPosition() != all[i].Position || m.GetId() != all[i].ID || m.GetKind() != all[i].Kind || m.GetLogPosition() != all[i].LogPosition() {
			t.Fatalf("message %d: %v, want %+v", i, m, all[i])
		}
	}
	c := got[1] // alice's first receipt.completed.v1
	if c.GetKind() != feed.KindReceiptCompleted || c.GetReceipt().GetPoints() != "74.28" || c.GetReceipt().GetStatus() != receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED ||
		!slices.Equal(c.GetUserIds(), []string{"alice"}) || c.GetBalance() != nil || c.GetRecordedAt() == nil {
		t.Errorf("completed: %v", c)
	}
	if b := got[2]; b.GetBalance().GetDerivedPoints() != "74.28" || b.GetBalance().GetUserId() != "alice" {
		t.Errorf("balance: %v", b)
	}
	if en := got[3]; en.GetEntity().GetEntityId() != "accalice" || en.GetEntityKind() != "account" {
		t.Errorf("entity: %v", en)
	}
	// Live: appended while subscribed.
	more := env.fill(t, 100)
	for i, m := range recvEvents(t, s, len(more)) {
		if m.GetPosition() != more[i].Position {
			t.Fatalf("live message %d at %d, want %d", i, m.GetPosition(), more[i].Position)
		}
	}
}

func TestFeedFiltersAndCheckpoints(t *testing.T) {
	env := newFeedEnv(t)
	env.fill(t, 1)
	ctx, cancel := context.WithCancel(bearerCtx(context.Background(), feedKey))
	defer cancel()
	s, err := env.client.Subscribe(ctx, &receiptdv1.SubscribeRequest{Kinds: []string{feed.KindEntityChanged}, Sources: []string{"reap"}})
	if err != nil {
		t.Fatal(err)
	}
	got := recvEvents(t, s, 3)
	for _, m := range got {
		if m.GetKind() != feed.KindEntityChanged || m.GetSource() != "reap" {
			t.Errorf("filtered subscription got %v", m)
		}
	}
	// Only events it filters out now: a checkpoint at the head comes.
	env.src.Append(50, feed.BalanceChanged("reewild", "bob", 50, []byte(`{}`), nil, time.Now()))
	for {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetKind() == feed.KindCheckpoint && m.GetPosition() == env.src.FeedHead() {
			if m.GetId() != "" || m.GetLogPosition() != 50 {
				t.Errorf("checkpoint %v", m)
			}
			break
		}
	}

	for _, tc := range []struct {
		req  *receiptdv1.SubscribeRequest
		code codes.Code
	}{
		{&receiptdv1.SubscribeRequest{Kinds: []string{"receipt.exploded.v1"}}, codes.InvalidArgument},
		{&receiptdv1.SubscribeRequest{Sources: []string{"nowhere"}}, codes.NotFound},
		{&receiptdv1.SubscribeRequest{Sources: []string{""}}, codes.InvalidArgument},
	} {
		s, err := env.client.Subscribe(ctx, tc.req)
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != tc.code {
			t.Errorf("%v: %v, want %v", tc.req, err, tc.code)
		}
	}
}

// TestFeedAccess: scope feed or admin subscribe to everything; read:all
// does not; a user gets only the events naming them, of their sources.
func TestFeedAccess(t *testing.T) {
	env := newFeedEnv(t)
	all := env.fill(t, 1)
	k := getKeys(t)
	alice := k.idp.Sign(t, claims("alice"))
	for _, tc := range []struct {
		name, cred string
		code       codes.Code
		want       func(feed.Event) bool
	}{
		{"feed key", feedKey, codes.OK, func(feed.Event) bool { return true }},
		{"admin key", adminKey, codes.OK, func(feed.Event) bool { return true }},
		{"read:all key", readerKey, codes.PermissionDenied, nil},
		{"no credential", "", codes.Unauthenticated, nil},
		// alice's token is for reewild only: not her reap account.
		{"alice", alice, codes.OK, func(e feed.Event) bool { return slices.Contains(e.UserIDs, "alice") && e.Source == "reewild" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.cred != "" {
				ctx = bearerCtx(ctx, tc.cred)
			}
			s, err := env.client.Subscribe(ctx, &receiptdv1.SubscribeRequest{})
			if tc.code != codes.OK {
				if err == nil {
					_, err = s.Recv()
				}
				if status.Code(err) != tc.code {
					t.Fatalf("%v, want %v", err, tc.code)
				}
				return
			}
			var want []feed.Event
			for _, e := range all {
				if tc.want(e) {
					want = append(want, e)
				}
			}
			got := recvEvents(t, s, len(want))
			for i, m := range got {
				if m.GetPosition() != want[i].Position {
					t.Fatalf("message %d at %d, want %d", i, m.GetPosition(), want[i].Position)
				}
			}
		})
	}
	// A user may not ask for a source their token does not open.
	s, err := env.client.Subscribe(bearerCtx(context.Background(), alice), &receiptdv1.SubscribeRequest{Sources: []string{"reap"}})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("alice asking for reap: %v", err)
	}
}

// leakyFeed is a FeedService that sends every user every event: the
// interceptor must refuse its first message about someone else.
type leakyFeed struct {
	receiptdv1.UnimplementedFeedServiceServer
}

func (leakyFeed) Subscribe(_ *receiptdv1.SubscribeRequest, s grpc.ServerStreamingServer[receiptdv1.FeedEvent]) error {
	if err := s.Send(&receiptdv1.FeedEvent{Position: 15, Kind: feed.KindCheckpoint}); err != nil {
		return err
	}
	if err := s.Send(&receiptdv1.FeedEvent{Position: 16, Id: "evt_a", Kind: feed.KindBalanceChanged, UserIds: []string{"alice"}}); err != nil {
		return err
	}
	if err := s.Send(&receiptdv1.FeedEvent{Position: 17, Id: "evt_b", Kind: feed.KindBalanceChanged, UserIds: []string{"bob"}}); err != nil {
		return err
	}
	return s.Send(&receiptdv1.FeedEvent{Position: 18, Id: "evt_c", Kind: feed.KindEntityChanged})
}

// TestFeedUserFilterFailsClosed: a handler whose filter lets another
// user's event through to a user is stopped by the interceptor
// (INTERNAL), after the checkpoint and the user's own event.
func TestFeedUserFilterFailsClosed(t *testing.T) {
	k := getKeys(t)
	jwks, err := api.ParseJWKS(authtest.JWKS(t, []*authtest.Key{k.idp}))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := api.NewCredentials(api.CredentialsConfig{
		Issuers: []api.JWTIssuer{{Issuer: testIssuer, Audience: testAudience, Keys: jwks}},
		Now:     func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := api.NewAccess(api.AccessOptions{Authenticator: creds, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(acc.Stream))
	receiptdv1.RegisterFeedServiceServer(srv, leakyFeed{})
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
	defer conn.Close()
	s, err := receiptdv1.NewFeedServiceClient(conn).Subscribe(bearerCtx(context.Background(), k.idp.Sign(t, claims("alice"))), &receiptdv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for {
		m, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.Internal {
				t.Fatalf("ended with %v, want INTERNAL", err)
			}
			break
		}
		got = append(got, m.GetPosition())
	}
	if !slices.Equal(got, []uint64{15, 16}) {
		t.Fatalf("alice got %v, want the checkpoint and her own event only", got)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// readSSE reads n events of an SSE answer.
func readSSE(t *testing.T, r *bufio.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			out = append(out, cur)
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return out
}

func (e *feedEnv) openSSE(t *testing.T, ctx context.Context, query string, header ...string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.rest.URL+"/v1/feed"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+feedKey)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.rest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

// TestFeedSSE: GET /v1/feed is Server-Sent Events with id = position; a
// client reconnecting with Last-Event-ID gets the rest, nothing twice;
// filters are query parameters; errors before the stream are HTTP errors.
func TestFeedSSE(t *testing.T) {
	env := newFeedEnv(t)
	all := env.fill(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	resp, r := env.openSSE(t, ctx, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	first := readSSE(t, r, 5)
	cancel() // the client goes away after five events
	var last uint64
	for i, ev := range first {
		if ev.id != strconv.FormatUint(all[i].Position, 10) || ev.event != all[i].Kind {
			t.Fatalf("event %d: %+v, want id %d event %s", i, ev, all[i].Position, all[i].Kind)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
			t.Fatal(err)
		}
		if m["id"] != all[i].ID || m["position"] != ev.id {
			t.Errorf("data %s", ev.data)
		}
		last = all[i].Position
	}

	// Reconnect as an EventSource does: the same URL, Last-Event-ID.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, r = env.openSSE(t, ctx, "?after_position=0", "Last-Event-ID", strconv.FormatUint(last, 10))
	rest := readSSE(t, r, len(all)-5)
	for i, ev := range rest {
		if ev.id != strconv.FormatUint(all[5+i].Position, 10) {
			t.Fatalf("resumed event %d: id %s, want %d", i, ev.id, all[5+i].Position)
		}
	}

	// Filters as query parameters; checkpoints are events too.
	_, r = env.openSSE(t, ctx, "?kinds=entity.changed.v1&sources=reap")
	for _, ev := range readSSE(t, r, 3) {
		if ev.event != feed.KindEntityChanged {
			t.Errorf("filtered: %+v", ev)
		}
	}
	env.src.Advance(60)
	for {
		ev := readSSE(t, r, 1)[0]
		if ev.event == feed.KindCheckpoint {
			if ev.id != strconv.FormatUint(feed.HeadAt(60), 10) {
				t.Errorf("checkpoint %+v", ev)
			}
			break
		}
	}

	for _, tc := range []struct {
		query string
		code  int
	}{
		{"?kinds=nope", http.StatusBadRequest},
		{"?sources=nowhere", http.StatusNotFound},
		{"?after_position=x", http.StatusBadRequest},
		{"?color=red", http.StatusBadRequest},
	} {
		resp, _ := env.openSSE(t, ctx, tc.query)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %s, want %d", tc.query, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.code)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, env.rest.URL+"/v1/feed", nil)
	resp, err := env.rest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no credential: %d", resp.StatusCode)
	}
}

// TestFeedEndsWithTheServersLifetime: open subscriptions end UNAVAILABLE
// when the server stops, over gRPC, and as an SSE error event.
func TestFeedEndsWithTheServersLifetime(t *testing.T) {
	life, stop := context.WithCancel(context.Background())
	env := newFeedEnv(t, api.WithLifetime(life))
	env.fill(t, 1)
	s, err := env.client.Subscribe(bearerCtx(context.Background(), feedKey), &receiptdv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recvEvents(t, s, 9)
	_, r := env.openSSE(t, context.Background(), "")
	readSSE(t, r, 9)
	stop()
	for {
		if _, err := s.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("gRPC: %v", err)
			}
			break
		}
	}
	for {
		ev := readSSE(t, r, 1)[0]
		if ev.event == "error" {
			if !strings.Contains(ev.data, "shutting down") {
				t.Errorf("SSE error %s", ev.data)
			}
			break
		}
	}
}

// fakeDestinations records the admin calls.
type fakeDestinations struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeDestinations) status(name string) (feed.DestinationStatus, error) {
	if name != "ledger" {
		return feed.DestinationStatus{}, fmt.Errorf("destination %q: %w", name, feed.ErrUnknownDestination)
	}
	return feed.DestinationStatus{Name: "ledger", URL: "https://ledger.example/hooks", Delivered: 32, Head: 79, LagPositions: 3, Lag: 2 * time.Second, Attempts: 5, Failures: 1}, nil
}

func (f *fakeDestinations) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeDestinations) Statuses(context.Context) ([]feed.DestinationStatus, error) {
	d, _ := f.status("ledger")
	return []feed.DestinationStatus{d}, nil
}

func (f *fakeDestinations) Pause(_ context.Context, name string) (feed.DestinationStatus, error) {
	f.record("pause " + name)
	return f.status(name)
}

func (f *fakeDestinations) Resume(_ context.Context, name string) (feed.DestinationStatus, error) {
	f.record("resume " + name)
	return f.status(name)
}

func (f *fakeDestinations) Redeliver(_ context.Context, name string, after uint64) (feed.DestinationStatus, error) {
	f.record(fmt.Sprintf("redeliver %s %d", name, after))
	return f.status(name)
}

func (f *fakeDestinations) DeadLetters(_ context.Context, name string) ([]feed.DeadLetter, error) {
	if _, err := f.status(name); err != nil {
		return nil, err
	}
	return []feed.DeadLetter{{Position: 33, EventID: "evt_x", Kind: feed.KindBalanceChanged, Attempts: 20, LastError: "503 Service Unavailable", Outcome: feed.DeadPaused}}, nil
}

// TestDestinationRPCs: the admin RPCs reach Destinations by both doors,
// for an admin key only; an unknown destination is NOT_FOUND.
func TestDestinationRPCs(t *testing.T) {
	env := newFeedEnv(t)
	admin := bearerCtx(context.Background(), adminKey)
	l, err := env.client.ListDestinations(admin, &receiptdv1.ListDestinationsRequest{})
	if err != nil || len(l.GetDestinations()) != 1 || l.GetDestinations()[0].GetLag().AsDuration() != 2*time.Second {
		t.Fatalf("list: %v, %v", l, err)
	}
	if _, err := env.client.ListDestinations(bearerCtx(context.Background(), feedKey), &receiptdv1.ListDestinationsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("list with the feed key: %v", err)
	}
	if _, err := env.client.ResumeDestination(admin, &receiptdv1.ResumeDestinationRequest{Name: "ledger"}); err != nil {
		t.Error(err)
	}
	if _, err := env.client.PauseDestination(admin, &receiptdv1.PauseDestinationRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("pause nope: %v", err)
	}
	dl, err := env.client.ListDeadLetters(admin, &receiptdv1.ListDeadLettersRequest{Name: "ledger"})
	if err != nil || len(dl.GetDeadLetters()) != 1 || dl.GetDeadLetters()[0].GetOutcome() != feed.DeadPaused {
		t.Errorf("dead letters: %v, %v", dl, err)
	}
	// REST.
	post := func(path, body string) int {
		req, _ := http.NewRequest(http.MethodPost, env.rest.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := env.rest.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("/v1/destinations/ledger:redeliver", `{"afterPosition":"16"}`); c != http.StatusOK {
		t.Errorf("redeliver: %d", c)
	}
	if c := post("/v1/destinations/ledger:pause", ""); c != http.StatusOK {
		t.Errorf("pause: %d", c)
	}
	env.dests.mu.Lock()
	calls := slices.Clone(env.dests.calls)
	env.dests.mu.Unlock()
	if want := []string{"resume ledger", "pause nope", "redeliver ledger 16", "pause ledger"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

// forgetful forgets bob.
type forgetful struct {
	api.Subjects
}

func (forgetful) Forgotten(_ context.Context, s privacy.Subject) (time.Time, error) {
	if s.ID == "bob" {
		return testNow, nil
	}
	return time.Time{}, nil
}

// TestFeedRendersForgotten: a forgotten user's balance, and an entity
// about them, show as forgotten, as GetBalance shows it.
func TestFeedRendersForgotten(t *testing.T) {
	env := newFeedEnv(t, api.WithSubjects(forgetful{}))
	all := env.fill(t, 1)
	s, err := env.client.Subscribe(bearerCtx(context.Background(), feedKey), &receiptdv1.SubscribeRequest{Kinds: []string{feed.KindBalanceChanged, feed.KindEntityChanged}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range all {
		if e.Kind == feed.KindBalanceChanged || e.Kind == feed.KindEntityChanged {
			n++
		}
	}
	for _, m := range recvEvents(t, s, n) {
		bob := m.GetUserId() == "bob"
		switch {
		case m.GetBalance() != nil && m.GetBalance().GetForgotten() != bob:
			t.Errorf("balance of %s: forgotten %v", m.GetUserId(), m.GetBalance().GetForgotten())
		case m.GetEntity() != nil && m.GetEntity().GetForgotten() != bob:
			t.Errorf("entity of %s: forgotten %v", m.GetUserId(), m.GetEntity().GetForgotten())
		}
	}
}
