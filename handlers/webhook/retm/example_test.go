package retm_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
)

// RETM's Check Reward is a question: it is recorded, and the handler sends
// the Reply once the record is durable.
func ExampleProvider_Normalize() {
	p, err := retm.New(retm.Config{
		Source: "retm",
		Tokens: []retm.Token{{Value: []byte("example-token-0123456789"), Merchant: "brand-1"}},
	})
	if err != nil {
		panic(err)
	}
	body := []byte(`{"reward_code":"SUMMER25","business_refrence":"brand-1"}`)

	r := httptest.NewRequest("POST", "/webhooks/retm", strings.NewReader(string(body)))
	r.Header.Set("Authorization", "Bearer example-token-0123456789")
	v, err := p.Verify(r, body, time.Now())
	if err != nil {
		panic(err)
	}
	n, err := p.Normalize(webhook.Delivery{Body: body, Verification: v})
	if err != nil {
		panic(err)
	}
	fmt.Println(v.Scheme, n.EventType)
	fmt.Println(strings.SplitN(n.Fact.Stream, ".", 2)[0])
	fmt.Println(n.Reply.Status, string(n.Reply.Body))
	// Output:
	// bearer-token loyalty.check_reward
	// question-retm
	// 400 {"data":[],"message":"This reward code cannot be accepted: no reward decision is configured for this integration.","errors":["no reward decision configured"]}
}
