package webhook_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// FuzzIngest drives the whole handler with arbitrary bodies, content types
// and signature headers. Whatever comes in: nothing panics; the status is
// one of the contract's; a delivery not signed with the secret is never
// stored and never 200; a 200 stores at most one event and says accepted,
// duplicate or quarantined; anything else stores nothing.
func FuzzIngest(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "application/json", "", true)
	}
	f.Add([]byte(`{"eventType":"receipt.extracted","data":{"receiptID":"r","subTotal":1e400}}`), "application/json", "", true)
	f.Add([]byte(`[[[[[[[[`), "application/json; charset=utf-8", "", true)
	f.Add([]byte("{\"eventType\":\"receipt.failed\",\"data\":{\"receiptID\":\"\xff\"}}"), "application/cloudevents+json", "", true)
	f.Add([]byte(`{}`), "text/plain", "sha256=00", false)
	f.Add([]byte(``), "", "", false)

	f.Fuzz(func(t *testing.T, body []byte, contentType, header string, signed bool) {
		fx := newFixture(t, webhook.Options{MaxBodyBytes: 64 << 10})
		r := request("reewild", body, nil)
		r.Header.Set("Content-Type", contentType)
		valid := false
		if signed {
			r.Header.Set(reewild.SignatureHeader, reewild.Sign(secret, body))
			valid = true
		} else {
			r.Header.Set(reewild.SignatureHeader, header)
			_, err := reewildProvider(t).Verify(r, body, now)
			valid = err == nil // the fuzzer found the MAC: fine, it is signed
		}
		before := fx.store.Count()
		w := fx.do(r)
		after := fx.store.Count()
		switch w.Code {
		case http.StatusOK:
			if !valid {
				t.Fatalf("unsigned delivery answered 200")
			}
			var a answer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
				t.Fatalf("200 answer %q: %v", w.Body, err)
			}
			switch a.Status {
			case "accepted", "quarantined":
				if after != before+1 && !(a.Status == "quarantined" && after == before) {
					t.Fatalf("%s stored %d events", a.Status, after-before)
				}
			case "duplicate":
				if after != before {
					t.Fatal("duplicate stored an event")
				}
			default:
				t.Fatalf("200 with status %q", a.Status)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			if after != before {
				t.Fatalf("%d stored %d events", w.Code, after-before)
			}
			if w.Code != http.StatusUnauthorized && w.Code != http.StatusUnsupportedMediaType && w.Code != http.StatusRequestEntityTooLarge && !valid {
				t.Fatalf("unsigned delivery answered %d, not 401", w.Code)
			}
		default:
			t.Fatalf("status %d outside the contract: %s", w.Code, w.Body)
		}
		expectAnswer(t, w, w.Code)
	})
}

func reewildProvider(t *testing.T) *reewild.Provider {
	p, err := reewild.New(reewild.Config{Source: "reewild", Secrets: [][]byte{secret, rotated}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
