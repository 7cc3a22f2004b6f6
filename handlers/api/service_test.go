package api_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/aggregate"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

func TestNewReceiptServiceRejectsBadConfig(t *testing.T) {
	r := newFakeReader()
	for _, tc := range []struct {
		name    string
		reader  api.Reader
		sources []string
		opts    []api.Option
	}{
		{"nil reader", nil, []string{"reewild"}, nil},
		{"no sources", r, nil, nil},
		{"empty source", r, []string{"reewild", ""}, nil},
		{"duplicate source", r, []string{"reewild", "reap", "reewild"}, nil},
		{"zero max wait", r, []string{"reewild"}, []api.Option{api.WithMaxWait(0)}},
		{"nil logger", r, []string{"reewild"}, []api.Option{api.WithLogger(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := api.NewReceiptService(tc.reader, tc.sources, tc.opts...); err == nil {
				t.Fatal("NewReceiptService succeeded; want an error")
			}
		})
	}
}

func TestGetReceiptOverGRPC(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.receipts["reewild/fb2c91"] = completedReceipt()
		f.receipts["reap/r-fail"] = failedReceipt()
	})
	ctx := context.Background()

	got, err := env.client.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "fb2c91"})
	if err != nil {
		t.Fatalf("GetReceipt: %v", err)
	}
	if got.GetReceiptId() != "fb2c91" || got.GetSource() != "reewild" || got.GetStatus() != receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED || got.GetPoints() != "1656.54" {
		t.Errorf("GetReceipt = %v", got)
	}
	if len(got.GetStages()) != len(aggregate.Stages) {
		t.Errorf("got %d stages, want %d", len(got.GetStages()), len(aggregate.Stages))
	}

	got, err = env.client.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "r-fail", Source: "reap"})
	if err != nil {
		t.Fatalf("GetReceipt source=reap: %v", err)
	}
	if got.GetStatus() != receiptdv1.ReceiptStatus_RECEIPT_STATUS_FAILED || got.GetFailure().GetName() != "FAILED_VALIDATE" {
		t.Errorf("GetReceipt source=reap = %v", got)
	}

	want := []string{"Receipt reewild fb2c91", "Receipt reap r-fail"}
	if calls := env.reader.Calls(); !slices.Equal(calls, want) {
		t.Errorf("reader calls = %q, want %q (no WaitFor without min_position)", calls, want)
	}
}

