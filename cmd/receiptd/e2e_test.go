package main_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// receiptdBin and receiptctlBin are the binaries TestMain builds once for
// every test here.
var receiptdBin, receiptctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "receiptd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	receiptdBin = filepath.Join(dir, "receiptd")
	args := []string{"build", "-o", receiptdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	receiptctlBin = filepath.Join(dir, "receiptctl")
	for _, b := range [][]string{append(args, "."), {"build", "-o", receiptctlBin, "../receiptctl"}} {
		build := exec.Command("go", b...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const e2eSecret = "e2e-secret-do-not-log"

// server is a receiptd child process on loopback ports.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	httpAddr string
	grpcAddr string
	logs     *lockedBuffer
	exited   chan struct{}
	// auth, if set, is the Authorization header getJSON sends (a server
	// with an access section).
	auth string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer runs receiptd serve with dataDir and config text, waiting for
// its "listening" log line to learn the ports it bound.
func startServer(t *testing.T, dataDir, config string, env ...string) *server {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(receiptdBin, "serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--config", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: &lockedBuffer{}, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			var entry struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
				GRPC string `json:"grpc"`
			}
			if !signalled && json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				s.httpAddr, s.grpcAddr = entry.HTTP, entry.GRPC
				signalled = true
				close(ready)
			}
		}
	}()
	go func() { cmd.Wait(); close(s.exited) }()
	select {
	case <-ready:
	case <-s.exited:
		t.Fatalf("receiptd exited before listening:\n%s", s.logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("receiptd did not listen within 30s:\n%s", s.logs)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exited
		if strings.Contains(s.logs.String(), e2eSecret) {
			t.Errorf("a secret appeared in the server's logs")
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs)
		}
	})
	return s
}

func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

func (s *server) url(path string) string { return "http://" + s.httpAddr + path }

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(e2eSecret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// post sends a delivery and returns the status and Receiptd-Position.
func (s *server) post(t *testing.T, source string, body []byte, signature, contentType string) (int, uint64) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url("/webhooks/"+source), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if signature != "" {
		req.Header.Set("X-Reewild-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v", source, err)
		return 0, 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pos, _ := strconv.ParseUint(resp.Header.Get("Receiptd-Position"), 10, 64)
	return resp.StatusCode, pos
}

func (s *server) getJSON(t *testing.T, path string, into any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, raw)
		}
	}
	return resp.StatusCode
}

// --- deliveries, shaped like the Reewild seed's payloads ---

var stageEvents = []string{"receipt.uploaded", "receipt.extracted", "receipt.enriched", "receipt.validated", "receipt.scored"}

type wantReceipt struct {
	id, user string
	status   string
	points   decimal.Decimal
	co2e     decimal.Decimal
	stages   map[string]bool // STAGE_… reported
}

type wantUser struct {
	derived   decimal.Decimal
	co2e      decimal.Decimal
	completed int
	failed    int
	progress  int
	lifetime  decimal.Decimal // reported
	txs       int64
}

type fixture struct {
	deliveries [][]byte
	receipts   []*wantReceipt
	users      map[string]*wantUser
}

