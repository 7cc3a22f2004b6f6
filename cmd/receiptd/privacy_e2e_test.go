package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"crypto/rsa"

	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

// The person TestForgetSubjectEndToEnd follows through every provider
// that carries personal data, and what of them must vanish.
const (
	alice         = "alice01"
	aliceEmail    = "alicia.person@example.org"
	aliceFirst    = "Alicia"
	aliceLast     = "Quixote-Privat"
	alicePhone    = "+966500000777"
	alicePayPal   = "alicia.paypal@example.net"
	aliceTracking = "TRACK-ALICIA-777"
	aliceComment  = "Alicia's passport photo was blurred"
	aliceCustomer = "9911"
	aliceAccount  = "acct-alice-0001"
	alicePrivKey  = "8f1d9a7c3b5e2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a"
)

// alicesSecrets are the byte strings no file of the data dir may hold once
// she is forgotten (nor before: they are sealed at rest).
var alicesSecrets = []string{aliceEmail, aliceLast, aliceFirst + " " + aliceLast, alicePhone, alicePayPal, aliceTracking, aliceComment}

// privacyConfig is every provider, an operator key, and privacy on.
func privacyConfig(reapPEM string) string {
	return allProvidersConfig(reapPEM) + operatorAccess() + "privacy: {key: env:E2E_PRIVACY_KEY}\n"
}