// TestErrorsOverGRPC checks the status of every way a request can fail, for
// each RPC.
func TestErrorsOverGRPC(t *testing.T) {
	env := newTestEnv(t)
	env.reader.Set(func(f *fakeReader) {
		f.receipts["reewild/fb2c91"] = completedReceipt()
		f.lists["reewild/027KO2"] = []aggregate.ReceiptView{completedReceipt()}
		f.balances["reewild/027KO2"] = projections.Balance{Source: "reewild", UserID: "027KO2"}
		f.entities["reewild/offer/93092"] = offerEntity()
		f.kinds["reewild/offer"] = []projections.Entity{offerEntity()}
	})
	long := strings.Repeat("x", api.MaxIDLength+1)

	type call func(ctx context.Context) error
	getReceipt := func(req *receiptdv1.GetReceiptRequest) call {
		return func(ctx context.Context) error { _, err := env.client.GetReceipt(ctx, req); return err }
	}
	list := func(req *receiptdv1.ListUserReceiptsRequest) call {
		return func(ctx context.Context) error { _, err := env.client.ListUserReceipts(ctx, req); return err }
	}
	balance := func(req *receiptdv1.GetBalanceRequest) call {
		return func(ctx context.Context) error { _, err := env.client.GetBalance(ctx, req); return err }
	}
	entity := func(req *receiptdv1.GetEntityRequest) call {
		return func(ctx context.Context) error { _, err := env.client.GetEntity(ctx, req); return err }
	}
	entities := func(req *receiptdv1.ListEntitiesRequest) call {
		return func(ctx context.Context) error { _, err := env.client.ListEntities(ctx, req); return err }
	}
	longKind := strings.Repeat("k", api.MaxKindLength+1)

	for _, tc := range []struct {
		name    string
		readErr error // the fake's error for every read
		call    call
		code    codes.Code
	}{
		{"GetReceipt empty id", nil, getReceipt(&receiptdv1.GetReceiptRequest{}), codes.InvalidArgument},
		{"GetReceipt long id", nil, getReceipt(&receiptdv1.GetReceiptRequest{ReceiptId: long}), codes.InvalidArgument},
		{"GetReceipt unknown source", nil, getReceipt(&receiptdv1.GetReceiptRequest{ReceiptId: "fb2c91", Source: "nope"}), codes.NotFound},
		{"GetReceipt not found", nil, getReceipt(&receiptdv1.GetReceiptRequest{ReceiptId: "missing"}), codes.NotFound},
		{"GetReceipt wrong source", nil, getReceipt(&receiptdv1.GetReceiptRequest{ReceiptId: "fb2c91", Source: "reap"}), codes.NotFound},
		{"GetReceipt internal", errors.New("bolt: /secret/path: disk on fire"), getReceipt(&receiptdv1.GetReceiptRequest{ReceiptId: "fb2c91"}), codes.Internal},
		{"ListUserReceipts empty id", nil, list(&receiptdv1.ListUserReceiptsRequest{}), codes.InvalidArgument},
		{"ListUserReceipts long id", nil, list(&receiptdv1.ListUserReceiptsRequest{UserId: long}), codes.InvalidArgument},
		{"ListUserReceipts negative page size", nil, list(&receiptdv1.ListUserReceiptsRequest{UserId: "027KO2", PageSize: -1}), codes.InvalidArgument},
		{"ListUserReceipts bad page token", nil, list(&receiptdv1.ListUserReceiptsRequest{UserId: "027KO2", PageToken: "forged"}), codes.InvalidArgument},
		{"ListUserReceipts unknown source", nil, list(&receiptdv1.ListUserReceiptsRequest{UserId: "027KO2", Source: "nope"}), codes.NotFound},
		{"ListUserReceipts not found", nil, list(&receiptdv1.ListUserReceiptsRequest{UserId: "nobody"}), codes.NotFound},
		{"ListUserReceipts internal", errors.New("bolt: /secret/path: disk on fire"), list(&receiptdv1.ListUserReceiptsRequest{UserId: "027KO2"}), codes.Internal},
		{"GetBalance empty id", nil, balance(&receiptdv1.GetBalanceRequest{}), codes.InvalidArgument},
		{"GetBalance unknown source", nil, balance(&receiptdv1.GetBalanceRequest{UserId: "027KO2", Source: "nope"}), codes.NotFound},
		{"GetBalance not found", nil, balance(&receiptdv1.GetBalanceRequest{UserId: "nobody"}), codes.NotFound},
		{"GetBalance internal", errors.New("bolt: /secret/path: disk on fire"), balance(&receiptdv1.GetBalanceRequest{UserId: "027KO2"}), codes.Internal},
		{"GetBalance behind", fmt.Errorf("read: %w", projections.ErrBehind), balance(&receiptdv1.GetBalanceRequest{UserId: "027KO2"}), codes.Unavailable},
		{"GetEntity empty kind", nil, entity(&receiptdv1.GetEntityRequest{EntityId: "93092"}), codes.InvalidArgument},
		{"GetEntity long kind", nil, entity(&receiptdv1.GetEntityRequest{Kind: longKind, EntityId: "93092"}), codes.InvalidArgument},
		{"GetEntity kind with a separator", nil, entity(&receiptdv1.GetEntityRequest{Kind: "off\x00er", EntityId: "93092"}), codes.InvalidArgument},
		{"GetEntity kind with a slash", nil, entity(&receiptdv1.GetEntityRequest{Kind: "offer/x", EntityId: "93092"}), codes.InvalidArgument},
		{"GetEntity empty id", nil, entity(&receiptdv1.GetEntityRequest{Kind: "offer"}), codes.InvalidArgument},
		{"GetEntity long id", nil, entity(&receiptdv1.GetEntityRequest{Kind: "offer", EntityId: long}), codes.InvalidArgument},
		{"GetEntity unknown source", nil, entity(&receiptdv1.GetEntityRequest{Kind: "offer", EntityId: "93092", Source: "nope"}), codes.NotFound},
		{"GetEntity not found", nil, entity(&receiptdv1.GetEntityRequest{Kind: "offer", EntityId: "missing"}), codes.NotFound},
		{"GetEntity other kind", nil, entity(&receiptdv1.GetEntityRequest{Kind: "order", EntityId: "93092"}), codes.NotFound},
		{"GetEntity internal", errors.New("bolt: /secret/path: disk on fire"), entity(&receiptdv1.GetEntityRequest{Kind: "offer", EntityId: "93092"}), codes.Internal},
		{"ListEntities empty kind", nil, entities(&receiptdv1.ListEntitiesRequest{}), codes.InvalidArgument},
		{"ListEntities bad kind", nil, entities(&receiptdv1.ListEntitiesRequest{Kind: "of fer"}), codes.InvalidArgument},
		{"ListEntities negative page size", nil, entities(&receiptdv1.ListEntitiesRequest{Kind: "offer", PageSize: -1}), codes.InvalidArgument},
		{"ListEntities bad page token", nil, entities(&receiptdv1.ListEntitiesRequest{Kind: "offer", PageToken: "forged"}), codes.InvalidArgument},
		{"ListEntities unknown source", nil, entities(&receiptdv1.ListEntitiesRequest{Kind: "offer", Source: "nope"}), codes.NotFound},
		{"ListEntities internal", errors.New("bolt: /secret/path: disk on fire"), entities(&receiptdv1.ListEntitiesRequest{Kind: "offer"}), codes.Internal},
		{"ListEntities behind", fmt.Errorf("read: %w", projections.ErrBehind), entities(&receiptdv1.ListEntitiesRequest{Kind: "offer"}), codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.reader.Set(func(f *fakeReader) { f.err = tc.readErr })
			err := tc.call(context.Background())
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.code)
			}
			if msg := status.Convert(err).Message(); strings.Contains(msg, "secret") || strings.Contains(msg, "fire") {
				t.Errorf("message %q leaks the internal error", msg)
			}
		})
	}
}

