package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// TestHealthShowsDestinations: the Health page shows each feed
// destination, its state, lag and last error, and resumes a paused one
// (with the CSRF token only).
func TestHealthShowsDestinations(t *testing.T) {
	tc := newTestConsole(t)
	if body := tc.get("/ui/health").Body.String(); !strings.Contains(body, `id="no-destinations"`) {
		t.Fatalf("no destinations: %s", body)
	}
	tc.api.dests = []*receiptdv1.Destination{{
		Name: "ledger", Url: "https://ledger.example/hooks", Paused: true, PausedReason: "100 failures in a row",
		DeliveredPosition: 32, HeadPosition: 79, LagPositions: 3, Lag: durationpb.New(1500 * time.Millisecond),
		Attempts: 140, Failures: 100, LastError: "503 Service Unavailable", DeadLetters: 1,
	}}
	page := tc.get("/ui/health")
	body := page.Body.String()
	for _, want := range []string{`data-destination="ledger"`, "https://ledger.example/hooks", "paused: 100 failures in a row", "3 positions, 1.5s", "140 / 100", "503 Service Unavailable", `action="/ui/destinations/ledger/resume"`} {
		if page.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("health page lacks %q: %d %s", want, page.Code, body)
		}
	}
	if w := tc.do("POST", "/ui/destinations/ledger/resume", url.Values{}, tc.session); w.Code != http.StatusForbidden || !tc.api.dests[0].Paused {
		t.Fatalf("resume without the CSRF token: %d", w.Code)
	}
	csrf := tc.c.sessions.lookup(tc.session.Value, time.Now()).csrf
	w := tc.do("POST", "/ui/destinations/ledger/resume", url.Values{"csrf": {csrf}}, tc.session)
	if w.Code != http.StatusSeeOther || tc.api.dests[0].Paused {
		t.Fatalf("resume: %d %s", w.Code, w.Body)
	}
	if body := tc.get("/ui/health").Body.String(); !strings.Contains(body, "delivering") || !strings.Contains(body, `action="/ui/destinations/ledger/pause"`) {
		t.Fatalf("after resume: %s", body)
	}
	if w := tc.do("POST", "/ui/destinations/nope/resume", url.Values{"csrf": {csrf}}, tc.session); w.Code != http.StatusNotFound {
		t.Fatalf("resume nope: %d", w.Code)
	}
}
