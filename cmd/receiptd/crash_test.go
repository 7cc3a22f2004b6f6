package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// The crash test: receiptd under concurrent signed load is killed with
// SIGKILL at random moments, several times, and restarted on the same data
// directory each time. After every restart:
//
//   - every delivery that was answered 200 is in the read models (its stage
//     is reported, its credit counted), and nothing that was never sent is;
//   - nothing is half-applied: each balance agrees exactly with the receipt
//     views of its user (counts by status, points), and each user's credits
//     decode as a set of whole deliveries, none counted twice;
//   - the log holds at most one event per distinct delivery (its head is
//     between the distinct deliveries acknowledged and those sent).
//
// Then the providers' retries (every delivery not yet acknowledged, sent
// again until it is) bring the log to exactly one event per distinct
// delivery and every view to its exact expected value; and a server started
// on a copy of the data directory without views.db rebuilds read models
// equal, view for view, to the ones that lived through the crashes.

const rewardToken = "e2e-reward-token-0123456789abcdef"

func crashConfig() string {
	return reewildConfig() + "  - {name: reward, kind: reward, tokens: [\"env:E2E_REWARD_TOKEN\"], user_namespace: reewild}\n"
}

func crashEnv() []string {
	return []string{"E2E_REEWILD_SECRET=" + e2eSecret, "E2E_REWARD_TOKEN=" + rewardToken}
}

// crashDelivery is one distinct delivery and what it means for the views.
type crashDelivery struct {
	path, signature string
	body            []byte
	receipt, stage  string // a receipt stage (STAGE_…), or
	user            string // the user it names (enrolment, credit)
	credit          int    // for a credit: its digit k (amount 3^k cents); -1 otherwise
}

// creditsPerUser is the number of credits each user gets; credit k is 3^k
// cents, so the sum of any set of credits, each counted once, has only 0
// and 1 as base-3 digits, and a credit counted twice shows as a 2.
const creditsPerUser = 4

