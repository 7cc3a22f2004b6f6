package reward_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
)

// TestNormalizeReadsAsJavaScript: keys match exactly and the last of a
// repeated key wins, as the sender's own JavaScript (JSON.parse) reads the
// body (issue 12, item 8).
func TestNormalizeReadsAsJavaScript(t *testing.T) {
	credit := func(user, tx string) string {
		return `{"id":"we_1","type":"balance.credit_points_issued","data":{"user":{` + user + `},"transaction":{"id":"tx1",` + tx + `}}}`
	}
	for _, tc := range []struct {
		name, body     string
		stream, points string
		unnormalizable bool
	}{
		{"amount, a case variant after the key", credit(`"id":"u1"`, `"amount":5,"AMOUNT":888`), "user-reward.u1", "5", false},
		{"amount, a case variant before the key", credit(`"id":"u1"`, `"Amount":888,"amount":5`), "user-reward.u1", "5", false},
		{"amount, a case variant alone", credit(`"id":"u1"`, `"AMOUNT":888`), "", "", true},
		{"amount, the key twice: the last", credit(`"id":"u1"`, `"amount":888,"amount":5`), "user-reward.u1", "5", false},
		{"user id, a case variant after the key", credit(`"id":"u1","ID":"u2"`, `"amount":5`), "user-reward.u1", "5", false},
		{"user id, the key twice: the last", credit(`"id":"u2","id":"u1"`, `"amount":5`), "user-reward.u1", "5", false},
		{"TYPE alone", `{"id":"we_1","TYPE":"balance.credit_points_issued","data":{"user":{"id":"u1"},"transaction":{"id":"tx1","amount":5}}}`, "", "", true},
		{"DATA alone", `{"id":"we_1","type":"balance.credit_points_issued","DATA":{"user":{"id":"u1"},"transaction":{"id":"tx1","amount":5}}}`, "", "", true},
		{"data twice: the last, whole", `{"id":"we_1","type":"balance.credit_points_issued","data":{"user":{"id":"u2"},"transaction":{"id":"tx1","amount":888}},"data":{"user":{"id":"u1"},"transaction":{"id":"tx1","amount":5}}}`, "user-reward.u1", "5", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, reward.Config{}).Normalize(delivery([]byte(tc.body)))
			if !webhooktest.Normalized(t, n, err, tc.unnormalizable) {
				return
			}
			if got := n.Fact.Data.(aggregate.PointsCredited); n.Fact.Stream != tc.stream || got.Points.String() != tc.points {
				t.Fatalf("stream %s, points %s; want %s, %s", n.Fact.Stream, got.Points, tc.stream, tc.points)
			}
		})
	}
}
