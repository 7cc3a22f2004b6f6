package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// stoppedCheckpoint returns the checkpoint the server logged when it
// stopped ("stopped" line), or fails.
func stoppedCheckpoint(t *testing.T, s *server) uint64 {
	t.Helper()
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var e struct {
			Msg        string `json:"msg"`
			Checkpoint string `json:"checkpoint"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "stopped" {
			n, err := strconv.ParseUint(e.Checkpoint, 10, 64)
			if err != nil {
				t.Fatalf("stopped line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no \"stopped\" line in the server's log:\n%s", s.logs)
	return 0
}

func sigterm(t *testing.T, s *server) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("receiptd did not exit within 30s of SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("receiptd exited %d after SIGTERM", code)
	}
}

// TestRestartResumesFromCheckpoint: SIGTERM under load (receipt stages and
// point credits), then a restart. The restarted server's projection starts
// from the checkpoint the stopped one logged (never below it, as the
// /metrics gauge shows from the first scrape), and applies no event twice:
// once the providers' retries are in, the log holds exactly one event per
// distinct delivery and the balance is exact — credits are not idempotent
// in the read model, so one applied twice would show. A second graceful
// restart with no traffic in between resumes exactly at the head.
func TestRestartResumesFromCheckpoint(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, crashConfig(), crashEnv()...)

	const user = "u-restart"
	type delivery struct {
		path, sig string
		body      []byte
		credit    bool
	}
	var (
		mu      sync.Mutex
		all     []*delivery
		acked   = map[*delivery]bool{}
		ok      atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		counter atomic.Int64
	)
	next := func() *delivery {
		i := counter.Add(1)
		var d *delivery
		if i%3 == 0 {
			body := fmt.Appendf(nil, `{"id":"we_r%d","type":"balance.credit_points_issued","data":{"user":{"id":%q},"transaction":{"id":"tx_r%d","amount":1.25}}}`, i, user, i)
			d = &delivery{path: "/webhooks/reward/" + rewardToken, body: body, credit: true}
		} else {
			body := fmt.Appendf(nil, `{"eventType":"receipt.extracted","data":{"userID":%q,"receiptID":"restart-%d","subTotal":1.5}}`, user, i)
			d = &delivery{path: "/webhooks/reewild", body: body, sig: sign(body)}
		}
		mu.Lock()
		all = append(all, d)
		mu.Unlock()
		return d
	}
	send := func(client *http.Client, srv *server, d *delivery) int {
		code, _ := postOnce(client, srv, &crashDelivery{path: d.path, signature: d.sig, body: d.body})
		if code == http.StatusOK {
			mu.Lock()
			acked[d] = true
			mu.Unlock()
		}
		return code
	}
	for range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if send(client, s, next()) == 0 {
					return // the server stopped listening
				}
				ok.Add(1)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for ok.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	sigterm(t, s)
	close(stop)
	wg.Wait()
	c1 := stoppedCheckpoint(t, s)

	s2 := startServer(t, dataDir, crashConfig(), crashEnv()...)
	first := uint64(scrape(t, s2, "receiptd_projection_checkpoint")["receiptd_projection_checkpoint"])
	if first < c1 {
		t.Fatalf("the restarted projection is at %d, below the checkpoint %d it stopped at: it did not resume from it", first, c1)
	}
	head := caughtUp(t, s2)
	mu.Lock()
	nAcked, nSent := len(acked), len(all)
	mu.Unlock()
	if head < c1 || head < uint64(nAcked) || head > uint64(nSent) {
		t.Fatalf("stopped at %d, head %d, %d acknowledged, %d sent", c1, head, nAcked, nSent)
	}
	t.Logf("stopped at checkpoint %d; restarted at %d; head %d; %d of %d deliveries acknowledged", c1, first, head, nAcked, nSent)

	// The providers retry what was not acknowledged.
	client := &http.Client{Timeout: 10 * time.Second}
	for _, d := range all {
		if !acked[d] {
			if code := send(client, s2, d); code != http.StatusOK {
				t.Fatalf("retry answered %d", code)
			}
		}
	}
	head = caughtUp(t, s2)
	if head != uint64(len(all)) {
		t.Fatalf("the log holds %d events for %d distinct deliveries", head, len(all))
	}
	receipts, credited := 0, decimal.Zero
	for _, d := range all {
		if d.credit {
			credited = credited.Add(decimal.RequireFromString("1.25"))
		} else {
			receipts++
		}
	}
	checkBalance := func(srv *server) {
		t.Helper()
		var b restBalance
		if code := srv.getJSON(t, "/v1/users/"+user+"/balance", &b); code != http.StatusOK {
			t.Fatalf("balance: %d", code)
		}
		if b.ReceiptsInProgress != receipts {
			t.Errorf("receiptsInProgress %d, want %d", b.ReceiptsInProgress, receipts)
		}
		decEq(t, "derivedPoints (credits only)", b.DerivedPoints, credited)
	}
	checkBalance(s2)

	// A second graceful restart, no traffic in between: the projection
	// stops at the head and resumes exactly there.
	sigterm(t, s2)
	if c := stoppedCheckpoint(t, s2); c != head {
		t.Fatalf("stopped at %d, head %d", c, head)
	}
	s3 := startServer(t, dataDir, crashConfig(), crashEnv()...)
	if got := uint64(scrape(t, s3, "receiptd_projection_checkpoint")["receiptd_projection_checkpoint"]); got != head {
		t.Fatalf("restarted at checkpoint %d, want %d", got, head)
	}
	if caughtUp(t, s3) != head {
		t.Fatal("the head moved without traffic")
	}
	checkBalance(s3)
}