func TestMinPositionWaits(t *testing.T) {
	t.Run("waits before reading", func(t *testing.T) {
		env := newTestEnv(t)
		env.reader.Set(func(f *fakeReader) { f.balances["reap/u9"] = projections.Balance{Source: "reap", UserID: "u9"} })
		if _, err := env.client.GetBalance(context.Background(), &receiptdv1.GetBalanceRequest{UserId: "u9", Source: "reap", MinPosition: 42}); err != nil {
			t.Fatalf("GetBalance: %v", err)
		}
		want := []string{"WaitFor 42", "Balance reap u9"}
		if calls := env.reader.Calls(); !slices.Equal(calls, want) {
			t.Errorf("reader calls = %q, want %q", calls, want)
		}
	})
	t.Run("behind is unavailable", func(t *testing.T) {
		env := newTestEnv(t)
		env.reader.Set(func(f *fakeReader) { f.waitErr = fmt.Errorf("projections: wait for 42: %w", projections.ErrBehind) })
		_, err := env.client.GetReceipt(context.Background(), &receiptdv1.GetReceiptRequest{ReceiptId: "fb2c91", MinPosition: 42})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("GetReceipt = %v, want Unavailable", err)
		}
		if calls := env.reader.Calls(); !slices.Equal(calls, []string{"WaitFor 42"}) {
			t.Errorf("reader calls = %q: read although the wait failed", calls)
		}
	})
	t.Run("the bounded wait runs out", func(t *testing.T) {
		env := newTestEnv(t, api.WithMaxWait(50*time.Millisecond))
		env.reader.Set(func(f *fakeReader) { f.blockWait = true })
		start := time.Now()
		_, err := env.client.ListUserReceipts(context.Background(), &receiptdv1.ListUserReceiptsRequest{UserId: "027KO2", MinPosition: 7})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("ListUserReceipts = %v, want Unavailable", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the wait took %v; the bound is 50ms", d)
		}
	})
	t.Run("the caller's deadline is shorter", func(t *testing.T) {
		env := newTestEnv(t, api.WithMaxWait(time.Minute))
		env.reader.Set(func(f *fakeReader) { f.blockWait = true })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := env.client.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: "fb2c91", MinPosition: 7})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("GetReceipt = %v, want DeadlineExceeded", err)
		}
	})
}

