package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

// fakeReader is the test double of api.Reader: views keyed by source and
// id, canned errors, and a record of the calls the service made.
type fakeReader struct {
	mu sync.Mutex

	receipts map[string]aggregate.ReceiptView     // source + "/" + receipt id
	lists    map[string][]aggregate.ReceiptView   // source + "/" + user id
	balances map[string]projections.Balance       // source + "/" + user id
	entities map[string]projections.Entity        // source + "/" + kind + "/" + entity id
	kinds    map[string][]projections.Entity      // source + "/" + kind
	ledgers  map[string][]projections.LedgerEntry // source + "/" + user id
	// changed is closed and replaced by every Set, for WaitChange.
	changed chan struct{}
	// validToken is the only page token UserReceipts and Entities accept;
	// it returns the rest of the list after the first page.
	validToken string

	// err, if set, is returned by every read.
	err error
	// waitErr, if set, is returned by WaitFor; with blockWait, WaitFor
	// instead blocks until its context is done and returns ctx.Err().
	waitErr   error
	blockWait bool

	calls []string // "Receipt reewild r1", "WaitFor 42", …
	// reads are the (source, id) pairs the reads asked for (for Entities,
	// the id is the kind; for Entity, kind + "/" + id), and pageSizes the
	// page sizes the lists got.
	reads     [][2]string
	pageSizes []int
}

var _ api.Reader = (*fakeReader)(nil)

func newFakeReader() *fakeReader {
	return &fakeReader{
		receipts:   map[string]aggregate.ReceiptView{},
		lists:      map[string][]aggregate.ReceiptView{},
		balances:   map[string]projections.Balance{},
		entities:   map[string]projections.Entity{},
		kinds:      map[string][]projections.Entity{},
		ledgers:    map[string][]projections.LedgerEntry{},
		validToken: "page-2",
		changed:    make(chan struct{}),
	}
}

// Set changes the fake under its lock: tests configure it while the server
// runs.
func (f *fakeReader) Set(change func(f *fakeReader)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
	close(f.changed)
	f.changed = make(chan struct{})
}

// record appends a call; f.mu must be held.
func (f *fakeReader) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns the calls made so far.
func (f *fakeReader) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeReader) Receipt(ctx context.Context, source, receiptID string) (aggregate.ReceiptView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Receipt %s %s", source, receiptID)
	f.reads = append(f.reads, [2]string{source, receiptID})
	if f.err != nil {
		return aggregate.ReceiptView{}, f.err
	}
	v, ok := f.receipts[source+"/"+receiptID]
	if !ok {
		return aggregate.ReceiptView{}, fmt.Errorf("fake: receipt %s/%s: %w", source, receiptID, projections.ErrNotFound)
	}
	return v, nil
}

func (f *fakeReader) UserReceipts(ctx context.Context, source, userID string, pageSize int, pageToken string) ([]aggregate.ReceiptView, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("UserReceipts %s %s %d %q", source, userID, pageSize, pageToken)
	f.reads = append(f.reads, [2]string{source, userID})
	f.pageSizes = append(f.pageSizes, pageSize)
	if f.err != nil {
		return nil, "", f.err
	}
	all, ok := f.lists[source+"/"+userID]
	if !ok {
		return nil, "", fmt.Errorf("fake: user %s/%s: %w", source, userID, projections.ErrNotFound)
	}
	switch pageToken {
	case "":
		if len(all) > pageSize {
			return all[:pageSize], f.validToken, nil
		}
		return all, "", nil
	case f.validToken:
		return all[min(pageSize, len(all)):], "", nil
	default:
		return nil, "", fmt.Errorf("fake: decode page token: %w", projections.ErrBadPageToken)
	}
}

func (f *fakeReader) Balance(ctx context.Context, source, userID string) (projections.Balance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Balance %s %s", source, userID)
	f.reads = append(f.reads, [2]string{source, userID})
	if f.err != nil {
		return projections.Balance{}, f.err
	}
	b, ok := f.balances[source+"/"+userID]
	if !ok {
		return projections.Balance{}, fmt.Errorf("fake: balance %s/%s: %w", source, userID, projections.ErrNotFound)
	}
	return b, nil
}

