package tokenauth_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// A Checker takes the token from the Authorization header or from the URL
// (webhook.TokenPattern), and refuses everything else with an error
// wrapping webhook.ErrUnauthenticated.
func ExampleChecker_Check() {
	c, err := tokenauth.New(
		[][]byte{[]byte("0123456789abcdef-current"), []byte("0123456789abcdef-previous")},
		[]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	)
	if err != nil {
		panic(err)
	}

	r := httptest.NewRequest("POST", "/webhooks/retm", strings.NewReader(`{}`))
	r.RemoteAddr = "192.0.2.7:50123"
	r.Header.Set("Authorization", "Bearer 0123456789abcdef-previous")
	m, err := c.Check(r)
	fmt.Println(m.Index, m.Verification.Scheme, err)

	r = httptest.NewRequest("POST", "/webhooks/retm/0123456789abcdef-current", strings.NewReader(`{}`))
	r.RemoteAddr = "192.0.2.7:50123"
	r.SetPathValue("token", "0123456789abcdef-current")
	m, err = c.Check(r)
	fmt.Println(m.Index, m.Verification.Scheme, err)

	r.RemoteAddr = "203.0.113.9:50123"
	_, err = c.Check(r)
	fmt.Println(errors.Is(err, webhook.ErrUnauthenticated))
	// Output:
	// 1 bearer-token <nil>
	// 0 path-token <nil>
	// true
}
