package retm_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  retm.Config
		ok   bool
	}{
		{"one token", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken}}}, true},
		{"tokens with merchants, allow-list, currency, location", retm.Config{
			Source:   "retm-sa",
			Tokens:   []retm.Token{{Value: testToken}, {Value: merchantToken, Merchant: merchant}},
			AllowIPs: webhooktest.Prefixes("192.0.2.0/24"),
			Currency: "SAR",
			Location: time.FixedZone("AST", 3*3600),
		}, true},
		{"no tokens", retm.Config{Source: "retm"}, false},
		{"empty token", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken}, {}}}, false},
		{"short token", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: []byte("qzx7k")}}}, false},
		{"same token twice", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken}, {Value: testToken, Merchant: "m"}}}, false},
		{"merchant too long", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken, Merchant: strings.Repeat("m", 257)}}}, false},
		{"lower-case currency", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken}}, Currency: "sar"}, false},
		{"long currency", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken}}, Currency: "SARR"}, false},
		{"no source", retm.Config{Tokens: []retm.Token{{Value: testToken}}}, false},
		{"dotted source", retm.Config{Source: "re.tm", Tokens: []retm.Token{{Value: testToken}}}, false},
		{"invalid prefix", retm.Config{Source: "retm", Tokens: []retm.Token{{Value: testToken}}, AllowIPs: []netip.Prefix{{}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := retm.New(tc.cfg)
			tokens := make([][]byte, len(tc.cfg.Tokens))
			for i, tok := range tc.cfg.Tokens {
				tokens[i] = tok.Value
			}
			webhooktest.CheckNew(t, p, err, tc.ok, tc.cfg.Source, retm.Kind, 4, tokens...)
		})
	}
}