func TestListUserReceiptsPaging(t *testing.T) {
	env := newTestEnv(t)
	var views []aggregate.ReceiptView
	for i := range 3 {
		v := completedReceipt()
		v.ReceiptID = fmt.Sprintf("r%d", i)
		views = append(views, v)
	}
	env.reader.Set(func(f *fakeReader) { f.lists["reewild/027KO2"] = views })
	ctx := context.Background()

	first, err := env.client.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: "027KO2", PageSize: 2})
	if err != nil {
		t.Fatalf("ListUserReceipts: %v", err)
	}
	if len(first.GetReceipts()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("first page = %d receipts, token %q; want 2 and a token", len(first.GetReceipts()), first.GetNextPageToken())
	}
	second, err := env.client.ListUserReceipts(ctx, &receiptdv1.ListUserReceiptsRequest{UserId: "027KO2", PageSize: 2, PageToken: first.GetNextPageToken()})
	if err != nil {
		t.Fatalf("ListUserReceipts page 2: %v", err)
	}
	if len(second.GetReceipts()) != 1 || second.GetReceipts()[0].GetReceiptId() != "r2" || second.GetNextPageToken() != "" {
		t.Fatalf("second page = %v", second)
	}
}

func TestGetEntityOverGRPC(t *testing.T) {
	env := newTestEnv(t)
	reap := offerEntity()
	reap.Source, reap.Kind, reap.ID, reap.Timeline = "reap", "account", "acc-1", nil
	env.reader.Set(func(f *fakeReader) {
		f.entities["reewild/offer/93092"] = offerEntity()
		f.entities["reap/account/acc-1"] = reap
	})
	ctx := context.Background()

	got, err := env.client.GetEntity(ctx, &receiptdv1.GetEntityRequest{Kind: "offer", EntityId: "93092"})
	if err != nil {
		t.Fatalf("GetEntity: %v", err)
	}
	if got.GetEntityId() != "93092" || got.GetKind() != "offer" || got.GetSource() != "reewild" || got.GetStatus() != "Delivered" ||
		got.GetAmount() != "960" || got.GetEventCount() != 2 || len(got.GetTimeline()) != 2 || got.GetLastPosition() != 1<<60 {
		t.Errorf("GetEntity = %v", got)
	}
	got, err = env.client.GetEntity(ctx, &receiptdv1.GetEntityRequest{Kind: "account", EntityId: "acc-1", Source: "reap", MinPosition: 9})
	if err != nil {
		t.Fatalf("GetEntity source=reap: %v", err)
	}
	if got.GetSource() != "reap" || got.GetKind() != "account" || len(got.GetTimeline()) != 0 {
		t.Errorf("GetEntity source=reap = %v", got)
	}
	want := []string{"Entity reewild offer 93092", "WaitFor 9", "Entity reap account acc-1"}
	if calls := env.reader.Calls(); !slices.Equal(calls, want) {
		t.Errorf("reader calls = %q, want %q", calls, want)
	}
}

