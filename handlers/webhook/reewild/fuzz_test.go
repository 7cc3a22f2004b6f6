package reewild_test

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
)

// FuzzVerify: a body verifies under its own signature in every accepted
// encoding, never under a signature made for another body or with another
// secret, and an arbitrary header verifies only if it encodes the right MAC.
// Nothing panics.
func FuzzVerify(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body, testSecret, []byte(`{"eventType":"receipt.failed"}`), "sha256="+hex.EncodeToString(mac(testSecret, ex.Body)))
	}
	f.Add([]byte{}, []byte("k"), []byte{0}, "")
	f.Add([]byte("not json"), []byte("k\x00"), []byte("not json"), strings.Repeat("A", 43))

	f.Fuzz(func(t *testing.T, body, secret, other []byte, header string) {
		if len(secret) == 0 {
			return
		}
		p := newProvider(t, secret)
		verifies := func(b []byte, sig string) bool {
			_, err := p.Verify(requestWith(b, sig), b, time.Time{})
			if err != nil && !errors.Is(err, webhook.ErrUnauthenticated) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
			}
			return err == nil
		}
		sum := mac(secret, body)
		for _, sig := range encodings(sum) {
			if !verifies(body, sig) {
				t.Fatalf("own signature %q does not verify", sig)
			}
		}
		if !bytes.Equal(other, body) && verifies(body, hex.EncodeToString(mac(secret, other))) {
			t.Fatalf("signature of another body verifies")
		}
		otherSecret := append(append([]byte(nil), secret...), 'x')
		if verifies(body, hex.EncodeToString(mac(otherSecret, body))) {
			t.Fatalf("signature made with another secret verifies")
		}
		if verifies(body, header) {
			v := strings.TrimSpace(header)
			if len(v) >= 7 && strings.EqualFold(v[:7], "sha256=") {
				v = v[7:]
			}
			if !decodesTo(v, sum) {
				t.Fatalf("header %q verifies but does not encode the MAC", header)
			}
		}
	})
}

// encodings returns every accepted spelling of a MAC.
func encodings(sum []byte) []string {
	h := hex.EncodeToString(sum)
	return []string{
		h, strings.ToUpper(h), "sha256=" + h, "SHA256=" + h,
		base64.StdEncoding.EncodeToString(sum), base64.RawStdEncoding.EncodeToString(sum),
		base64.URLEncoding.EncodeToString(sum), base64.RawURLEncoding.EncodeToString(sum),
	}
}

// decodesTo reports whether v, in any accepted encoding, is sum.
func decodesTo(v string, sum []byte) bool {
	if b, err := hex.DecodeString(v); err == nil && hmac.Equal(b, sum) {
		return true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && hmac.Equal(b, sum) {
			return true
		}
	}
	return false
}

// FuzzNormalize: Normalize never panics; it fails only with ErrUnknownEvent
// or ErrUnnormalizable; a success names a stream of the source and a dedupe
// key, and its data encodes to JSON that keeps the body.
func FuzzNormalize(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
		f.Add(withEventType(f, ex.Body, strings.ReplaceAll(ex.Name, ".", "_")))
	}
	f.Add([]byte(`{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":7,"totalPoints":"1e3"}}}`))
	// Times outside the years 1–9999 once in UTC: unparsable, not an event
	// that cannot be written.
	f.Add([]byte(`{"eventType":"receipt.uploaded","data":{"receiptID":"r","uploadedAt":"0000-01-01T00:00:00+01:00"}}`))
	f.Add([]byte(`{"eventType":"user.enrolled","data":{"userID":"u","createdAt":"9999-12-31T23:59:59-01:00"}}`))
	f.Add([]byte(`{"eventType":"receipt.uploaded","data":{"receiptID":"r","amount":-0.0e+5,"uploadedAt":"2025-11-21T15:00:45.1070976"}}`))
	f.Add([]byte(`{"eventType":"user.enrolled","data":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))

	p := newProvider(f, testSecret)
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.Normalize(delivery(body))
		if webhooktest.Refused(t, err) {
			return
		}
		if n.Fact.Stream == "" || n.Fact.DedupeKey == "" || n.Fact.Type == "" || n.Fact.SlotKey == "" {
			t.Fatalf("incomplete fact %+v", n.Fact)
		}
		_, source, id, err := aggregate.ParseStreamID(n.Fact.Stream)
		if err != nil || source != "reewild" || id == "" {
			t.Fatalf("stream %q: source %q id %q err %v", n.Fact.Stream, source, id, err)
		}
		webhooktest.CheckAccepted(t, body, n.Fact)
	})
}
