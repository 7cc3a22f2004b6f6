package reap_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/reap"
)

// ParsePublicKeys reads the PEM keys Reap publishes; KeyID is what the
// event metadata records for each.
func ExampleParsePublicKeys() {
	pemData, err := os.ReadFile("../../../examples/reap/reap-production.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	keys, err := reap.ParsePublicKeys(pemData)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range keys {
		id, _ := reap.KeyID(k)
		fmt.Println(k.N.BitLen(), "bits,", id)
	}
	// Output:
	// 2048 bits, sha256:a44f699f
}

// CompactJSON is what a JavaScript sender's JSON.stringify(JSON.parse(body))
// returns, which json.Compact is not: numbers, escapes and repeated keys are
// rewritten too.
func ExampleCompactJSON() {
	body := `{
  "eventType": "account_status_change",
  "data": {"message": "caf\u00e9 \/ 1.0", "attempt": 1.0, "status": "PENDING", "status": "APPROVED"}
}`
	compact, err := reap.CompactJSON([]byte(body))
	fmt.Println(string(compact), err)
	// Output:
	// {"eventType":"account_status_change","data":{"message":"café / 1.0","attempt":1,"status":"APPROVED"}} <nil>
}

// Verify accepts a signature over the raw body or over its compact JSON
// form, and says which.
func ExampleProvider_Verify() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := reap.New(reap.Config{Source: "reap", PublicKeys: []*rsa.PublicKey{&key.PublicKey}})
	if err != nil {
		fmt.Println(err)
		return
	}
	body := []byte("{\n  \"eventType\": \"account_status_change\",\n  \"data\": {\"entityId\": \"acct-1\", \"status\": \"APPROVED\"}\n}\n")
	compact, _ := reap.CompactJSON(body)
	for _, signed := range [][]byte{body, compact} {
		sig, _ := reap.Sign(key, signed)
		r := httptest.NewRequest(http.MethodPost, "/webhooks/reap", strings.NewReader(string(body)))
		r.Header.Set(reap.SignatureHeader, sig)
		v, err := p.Verify(r, body, time.Now())
		fmt.Println(v.Scheme, err)
	}
	// Output:
	// rsa-sha512-raw <nil>
	// rsa-sha512-compact-json <nil>
}
