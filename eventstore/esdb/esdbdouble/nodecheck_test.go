package esdbdouble_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

// nodeCheckDir holds the Node check: package.json, its lockfile and
// check.js. node_modules is installed there by `npm ci` (CI does it).
const nodeCheckDir = "testdata/nodecheck"

// TestNodeClient runs testdata/nodecheck/check.js, which drives a double
// with the official KurrentDB Node client (@kurrent/kurrentdb-client, the
// version the lockfile pins): appends of JSON and binary events with each
// expected revision, stream and $all reads both ways, filtered $all
// subscriptions with checkpoints, caught-up and live events, and what the
// double does not implement failing with an error that names it. A second
// client, written by the server's authors, keeps the double to the protocol
// the real server speaks where the Go client does not look.
//
// Without node or the installed module the test skips, saying how to run
// it; under CI (CI set) it fails instead.
func TestNodeClient(t *testing.T) {
	// Read here, not only by node, so that go test's cache sees a change to
	// the script or to the pinned versions.
	for _, f := range []string{"check.js", "package.json", "package-lock.json"} {
		if _, err := os.ReadFile(filepath.Join(nodeCheckDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "no node binary on this machine (install Node.js 18 or later)")
	}
	module := filepath.Join(nodeCheckDir, "node_modules", "@kurrent", "kurrentdb-client", "package.json")
	if _, err := os.Stat(module); err != nil {
		unavailable(t, "the KurrentDB Node client is not installed: run `npm ci` in eventstore/esdb/esdbdouble/"+nodeCheckDir)
	}

	d := esdbdouble.New(esdbdouble.Options{})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	url := "kurrentdb://" + d.Addr() + "?tls=false"

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.js", url)
	cmd.Dir = nodeCheckDir
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("node check.js (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		var failed []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "FAIL - ") {
				failed = append(failed, strings.TrimPrefix(line, "FAIL - "))
			}
		}
		t.Fatalf("node check.js: %v; failed: %s", err, strings.Join(failed, "; "))
	}
}

// unavailable skips t, or fails it under CI, where the check must run.
func unavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so the Node client check must run)", why)
	}
	t.Skipf("%s; in CI this test fails instead", why)
}