func (f *fakeReader) Entity(ctx context.Context, source, kind, id string) (projections.Entity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Entity %s %s %s", source, kind, id)
	f.reads = append(f.reads, [2]string{source, kind + "/" + id})
	if f.err != nil {
		return projections.Entity{}, f.err
	}
	v, ok := f.entities[source+"/"+kind+"/"+id]
	if !ok {
		return projections.Entity{}, fmt.Errorf("fake: entity %s/%s/%s: %w", source, kind, id, projections.ErrNotFound)
	}
	return v, nil
}

// Entities pages through f.kinds like UserReceipts; a kind not in f.kinds
// lists empty, as the read models do.
func (f *fakeReader) Entities(ctx context.Context, source, kind string, pageSize int, pageToken string) ([]projections.Entity, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Entities %s %s %d %q", source, kind, pageSize, pageToken)
	f.reads = append(f.reads, [2]string{source, kind})
	f.pageSizes = append(f.pageSizes, pageSize)
	if f.err != nil {
		return nil, "", f.err
	}
	all := f.kinds[source+"/"+kind]
	switch pageToken {
	case "":
		if len(all) > pageSize {
			return all[:pageSize], f.validToken, nil
		}
		return all, "", nil
	case f.validToken:
		return all[min(pageSize, len(all)):], "", nil
	default:
		return nil, "", fmt.Errorf("fake: decode page token: %w", projections.ErrBadPageToken)
	}
}

func (f *fakeReader) Ledger(ctx context.Context, source, userID string, pageSize int, pageToken string) ([]projections.LedgerEntry, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Ledger %s %s %d %q", source, userID, pageSize, pageToken)
	f.reads = append(f.reads, [2]string{source, userID})
	f.pageSizes = append(f.pageSizes, pageSize)
	if f.err != nil {
		return nil, "", f.err
	}
	all, ok := f.ledgers[source+"/"+userID]
	if !ok {
		return nil, "", fmt.Errorf("fake: ledger %s/%s: %w", source, userID, projections.ErrNotFound)
	}
	switch pageToken {
	case "":
		if len(all) > pageSize {
			return all[:pageSize], f.validToken, nil
		}
		return all, "", nil
	case f.validToken:
		return all[min(pageSize, len(all)):], "", nil
	default:
		return nil, "", fmt.Errorf("fake: decode page token: %w", projections.ErrBadPageToken)
	}
}

// Mark and WaitChange are coarse: WaitChange returns at the next Set, so a
// Set between a watcher's read and its WaitChange is missed. Tests of
// watches use the real read models (watch_test.go); the fake serves the
// error paths.
func (f *fakeReader) Mark() projections.Mark { return projections.Mark{} }

func (f *fakeReader) WaitChange(ctx context.Context, since projections.Mark, _ projections.Key) (projections.Mark, error) {
	f.mu.Lock()
	ch := f.changed
	f.mu.Unlock()
	select {
	case <-ch:
		return since, nil
	case <-ctx.Done():
		return since, fmt.Errorf("fake: wait for a change: %w", ctx.Err())
	}
}