func app() map[string]any {
	return map[string]any{"id": "34F67CBEA3CD42CCADCB5C7B358ACBA8", "name": "your_app_name", "sourceType": 2}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// newFixture builds nReceipts receipts over nUsers users: random stage
// subsets, AWARDED / FAILED / both / neither, exact decimal points, and
// provider snapshots that add up (so balances reconcile) except for the
// user "u-unreconciled", whose snapshot overstates lifetime points.
func newFixture(rng *rand.Rand, nReceipts, nUsers int) *fixture {
	f := &fixture{users: map[string]*wantUser{}}
	userIDs := make([]string, nUsers)
	for i := range userIDs {
		userIDs[i] = fmt.Sprintf("u%02d", i)
	}
	userIDs[0] = "u-unreconciled"
	for _, u := range userIDs {
		f.users[u] = &wantUser{}
		f.deliveries = append(f.deliveries, mustJSON(map[string]any{"eventType": "user.enrolled", "data": map[string]any{
			"applicationDetails": app(), "userID": u, "email": u + "@example.com", "availablePoints": 0, "lifetimePoints": 0,
			"numOfTransactions": 0, "totalCarbonScore": 0, "totalGreenProducts": 0, "createdAt": "2025-11-21T15:00:45.1070976"}}))
	}
	for i := range nReceipts {
		r := &wantReceipt{id: fmt.Sprintf("%08x-2c91-4a95-ad87-2ae6de6e8df0", i), user: userIDs[rng.IntN(nUsers)], stages: map[string]bool{}, points: decimal.Zero, co2e: decimal.Zero}
		u := f.users[r.user]
		for si, ev := range stageEvents {
			if rng.IntN(3) == 0 {
				continue
			}
			r.stages["STAGE_"+strings.ToUpper(strings.TrimPrefix(ev, "receipt."))] = true
			data := map[string]any{"applicationDetails": app(), "userID": r.user, "receiptID": r.id, "currency": "GBP", "subTotal": json.Number("6.33")}
			if si == 0 {
				data = map[string]any{"applicationDetails": app(), "profileID": r.user, "amount": json.Number("6.0"), "merchantName": "Tesco",
					"transactionId": "TXN-123", "transactionTimestamp": "2025-11-07T19:12:34.567Z", "receiptID": r.id, "uploadedAt": "2025-11-21T15:05:02.5569459Z"}
			}
			f.deliveries = append(f.deliveries, mustJSON(map[string]any{"eventType": ev, "data": data}))
		}
		terminal := rng.IntN(4) // 0 none, 1 awarded, 2 failed, 3 both
		if terminal == 1 || terminal == 3 {
			points := decimal.New(rng.Int64N(100000), -2) // up to 999.99, exact
			co2e := decimal.New(rng.Int64N(10_000_000_000), -9)
			u.derived = u.derived.Add(points)
			u.co2e = u.co2e.Add(co2e)
			u.txs++
			u.lifetime = u.lifetime.Add(points)
			lifetime := u.lifetime
			if r.user == "u-unreconciled" {
				lifetime = lifetime.Add(decimal.RequireFromString("0.01"))
			}
			r.points, r.co2e, r.status = points, co2e, "RECEIPT_STATUS_COMPLETED"
			r.stages["STAGE_AWARDED"] = true
			f.deliveries = append(f.deliveries, mustJSON(map[string]any{"eventType": "rewards.awarded", "data": map[string]any{
				"applicationDetails": app(),
				"user": map[string]any{"id": r.user, "email": r.user + "@example.com", "availablePoints": json.Number(lifetime.String()),
					"lifetimePoints": json.Number(lifetime.String()), "numOfTransactions": u.txs},
				"transaction": map[string]any{"externalTransactionID": r.id, "transactionID": fmt.Sprintf("tx-%d", i), "brand": "TESCO",
					"totalPoints": json.Number(points.String()), "totalCO2e": json.Number(co2e.String()), "totalGreenProducts": 4,
					"totalHealthPoints": json.Number("37.14"), "totalBonusPoints": 0, "totalAmount": json.Number("6.33")},
			}}))
		}
		if terminal == 2 || terminal == 3 {
			r.stages["STAGE_FAILED"] = true
			if r.status == "" {
				r.status = "RECEIPT_STATUS_FAILED"
			}
			f.deliveries = append(f.deliveries, mustJSON(map[string]any{"eventType": "receipt.failed", "data": map[string]any{
				"applicationDetails": app(), "userID": r.user, "errorMessage": "Receipt validation failed", "failureStage": 5,
				"failureStageName": "FAILED_VALIDATE", "receiptID": r.id, "receiptSource": 1}}))
		}
		if len(r.stages) == 0 { // every receipt has at least one fact
			r.stages["STAGE_UPLOADED"] = true
			f.deliveries = append(f.deliveries, mustJSON(map[string]any{"eventType": "receipt_uploaded", "data": map[string]any{"profileID": r.user, "receiptID": r.id}}))
		}
		switch r.status {
		case "RECEIPT_STATUS_COMPLETED":
			u.completed++
		case "RECEIPT_STATUS_FAILED":
			u.failed++
		default:
			r.status = "RECEIPT_STATUS_IN_PROGRESS"
			u.progress++
		}
		f.receipts = append(f.receipts, r)
	}
	return f
}

// sendAll delivers every body (plus ~25% exact duplicates) shuffled, from
// `workers` concurrent clients, and returns the highest position answered.
func sendAll(t *testing.T, s *server, rng *rand.Rand, bodies [][]byte, workers int) uint64 {
	t.Helper()
	all := append([][]byte(nil), bodies...)
	for range len(bodies) / 4 {
		all = append(all, bodies[rng.IntN(len(bodies))])
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	work := make(chan []byte)
	var mu sync.Mutex
	var maxPos uint64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range work {
				code, pos := s.post(t, "reewild", b, sign(b), "application/json")
				if code != http.StatusOK {
					t.Errorf("delivery answered %d: %s", code, b)
				}
				mu.Lock()
				maxPos = max(maxPos, pos)
				mu.Unlock()
			}
		})
	}
	for _, b := range all {
		work <- b
	}
	close(work)
	wg.Wait()
	return maxPos
}