func TestListEntitiesPaging(t *testing.T) {
	env := newTestEnv(t)
	var views []projections.Entity
	for i := range 3 {
		v := offerEntity()
		v.ID, v.Timeline = fmt.Sprintf("o%d", i), nil
		views = append(views, v)
	}
	env.reader.Set(func(f *fakeReader) { f.kinds["reap/offer"] = views })
	ctx := context.Background()

	first, err := env.client.ListEntities(ctx, &receiptdv1.ListEntitiesRequest{Kind: "offer", Source: "reap", PageSize: 2})
	if err != nil {
		t.Fatalf("ListEntities: %v", err)
	}
	if len(first.GetEntities()) != 2 || first.GetNextPageToken() == "" {
		t.Fatalf("first page = %d entities, token %q; want 2 and a token", len(first.GetEntities()), first.GetNextPageToken())
	}
	second, err := env.client.ListEntities(ctx, &receiptdv1.ListEntitiesRequest{Kind: "offer", Source: "reap", PageSize: 2, PageToken: first.GetNextPageToken()})
	if err != nil {
		t.Fatalf("ListEntities page 2: %v", err)
	}
	if len(second.GetEntities()) != 1 || second.GetEntities()[0].GetEntityId() != "o2" || second.GetNextPageToken() != "" {
		t.Fatalf("second page = %v", second)
	}

	// A kind no event has named lists empty: not an error.
	empty, err := env.client.ListEntities(ctx, &receiptdv1.ListEntitiesRequest{Kind: "redemption"})
	if err != nil || len(empty.GetEntities()) != 0 || empty.GetNextPageToken() != "" {
		t.Fatalf("ListEntities of an unseen kind = %v, %v", empty, err)
	}
}

