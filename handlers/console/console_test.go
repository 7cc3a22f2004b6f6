package console

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/examples"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

func TestSessions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newSessions([]byte("0123456789abcdef0123456789abcdef"), time.Hour)
	ss, cookie := s.create("key", "ops", now)
	if got := s.lookup(cookie, now.Add(time.Minute)); got != ss {
		t.Fatalf("lookup of a fresh session: %v", got)
	}
	id, rest, _ := strings.Cut(cookie, ".")
	exp, mac, _ := strings.Cut(rest, ".")
	other, otherCookie := s.create("key2", "ops2", now)
	otherID, _, _ := strings.Cut(otherCookie, ".")
	unknown := "x" + id[1:] // an id of the same form that no session has
	if id[0] == 'x' {
		unknown = "y" + id[1:]
	}
	for name, v := range map[string]string{
		"tampered MAC":             id + "." + exp + "." + strings.Repeat("A", len(mac)),
		"another session's MAC":    otherID + "." + exp + "." + mac,
		"a later expiry":           id + "." + "9999999999" + "." + mac,
		"no MAC":                   id + "." + exp,
		"empty":                    "",
		"unknown id, correct form": unknown + "." + exp + "." + s.sign(unknown, now.Add(time.Hour).Unix()),
	} {
		if got := s.lookup(v, now); got != nil {
			t.Errorf("%s: a session", name)
		}
	}
	if s.lookup(cookie, now.Add(time.Hour)) != nil {
		t.Error("an expired session is still valid")
	}
	s.end(ss.id)
	if s.lookup(cookie, now) != nil {
		t.Error("an ended session is still valid")
	}
	if s.lookup(otherCookie, now) != other {
		t.Error("ending one session ended another")
	}
	if ss.csrf == "" || ss.csrf == other.csrf || ss.id == other.id {
		t.Error("session ids or CSRF tokens repeat")
	}
	// Bounded: the oldest is dropped.
	for range maxSessions + 10 {
		s.create("k", "p", now)
	}
	if n := len(s.all); n > maxSessions {
		t.Errorf("%d sessions kept, want at most %d", n, maxSessions)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/health":           "/ui/health",
		"/ui/users/reewild/u1": "/ui/users/reewild/u1",
		"":                     "/ui/",
		"https://evil.example": "/ui/",
		"//evil.example/ui/":   "/ui/",
		"/v1/audit":            "/ui/",
		"/ui/\\evil":           "/ui/",

		// Kept, resolved as a browser resolves them.
		"/ui/":                              "/ui/",
		"/ui/health?x=1&y=%2F":              "/ui/health?x=1&y=%2F",
		"/ui/a/../health":                   "/ui/health",
		"/ui/./health":                      "/ui/health",
		"/ui/x/..":                          "/ui/",
		"/ui/receipts/reewild/a%2Fb":        "/ui/receipts/reewild/a%2Fb", // an id with a slash, one segment
		"/ui/receipts/reewild/a%20b":        "/ui/receipts/reewild/a%20b",
		"/ui/users/reewild/%C3%A9":          "/ui/users/reewild/%C3%A9",
		"/ui/health#fragment":               "/ui/health",
		"/ui/deliveries?source=a#reprocess": "/ui/deliveries?source=a",

		// Out of the console once resolved (issue 12, item 6).
		"/ui/../../evil":                         "/ui/",
		"/ui/../evil":                            "/ui/",
		"/ui/..":                                 "/ui/",
		"/ui/%2e%2e/%2e%2e/evil":                 "/ui/",
		"/ui/%2E%2E/evil":                        "/ui/",
		"/ui/.%2e/evil":                          "/ui/",
		"/ui/%2e./evil":                          "/ui/",
		"/ui/..%2f..%2fevil":                     "/ui/",
		"/ui/receipts/reewild/..%2F..%2F..%2Fv1": "/ui/",
		"/ui/..//evil.example":                   "/ui/",
		"/ui//evil.example":                      "/ui/",
		"/ui/%5c%5cevil.example":                 "/ui/",
		"/\\evil.example":                        "/ui/",
		"/\t/evil.example":                       "/ui/",
		"\t//evil.example":                       "/ui/",
		" /ui/health":                            "/ui/",
		"/ui/%0d%0aSet-Cookie:x=1":               "/ui/",
		"/ui/\r\nSet-Cookie:x=1":                 "/ui/",
		"/ui/%00":                                "/ui/",
		"/ui/%zz":                                "/ui/",
		"/ui":                                    "/ui/",
		"/uix/health":                            "/ui/",
		"javascript:alert(1)//":                  "/ui/",
		"/ui/" + strings.Repeat("a", maxNextLen): "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%.80q) = %.80q, want %q", in, got, want)
		}
	}
}

// TestSignInNext: the redirect after signing in stays inside the console,
// with next resolved before its prefix is checked (issue 12, item 6: next=
// /ui/../../evil redirected to /evil).
func TestSignInNext(t *testing.T) {
	tc := newTestConsole(t)
	for next, want := range map[string]string{
		"/ui/health":             "/ui/health",
		"/ui/../../evil":         "/ui/",
		"/ui/%2e%2e/%2e%2e/evil": "/ui/",
		"//evil.example/":        "/ui/",
		"/ui/..%5c..%5cevil":     "/ui/",
	} {
		w := tc.do("POST", "/ui/login", url.Values{"key": {testAdminKey}, "next": {next}}, nil)
		if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || loc != want {
			t.Errorf("sign in with next=%s: %d to %q, want 303 to %q", next, w.Code, loc, want)
		}
		page := tc.do("GET", "/ui/login?next="+url.QueryEscape(next), nil, nil)
		if field := `name="next" value="` + want + `"`; page.Code != http.StatusOK || !strings.Contains(page.Body.String(), field) {
			t.Errorf("login page for next=%s: %d, no %s in the form", next, page.Code, field)
		}
	}
}