type restReceipt struct {
	ReceiptID string `json:"receiptId"`
	Source    string `json:"source"`
	UserID    string `json:"userId"`
	Status    string `json:"status"`
	Points    string `json:"points"`
	TotalCo2e string `json:"totalCo2e"`
	Stages    []struct {
		Stage    string `json:"stage"`
		Reported bool   `json:"reported"`
	} `json:"stages"`
	Anomalies []struct {
		Kind string `json:"kind"`
	} `json:"anomalies"`
}

type restBalance struct {
	UserID                  string `json:"userId"`
	Source                  string `json:"source"`
	ReportedAvailablePoints string `json:"reportedAvailablePoints"`
	ReportedLifetimePoints  string `json:"reportedLifetimePoints"`
	DerivedPoints           string `json:"derivedPoints"`
	Reconciled              bool   `json:"reconciled"`
	ReceiptsCompleted       int    `json:"receiptsCompleted"`
	ReceiptsFailed          int    `json:"receiptsFailed"`
	ReceiptsInProgress      int    `json:"receiptsInProgress"`
	TotalCo2e               string `json:"totalCo2e"`
}

func decEq(t *testing.T, what, got string, want decimal.Decimal) {
	t.Helper()
	g, err := decimal.NewFromString(got)
	if err != nil || !g.Equal(want) {
		t.Errorf("%s = %q, want %s", what, got, want)
	}
}

// checkREST checks every receipt and balance of f over REST, reading at
// least position minPos.
func checkREST(t *testing.T, s *server, f *fixture, minPos uint64) {
	t.Helper()
	for _, r := range f.receipts {
		var got restReceipt
		if code := s.getJSON(t, fmt.Sprintf("/v1/receipts/%s?min_position=%d", r.id, minPos), &got); code != http.StatusOK {
			t.Errorf("GET receipt %s: %d", r.id, code)
			continue
		}
		if got.ReceiptID != r.id || got.UserID != r.user || got.Status != r.status || got.Source != "reewild" {
			t.Errorf("receipt %s = %+v, want user %s status %s", r.id, got, r.user, r.status)
		}
		decEq(t, "receipt "+r.id+" points", got.Points, r.points)
		decEq(t, "receipt "+r.id+" totalCo2e", got.TotalCo2e, r.co2e)
		if len(got.Stages) != 7 {
			t.Errorf("receipt %s lists %d stages, want 7", r.id, len(got.Stages))
		}
		for _, st := range got.Stages {
			if st.Reported != r.stages[st.Stage] {
				t.Errorf("receipt %s stage %s reported = %v, want %v", r.id, st.Stage, st.Reported, r.stages[st.Stage])
			}
		}
	}
	for id, u := range f.users {
		var b restBalance
		if code := s.getJSON(t, fmt.Sprintf("/v1/users/%s/balance?min_position=%d", id, minPos), &b); code != http.StatusOK {
			t.Errorf("GET balance %s: %d", id, code)
			continue
		}
		decEq(t, "balance "+id+" derivedPoints", b.DerivedPoints, u.derived)
		decEq(t, "balance "+id+" totalCo2e", b.TotalCo2e, u.co2e)
		if b.ReceiptsCompleted != u.completed || b.ReceiptsFailed != u.failed || b.ReceiptsInProgress != u.progress {
			t.Errorf("balance %s counts = %d/%d/%d, want %d/%d/%d", id, b.ReceiptsCompleted, b.ReceiptsFailed, b.ReceiptsInProgress, u.completed, u.failed, u.progress)
		}
		wantReconciled := id != "u-unreconciled" || u.txs == 0
		if b.Reconciled != wantReconciled {
			t.Errorf("balance %s reconciled = %v, want %v (reported %s, derived %s)", id, b.Reconciled, wantReconciled, b.ReportedLifetimePoints, b.DerivedPoints)
		}
		// The user's receipt list, page by page, holds exactly their receipts.
		want := map[string]bool{}
		for _, r := range f.receipts {
			if r.user == id {
				want[r.id] = true
			}
		}
		seen := map[string]bool{}
		token := ""
		for {
			var page struct {
				Receipts      []restReceipt `json:"receipts"`
				NextPageToken string        `json:"nextPageToken"`
			}
			if code := s.getJSON(t, fmt.Sprintf("/v1/users/%s/receipts?page_size=4&page_token=%s", id, token), &page); code != http.StatusOK {
				t.Fatalf("list receipts of %s: %d", id, code)
			}
			for _, r := range page.Receipts {
				if seen[r.ReceiptID] || !want[r.ReceiptID] {
					t.Errorf("list of %s: unexpected or repeated %s", id, r.ReceiptID)
				}
				seen[r.ReceiptID] = true
			}
			if page.NextPageToken == "" {
				break
			}
			token = page.NextPageToken
		}
		if len(seen) != len(want) {
			t.Errorf("list of %s has %d receipts, want %d", id, len(seen), len(want))
		}
	}
}

