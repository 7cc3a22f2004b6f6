package webhook_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// hostileLimit is the body limit of the hostile-input fixture.
const hostileLimit = webhook.DefaultMaxBodyBytes

// TestHostileInput feeds the ingest handler what an attacker, a broken
// provider or a fuzzer sends. Each row says what comes back and what may be
// stored: nothing at all, only a quarantine record (a verified body the
// decoder cannot map: kept, with its reason, for a later version), or the
// fact the provider signed.
func TestHostileInput(t *testing.T) {
	const rid = "hostile-6d13-4176-89ae-7a424b69d7b5"
	stage := func(data string) []byte {
		return []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"` + rid + `",` + data + `}}`)
	}
	nested := func(open, close string, n int) []byte {
		return []byte(strings.Repeat(open, n) + strings.Repeat(close, n))
	}
	type want int
	const (
		nothing     want = iota // nothing stored
		quarantined             // one quarantine record, no entity event
		recorded                // one entity event (the receipt's, where the body names rid), no quarantine
	)
	for _, tc := range []struct {
		name   string
		body   []byte
		mutate func(r *http.Request) // after signing
		code   int
		stored want
	}{
		// Bodies that are not JSON, or not JSON we will parse.
		{"empty body", nil, nil, http.StatusBadRequest, nothing},
		{"empty body unsigned", nil, func(r *http.Request) { r.Header.Del(reewild.SignatureHeader) }, http.StatusUnauthorized, nothing},
		{"whitespace only", []byte(" \r\n\t "), nil, http.StatusBadRequest, nothing},
		{"NUL bytes", []byte("\x00\x00\x00"), nil, http.StatusBadRequest, nothing},
		{"one byte over the limit", jsonOfSize(t, int(hostileLimit)+1), nil, http.StatusRequestEntityTooLarge, nothing},
		{"one byte over the limit, chunked", jsonOfSize(t, int(hostileLimit)+1), func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(io.MultiReader(r.Body)), -1
		}, http.StatusRequestEntityTooLarge, nothing},
		{"declared length lies low", jsonOfSize(t, int(hostileLimit)+1), func(r *http.Request) { r.ContentLength = 10 }, http.StatusRequestEntityTooLarge, nothing},
		{"at the limit", jsonOfSize(t, int(hostileLimit)), nil, http.StatusOK, recorded},
		{"100k open brackets", []byte(strings.Repeat("[", 100_000)), nil, http.StatusBadRequest, nothing},
		{"100k nested arrays, balanced", nested("[", "]", 30_000), nil, http.StatusBadRequest, nothing},
		{"deep nesting inside a valid envelope", []byte(`{"eventType":"receipt.extracted","data":{"receiptID":"` + rid + `","x":` + string(nested(`{"a":`, `}`, 20_000)) + `}}`), nil, http.StatusBadRequest, nothing},
		{"nesting just under the decoder's depth limit", []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"` + rid + `","x":` + string(nested("[", "]", 9_000)) + `}}`), nil, http.StatusOK, recorded},
		{"bare NaN", []byte(`NaN`), nil, http.StatusBadRequest, nothing},
		{"NaN as a number", stage(`"subTotal":NaN`), nil, http.StatusBadRequest, nothing},
		{"Infinity as a number", stage(`"subTotal":-Infinity`), nil, http.StatusBadRequest, nothing},
		{"trailing garbage", append(stage(`"subTotal":1`), "}"...), nil, http.StatusBadRequest, nothing},
		{"two documents", append(stage(`"subTotal":1`), stage(`"subTotal":2`)...), nil, http.StatusBadRequest, nothing},

		// Numbers the decoder must not guess at: quarantined, never stored
		// as a wrong amount.
		{"1e400", stage(`"subTotal":1e400`), nil, http.StatusOK, quarantined},
		{"-1e400", stage(`"subTotal":-1e400`), nil, http.StatusOK, quarantined},
		{"400-digit integer", stage(`"subTotal":` + strings.Repeat("9", 400)), nil, http.StatusOK, quarantined},
		{"400-digit fraction", stage(`"subTotal":0.` + strings.Repeat("1", 400)), nil, http.StatusOK, quarantined},
		{"1e-400", stage(`"subTotal":1e-400`), nil, http.StatusOK, quarantined},
		{"NaN as a string", stage(`"subTotal":"NaN"`), nil, http.StatusOK, quarantined},
		{"Infinity as a string", stage(`"subTotal":"Infinity"`), nil, http.StatusOK, quarantined},
		{"hex as a string", stage(`"subTotal":"0x1F"`), nil, http.StatusOK, quarantined},
		{"number with a space", stage(`"subTotal":" 6.33"`), nil, http.StatusOK, quarantined},
		{"number as an object", stage(`"subTotal":{"value":6.33}`), nil, http.StatusOK, quarantined},
		{"points 1e400 in an award", []byte(`{"eventType":"rewards.awarded","data":{"user":{"id":"u1"},"transaction":{"externalTransactionID":"` + rid + `","totalPoints":1e400}}}`), nil, http.StatusOK, quarantined},
		{"points as a 400-digit string", []byte(`{"eventType":"rewards.awarded","data":{"user":{"id":"u1"},"transaction":{"externalTransactionID":"` + rid + `","totalPoints":"` + strings.Repeat("9", 400) + `"}}}`), nil, http.StatusOK, quarantined},
		{"a fine amount", stage(`"subTotal":6.33`), nil, http.StatusOK, recorded},

		// Times that parse to a year outside 1–9999 once in UTC: omitted,
		// as unparsable (they were kept, and the event could not be
		// written: 500 on every retry).
		{"uploadedAt in year -1 in UTC", []byte(`{"eventType":"receipt.uploaded","data":{"userID":"u1","receiptID":"` + rid + `","uploadedAt":"0000-01-01T00:00:00+01:00"}}`), nil, http.StatusOK, recorded},
		{"uploadedAt in year 10000 in UTC", []byte(`{"eventType":"receipt.uploaded","data":{"userID":"u1","receiptID":"` + rid + `","uploadedAt":"9999-12-31T23:59:59-01:00"}}`), nil, http.StatusOK, recorded},

		// Strings.
		{"invalid UTF-8 in the receipt id", []byte("{\"eventType\":\"receipt.extracted\",\"data\":{\"receiptID\":\"r\xff\xfe\"}}"), nil, http.StatusOK, quarantined},
		{"invalid UTF-8 in a descriptive field", stage("\"merchantName\":\"TES\xc3\x28CO\""), nil, http.StatusOK, recorded},
		{"overlong UTF-8 encoding of '/'", []byte("{\"eventType\":\"receipt.extracted\",\"data\":{\"receiptID\":\"a\xc0\xafb\"}}"), nil, http.StatusOK, quarantined},
		{"control character in the receipt id", []byte(`{"eventType":"receipt.extracted","data":{"receiptID":"a\u0000b"}}`), nil, http.StatusOK, quarantined},
		{"newline in the receipt id", []byte(`{"eventType":"receipt.extracted","data":{"receiptID":"a\nb"}}`), nil, http.StatusOK, quarantined},
		{"257-byte receipt id", []byte(`{"eventType":"receipt.extracted","data":{"receiptID":"` + strings.Repeat("r", 257) + `"}}`), nil, http.StatusOK, quarantined},
		{"unknown event type", []byte(`{"eventType":"receipt.teleported","data":{"receiptID":"` + rid + `"}}`), nil, http.StatusOK, quarantined},
		{"event type of 1000 bytes", []byte(`{"eventType":"` + strings.Repeat("e", 1000) + `","data":{}}`), nil, http.StatusOK, quarantined},
		{"event type as a number", []byte(`{"eventType":7,"data":{"receiptID":"` + rid + `"}}`), nil, http.StatusOK, quarantined},
		{"JSON null", []byte(`null`), nil, http.StatusOK, quarantined},
		{"JSON array", []byte(`[]`), nil, http.StatusOK, quarantined},
		{"JSON string", []byte(`"receipt.extracted"`), nil, http.StatusOK, quarantined},

		// Duplicate keys: the last is read, as the sender's JavaScript
		// (JSON.parse) reads it; the raw body (with both) is kept for an
		// audit. Keys match exactly: a case variant is another key
		// (issue 12, item 8: encoding/json took "EVENTTYPE" for eventType,
		// and "TOTALPOINTS" after totalPoints for the points).
		{"duplicate eventType keys", []byte(`{"eventType":"user.enrolled","eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"` + rid + `"}}`), nil, http.StatusOK, recorded},
		{"duplicate receiptID keys", []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"other","receiptID":"` + rid + `"}}`), nil, http.StatusOK, recorded},
		{"EVENTTYPE alone", []byte(`{"EVENTTYPE":"receipt.extracted","data":{"userID":"u1","receiptID":"` + rid + `"}}`), nil, http.StatusOK, quarantined},
		{"receiptID and a case variant after it", []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"` + rid + `","RECEIPTID":"other"}}`), nil, http.StatusOK, recorded},
		{"DATA alone", []byte(`{"eventType":"receipt.extracted","DATA":{"userID":"u1","receiptID":"` + rid + `"}}`), nil, http.StatusOK, quarantined},
		{"data twice, the last without a receipt id", []byte(`{"eventType":"receipt.extracted","data":{"userID":"u1","receiptID":"` + rid + `"},"data":{"userID":"u1"}}`), nil, http.StatusOK, quarantined},

		// Headers.
		{"two signature headers", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Add(reewild.SignatureHeader, r.Header.Get(reewild.SignatureHeader)) }, http.StatusUnauthorized, nothing},
		{"signature with CRLF and a header after it", stage(`"subTotal":1`), func(r *http.Request) {
			r.Header.Set(reewild.SignatureHeader, r.Header.Get(reewild.SignatureHeader)+"\r\nSet-Cookie: session=stolen")
		}, http.StatusUnauthorized, nothing},
		{"signature of 1 MB", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set(reewild.SignatureHeader, strings.Repeat("a", 1<<20)) }, http.StatusUnauthorized, nothing},
		{"signature is the secret", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set(reewild.SignatureHeader, string(secret)) }, http.StatusUnauthorized, nothing},
		{"signature is the secret in hex", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set(reewild.SignatureHeader, hex.EncodeToString(secret)) }, http.StatusUnauthorized, nothing},
		{"empty signature", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set(reewild.SignatureHeader, "") }, http.StatusUnauthorized, nothing},
		{"signature of the empty body", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set(reewild.SignatureHeader, reewild.Sign(secret, nil)) }, http.StatusUnauthorized, nothing},
		{"sha256= prefix only", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set(reewild.SignatureHeader, "sha256=") }, http.StatusUnauthorized, nothing},
		{"content type with CRLF", stage(`"subTotal":1`), func(r *http.Request) { r.Header.Set("Content-Type", "application/json\r\nX-Evil: 1") }, http.StatusUnsupportedMediaType, nothing},
		{"content type with a huge parameter", stage(`"subTotal":1`), func(r *http.Request) {
			r.Header.Set("Content-Type", "application/json; x="+strings.Repeat("a", 60_000))
		}, http.StatusOK, recorded},
		{"source with CRLF", stage(`"subTotal":1`), func(r *http.Request) { r.SetPathValue("source", "reewild\r\nX-Evil: 1") }, http.StatusNotFound, nothing},
		{"source of 10 KB", stage(`"subTotal":1`), func(r *http.Request) { r.SetPathValue("source", strings.Repeat("s", 10_000)) }, http.StatusNotFound, nothing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, webhook.Options{MaxBodyBytes: hostileLimit})
			r := request("reewild", tc.body, secret)
			r.SetPathValue("source", "reewild")
			if tc.mutate != nil {
				tc.mutate(r)
			}
			w := httptest.NewRecorder()
			// Straight to the handler: the mux would 404 a mutated path
			// value before the handler saw it.
			f.handler().ServeHTTP(w, r)
			expectAnswer(t, w, tc.code)
			quarantine := f.store.Stream(aggregate.QuarantineStream("reewild"))
			entity := f.store.Count() - len(quarantine)
			switch tc.stored {
			case nothing:
				if f.store.Count() != 0 {
					t.Fatalf("%d events stored, want none", f.store.Count())
				}
			case quarantined:
				if len(quarantine) != 1 || entity != 0 {
					t.Fatalf("%d quarantined, %d entity events; want 1 and 0", len(quarantine), entity)
				}
			case recorded:
				if entity != 1 || len(quarantine) != 0 {
					t.Fatalf("%d entity events, %d quarantined; want 1 and 0", entity, len(quarantine))
				}
				if bytes.Contains(tc.body, []byte(rid)) && len(f.store.Stream("receipt-reewild."+rid)) != 1 {
					t.Fatal("the event is not on the receipt's stream")
				}
			}
			checkLogLines(t, f.logs)
		})
	}
}

