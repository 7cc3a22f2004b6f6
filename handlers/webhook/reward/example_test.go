package reward_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
)

// A credit is keyed by its transaction, so the same credit under another
// envelope id is a duplicate for the aggregate.
func ExampleProvider_Normalize() {
	p, err := reward.New(reward.Config{
		Source: "reward",
		Tokens: [][]byte{[]byte("example-token-0123456789")},
	})
	if err != nil {
		panic(err)
	}
	body := []byte(`{"id":"we_1","type":"balance.credit_points_issued","time":"2024-12-14T15:29:19Z",` +
		`"data":{"user":{"id":"u-42"},"transaction":{"id":"tx-9","amount":12.50}}}`)

	r := httptest.NewRequest("POST", "/webhooks/reward/example-token-0123456789", strings.NewReader(string(body)))
	r.SetPathValue("token", "example-token-0123456789")
	v, err := p.Verify(r, body, time.Now())
	if err != nil {
		panic(err)
	}
	n, err := p.Normalize(webhook.Delivery{Body: body, Verification: v})
	if err != nil {
		panic(err)
	}
	fmt.Println(v.Scheme)
	fmt.Println(n.Fact.Stream, n.Fact.Type)
	fmt.Println(n.Fact.DedupeKey)
	// Output:
	// path-token
	// user-reward.u-42 user.points_credited.v1
	// credit:tx-9
}