func reewildConfig() string {
	return "store: {kind: embedded}\nsources:\n  - {name: reewild, kind: reewild, secrets: [\"env:E2E_REEWILD_SECRET\"]}\n"
}

func TestEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	s := startServer(t, dataDir, reewildConfig(), env)
	rng := rand.New(rand.NewPCG(2, 3))
	f := newFixture(rng, 60, 8)

	maxPos := sendAll(t, s, rng, f.deliveries, 16)
	if maxPos == 0 {
		t.Fatal("no delivery answered with a Receiptd-Position")
	}
	checkREST(t, s, f, maxPos)
	checkGRPC(t, s, f, maxPos)

	// Every duplicate again: all 200, and the views do not move.
	sendAll(t, s, rng, f.deliveries[:20], 4)
	checkREST(t, s, f, maxPos)

	// Kill without a clean shutdown, restart on the same data, check again.
	s.kill()
	s2 := startServer(t, dataDir, reewildConfig(), env)
	checkREST(t, s2, f, maxPos)
	checkGRPC(t, s2, f, maxPos)
	// Re-sent after the restart, every delivery is a duplicate.
	sendAll(t, s2, rng, f.deliveries, 8)
	checkREST(t, s2, f, maxPos)
}

// TestContract checks each status code of DESIGN.md's external contract.
func TestContract(t *testing.T) {
	s := startServer(t, t.TempDir(), reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	body := []byte(`{"eventType":"receipt.extracted","data":{"userID":"027KO2","receiptID":"fb2cdc63-6d13-4176-89ae-7a424b69d7b5","subTotal":6.33}}`)

	if code, _ := s.post(t, "reewild", body, sign([]byte("other")), "application/json"); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d", code)
	}
	if code, _ := s.post(t, "reewild", body, "", "application/json"); code != http.StatusUnauthorized {
		t.Errorf("missing signature: %d", code)
	}
	if code := s.getJSON(t, "/v1/receipts/fb2cdc63-6d13-4176-89ae-7a424b69d7b5", nil); code != http.StatusNotFound {
		t.Errorf("a refused delivery was stored: GET answered %d", code)
	}
	if code, _ := s.post(t, "nope", body, sign(body), "application/json"); code != http.StatusNotFound {
		t.Errorf("unknown source: %d", code)
	}
	if code, _ := s.post(t, "reewild", body, sign(body), "text/plain"); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", code)
	}
	big := bytes.Repeat([]byte(" "), 1<<20+1)
	if code, _ := s.post(t, "reewild", big, sign(big), "application/json"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d", code)
	}
	notJSON := []byte("eventType=receipt.extracted")
	if code, _ := s.post(t, "reewild", notJSON, sign(notJSON), "application/json"); code != http.StatusBadRequest {
		t.Errorf("not JSON: %d", code)
	}
	unknown := []byte(`{"eventType":"receipt.teleported","data":{"receiptID":"x"}}`)
	if code, pos := s.post(t, "reewild", unknown, sign(unknown), "application/json"); code != http.StatusOK || pos == 0 {
		t.Errorf("unknown event type: %d (position %d), want 200 into quarantine", code, pos)
	}
	code, pos := s.post(t, "reewild", body, sign(body), "application/json")
	if code != http.StatusOK {
		t.Fatalf("good delivery: %d", code)
	}
	var r restReceipt
	if c := s.getJSON(t, fmt.Sprintf("/v1/receipts/fb2cdc63-6d13-4176-89ae-7a424b69d7b5?min_position=%d", pos), &r); c != http.StatusOK || r.Status != "RECEIPT_STATUS_IN_PROGRESS" {
		t.Errorf("receipt after one stage: %d %+v", c, r)
	}
	var b restBalance
	if c := s.getJSON(t, fmt.Sprintf("/v1/users/027KO2/balance?min_position=%d", pos), &b); c != http.StatusOK || b.DerivedPoints != "0" || !b.Reconciled || b.ReceiptsInProgress != 1 {
		t.Errorf("balance of a user with nothing awarded: %d %+v", c, b)
	}
	if c := s.getJSON(t, "/v1/users/never-seen/balance", nil); c != http.StatusNotFound {
		t.Errorf("unknown user: %d", c)
	}
	if c := s.getJSON(t, "/v1/receipts/x?source=nosuch", nil); c != http.StatusNotFound {
		t.Errorf("unknown ?source=: %d", c)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if c := s.getJSON(t, path, nil); c != http.StatusOK {
			t.Errorf("GET %s: %d", path, c)
		}
	}
	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`outcome="bad_signature"`, `outcome="accepted"`, `outcome="quarantined"`, "receiptd_webhook_ingest_seconds", "receiptd_projection_lag_events"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
