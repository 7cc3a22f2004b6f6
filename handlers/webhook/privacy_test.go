package webhook_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
	"github.com/receiptd/receiptd/internal/storedouble"
	"github.com/receiptd/receiptd/privacy"
)

// newKeyring opens a keyring on a key file in a temporary directory.
func newKeyring(tb testing.TB) *privacy.Keyring {
	tb.Helper()
	s, err := privacy.OpenFileStore(filepath.Join(tb.TempDir(), "keys.db"), 0)
	if err != nil {
		tb.Fatal(err)
	}
	kek, err := privacy.ParseKEK(bytes.Repeat([]byte{0x5a}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	r, err := privacy.NewKeyring(context.Background(), s, []*privacy.KEK{kek}, privacy.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// TestSealedIngest: with Keys, every Reewild delivery is appended with its
// body and e-mail sealed under its user's key; duplicates are still
// recognized; a quarantined delivery naming a user is sealed too, listed
// and re-processed through the key, and shown as forgotten once the user
// is forgotten.
func TestSealedIngest(t *testing.T) {
	ctx := context.Background()
	ring := newKeyring(t)
	store := storedouble.NewMemStoreDouble()
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := webhook.New(store, []webhook.Provider{p}, webhook.Options{
		Keys: ring, Logger: slog.New(slog.DiscardHandler), Clock: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte) *httptest.ResponseRecorder {
		r := request("reewild", body, secret)
		r.SetPathValue("source", "reewild")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	names := []string{"user.enrolled", "receipt.uploaded", "receipt.extracted", "rewards.awarded", "receipt.failed"}
	for _, name := range names {
		expect(t, post(readExample(t, name)), http.StatusOK, "accepted")
	}
	expect(t, post(readExample(t, "rewards.awarded")), http.StatusOK, "duplicate")

	evs, err := store.ReadAll(ctx, eventstore.Start, 100)
	if err != nil || len(evs) != len(names) {
		t.Fatalf("%d events, %v; want %d", len(evs), err, len(names))
	}
	for _, e := range evs {
		for _, secret := range []string{"user@example.com", "Tesco Maris Piper", "your_app_name"} {
			if bytes.Contains(e.Data, []byte(secret)) || bytes.Contains(e.Body, []byte(secret)) || bytes.Contains(e.Metadata, []byte(secret)) {
				t.Errorf("%s event holds %q in the clear", e.Type, secret)
			}
		}
		if !privacy.IsSealed(e.Body) {
			t.Errorf("%s event: body not sealed", e.Type)
		}
	}

	// A delivery the decoder cannot map, naming its user: quarantined,
	// sealed under the user's key.
	odd := []byte(`{"eventType":"receipt.teleported","data":{"userID":"027KO2","email":"user@example.com"}}`)
	expect(t, post(odd), http.StatusOK, "quarantined")
	q, err := h.Quarantined(ctx, "reewild", 0, 10)
	if err != nil || len(q) != 1 || !bytes.Equal(q[0].Raw, odd) || q[0].Forgotten {
		t.Fatalf("quarantine before forgetting: %+v, %v", q, err)
	}
	qev, _ := store.ReadStream(ctx, aggregate.QuarantineStream("reewild"), 0, 1)
	if !privacy.IsSealed(qev[0].Body) {
		t.Fatal("quarantined body not sealed")
	}

	// Forget the rewards.awarded user (027KO2): the quarantined body reads
	// as forgotten, re-processing says so, nothing fails.
	if _, _, err := ring.Forget(ctx, privacy.Subject{Source: "reewild", ID: "027KO2"}); err != nil {
		t.Fatal(err)
	}
	q, err = h.Quarantined(ctx, "reewild", 0, 10)
	if err != nil || len(q) != 1 || q[0].Raw != nil || !q[0].Forgotten {
		t.Fatalf("quarantine after forgetting: %+v, %v", q, err)
	}
	res, _, err := h.ReprocessQuarantined(ctx, "reewild", 0, 10)
	if err != nil || len(res) != 1 || res[0].Outcome != "quarantined" {
		t.Fatalf("reprocess after forgetting: %+v, %v", res, err)
	}
	// The user's events are still decided on: a re-delivery is a
	// duplicate, and a new delivery gets a fresh key.
	expect(t, post(readExample(t, "rewards.awarded")), http.StatusOK, "duplicate")
	awarded := bytes.Replace(readExample(t, "rewards.awarded"), []byte(`"totalPoints": 74.28`), []byte(`"totalPoints": 74.29`), 1)
	expect(t, post(awarded), http.StatusOK, "accepted")
	evs, _ = store.ReadAll(ctx, eventstore.Start, 100)
	last := evs[len(evs)-1]
	raw, forgotten, err := eventcodec.OpenRawBody(ctx, ring, last.Event)
	if err != nil || forgotten || !bytes.Equal(raw, awarded) {
		t.Fatalf("a delivery after the forget: %v %v", forgotten, err)
	}
}

// TestSealedIngestWithoutKeysIsClear: without Keys nothing is sealed.
func TestSealedIngestWithoutKeysIsClear(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	expect(t, f.post(readExample(t, "user.enrolled")), http.StatusOK, "accepted")
	evs, _ := f.store.ReadAll(context.Background(), eventstore.Start, 10)
	if len(evs) != 1 || privacy.IsSealed(evs[0].Body) || !bytes.Contains(evs[0].Data, []byte("user@example.com")) {
		t.Fatalf("without Keys: %+v", evs)
	}
}

// TestPersonalOfEveryProvider: whose every example delivery is, and which
// of its attributes are personal; the same subject comes from the body
// alone when the delivery is quarantined.
func TestPersonalOfEveryProvider(t *testing.T) {
	pem, err := os.ReadFile("../../examples/reap/reap-production.pem")
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := reap.ParsePublicKeys(pem)
	if err != nil {
		t.Fatal(err)
	}
	tok := []byte("token-0123456789abcdef")
	must := func(p webhook.Provider, err error) webhook.Provider {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		provider webhook.Provider
		dir      string
		n        int
		// want: example name -> subject id ("" for none; "email" for a
		// pseudonymous e-mail subject).
		want  map[string]string
		ns    string
		attrs []string
	}{
		{must(reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret}})), "reewild", 8, map[string]string{
			"receipt.enriched": "027KO2", "receipt.extracted": "027KO2", "receipt.failed": "07BVG7", "receipt.scored": "027KO2",
			"receipt.uploaded": "027KO2", "receipt.validated": "027KO2", "rewards.awarded": "027KO2", "user.enrolled": "00B4N5",
		}, "reewild", nil},
		{must(reward.New(reward.Config{Source: "reward", Tokens: [][]byte{tok}, BalanceSource: "reewild"})), "reward", 2, map[string]string{
			"balance.credit_points_issued": "ca9bb5c2-25a6-43e9-972e-862d28241a47", "trigger_event.created": "ca9bb5c2-25a6-43e9-972e-862d28241a47",
		}, "reewild", nil},
		{must(reusely.New(reusely.Config{Source: "reusely", Secrets: [][]byte{secret}})), "reusely", 2, map[string]string{
			"offer.created": "email", "offer.status.updated": "email",
		}, "reusely", reusely.PersonalAttributes},
		{must(reap.New(reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{pubs[0]}})), "reap", 4, map[string]string{
			"account_status_change.approved": "5f0c6d2e-8a41-4b7f-9a3e-2d1c0b9a8f7e", "account_status_change.pending": "5f0c6d2e-8a41-4b7f-9a3e-2d1c0b9a8f7e",
			"account_status_change.rejected-final": "a1b2c3d4-e5f6-4789-8abc-def012345678", "account_status_change.rejected-retry": "a1b2c3d4-e5f6-4789-8abc-def012345678",
		}, "reap", reap.PersonalAttributes},
		{must(retm.New(retm.Config{Source: "retm", Tokens: []retm.Token{{Value: tok}}})), "retm", 9, map[string]string{
			"customer.created": "4821", "customer.updated": "4821", "customer.deleted": "4821",
			"check_reward": "", "error_webhook": "", "order.created": "", "order.refunded": "", "promotional_coupon": "", "redeem_reward": "",
		}, "retm", retm.PersonalAttributes},
	}
	for _, c := range cases {
		pd, ok := c.provider.(webhook.PersonalData)
		if !ok {
			t.Fatalf("%s: not a webhook.PersonalData", c.provider.Kind())
		}
		for _, ex := range webhooktest.Examples(t, filepath.Join("../../examples", c.dir), c.n) {
			want, listed := c.want[ex.Name]
			if !listed {
				t.Fatalf("%s/%s: no expectation", c.dir, ex.Name)
			}
			d := webhooktest.Delivery(ex.Body, now, webhook.Verification{Scheme: "test"})
			n, _ := c.provider.Normalize(d)
			got := pd.Personal(d, n)
			check := func(how string, got webhook.Personal) {
				t.Helper()
				switch {
				case want == "" && !got.Subject.IsZero():
					t.Errorf("%s/%s (%s): subject %+v, want none", c.dir, ex.Name, how, got.Subject)
				case want == "email" && (got.Subject.Pseudonymous != "email" || got.Subject.ID == ""):
					t.Errorf("%s/%s (%s): subject %+v, want a pseudonymous e-mail", c.dir, ex.Name, how, got.Subject)
				case want != "" && want != "email" && (got.Subject.ID != want || got.Subject.Namespace != c.ns):
					t.Errorf("%s/%s (%s): subject %+v, want %s/%s", c.dir, ex.Name, how, got.Subject, c.ns, want)
				case want != "" && !slices.Equal(got.Attributes, c.attrs):
					t.Errorf("%s/%s (%s): personal attributes %v, want %v", c.dir, ex.Name, how, got.Attributes, c.attrs)
				}
			}
			check("normalized", got)
			// Quarantined: Personal reads the body alone.
			check("from the body", pd.Personal(d, webhook.Normalized{EventType: n.EventType}))
		}
	}
	// Standard Webhooks: the body's shape is the sender's, so no subject.
	s, err := standard.New(standard.Config{Source: "std", Secrets: [][]byte{[]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}})
	if err == nil {
		if _, ok := webhook.Provider(s).(webhook.PersonalData); ok {
			t.Error("standard claims to know its deliveries' subjects")
		}
	}
}
