package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/receiptd/receiptd/eventstore/bolt"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/privacy"
	"github.com/receiptd/receiptd/projections"
)

// privacyEnv is a log, its read models kept by a runner, a keyring, and
// the ingest that seals into them.
type privacyEnv struct {
	store *bolt.Store
	views *projections.DB
	ring  *privacy.Keyring
	hooks *webhook.Handler
	last  uint64
}

var (
	privacySecret = []byte("reewild-secret-0123456789")
	privacyToken  = []byte("retm-token-0123456789abcdef")
)

func newPrivacyEnv(t *testing.T) *privacyEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "events.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	views, err := projections.Open(filepath.Join(dir, "views.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { views.Close() })
	ks, err := privacy.OpenFileStore(filepath.Join(dir, "keys.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := privacy.ParseKEK(bytes.Repeat([]byte{3}, 32))
	ring, err := privacy.NewKeyring(context.Background(), ks, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	rw, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{privacySecret}})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := retm.New(retm.Config{Source: "retm", Tokens: []retm.Token{{Value: privacyToken}}})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	hooks, err := webhook.New(store, []webhook.Provider{rw, rt}, webhook.Options{Keys: ring, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); projections.NewRunner(store, views, logger).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &privacyEnv{store: store, views: views, ring: ring, hooks: hooks}
}

// post delivers an example payload (examples/{kind}/{name}.json).
func (e *privacyEnv) post(t *testing.T, kind, name string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("../../examples", kind, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/webhooks/"+kind, bytes.NewReader(body))
	r.SetPathValue("source", kind)
	r.Header.Set("Content-Type", "application/json")
	if kind == "reewild" {
		r.Header.Set(reewild.SignatureHeader, reewild.Sign(privacySecret, body))
	} else {
		r.Header.Set("Authorization", "Bearer "+string(privacyToken))
	}
	w := httptest.NewRecorder()
	e.hooks.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("%s/%s: %d %s", kind, name, w.Code, w.Body)
	}
	p, _ := strconv.ParseUint(w.Header().Get(webhook.PositionHeader), 10, 64)
	e.last = max(e.last, p)
}

func (e *privacyEnv) caughtUp(t *testing.T) {
	t.Helper()
	if err := e.views.WaitFor(context.Background(), e.last); err != nil {
		t.Fatal(err)
	}
}

// TestPrivacyService: an export holds a subject's events with their
// personal data opened and their views; ForgetSubject destroys the key
// and records it in the log; afterwards the export lists the same events
// as forgotten, with no personal data, the balance shows the user as
// forgotten, and the points are unchanged.
func TestPrivacyService(t *testing.T) {
	ctx := context.Background()
	env := newPrivacyEnv(t)
	for _, name := range []string{"receipt.uploaded", "receipt.extracted", "rewards.awarded"} {
		env.post(t, "reewild", name)
	}
	env.post(t, "retm", "customer.created")
	env.caughtUp(t)

	svc, err := api.NewPrivacyService(env.store, env.views, []string{"reewild", "retm"}, api.WithSubjects(env.ring))
	if err != nil {
		t.Fatal(err)
	}
	receipts, err := api.NewReceiptService(env.views, []string{"reewild", "retm"}, api.WithSubjects(env.ring))
	if err != nil {
		t.Fatal(err)
	}
	export := func(source, id string) (*receiptdv1.ExportSubjectResponse, string) {
		t.Helper()
		out, err := svc.ExportSubject(ctx, &receiptdv1.ExportSubjectRequest{Source: source, SubjectId: id})
		if err != nil {
			t.Fatal(err)
		}
		js, err := protojson.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return out, string(js)
	}

	before, js := export("reewild", "027KO2")
	if len(before.Events) != 3 || before.Balance == nil || len(before.Receipts) != 2 || before.ForgottenAt != nil {
		t.Fatalf("export before: %d events, balance %v, %d receipts", len(before.Events), before.Balance, len(before.Receipts))
	}
	for _, want := range []string{"user@example.com", "Tesco Maris Piper Potatoes", "74.28"} {
		if !strings.Contains(js, want) {
			t.Errorf("export before forgetting lacks %q", want)
		}
	}
	for _, ev := range before.Events {
		if ev.Forgotten || ev.RawBody == "" || ev.Normalized == nil {
			t.Errorf("event %d before forgetting: forgotten %v, raw %d bytes", ev.Position, ev.Forgotten, len(ev.RawBody))
		}
	}
	_, cjs := export("retm", "4821")
	for _, want := range []string{"Sara Al-Harbi", "0551234567", "sara@example.com"} {
		if !strings.Contains(cjs, want) {
			t.Errorf("customer export lacks %q", want)
		}
	}
	balanceBefore, err := receipts.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: "027KO2"})
	if err != nil || balanceBefore.Forgotten {
		t.Fatalf("balance before: %v %v", balanceBefore, err)
	}

	res, err := svc.ForgetSubject(ctx, &receiptdv1.ForgetSubjectRequest{SubjectId: "027KO2"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != "reewild" || res.SubjectId != "027KO2" || len(res.DestroyedKeyIds) != 1 || res.Position == 0 {
		t.Fatalf("ForgetSubject: %+v", res)
	}
	if err := env.views.WaitFor(ctx, res.Position); err != nil {
		t.Fatal(err)
	}

	after, js := export("reewild", "027KO2")
	if len(after.Events) != 4 || after.ForgottenAt == nil {
		t.Fatalf("export after: %d events (want the 3 and the forget), forgotten at %v", len(after.Events), after.ForgottenAt)
	}
	for _, secret := range []string{"user@example.com", "Tesco Maris Piper", "your_app_name"} {
		if strings.Contains(js, secret) {
			t.Errorf("export after forgetting holds %q", secret)
		}
	}
	for _, ev := range after.Events[:3] {
		if !ev.Forgotten || ev.RawBody != "" {
			t.Errorf("event %d after forgetting: forgotten %v, raw %q", ev.Position, ev.Forgotten, ev.RawBody)
		}
	}
	if !strings.Contains(js, "74.28") {
		t.Error("the points are gone from the export with the personal data")
	}
	balanceAfter, err := receipts.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: "027KO2"})
	if err != nil || !balanceAfter.Forgotten || balanceAfter.ForgottenAt == nil {
		t.Fatalf("balance after: %v %v", balanceAfter, err)
	}
	if balanceAfter.DerivedPoints != balanceBefore.DerivedPoints || balanceAfter.ReportedLifetimePoints != balanceBefore.ReportedLifetimePoints {
		t.Errorf("points changed: %s/%s -> %s/%s", balanceBefore.DerivedPoints, balanceBefore.ReportedLifetimePoints, balanceAfter.DerivedPoints, balanceAfter.ReportedLifetimePoints)
	}
	// The customer's entity shows its personal attributes, opened.
	entity := func() *receiptdv1.Entity {
		t.Helper()
		e, err := receipts.GetEntity(ctx, &receiptdv1.GetEntityRequest{Source: "retm", Kind: "customer", EntityId: "4821"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := entity(); e.Forgotten || e.Timeline[0].Attributes["phone"] != "0551234567" || e.Timeline[0].Attributes["reference"] == "" {
		t.Errorf("customer before forgetting: %v", e)
	}
	// The customer, another subject, is untouched.
	if _, cjs := export("retm", "4821"); !strings.Contains(cjs, "sara@example.com") {
		t.Error("forgetting one subject erased another")
	}
	// Forget the customer: the entity stays, its personal attributes go,
	// the clear ones stay, and it reads as forgotten.
	if _, err := svc.ForgetSubject(ctx, &receiptdv1.ForgetSubjectRequest{Source: "retm", SubjectId: "4821"}); err != nil {
		t.Fatal(err)
	}
	if e := entity(); !e.Forgotten || !e.Timeline[0].Forgotten || e.Timeline[0].Attributes["phone"] != "" || e.Timeline[0].Attributes["reference"] == "" || e.Status != "created" {
		t.Errorf("customer after forgetting: %v", e)
	}
	// Twice: nothing left to destroy, still fine.
	res, err = svc.ForgetSubject(ctx, &receiptdv1.ForgetSubjectRequest{SubjectId: "027KO2"})
	if err != nil || len(res.DestroyedKeyIds) != 0 {
		t.Fatalf("second ForgetSubject: %+v %v", res, err)
	}
	// Unknown source, missing id.
	for _, req := range []*receiptdv1.ForgetSubjectRequest{{Source: "nope", SubjectId: "x"}, {}} {
		if _, err := svc.ForgetSubject(ctx, req); status.Code(err) == codes.OK || status.Code(err) == codes.Internal {
			t.Errorf("ForgetSubject(%v): %v", req, err)
		}
	}
	// Without privacy: FAILED_PRECONDITION, and the export works on clear
	// events.
	plain, err := api.NewPrivacyService(env.store, env.views, []string{"reewild"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.ForgetSubject(ctx, &receiptdv1.ForgetSubjectRequest{SubjectId: "027KO2"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ForgetSubject without privacy: %v, want FAILED_PRECONDITION", err)
	}
}