// expectAnswer checks the status, that the body is the fixed JSON of that
// status, and that the answer's headers are the handler's own fixed set:
// nothing from the request is echoed into them.
func expectAnswer(t *testing.T, w *httptest.ResponseRecorder, code int) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	allowed := map[string]bool{"Content-Type": true, "Content-Length": true, "X-Content-Type-Options": true,
		"Retry-After": true, "Allow": true, webhook.PositionHeader: true}
	for k, vs := range w.Header() {
		if !allowed[k] {
			t.Fatalf("unexpected answer header %s: %q", k, vs)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				t.Fatalf("header %s carries a line break: %q", k, v)
			}
		}
	}
	if w.Body.Len() > 256 {
		t.Fatalf("answer of %d bytes: %.100s…", w.Body.Len(), w.Body)
	}
}

// checkLogLines checks that every log line is one JSON object on one line:
// a hostile value (a source with CRLF, invalid UTF-8) cannot forge a line.
func checkLogLines(t *testing.T, logs *lockedBuffer) {
	t.Helper()
	for _, l := range logs.lines(t) {
		if l["msg"] != "webhook delivery" {
			t.Fatalf("unexpected log line %v", l)
		}
	}
}

// handler returns the fixture's mux without routing, for requests whose
// path values are set by hand.
func (f *fixture) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := f.mux.Handler(request("reewild", nil, nil))
		if pattern == "" {
			f.t.Fatal("no handler for /webhooks/reewild")
		}
		h.ServeHTTP(w, r)
	})
}

