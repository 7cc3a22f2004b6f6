package console

import (
	"context"
	"errors"
	"google.golang.org/protobuf/types/known/timestamppb"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/receiptd/receiptd/eventstore"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// The console over test doubles, for HTTP-level tests without a server or
// a browser: the query API is apiDouble (a grpc.ClientConnInterface that
// answers in-process, judging the operator's key as the access
// interceptor would), the log is logDouble.

const (
	testAdminKey  = "test-admin-key-0123456789abcdef"
	testReaderKey = "test-reader-key-0123456789abcdef"
)

// authDouble knows the admin key (admin and read:all) and the reader key
// (read:all).
type authDouble struct{}

func (authDouble) Authenticate(_ context.Context, key string) (api.Principal, error) {
	switch key {
	case testAdminKey:
		return api.Principal{Kind: api.PrincipalAPIKey, ID: "ops", Scopes: []api.Scope{api.ScopeReadAll, api.ScopeAdmin}}, nil
	case testReaderKey:
		return api.Principal{Kind: api.PrincipalAPIKey, ID: "backend", Scopes: []api.Scope{api.ScopeReadAll}}, nil
	}
	return api.Principal{}, errors.New("unknown key")
}

// apiDouble answers the RPCs the console calls from its tables.
type apiDouble struct {
	mu         sync.Mutex
	receipts   map[string]*receiptdv1.Receipt               // by receipt id
	events     map[string][]*receiptdv1.ReceiptEvent        // by receipt id
	quarantine map[string][]*receiptdv1.QuarantinedDelivery // by source
	balances   map[string]*receiptdv1.Balance               // by user id
	dests      []*receiptdv1.Destination                    // the feed's destinations
	revoked    bool                                         // every key is refused, as after a rotation
	calls      []string
}

func newAPIDouble() *apiDouble {
	return &apiDouble{receipts: map[string]*receiptdv1.Receipt{}, events: map[string][]*receiptdv1.ReceiptEvent{}, quarantine: map[string][]*receiptdv1.QuarantinedDelivery{},
		balances: map[string]*receiptdv1.Balance{}}
}

func (a *apiDouble) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, method)
	md, _ := metadata.FromOutgoingContext(ctx)
	if a.revoked || !slices.Contains(md.Get("authorization"), "Bearer "+testAdminKey) {
		return status.Error(codes.Unauthenticated, "unknown API key")
	}
	var out proto.Message
	switch method {
	case receiptdv1.ReceiptService_GetReceipt_FullMethodName:
		r := a.receipts[args.(*receiptdv1.GetReceiptRequest).GetReceiptId()]
		if r == nil {
			return status.Error(codes.NotFound, "no such receipt")
		}
		out = r
	case receiptdv1.ReceiptService_ListReceiptEvents_FullMethodName:
		out = &receiptdv1.ListReceiptEventsResponse{Events: a.events[args.(*receiptdv1.ListReceiptEventsRequest).GetReceiptId()]}
	case receiptdv1.AuditService_ListQuarantined_FullMethodName:
		req := args.(*receiptdv1.ListQuarantinedRequest)
		q := a.quarantine[req.GetSource()]
		if n := int(req.GetPageSize()); n > 0 && len(q) > n {
			q = q[:n]
		}
		out = &receiptdv1.ListQuarantinedResponse{Deliveries: q}
	case receiptdv1.ReceiptService_GetBalance_FullMethodName:
		b := a.balances[args.(*receiptdv1.GetBalanceRequest).GetUserId()]
		if b == nil {
			return status.Error(codes.NotFound, "no such user")
		}
		out = b
	case receiptdv1.ReceiptService_ListUserLedger_FullMethodName:
		out = &receiptdv1.ListUserLedgerResponse{}
	case receiptdv1.ReceiptService_ListReceipts_FullMethodName:
		// The double's receipts of the source with an overdue anomaly, by id.
		req := args.(*receiptdv1.ListReceiptsRequest)
		resp := &receiptdv1.ListReceiptsResponse{}
		for _, id := range slices.Sorted(maps.Keys(a.receipts)) {
			r := a.receipts[id]
			if r.GetSource() == req.GetSource() && slices.ContainsFunc(r.GetAnomalies(), func(an *receiptdv1.Anomaly) bool { return an.GetKind() == req.GetStatus() }) {
				resp.Receipts = append(resp.Receipts, r)
			}
		}
		out = resp
	case receiptdv1.ReceiptService_ListUserReceipts_FullMethodName:
		out = &receiptdv1.ListUserReceiptsResponse{}
	case receiptdv1.PrivacyService_ForgetSubject_FullMethodName:
		req := args.(*receiptdv1.ForgetSubjectRequest)
		b := a.balances[req.GetSubjectId()]
		if b == nil {
			return status.Error(codes.NotFound, "no such user")
		}
		b.Forgotten, b.ForgottenAt = true, timestamppb.New(time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC))
		out = &receiptdv1.ForgetSubjectResponse{Source: req.GetSource(), SubjectId: req.GetSubjectId(), DestroyedKeyIds: []string{"k1"}, Position: 77}
	case receiptdv1.PrivacyService_ExportSubject_FullMethodName:
		req := args.(*receiptdv1.ExportSubjectRequest)
		out = &receiptdv1.ExportSubjectResponse{Source: req.GetSource(), SubjectId: req.GetSubjectId(), Balance: a.balances[req.GetSubjectId()],
			Events: []*receiptdv1.ExportedEvent{{Position: 5, RawBody: `{"email":"user@example.com"}`}}}
	case receiptdv1.FeedService_ListDestinations_FullMethodName:
		out = &receiptdv1.ListDestinationsResponse{Destinations: a.dests}
	case receiptdv1.FeedService_ResumeDestination_FullMethodName, receiptdv1.FeedService_PauseDestination_FullMethodName:
		name := args.(interface{ GetName() string }).GetName()
		i := slices.IndexFunc(a.dests, func(d *receiptdv1.Destination) bool { return d.GetName() == name })
		if i < 0 {
			return status.Error(codes.NotFound, "no such destination")
		}
		paused := method == receiptdv1.FeedService_PauseDestination_FullMethodName
		a.dests[i].Paused, a.dests[i].PausedReason = paused, map[bool]string{true: "admin"}[paused]
		out = a.dests[i]
	default:
		return status.Errorf(codes.Unimplemented, "%s: not in the double", method)
	}
	proto.Merge(reply.(proto.Message), out)
	return nil
}

