package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWalkthrough follows the README: the example config, every example
// payload sent with receiptctl, then read back with receiptctl and REST.
func TestWalkthrough(t *testing.T) {
	config := strings.ReplaceAll(mustRead(t, "../../examples/config.yaml"), "env:REEWILD_SECRET", "env:E2E_REEWILD_SECRET")
	s := startServer(t, t.TempDir(), config, "E2E_REEWILD_SECRET="+e2eSecret)

	payloads, err := filepath.Glob("../../examples/reewild/*.json")
	if err != nil || len(payloads) != 8 {
		t.Fatalf("examples/reewild holds %d payloads (%v), want one per event type", len(payloads), err)
	}
	ctl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(receiptctlBin, args...)
		cmd.Env = append(os.Environ(), "E2E_REEWILD_SECRET="+e2eSecret)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("receiptctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, p := range payloads {
		out := ctl("send", "--source", "reewild", "--secret", "env:E2E_REEWILD_SECRET", "--url", "http://"+s.httpAddr, p)
		if !strings.HasPrefix(out, "200 OK") {
			t.Fatalf("send %s: %s", p, out)
		}
	}
	// A wrong secret is refused, and receiptctl says so with a non-zero exit.
	bad := exec.Command(receiptctlBin, "send", "--source", "reewild", "--secret", "wrong", "--url", "http://"+s.httpAddr, payloads[0])
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Fatalf("send with a wrong secret: %v\n%s", err, out)
	}

	grpcArgs := []string{"--addr", s.grpcAddr}
	var receipt struct {
		Status string `json:"status"`
		Points string `json:"points"`
		UserID string `json:"userId"`
	}
	out := ctl(append(grpcArgs, "receipt", "get", "fb2cdc63-6d13-4176-89ae-7a424b69d7b5", "--min-position", "8")...)
	if err := json.Unmarshal([]byte(out), &receipt); err != nil || receipt.Status != "RECEIPT_STATUS_COMPLETED" || receipt.Points != "74.28" || receipt.UserID != "027KO2" {
		t.Fatalf("receipt get: %v\n%s", err, out)
	}
	var balance struct {
		DerivedPoints          string `json:"derivedPoints"`
		ReportedLifetimePoints string `json:"reportedLifetimePoints"`
		Reconciled             bool   `json:"reconciled"`
	}
	out = ctl(append(grpcArgs, "balance", "get", "027KO2")...)
	if err := json.Unmarshal([]byte(out), &balance); err != nil || balance.DerivedPoints != "74.28" || balance.ReportedLifetimePoints != "1656.54" || balance.Reconciled {
		t.Fatalf("balance get: %v\n%s", err, out)
	}
	if out := ctl(append(grpcArgs, "receipts", "list", "027KO2")...); !strings.Contains(out, "fb2cdc63-6d13-4176-89ae-7a424b69d7b5") {
		t.Fatalf("receipts list: %s", out)
	}
	// The failed receipt of the seed, over REST.
	var failed restReceipt
	if code := s.getJSON(t, "/v1/receipts/491d44e2-a2b7-4107-87db-4d5b566e6d2b", &failed); code != http.StatusOK || failed.Status != "RECEIPT_STATUS_FAILED" || failed.UserID != "07BVG7" {
		t.Fatalf("failed receipt: %d %+v", code, failed)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