func (f *fakeReader) WaitFor(ctx context.Context, position uint64) error {
	f.mu.Lock()
	f.record("WaitFor %d", position)
	block, err := f.blockWait, f.waitErr
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// completedReceipt is an awarded Reewild receipt whose EXTRACTED stage was
// corrected once and whose ENRICHED stage was never reported.
func completedReceipt() aggregate.ReceiptView {
	at := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
	recorded := at.Add(1500 * time.Millisecond)
	amount := dec("23.40")
	return aggregate.ReceiptView{
		ReceiptID:     "fb2c91",
		Source:        "reewild",
		UserID:        "027KO2",
		Status:        aggregate.StatusCompleted,
		Points:        dec("1656.54"),
		BonusPoints:   dec("100"),
		HealthPoints:  dec("12.5"),
		CO2e:          dec("3.217"),
		GreenProducts: 4,
		TransactionID: "tx-77",
		Merchant:      "Tesco",
		Currency:      "GBP",
		Amount:        &amount,
		Stages: []aggregate.StageView{
			{Stage: aggregate.StageUploaded, Reported: true, OccurredAt: &at},
			{Stage: aggregate.StageExtracted, Reported: true, OccurredAt: &at, Corrections: 1, RecordedAt: &recorded},
			{Stage: aggregate.StageEnriched},
			{Stage: aggregate.StageValidated, Reported: true},
			{Stage: aggregate.StageScored, Reported: true},
			{Stage: aggregate.StageAwarded, Reported: true, OccurredAt: &at},
			{Stage: aggregate.StageFailed},
		},
		Anomalies: []aggregate.Anomaly{{Kind: aggregate.AnomalyCorrection, Detail: "EXTRACTED reported with 2 different bodies"}},
		UserIDs:   []string{"027KO2"},
	}
}

// failedReceipt is a failed receipt with no award, in source reap.
func failedReceipt() aggregate.ReceiptView {
	v := aggregate.ReceiptView{
		ReceiptID: "r-fail",
		Source:    "reap",
		UserID:    "u9",
		Status:    aggregate.StatusFailed,
		Failure:   &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE", Message: "total mismatch"},
	}
	for _, s := range aggregate.Stages {
		v.Stages = append(v.Stages, aggregate.StageView{Stage: s, Reported: s == aggregate.StageUploaded || s == aggregate.StageFailed})
	}
	return v
}

// offerEntity is a Reusely offer whose status was updated twice, the
// latest update carrying the payout.
func offerEntity() projections.Entity {
	created := time.Date(2025, 11, 21, 15, 0, 0, 0, time.UTC)
	updated := created.Add(time.Hour)
	seen := time.Date(2025, 11, 21, 15, 0, 1, 0, time.UTC)
	payout := dec("960.00")
	return projections.Entity{
		Source:        "reewild",
		Kind:          "offer",
		ID:            "93092",
		Status:        "Delivered",
		StatusAt:      &updated,
		Amount:        &payout,
		Currency:      "$",
		UserID:        "027KO2",
		FirstSeen:     seen,
		LastSeen:      seen.Add(time.Hour),
		FirstPosition: 7,
		LastPosition:  1 << 60,
		EventCount:    2,
		Timeline: []projections.EntityEvent{
			{
				EventType: "offer.created", Status: "Active Leads", StatusAt: &created, OccurredAt: &created,
				Attributes: map[string]string{"status_id": "1"}, BodySHA256: "aa", Position: 7, RecordedAt: seen,
			},
			{
				EventType: "offer.status.updated", Status: "Delivered", StatusAt: &updated,
				Amount: &payout, Currency: "$", UserID: "027KO2",
				BodySHA256: "bb", Position: 1 << 60, RecordedAt: seen.Add(time.Hour),
			},
		},
	}
}

// fakeEventLog is the test double of api.EventLog: events by source and
// receipt id, paged like the fake reader's lists.
type fakeEventLog struct {
	mu     sync.Mutex
	events map[string][]projections.HistoryEvent // source + "/" + receipt id
	err    error
}

func (l *fakeEventLog) ReceiptEvents(ctx context.Context, source, receiptID string, pageSize int, pageToken string) ([]projections.HistoryEvent, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, "", l.err
	}
	all, ok := l.events[source+"/"+receiptID]
	if !ok {
		return nil, "", fmt.Errorf("fake: events of %s/%s: %w", source, receiptID, projections.ErrNotFound)
	}
	switch pageToken {
	case "":
		if len(all) > pageSize {
			return all[:pageSize], "events-2", nil
		}
		return all, "", nil
	case "events-2":
		return all[min(pageSize, len(all)):], "", nil
	default:
		return nil, "", fmt.Errorf("fake: decode page token: %w", projections.ErrBadPageToken)
	}
}

// fakeStats is the test double of api.StatsReader: it records the query
// and answers stats or err.
type fakeStats struct {
	mu      sync.Mutex
	stats   projections.Stats
	err     error
	queries []projections.StatsQuery
}

func (f *fakeStats) Stats(ctx context.Context, q projections.StatsQuery) (projections.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return f.stats, f.err
}

func (f *fakeStats) WaitFor(ctx context.Context, position uint64) error { return nil }