func (a *apiDouble) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams in the double")
}

// logDouble is an in-memory log: streams of events with commit positions.
type logDouble struct {
	mu      sync.Mutex
	streams map[string][]eventstore.RecordedEvent
	next    uint64
	reads   int
}

func newLogDouble() *logDouble {
	return &logDouble{streams: map[string][]eventstore.RecordedEvent{}, next: 100}
}

// append adds an event with data to stream and returns it.
func (l *logDouble) append(stream, eventType string, data []byte) eventstore.RecordedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next += 7 // positions grow, with gaps (other streams)
	e := eventstore.RecordedEvent{Stream: stream, Revision: uint64(len(l.streams[stream])), Position: eventstore.Position{Commit: l.next, Prepare: l.next}}
	e.Type, e.Data = eventType, data
	l.streams[stream] = append(l.streams[stream], e)
	return e
}

func (l *logDouble) ReadStream(_ context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	evs := l.streams[stream]
	if from >= uint64(len(evs)) {
		return nil, nil
	}
	evs = evs[from:]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return slices.Clone(evs), nil
}

func (l *logDouble) Subscribe(ctx context.Context, _ eventstore.Position, _ func(context.Context, []eventstore.RecordedEvent) error) error {
	<-ctx.Done()
	return ctx.Err()
}

func (l *logDouble) Head(context.Context) (eventstore.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return eventstore.Position{Commit: l.next, Prepare: l.next}, nil
}

// testConsole is a console over the doubles, with an admin session.
type testConsole struct {
	t       *testing.T
	c       *Console
	h       http.Handler
	api     *apiDouble
	log     *logDouble
	session *http.Cookie
}

func newTestConsole(t *testing.T) *testConsole {
	t.Helper()
	a, l := newAPIDouble(), newLogDouble()
	c, err := New(Options{
		Conn: a, Auth: authDouble{}, Log: l, Gatherer: prometheus.NewRegistry(),
		Status:     func(context.Context) Status { return Status{Version: "test"} },
		Sources:    []Source{{Name: "reewild", Kind: "reewild", Key: []byte("k")}, {Name: "reward", Kind: "reward", Key: []byte("t")}},
		WebhookURL: func() string { return "http://127.0.0.1:1" },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	tc := &testConsole{t: t, c: c, h: c.Handler(), api: a, log: l}
	resp := tc.do("POST", "/ui/login", url.Values{"key": {testAdminKey}}, nil)
	for _, ck := range resp.Result().Cookies() {
		if ck.Name == CookieName {
			tc.session = ck
		}
	}
	if resp.Code != http.StatusSeeOther || tc.session == nil {
		t.Fatalf("sign-in: %d, cookie %v", resp.Code, tc.session)
	}
	return tc
}

// do sends a request to the console; form, if not nil, is the POST body.
func (tc *testConsole) do(method, target string, form url.Values, cookie *http.Cookie) *httptest.ResponseRecorder {
	tc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	tc.h.ServeHTTP(w, r)
	return w
}

// get sends a GET with the admin session.
func (tc *testConsole) get(target string) *httptest.ResponseRecorder {
	tc.t.Helper()
	return tc.do("GET", target, nil, tc.session)
}