// TestConcurrentBadSignatures: thousands of concurrent deliveries with bad
// signatures are all answered 401, reach neither the store's reads nor its
// appends, and leave nothing behind.
func TestConcurrentBadSignatures(t *testing.T) {
	f := newFixture(t, webhook.Options{})
	body := readExample(t, "rewards.awarded")
	const n, workers = 4000, 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				b := bytes.Replace(body, []byte(exampleReceipt), fmt.Appendf(nil, "%036d", i), 1)
				var sig string
				switch i % 4 {
				case 0:
					sig = reewild.Sign([]byte(fmt.Sprintf("guess-%d", i)), b)
				case 1:
					sig = reewild.Sign(secret, body) // signature of another body
				case 2:
					mac := reewild.Sign(secret, b)
					sig = mac[:63] + "0" // one digit off
					if sig == mac {
						sig = mac[:63] + "1"
					}
				default:
					raw, _ := hex.DecodeString(reewild.Sign([]byte("x"), b))
					sig = base64.StdEncoding.EncodeToString(raw)
				}
				r := request("reewild", b, nil)
				r.Header.Set(reewild.SignatureHeader, sig)
				rec := f.do(r)
				mu.Lock()
				codes[rec.Code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] != n {
		t.Fatalf("answers %v, want %d × 401", codes, n)
	}
	reads := f.store.ReadCalls()
	if f.store.Count() != 0 || f.store.AppendCalls() != 0 || reads != 0 {
		t.Fatalf("bad signatures reached the store: %d events, %d appends, %d reads", f.store.Count(), f.store.AppendCalls(), reads)
	}
	if got := counter(t, f.reg, "reewild", "bad_signature"); got != n {
		t.Fatalf("bad_signature counted %v, want %d", got, n)
	}
}

