package standard_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

// FuzzVerify: a delivery verifies only if webhook-signature lists, as v1,
// the HMAC of exactly its id, timestamp and body under the key, and the
// timestamp is within the tolerance; a delivery signed with Sign verifies,
// and stops verifying when its body, id, timestamp or key changes. Nothing
// panics, and every failure is ErrUnauthenticated.
func FuzzVerify(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body, testKey, msgID, int64(0), standard.Sign(testKey, msgID, now, ex.Body))
	}
	f.Add([]byte(vectorBody), []byte("k"), vectorID, int64(-300), vectorSignature+" v1a,x v1,")
	f.Add([]byte{}, []byte{0}, "m", int64(301), "v1,"+strings.Repeat("A", 43)+"=")
	f.Add([]byte("not json"), []byte("whsec_"), "a.b", int64(1), "v2,abc")

	f.Fuzz(func(t *testing.T, body, key []byte, id string, skew int64, header string) {
		if len(key) == 0 || bytes.HasPrefix(key, []byte(standard.SecretPrefix)) {
			return // raw keys only: the whsec_ form is covered by the unit tests
		}
		p := newProvider(t, key)
		skew %= int64(2 * standard.DefaultTolerance / time.Second)
		sent := now.Add(time.Duration(skew) * time.Second)
		ts := strconv.FormatInt(sent.Unix(), 10)
		verify := func(b []byte, id, ts, sig string) bool {
			h := headers{id: []string{id}, timestamp: []string{ts}, signature: []string{sig}}
			v, err := p.Verify(requestWith(b, h), b, now)
			if err != nil {
				if !errors.Is(err, webhook.ErrUnauthenticated) {
					t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
				}
				return false
			}
			if v.Scheme != standard.Scheme || v.KeyID != webhook.KeyID(key) || v.DeliveryID != id {
				t.Fatalf("Verification %+v", v)
			}
			return true
		}

		// The arbitrary header.
		if verify(body, id, ts, header) {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(id + "." + ts + "."))
			m.Write(body)
			sum := m.Sum(nil)
			listed := false
			for _, entry := range strings.Fields(header) {
				version, sig, _ := strings.Cut(entry, ",")
				if version != "v1" {
					continue
				}
				for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
					if b, err := enc.DecodeString(sig); err == nil && hmac.Equal(b, sum) {
						listed = true
					}
				}
			}
			if !listed {
				t.Fatalf("header %q verified without listing the v1 HMAC", header)
			}
			if strings.Contains(id, ".") || id == "" {
				t.Fatalf("webhook-id %q verified", id)
			}
		}

		// The delivery as Sign makes it.
		sig := standard.Sign(key, id, sent, body)
		within := skew >= -int64(standard.DefaultTolerance/time.Second) && skew <= int64(standard.DefaultTolerance/time.Second)
		idOK := id != "" && len(id) <= 256 && !strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '.' })
		if got := verify(body, id, ts, sig); got != (within && idOK) {
			t.Fatalf("own signature (skew %ds, id %q): verified = %v", skew, id, got)
		}
		if verify(append(append([]byte(nil), body...), ' '), id, ts, sig) {
			t.Fatal("signature verified another body")
		}
		if verify(body, id+"x", ts, sig) {
			t.Fatal("signature verified another webhook-id")
		}
		if verify(body, id, strconv.FormatInt(sent.Unix()+1, 10), sig) {
			t.Fatal("signature verified another webhook-timestamp")
		}
		if verify(body, id, ts, standard.Sign(append(append([]byte(nil), key...), 'x'), id, sent, body)) {
			t.Fatal("signature made with another key verified")
		}
	})
}

// FuzzNormalize: Normalize never panics; it fails only with
// ErrUnnormalizable; a success names a stream of the source's category,
// the webhook-id as its slot, and data that encodes to JSON keeping the
// body.
func FuzzNormalize(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
	}
	f.Add([]byte(vectorBody))
	f.Add([]byte(`{"type":"a","data":{"id":-0.5e3,"status":"\ud800"}}`))
	f.Add([]byte(`{"type":"a","data":{"id":"x","id":7},"timestamp":"2022-11-03T20:26:10.344522+01:00"}`))
	f.Add([]byte(`{"type":"a","data":null}`))
	f.Add([]byte(`{"type":"a","data":{"id":"x"},"timestamp":"9999-12-31T23:59:59-01:00"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))

	p := newProvider(f, testSecret)
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.Normalize(delivery(body))
		if err != nil {
			if !errors.Is(err, aggregate.ErrUnnormalizable) {
				t.Fatalf("Normalize error %v is not ErrUnnormalizable", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Normalize accepted a body that is not JSON")
		}
		fact := n.Fact
		category, source, id, err := aggregate.ParseStreamID(fact.Stream)
		if err != nil || category != "order" || source != testSource || id == "" {
			t.Fatalf("stream %q: %s %s %s %v", fact.Stream, category, source, id, err)
		}
		if fact.SlotKey != "webhook-id:"+msgID || !strings.HasPrefix(fact.DedupeKey, fact.SlotKey+":") ||
			fact.OnConflict != aggregate.Correct || fact.Type != aggregate.TypeEntityEventRecorded || n.EventType == "" {
			t.Fatalf("fact %+v (event type %q)", fact, n.EventType)
		}
		data, err := json.Marshal(fact.Data)
		if err != nil {
			t.Fatalf("marshal data: %v", err)
		}
		var back struct {
			EntityID  string          `json:"entity_id"`
			EventType string          `json:"event_type"`
			Raw       json.RawMessage `json:"raw"`
		}
		if err := json.Unmarshal(data, &back); err != nil || len(back.Raw) == 0 || back.EntityID != id || back.EventType != n.EventType {
			t.Fatalf("data %s lost the raw body, the entity id or the type (%v)", data, err)
		}
	})
}
