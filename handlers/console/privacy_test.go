package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/privacy"
)

// TestForgetAndExport: a user's page offers Export and Forget; Forget asks
// for confirmation (the user's id typed again), refuses a mismatch or a
// missing CSRF token without forgetting, and once confirmed forgets
// through the API and shows the user as forgotten; Export downloads the
// API's document as an attachment.
func TestForgetAndExport(t *testing.T) {
	tc := newTestConsole(t)
	tc.api.balances["027KO2"] = &receiptdv1.Balance{UserId: "027KO2", Source: "reewild", DerivedPoints: "74.28", Reconciled: true}

	page := tc.get("/ui/users/reewild/027KO2")
	if page.Code != http.StatusOK {
		t.Fatalf("user page: %d %s", page.Code, page.Body)
	}
	body := page.Body.String()
	if !strings.Contains(body, `id="export"`) || !strings.Contains(body, `id="forget"`) || strings.Contains(body, `id="forgotten"`) {
		t.Fatalf("user page before: %s", body)
	}
	confirm := tc.get("/ui/users/reewild/027KO2/forget")
	if confirm.Code != http.StatusOK || !strings.Contains(confirm.Body.String(), "cannot be undone") {
		t.Fatalf("confirmation page: %d %s", confirm.Code, confirm.Body)
	}
	csrf := tc.c.sessions.lookup(tc.session.Value, time.Now()).csrf
	forgets := func() int {
		tc.api.mu.Lock()
		defer tc.api.mu.Unlock()
		n := 0
		for _, c := range tc.api.calls {
			if c == receiptdv1.PrivacyService_ForgetSubject_FullMethodName {
				n++
			}
		}
		return n
	}
	if w := tc.do("POST", "/ui/users/reewild/027KO2/forget", url.Values{"confirm": {"027KO2"}}, tc.session); w.Code != http.StatusForbidden || forgets() != 0 {
		t.Fatalf("forget without the CSRF token: %d, %d forgets", w.Code, forgets())
	}
	if w := tc.do("POST", "/ui/users/reewild/027KO2/forget", url.Values{"csrf": {csrf}, "confirm": {"027KO"}}, tc.session); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), `id="forget-mismatch"`) || forgets() != 0 {
		t.Fatalf("forget with a mistyped id: %d, %d forgets", w.Code, forgets())
	}
	w := tc.do("POST", "/ui/users/reewild/027KO2/forget", url.Values{"csrf": {csrf}, "confirm": {"027KO2"}}, tc.session)
	if w.Code != http.StatusSeeOther || forgets() != 1 || !strings.HasPrefix(w.Header().Get("Location"), "/ui/users/reewild/027KO2") {
		t.Fatalf("confirmed forget: %d %s, %d forgets", w.Code, w.Header().Get("Location"), forgets())
	}
	if body := tc.get("/ui/users/reewild/027KO2").Body.String(); !strings.Contains(body, `id="forgotten"`) || !strings.Contains(body, "FORGOTTEN") {
		t.Fatalf("user page after: %s", body)
	}

	exp := tc.get("/ui/users/reewild/027KO2/export")
	var doc struct {
		SubjectID string `json:"subjectId"`
	}
	if exp.Code != http.StatusOK || !strings.Contains(exp.Header().Get("Content-Disposition"), "attachment") ||
		exp.Header().Get("Content-Type") != "application/octet-stream" || json.Unmarshal(exp.Body.Bytes(), &doc) != nil || doc.SubjectID != "027KO2" {
		t.Fatalf("export: %d %v %s", exp.Code, exp.Header(), exp.Body)
	}
	// Without a session: the sign-in page, nothing exported.
	if w := tc.do("GET", "/ui/users/reewild/027KO2/export", nil, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("export without a session: %d", w.Code)
	}
}

// TestSealedRawBodies: with the keys, a sealed raw body shows on the
// receipt page and downloads; once its key is destroyed it shows as
// forgotten, with nothing to download, and the page still renders.
func TestSealedRawBodies(t *testing.T) {
	ctx := context.Background()
	ks, err := privacy.OpenFileStore(filepath.Join(t.TempDir(), "keys.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := privacy.ParseKEK(bytes.Repeat([]byte{9}, 32))
	ring, err := privacy.NewKeyring(ctx, ks, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	sub := privacy.Subject{Source: "reewild", ID: "u1"}
	key, _ := ring.SealKey(ctx, sub)

	tc := newTestConsole(t)
	tc.c.o.Keys = ring
	raw := []byte(`{"eventType":"receipt.extracted","data":{"receiptID":"r1","userID":"u1","note":"a very personal note"}}`)
	meta := aggregate.Metadata{Source: "reewild", ReceivedAt: time.Now().UTC(), Scheme: "hmac-sha256", BodySHA256: fmt.Sprintf("%x", sha256.Sum256(raw)), DedupeKey: "d", CorrelationID: "11111111-1111-5111-8111-111111111111", CausationID: "11111111-1111-5111-8111-111111111111"}
	ev, err := eventcodec.EncodeSealed("11111111-1111-5111-8111-111111111111", aggregate.Fact{Type: aggregate.TypeReceiptStageRecorded,
		Data: aggregate.StageRecorded{Source: "reewild", ReceiptID: "r1", UserID: "u1", Stage: aggregate.StageExtracted, BodySHA256: meta.BodySHA256}},
		meta, raw, eventcodec.Sealing{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	e := tc.log.append(aggregate.StreamID(aggregate.CategoryReceipt, "reewild", "r1"), ev.Type, ev.Data)
	tc.log.mu.Lock()
	st := tc.log.streams[e.Stream]
	st[len(st)-1].Metadata, st[len(st)-1].Body, st[len(st)-1].ID = ev.Metadata, ev.Body, ev.ID
	tc.log.mu.Unlock()
	tc.api.receipts["r1"] = &receiptdv1.Receipt{ReceiptId: "r1", Source: "reewild", UserId: "u1"}
	tc.api.events["r1"] = []*receiptdv1.ReceiptEvent{{Position: e.Position.Commit, Revision: 0, EventType: ev.Type, Delivery: &receiptdv1.Delivery{ProviderEventType: "receipt.extracted"}}}

	if body := tc.get("/ui/receipts/reewild/r1").Body.String(); !strings.Contains(body, "a very personal note") {
		t.Fatalf("receipt page with the key: %s", body)
	}
	if w := tc.get("/ui/receipts/reewild/r1/events/0/raw"); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), raw) {
		t.Fatalf("download with the key: %d %q", w.Code, w.Body)
	}
	if _, _, err := ring.Forget(ctx, sub); err != nil {
		t.Fatal(err)
	}
	page := tc.get("/ui/receipts/reewild/r1")
	if page.Code != http.StatusOK || strings.Contains(page.Body.String(), "a very personal note") || !strings.Contains(page.Body.String(), "Forgotten:") {
		t.Fatalf("receipt page after forgetting: %d %s", page.Code, page.Body)
	}
	if w := tc.get("/ui/receipts/reewild/r1/events/0/raw"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "forgotten") {
		t.Fatalf("download after forgetting: %d %s", w.Code, w.Body)
	}
}
