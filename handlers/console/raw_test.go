package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/examples"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// deepBody is the body of issue 12, item 2: valid JSON of 18 KB nested
// 9,000 deep. json.Indent makes 162 MB of it.
var deepBody = strings.Repeat("[", 9000) + strings.Repeat("]", 9000)

// Upper bounds the tests hold pages to: a page's own markup is a few KB.
const (
	pageMarkup = 64 << 10
	maxPage    = pageRawBudget + maxRawPreview*6 + 512<<10 // every body on a full page, and 500 rows
)

// quarantine puts raw bodies in the double's quarantine of source: in the
// log (for downloads) and in the query API's answer (for the page).
func (tc *testConsole) quarantine(source string, bodies ...string) []*receiptdv1.QuarantinedDelivery {
	tc.t.Helper()
	var out []*receiptdv1.QuarantinedDelivery
	for _, b := range bodies {
		q := aggregate.Quarantined{Source: source, ProviderEventType: "receipt.extracted", Reason: "no data object", BodySHA256: "sha", Raw: json.RawMessage(b)}
		data := encodeJSON(tc.t, q)
		e := tc.log.append(aggregate.QuarantineStream(source), aggregate.TypeDeliveryQuarantined, data)
		d := &receiptdv1.QuarantinedDelivery{Source: source, Position: e.Position.Commit, ProviderEventType: q.ProviderEventType,
			Reason: q.Reason, BodySha256: q.BodySHA256, RawBody: b, ReceivedAt: timestamppb.Now()}
		tc.api.quarantine[source] = append(tc.api.quarantine[source], d)
		out = append(out, d)
	}
	return out
}

// receipt puts a receipt with events of the given raw bodies in the log
// and the double's answers.
func (tc *testConsole) receipt(source, id string, bodies ...string) {
	tc.t.Helper()
	tc.api.receipts[id] = &receiptdv1.Receipt{ReceiptId: id, Source: source, Status: receiptdv1.ReceiptStatus_RECEIPT_STATUS_IN_PROGRESS}
	for _, b := range bodies {
		data := encodeJSON(tc.t, aggregate.StageRecorded{Source: source, ReceiptID: id, Stage: aggregate.StageExtracted, BodySHA256: "sha", Raw: json.RawMessage(b)})
		e := tc.log.append(aggregate.StreamID(aggregate.CategoryReceipt, source, id), aggregate.TypeReceiptStageRecorded, data)
		tc.api.events[id] = append(tc.api.events[id], &receiptdv1.ReceiptEvent{Position: e.Position.Commit, Revision: e.Revision,
			EventType: e.Type, Delivery: &receiptdv1.Delivery{ProviderEventType: "receipt.extracted", BodySha256: "sha"}})
	}
}

