package main_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/receiptd/receiptd/eventcodec"
	"github.com/receiptd/receiptd/eventstore"
	"github.com/receiptd/receiptd/eventstore/bolt"
)

// backupJSON is `receiptd backup --json`.
type backupJSON struct {
	File   string `json:"file"`
	Head   uint64 `json:"head"`
	Bytes  uint64 `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// readLog reads every event of the closed store file at path.
func readLog(t *testing.T, path string) []eventstore.RecordedEvent {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var all []eventstore.RecordedEvent
	after := eventstore.Start
	for {
		batch, err := s.ReadAll(context.Background(), after, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return all
		}
		all = append(all, batch...)
		after = batch[len(batch)-1].Position
	}
}

// TestBackupDuringIngestAndRestore: an online backup taken while signed
// deliveries keep arriving holds every delivery acknowledged before it
// began; restored into an empty data directory, its log is exactly the live
// log's first events up to its head, the read models are rebuilt and the
// audit is clean; the server answered every delivery 200 throughout.
func TestBackupDuringIngestAndRestore(t *testing.T) {
	dataDir := t.TempDir()
	s := startOperatorServer(t, dataDir)
	rng := rand.New(rand.NewPCG(16, 17))
	f := newFixture(rng, 40, 6)
	bodies := append([][]byte(nil), f.deliveries...)
	rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })

	var (
		mu    sync.Mutex
		acked [][]byte // in the order their 200s arrived
	)
	deliver := func(b []byte) {
		code, _ := s.post(t, "reewild", b, sign(b), "application/json")
		if code != http.StatusOK {
			t.Errorf("delivery answered %d during the backup: %s", code, b)
			return
		}
		mu.Lock()
		acked = append(acked, b)
		mu.Unlock()
	}
	// A third before the backup; the rest from 6 writers, half of them
	// held until the backup process has started, so they arrive while it
	// runs.
	first := len(bodies) / 3
	for _, b := range bodies[:first] {
		deliver(b)
	}
	started := make(chan struct{})
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for b := range work {
				deliver(b)
			}
		})
	}
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		rest := bodies[first:]
		for i, b := range rest {
			if i == len(rest)/3 {
				<-started
			}
			work <- b
		}
		close(work)
	}()

	file := filepath.Join(t.TempDir(), "receiptd.backup")
	// What was acknowledged before the backup began.
	mu.Lock()
	before := append([][]byte(nil), acked...)
	mu.Unlock()
	cmd := exec.Command(receiptdBin, "backup", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--to", file, "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	close(started)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("receiptd backup --server: %v\n%s", err, stderr.String())
	}
	<-feedDone
	wg.Wait()
	var bk backupJSON
	if err := json.Unmarshal(stdout.Bytes(), &bk); err != nil {
		t.Fatalf("backup --json: %v in %s", err, stdout.String())
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(fi.Size()) != 80+bk.Bytes || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file of %d bytes, mode %v; want the 80-byte header and %d bytes of log, 0600", fi.Size(), fi.Mode().Perm(), bk.Bytes)
	}
	if leftovers, _ := filepath.Glob(file + ".partial-*"); len(leftovers) > 0 {
		t.Errorf("partial files left: %v", leftovers)
	}
	t.Logf("backup: %d of %d deliveries acknowledged before it began, log head %d, %d bytes", len(before), len(bodies), bk.Head, bk.Bytes)

	// Without the admin key, no backup.
	if _, stderr, code := runCLI(t, "backup", "--server", s.grpcAddr, "--to", filepath.Join(t.TempDir(), "x")); code != 1 || !strings.Contains(stderr, "PermissionDenied") && !strings.Contains(stderr, "Unauthenticated") {
		t.Errorf("backup without an admin key: exit %d\n%s", code, stderr)
	}
	// Offline, while the server holds the store: refused, pointing to --server.
	if _, stderr, code := runCLI(t, "backup", "--data-dir", dataDir, "--to", filepath.Join(t.TempDir(), "x")); code != 1 || !strings.Contains(stderr, "running receiptd") || !strings.Contains(stderr, "--server") {
		t.Errorf("offline backup of a running server's store: exit %d\n%s", code, stderr)
	}
	stopServer(t, s)

	restored := t.TempDir()
	out, errOut, code := runCLI(t, "restore", "--from", file, "--data-dir", restored)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "audit", "--data-dir", restored, "--json")
	if code != 0 || !parseAudit(t, out).Clean {
		t.Fatalf("audit of the restored data dir: exit %d\n%s%s", code, out, errOut)
	}

	// The restored log is the live log's prefix up to the backup's head...
	live, back := readLog(t, filepath.Join(dataDir, "events.db")), readLog(t, filepath.Join(restored, "events.db"))
	if uint64(len(back)) != bk.Head || len(live) < len(back) {
		t.Fatalf("restored log of %d events (head %d), live log of %d", len(back), bk.Head, len(live))
	}
	for i := range back {
		if !reflect.DeepEqual(back[i], live[i]) {
			t.Fatalf("event %d of the restored log differs from the live one", i+1)
		}
	}
	// ... and holds every delivery acknowledged before the backup began.
	inLog := map[string]bool{}
	for _, e := range back {
		raw, err := eventcodec.RawBody(e.Event)
		if err != nil {
			t.Fatalf("%s@%d: %v", e.Stream, e.Revision, err)
		}
		inLog[string(raw)] = true
	}
	for _, b := range before {
		if !inLog[string(b)] {
			t.Errorf("a delivery acknowledged before the backup began is not in it: %s", b)
		}
	}
	if len(live) == len(back) {
		t.Logf("no delivery was appended while the backup ran (it was quick): the prefix is the whole log")
	}
}

// TestRestoreRefusesDamagedBackups: a truncated backup, one with a byte of
// its log changed, one whose header's head was changed, and a file that is
// no backup are refused with a clear error, and nothing is written to the
// data directory. A data directory that is not empty needs --force, which
// replaces its log and read models; the audit is then clean. An offline
// backup of a stopped server restores as well.
func TestRestoreRefusesDamagedBackups(t *testing.T) {
	dataDir := t.TempDir()
	s := startOperatorServer(t, dataDir)
	sendFixture(t, s, 31)
	stopServer(t, s)
	file := filepath.Join(t.TempDir(), "offline.backup")
	out, errOut, code := runCLI(t, "backup", "--data-dir", dataDir, "--to", file)
	if code != 0 || !strings.Contains(out, "backed up the log") {
		t.Fatalf("offline backup: exit %d\n%s%s", code, out, errOut)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(good)
	flipped[80+len(good[80:])/2] ^= 0x01
	headChanged := bytes.Clone(good)
	binary.BigEndian.PutUint64(headChanged[24:], binary.BigEndian.Uint64(good[24:])-1)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated", good[:len(good)-4096], "truncated"},
		{"truncated-header", good[:50], "truncated"},
		{"altered", flipped, "damaged or was altered"},
		{"head-changed", headChanged, "damaged or was altered"},
		{"not-a-backup", []byte("SQLite format 3\x00 and more bytes than a header of eighty bytes holds, surely enough"), "not a receiptd backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "data")
			out, errOut, code := runCLI(t, "restore", "--from", write(tc.name, tc.b), "--data-dir", target)
			t.Logf("refused: %s", strings.TrimSpace(errOut))
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("restore of a %s backup: exit %d, want 1 and %q\n%s%s", tc.name, code, tc.want, out, errOut)
			}
			entries, _ := os.ReadDir(target)
			if len(entries) > 0 {
				t.Errorf("a refused restore left %d files in the data dir (%s)", len(entries), entries[0].Name())
			}
		})
	}

	// A non-empty data dir: refused without --force, replaced with it.
	other := t.TempDir()
	s2 := startOperatorServer(t, other)
	sendFixture(t, s2, 99)
	if _, errOut, code := runCLI(t, "restore", "--from", file, "--data-dir", other, "--force"); code != 1 || !strings.Contains(errOut, "running receiptd") {
		t.Errorf("restore --force under a running server: exit %d\n%s", code, errOut)
	}
	stopServer(t, s2)
	if _, errOut, code := runCLI(t, "restore", "--from", file, "--data-dir", other); code != 1 || !strings.Contains(errOut, "not empty") || !strings.Contains(errOut, "--force") {
		t.Errorf("restore into a non-empty data dir: exit %d\n%s", code, errOut)
	}
	out, errOut, code = runCLI(t, "restore", "--from", file, "--data-dir", other, "--force")
	if code != 0 || !strings.Contains(out, "replaced (--force): views.db") {
		t.Fatalf("restore --force: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "audit", "--data-dir", other, "--json")
	if code != 0 || !parseAudit(t, out).Clean {
		t.Fatalf("audit after restore --force: exit %d\n%s%s", code, out, errOut)
	}
	if a, b := readLog(t, filepath.Join(dataDir, "events.db")), readLog(t, filepath.Join(other, "events.db")); !reflect.DeepEqual(a, b) {
		t.Errorf("the restored log (%d events) is not the backed-up one (%d)", len(b), len(a))
	}
}

// TestReadModelsAheadOfRestoredLogAreRebuilt: a log put back to an earlier
// backup under read models that went on (as a restored KurrentDB cluster
// leaves a query node's views.db) is detected when the server starts: the
// read models are rebuilt from the log before anything is served, so what
// the log no longer holds is gone from the answers, and the audit is clean.
func TestReadModelsAheadOfRestoredLogAreRebuilt(t *testing.T) {
	dataDir := t.TempDir()
	s := startOperatorServer(t, dataDir)
	f, maxPos := sendFixture(t, s, 41)
	checkREST(t, s, f, maxPos)
	stopServer(t, s)
	file := filepath.Join(t.TempDir(), "then.backup")
	if out, errOut, code := runCLI(t, "backup", "--data-dir", dataDir, "--to", file, "--json"); code != 0 {
		t.Fatalf("offline backup: exit %d\n%s%s", code, out, errOut)
	}

	// Later deliveries, of receipts and a user the backup does not hold.
	s = startOperatorServer(t, dataDir)
	var later uint64
	for i := range 5 {
		b := fmt.Appendf(nil, `{"eventType":"receipt.extracted","data":{"userID":"later-user","receiptID":"later-%d","subTotal":6.33}}`, i)
		code, pos := s.post(t, "reewild", b, sign(b), "application/json")
		if code != http.StatusOK {
			t.Fatalf("later delivery: %d", code)
		}
		later = max(later, pos)
	}
	if code := s.getJSON(t, fmt.Sprintf("/v1/receipts/later-0?min_position=%d", later), nil); code != http.StatusOK {
		t.Fatalf("later receipt before the restore: %d", code)
	}
	stopServer(t, s)

	// The log goes back to the backup, the read models stay where they were.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "events.db"), b[80:], 0o600); err != nil {
		t.Fatal(err)
	}
	head := binary.BigEndian.Uint64(b[24:])

	s = startOperatorServer(t, dataDir)
	if !strings.Contains(s.logs.String(), "the read models are ahead of the log") {
		t.Errorf("the server did not say it found the read models ahead of the log:\n%s", s.logs)
	}
	if cp := caughtUp(t, s); cp != head {
		t.Errorf("read models at %d after the start, the log's head is %d", cp, head)
	}
	for i := range 5 {
		if code := s.getJSON(t, fmt.Sprintf("/v1/receipts/later-%d", i), nil); code != http.StatusNotFound {
			t.Errorf("receipt later-%d, which the log no longer holds: %d, want 404", i, code)
		}
	}
	if code := s.getJSON(t, "/v1/users/later-user/balance", nil); code != http.StatusNotFound {
		t.Errorf("user later-user, whom the log no longer holds: %d, want 404", code)
	}
	checkREST(t, s, f, 0)
	if out, errOut, code := runCLI(t, "audit", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--json"); code != 0 || !parseAudit(t, out).Clean {
		t.Errorf("online audit after the start: exit %d\n%s%s", code, out, errOut)
	}
}

// TestBackupOfKurrentDBLogIsRefused: a server whose log is in KurrentDB
// answers the Backup RPC FAILED_PRECONDITION (its cluster has its own
// backup), and the offline backup and restore refuse a kurrentdb config.
func TestBackupOfKurrentDBLogIsRefused(t *testing.T) {
	d := startKurrentDB(t)
	cfg := kurrentdbConfig(t, d.URL()) + operatorAccess()
	s := startServer(t, t.TempDir(), cfg, "E2E_REEWILD_SECRET="+e2eSecret)
	_, stderr, code := runCLI(t, "backup", "--server", s.grpcAddr, "--api-key", e2eOperatorKey, "--to", filepath.Join(t.TempDir(), "x"))
	if code != 1 || !strings.Contains(stderr, "FailedPrecondition") || !strings.Contains(stderr, "not the embedded store") {
		t.Errorf("online backup of a KurrentDB log: exit %d\n%s", code, stderr)
	}
	cfgPath := filepath.Join(t.TempDir(), "kurrentdb.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "backup", "--config", cfgPath, "--data-dir", t.TempDir(), "--to", filepath.Join(t.TempDir(), "x")); code != 1 || !strings.Contains(stderr, "cluster's own backup") {
		t.Errorf("offline backup with a kurrentdb config: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "restore", "--config", cfgPath, "--data-dir", t.TempDir(), "--from", filepath.Join(t.TempDir(), "x")); code != 1 || !strings.Contains(stderr, "cluster's own tools") {
		t.Errorf("restore with a kurrentdb config: exit %d\n%s", code, stderr)
	}
}
