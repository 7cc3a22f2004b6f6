package retm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
)

// FuzzVerify: Verify never panics, fails only with ErrUnauthenticated, and
// accepts a delivery only when it presents exactly one configured token
// (as Bearer or as the path token) and, for the merchant-bound token, a
// body whose business references all name its merchant.
func FuzzVerify(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body, "Bearer "+string(testToken), "")
		f.Add(ex.Body, "Bearer "+string(merchantToken), "")
		f.Add(ex.Body, "", string(merchantToken))
	}
	f.Add([]byte(`{"business_refrence":"other","reward_code":"x"}`), "Bearer "+string(merchantToken), "")
	f.Add([]byte(`{"business_reference":1,"business_refrence":"`+merchant+`"}`), "", string(merchantToken))
	f.Add([]byte("not json"), "Bearer "+string(otherToken[:9]), string(testToken))

	p := newProvider(f, retm.Config{Tokens: []retm.Token{{Value: testToken}, {Value: otherToken}, {Value: merchantToken, Merchant: merchant}}})

	f.Fuzz(func(t *testing.T, body []byte, authorization, path string) {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/retm", nil)
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		r.SetPathValue("token", path)

		presented := map[string]bool{}
		if scheme, rest, _ := strings.Cut(strings.TrimSpace(authorization), " "); strings.EqualFold(scheme, "Bearer") {
			presented[strings.TrimSpace(rest)] = true
		}
		if path != "" {
			presented[path] = true
		}
		v, err := p.Verify(r, body, receivedAt)
		if err != nil {
			if !errors.Is(err, webhook.ErrUnauthenticated) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
			}
			return
		}
		if len(presented) != 1 {
			t.Fatalf("Verify accepted auth %q path %q: %+v", authorization, path, v)
		}
		switch {
		case presented[string(testToken)], presented[string(otherToken)]:
		case presented[string(merchantToken)]:
			var refs struct {
				A, B json.RawMessage
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil {
				refs.A, refs.B = m["business_refrence"], m["business_reference"]
			}
			for _, ref := range []json.RawMessage{refs.A, refs.B} {
				if len(ref) > 0 && string(ref) != "null" && !bytes.Equal(ref, []byte(`"`+merchant+`"`)) {
					t.Fatalf("merchant token accepted a body naming %s", ref)
				}
			}
		default:
			t.Fatalf("Verify accepted auth %q path %q: %+v", authorization, path, v)
		}
	})
}

// FuzzNormalize: Normalize never panics; it fails only with ErrUnknownEvent
// or ErrUnnormalizable; a success names a stream of the source in one of
// RETM's categories, a dedupe key, and data that encodes to JSON keeping the
// body; a Reply is the documented 400, only for questions.
func FuzzNormalize(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
	}
	f.Add([]byte(`{"event":"order.created","invoice_id":"1","total_price":"-0.0e+5","status":"9","timestamp":"2025-1-7 9:05:00"}`))
	f.Add([]byte(`{"event":"order.voided","invoice_id":1e3}`))
	f.Add([]byte(`{"event":"order.created","invoice_id":1,"timestamp":"9999-12-31T23:59:59-01:00"}`))
	f.Add([]byte(`{"event":"customer.deleted","customer":{"id":"c","email":7},"timestamp":"0001-01-01T00:00:00"}`))
	f.Add([]byte(`{"reward_code":7,"date":"2025-12-17"}`))
	f.Add([]byte(`{"code":"x","endpoint":"e","message":null}`))
	f.Add([]byte(`{"event":null,"reward_code":null,"endpoint":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))

	p := newProvider(f, retm.Config{Currency: "SAR", Tokens: []retm.Token{{Value: testToken, Merchant: merchant}}})
	categories := map[string]bool{
		aggregate.CategoryOrder: true, aggregate.CategoryCustomer: true, aggregate.CategoryRedemption: true,
		aggregate.CategoryQuestion: true, aggregate.CategoryNotice: true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.Normalize(delivery(body))
		if webhooktest.Refused(t, err) {
			if n.Reply != nil {
				t.Fatalf("failed Normalize has a Reply")
			}
			return
		}
		if n.Fact.DedupeKey == "" || n.Fact.Type != aggregate.TypeEntityEventRecorded || n.Fact.Data == nil || n.EventType == "" {
			t.Fatalf("incomplete fact %+v (event type %q)", n.Fact, n.EventType)
		}
		category, source, id, err := aggregate.ParseStreamID(n.Fact.Stream)
		if err != nil || !categories[category] || source != "retm" || id == "" {
			t.Fatalf("stream %q: category %q source %q id %q err %v", n.Fact.Stream, category, source, id, err)
		}
		rec := n.Fact.Data.(aggregate.EntityEventRecorded)
		if rec.Kind != category || rec.EntityID != id {
			t.Fatalf("Kind %q EntityID %q on stream %q", rec.Kind, rec.EntityID, n.Fact.Stream)
		}
		if (n.Reply != nil) != (category == aggregate.CategoryQuestion) {
			t.Fatalf("Reply %v on a %s fact", n.Reply, category)
		}
		if n.Reply != nil {
			checkReply(t, n.Reply.Status, n.Reply.Body)
		}
		webhooktest.CheckAccepted(t, body, n.Fact)
	})
}
