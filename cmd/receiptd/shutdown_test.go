package main_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdownLosesNothingAcknowledged: SIGTERM while deliveries are
// in flight; the server exits cleanly, and after a restart every delivery
// that was answered 200 is in the read models.
func TestGracefulShutdownLosesNothingAcknowledged(t *testing.T) {
	dataDir := t.TempDir()
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	s := startServer(t, dataDir, reewildConfig(), env)

	var acked sync.Map // receipt id → true
	var sent, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("shutdown-%d-%d", w, i)
				body := fmt.Appendf(nil, `{"eventType":"receipt.extracted","data":{"userID":"u-shutdown","receiptID":%q,"subTotal":1.5}}`, id)
				req, _ := http.NewRequest(http.MethodPost, s.url("/webhooks/reewild"), bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Reewild-Signature", sign(body))
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					return // the server has stopped listening
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
					acked.Store(id, true)
				}
			}
		})
	}
	// Let load build up, then ask the server to stop while it runs.
	deadline := time.Now().Add(10 * time.Second)
	for ok.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("receiptd did not exit within 30s of SIGTERM")
	}
	close(stop)
	wg.Wait()
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("receiptd exited %d after SIGTERM", code)
	}
	t.Logf("%d deliveries sent, %d acknowledged before shutdown", sent.Load(), ok.Load())

	s2 := startServer(t, dataDir, reewildConfig(), env)
	missing := 0
	acked.Range(func(k, _ any) bool {
		var r restReceipt
		// No min_position: the restarted server's read models must already
		// hold, or quickly catch up to, everything acknowledged before.
		if code := pollReceipt(t, s2, k.(string), &r); code != http.StatusOK {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d acknowledged deliveries are missing after a graceful restart", missing)
	}
}

// pollReceipt GETs a receipt until it exists or 10 s pass.
func pollReceipt(t *testing.T, s *server, id string, into *restReceipt) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := s.getJSON(t, "/v1/receipts/"+id, into)
		if code == http.StatusOK || time.Now().After(deadline) {
			return code
		}
		time.Sleep(20 * time.Millisecond)
	}
}
