package main_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/receiptd/receiptd/handlers/webhook/reap"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

// The credentials of TestAllProviders' sources. None may appear in logs.
const (
	e2eRewardToken  = "e2e-reward-token-do-not-log"
	e2eRETMToken    = "e2e-retm-token-do-not-log"
	e2eReuselyKey   = "e2e-reusely-secret-do-not-log"
	e2eMerchant     = "brand-01hq7k2m4x"
	e2eStorefrontID = "storefront"
)

var e2eStandardKey = []byte("e2e-standard-key-do-not-log-0123")

// signedDelivery is one webhook delivery of any provider: the body and a
// function that adds the provider's authentication to a request for it
// (called at send time: Standard Webhooks sign the time of sending).
type signedDelivery struct {
	source   string
	body     []byte
	auth     func(h http.Header, body []byte)
	wantCode int
}

// wantEntity is what GET /v1/entities/{kind}/{id}?source= must answer.
type wantEntity struct {
	kind, id, source string
	status           string
	amount           string // "" when no event stated one
	events           int
}

type restEntity struct {
	Kind       string `json:"kind"`
	EntityID   string `json:"entityId"`
	Source     string `json:"source"`
	Status     string `json:"status"`
	Amount     string `json:"amount"`
	UserID     string `json:"userId"`
	EventCount int    `json:"eventCount"`
	Timeline   []struct {
		EventType string `json:"eventType"`
	} `json:"timeline"`
}

// template reads an example delivery of examples/{provider} as a JSON
// object to edit.
func template(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", path))
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// allProvidersSetup makes a Reap signing key, writes its public half to
// dir/reap.pem and its private half to dir/reap-key.pem, and returns the
// environment that holds the other sources' credentials.
func allProvidersSetup(t *testing.T, dir string) (*rsa.PrivateKey, string, []string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "reap.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, "reap-key.pem"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	return key, pub, []string{
		"E2E_REEWILD_SECRET=" + e2eSecret,
		"E2E_REWARD_TOKEN=" + e2eRewardToken,
		"E2E_REUSELY_SECRET=" + e2eReuselyKey,
		"E2E_RETM_TOKEN=" + e2eRETMToken,
		"E2E_STANDARD_SECRET=" + standardSecret(),
	}
}

func standardSecret() string {
	return standard.SecretPrefix + base64.StdEncoding.EncodeToString(e2eStandardKey)
}

func allProvidersConfig(reapKeyFile string) string {
	return fmt.Sprintf(`store: {kind: embedded}
sources:
  - {name: reewild, kind: reewild, secrets: ["env:E2E_REEWILD_SECRET"]}
  - {name: reward, kind: reward, tokens: ["env:E2E_REWARD_TOKEN"], user_namespace: reewild}
  - {name: reusely, kind: reusely, secrets: ["env:E2E_REUSELY_SECRET"]}
  - {name: reap, kind: reap, public_keys: ["file:%s"]}
  - {name: retm, kind: retm, tokens: ["env:E2E_RETM_TOKEN"], merchant: %s, currency: SAR}
  - {name: %s, kind: standard, secrets: ["env:E2E_STANDARD_SECRET"], category: order}
`, reapKeyFile, e2eMerchant, e2eStorefrontID)
}