// TestSecretsNeverLeak sends every kind of delivery — good, duplicate,
// quarantined, signed with the wrong secret, carrying the secret itself as
// its signature, in its body, in the path — and checks that no log line and
// no answer holds a secret in any encoding, or a signature header's value.
func TestSecretsNeverLeak(t *testing.T) {
	f := newFixture(t, webhook.Options{MaxBodyBytes: 4096})
	good := readExample(t, "receipt.extracted")
	var answers bytes.Buffer
	var signatures []string
	send := func(r *http.Request) {
		t.Helper()
		if s := r.Header.Get(reewild.SignatureHeader); len(s) >= 16 {
			signatures = append(signatures, s)
		}
		w := f.do(r)
		answers.WriteString(w.Body.String())
		for k, vs := range w.Header() {
			answers.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
	}
	send(request("reewild", good, secret))
	send(request("reewild", good, secret))  // duplicate
	send(request("reewild", good, rotated)) // second secret
	send(request("reewild", []byte(`{"eventType":"nope"}`), secret))
	send(request("reewild", []byte(`not json`), secret))
	send(request("reewild", good, []byte("wrong")))
	send(request("reewild", jsonOfSize(t, 5000), secret))
	for _, sig := range []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), "sha256=" + string(secret)} {
		r := request("reewild", good, nil)
		r.Header.Set(reewild.SignatureHeader, sig)
		send(r)
	}
	r := request("reewild", good, secret)
	r.Header.Set("Authorization", "Bearer "+string(secret))
	send(r)
	// A token-style path: the token part is never logged.
	r = request("reewild", good, secret)
	r.URL.Path = "/webhooks/reewild/" + string(secret)
	r.RequestURI = r.URL.Path
	send(r)
	send(request("reewild", []byte(`{"eventType":"`+string(secret)+`"}`), []byte("wrong")))

	logs := f.logs.String()
	for _, s := range [][]byte{secret, rotated} {
		for _, enc := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s)} {
			if strings.Contains(logs, enc) {
				t.Errorf("a secret (%.6s…) appears in the logs", enc)
			}
			if strings.Contains(answers.String(), enc) {
				t.Errorf("a secret (%.6s…) appears in an answer", enc)
			}
		}
	}
	for _, sig := range signatures {
		if strings.Contains(logs, sig) {
			t.Errorf("a signature header value (%.8s…) appears in the logs", sig)
		}
	}
	if strings.Contains(logs, "Bearer") {
		t.Error("an Authorization header appears in the logs")
	}
}
