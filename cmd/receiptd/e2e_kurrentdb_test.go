package main_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receiptd/receiptd/eventstore/esdb/esdbdouble"
)

// These tests run the real receiptd binary with store: {kind: kurrentdb}
// against the in-process double of the KurrentDB Streams API (see
// eventstore/esdb/esdbdouble), served by this test process on loopback.

// startKurrentDB serves a fresh double for the test.
func startKurrentDB(t *testing.T) *esdbdouble.StreamsDouble {
	t.Helper()
	d := esdbdouble.New(esdbdouble.Options{})
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// kurrentdbConfig is reewildConfig with the store switched to the double.
func kurrentdbConfig(t *testing.T, url string) string {
	t.Helper()
	const embedded = "store: {kind: embedded}"
	cfg := reewildConfig()
	if !strings.Contains(cfg, embedded) {
		t.Fatalf("reewildConfig() no longer holds %q: update kurrentdbConfig", embedded)
	}
	return strings.Replace(cfg, embedded, fmt.Sprintf("store: {kind: kurrentdb, url: %q}", url), 1)
}

// awaitViews polls a receipt with min_position until the server's read
// models have reached minPos (a query waits for it only briefly), or fails
// the test after 30 s.
func awaitViews(t *testing.T, s *server, receiptID string, minPos uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := s.getJSON(t, fmt.Sprintf("/v1/receipts/%s?min_position=%d", receiptID, minPos), nil)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the read models of %s did not reach position %d within 30s (last answer %d)", s.httpAddr, minPos, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEndToEndKurrentDBDouble is TestEndToEnd with the log in KurrentDB: the same
// deliveries, duplicates and checks, and a kill and restart of receiptd
// against the same server.
func TestEndToEndKurrentDBDouble(t *testing.T) {
	d := startKurrentDB(t)
	f := endToEndKurrentDB(t, d.URL())
	// Each distinct delivery is one event, however often it was sent.
	if distinct, held := countDistinct(f.deliveries), countHeld(d, f); held != distinct {
		t.Errorf("the server holds %d events for %d distinct deliveries", held, distinct)
	}
}

// TestEndToEndKurrentDBServer runs the same against the real KurrentDB
// server that RECEIPTD_KURRENTDB_URL names, if any. The fixture's ids are
// fixed, so a second run against the same server re-sends deliveries it
// already holds: all duplicates, and the same views.
func TestEndToEndKurrentDBServer(t *testing.T) {
	url := os.Getenv("RECEIPTD_KURRENTDB_URL")
	if url == "" {
		t.Skip("RECEIPTD_KURRENTDB_URL not set: no KurrentDB server on this machine; TestEndToEndKurrentDBDouble runs the same against the in-process double")
	}
	endToEndKurrentDB(t, url)
}

// endToEndKurrentDB runs TestEndToEnd's deliveries and checks against the
// KurrentDB at url, with a kill and restart, and returns the fixture.
func endToEndKurrentDB(t *testing.T, url string) *fixture {
	cfg := kurrentdbConfig(t, url)
	dataDir := t.TempDir()
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	s := startServer(t, dataDir, cfg, env)
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

	// Kill without a clean shutdown, restart on the same data dir and the
	// same server, check again.
	s.kill()
	s2 := startServer(t, dataDir, cfg, env)
	checkREST(t, s2, f, maxPos)
	checkGRPC(t, s2, f, maxPos)
	sendAll(t, s2, rng, f.deliveries, 8)
	checkREST(t, s2, f, maxPos)

	// The log is the server's: nothing of it under the data dir.
	if _, err := os.Stat(filepath.Join(dataDir, "events.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("events.db under the data dir with store kind kurrentdb: %v", err)
	}
	return f
}

func countDistinct(bodies [][]byte) int {
	seen := map[string]bool{}
	for _, b := range bodies {
		seen[string(b)] = true
	}
	return len(seen)
}

// TestKurrentDBDoubleSharedByTwoServers: two receiptd processes, each with its own
// data dir, ingest at once into one server, with deliveries reaching both
// (duplicates across processes); both serve the same views, and so does a
// third started afterwards on an empty data dir.
func TestKurrentDBDoubleSharedByTwoServers(t *testing.T) {
	d := startKurrentDB(t)
	cfg := kurrentdbConfig(t, d.URL())
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	a := startServer(t, t.TempDir(), cfg, env)
	b := startServer(t, t.TempDir(), cfg, env)
	f := newFixture(rand.New(rand.NewPCG(4, 5)), 40, 6)

	n := len(f.deliveries)
	var posA, posB uint64
	var wg sync.WaitGroup
	wg.Go(func() { posA = sendAll(t, a, rand.New(rand.NewPCG(6, 7)), f.deliveries[:n*2/3], 8) })
	wg.Go(func() { posB = sendAll(t, b, rand.New(rand.NewPCG(8, 9)), f.deliveries[n/3:], 8) })
	wg.Wait()
	if posA == 0 || posB == 0 {
		t.Fatal("a server answered no delivery with a Receiptd-Position")
	}
	maxPos := max(posA, posB)
	for _, s := range []*server{a, b} {
		checkREST(t, s, f, maxPos)
		checkGRPC(t, s, f, maxPos)
	}
	c := startServer(t, t.TempDir(), cfg, env)
	checkREST(t, c, f, maxPos)
	if distinct, held := countDistinct(f.deliveries), countHeld(d, f); held != distinct {
		t.Errorf("the server holds %d events for %d distinct deliveries", held, distinct)
	}
}

// countHeld counts the events of the fixture's streams in the double.
func countHeld(d *esdbdouble.StreamsDouble, f *fixture) int {
	n := len(d.StreamEvents("quarantine-reewild"))
	for _, r := range f.receipts {
		n += len(d.StreamEvents("receipt-reewild." + r.id))
	}
	for id := range f.users {
		n += len(d.StreamEvents("user-reewild." + id))
	}
	return n
}

// TestKurrentDBDoubleOutage: while the server is down, deliveries are answered
// 503 and /readyz is not ready; once it is back, receiptd takes deliveries
// again and its read models resume from where they were.
func TestKurrentDBDoubleOutage(t *testing.T) {
	d := startKurrentDB(t)
	cfg := kurrentdbConfig(t, d.URL())
	env := "E2E_REEWILD_SECRET=" + e2eSecret
	s := startServer(t, t.TempDir(), cfg, env)
	rng := rand.New(rand.NewPCG(10, 11))
	f := newFixture(rng, 30, 5)
	half := len(f.deliveries) / 2

	firstPos := sendAll(t, s, rng, f.deliveries[:half], 8)
	if firstPos == 0 {
		t.Fatal("no delivery answered with a Receiptd-Position")
	}

	d.Stop()
	body := f.deliveries[half]
	if code, _ := s.post(t, "reewild", body, sign(body), "application/json"); code != http.StatusServiceUnavailable {
		t.Errorf("delivery with the server down: %d, want 503", code)
	}
	if code := s.getJSON(t, "/readyz", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the server down: %d, want 503", code)
	}
	time.Sleep(time.Second) // the outage itself: long enough for the subscription to back off

	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.getJSON(t, "/readyz", nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not ready 30s after the server came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	lastPos := sendAll(t, s, rng, f.deliveries[half:], 8)
	maxPos := max(firstPos, lastPos)
	awaitViews(t, s, f.receipts[0].id, maxPos)
	checkREST(t, s, f, maxPos)
	checkGRPC(t, s, f, maxPos)
}