// TestAllProviders sends one mixed stream from every provider kind —
// Reewild receipts, Reward credits (joined to the Reewild users) and
// triggers, Reusely offers, Reap account statuses, RETM orders, redemptions
// and questions, and Standard Webhooks orders — shuffled, with exact and
// envelope-level duplicates, from concurrent clients; then checks every
// receipt, balance and entity view, that each tampered delivery got 401 and
// left nothing behind, and that all of it holds after a kill and restart.
func TestAllProviders(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 11))
	dir := t.TempDir()

	reapKey, reapPEM, env := allProvidersSetup(t, dir)
	otherReapKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	bearer := func(token string) func(http.Header, []byte) {
		return func(h http.Header, _ []byte) { h.Set("Authorization", "Bearer "+token) }
	}
	reewildAuth := func(h http.Header, b []byte) { h.Set("X-Reewild-Signature", sign(b)) }
	reapAuth := func(key *rsa.PrivateKey) func(http.Header, []byte) {
		return func(h http.Header, b []byte) {
			s, err := reap.Sign(key, b)
			if err != nil {
				t.Error(err)
			}
			h.Set(reap.SignatureHeader, s)
		}
	}
	reuselyAuth := func(secret string, objectID, ts string) func(http.Header, []byte) {
		return func(h http.Header, _ []byte) {
			h.Set(reusely.SignatureHeader, reusely.Sign([]byte(secret), objectID, ts))
		}
	}
	standardAuth := func(key []byte, id string) func(http.Header, []byte) {
		return func(h http.Header, b []byte) {
			now := time.Now()
			h.Set("webhook-id", id)
			h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			h.Set("webhook-signature", standard.Sign(key, id, now, b))
		}
	}

	var deliveries []signedDelivery
	add := func(source string, body []byte, auth func(http.Header, []byte)) {
		deliveries = append(deliveries, signedDelivery{source: source, body: body, auth: auth, wantCode: http.StatusOK})
	}

	// Reewild: receipts and balances (the same fixture as TestEndToEnd).
	f := newFixture(rng, 40, 6)
	for _, b := range f.deliveries {
		add("reewild", b, reewildAuth)
	}

	// Reward: credits to the Reewild users (user_namespace: reewild), some
	// sent again under a second envelope id, which must not count twice;
	// and trigger events, recorded on the Reward user's timeline.
	credited := map[string]decimal.Decimal{}
	triggers := map[string]int{}
	credit := template(t, "reward/balance.credit_points_issued.json")
	trigger := template(t, "reward/trigger_event.created.json")
	n := 0
	for id, u := range f.users {
		credited[id] = decimal.Zero
		for range rng.IntN(4) {
			n++
			points := decimal.New(1+rng.Int64N(100000), -int32(rng.IntN(3))) // 0 to 2 decimals
			credited[id] = credited[id].Add(points)
			u.derived = u.derived.Add(points)
			credit["id"] = fmt.Sprintf("we_credit_%d", n)
			sub(sub(credit, "data"), "user")["id"] = id
			sub(sub(credit, "data"), "transaction")["id"] = fmt.Sprintf("tx_%d", n)
			sub(sub(credit, "data"), "transaction")["amount"] = json.Number(points.String())
			add("reward", mustJSON(credit), bearer(e2eRewardToken))
			if rng.IntN(2) == 0 { // the same credit under another envelope
				credit["id"] = fmt.Sprintf("we_credit_%d_again", n)
				add("reward", mustJSON(credit), bearer(e2eRewardToken))
			}
		}
		for range rng.IntN(3) {
			n++
			triggers[id]++
			trigger["id"] = fmt.Sprintf("we_trigger_%d", n)
			sub(sub(trigger, "data"), "user")["id"] = id
			add("reward", mustJSON(trigger), bearer(e2eRewardToken))
		}
	}

	var entities []wantEntity
	now := time.Now().Truncate(time.Second)

	// Reusely: offers moving through statuses, each status change its own
	// signed (object_id, timestamp) pair, within the hour's tolerance.
	offer := template(t, "reusely/offer.created.json")
	statuses := []string{"Active Leads", "In-Transit", "Received", "Paid"}
	for i := range 6 {
		box := fmt.Sprintf("BOX%03d", i)
		k := 1 + rng.IntN(len(statuses))
		for j := range k {
			n++
			ts := strconv.FormatInt(now.Add(time.Duration(j-k)*time.Minute).Unix(), 10)
			offer["object_id"] = json.Number(strconv.Itoa(90000 + n))
			offer["timestamp"] = ts
			offer["type"] = map[bool]string{true: "offer.created", false: "offer.status.updated"}[j == 0]
			data := sub(offer, "data")
			data["box_id"] = box
			data["status"] = statuses[j]
			data["payout_amount"] = fmt.Sprintf("%d.%02d", 100+i, j)
			add("reusely", mustJSON(offer), reuselyAuth(e2eReuselyKey, strconv.Itoa(90000+n), ts))
		}
		entities = append(entities, wantEntity{kind: "offer", id: box, source: "reusely", status: statuses[k-1],
			amount: decimal.RequireFromString(fmt.Sprintf("%d.%02d", 100+i, k-1)).String(), events: k})
	}

	// Reap: account status changes, deduplicated on data.eventId; the
	// newest data.timestamp wins whatever the arrival order.
	account := template(t, "reap/account_status_change.approved.json")
	reapStatuses := []string{"PENDING", "REJECTED", "APPROVED"}
	for i := range 6 {
		acct := fmt.Sprintf("5f0c6d2e-8a41-4b7f-9a3e-%012d", i)
		k := 1 + rng.IntN(len(reapStatuses))
		for j := range k {
			n++
			data := sub(account, "data")
			data["eventId"] = fmt.Sprintf("7f3c2a1e-4b5d-4c6e-9f80-%012d", n)
			data["entityId"] = acct
			data["status"] = reapStatuses[j]
			account["eventName"] = "ACCOUNT_" + reapStatuses[j]
			data["timestamp"] = time.Date(2025, 5, 31, 12, j*5, 0, 0, time.UTC).Format("2006-01-02T15:04:05.000Z")
			add("reap", mustJSON(account), reapAuth(reapKey))
		}
		entities = append(entities, wantEntity{kind: "account", id: acct, source: "reap", status: reapStatuses[k-1], events: k})
	}

	// RETM: invoices created and, for some, refunded a day later; reward
	// redemptions; and Check Reward questions, answered 400 (and recorded).
	order := template(t, "retm/order.created.json")
	for i := range 5 {
		invoice := 1500 + i
		order["invoice_id"] = json.Number(strconv.Itoa(invoice))
		order["event"], order["event_type"], order["status"] = "order.created", "create.order", json.Number("1")
		order["timestamp"] = "2025-12-17 19:26:36"
		order["reference"] = fmt.Sprintf("ref-%d-created", invoice)
		add("retm", mustJSON(order), bearer(e2eRETMToken))
		want := wantEntity{kind: "order", id: strconv.Itoa(invoice), source: "retm", status: "Closed", amount: "75", events: 1}
		if i%2 == 0 {
			order["event"], order["event_type"], order["status"] = "order.refunded", "refund.order", json.Number("4")
			order["timestamp"] = "2025-12-18 10:02:11"
			order["reference"] = fmt.Sprintf("ref-%d-refunded", invoice)
			add("retm", mustJSON(order), bearer(e2eRETMToken))
			want.status, want.events = "Refunded", 2
		}
		entities = append(entities, want)
	}
	redeem := template(t, "retm/redeem_reward.json")
	for i := range 3 {
		code := fmt.Sprintf("RWD-%04d", i)
		redeem["reward_code"] = code
		add("retm", mustJSON(redeem), bearer(e2eRETMToken))
		entities = append(entities, wantEntity{kind: "redemption", id: code, source: "retm", status: "redeemed", events: 1})
	}
	question := template(t, "retm/check_reward.json")
	for i := range 2 {
		question["reward_code"] = fmt.Sprintf("ASK-%d", i)
		deliveries = append(deliveries, signedDelivery{source: "retm", body: mustJSON(question), auth: bearer(e2eRETMToken), wantCode: http.StatusBadRequest})
	}

	// Standard Webhooks: a storefront's orders, deduplicated on webhook-id.
	std := template(t, "standard/order.paid.json")
	stdStatuses := []string{"pending", "paid", "partially_refunded", "refunded"}
	for i := range 5 {
		id := fmt.Sprintf("ord_%04d", i)
		k := 1 + rng.IntN(len(stdStatuses))
		for j := range k {
			n++
			std["type"] = "order." + stdStatuses[j]
			std["timestamp"] = time.Date(2025, 11, 21, 15, j, 0, 0, time.UTC).Format(time.RFC3339Nano)
			data := sub(std, "data")
			data["id"], data["status"] = id, stdStatuses[j]
			data["total"] = fmt.Sprintf("%d.%d", 6+i, j)
			add(e2eStorefrontID, mustJSON(std), standardAuth(e2eStandardKey, fmt.Sprintf("msg_%d", n)))
		}
		entities = append(entities, wantEntity{kind: "order", id: id, source: e2eStorefrontID, status: stdStatuses[k-1], events: k})
	}
	for id, k := range triggers {
		entities = append(entities, wantEntity{kind: "user", id: id, source: "reward", events: k})
	}

	// Tampered deliveries, one or more per provider: each must get 401 and
	// leave nothing behind (their entity ids appear nowhere else).
	tampered := []signedDelivery{
		{source: "reward", auth: bearer("not-the-reward-token-at-all"), body: func() []byte {
			sub(sub(credit, "data"), "user")["id"] = "tampered-user"
			sub(sub(credit, "data"), "transaction")["id"] = "tx_tampered"
			return mustJSON(credit)
		}()},
		{source: "retm", auth: bearer(e2eRewardToken), body: func() []byte {
			order["invoice_id"] = json.Number("999999")
			return mustJSON(order)
		}()},
	}
	offer["object_id"], offer["timestamp"] = json.Number("99999"), strconv.FormatInt(now.Unix(), 10)
	sub(offer, "data")["box_id"] = "TAMPERED"
	tampered = append(tampered,
		signedDelivery{source: "reusely", body: mustJSON(offer), auth: reuselyAuth("not-the-reusely-secret", "99999", strconv.FormatInt(now.Unix(), 10))},
		// The signed pair is right, but the body names another object.
		signedDelivery{source: "reusely", body: mustJSON(offer), auth: reuselyAuth(e2eReuselyKey, "99998", strconv.FormatInt(now.Unix(), 10))},
	)
	sub(account, "data")["entityId"] = "tampered-account"
	sub(account, "data")["eventId"] = "tampered-event"
	tampered = append(tampered, signedDelivery{source: "reap", body: mustJSON(account), auth: reapAuth(otherReapKey)})
	sub(std, "data")["id"] = "ord_tampered"
	tampered = append(tampered,
		signedDelivery{source: e2eStorefrontID, body: mustJSON(std), auth: standardAuth([]byte("not-the-standard-key-0123456789ab"), "msg_tampered")},
		// Signed right, for a time outside the 5 minute tolerance.
		signedDelivery{source: e2eStorefrontID, body: mustJSON(std), auth: func(h http.Header, b []byte) {
			old := time.Now().Add(-10 * time.Minute)
			h.Set("webhook-id", "msg_tampered")
			h.Set("webhook-timestamp", strconv.FormatInt(old.Unix(), 10))
			h.Set("webhook-signature", standard.Sign(e2eStandardKey, "msg_tampered", old, b))
		}},
	)
	tamperedReceipt := []byte(`{"eventType":"receipt.extracted","data":{"userID":"u01","receiptID":"tampered-receipt","subTotal":1}}`)
	tampered = append(tampered, signedDelivery{source: "reewild", body: tamperedReceipt, auth: func(h http.Header, b []byte) {
		h.Set("X-Reewild-Signature", sign(append([]byte(" "), b...)))
	}})
	// A valid signature of one body, sent with another.
	signedFor := mustJSON(map[string]any{"eventType": "receipt.extracted", "data": map[string]any{"userID": "u01", "receiptID": "tampered-receipt", "subTotal": 2}})
	tampered = append(tampered, signedDelivery{source: "reewild", body: tamperedReceipt, auth: func(h http.Header, _ []byte) {
		h.Set("X-Reewild-Signature", sign(signedFor))
	}})
	for i := range tampered {
		tampered[i].wantCode = http.StatusUnauthorized
	}

	// All of it, with a quarter more as exact re-deliveries, shuffled.
	stream := append(append([]signedDelivery(nil), deliveries...), tampered...)
	for range len(deliveries) / 4 {
		stream = append(stream, deliveries[rng.IntN(len(deliveries))])
	}
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })

	s := startServer(t, dir+"/data", allProvidersConfig(reapPEM), env...)
	for _, leak := range []string{e2eRewardToken, e2eRETMToken, e2eReuselyKey, string(e2eStandardKey)} {
		t.Cleanup(func() {
			if bytes.Contains([]byte(s.logs.String()), []byte(leak)) {
				t.Errorf("a credential appeared in the server's logs")
			}
		})
	}
	t.Logf("sending %d deliveries: %d distinct, %d tampered, the rest re-deliveries; %d receipts, %d users, %d entities",
		len(stream), len(deliveries), len(tampered), len(f.receipts), len(f.users), len(entities))
	maxPos := sendMixed(t, s, stream, 12)
	if maxPos == 0 {
		t.Fatal("no delivery answered with a Receiptd-Position")
	}

	check := func(s *server) {
		t.Helper()
		checkREST(t, s, f, maxPos)
		for id, c := range credited {
			var b struct {
				AwardedPoints  string `json:"awardedPoints"`
				CreditedPoints string `json:"creditedPoints"`
				DerivedPoints  string `json:"derivedPoints"`
			}
			if code := s.getJSON(t, fmt.Sprintf("/v1/users/%s/balance?min_position=%d", id, maxPos), &b); code != http.StatusOK {
				t.Errorf("balance %s: %d", id, code)
				continue
			}
			decEq(t, "balance "+id+" creditedPoints", b.CreditedPoints, c)
			decEq(t, "balance "+id+" awardedPoints", b.AwardedPoints, f.users[id].derived.Sub(c))
		}
		for _, e := range entities {
			var got restEntity
			path := fmt.Sprintf("/v1/entities/%s/%s?source=%s&min_position=%d", e.kind, e.id, e.source, maxPos)
			if code := s.getJSON(t, path, &got); code != http.StatusOK {
				t.Errorf("GET %s: %d", path, code)
				continue
			}
			if got.Kind != e.kind || got.EntityID != e.id || got.Source != e.source || got.Status != e.status || got.EventCount != e.events || len(got.Timeline) != e.events {
				t.Errorf("%s = %+v, want status %q and %d events", path, got, e.status, e.events)
			}
			if e.amount != "" {
				decEq(t, path+" amount", got.Amount, decimal.RequireFromString(e.amount))
			}
		}
		// Each kind's list holds exactly the entities sent.
		want := map[string]int{}
		for _, e := range entities {
			want[e.source+"/"+e.kind]++
		}
		for key, count := range want {
			src, kind, _ := strings.Cut(key, "/")
			seen := map[string]bool{}
			token := ""
			for {
				var page struct {
					Entities      []restEntity `json:"entities"`
					NextPageToken string       `json:"nextPageToken"`
				}
				if code := s.getJSON(t, fmt.Sprintf("/v1/entities/%s?source=%s&page_size=3&page_token=%s", kind, src, token), &page); code != http.StatusOK {
					t.Fatalf("list %s: %d", key, code)
				}
				for _, e := range page.Entities {
					if seen[e.EntityID] {
						t.Errorf("list %s repeats %s", key, e.EntityID)
					}
					seen[e.EntityID] = true
				}
				if token = page.NextPageToken; token == "" {
					break
				}
			}
			if len(seen) != count {
				t.Errorf("list %s has %d entities, want %d", key, len(seen), count)
			}
		}
		// Nothing of a tampered delivery was stored.
		for _, path := range []string{"/v1/receipts/tampered-receipt", "/v1/users/tampered-user/balance",
			"/v1/entities/offer/TAMPERED?source=reusely", "/v1/entities/account/tampered-account?source=reap",
			"/v1/entities/order/999999?source=retm", "/v1/entities/order/ord_tampered?source=" + e2eStorefrontID} {
			if code := s.getJSON(t, path, nil); code != http.StatusNotFound {
				t.Errorf("GET %s after a tampered delivery: %d, want 404", path, code)
			}
		}
	}
	check(s)

	// Killed and restarted on the same data: the same views, and every
	// delivery sent again is a duplicate that moves nothing.
	s.kill()
	s2 := startServer(t, dir+"/data", allProvidersConfig(reapPEM), env...)
	check(s2)
	again := append([]signedDelivery(nil), deliveries...)
	rng.Shuffle(len(again), func(i, j int) { again[i], again[j] = again[j], again[i] })
	sendMixed(t, s2, again, 8)
	check(s2)
}

