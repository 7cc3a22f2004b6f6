package reusely_test

import (
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
)

// TestNormalizeReadsAsJavaScript: keys match exactly and the last of a
// repeated key wins, as the sender's own JavaScript (JSON.parse) reads the
// body (issue 12, item 8). Reusely's decoder always read the envelope into
// maps, which match exactly; this holds it to that.
func TestNormalizeReadsAsJavaScript(t *testing.T) {
	offer := func(top, data string) string {
		return `{"type":"offer.created","object_id":93092,"timestamp":"` + createdTS + `"` + top + `,"data":{"box_id":"B1"` + data + `}}`
	}
	for _, tc := range []struct {
		name, body               string
		stream, amount, objectID string
		unnormalizable           bool
	}{
		{"payout, a case variant after the key", offer("", `,"payout_amount":"5","PAYOUT_AMOUNT":"888"`), "offer-reusely.B1", "5", "93092", false},
		{"payout, a case variant alone", offer("", `,"Payout_Amount":"888"`), "offer-reusely.B1", "", "93092", false},
		{"payout, the key twice: the last", offer("", `,"payout_amount":"888","payout_amount":"5"`), "offer-reusely.B1", "5", "93092", false},
		{"box id, a case variant after the key", offer("", `,"BOX_ID":"B2","payout_amount":"5"`), "offer-reusely.B1", "5", "93092", false},
		{"object id, a case variant after the key", offer(`,"OBJECT_ID":1`, `,"payout_amount":"5"`), "offer-reusely.B1", "5", "93092", false},
		{"TYPE alone", `{"TYPE":"offer.created","object_id":93092,"timestamp":"` + createdTS + `","data":{"box_id":"B1"}}`, "", "", "", true},
		{"DATA alone", `{"type":"offer.created","object_id":93092,"timestamp":"` + createdTS + `","DATA":{"box_id":"B1"}}`, "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, testSecret).Normalize(delivery(t, []byte(tc.body)))
			if !webhooktest.Normalized(t, n, err, tc.unnormalizable) {
				return
			}
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			amount := ""
			if rec.Amount != nil {
				amount = rec.Amount.String()
			}
			if n.Fact.Stream != tc.stream || amount != tc.amount || rec.Attributes["object_id"] != tc.objectID {
				t.Fatalf("stream %s, amount %q, object_id %q; want %s, %q, %q", n.Fact.Stream, amount, rec.Attributes["object_id"], tc.stream, tc.amount, tc.objectID)
			}
		})
	}
}