// TestSignVerifies: every example the Send test event page offers, signed
// as the page signs it, passes its provider's verification.
func TestSignVerifies(t *testing.T) {
	key := []byte("console-test-secret-0123456789")
	whsec := []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	now := time.Now()
	mk := func(p webhook.Provider, err error) webhook.Provider {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		src Source
		p   webhook.Provider
	}{
		{Source{Name: "reewild", Kind: "reewild", Key: key}, mk(reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{key}}))},
		{Source{Name: "reusely", Kind: "reusely", Key: key}, mk(reusely.New(reusely.Config{Source: "reusely", Secrets: [][]byte{key}}))},
		{Source{Name: "standard", Kind: "standard", Key: whsec}, mk(standard.New(standard.Config{Source: "standard", Secrets: [][]byte{whsec}}))},
		{Source{Name: "reward", Kind: "reward", Key: key}, mk(reward.New(reward.Config{Source: "reward", Tokens: [][]byte{key}}))},
		{Source{Name: "retm", Kind: "retm", Key: key}, mk(retm.New(retm.Config{Source: "retm", Tokens: []retm.Token{{Value: key}}}))},
	} {
		names, _ := fs.Glob(examples.Payloads, tc.src.Kind+"/*.json")
		if len(names) == 0 {
			t.Fatalf("no %s examples embedded", tc.src.Kind)
		}
		for _, n := range names {
			body, _ := fs.ReadFile(examples.Payloads, n)
			if tc.src.Kind == "reusely" {
				var err error
				if body, err = freshTimestamp(body, now); err != nil {
					t.Fatal(err)
				}
			}
			r := httptest.NewRequest(http.MethodPost, "/webhooks/"+tc.src.Name, bytes.NewReader(body))
			if err := sign(r.Header, tc.src, body, now); err != nil {
				t.Fatalf("%s: sign: %v", n, err)
			}
			if _, err := tc.p.Verify(r, body, now); err != nil {
				t.Errorf("%s: signed as the console signs, refused: %v", n, err)
			}
			if _, err := tc.p.Normalize(webhook.Delivery{Body: body, ReceivedAt: now}); err != nil && tc.src.Kind == "reusely" {
				t.Errorf("%s: the re-stamped body does not normalize: %v", n, err)
			}
		}
	}
	if canSign(Source{Name: "reap", Kind: "reap", Key: key}) {
		t.Error("the console claims it can sign for reap")
	}
	if err := sign(http.Header{}, Source{Kind: "reap", Key: key}, nil, now); err == nil {
		t.Error("signing for reap did not fail")
	}
}

func TestCharts(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	ss := []sample{
		{at: t0, counts: counts{"reewild": {"accepted": 10}, "(unknown source)": {"other": 0}}},
		{at: t0.Add(time.Minute), counts: counts{"reewild": {"accepted": 40, "bad_signature": 2}, "(unknown source)": {"other": 0}}},
	}
	now := sample{at: t0.Add(90 * time.Second), counts: counts{"reewild": {"accepted": 45, "bad_signature": 2, "duplicate": 5}, "(unknown source)": {"other": 0}}}
	cs := charts(ss, now, time.Minute)
	if len(cs) != 1 || cs[0].Source != "reewild" {
		t.Fatalf("charts %+v, want reewild only (nothing ever came from an unknown source)", cs)
	}
	c := cs[0]
	if c.Max != 32 {
		t.Errorf("max per interval %v, want 32 (30 accepted + 2 bad signatures)", c.Max)
	}
	var heights = map[string]float64{}
	for _, b := range c.Bars {
		heights[b.Outcome] += b.H
		if b.Y < 0 || b.Y+b.H > chartH-chartBottom+0.001 {
			t.Errorf("bar outside the plot: %+v", b)
		}
	}
	unit := float64(chartH-chartBottom-6) / 32
	for o, want := range map[string]float64{"accepted": 35, "bad_signature": 2, "duplicate": 5} {
		if d := heights[o] - want*unit; d > 0.001 || d < -0.001 {
			t.Errorf("%s bars %.2f px high, want %.2f", o, heights[o], want*unit)
		}
	}
	if got := c.Totals; len(got) != 3 || got[0] != (total{"accepted", 45}) || got[1] != (total{"duplicate", 5}) || got[2] != (total{"bad_signature", 2}) {
		t.Errorf("totals %+v", got)
	}
}

func TestFeedIsBounded(t *testing.T) {
	f := newFeed(3)
	_, changed := f.snapshot()
	f.touch("receipt-reewild.a", 1)
	select {
	case <-changed:
	default:
		t.Fatal("a touch did not wake the watchers")
	}
	f.touch("user-reewild.u1", 2) // not a receipt
	f.touch("receipt-reewild.b", 3)
	f.touch("receipt-reewild.c", 4)
	f.touch("receipt-reewild.a", 5)
	f.touch("receipt-reewild.d", 6)
	items, _ := f.snapshot()
	var got []string
	for _, it := range items {
		got = append(got, it.id)
	}
	if strings.Join(got, ",") != "c,a,d" || items[1].position != 5 {
		t.Errorf("feed %+v, want c,a,d with a at 5", items)
	}
}

func TestTemplatesParse(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range pageNames {
		if pages[n] == nil {
			t.Errorf("no template for page %s", n)
		}
	}
}