// sendMixed sends every delivery from `workers` concurrent clients, checks
// each answer's status, and returns the highest Receiptd-Position answered.
func sendMixed(t *testing.T, s *server, stream []signedDelivery, workers int) uint64 {
	t.Helper()
	work := make(chan signedDelivery)
	var mu sync.Mutex
	var maxPos uint64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range work {
				req, err := http.NewRequest(http.MethodPost, s.url("/webhooks/"+d.source), bytes.NewReader(d.body))
				if err != nil {
					t.Error(err)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				d.auth(req.Header, d.body)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("POST %s: %v", d.source, err)
					continue
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != d.wantCode {
					t.Errorf("POST %s answered %d %s, want %d: %s", d.source, resp.StatusCode, answer, d.wantCode, d.body)
				}
				if resp.StatusCode == http.StatusOK {
					pos, _ := strconv.ParseUint(resp.Header.Get("Receiptd-Position"), 10, 64)
					mu.Lock()
					maxPos = max(maxPos, pos)
					mu.Unlock()
				}
			}
		})
	}
	for _, d := range stream {
		work <- d
	}
	close(work)
	wg.Wait()
	return maxPos
}

// TestReceiptctlEveryKind signs and sends an example delivery of every
// provider kind with receiptctl send, then reads the entities back with
// receiptctl entity get and entities list over gRPC.
func TestReceiptctlEveryKind(t *testing.T) {
	dir := t.TempDir()
	_, reapPEM, env := allProvidersSetup(t, dir)
	s := startServer(t, dir+"/data", allProvidersConfig(reapPEM), env...)

	ctl := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(receiptctlBin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("receiptctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var maxPos uint64
	send := func(wantOK bool, source, kind, secret, file string) string {
		t.Helper()
		out := ctl(wantOK, "send", "--url", "http://"+s.httpAddr, "--source", source, "--kind", kind, "--secret", secret, file)
		maxPos = max(maxPos, printedPosition(out))
		return out
	}

	// Reusely signs a timestamp that must be recent: a copy of the example
	// with the time of sending.
	offer := template(t, "reusely/offer.created.json")
	offer["timestamp"] = strconv.FormatInt(time.Now().Unix(), 10)
	offerFile := filepath.Join(dir, "offer.json")
	if err := os.WriteFile(offerFile, mustJSON(offer), 0o600); err != nil {
		t.Fatal(err)
	}
	ex := func(path string) string { return filepath.Join("..", "..", "examples", path) }
	send(true, "reewild", "reewild", "env:E2E_REEWILD_SECRET", ex("reewild/receipt.extracted.json"))
	send(true, "reward", "reward", "env:E2E_REWARD_TOKEN", ex("reward/trigger_event.created.json"))
	send(true, "reusely", "reusely", "env:E2E_REUSELY_SECRET", offerFile)
	send(true, "reap", "reap", "file:"+filepath.Join(dir, "reap-key.pem"), ex("reap/account_status_change.approved.json"))
	send(true, "retm", "retm", "env:E2E_RETM_TOKEN", ex("retm/order.created.json"))
	send(true, e2eStorefrontID, "standard", "env:E2E_STANDARD_SECRET", ex("standard/order.paid.json"))
	// The same again under a fixed webhook-id is a duplicate; a wrong
	// secret or token is refused, and receiptctl exits non-zero.
	if out := send(true, e2eStorefrontID, "standard", "env:E2E_STANDARD_SECRET", ex("standard/order.paid.json")); !strings.Contains(out, "duplicate") {
		t.Errorf("re-sent standard delivery: %s", out)
	}
	for _, bad := range [][]string{
		{"reewild", "reewild", "wrong-secret", ex("reewild/receipt.extracted.json")},
		{"reward", "reward", "wrong-token-0123456789", ex("reward/trigger_event.created.json")},
		{"retm", "retm", "wrong-token-0123456789", ex("retm/order.created.json")},
		{e2eStorefrontID, "standard", "whsec_" + base64.StdEncoding.EncodeToString([]byte("wrong-key-0123456789abcdef012345")), ex("standard/order.paid.json")},
		{"reusely", "reusely", "wrong-secret", offerFile},
	} {
		if out := send(false, bad[0], bad[1], bad[2], bad[3]); !strings.Contains(out, "401") {
			t.Errorf("send to %s with a wrong credential: %s", bad[0], out)
		}
	}

	grpcArgs := []string{"--addr", s.grpcAddr}
	if maxPos == 0 {
		t.Fatal("receiptctl send printed no position")
	}
	wait := []string{"--min-position", strconv.FormatUint(maxPos, 10)}
	for _, q := range [][]string{
		{"entity", "get", "offer", "STAG03U2O", "--source", "reusely"},
		{"entity", "get", "account", "5f0c6d2e-8a41-4b7f-9a3e-2d1c0b9a8f7e", "--source", "reap"},
		{"entity", "get", "order", "1532", "--source", "retm"},
		{"entity", "get", "order", "ord_2KWPBgLlAfxdpx2AI54pPJ85f4W", "--source", e2eStorefrontID},
		{"entity", "get", "user", "ca9bb5c2-25a6-43e9-972e-862d28241a47", "--source", "reward"},
	} {
		var e restEntity
		out := ctl(true, append(append(grpcArgs, q...), wait...)...)
		if err := json.Unmarshal([]byte(out), &e); err != nil || e.EntityID != q[3] || e.Kind != q[2] || e.EventCount != 1 {
			t.Errorf("receiptctl %s: %v\n%s", strings.Join(q, " "), err, out)
		}
	}
	var list struct {
		Entities []restEntity `json:"entities"`
	}
	out := ctl(true, append(append(grpcArgs, "entities", "list", "order", "--source", "retm"), wait...)...)
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Entities) != 1 || list.Entities[0].Status != "Closed" {
		t.Errorf("receiptctl entities list order --source retm: %v\n%s", err, out)
	}
	if out := ctl(false, append(grpcArgs, "entity", "get", "offer")...); !strings.Contains(out, "want exactly 2") {
		t.Errorf("entity get with one argument: %s", out)
	}
}

// TestExampleProvidersConfig starts receiptd on examples/providers.yaml as
// its header says to, and sends what the header sends.
func TestExampleProvidersConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "providers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's file: paths are relative to the repository root.
	cfg := strings.ReplaceAll(string(raw), "file:examples/", "file:../../examples/")
	env := []string{"REEWILD_SECRET=dev-secret", "REWARD_TOKEN=dev-reward-token-0123", "REUSELY_SECRET=dev-reusely-secret",
		"RETM_TOKEN=dev-retm-token-01234", "STOREFRONT_WHSEC=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	s := startServer(t, t.TempDir(), cfg, env...)
	var maxPos uint64
	for _, send := range [][]string{
		{"--source", "reward", "--kind", "reward", "--secret", "env:REWARD_TOKEN", "../../examples/reward/balance.credit_points_issued.json"},
		{"--source", "storefront", "--kind", "standard", "--secret", "env:STOREFRONT_WHSEC", "../../examples/standard/order.paid.json"},
		{"--source", "retm", "--kind", "retm", "--secret", "env:RETM_TOKEN", "../../examples/retm/order.created.json"},
	} {
		cmd := exec.Command(receiptctlBin, append([]string{"send", "--url", "http://" + s.httpAddr}, send...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("receiptctl send %s: %v\n%s", strings.Join(send, " "), err, out)
		}
		maxPos = max(maxPos, printedPosition(string(out)))
	}
	if maxPos == 0 {
		t.Fatal("receiptctl printed no position")
	}
	var e restEntity
	if code := s.getJSON(t, fmt.Sprintf("/v1/entities/order/ord_2KWPBgLlAfxdpx2AI54pPJ85f4W?source=storefront&min_position=%d", maxPos), &e); code != http.StatusOK || e.Status != "paid" {
		t.Errorf("the storefront's order: %d %+v", code, e)
	}
}

// printedPosition is the log position receiptctl send printed, or 0.
func printedPosition(out string) uint64 {
	i := strings.LastIndex(out, "\nposition ")
	if i < 0 {
		return 0
	}
	var p uint64
	fmt.Sscan(out[i+len("\nposition "):], &p)
	return p
}