func buildCrashDeliveries(t *testing.T, f *fixture) []*crashDelivery {
	t.Helper()
	var out []*crashDelivery
	for _, b := range f.deliveries {
		var env struct {
			EventType string `json:"eventType"`
			Data      struct {
				ReceiptID   string `json:"receiptID"`
				UserID      string `json:"userID"`
				Transaction struct {
					ExternalTransactionID string `json:"externalTransactionID"`
				} `json:"transaction"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		d := &crashDelivery{path: "/webhooks/reewild", signature: sign(b), body: b, credit: -1}
		switch et := strings.ReplaceAll(env.EventType, "_", "."); et {
		case "user.enrolled":
			d.user = env.Data.UserID
		case "rewards.awarded":
			d.receipt, d.stage = env.Data.Transaction.ExternalTransactionID, "STAGE_AWARDED"
		default:
			d.receipt, d.stage = env.Data.ReceiptID, "STAGE_"+strings.ToUpper(strings.TrimPrefix(et, "receipt."))
		}
		out = append(out, d)
	}
	users := make([]string, 0, len(f.users))
	for u := range f.users {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		for k := range creditsPerUser {
			amount := decimal.New(pow3(k), -2)
			body := fmt.Appendf(nil, `{"id":"we_%s_%d","type":"balance.credit_points_issued","time":"2024-12-14T15:29:19.407Z","data":{"user":{"id":%q},"transaction":{"id":"tx_%s_%d","amount":%s}}}`,
				u, k, u, u, k, amount)
			out = append(out, &crashDelivery{path: "/webhooks/reward/" + rewardToken, body: body, user: u, credit: k})
			f.users[u].derived = f.users[u].derived.Add(amount)
		}
	}
	return out
}

func pow3(k int) int64 {
	n := int64(1)
	for range k {
		n *= 3
	}
	return n
}

// crashState is what the test knows of each delivery.
type crashState struct {
	mu       sync.Mutex
	sent     map[*crashDelivery]bool // sent at least once (maybe applied)
	acked    map[*crashDelivery]bool // answered 200 at least once
	maxPos   uint64
	attempts int
}

func (st *crashState) pending(all []*crashDelivery) []*crashDelivery {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*crashDelivery
	for _, d := range all {
		if !st.acked[d] {
			out = append(out, d)
		}
	}
	return out
}

// postOnce sends d; it returns the status (0 when the server did not answer).
func postOnce(client *http.Client, s *server, d *crashDelivery) (int, uint64) {
	req, err := http.NewRequest(http.MethodPost, s.url(d.path), bytes.NewReader(d.body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if d.signature != "" {
		req.Header.Set("X-Reewild-Signature", d.signature)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pos, _ := strconv.ParseUint(resp.Header.Get("Receiptd-Position"), 10, 64)
	return resp.StatusCode, pos
}

// loadRound sends the pending deliveries (and re-sends of acknowledged
// ones, as a provider's retries would) from workers clients. If killAfter >
// 0, the server is killed with SIGKILL once that many deliveries have been
// acknowledged in this round, while the others are in flight. It returns
// whether it killed the server.
func loadRound(t *testing.T, s *server, rng *rand.Rand, st *crashState, all []*crashDelivery, workers, killAfter int) bool {
	t.Helper()
	queue := st.pending(all)
	st.mu.Lock()
	var acked []*crashDelivery
	for _, d := range all {
		if st.acked[d] {
			acked = append(acked, d)
		}
	}
	st.mu.Unlock()
	for range len(queue) / 4 {
		if len(acked) > 0 {
			queue = append(queue, acked[rng.IntN(len(acked))])
		}
	}
	rng.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })

	work := make(chan *crashDelivery)
	killNow := make(chan struct{})
	var once sync.Once
	var roundAcks atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			for d := range work {
				st.mu.Lock()
				st.sent[d] = true
				st.attempts++
				st.mu.Unlock()
				code, pos := postOnce(client, s, d)
				switch code {
				case http.StatusOK:
					st.mu.Lock()
					st.acked[d] = true
					st.maxPos = max(st.maxPos, pos)
					st.mu.Unlock()
					if killAfter > 0 && roundAcks.Add(1) == int64(killAfter) {
						once.Do(func() { close(killNow) })
					}
				case 0:
					// The server is gone (killed): nothing more to send.
					for range work {
					}
					return
				default:
					if code != http.StatusServiceUnavailable {
						t.Errorf("delivery answered %d: %s", code, d.body)
					}
				}
			}
		})
	}
	killed := false
	done := make(chan struct{})
	go func() {
		defer close(work)
		for _, d := range queue {
			select {
			case work <- d:
			case <-done:
				return
			}
		}
	}()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-killNow:
		s.kill()
		killed = true
		close(done)
		<-finished
	case <-finished:
		close(done)
	}
	return killed
}

// scrape returns the named unlabelled series of the server's /metrics.
func scrape(t *testing.T, s *server, names ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && want[name] {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err == nil {
				out[name] = v
			}
		}
	}
	return out
}

// caughtUp waits until the read models have applied the whole log, and
// returns the head (the number of events: positions start at 1 and have no
// gaps on the embedded store). Nothing may be sent meanwhile.
//
// The checkpoint is read by a scrape after the one that saw no lag: the
// gauges of one scrape are read one after the other, in no set order, so
// the checkpoint of that same scrape may predate the moment the lag was 0.
// The checkpoint only grows, so a later read is the head.
func caughtUp(t *testing.T, s *server) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, s, "receiptd_projection_lag_events", "receiptd_projection_checkpoint")
		if lag, ok := m["receiptd_projection_lag_events"]; ok && lag == 0 {
			return uint64(scrape(t, s, "receiptd_projection_checkpoint")["receiptd_projection_checkpoint"])
		}
		if time.Now().After(deadline) {
			t.Fatalf("read models not caught up within 30s: %v", m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAfterCrash checks the invariants that hold whatever was in flight
// when the server died (see the top of the file).
func checkAfterCrash(t *testing.T, s *server, f *fixture, all []*crashDelivery, st *crashState) {
	t.Helper()
	head := caughtUp(t, s)
	st.mu.Lock()
	defer st.mu.Unlock()
	distinctAcked, distinctSent := 0, 0
	for _, d := range all {
		if st.acked[d] {
			distinctAcked++
		}
		if st.sent[d] {
			distinctSent++
		}
	}
	if head < uint64(distinctAcked) || head > uint64(distinctSent) {
		t.Errorf("the log holds %d events; %d distinct deliveries were acknowledged and %d sent", head, distinctAcked, distinctSent)
	}

	type userView struct {
		completed, failed, progress int
		points                      decimal.Decimal
	}
	fromReceipts := map[string]*userView{}
	for u := range f.users {
		fromReceipts[u] = &userView{points: decimal.Zero}
	}
	for _, r := range f.receipts {
		var got restReceipt
		code := s.getJSON(t, "/v1/receipts/"+r.id, &got)
		reported := map[string]bool{}
		if code == http.StatusOK {
			for _, stg := range got.Stages {
				if stg.Reported {
					reported[stg.Stage] = true
				}
			}
			uv := fromReceipts[got.UserID]
			if uv == nil {
				t.Errorf("receipt %s names user %q, who sent nothing", r.id, got.UserID)
				continue
			}
			switch got.Status {
			case "RECEIPT_STATUS_COMPLETED":
				uv.completed++
				p, err := decimal.NewFromString(got.Points)
				if err != nil {
					t.Fatalf("receipt %s points %q", r.id, got.Points)
				}
				uv.points = uv.points.Add(p)
			case "RECEIPT_STATUS_FAILED":
				uv.failed++
			default:
				uv.progress++
			}
		} else if code != http.StatusNotFound {
			t.Fatalf("GET receipt %s: %d", r.id, code)
		}
		for _, d := range all {
			if d.receipt != r.id {
				continue
			}
			switch {
			case st.acked[d] && !reported[d.stage]:
				t.Errorf("receipt %s: %s was acknowledged but is not reported after the crash", r.id, d.stage)
			case reported[d.stage] && !st.sent[d]:
				t.Errorf("receipt %s: %s is reported but was never sent", r.id, d.stage)
			}
		}
	}
	for u := range f.users {
		var b restBalance
		code := s.getJSON(t, "/v1/users/"+u+"/balance", &b)
		named := false
		for _, d := range all {
			if st.acked[d] && (d.user == u || d.receipt != "" && receiptUser(f, d.receipt) == u) {
				named = true
			}
		}
		if code == http.StatusNotFound {
			if named {
				t.Errorf("user %s: acknowledged deliveries name them, but they have no balance", u)
			}
			continue
		}
		if code != http.StatusOK {
			t.Fatalf("GET balance %s: %d", u, code)
		}
		uv := fromReceipts[u]
		if b.ReceiptsCompleted != uv.completed || b.ReceiptsFailed != uv.failed || b.ReceiptsInProgress != uv.progress {
			t.Errorf("user %s: balance counts %d/%d/%d, receipt views %d/%d/%d (half-applied?)", u,
				b.ReceiptsCompleted, b.ReceiptsFailed, b.ReceiptsInProgress, uv.completed, uv.failed, uv.progress)
		}
		derived, err := decimal.NewFromString(b.DerivedPoints)
		if err != nil {
			t.Fatalf("user %s derivedPoints %q", u, b.DerivedPoints)
		}
		// What is left after the receipts' points is the credits applied:
		// base-3 digits, one per credit, each 0 or 1.
		credited := derived.Sub(uv.points).Shift(2)
		if !credited.IsInteger() || credited.IsNegative() {
			t.Errorf("user %s: derived %s - receipts %s leaves %s, not whole credits", u, derived, uv.points, credited.Shift(-2))
			continue
		}
		c := credited.IntPart()
		for k := range creditsPerUser + 1 {
			digit := c % 3
			c /= 3
			var d *crashDelivery
			for _, x := range all {
				if x.user == u && x.credit == k {
					d = x
				}
			}
			switch {
			case digit > 1:
				t.Errorf("user %s: credit %d counted %d times", u, k, digit)
			case d == nil && digit != 0:
				t.Errorf("user %s: a credit %d that does not exist is counted", u, k)
			case d != nil && st.acked[d] && digit == 0:
				t.Errorf("user %s: credit %d was acknowledged but is not counted after the crash", u, k)
			case d != nil && !st.sent[d] && digit != 0:
				t.Errorf("user %s: credit %d is counted but was never sent", u, k)
			}
		}
	}
}

func receiptUser(f *fixture, id string) string {
	for _, r := range f.receipts {
		if r.id == id {
			return r.user
		}
	}
	return ""
}

func TestCrashRecovery(t *testing.T) {
	start := time.Now()
	dataDir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	f := newFixture(rng, 60, 6)
	all := buildCrashDeliveries(t, f)
	st := &crashState{sent: map[*crashDelivery]bool{}, acked: map[*crashDelivery]bool{}}

	kills := 0
	for round := 0; kills < 4; round++ {
		if round > 12 {
			t.Fatalf("only %d kills in %d rounds", kills, round)
		}
		s := startServer(t, dataDir, crashConfig(), crashEnv()...)
		if round > 0 {
			checkAfterCrash(t, s, f, all, st)
			if t.Failed() {
				t.FailNow()
			}
		}
		pending := len(st.pending(all))
		if pending < 8 {
			s.kill()
			break
		}
		killAfter := 1 + rng.IntN(pending/3)
		if loadRound(t, s, rng, st, all, 12, killAfter) {
			kills++
		} else {
			s.kill()
			kills++ // killed between deliveries: a crash all the same
		}
		t.Logf("round %d: killed after %d acknowledgements in the round; %d of %d distinct deliveries acknowledged so far",
			round, killAfter, len(all)-len(st.pending(all)), len(all))
	}

	// The providers retry until every delivery is acknowledged.
	s := startServer(t, dataDir, crashConfig(), crashEnv()...)
	checkAfterCrash(t, s, f, all, st)
	for range 5 {
		if len(st.pending(all)) == 0 {
			break
		}
		loadRound(t, s, rng, st, all, 8, 0)
	}
	if n := len(st.pending(all)); n > 0 {
		t.Fatalf("%d deliveries never acknowledged", n)
	}
	if head := caughtUp(t, s); head != uint64(len(all)) {
		t.Fatalf("the log holds %d events for %d distinct deliveries: not exactly once", head, len(all))
	}
	checkREST(t, s, f, st.maxPos)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d kills; %d distinct deliveries (%d sends) each in the log once; %v so far", kills, len(all), st.attempts, time.Since(start).Round(time.Millisecond))

	// A fresh rebuild from the log gives the same read models.
	if err := s.stopGracefully(); err != nil {
		t.Fatal(err)
	}
	rebuilt := t.TempDir()
	copyFile(t, filepath.Join(dataDir, "events.db"), filepath.Join(rebuilt, "events.db"))
	s = startServer(t, dataDir, crashConfig(), crashEnv()...)
	fresh := startServer(t, rebuilt, crashConfig(), crashEnv()...)
	caughtUp(t, s)
	caughtUp(t, fresh)
	compareViews(t, s, fresh, f)
	t.Logf("rebuilt read models equal the crashed ones; %v in all", time.Since(start).Round(time.Millisecond))
}

// stopGracefully sends SIGTERM and waits for a clean exit.
func (s *server) stopGracefully() error {
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("receiptd did not exit within 30s of SIGINT")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("receiptd exited %d", code)
	}
	return nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// compareViews compares every receipt, balance and receipt list of f as
// the two servers answer them, decoded (the JSON's spacing is not stable).
func compareViews(t *testing.T, a, b *server, f *fixture) {
	t.Helper()
	var paths []string
	for _, r := range f.receipts {
		paths = append(paths, "/v1/receipts/"+r.id)
	}
	for u := range f.users {
		paths = append(paths, "/v1/users/"+u+"/balance", "/v1/users/"+u+"/receipts?page_size=500")
	}
	for _, p := range paths {
		var va, vb any
		ca, cb := a.getJSON(t, p, &va), b.getJSON(t, p, &vb)
		if ca != cb || !reflect.DeepEqual(va, vb) {
			t.Errorf("GET %s differs after a rebuild:\n crashed: %d %v\n rebuilt: %d %v", p, ca, va, cb, vb)
		}
	}
}
