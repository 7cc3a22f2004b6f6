package tokenauth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/tokenauth"
)

// FuzzCheck: Check never panics, fails only with ErrUnauthenticated, and
// accepts a request only when the token it presents (as Bearer, as the
// path token, or both the same) is exactly a configured one and the remote
// address is allowed. Its errors never repeat the presented token.
func FuzzCheck(f *testing.F) {
	f.Add("Bearer "+string(primary), "", "192.0.2.10:1")
	f.Add("", string(rotated), "192.0.2.10:1")
	f.Add("bearer "+string(primary), string(primary), "[2001:db8::1]:443")
	f.Add("Basic "+string(primary), string(primary), "192.0.2.10:1")
	f.Add("Bearer "+string(primary[:10]), "", "203.0.113.1:1")
	f.Add("Bearer", "x", "garbage")
	f.Add("", "", "")

	allow := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	open := newChecker(f, nil, primary, rotated)
	listed := newChecker(f, allow, primary, rotated)

	f.Fuzz(func(t *testing.T, authorization, path, remote string) {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/src", nil)
		r.RemoteAddr = remote
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		r.SetPathValue(tokenauth.PathWildcard, path)

		bearer, hasBearer := "", false
		if scheme, rest, _ := strings.Cut(strings.TrimSpace(authorization), " "); strings.EqualFold(scheme, "Bearer") {
			bearer, hasBearer = strings.TrimSpace(rest), true
		}
		valid := func(s string) bool { return s == string(primary) || s == string(rotated) }
		var tokenOK bool
		switch {
		case hasBearer && path != "":
			tokenOK = bearer == path && valid(bearer)
		case hasBearer:
			tokenOK = valid(bearer)
		default:
			tokenOK = valid(path)
		}
		remoteOK := false
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			remoteOK = allowed(allow, ap.Addr())
		} else if a, err := netip.ParseAddr(remote); err == nil {
			remoteOK = allowed(allow, a)
		}

		for _, tc := range []struct {
			c    *tokenauth.Checker
			want bool
		}{{open, tokenOK}, {listed, tokenOK && remoteOK}} {
			m, err := tc.c.Check(r)
			if err != nil && !errors.Is(err, webhook.ErrUnauthenticated) {
				t.Fatalf("Check error %v does not wrap ErrUnauthenticated", err)
			}
			if (err == nil) != tc.want {
				t.Fatalf("Check(auth %q, path %q, remote %q) = %+v, %v; want accepted = %v", authorization, path, remote, m, err, tc.want)
			}
			if err != nil {
				for _, s := range []string{bearer, path} {
					if len(s) >= 6 && strings.Contains(err.Error(), s) {
						t.Fatalf("error %q repeats the presented token", err)
					}
				}
			}
		}
	})
}

func allowed(allow []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