func TestVerify(t *testing.T) {
	invoice := loadExample(t, "order.created")
	coupon := loadExample(t, "promotional_coupon") // business_reference, the other spelling
	notice := loadExample(t, "error_webhook")      // no business reference
	tokens := []retm.Token{{Value: testToken}, {Value: otherToken}, {Value: merchantToken, Merchant: merchant}}
	open := newProvider(t, retm.Config{Tokens: tokens})
	listed := newProvider(t, retm.Config{Tokens: tokens, AllowIPs: webhooktest.Prefixes("192.0.2.0/24", "2001:db8::/32")})

	bearer := func(tok []byte) string { return "Bearer " + string(tok) }
	ok := func(scheme string, tok []byte) webhook.Verification {
		return webhook.Verification{Scheme: scheme, KeyID: webhook.KeyID(tok)}
	}
	other := func(field, value string) []byte {
		return []byte(`{"reward_code":"X1","` + field + `":` + value + `}`)
	}
	const remote = "192.0.2.44:51000"
	for _, tc := range []struct {
		name          string
		p             *retm.Provider
		remote        string
		path          string
		authorization string
		body          []byte
		want          webhook.Verification // zero means Verify must fail
	}{
		{"bearer", open, remote, "", bearer(testToken), invoice, ok(tokenauth.SchemeBearer, testToken)},
		{"path token", open, remote, string(testToken), "", invoice, ok(tokenauth.SchemePath, testToken)},
		{"second token", open, remote, "", bearer(otherToken), invoice, ok(tokenauth.SchemeBearer, otherToken)},
		{"merchant token, its merchant", open, remote, "", bearer(merchantToken), invoice, ok(tokenauth.SchemeBearer, merchantToken)},
		{"merchant token, other spelling", open, remote, "", bearer(merchantToken), coupon, ok(tokenauth.SchemeBearer, merchantToken)},
		{"merchant token, no business reference", open, remote, "", bearer(merchantToken), notice, ok(tokenauth.SchemeBearer, merchantToken)},
		{"merchant token, body not JSON", open, remote, "", bearer(merchantToken), []byte("not json"), ok(tokenauth.SchemeBearer, merchantToken)},
		{"unbound token, any merchant", open, remote, "", bearer(testToken), other("business_refrence", `"someone-else"`), ok(tokenauth.SchemeBearer, testToken)},
		{"allowed address", listed, remote, "", bearer(testToken), invoice, ok(tokenauth.SchemeBearer, testToken)},
		{"allowed v6 address", listed, "[2001:db8::5]:443", string(testToken), "", invoice, ok(tokenauth.SchemePath, testToken)},

		{"wrong token", open, remote, "", "Bearer retm-test-token-guessed-00000", invoice, webhook.Verification{}},
		{"wrong path token", open, remote, "retm-test-token-guessed-00000", "", invoice, webhook.Verification{}},
		{"missing", open, remote, "", "", invoice, webhook.Verification{}},
		{"both, differing", open, remote, string(otherToken), bearer(testToken), invoice, webhook.Verification{}},
		{"merchant mismatch", open, remote, "", bearer(merchantToken), other("business_refrence", `"brand-someone-else"`), webhook.Verification{}},
		{"merchant mismatch, other spelling", open, remote, "", bearer(merchantToken), other("business_reference", `"brand-someone-else"`), webhook.Verification{}},
		{"merchant mismatch, by path token", open, remote, string(merchantToken), "", other("business_refrence", `"brand-someone-else"`), webhook.Verification{}},
		{"merchant mismatch in one spelling", open, remote, "", bearer(merchantToken), []byte(`{"business_refrence":"` + merchant + `","business_reference":"x"}`), webhook.Verification{}},
		{"merchant empty", open, remote, "", bearer(merchantToken), other("business_refrence", `""`), webhook.Verification{}},
		{"merchant not a string", open, remote, "", bearer(merchantToken), other("business_refrence", `{"id":"`+merchant+`"}`), webhook.Verification{}},
		{"merchant differs in case", open, remote, "", bearer(merchantToken), other("business_refrence", `"`+strings.ToUpper(merchant)+`"`), webhook.Verification{}},
		{"address not allowed", listed, "203.0.113.9:51000", "", bearer(testToken), invoice, webhook.Verification{}},
		// Keys match exactly and the last of a repeated one wins, as in
		// Normalize: the reference checked is the one recorded (issue 12,
		// item 8: a case variant after the real key passed as the merchant's).
		{"merchant mismatch behind a case variant", open, remote, "", bearer(merchantToken), []byte(`{"reward_code":"X1","business_refrence":"brand-someone-else","BUSINESS_REFRENCE":"` + merchant + `"}`), webhook.Verification{}},
		{"merchant mismatch behind a case variant, other spelling", open, remote, "", bearer(merchantToken), []byte(`{"reward_code":"X1","business_reference":"brand-someone-else","Business_Reference":"` + merchant + `"}`), webhook.Verification{}},
		{"merchant repeated, the last someone else's", open, remote, "", bearer(merchantToken), []byte(`{"reward_code":"X1","business_refrence":"` + merchant + `","business_refrence":"brand-someone-else"}`), webhook.Verification{}},
		{"merchant repeated, the last its own", open, remote, "", bearer(merchantToken), []byte(`{"reward_code":"X1","business_refrence":"brand-someone-else","business_refrence":"` + merchant + `"}`), ok(tokenauth.SchemeBearer, merchantToken)},
		{"only a case variant: no business reference", open, remote, "", bearer(merchantToken), []byte(`{"reward_code":"X1","BUSINESS_REFRENCE":"brand-someone-else"}`), ok(tokenauth.SchemeBearer, merchantToken)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.p.Verify(request(t, tc.remote, tc.path, tc.authorization, tc.body), tc.body, time.Now())
			if tc.want == (webhook.Verification{}) {
				webhooktest.CheckUnauthenticated(t, v, err, tc.path, strings.TrimPrefix(tc.authorization, "Bearer "), string(testToken), string(otherToken), string(merchantToken))
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if v != tc.want {
				t.Fatalf("Verify = %+v, want %+v", v, tc.want)
			}
		})
	}
}