// TestForgetSubjectEndToEnd: a person's whole history, in every provider
// that carries personal data (Reewild, Reward joined to its users,
// Reusely, Reap, RETM), beside another user's; exported, then forgotten in
// each source. Afterwards no byte of their e-mail, names, phone, PayPal
// address, tracking number or moderator's comment is in any file of the
// data dir (read raw); every read model's audit digest is unchanged
// (balances and points too), and an offline rebuild reproduces them; the
// export before held the personal data, the export after holds none, and
// the balance and customer read as forgotten, with the same points.
func TestForgetSubjectEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	reapKey, reapPEM, env := allProvidersSetup(t, dir)
	env = append(env, "E2E_PRIVACY_KEY="+alicePrivKey)
	s := startServer(t, dataDir, privacyConfig(reapPEM), env...)
	s.auth = "Bearer " + e2eOperatorKey

	deliveries := alicesHistory(t, reapKey)
	last := sendMixed(t, s, deliveries, 1)
	var balance map[string]any
	if code := s.getJSON(t, fmt.Sprintf("/v1/users/%s/balance?min_position=%d", alice, last), &balance); code != http.StatusOK {
		t.Fatalf("balance: %d", code)
	}
	if balance["forgotten"] != false {
		t.Fatalf("balance before forgetting: %v", balance)
	}

	// Sealed at rest already: the raw files hold none of it.
	checkDataDir(t, dataDir, "before forgetting")

	// The exports hold it all.
	subjects := []struct{ source, id string }{{"reewild", alice}, {"reusely", aliceEmail}, {"reap", aliceAccount}, {"retm", aliceCustomer}}
	var before string
	for _, sj := range subjects {
		before += exportSubject(t, s, sj.source, sj.id)
	}
	for _, secret := range alicesSecrets {
		if !strings.Contains(before, secret) {
			t.Errorf("the exports before forgetting lack %q", secret)
		}
	}

	digests := auditDigests(t, s, last)

	for _, sj := range subjects {
		forgetSubject(t, s, sj.source, sj.id)
	}

	// Every read model as it was: same digests, clean audit.
	if after := auditDigests(t, s, last); fmt.Sprint(after) != fmt.Sprint(digests) {
		t.Errorf("read model digests changed by forgetting:\n before %v\n after  %v", digests, after)
	}
	var after map[string]any
	if code := s.getJSON(t, "/v1/users/"+alice+"/balance", &after); code != http.StatusOK || after["forgotten"] != true || after["forgottenAt"] == nil {
		t.Fatalf("balance after forgetting: %d %v", code, after)
	}
	for _, k := range []string{"derivedPoints", "awardedPoints", "creditedPoints", "reportedLifetimePoints", "receiptsCompleted"} {
		if fmt.Sprint(after[k]) != fmt.Sprint(balance[k]) {
			t.Errorf("balance %s: %v before, %v after forgetting", k, balance[k], after[k])
		}
	}
	var cust map[string]any
	if code := s.getJSON(t, "/v1/entities/customer/"+aliceCustomer+"?source=retm", &cust); code != http.StatusOK || cust["forgotten"] != true || cust["status"] != "created" {
		t.Fatalf("customer after forgetting: %d %v", code, cust)
	}
	var bob map[string]any
	if code := s.getJSON(t, "/v1/users/bob01/balance", &bob); code != http.StatusOK || bob["forgotten"] != false {
		t.Fatalf("Bob after Alice was forgotten: %d %v", code, bob)
	}
	var afterExports string
	for _, sj := range subjects {
		afterExports += exportSubject(t, s, sj.source, sj.id)
	}
	for _, secret := range alicesSecrets {
		if strings.Contains(afterExports, secret) {
			t.Errorf("an export after forgetting holds %q", secret)
		}
	}
	if bobs := exportSubject(t, s, "reewild", "bob01"); !strings.Contains(bobs, "bob@example.com") {
		t.Error("Bob's export lost his e-mail when Alice was forgotten")
	}

	stopServer(t, s)
	checkDataDir(t, dataDir, "after forgetting")

	// An offline rebuild of the stopped server's log: the same digests.
	cfg := filepath.Join(dir, "rebuild.yaml")
	if err := os.WriteFile(cfg, []byte(privacyConfig(reapPEM)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(receiptdBin, "rebuild", "--data-dir", dataDir, "--config", cfg, "--json")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	var rebuilt struct {
		Models []struct{ Name, Digest string }
	}
	if err := json.Unmarshal(out, &rebuilt); err != nil {
		t.Fatalf("rebuild --json: %v in %s", err, out)
	}
	got := map[string]string{}
	for _, m := range rebuilt.Models {
		got[m.Name] = m.Digest
	}
	if fmt.Sprint(got) != fmt.Sprint(digests) {
		t.Errorf("rebuilt digests differ:\n live    %v\n rebuilt %v", digests, got)
	}
	checkDataDir(t, dataDir, "after the rebuild")
}

// alicesHistory is Alice's deliveries to every provider that carries
// personal data, and Bob's to Reewild.
func alicesHistory(t *testing.T, reapKey *rsa.PrivateKey) []signedDelivery {
	t.Helper()
	reewildAuth := func(h http.Header, b []byte) { h.Set("X-Reewild-Signature", sign(b)) }
	bearer := func(token string) func(http.Header, []byte) {
		return func(h http.Header, _ []byte) { h.Set("Authorization", "Bearer "+token) }
	}
	var deliveries []signedDelivery
	add := func(source string, body []byte, auth func(http.Header, []byte)) {
		deliveries = append(deliveries, signedDelivery{source: source, body: body, auth: auth, wantCode: http.StatusOK})
	}
	// Reewild: Alice and Bob enrol; each has a receipt through to its award.
	for _, u := range []struct{ id, email, first, last, receipt string }{
		{alice, aliceEmail, aliceFirst, aliceLast, "rcpt-alice-1"},
		{"bob01", "bob@example.com", "Bob", "Keepme", "rcpt-bob-1"},
	} {
		enrol := template(t, "reewild/user.enrolled.json")
		sub(enrol, "data")["userID"], sub(enrol, "data")["email"] = u.id, u.email
		add("reewild", mustJSON(enrol), reewildAuth)
		up := template(t, "reewild/receipt.uploaded.json")
		sub(up, "data")["profileID"], sub(up, "data")["receiptID"] = u.id, u.receipt
		add("reewild", mustJSON(up), reewildAuth)
		award := template(t, "reewild/rewards.awarded.json")
		user := sub(sub(award, "data"), "user")
		user["id"], user["email"], user["firstName"], user["lastName"] = u.id, u.email, u.first, u.last
		sub(sub(award, "data"), "transaction")["externalTransactionID"] = u.receipt
		add("reewild", mustJSON(award), reewildAuth)
	}
	// Reward: a credit to Alice, in the Reewild users' namespace.
	credit := template(t, "reward/balance.credit_points_issued.json")
	sub(sub(credit, "data"), "user")["id"] = alice
	add("reward", mustJSON(credit), bearer(e2eRewardToken))
	// Reusely: Alice's offer.
	offer := template(t, "reusely/offer.created.json")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	offer["timestamp"], offer["object_id"] = ts, json.Number("777001")
	data := sub(offer, "data")
	data["box_id"], data["customer_email"], data["customer_name"], data["tracking_number"] = "BOX-ALICE", aliceEmail, aliceFirst+" "+aliceLast, aliceTracking
	data["payout_information"].([]any)[0].(map[string]any)["value"] = alicePayPal
	add("reusely", mustJSON(offer), func(h http.Header, _ []byte) {
		h.Set(reusely.SignatureHeader, reusely.Sign([]byte(e2eReuselyKey), "777001", ts))
	})
	// Reap: Alice's account, rejected with a moderator's comment.
	account := template(t, "reap/account_status_change.rejected-final.json")
	sub(account, "data")["entityId"], sub(account, "data")["moderationComment"] = aliceAccount, aliceComment
	add("reap", mustJSON(account), func(h http.Header, b []byte) {
		sig, err := reap.Sign(reapKey, b)
		if err != nil {
			t.Error(err)
		}
		h.Set(reap.SignatureHeader, sig)
	})
	// RETM: Alice as a restaurant's customer.
	customer := template(t, "retm/customer.created.json")
	c := sub(customer, "customer")
	c["id"], c["name"], c["name_localized"], c["phone"], c["email"] = json.Number(aliceCustomer), aliceFirst+" "+aliceLast, aliceLast, alicePhone, aliceEmail
	add("retm", mustJSON(customer), bearer(e2eRETMToken))

	return deliveries
}

// checkDataDir reads every file under dir raw and fails on any of Alice's
// personal values.
func checkDataDir(t *testing.T, dir, when string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for _, secret := range alicesSecrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s: %s holds %q", when, filepath.Base(path), secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("%s: %d files in the data dir, want the log, the read models and the keys", when, n)
	}
}

