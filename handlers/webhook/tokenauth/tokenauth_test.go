package tokenauth_test

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/internal/webhooktest"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

var (
	primary = []byte("tok-primary-0123456789abcdef")
	rotated = []byte("tok-rotated-fedcba9876543210")
)

func newChecker(tb testing.TB, allow []netip.Prefix, tokens ...[]byte) *tokenauth.Checker {
	tb.Helper()
	c, err := tokenauth.New(tokens, allow)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// request builds a delivery to /webhooks/src or, with a path token,
// /webhooks/src/{token}, routed as in production.
func request(tb testing.TB, remote, pathToken string, authorization ...string) *http.Request {
	tb.Helper()
	return webhooktest.TokenRequest(tb, "src", remote, pathToken, []byte("{}"), authorization...)
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tokens [][]byte
		allow  []netip.Prefix
		ok     bool
	}{
		{"one token", [][]byte{primary}, nil, true},
		{"two tokens and a list", [][]byte{primary, rotated}, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, true},
		{"no tokens", nil, nil, false},
		{"empty token", [][]byte{primary, {}}, nil, false},
		{"short token", [][]byte{[]byte("qzx7k")}, nil, false},
		{"long token", [][]byte{[]byte(strings.Repeat("t", tokenauth.MaxTokenLen+1))}, nil, false},
		{"token with a space", [][]byte{[]byte("tok with a space 0123")}, nil, false},
		{"token with a control byte", [][]byte{[]byte("tok-0123456789abc\x00")}, nil, false},
		{"token with non-ASCII", [][]byte{[]byte("tok-0123456789abcé")}, nil, false},
		{"same token twice", [][]byte{primary, append([]byte(nil), primary...)}, nil, false},
		{"invalid prefix", [][]byte{primary}, []netip.Prefix{{}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tokenauth.New(tc.tokens, tc.allow)
			if (err == nil) != tc.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tc.ok)
			}
			if err != nil {
				for _, tok := range tc.tokens {
					if len(tok) >= 4 && strings.Contains(err.Error(), string(tok)) {
						t.Fatalf("error %q reveals a token", err)
					}
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	open := newChecker(t, nil, primary, rotated)
	listed := newChecker(t, []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::ffff:198.51.100.0/120"), // means 198.51.100.0/24
	}, primary)

	bearer := func(tok []byte) string { return "Bearer " + string(tok) }
	const remote = "192.0.2.10:4711"
	for _, tc := range []struct {
		name    string
		checker *tokenauth.Checker
		remote  string
		path    string
		headers []string
		scheme  string // "" means Check must fail
		index   int
	}{
		{"bearer", open, remote, "", []string{bearer(primary)}, tokenauth.SchemeBearer, 0},
		{"bearer lower case", open, remote, "", []string{"bearer " + string(primary)}, tokenauth.SchemeBearer, 0},
		{"bearer extra spaces", open, remote, "", []string{"  Bearer   " + string(primary) + "  "}, tokenauth.SchemeBearer, 0},
		{"path token", open, remote, string(primary), nil, tokenauth.SchemePath, 0},
		{"second token bearer", open, remote, "", []string{bearer(rotated)}, tokenauth.SchemeBearer, 1},
		{"second token path", open, remote, string(rotated), nil, tokenauth.SchemePath, 1},
		{"both, same token", open, remote, string(primary), []string{bearer(primary)}, tokenauth.SchemeBearer, 0},
		{"path token, Basic header ignored", open, remote, string(primary), []string{"Basic dXNlcjpwYXNz"}, tokenauth.SchemePath, 0},
		{"allowed v4", listed, remote, "", []string{bearer(primary)}, tokenauth.SchemeBearer, 0},
		{"allowed v6", listed, "[2001:db8::7]:443", string(primary), nil, tokenauth.SchemePath, 0},
		{"allowed v4-mapped remote", listed, "[::ffff:192.0.2.99]:443", string(primary), nil, tokenauth.SchemePath, 0},
		{"allowed by a v4-mapped prefix", listed, "198.51.100.7:1", string(primary), nil, tokenauth.SchemePath, 0},
		{"allowed bare address", listed, "192.0.2.1", string(primary), nil, tokenauth.SchemePath, 0},

		{"wrong token bearer", open, remote, "", []string{"Bearer not-the-token-0123456789"}, "", 0},
		{"wrong token path", open, remote, "not-the-token-0123456789", nil, "", 0},
		{"prefix of the token", open, remote, string(primary[:len(primary)-1]), nil, "", 0},
		{"token plus a byte", open, remote, string(primary) + "x", nil, "", 0},
		{"missing", open, remote, "", nil, "", 0},
		{"Basic header only", open, remote, "", []string{"Basic dXNlcjpwYXNz"}, "", 0},
		{"Bearer without token", open, remote, "", []string{"Bearer "}, "", 0},
		{"Bearer alone", open, remote, "", []string{"Bearer"}, "", 0},
		{"two Authorization headers", open, remote, "", []string{bearer(primary), bearer(primary)}, "", 0},
		{"both, different valid tokens", open, remote, string(rotated), []string{bearer(primary)}, "", 0},
		{"both, wrong bearer", open, remote, string(primary), []string{"Bearer not-the-token-0123456789"}, "", 0},
		{"both, wrong path", open, remote, "not-the-token-0123456789", []string{bearer(primary)}, "", 0},
		{"address not allowed", listed, "203.0.113.5:4711", "", []string{bearer(primary)}, "", 0},
		{"v6 address not allowed", listed, "[2001:db9::1]:4711", "", []string{bearer(primary)}, "", 0},
		{"unparsable remote", listed, "somewhere", "", []string{bearer(primary)}, "", 0},
		{"empty remote", listed, "", "", []string{bearer(primary)}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request(t, tc.remote, tc.path, tc.headers...)
			if tc.name == "empty remote" {
				r.RemoteAddr = ""
			}
			m, err := tc.checker.Check(r)
			if tc.scheme == "" {
				if err == nil {
					t.Fatalf("Check succeeded (%+v), want failure", m)
				}
				if !errors.Is(err, webhook.ErrUnauthenticated) {
					t.Fatalf("Check error %v does not wrap webhook.ErrUnauthenticated", err)
				}
				for _, s := range append([]string{tc.path}, tc.headers...) {
					s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "Bearer"))
					if len(s) >= 8 && strings.Contains(err.Error(), s) {
						t.Fatalf("Check error %q repeats a presented token", err)
					}
				}
				if m != (tokenauth.Match{}) {
					t.Fatalf("failed Check returned %+v", m)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			tokens := [][]byte{primary, rotated}
			want := tokenauth.Match{Index: tc.index, Verification: webhook.Verification{Scheme: tc.scheme, KeyID: webhook.KeyID(tokens[tc.index])}}
			if m != want {
				t.Fatalf("Check = %+v, want %+v", m, want)
			}
		})
	}
}

// TestCheckAllowListBeforeToken: a refused address is refused whatever the
// token, so the allow-list cannot be used to probe tokens.
func TestCheckAllowListBeforeToken(t *testing.T) {
	c := newChecker(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, primary)
	for _, path := range []string{string(primary), "not-the-token-0123456789", ""} {
		_, err := c.Check(request(t, "203.0.113.5:1", path))
		if err == nil || !strings.Contains(err.Error(), "allow-list") {
			t.Fatalf("path %q from a refused address: err = %v, want the allow-list refusal", path, err)
		}
	}
}

func TestNewCopiesNothingMutable(t *testing.T) {
	tok := []byte("mutable-token-0123456789")
	c := newChecker(t, nil, tok)
	orig := string(tok)
	tok[0] ^= 0xff
	if _, err := c.Check(request(t, "192.0.2.1:1", orig)); err != nil {
		t.Fatalf("changing the caller's slice changed the checker's token: %v", err)
	}
}

func TestKeyIDs(t *testing.T) {
	c := newChecker(t, nil, primary, rotated)
	got := c.KeyIDs()
	if len(got) != 2 || got[0] != webhook.KeyID(primary) || got[1] != webhook.KeyID(rotated) {
		t.Fatalf("KeyIDs = %v", got)
	}
}

func BenchmarkCheck(b *testing.B) {
	c := newChecker(b, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, rotated, primary)
	r := request(b, "192.0.2.10:4711", "", "Bearer "+string(primary))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Check(r); err != nil {
			b.Fatal(err)
		}
	}
}
