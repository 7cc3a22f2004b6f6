package reward_test

import (
	"strings"
	"testing"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  reward.Config
		ok   bool
	}{
		{"one token", reward.Config{Source: "reward", Tokens: [][]byte{testToken}}, true},
		{"two tokens, allow-list, balance source", reward.Config{Source: "reward-eu", Tokens: [][]byte{testToken, otherToken}, AllowIPs: webhooktest.Prefixes("192.0.2.0/24"), BalanceSource: "reewild"}, true},
		{"no tokens", reward.Config{Source: "reward"}, false},
		{"empty token", reward.Config{Source: "reward", Tokens: [][]byte{testToken, {}}}, false},
		{"short token", reward.Config{Source: "reward", Tokens: [][]byte{[]byte("qzx7k")}}, false},
		{"same token twice", reward.Config{Source: "reward", Tokens: [][]byte{testToken, testToken}}, false},
		{"no source", reward.Config{Tokens: [][]byte{testToken}}, false},
		{"dotted source", reward.Config{Source: "re.ward", Tokens: [][]byte{testToken}}, false},
		{"dotted balance source", reward.Config{Source: "reward", Tokens: [][]byte{testToken}, BalanceSource: "ree.wild"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := reward.New(tc.cfg)
			webhooktest.CheckNew(t, p, err, tc.ok, tc.cfg.Source, reward.Kind, 4, tc.cfg.Tokens...)
		})
	}
}

func TestVerify(t *testing.T) {
	body := loadExample(t, "balance.credit_points_issued")
	open := newProvider(t, reward.Config{Tokens: [][]byte{testToken, otherToken}})
	listed := newProvider(t, reward.Config{Tokens: [][]byte{testToken}, AllowIPs: webhooktest.Prefixes("192.0.2.0/24", "2001:db8::/32")})

	const remote = "192.0.2.44:51000"
	for _, tc := range []struct {
		name          string
		p             *reward.Provider
		remote        string
		path          string
		authorization string
		want          webhook.Verification // zero means Verify must fail
	}{
		{"bearer", open, remote, "", "Bearer " + string(testToken), webhook.Verification{Scheme: tokenauth.SchemeBearer, KeyID: webhook.KeyID(testToken)}},
		{"path token", open, remote, string(testToken), "", webhook.Verification{Scheme: tokenauth.SchemePath, KeyID: webhook.KeyID(testToken)}},
		{"second token", open, remote, string(otherToken), "", webhook.Verification{Scheme: tokenauth.SchemePath, KeyID: webhook.KeyID(otherToken)}},
		{"second token bearer", open, remote, "", "Bearer " + string(otherToken), webhook.Verification{Scheme: tokenauth.SchemeBearer, KeyID: webhook.KeyID(otherToken)}},
		{"both the same", open, remote, string(testToken), "Bearer " + string(testToken), webhook.Verification{Scheme: tokenauth.SchemeBearer, KeyID: webhook.KeyID(testToken)}},
		{"allowed address", listed, remote, string(testToken), "", webhook.Verification{Scheme: tokenauth.SchemePath, KeyID: webhook.KeyID(testToken)}},
		{"allowed v6 address", listed, "[2001:db8::5]:443", "", "Bearer " + string(testToken), webhook.Verification{Scheme: tokenauth.SchemeBearer, KeyID: webhook.KeyID(testToken)}},

		{"wrong token", open, remote, "rwd-test-token-guessed-000000", "", webhook.Verification{}},
		{"wrong bearer", open, remote, "", "Bearer rwd-test-token-guessed-000000", webhook.Verification{}},
		{"missing", open, remote, "", "", webhook.Verification{}},
		{"other scheme only", open, remote, "", "Basic " + string(testToken), webhook.Verification{}},
		{"both, one wrong", open, remote, string(otherToken), "Bearer " + string(testToken), webhook.Verification{}},
		{"address not allowed", listed, "203.0.113.9:51000", string(testToken), "", webhook.Verification{}},
		{"address not allowed, bearer", listed, "[2001:db9::5]:443", "", "Bearer " + string(testToken), webhook.Verification{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.p.Verify(request(t, tc.remote, tc.path, tc.authorization, body), body, time.Now())
			if tc.want == (webhook.Verification{}) {
				webhooktest.CheckUnauthenticated(t, v, err, tc.path, strings.TrimPrefix(tc.authorization, "Bearer "), string(testToken), string(otherToken))
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

func TestNewCopiesTokens(t *testing.T) {
	tok := []byte("rwd-mutable-token-0123456789")
	p := newProvider(t, reward.Config{Tokens: [][]byte{tok}})
	orig := string(tok)
	tok[0] ^= 0xff
	if _, err := p.Verify(request(t, "192.0.2.1:1", orig, "", nil), nil, time.Time{}); err != nil {
		t.Fatalf("changing the caller's slice changed the provider's token: %v", err)
	}
}