// encodeJSON encodes v as the webhook handler stores event data: without
// HTML escaping, so a raw body keeps its bytes.
func encodeJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// TestRawBodiesBounded: what a page shows of raw bodies is bounded in size
// and depth, whatever they hold (issue 12, item 2: one 18 KB body nested
// 9,000 deep made GET /ui/deliveries 162 MB).
func TestRawBodiesBounded(t *testing.T) {
	t.Run("deliveries, one deep body", func(t *testing.T) {
		tc := newTestConsole(t)
		tc.quarantine("reewild", deepBody)
		w := tc.get("/ui/deliveries")
		t.Logf("GET /ui/deliveries with one %d-byte body nested 9,000 deep: %d, %d bytes", len(deepBody), w.Code, w.Body.Len())
		if w.Code != http.StatusOK || w.Body.Len() > maxRawPreview+pageMarkup {
			t.Fatalf("%d, %d bytes; want 200 and at most %d", w.Code, w.Body.Len(), maxRawPreview+pageMarkup)
		}
		if !strings.Contains(w.Body.String(), "/ui/deliveries/reewild/") || !strings.Contains(w.Body.String(), "as sent") {
			t.Error("the page has no download link, or does not say the body is shown as sent")
		}
	})
	t.Run("receipt, one deep body", func(t *testing.T) {
		tc := newTestConsole(t)
		tc.receipt("reewild", "r1", deepBody)
		w := tc.get("/ui/receipts/reewild/r1")
		t.Logf("GET /ui/receipts/reewild/r1 with one event of that body: %d, %d bytes", w.Code, w.Body.Len())
		if w.Code != http.StatusOK || w.Body.Len() > maxRawPreview+pageMarkup {
			t.Fatalf("%d, %d bytes; want 200 and at most %d", w.Code, w.Body.Len(), maxRawPreview+pageMarkup)
		}
		if !strings.Contains(w.Body.String(), `href="/ui/receipts/reewild/r1/events/0/raw"`) {
			t.Error("the page has no download link for the event's body")
		}
	})
	t.Run("deliveries, 500 deep bodies from two sources", func(t *testing.T) {
		tc := newTestConsole(t)
		bodies := make([]string, 250)
		for i := range bodies {
			bodies[i] = deepBody
		}
		tc.quarantine("reewild", bodies...)
		tc.quarantine("reward", bodies...)
		w := tc.get("/ui/deliveries")
		t.Logf("GET /ui/deliveries with 500 such bodies: %d, %d bytes", w.Code, w.Body.Len())
		if w.Code != http.StatusOK || w.Body.Len() > maxPage {
			t.Fatalf("%d, %d bytes; want 200 and at most %d", w.Code, w.Body.Len(), maxPage)
		}
		if n := strings.Count(w.Body.String(), `class="raw-download"`); n != 500 {
			t.Errorf("%d download links, want 500", n)
		}
		if !strings.Contains(w.Body.String(), "Not shown: this page already shows") {
			t.Error("past the page's budget, bodies are still shown")
		}
	})
	t.Run("receipt, 200 large bodies", func(t *testing.T) {
		tc := newTestConsole(t)
		// 200 events of a 25 KB body that indents to ~4× its size.
		big := `{"eventType":"receipt.extracted","data":{"items":[` + strings.Repeat(`[[[[1]]]],`, 2_500) + `0]}}`
		bodies := make([]string, 200)
		for i := range bodies {
			bodies[i] = big
		}
		tc.receipt("reewild", "r2", bodies...)
		w := tc.get("/ui/receipts/reewild/r2")
		t.Logf("GET /ui/receipts/reewild/r2 with 200 events of a %d-byte body: %d, %d bytes", len(big), w.Code, w.Body.Len())
		if w.Code != http.StatusOK || w.Body.Len() > maxPage {
			t.Fatalf("%d, %d bytes; want 200 and at most %d", w.Code, w.Body.Len(), maxPage)
		}
		if !strings.Contains(w.Body.String(), "The first ") {
			t.Error("a truncated body does not say so")
		}
	})
	t.Run("a small body is shown whole, indented", func(t *testing.T) {
		tc := newTestConsole(t)
		tc.quarantine("reewild", `{"eventType":"x","data":{"a":[1,2],"b":{}}}`)
		w := tc.get("/ui/deliveries")
		want := "{\n  &#34;eventType&#34;: &#34;x&#34;,\n  &#34;data&#34;: {\n    &#34;a&#34;: [\n      1,\n      2\n    ],\n    &#34;b&#34;: {}\n  }\n}"
		if !strings.Contains(w.Body.String(), want) || strings.Contains(w.Body.String(), "The first ") {
			t.Errorf("page does not show the body whole and indented:\n%s", w.Body)
		}
	})
}

// TestRawDownload: the whole body downloads, byte for byte, as an
// attachment no browser renders, to a signed-in operator whose key the
// query API still accepts; to no one else.
func TestRawDownload(t *testing.T) {
	tc := newTestConsole(t)
	body := `{"eventType":"receipt.extracted","data":{"x":"<script>alert(1)</script>"}}`
	var qs []*receiptdv1.QuarantinedDelivery
	for i := range 1000 { // positions to search among
		qs = append(qs, tc.quarantine("reewild", fmt.Sprintf(`{"n":%d}`, i))...)
	}
	qs = append(qs, tc.quarantine("reewild", deepBody, body)...)
	tc.receipt("reewild", "r/1", `{"first":1}`, body)

	check := func(target, want, wantName string) {
		t.Helper()
		w := tc.get(target)
		if w.Code != http.StatusOK || w.Body.String() != want {
			t.Fatalf("GET %s: %d, %d bytes; want 200 and the body (%d bytes)", target, w.Code, w.Body.Len(), len(want))
		}
		h := w.Header()
		disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
		if h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" ||
			err != nil || disp != "attachment" || params["filename"] != wantName || !strings.HasPrefix(h.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("GET %s: headers %v", target, h)
		}
	}
	for i, q := range qs {
		if i%97 != 0 && i < len(qs)-3 {
			continue
		}
		tc.log.reads = 0
		check(quarantineRawHref("reewild", q.GetPosition()), q.GetRawBody(), fmt.Sprintf("quarantine-reewild-at-%d.json", q.GetPosition()))
		if tc.log.reads > 2*10+1 { // a galloping and a binary search over 1,002 events, and the read of the one found
			t.Errorf("download of the quarantined delivery at revision %d: %d log reads, want O(log n)", i, tc.log.reads)
		}
	}
	check("/ui/receipts/reewild/r%2F1/events/1/raw", body, "receipt-reewild.r_1-1.json")
	check("/ui/receipts/reewild/r%2F1/events/0/raw", `{"first":1}`, "receipt-reewild.r_1-0.json")

	for target, code := range map[string]int{
		quarantineRawHref("reewild", qs[0].GetPosition()+1): http.StatusNotFound, // between two
		quarantineRawHref("reewild", 1):                     http.StatusNotFound, // before the first
		quarantineRawHref("reewild", 1<<60):                 http.StatusNotFound, // past the last
		quarantineRawHref("reewild", 0):                     http.StatusBadRequest,
		"/ui/deliveries/reewild/x/raw":                      http.StatusBadRequest,
		"/ui/receipts/reewild/r%2F1/events/2/raw":           http.StatusNotFound,
		"/ui/receipts/reewild/nope/events/0/raw":            http.StatusNotFound, // the query API knows no such receipt
		"/ui/receipts/reewild/r%2F1/events/-1/raw":          http.StatusBadRequest,
	} {
		if w := tc.get(target); w.Code != code {
			t.Errorf("GET %s: %d, want %d", target, w.Code, code)
		}
	}

	// Without a session: to the login page, nothing of the body.
	for _, target := range []string{quarantineRawHref("reewild", qs[0].GetPosition()), "/ui/receipts/reewild/r%2F1/events/1/raw"} {
		w := tc.do("GET", target, nil, nil)
		if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/ui/login") || strings.Contains(w.Body.String(), "script") {
			t.Errorf("GET %s without a session: %d to %q", target, w.Code, w.Header().Get("Location"))
		}
	}
	// A session whose key the query API no longer accepts (rotated out):
	// refused like every page.
	tc.api.revoked = true
	for _, target := range []string{quarantineRawHref("reewild", qs[0].GetPosition()), "/ui/receipts/reewild/r%2F1/events/1/raw"} {
		if w := tc.get(target); w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "alert(1)") {
			t.Errorf("GET %s with a revoked key: %d, want 401 and no body", target, w.Code)
		}
	}
}

