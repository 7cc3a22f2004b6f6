package main_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// runCLI runs the receiptd binary with args and returns its stdout, stderr
// and exit status.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(receiptdBin, args...)
	cmd.Env = append(os.Environ(), "E2E_REEWILD_SECRET="+e2eSecret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("receiptd %s: %v", strings.Join(args, " "), err)
	return "", "", -1
}

// operatorAccess is an access section with one API key (e2eOperatorKey)
// holding read:all and admin: the online audit and rebuild are admin RPCs,
// which need such a key even from loopback (issue 12, item 9).
func operatorAccess() string {
	return fmt.Sprintf("access:\n  api_keys:\n    - {name: oncall, sha256: %q, scopes: [read:all, admin]}\n", sha256Hex(e2eOperatorKey))
}

// startOperatorServer starts receiptd on the Reewild config with
// operatorAccess; getJSON sends the operator key.
func startOperatorServer(t *testing.T, dataDir string) *server {
	t.Helper()
	s := startServer(t, dataDir, reewildConfig()+operatorAccess(), "E2E_REEWILD_SECRET="+e2eSecret)
	s.auth = "Bearer " + e2eOperatorKey
	return s
}

// writeConfig writes the Reewild test config for the offline commands.
func writeConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(reewildConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// stopServer stops s with SIGTERM and waits for it to exit cleanly.
func stopServer(t *testing.T, s *server) {
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

// corruptReceipt changes a receipt's stored record in the read-model
// file of a stopped server, behind receiptd's back: its last position,
// which only its view shows. (The record starts with a format byte and the
// uvarints of its source's length, its first and its last position: see
// projections/records.go.)
func corruptReceipt(t *testing.T, dataDir, receiptID string) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dataDir, "views.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("receipt_state"))
		k := []byte("reewild\x00" + receiptID)
		v := b.Get(k)
		if len(v) < 4 {
			return fmt.Errorf("receipt %s: record %x", receiptID, v)
		}
		i := 1
		for range 2 {
			_, n := binary.Uvarint(v[i:])
			i += n
		}
		_, n := binary.Uvarint(v[i:])
		rec := binary.AppendUvarint(append([]byte(nil), v[:i]...), 1_000_000)
		return b.Put(k, append(rec, v[i+n:]...))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// auditJSON is the part of `receiptd audit --json` the tests read.
type auditJSON struct {
	Clean    bool `json:"clean"`
	Position struct {
		Commit uint64 `json:"commit"`
	} `json:"position"`
	Models []struct {
		Name        string `json:"name"`
		Matches     bool   `json:"matches"`
		Differences int    `json:"differences"`
		First       *struct {
			Bucket string `json:"bucket"`
			Key    string `json:"key"`
			Kind   string `json:"kind"`
		} `json:"first"`
	} `json:"models"`
	UnreconciledTotal int `json:"unreconciled_total"`
	Unreconciled      []struct {
		UserID string `json:"user_id"`
	} `json:"unreconciled"`
	AnomaliesTotal   int `json:"anomalies_total"`
	QuarantinedTotal int `json:"quarantined_total"`
}

func parseAudit(t *testing.T, out string) auditJSON {
	t.Helper()
	var a auditJSON
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("audit --json: %v in %s", err, out)
	}
	return a
}

// sendFixture posts a fixture's deliveries and one that is quarantined,
// and returns the highest position answered.
func sendFixture(t *testing.T, s *server, seed uint64) (*fixture, uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	f := newFixture(rng, 30, 5)
	maxPos := sendAll(t, s, rng, f.deliveries, 8)
	unknown := []byte(`{"eventType":"receipt.teleported","data":{"receiptID":"x"}}`)
	if code, pos := s.post(t, "reewild", unknown, sign(unknown), "application/json"); code != http.StatusOK {
		t.Fatalf("unknown event type: %d", code)
	} else {
		maxPos = max(maxPos, pos)
	}
	return f, maxPos
}

// TestAuditReportsCorruptionAndRebuildRepairsIt: a read model corrupted
// behind the server's back is what `receiptd audit` reports, with a
// non-zero exit; after `receiptd rebuild` the audit is clean and the
// server serves the right numbers again.
func TestAuditReportsCorruptionAndRebuildRepairsIt(t *testing.T) {
	dataDir := t.TempDir()
	cfg := writeConfig(t)
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	s := startOperatorServer(t, dataDir)
	f, maxPos := sendFixture(t, s, 21)
	checkREST(t, s, f, maxPos)

	// While the server runs, the offline path is refused and points to
	// the online one, which works.
	_, stderr, code := runCLI(t, "audit", "--data-dir", dataDir, "--config", cfg)
	if code != 2 || !strings.Contains(stderr, "running receiptd") || !strings.Contains(stderr, "--server") || !strings.Contains(stderr, "GET /v1/audit") {
		t.Fatalf("offline audit of a running server's data: exit %d\n%s", code, stderr)
	}
	_, stderr, code = runCLI(t, "rebuild", "--data-dir", dataDir, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "POST /v1/rebuild") {
		t.Fatalf("offline rebuild of a running server's data: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "audit", "--server", s.grpcAddr); code != 2 || !strings.Contains(stderr, "PermissionDenied") && !strings.Contains(stderr, "Unauthenticated") {
		t.Fatalf("online audit without an admin key: exit %d\n%s", code, stderr)
	}
	out, stderr, code := runCLI(t, "audit", "--server", s.grpcAddr, "--api-key", e2eOperatorKey)
	if code != 0 || !strings.Contains(out, "clean: every read model matches") {
		t.Fatalf("online audit: exit %d\n%s%s", code, out, stderr)
	}
	stopServer(t, s)

	// Corrupt one receipt's view.
	victim := f.receipts[3].id
	corruptReceipt(t, dataDir, victim)

	out, stderr, code = runCLI(t, "audit", "--data-dir", dataDir, "--config", cfg)
	if code != 1 {
		t.Fatalf("audit of a corrupted read model: exit %d, want 1\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"receipts", "NO", "reewild/" + victim, "value differs", "NOT CLEAN", "u-unreconciled", "quarantined deliveries: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the audit's table lacks %q:\n%s", want, out)
		}
	}
	t.Logf("receiptd audit (corrupted):\n%s", out)
	out, _, code = runCLI(t, "audit", "--data-dir", dataDir, "--config", cfg, "--json")
	a := parseAudit(t, out)
	if code != 1 || a.Clean || a.Position.Commit != maxPos {
		t.Fatalf("audit --json: exit %d, clean %v at %d (want %d)", code, a.Clean, a.Position.Commit, maxPos)
	}
	for _, m := range a.Models {
		switch {
		case m.Name == "receipts" && (m.Matches || m.Differences != 1 || m.First == nil || m.First.Key != "reewild/"+victim || m.First.Kind != "value_differs"):
			t.Errorf("receipts check %+v", m)
		case m.Name != "receipts" && !m.Matches:
			t.Errorf("read model %s differs, but only receipts was corrupted", m.Name)
		}
	}
	if a.QuarantinedTotal != 1 || a.UnreconciledTotal != 1 || a.Unreconciled[0].UserID != "u-unreconciled" {
		t.Errorf("findings: %+v", a)
	}

	out, stderr, code = runCLI(t, "rebuild", "--data-dir", dataDir, "--config", cfg)
	if code != 0 || !strings.Contains(out, "rebuilt every read model") {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("receiptd rebuild:\n%s", out)
	out, stderr, code = runCLI(t, "audit", "--data-dir", dataDir, "--config", cfg)
	if code != 0 || !strings.Contains(out, "clean") {
		t.Fatalf("audit after the rebuild: exit %d\n%s%s", code, out, stderr)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dataDir, "views.db.*")); len(leftovers) != 0 {
		t.Errorf("files left beside the read models: %v", leftovers)
	}

	// The server serves the rebuilt read models.
	s2 := startServer(t, dataDir, reewildConfig(), env)
	checkREST(t, s2, f, maxPos)
}

// TestOnlineAuditAndRebuild: a server answering from a corrupted read
// model is audited and rebuilt through its API while deliveries and
// queries go on; it keeps answering throughout, and ends clean.
func TestOnlineAuditAndRebuild(t *testing.T) {
	dataDir := t.TempDir()
	// The readers below ask as fast as they can for as long as the rebuild
	// takes: with the API key's default rate limit (100/s) a rebuild slowed
	// by a busy machine got them 429s, which say nothing of the rebuild.
	start := func() *server {
		s := startServer(t, dataDir, reewildConfig()+operatorAccess()+"  rate_limits: {per_api_key: {per_second: 0}}\n", "E2E_REEWILD_SECRET="+e2eSecret)
		s.auth = "Bearer " + e2eOperatorKey
		return s
	}
	s := start()
	f, maxPos := sendFixture(t, s, 5)
	checkREST(t, s, f, maxPos)
	stopServer(t, s)
	victim := f.receipts[0].id
	corruptReceipt(t, dataDir, victim)
	s = start()

	// GET /v1/audit reports it.
	var rep struct {
		Clean  bool `json:"clean"`
		Models []struct {
			Name            string `json:"name"`
			Matches         bool   `json:"matches"`
			FirstDifference *struct {
				Key string `json:"key"`
			} `json:"firstDifference"`
		} `json:"models"`
	}
	if code := s.getJSON(t, "/v1/audit?source=reewild", &rep); code != http.StatusOK {
		t.Fatalf("GET /v1/audit: %d", code)
	}
	if rep.Clean || rep.Models[0].Name != "receipts" || rep.Models[0].Matches || rep.Models[0].FirstDifference.Key != "reewild/"+victim {
		t.Fatalf("GET /v1/audit = %+v", rep)
	}
	if _, _, code := runCLI(t, "audit", "--server", s.grpcAddr, "--api-key", e2eOperatorKey); code != 1 {
		t.Fatalf("online audit of a corrupted read model: exit %d, want 1", code)
	}

	// Rebuild online while deliveries arrive and queries are answered.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErrs, extra sync.Map
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if w == 0 { // a writer
					id := fmt.Sprintf("during-rebuild-%d", i)
					body := fmt.Appendf(nil, `{"eventType":"receipt.extracted","data":{"userID":"u-live","receiptID":%q}}`, id)
					if code, pos := s.post(t, "reewild", body, sign(body), "application/json"); code == http.StatusOK {
						extra.Store(id, pos)
					}
					continue
				}
				r := f.receipts[(w*7+i)%len(f.receipts)]
				if code := s.getJSON(t, "/v1/receipts/"+r.id, nil); code != http.StatusOK {
					readErrs.Store(r.id, code)
				}
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, s.url("/v1/rebuild"), strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", s.auth)
	resp, err := http.DefaultClient.Do(req)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt struct {
		Position string `json:"position"`
		Events   string `json:"events"`
		Models   []struct {
			Name string `json:"name"`
		} `json:"models"`
	}
	json.NewDecoder(resp.Body).Decode(&rebuilt)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(rebuilt.Models) != 7 || rebuilt.Events == "0" {
		t.Fatalf("POST /v1/rebuild: %d %+v", resp.StatusCode, rebuilt)
	}
	readErrs.Range(func(k, v any) bool {
		t.Errorf("GET receipt %s answered %v during the rebuild", k, v)
		return true
	})

	// Clean, and every delivery made during the rebuild is served.
	out, stderr, code := runCLI(t, "audit", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--json")
	if a := parseAudit(t, out); code != 0 || !a.Clean {
		t.Fatalf("online audit after the rebuild: exit %d %+v\n%s", code, a, stderr)
	}
	checkREST(t, s, f, maxPos)
	n := 0
	extra.Range(func(k, v any) bool {
		n++
		var r restReceipt
		if code := s.getJSON(t, fmt.Sprintf("/v1/receipts/%s?min_position=%d", k, v), &r); code != http.StatusOK || r.UserID != "u-live" {
			t.Errorf("receipt %s delivered during the rebuild: %d %+v", k, code, r)
		}
		return true
	})
	t.Logf("%d deliveries during the online rebuild", n)
	if leftovers, _ := filepath.Glob(filepath.Join(dataDir, "views.db.*")); len(leftovers) != 0 {
		t.Errorf("files left beside the read models: %v", leftovers)
	}
	// Another rebuild of one read model, through the CLI.
	out, stderr, code = runCLI(t, "rebuild", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--projection", "balances")
	if code != 0 || !strings.Contains(out, "rebuilt read model balances") {
		t.Fatalf("online rebuild of balances: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := runCLI(t, "rebuild", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--projection", "nope"); code != 1 || !strings.Contains(stderr, "InvalidArgument") {
		t.Fatalf("rebuild of an unknown projection: exit %d\n%s", code, stderr)
	}
}
