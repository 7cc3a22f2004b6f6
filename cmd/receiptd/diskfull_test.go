package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips the
// test where that is not allowed (not root, no mount(8), a container
// without CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func readyz(t *testing.T, s *server) int {
	t.Helper()
	resp, err := http.Get(s.url("/readyz"))
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDiskFull runs receiptd on a small filesystem that fills up under it:
// deliveries are then answered 503 with Retry-After, never 200; /readyz
// turns 503; when space is freed (an operator deletes a file) ingest and
// readiness come back by themselves, with no restart; and every delivery
// acknowledged before, during and after is in the read models, also after
// a restart on the same files.
func TestDiskFull(t *testing.T) {
	const fsSize = 12 << 20
	dir := mountTmpfs(t, fsSize)
	// Leave ~3 MiB for the log and the read models.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{1}, fsSize-3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	s := startServer(t, dataDir, reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret)
	if code := readyz(t, s); code != http.StatusOK {
		t.Fatalf("/readyz %d at start", code)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	pad := strings.Repeat("x", 2000)
	var acked []string
	deliver := func(i int) (int, http.Header) {
		body := fmt.Appendf(nil, `{"eventType":"receipt.extracted","data":{"userID":"u-full","receiptID":"full-%d","subTotal":1,"note":%q}}`, i, pad)
		req, _ := http.NewRequest(http.MethodPost, s.url("/webhooks/reewild"), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Reewild-Signature", sign(body))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("delivery %d answered after %v: past the providers' 5 s", i, d)
		}
		if resp.StatusCode == http.StatusOK {
			acked = append(acked, fmt.Sprintf("full-%d", i))
		}
		return resp.StatusCode, resp.Header
	}

	// Fill the disk.
	i, refused := 0, 0
	for ; refused < 5; i++ {
		if i > 5000 {
			t.Fatal("the filesystem never filled")
		}
		code, hdr := deliver(i)
		switch code {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			refused++
			if hdr.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		default:
			t.Fatalf("delivery %d on a full disk answered %d", i, code)
		}
	}
	t.Logf("%d deliveries acknowledged before the disk filled", len(acked))
	if code := readyz(t, s); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d with a full disk, want 503", code)
	}

	// Free space; the next deliveries are recorded and readiness returns.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := deliver(i)
		i++
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest did not recover within 20s of freeing space: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 20 {
		if code, _ := deliver(i); code != http.StatusOK {
			t.Fatalf("delivery after recovery: %d", code)
		}
		i++
	}
	if code := readyz(t, s); code != http.StatusOK {
		t.Fatalf("/readyz %d after recovery", code)
	}
	checkAcked := func(srv *server) {
		t.Helper()
		head := caughtUp(t, srv)
		if head != uint64(len(acked)) {
			t.Errorf("the log holds %d events, %d deliveries were acknowledged", head, len(acked))
		}
		for _, id := range acked {
			var r restReceipt
			if code := srv.getJSON(t, "/v1/receipts/"+id, &r); code != http.StatusOK {
				t.Errorf("acknowledged receipt %s: %d", id, code)
			}
		}
	}
	checkAcked(s)
	// And after a crash and restart on the same files.
	s.kill()
	checkAcked(startServer(t, dataDir, reewildConfig(), "E2E_REEWILD_SECRET="+e2eSecret))
}