func TestPageSize(t *testing.T) {
	for _, tc := range []struct {
		requested int32
		want      int
	}{
		{0, api.DefaultPageSize},
		{1, 1},
		{7, 7},
		{api.MaxPageSize, api.MaxPageSize},
		{api.MaxPageSize + 1, api.MaxPageSize},
		{1 << 30, api.MaxPageSize},
	} {
		t.Run(fmt.Sprint(tc.requested), func(t *testing.T) {
			r := newFakeReader()
			r.lists["reewild/u"] = nil
			svc, err := api.NewReceiptService(r, []string{"reewild"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.ListUserReceipts(context.Background(), &receiptdv1.ListUserReceiptsRequest{UserId: "u", PageSize: tc.requested}); err != nil {
				t.Fatalf("ListUserReceipts: %v", err)
			}
			if _, err := svc.ListEntities(context.Background(), &receiptdv1.ListEntitiesRequest{Kind: "offer", PageSize: tc.requested}); err != nil {
				t.Fatalf("ListEntities: %v", err)
			}
			want := []string{
				fmt.Sprintf("UserReceipts reewild u %d %q", tc.want, ""),
				fmt.Sprintf("Entities reewild offer %d %q", tc.want, ""),
			}
			if calls := r.Calls(); !slices.Equal(calls, want) {
				t.Errorf("reader calls = %q, want %q", calls, want)
			}
		})
	}
}

// FuzzListUserReceiptsRequest checks that no request panics the service,
// that every rejection is a client error, and that the Reader only ever sees
// a valid request.
func FuzzListUserReceiptsRequest(f *testing.F) {
	f.Add("027KO2", "", int32(0), "", uint64(0))
	f.Add("027KO2", "reap", int32(20), "page-2", uint64(42))
	f.Add("", "reewild", int32(-1), "forged", uint64(1))
	f.Add(strings.Repeat("u", api.MaxIDLength+1), "nope", int32(1<<30), "\x00", ^uint64(0))
	f.Fuzz(func(t *testing.T, userID, source string, pageSize int32, pageToken string, minPosition uint64) {
		r := newFakeReader()
		r.lists["reewild/"+userID] = []aggregate.ReceiptView{completedReceipt()}
		r.lists["reap/"+userID] = []aggregate.ReceiptView{failedReceipt()}
		svc, err := api.NewReceiptService(r, []string{"reewild", "reap"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ListUserReceipts(context.Background(), &receiptdv1.ListUserReceiptsRequest{
			UserId: userID, Source: source, PageSize: pageSize, PageToken: pageToken, MinPosition: minPosition,
		})
		switch code := status.Code(err); code {
		case codes.OK, codes.InvalidArgument, codes.NotFound:
		default:
			t.Fatalf("ListUserReceipts = %v; want OK, InvalidArgument or NotFound", err)
		}
		r.Set(func(r *fakeReader) {
			for _, read := range r.reads {
				if src, id := read[0], read[1]; (src != "reewild" && src != "reap") || id == "" || len(id) > api.MaxIDLength {
					t.Errorf("the Reader was asked for source %q, id %q", src, id)
				}
			}
			for _, size := range r.pageSizes {
				if size < 1 || size > api.MaxPageSize {
					t.Errorf("the Reader got page size %d", size)
				}
			}
		})
	})
}

// FuzzEntityRequests checks that no GetEntity or ListEntities request
// panics the service, that every rejection is a client error, and that the
// Reader only ever sees a configured source, a valid kind, a valid id and
// a page size in range.
func FuzzEntityRequests(f *testing.F) {
	f.Add("offer", "93092", "", int32(0), "", uint64(0))
	f.Add("account", "acc-1", "reap", int32(20), "page-2", uint64(42))
	f.Add("", "", "reewild", int32(-1), "forged", uint64(1))
	f.Add("off\x00er", "x", "", int32(1), "", uint64(0))
	f.Add("offer/../user", "x", "", int32(1), "", uint64(0))
	f.Add(strings.Repeat("k", api.MaxKindLength+1), strings.Repeat("u", api.MaxIDLength+1), "nope", int32(1<<30), "\x00", ^uint64(0))
	f.Fuzz(func(t *testing.T, kind, id, source string, pageSize int32, pageToken string, minPosition uint64) {
		r := newFakeReader()
		r.entities["reewild/"+kind+"/"+id] = offerEntity()
		r.kinds["reap/"+kind] = []projections.Entity{offerEntity()}
		svc, err := api.NewReceiptService(r, []string{"reewild", "reap"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.GetEntity(context.Background(), &receiptdv1.GetEntityRequest{Kind: kind, EntityId: id, Source: source, MinPosition: minPosition})
		switch code := status.Code(err); code {
		case codes.OK, codes.InvalidArgument, codes.NotFound:
		default:
			t.Fatalf("GetEntity = %v; want OK, InvalidArgument or NotFound", err)
		}
		_, err = svc.ListEntities(context.Background(), &receiptdv1.ListEntitiesRequest{Kind: kind, Source: source, PageSize: pageSize, PageToken: pageToken, MinPosition: minPosition})
		switch code := status.Code(err); code {
		case codes.OK, codes.InvalidArgument, codes.NotFound:
		default:
			t.Fatalf("ListEntities = %v; want OK, InvalidArgument or NotFound", err)
		}
		validKind := func(k string) bool {
			if k == "" || len(k) > api.MaxKindLength {
				return false
			}
			for _, c := range k {
				if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.') {
					return false
				}
			}
			return true
		}
		r.Set(func(r *fakeReader) {
			for _, read := range r.reads {
				src, k := read[0], read[1]
				k, eid, isEntity := strings.Cut(k, "/")
				if (src != "reewild" && src != "reap") || !validKind(k) || (isEntity && (eid == "" || len(eid) > api.MaxIDLength)) {
					t.Errorf("the Reader was asked for source %q, %q", src, read[1])
				}
			}
			for _, size := range r.pageSizes {
				if size < 1 || size > api.MaxPageSize {
					t.Errorf("the Reader got page size %d", size)
				}
			}
		})
	})
}
