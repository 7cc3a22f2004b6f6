package standard_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
)

// TestNormalizeReadsAsJavaScript: keys match exactly and the last of a
// repeated key wins, as the sender's own JavaScript (JSON.parse) reads the
// body (issue 12, item 8), along the configured entity and status paths
// too. Standard's decoder always read the body into maps, which match
// exactly; this holds it to that.
func TestNormalizeReadsAsJavaScript(t *testing.T) {
	for _, tc := range []struct {
		name, body     string
		stream, status string
		unnormalizable bool
	}{
		{"status, a case variant after the key", `{"type":"order.paid","data":{"id":"o1","status":"paid","STATUS":"void"}}`, "order-storefront.o1", "paid", false},
		{"status, the key twice: the last", `{"type":"order.paid","data":{"id":"o1","status":"void","status":"paid"}}`, "order-storefront.o1", "paid", false},
		{"entity id, a case variant after the key", `{"type":"order.paid","data":{"id":"o1","ID":"o2","status":"paid"}}`, "order-storefront.o1", "paid", false},
		{"TYPE alone", `{"TYPE":"order.paid","data":{"id":"o1"}}`, "", "", true},
		{"DATA alone", `{"type":"order.paid","DATA":{"id":"o1"}}`, "", "", true},
		{"data twice: the last, whole", `{"type":"order.paid","data":{"id":"o2","status":"void"},"data":{"id":"o1"}}`, "order-storefront.o1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, testSecret).Normalize(delivery([]byte(tc.body)))
			if !webhooktest.Normalized(t, n, err, tc.unnormalizable) {
				return
			}
			if rec := n.Fact.Data.(aggregate.EntityEventRecorded); n.Fact.Stream != tc.stream || rec.Status != tc.status {
				t.Fatalf("stream %s, status %q; want %s, %q", n.Fact.Stream, rec.Status, tc.stream, tc.status)
			}
		})
	}
}
