package reewild_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
)

// TestNormalizeReadsAsJavaScript: keys match exactly and the last of a
// repeated key wins, as the sender's own JavaScript (JSON.parse) reads the
// body (issue 12, item 8: "totalPoints":5,"TOTALPOINTS":888 was stored as
// 888 points, and "EVENTTYPE" alone was taken for the event type).
func TestNormalizeReadsAsJavaScript(t *testing.T) {
	award := func(tx string) string {
		return `{"eventType":"rewards.awarded","data":{"user":{"id":"u1"},"transaction":{"externalTransactionID":"r1",` + tx + `}}}`
	}
	for _, tc := range []struct {
		name, body     string
		stream, points string // want; points "" for a stage without an award
		stage          aggregate.Stage
		unnormalizable bool
	}{
		{"points, a case variant after the key", award(`"totalPoints":5,"TOTALPOINTS":888`), "receipt-reewild.r1", "5", aggregate.StageAwarded, false},
		{"points, a case variant before the key", award(`"TOTALPOINTS":888,"totalPoints":5`), "receipt-reewild.r1", "5", aggregate.StageAwarded, false},
		{"points, a case variant alone", award(`"TotalPoints":888`), "", "", "", true},
		{"points, the key twice: the last", award(`"totalPoints":888,"totalPoints":5`), "receipt-reewild.r1", "5", aggregate.StageAwarded, false},
		{"points, by an escaped key", award(`"totalPoints":888,"total\u0050oints":5`), "receipt-reewild.r1", "5", aggregate.StageAwarded, false},
		{"EVENTTYPE alone", `{"EVENTTYPE":"receipt.extracted","data":{"receiptID":"r1"}}`, "", "", "", true},
		{"eventType and a case variant", `{"eventType":"receipt.extracted","EventType":"rewards.awarded","data":{"receiptID":"r1"}}`, "receipt-reewild.r1", "", aggregate.StageExtracted, false},
		{"receipt id, a case variant after the key", `{"eventType":"receipt.extracted","data":{"receiptID":"r1","RECEIPTID":"r2"}}`, "receipt-reewild.r1", "", aggregate.StageExtracted, false},
		{"transaction, a case variant", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":5},"TRANSACTION":{"externalTransactionID":"r2","totalPoints":888}}}`, "receipt-reewild.r1", "5", aggregate.StageAwarded, false},
		{"data twice: the last, whole", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r1","totalPoints":888}},"data":{"transaction":{"externalTransactionID":"r1"}}}`, "", "", "", true},
		{"data twice: the last, whole, again", `{"eventType":"rewards.awarded","data":{"transaction":{"externalTransactionID":"r2","totalPoints":888}},"data":{"transaction":{"externalTransactionID":"r1","totalPoints":5}}}`, "receipt-reewild.r1", "5", aggregate.StageAwarded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, testSecret).Normalize(delivery([]byte(tc.body)))
			if !webhooktest.Normalized(t, n, err, tc.unnormalizable) {
				return
			}
			rec := n.Fact.Data.(aggregate.StageRecorded)
			points := ""
			if rec.Award != nil {
				points = rec.Award.Points.String()
			}
			if n.Fact.Stream != tc.stream || rec.Stage != tc.stage || points != tc.points {
				t.Fatalf("stream %s, stage %s, points %q; want %s, %s, %q", n.Fact.Stream, rec.Stage, points, tc.stream, tc.stage, tc.points)
			}
		})
	}
}