// fakeAuditor is the test double of api.Auditor.
type fakeAuditor struct {
	mu       sync.Mutex
	report   projections.AuditReport
	result   projections.RebuildResult
	err      error
	audits   []projections.AuditOptions
	rebuilds []projections.RebuildOptions
}

func (f *fakeAuditor) Audit(ctx context.Context, o projections.AuditOptions) (projections.AuditReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audits = append(f.audits, o)
	return f.report, f.err
}

func (f *fakeAuditor) Rebuild(ctx context.Context, o projections.RebuildOptions) (projections.RebuildResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebuilds = append(f.rebuilds, o)
	return f.result, f.err
}

func (f *fakeAuditor) WaitFor(ctx context.Context, position uint64) error { return nil }

// testEnv is a real gRPC server on a loopback listener serving the
// ReceiptService over a fakeReader (or another Reader), the StatsService
// and the AuditService over fakes, client connections to it, and the REST
// gateway over that connection on an httptest server.
type testEnv struct {
	reader  *fakeReader // nil for newTestEnvOver
	events  *fakeEventLog
	stats   *fakeStats
	auditor *fakeAuditor
	client  receiptdv1.ReceiptServiceClient
	statsC  receiptdv1.StatsServiceClient
	auditC  receiptdv1.AuditServiceClient
	rest    *httptest.Server
	handler http.Handler // what rest serves

	mu     sync.Mutex
	lastMD metadata.MD // incoming metadata of the last call
}

// LastMD returns the incoming metadata of the last gRPC call the server
// handled.
func (e *testEnv) LastMD() metadata.MD {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastMD.Copy()
}

func newTestEnv(t *testing.T, opts ...api.Option) *testEnv {
	t.Helper()
	r := newFakeReader()
	env := newTestEnvOver(t, r, opts...)
	env.reader = r
	return env
}

// newTestEnvOver is newTestEnv with the ReceiptService over reader.
func newTestEnvOver(t *testing.T, reader api.Reader, opts ...api.Option) *testEnv {
	t.Helper()
	env := &testEnv{
		events:  &fakeEventLog{events: map[string][]projections.HistoryEvent{}},
		stats:   &fakeStats{},
		auditor: &fakeAuditor{},
	}
	sources := []string{"reewild", "reap"}
	svc, err := api.NewReceiptService(reader, sources, append([]api.Option{api.WithEventLog(env.events)}, opts...)...)
	if err != nil {
		t.Fatalf("NewReceiptService: %v", err)
	}
	statsSvc, err := api.NewStatsService(env.stats, sources, opts...)
	if err != nil {
		t.Fatalf("NewStatsService: %v", err)
	}
	auditSvc, err := api.NewAuditService(env.auditor, sources, opts...)
	if err != nil {
		t.Fatalf("NewAuditService: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	// The interceptor stands in for cmd/receiptd's access interceptor: it
	// records what reached the server, so tests can check that REST calls
	// pass through it.
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		env.mu.Lock()
		env.lastMD = md
		env.mu.Unlock()
		return handler(ctx, req)
	}
	recordStream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		env.mu.Lock()
		env.lastMD = md
		env.mu.Unlock()
		return handler(srv, ss)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(record), grpc.StreamInterceptor(recordStream))
	receiptdv1.RegisterReceiptServiceServer(srv, svc)
	receiptdv1.RegisterStatsServiceServer(srv, statsSvc)
	receiptdv1.RegisterAuditServiceServer(srv, auditSvc)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.GracefulStop()
		if err := <-served; err != nil {
			t.Errorf("grpc Serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	env.client = receiptdv1.NewReceiptServiceClient(conn)
	env.statsC = receiptdv1.NewStatsServiceClient(conn)
	env.auditC = receiptdv1.NewAuditServiceClient(conn)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gw, err := api.NewGateway(ctx, conn, api.GatewayOptions{})
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	mux.Handle("/openapi.json", api.OpenAPIHandler())
	env.handler = mux
	env.rest = newRESTServer(t, env, nil)
	return env
}

// newRESTServer serves env's REST handler on a new httptest server,
// configured by configure if not nil.
func newRESTServer(t *testing.T, env *testEnv, configure func(*http.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(env.handler)
	if configure != nil {
		configure(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
