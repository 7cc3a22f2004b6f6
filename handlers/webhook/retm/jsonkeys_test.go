package retm_test

import (
	"errors"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
)

// TestNormalizeReadsAsJavaScript: keys match exactly and the last of a
// repeated key wins, as the sender's own JavaScript (JSON.parse) reads the
// body (issue 12, item 8), in the body and in its customer object.
func TestNormalizeReadsAsJavaScript(t *testing.T) {
	for _, tc := range []struct {
		name, body     string
		stream, amount string
		unknown        bool
	}{
		{"total, a case variant after the key", `{"event":"order.created","invoice_id":1532,"total_price":"5","TOTAL_PRICE":"888"}`, "order-retm.1532", "5", false},
		{"total, a case variant before the key", `{"event":"order.created","invoice_id":1532,"Total_Price":"888","total_price":"5"}`, "order-retm.1532", "5", false},
		{"total, a case variant alone", `{"event":"order.created","invoice_id":1532,"TOTAL_PRICE":"888"}`, "order-retm.1532", "", false},
		{"total, the key twice: the last", `{"event":"order.created","invoice_id":1532,"total_price":"888","total_price":"5"}`, "order-retm.1532", "5", false},
		{"invoice id, a case variant after the key", `{"event":"order.created","invoice_id":1532,"INVOICE_ID":9999,"total_price":"5"}`, "order-retm.1532", "5", false},
		{"EVENT alone", `{"EVENT":"order.created","invoice_id":1532,"total_price":"5"}`, "", "", true},
		{"customer id, a case variant after the key", `{"event":"customer.created","customer":{"id":"c1","ID":"c2"}}`, "customer-retm.c1", "", false},
		{"customer, a case variant", `{"event":"customer.created","customer":{"id":"c1"},"CUSTOMER":{"id":"c2"}}`, "customer-retm.c1", "", false},
		{"customer twice: the last, whole", `{"event":"customer.created","customer":{"id":"c2","name":"x"},"customer":{"id":"c1"}}`, "customer-retm.c1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := newProvider(t, retm.Config{}).Normalize(delivery([]byte(tc.body)))
			if tc.unknown {
				if !errors.Is(err, aggregate.ErrUnknownEvent) {
					t.Fatalf("Normalize = %+v, %v; want ErrUnknownEvent", n.Fact, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rec := n.Fact.Data.(aggregate.EntityEventRecorded)
			amount := ""
			if rec.Amount != nil {
				amount = rec.Amount.String()
			}
			if n.Fact.Stream != tc.stream || amount != tc.amount {
				t.Fatalf("stream %s, amount %q; want %s, %q", n.Fact.Stream, amount, tc.stream, tc.amount)
			}
		})
	}
}