// TestIndentBounded: within its limit, indentBounded writes what
// json.Indent writes; past it, a prefix of that, cut on a rune boundary;
// past maxDepth, nothing.
func TestIndentBounded(t *testing.T) {
	var bodies [][]byte
	names, _ := fs.Glob(examples.Payloads, "*/*.json")
	for _, n := range names {
		b, _ := fs.ReadFile(examples.Payloads, n)
		bodies = append(bodies, b)
	}
	bodies = append(bodies, []byte(`{"a":"x\"y\\","b":[],"c":{},"d":[ ],"e":{ },"f":"ünïcødé €","g":[{"h":null}]}`), []byte(` [ 1 , 2 ] `), []byte(`"s"`), []byte(`7`))
	if len(bodies) < 10 {
		t.Fatalf("only %d example payloads", len(bodies))
	}
	for _, b := range bodies {
		var want bytes.Buffer
		if err := json.Indent(&want, bytes.TrimSpace(b), "", "  "); err != nil {
			t.Fatal(err)
		}
		got, truncated, ok := indentBounded(b, 1<<30, 64)
		if !ok || truncated || string(got) != want.String() {
			t.Fatalf("indentBounded(%.60s) = %v %v\n%s\nwant\n%s", b, ok, truncated, got, want.String())
		}
		for _, limit := range []int{1, 7, 100, want.Len() - 1} {
			if limit <= 0 || limit >= want.Len() {
				continue
			}
			got, truncated, ok := indentBounded(b, limit, 64)
			if !ok || !truncated || len(got) > limit || !strings.HasPrefix(want.String(), string(got)) || !utf8.Valid(got) || len(got) < limit-utf8.UTFMax {
				t.Fatalf("indentBounded(%.60s, %d) = %q %v %v", b, limit, got, truncated, ok)
			}
		}
	}
	if _, _, ok := indentBounded(deepBody, 1<<20, maxRawDepth); ok {
		t.Error("a body nested 9,000 deep was indented")
	}
	if _, _, ok := indentBounded(`]]]`, 100, maxRawDepth); ok {
		t.Error("closing brackets without opening ones were indented")
	}
}

// TestPageBudget: a page larger than maxPageBytes is an error, not a
// larger page.
func TestPageBudget(t *testing.T) {
	tc := newTestConsole(t)
	var rs []reprocessResult
	for range maxPageBytes / maxClip {
		rs = append(rs, reprocessResult{Source: "reewild", Outcome: "quarantined", Reason: strings.Repeat("r", maxClip)})
	}
	tc.c.sessions.setFlash(tc.c.current(httptestRequestWith(tc.session)), rs)
	w := tc.get("/ui/deliveries")
	if w.Code != http.StatusInternalServerError || w.Body.Len() > 1024 || !strings.Contains(w.Body.String(), "output budget") {
		t.Fatalf("an oversized page: %d, %d bytes: %.200s", w.Code, w.Body.Len(), w.Body)
	}
}

func httptestRequestWith(c *http.Cookie) *http.Request {
	r, _ := http.NewRequest("GET", "/ui/", nil)
	r.AddCookie(c)
	return r
}
