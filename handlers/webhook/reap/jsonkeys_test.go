package reap_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
)

// TestNormalizeReadsAsJavaScript: keys match exactly and the last of a
// repeated key wins, as the sender's own JavaScript (JSON.parse) reads the
// body (issue 12, item 8). Reap's decoder always read the body into maps,
// which match exactly; this holds it to that.
func TestNormalizeReadsAsJavaScript(t *testing.T) {
	for _, tc := range []struct {
		name, body     string
		stream, status string
		unnormalizable bool
	}{
		{"status, a case variant after the key", `{"eventType":"account_status_change","data":{"entityId":"e1","status":"APPROVED","STATUS":"REJECTED"}}`, "account-reap.e1", "APPROVED", false},
		{"status, the key twice: the last", `{"eventType":"account_status_change","data":{"entityId":"e1","status":"REJECTED","status":"APPROVED"}}`, "account-reap.e1", "APPROVED", false},
		{"entity id, a case variant after the key", `{"eventType":"account_status_change","data":{"entityId":"e1","ENTITYID":"e2","status":"APPROVED"}}`, "account-reap.e1", "APPROVED", false},
		{"EVENTTYPE alone", `{"EVENTTYPE":"account_status_change","data":{"entityId":"e1","status":"APPROVED"}}`, "", "", true},
		{"data twice: the last, whole", `{"eventType":"account_status_change","data":{"entityId":"e2","status":"REJECTED"},"data":{"entityId":"e1","status":"APPROVED"}}`, "account-reap.e1", "APPROVED", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := normalizer(t).Normalize(delivery([]byte(tc.body)))
			if !webhooktest.Normalized(t, n, err, tc.unnormalizable) {
				return
			}
			if rec := n.Fact.Data.(aggregate.EntityEventRecorded); n.Fact.Stream != tc.stream || rec.Status != tc.status {
				t.Fatalf("stream %s, status %q; want %s, %q", n.Fact.Stream, rec.Status, tc.stream, tc.status)
			}
		})
	}
}
