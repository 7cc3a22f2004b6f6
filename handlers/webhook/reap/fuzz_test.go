package reap_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
)

// FuzzVerify: Verify never panics, every failure is ErrUnauthenticated, and
// it never accepts a body unless the header is a configured key's signature
// of the body or of its compact form (checked here with crypto/rsa
// directly; FuzzCompactJSON checks that the compact form has the body's
// value). The seeds are the examples with their raw and compact signatures
// by both configured keys, which must verify with the right scheme and key
// id, and signatures by a key that is not configured, which must not.
//
// Signing is left out of the fuzzed function on purpose: an RSA private-key
// operation under coverage instrumentation costs about 10 ms, which stalls
// the fuzzer; verifying costs a fraction of it.
func FuzzVerify(f *testing.F) {
	primary, second, stranger := testKeys(f)
	type accepted struct{ scheme, keyID string }
	valid := make(map[string]accepted) // body + "\x00" + header
	for _, ex := range loadExamples(f) {
		for _, k := range []*rsa.PrivateKey{primary, second} {
			raw, compact := sign(f, k, ex.Body), signCompact(f, k, ex.Body)
			valid[string(ex.Body)+"\x00"+raw] = accepted{reap.SchemeRaw, keyID(f, k)}
			valid[string(ex.Body)+"\x00"+compact] = accepted{reap.SchemeCompactJSON, keyID(f, k)}
			f.Add(ex.Body, raw)
			f.Add(ex.Body, compact)
		}
		f.Add(ex.Body, sign(f, stranger, ex.Body))
		f.Add(ex.Body, signCompact(f, stranger, ex.Body))
	}
	f.Add([]byte{}, "")
	f.Add([]byte(`{"a":1.0}`), strings.Repeat("A", 342)+"==")
	f.Add([]byte("not json"), "%%%")

	p := newProvider(f, primary, second)
	keys := []*rsa.PublicKey{&primary.PublicKey, &second.PublicKey}
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		v, err := p.Verify(requestWith(body, header), body, time.Time{})
		want, isValid := valid[string(body)+"\x00"+header]
		if err != nil {
			if !errors.Is(err, webhook.ErrUnauthenticated) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
			}
			if isValid {
				t.Fatalf("a valid %s signature by %s does not verify: %v", want.scheme, want.keyID, err)
			}
			return
		}
		if isValid && (v.Scheme != want.scheme || v.KeyID != want.keyID) {
			t.Fatalf("Verify = %+v, want %+v", v, want)
		}
		msg := body
		if v.Scheme == reap.SchemeCompactJSON {
			if msg, err = reap.CompactJSON(body); err != nil {
				t.Fatalf("verified over a compact form CompactJSON cannot make: %v", err)
			}
		} else if v.Scheme != reap.SchemeRaw {
			t.Fatalf("unknown scheme %q", v.Scheme)
		}
		if !signs(keys, strings.TrimSpace(header), msg) {
			t.Fatalf("header %q verifies (%+v) but is no configured key's signature of the message", header, v)
		}
	})
}

// signs reports whether header decodes, in some accepted base64 form, to a
// signature by one of keys of one of msgs.
func signs(keys []*rsa.PublicKey, header string, msgs ...[]byte) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		sig, err := enc.DecodeString(header)
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m == nil {
				continue
			}
			digest := sha512.Sum512(m)
			for _, k := range keys {
				if rsa.VerifyPKCS1v15(k, crypto.SHA512, digest[:], sig) == nil {
					return true
				}
			}
		}
	}
	return false
}

// FuzzNormalize: Normalize never panics; it fails only with ErrUnknownEvent
// or ErrUnnormalizable; a success is valid JSON and names an account stream
// of the source, a dedupe key from the eventId or the body's value hash,
// and data that encodes to JSON keeping the body. And the fact depends only
// on the body's JSON value as JavaScript reads it: the body and its compact
// form (what a compact-JSON signature covers) normalize alike, so a body
// re-serialized under such a signature cannot name another entity, event
// or status.
func FuzzNormalize(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
	}
	f.Add([]byte(`{"eventType":"account_status_change","data":{"entityId":7,"timestamp":1710928800123,"status":"APPROVED","status":1}}`))
	f.Add([]byte(`{"eventType":"account_status_change","data":{"entityId":"e","timestamp":"2024-03-20T10:00:00+0000","rejectLabels":["a",{"b":1}]}}`))
	f.Add([]byte(`{"eventType":"account_status_change","data":null}`))
	f.Add([]byte(`{"eventType":"account_status_change","data":{"entityId":"e","timestamp":"0000-01-01T00:00:00+01:00"}}`))
	f.Add([]byte(`{"eventType":"account_status_change","data":{"entityId":"e","timestamp":"9999-12-31T23:59:59-0100"}}`))
	f.Add([]byte(`{"eventType":"other"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))

	p := newProvider(f, func() *rsa.PrivateKey { k, _, _ := testKeys(f); return k }())
	f.Fuzz(func(t *testing.T, body []byte) {
		d := delivery(body)
		n, err := p.Normalize(d)
		if compact, cerr := reap.CompactJSON(body); cerr == nil {
			nc, err2 := p.Normalize(delivery(compact))
			if (err == nil) != (err2 == nil) || errors.Is(err, aggregate.ErrUnknownEvent) != errors.Is(err2, aggregate.ErrUnknownEvent) {
				t.Fatalf("body and compact form normalize differently: %v vs %v", err, err2)
			}
			if err == nil {
				a, b := n.Fact.Data.(aggregate.EntityEventRecorded), nc.Fact.Data.(aggregate.EntityEventRecorded)
				a.BodySHA256, a.Raw, b.BodySHA256, b.Raw = "", nil, "", nil
				if n.Fact.Stream != nc.Fact.Stream || n.Fact.DedupeKey != nc.Fact.DedupeKey || n.DeliveryID != nc.DeliveryID ||
					n.EventType != nc.EventType || !reflect.DeepEqual(a, b) {
					t.Fatalf("body and compact form normalize differently:\n%+v %+v\n%+v %+v", n.Fact, a, nc.Fact, b)
				}
			}
		}
		if webhooktest.Refused(t, err) {
			return
		}
		category, source, id, err := aggregate.ParseStreamID(n.Fact.Stream)
		if err != nil || category != aggregate.CategoryAccount || source != "reap" || id == "" {
			t.Fatalf("stream %q: category %q source %q id %q err %v", n.Fact.Stream, category, source, id, err)
		}
		bodyKey := "body:" + d.BodySHA256
		if _, err := reap.CompactJSON(body); err == nil {
			bodyKey = "body:" + valueSHA256(t, body)
		}
		if n.Fact.Type != aggregate.TypeEntityEventRecorded ||
			!(n.Fact.DedupeKey == bodyKey || strings.HasPrefix(n.Fact.DedupeKey, "event:") && len(n.Fact.DedupeKey) > len("event:")) {
			t.Fatalf("fact type %q dedupe key %q", n.Fact.Type, n.Fact.DedupeKey)
		}
		rec, ok := n.Fact.Data.(aggregate.EntityEventRecorded)
		if !ok || rec.EntityID != id || rec.Kind != "account" || (rec.StatusAt != nil && rec.Status == "") {
			t.Fatalf("data %+v", n.Fact.Data)
		}
		for k, v := range rec.Attributes {
			if v == "" || len(v) > 1024 {
				t.Fatalf("attribute %s = %q", k, v)
			}
		}
		webhooktest.CheckAccepted(t, body, n.Fact)
	})
}
