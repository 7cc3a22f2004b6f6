package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
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

// views is a real read-model file the tests apply events to, one at a
// time, as the Runner would.
type views struct {
	t   *testing.T
	db  *projections.DB
	pos uint64
}

func newViews(t *testing.T) *views {
	t.Helper()
	db, err := projections.Open(filepath.Join(t.TempDir(), "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &views{t: t, db: db}
}

// stage applies one receipt stage event and returns its position.
func (v *views) stage(receipt, user string, s aggregate.Stage, hash string) uint64 {
	v.t.Helper()
	f := aggregate.StageRecorded{Source: "reewild", ReceiptID: receipt, UserID: user, Stage: s, BodySHA256: hash}
	if s == aggregate.StageAwarded {
		f.Award = &aggregate.Award{Points: dec("74.28")}
	}
	if s == aggregate.StageFailed {
		f.Failure = &aggregate.Failure{Code: 5, Name: "FAILED_VALIDATE"}
	}
	data, err := json.Marshal(f)
	if err != nil {
		v.t.Fatal(err)
	}
	v.pos++
	if err := v.db.Apply([]eventstore.RecordedEvent{{
		Event:      aggregate.Event{ID: fmt.Sprint(v.pos), Type: aggregate.TypeReceiptStageRecorded, Data: data, Metadata: []byte(`{}`)},
		Stream:     aggregate.StreamID(aggregate.CategoryReceipt, "reewild", receipt),
		Position:   eventstore.Position{Commit: v.pos, Prepare: v.pos},
		RecordedAt: time.Date(2026, 1, 1, 0, 0, int(v.pos), 0, time.UTC),
	}}); err != nil {
		v.t.Fatal(err)
	}
	return v.pos
}

// reported lists the stages a receipt message shows as reported.
func reported(r *receiptdv1.Receipt) []string {
	var out []string
	for _, s := range r.GetStages() {
		if s.GetReported() {
			out = append(out, s.GetStage().String())
		}
	}
	return out
}

// restWatch opens a REST watch and returns a function reading its next
// message (into a map), and the response.
func restWatch(t *testing.T, env *testEnv, path string) (func() (map[string]any, error), *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.rest.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := env.rest.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	return func() (map[string]any, error) {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		var msg map[string]any
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			return nil, fmt.Errorf("%v in %s", err, sc.Bytes())
		}
		return msg, nil
	}, resp
}

func restReported(t *testing.T, msg map[string]any) []string {
	t.Helper()
	res, ok := msg["result"].(map[string]any)
	if !ok {
		t.Fatalf("stream message %v has no result", msg)
	}
	var out []string
	for _, s := range res["stages"].([]any) {
		if st := s.(map[string]any); st["reported"] == true {
			out = append(out, st["stage"].(string))
		}
	}
	return out
}

func equalStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestWatchReceipt: deliveries applied out of order, with a duplicate; a
// gRPC and a REST watcher each see every change once, and the terminal
// view last.
func TestWatchReceipt(t *testing.T) {
	v := newViews(t)
	env := newTestEnvOver(t, v.db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	grpcStream, err := env.client.WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: "r1", AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	next, resp := restWatch(t, env, "/v1/receipts/r1/watch?allowMissing=true")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST watch: %s", resp.Status)
	}

	steps := []struct {
		stage aggregate.Stage
		hash  string
		want  []string // reported stages after it; nil: no change
	}{
		{aggregate.StageScored, "s", []string{"STAGE_SCORED"}},
		{aggregate.StageUploaded, "u", []string{"STAGE_UPLOADED", "STAGE_SCORED"}},
		{aggregate.StageScored, "s", nil}, // the same fact again: no change
		{aggregate.StageExtracted, "e", []string{"STAGE_UPLOADED", "STAGE_EXTRACTED", "STAGE_SCORED"}},
		{aggregate.StageAwarded, "a", []string{"STAGE_UPLOADED", "STAGE_EXTRACTED", "STAGE_SCORED", "STAGE_AWARDED"}},
	}
	for i, s := range steps {
		v.stage("r1", "u1", s.stage, s.hash)
		if s.want == nil {
			continue // the next message must be the next change, not a repeat
		}
		got, err := grpcStream.Recv()
		if err != nil {
			t.Fatalf("step %d: gRPC Recv: %v", i, err)
		}
		if r := reported(got); !equalStrings(r, s.want) {
			t.Fatalf("step %d: gRPC view reports %v, want %v", i, r, s.want)
		}
		msg, err := next()
		if err != nil {
			t.Fatalf("step %d: REST: %v", i, err)
		}
		if r := restReported(t, msg); !equalStrings(r, s.want) {
			t.Fatalf("step %d: REST view reports %v, want %v", i, r, s.want)
		}
	}
	// Terminal: both streams end.
	if _, err := grpcStream.Recv(); err != io.EOF {
		t.Fatalf("gRPC stream after the terminal view: %v, want EOF", err)
	}
	if msg, err := next(); err != io.EOF {
		t.Fatalf("REST stream after the terminal view: %v %v, want EOF", msg, err)
	}
	// A watch of a terminal receipt sends it once and ends.
	s2, err := env.client.WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Recv(); err != nil || r.GetStatus() != receiptdv1.ReceiptStatus_RECEIPT_STATUS_COMPLETED {
		t.Fatalf("watch of a completed receipt: %v, %v", r, err)
	}
	if _, err := s2.Recv(); err != io.EOF {
		t.Fatalf("after the only view: %v", err)
	}
}

func TestWatchReceiptErrors(t *testing.T) {
	v := newViews(t)
	env := newTestEnvOver(t, v.db, api.WithMaxWait(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		req  *receiptdv1.WatchReceiptRequest
		code codes.Code
	}{
		{"unknown receipt", &receiptdv1.WatchReceiptRequest{ReceiptId: "nope"}, codes.NotFound},
		{"no id", &receiptdv1.WatchReceiptRequest{}, codes.InvalidArgument},
		{"unknown source", &receiptdv1.WatchReceiptRequest{ReceiptId: "r", Source: "nosuch"}, codes.NotFound},
		{"min_position not reached", &receiptdv1.WatchReceiptRequest{ReceiptId: "r", MinPosition: 99}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := env.client.WatchReceipt(ctx, tc.req)
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
		})
	}
	// Over REST, the error of a stream is the HTTP status when nothing was
	// sent yet.
	code, body := get(t, env, "/v1/receipts/nope/watch", nil)
	if code != http.StatusNotFound {
		t.Errorf("REST watch of an unknown receipt: %d %v", code, body)
	}
}

func TestWatchUser(t *testing.T) {
	v := newViews(t)
	env := newTestEnvOver(t, v.db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v.stage("r1", "u1", aggregate.StageUploaded, "u")
	s, err := env.client.WatchUser(ctx, &receiptdv1.WatchUserRequest{UserId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Recv()
	if err != nil || b.GetReceiptsInProgress() != 1 || b.GetDerivedPoints() != "0" {
		t.Fatalf("first balance %v, %v", b, err)
	}
	v.stage("r2", "u2", aggregate.StageUploaded, "x") // another user: no message
	v.stage("r1", "u1", aggregate.StageAwarded, "a")
	b, err = s.Recv()
	if err != nil || b.GetReceiptsCompleted() != 1 || b.GetDerivedPoints() != "74.28" {
		t.Fatalf("balance after the award %v, %v", b, err)
	}
	v.stage("r3", "u1", aggregate.StageUploaded, "y")
	b, err = s.Recv()
	if err != nil || b.GetReceiptsInProgress() != 1 || b.GetReceiptsCompleted() != 1 {
		t.Fatalf("balance after a new receipt %v, %v", b, err)
	}
}

// TestWatchEndsWithTheServersLifetime: a server shutting down ends its
// watches with UNAVAILABLE instead of waiting for them.
func TestWatchEndsWithTheServersLifetime(t *testing.T) {
	v := newViews(t)
	life, stop := context.WithCancel(context.Background())
	env := newTestEnvOver(t, v.db, api.WithLifetime(life))
	v.stage("r1", "u1", aggregate.StageUploaded, "u")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := env.client.WatchReceipt(ctx, &receiptdv1.WatchReceiptRequest{ReceiptId: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch after the lifetime ended: %v, want Unavailable", err)
	}
}

// TestRESTWatchOutlivesServerTimeouts: a REST watch lasts longer than the
// HTTP server's read and write timeouts, which still bound other routes.
func TestRESTWatchOutlivesServerTimeouts(t *testing.T) {
	v := newViews(t)
	env := newTestEnvOver(t, v.db)
	const timeout = 150 * time.Millisecond
	env.rest.Close()
	env.rest = newRESTServer(t, env, func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = timeout, timeout })

	v.stage("r1", "u1", aggregate.StageUploaded, "u")
	next, _ := restWatch(t, env, "/v1/receipts/r1/watch")
	if _, err := next(); err != nil {
		t.Fatal(err)
	}
	// Let both server timeouts pass while the watch waits for a change.
	<-time.After(3 * timeout)
	v.stage("r1", "u1", aggregate.StageExtracted, "e")
	msg, err := next()
	if err != nil {
		t.Fatalf("the watch did not outlive the server's timeouts: %v", err)
	}
	if r := restReported(t, msg); !equalStrings(r, []string{"STAGE_UPLOADED", "STAGE_EXTRACTED"}) {
		t.Fatalf("view %v", r)
	}
}