// exportSubject answers GET /v1/subjects/{id}:export?source= as text.
func exportSubject(t *testing.T, s *server, source, id string) string {
	t.Helper()
	return subjectCall(t, s, http.MethodGet, source, id, "export")
}

func forgetSubject(t *testing.T, s *server, source, id string) {
	t.Helper()
	var res struct {
		DestroyedKeyIDs []string `json:"destroyedKeyIds"`
	}
	if err := json.Unmarshal([]byte(subjectCall(t, s, http.MethodPost, source, id, "forget")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.DestroyedKeyIDs) != 1 {
		t.Errorf("forget %s/%s destroyed %d keys, want 1", source, id, len(res.DestroyedKeyIDs))
	}
}

func subjectCall(t *testing.T, s *server, method, source, id, verb string) string {
	t.Helper()
	req, err := http.NewRequest(method, s.url("/v1/subjects/"+url.PathEscape(id)+":"+verb+"?source="+source), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", s.auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s/%s:%s: %d %s", method, source, id, verb, resp.StatusCode, b)
	}
	return string(b)
}

// auditDigests runs an online audit and returns each read model's live
// digest; the audit must be clean. The read models may lag the log (the
// projection runner gathers a busy log's events into groups), so it audits
// again until the audit's checkpoint has reached atLeast: digests taken
// before would describe fewer events.
func auditDigests(t *testing.T, s *server, atLeast uint64) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command(receiptdBin, "audit", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--json")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("audit: %v\n%s", err, out)
		}
		var rep struct {
			Position struct {
				Commit uint64 `json:"commit"`
			} `json:"position"`
			Clean  bool `json:"clean"`
			Models []struct {
				Name string `json:"name"`
				Live struct {
					Digest string `json:"digest"`
				} `json:"live"`
			} `json:"models"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("audit --json: %v in %s", err, out)
		}
		if rep.Position.Commit < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("the read models are still at position %d, want %d: %s", rep.Position.Commit, atLeast, out)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !rep.Clean {
			t.Errorf("audit not clean: %s", out)
		}
		d := map[string]string{}
		for _, m := range rep.Models {
			d[m.Name] = m.Live.Digest
		}
		return d
	}
}

// TestPrivacySealEndToEnd: a log written without privacy (Alice's
// history in the clear in the log and the read models) is sealed in place
// by `receiptd privacy seal`: afterwards no data-dir file holds her
// personal data; every event keeps its position, stream, revision, id and
// type; every read model but the entities (whose timelines now hold the
// personal attributes sealed) has the digest it had; a server with privacy
// exports her data, and forgetting her then works as for a log sealed
// from the start.
func TestPrivacySealEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	reapKey, reapPEM, env := allProvidersSetup(t, dir)
	env = append(env, "E2E_PRIVACY_KEY="+alicePrivKey)

	s := startServer(t, dataDir, allProvidersConfig(reapPEM)+operatorAccess(), env...)
	s.auth = "Bearer " + e2eOperatorKey
	last := sendMixed(t, s, alicesHistory(t, reapKey), 1)
	// A delivery quarantined with Alice's e-mail in it.
	odd := []byte(`{"eventType":"receipt.teleported","data":{"userID":"` + alice + `","email":"` + aliceEmail + `"}}`)
	code, pos := s.post(t, "reewild", odd, sign(odd), "application/json")
	if code != http.StatusOK {
		t.Fatalf("quarantined delivery: %d", code)
	}
	last = max(last, pos)
	digests := auditDigests(t, s, last)
	stopServer(t, s)

	clearHolds := 0
	_ = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(aliceEmail)) {
			clearHolds++
		}
		return nil
	})
	if clearHolds == 0 {
		t.Fatal("the clear log holds none of Alice's data: nothing to seal")
	}
	before := logEvents(t, dataDir)

	cfg := filepath.Join(dir, "privacy.yaml")
	if err := os.WriteFile(cfg, []byte(privacyConfig(reapPEM)), 0o600); err != nil {
		t.Fatal(err)
	}
	seal := exec.Command(receiptdBin, "privacy", "seal", "--data-dir", dataDir, "--config", cfg)
	seal.Env = append(os.Environ(), env...)
	out, err := seal.CombinedOutput()
	if err != nil {
		t.Fatalf("privacy seal: %v\n%s", err, out)
	}
	t.Logf("receiptd privacy seal:\n%s", out)
	checkDataDir(t, dataDir, "after sealing")

	after := logEvents(t, dataDir)
	if len(after) != len(before) {
		t.Fatalf("%d events after sealing, %d before", len(after), len(before))
	}
	for i := range after {
		if after[i] != before[i] {
			t.Errorf("event %d: %+v after sealing, %+v before", i, after[i], before[i])
		}
	}

	s = startServer(t, dataDir, privacyConfig(reapPEM), env...)
	s.auth = "Bearer " + e2eOperatorKey
	sealedDigests := auditDigests(t, s, last)
	for name, d := range digests {
		if name != "entities" && sealedDigests[name] != d {
			t.Errorf("read model %s: digest %s after sealing, %s before", name, sealedDigests[name], d)
		}
	}
	if exp := exportSubject(t, s, "reewild", alice); !strings.Contains(exp, aliceEmail) || !strings.Contains(exp, aliceLast) {
		t.Error("the export of a sealed log lacks Alice's data")
	}
	forgetSubject(t, s, "reewild", alice)
	if exp := exportSubject(t, s, "reewild", alice); strings.Contains(exp, aliceEmail) || strings.Contains(exp, aliceLast) {
		t.Error("the export after forgetting holds Alice's data")
	}
}

// loggedEvent is what sealing must not change of an event.
type loggedEvent struct {
	Position, Revision uint64
	Stream, ID, Type   string
}

// logEvents reads the identity of every event of a stopped server's log.
func logEvents(t *testing.T, dataDir string) []loggedEvent {
	t.Helper()
	st, err := bolt.Open(filepath.Join(dataDir, "events.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []loggedEvent
	for after := eventstore.Start; ; {
		page, err := st.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, e := range page {
			out = append(out, loggedEvent{e.Position.Commit, e.Revision, e.Stream, e.ID, e.Type})
		}
		after = page[len(page)-1].Position
	}
}

// TestForgetSubjectKurrentDBDouble: privacy on KurrentDB (the double),
// two servers sharing the log and the keys: Alice's deliveries sent to
// one are exported from the other; forgotten on one, her key's stream is
// tombstoned, the other exports nothing of her within its recheck, and the
// read models of both keep their points.
func TestForgetSubjectKurrentDBDouble(t *testing.T) {
	d := startKurrentDB(t)
	dir := t.TempDir()
	reapKey, reapPEM, env := allProvidersSetup(t, dir)
	env = append(env, "E2E_PRIVACY_KEY="+alicePrivKey)
	cfg := strings.Replace(privacyConfig(reapPEM), "store: {kind: embedded}", fmt.Sprintf("store: {kind: kurrentdb, url: %q}", d.URL()), 1)
	if !strings.Contains(cfg, "kurrentdb") {
		t.Fatal("privacyConfig no longer names the embedded store: update the test")
	}
	a := startServer(t, filepath.Join(dir, "a"), cfg, env...)
	b := startServer(t, filepath.Join(dir, "b"), cfg, env...)
	a.auth, b.auth = "Bearer "+e2eOperatorKey, "Bearer "+e2eOperatorKey
	last := sendMixed(t, a, alicesHistory(t, reapKey), 1)
	var before map[string]any
	if code := b.getJSON(t, fmt.Sprintf("/v1/users/%s/balance?min_position=%d", alice, last), &before); code != http.StatusOK {
		t.Fatalf("balance on the other server: %d", code)
	}
	if exp := exportSubject(t, b, "reewild", alice); !strings.Contains(exp, aliceEmail) {
		t.Fatal("the other server's export lacks Alice's e-mail")
	}
	forgetSubject(t, a, "reewild", alice)
	// The other server trusts its cached key for at most 5 s: poll, with
	// a deadline.
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for strings.Contains(exportSubject(t, b, "reewild", alice), aliceEmail) {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the other server still exports Alice's e-mail 15 s after she was forgotten")
		}
	}
	tombstoned := 0
	for _, e := range d.StreamEvents("privacysubject-reewild." + alice) {
		if e.Type == "privacy.subject_forgotten.v1" {
			tombstoned++
		}
	}
	if tombstoned != 1 {
		t.Errorf("%d forget records in Alice's key stream, want 1", tombstoned)
	}
	var after map[string]any
	if code := b.getJSON(t, "/v1/users/"+alice+"/balance", &after); code != http.StatusOK || after["forgotten"] != true || after["derivedPoints"] != before["derivedPoints"] {
		t.Fatalf("balance after forgetting, on the other server: %d %v (before %v)", code, after, before)
	}
}

// TestReforgetAfterKeyStoreRestore: a key store restored from a backup
// older than a forget brings the forgotten subject's key back (the export
// shows their e-mail again); `receiptd privacy reforget` destroys again
// every key the log records as destroyed, and the export is empty of it.
func TestReforgetAfterKeyStoreRestore(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	reapKey, reapPEM, env := allProvidersSetup(t, dir)
	env = append(env, "E2E_PRIVACY_KEY="+alicePrivKey)
	cfgText := privacyConfig(reapPEM)
	serve := func() *server {
		s := startServer(t, dataDir, cfgText, env...)
		s.auth = "Bearer " + e2eOperatorKey
		return s
	}
	s := serve()
	sendMixed(t, s, alicesHistory(t, reapKey), 1)
	stopServer(t, s)
	keys := filepath.Join(dataDir, "keys.db")
	backup, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}

	s = serve()
	forgetSubject(t, s, "reewild", alice)
	stopServer(t, s)
	if err := os.WriteFile(keys, backup, 0o600); err != nil { // the restore
		t.Fatal(err)
	}
	s = serve()
	if !strings.Contains(exportSubject(t, s, "reewild", alice), aliceEmail) {
		t.Fatal("the restored key store did not bring Alice's key back: the test shows nothing")
	}
	stopServer(t, s)

	cfg := filepath.Join(dir, "reforget.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(receiptdBin, "privacy", "reforget", "--data-dir", dataDir, "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 were in the key store again") {
		t.Fatalf("privacy reforget: %v\n%s", err, out)
	}
	s = serve()
	if exp := exportSubject(t, s, "reewild", alice); strings.Contains(exp, aliceEmail) || strings.Contains(exp, aliceLast) {
		t.Fatal("Alice's data is readable after reforget")
	}
	// Her other subjects (Reusely, Reap, RETM) were never forgotten here.
	if !strings.Contains(exportSubject(t, s, "retm", aliceCustomer), alicePhone) {
		t.Fatal("reforget destroyed a key never forgotten")
	}
}
