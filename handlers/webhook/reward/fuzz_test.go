package reward_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
)

// FuzzVerify: Verify never panics, fails only with ErrUnauthenticated, and
// accepts a delivery only when it presents exactly one of the configured
// tokens (as Bearer or as the path token) from an allowed address, whatever
// the body.
func FuzzVerify(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body, "Bearer "+string(testToken), "", "192.0.2.1:1")
		f.Add(ex.Body, "", string(otherToken), "192.0.2.1:1")
	}
	f.Add([]byte("not json"), "Bearer "+string(testToken[:8]), string(testToken), "203.0.113.1:1")
	f.Add([]byte{}, "Basic x", "", "[2001:db8::1]:443")

	open := newProvider(f, reward.Config{Tokens: [][]byte{testToken, otherToken}})
	listed := newProvider(f, reward.Config{Tokens: [][]byte{testToken, otherToken}, AllowIPs: webhooktest.Prefixes("192.0.2.0/24")})

	f.Fuzz(func(t *testing.T, body []byte, authorization, path, remote string) {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reward", nil)
		r.RemoteAddr = remote
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
		for _, p := range []*reward.Provider{open, listed} {
			v, err := p.Verify(r, body, receivedAt)
			if err != nil {
				if !errors.Is(err, webhook.ErrUnauthenticated) {
					t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
				}
				continue
			}
			if len(presented) != 1 || !(presented[string(testToken)] || presented[string(otherToken)]) {
				t.Fatalf("Verify accepted auth %q path %q: %+v", authorization, path, v)
			}
			if p == listed && !strings.HasPrefix(remote, "192.0.2.") && !strings.HasPrefix(remote, "[::ffff:192.0.2.") {
				t.Fatalf("Verify accepted remote %q outside the allow-list", remote)
			}
		}
	})
}

// FuzzNormalize: Normalize never panics; it fails only with ErrUnknownEvent
// or ErrUnnormalizable; a success names a user stream of the source, a
// dedupe key, and data that encodes to JSON keeping the body.
func FuzzNormalize(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
	}
	f.Add([]byte(`{"id":7,"type":"balance.credit_points_issued","data":{"user":{"id":1},"transaction":{"id":"t","amount":"1e3"}}}`))
	f.Add([]byte(`{"id":7,"type":"balance.credit_points_issued","time":"0000-01-01T00:00:00+01:00","data":{"user":{"id":1},"transaction":{"id":"t","amount":1}}}`))
	f.Add([]byte(`{"id":7,"type":"trigger_event.created","time":"9999-12-31T23:59:59-01:00","data":{"user":{"id":1}}}`))
	f.Add([]byte(`{"type":"trigger_event.created","time":"2024-12-14T15:29:18.821","data":{"user":{"id":"u"},"value":-0.0e+5}}`))
	f.Add([]byte(`{"id":"","type":"trigger_event.created","data":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))

	p := newProvider(f, reward.Config{})
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.Normalize(delivery(body))
		if webhooktest.Refused(t, err) {
			return
		}
		if n.Fact.DedupeKey == "" || n.Fact.Type == "" || n.Fact.Data == nil {
			t.Fatalf("incomplete fact %+v", n.Fact)
		}
		category, source, id, err := aggregate.ParseStreamID(n.Fact.Stream)
		if err != nil || category != aggregate.CategoryUser || source != "reward" || id == "" {
			t.Fatalf("stream %q: category %q source %q id %q err %v", n.Fact.Stream, category, source, id, err)
		}
		switch n.Fact.Type {
		case aggregate.TypeUserPointsCredited:
			c := n.Fact.Data.(aggregate.PointsCredited)
			if n.Fact.DedupeKey != "credit:"+c.TransactionID || c.Points.IsNegative() {
				t.Fatalf("credit %+v with dedupe key %q", c, n.Fact.DedupeKey)
			}
		case aggregate.TypeEntityEventRecorded:
		default:
			t.Fatalf("fact type %q", n.Fact.Type)
		}
		webhooktest.CheckAccepted(t, body, n.Fact)
	})
}
