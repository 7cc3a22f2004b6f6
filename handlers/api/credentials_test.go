package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/internal/authtest"
)

// testKeys are generated once per test binary: RSA keys are slow to make.
type testKeys struct {
	idp      *authtest.Key // RS256, in the IdP's JWKS
	idpEC    *authtest.Key // ES256, a second issuer's PEM key
	attacker *authtest.Key // RS256 with the IdP key's kid, in no config
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(t *testing.T) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		keys = testKeys{
			idp:      authtest.RSA(t, "idp-2025"),
			idpEC:    authtest.EC(t, "mobile-1"),
			attacker: authtest.RSA(t, "idp-2025"),
		}
	})
	return keys
}

const (
	testIssuer   = "https://id.bank.example"
	testIssuerEC = "https://mobile-id.bank.example"
	testAudience = "receiptd"
	// The API keys of the tests and their names in the config.
	readerKey = "rk_reader_4f1c9a0e7d2b"
	adminKey  = "rk_admin_93b7e1c2a5f0"
	bothKey   = "rk_operator_1d2e3f4a5b6c"
)

// testNow is the clock of the token tests.
var testNow = time.Date(2025, 11, 21, 15, 0, 0, 0, time.UTC)

func claims(user string, mods ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": user,
		"iat": testNow.Add(-time.Minute).Unix(), "exp": testNow.Add(10 * time.Minute).Unix(),
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func hashOf(t *testing.T, key string) [sha256.Size]byte {
	t.Helper()
	h, err := api.ParseAPIKeyHash(api.HashAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newCredentials is the authenticator of the access tests: three API keys,
// the IdP (JWKS, RS256, sources reewild and reap) and a mobile issuer (PEM,
// ES256, user id in claim "uid", reewild only: both issuers name reewild,
// as two identity providers of the same users would).
func newCredentials(t *testing.T, now func() time.Time) *api.Credentials {
	t.Helper()
	k := getKeys(t)
	jwks, err := api.ParseJWKS(authtest.JWKS(t, []*authtest.Key{k.idp}))
	if err != nil {
		t.Fatal(err)
	}
	pems, err := api.ParsePEMPublicKeys(k.idpEC.PublicPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewCredentials(api.CredentialsConfig{
		APIKeys: []api.APIKey{
			{Name: "ledger-backend", SHA256: hashOf(t, readerKey), Scopes: []api.Scope{api.ScopeReadAll}},
			{Name: "ops-console", SHA256: hashOf(t, adminKey), Scopes: []api.Scope{api.ScopeAdmin}},
			{Name: "oncall", SHA256: hashOf(t, bothKey), Scopes: []api.Scope{api.ScopeReadAll, api.ScopeAdmin}},
		},
		Issuers: []api.JWTIssuer{
			{Issuer: testIssuer, Audience: testAudience, Keys: jwks, Sources: []string{"reewild", "reap"}},
			{Issuer: testIssuerEC, Audience: testAudience, Keys: pems, UserClaim: "uid", Sources: []string{"reewild"}},
		},
		Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAPIKeys(t *testing.T) {
	c := newCredentials(t, func() time.Time { return testNow })
	p, err := c.Authenticate(context.Background(), readerKey)
	if err != nil || p.Kind != api.PrincipalAPIKey || p.ID != "ledger-backend" || !slices.Equal(p.Scopes, []api.Scope{api.ScopeReadAll}) {
		t.Errorf("reader key = %+v, %v", p, err)
	}
	p, err = c.Authenticate(context.Background(), bothKey)
	if err != nil || p.ID != "oncall" || len(p.Scopes) != 2 {
		t.Errorf("operator key = %+v, %v", p, err)
	}
	for _, bad := range []string{"rk_reader_4f1c9a0e7d2", readerKey + "x", strings.ToUpper(readerKey), api.HashAPIKey(readerKey), ""} {
		if p, err := c.Authenticate(context.Background(), bad); err == nil {
			t.Errorf("key %q accepted as %+v", bad, p)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error %q repeats the credential", err)
		}
	}
}

func TestParseAPIKeyHash(t *testing.T) {
	want := sha256.Sum256([]byte("k"))
	for _, s := range []string{api.HashAPIKey("k"), "sha256:" + api.HashAPIKey("k"), strings.ToUpper(api.HashAPIKey("k")) + "\n"} {
		if got, err := api.ParseAPIKeyHash(s); err != nil || got != want {
			t.Errorf("ParseAPIKeyHash(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "k", api.HashAPIKey("k")[:63], api.HashAPIKey("k")[:63] + "g"} {
		if _, err := api.ParseAPIKeyHash(s); err == nil {
			t.Errorf("ParseAPIKeyHash(%q) accepted", s)
		}
	}
}

// TestUserTokens: every way a token can be wrong is refused, with a reason
// that names the problem and never repeats the token.
func TestUserTokens(t *testing.T) {
	k := getKeys(t)
	c := newCredentials(t, func() time.Time { return testNow })
	mobile := func(user string) jwt.MapClaims {
		return jwt.MapClaims{"iss": testIssuerEC, "aud": []string{"other", testAudience}, "uid": user, "exp": testNow.Add(time.Hour).Unix()}
	}
	set := func(key string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[key] = v } }
	del := func(key string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, key) } }
	tampered := func() string {
		tok := k.idp.Sign(t, claims("alice"))
		parts := strings.Split(tok, ".")
		other := strings.Split(k.idp.Sign(t, claims("bob")), ".")
		return parts[0] + "." + other[1] + "." + parts[2]
	}()

	cases := []struct {
		name     string
		token    string
		wantUser string // "" means refused
		reason   string
	}{
		{"RS256 from the JWKS", k.idp.Sign(t, claims("alice")), "alice", ""},
		{"RS256 without kid", k.idp.Sign(t, claims("alice"), true), "alice", ""},
		{"ES256 from a PEM key, custom claim, aud list", k.idpEC.Sign(t, mobile("027KO2")), "027KO2", ""},
		{"expired within the leeway", k.idp.Sign(t, claims("alice", set("exp", testNow.Add(-20*time.Second).Unix()))), "alice", ""},
		{"nbf within the leeway", k.idp.Sign(t, claims("alice", set("nbf", testNow.Add(20*time.Second).Unix()))), "alice", ""},

		{"expired", k.idp.Sign(t, claims("alice", set("exp", testNow.Add(-time.Minute).Unix()))), "", "expired"},
		{"not yet valid", k.idp.Sign(t, claims("alice", set("nbf", testNow.Add(time.Minute).Unix()))), "", "not valid yet"},
		{"no exp", k.idp.Sign(t, claims("alice", del("exp"))), "", "required claim"},
		{"wrong audience", k.idp.Sign(t, claims("alice", set("aud", "another-api"))), "", "wrong audience"},
		{"no audience", k.idp.Sign(t, claims("alice", del("aud"))), "", "required claim"},
		{"unknown issuer", k.idp.Sign(t, claims("alice", set("iss", "https://evil.example"))), "", "unknown issuer"},
		{"no issuer", k.idp.Sign(t, claims("alice", del("iss"))), "", "unknown issuer"},
		{"issuer with another issuer's key", k.idpEC.Sign(t, claims("alice")), "", "no key"},
		{"wrong key, same kid", k.attacker.Sign(t, claims("alice")), "", "bad signature"},
		{"wrong key, no kid", k.attacker.Sign(t, claims("alice"), true), "", "bad signature"},
		{"alg none", authtest.None(t, claims("alice")), "", "algorithm not allowed"},
		{"HS256 keyed with the public key", authtest.HS256WithPublicKey(t, k.idp, claims("alice")), "", "algorithm not allowed"},
		{"tampered payload", tampered, "", "bad signature"},
		{"no sub", k.idp.Sign(t, claims("alice", del("sub"))), "", "not a user id"},
		{"numeric sub", k.idp.Sign(t, claims("alice", set("sub", 42))), "", "not a user id"},
		{"user id too long", k.idp.Sign(t, claims(strings.Repeat("u", api.MaxIDLength+1))), "", "not a user id"},
		{"mobile token without uid", k.idpEC.Sign(t, jwt.MapClaims{"iss": testIssuerEC, "aud": testAudience, "sub": "x", "exp": testNow.Add(time.Hour).Unix()}), "", "not a user id"},
		{"garbage", "a.b.c", "", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := c.Authenticate(context.Background(), tc.token)
			if tc.wantUser != "" {
				if err != nil || p.Kind != api.PrincipalUser || p.ID != tc.wantUser || len(p.Scopes) != 0 {
					t.Fatalf("= %+v, %v; want user %q", p, err, tc.wantUser)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v", p)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q, want it to say %q", err, tc.reason)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q repeats part of the token", err)
				}
			}
		})
	}

	// The mobile issuer's users are limited to its sources.
	p, err := c.Authenticate(context.Background(), k.idpEC.Sign(t, mobile("u1")))
	if err != nil || !slices.Equal(p.Sources, []string{"reewild"}) {
		t.Errorf("mobile principal = %+v, %v; want sources [reewild]", p, err)
	}
}

func TestParseJWKS(t *testing.T) {
	k := getKeys(t)
	enc := k.idpEC.JWK(t)
	enc["use"] = "enc"
	enc["kid"] = "enc-1"
	hs := map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
	keys, err := api.ParseJWKS(authtest.JWKS(t, []*authtest.Key{k.idp}, enc))
	if err != nil || keys.Len() != 1 {
		t.Errorf("JWKS with an encryption key: %d keys, %v; want the signing key only", keys.Len(), err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := (&authtest.Key{KID: "weak", Alg: "RS256", Private: small}).JWK(t)
	privJWK, err := jwkset.NewJWKFromKey(k.idp.Private, jwkset.JWKOptions{
		Marshal:  jwkset.JWKMarshalOptions{Private: true},
		Metadata: jwkset.JWKMetadataOptions{KID: "leaked", ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	privJSON, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{privJWK.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{
		"not JSON":     []byte("{"),
		"empty set":    []byte(`{"keys":[]}`),
		"only HMAC":    authtest.JWKS(t, nil, hs),
		"only enc":     authtest.JWKS(t, nil, enc),
		"weak RSA key": authtest.JWKS(t, nil, weak),
		"private key":  privJSON,
	} {
		if _, err := api.ParseJWKS(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParsePEMPublicKeys(t *testing.T) {
	k := getKeys(t)
	both := append(k.idp.PublicPEM(t), k.idpEC.PublicPEM(t)...)
	keys, err := api.ParsePEMPublicKeys(both)
	if err != nil || keys.Len() != 2 {
		t.Errorf("two keys in one PEM: %d, %v", keys.Len(), err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.idp.Private.(*rsa.PrivateKey).PublicKey)})
	if keys, err := api.ParsePEMPublicKeys(pkcs1); err != nil || keys.Len() != 1 {
		t.Errorf("PKCS#1 public key: %d, %v", keys.Len(), err)
	}
	for name, raw := range map[string][]byte{
		"private key": k.idp.PrivatePEM(t),
		"not PEM":     []byte("hello"),
		"empty":       nil,
	} {
		if _, err := api.ParsePEMPublicKeys(raw); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "private key" && strings.Contains(err.Error(), "MII") {
			t.Errorf("error %q shows key material", err)
		}
	}
}

func TestNewCredentialsRefusesBadConfig(t *testing.T) {
	k := getKeys(t)
	jwks, err := api.ParseJWKS(authtest.JWKS(t, []*authtest.Key{k.idp}))
	if err != nil {
		t.Fatal(err)
	}
	h := hashOf(t, readerKey)
	read := []api.Scope{api.ScopeReadAll}
	for name, cfg := range map[string]api.CredentialsConfig{
		"nothing":          {},
		"key without name": {APIKeys: []api.APIKey{{SHA256: h, Scopes: read}}},
		"duplicate name":   {APIKeys: []api.APIKey{{Name: "a", SHA256: h, Scopes: read}, {Name: "a", SHA256: hashOf(t, "other"), Scopes: read}}},
		"duplicate key":    {APIKeys: []api.APIKey{{Name: "a", SHA256: h, Scopes: read}, {Name: "b", SHA256: h, Scopes: read}}},
		"no hash":          {APIKeys: []api.APIKey{{Name: "a", Scopes: read}}},
		"no scopes":        {APIKeys: []api.APIKey{{Name: "a", SHA256: h}}},
		"unknown scope":    {APIKeys: []api.APIKey{{Name: "a", SHA256: h, Scopes: []api.Scope{"write:all"}}}},
		"no issuer":        {Issuers: []api.JWTIssuer{{Audience: "a", Keys: jwks}}},
		"no audience":      {Issuers: []api.JWTIssuer{{Issuer: "i", Keys: jwks}}},
		"no keys":          {Issuers: []api.JWTIssuer{{Issuer: "i", Audience: "a"}}},
		"issuer twice":     {Issuers: []api.JWTIssuer{{Issuer: "i", Audience: "a", Keys: jwks}, {Issuer: "i", Audience: "b", Keys: jwks}}},
		"huge leeway":      {Issuers: []api.JWTIssuer{{Issuer: "i", Audience: "a", Keys: jwks, Leeway: time.Hour}}},
	} {
		if _, err := api.NewCredentials(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestIssuersDoNotShareUserIDs (issue 12, item 10): two identity providers
// each have their own user ids, so "alice" of one is not "alice" of the
// other. With several issuers each must name the sources whose user ids
// its tokens carry (a config that does not is refused), a user reads only
// those, and a principal is namespaced by its issuer (its rate-limit
// bucket, the logs).
func TestIssuersDoNotShareUserIDs(t *testing.T) {
	k := getKeys(t)
	jwks, err := api.ParseJWKS(authtest.JWKS(t, []*authtest.Key{k.idp}))
	if err != nil {
		t.Fatal(err)
	}
	pems, err := api.ParsePEMPublicKeys(k.idpEC.PublicPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	bank := api.JWTIssuer{Issuer: testIssuer, Audience: testAudience, Keys: jwks}
	partner := api.JWTIssuer{Issuer: testIssuerEC, Audience: testAudience, Keys: pems, UserClaim: "uid"}
	now := func() time.Time { return testNow }

	// The attack's config: two issuers, neither naming its sources.
	if _, err := api.NewCredentials(api.CredentialsConfig{Issuers: []api.JWTIssuer{bank, partner}, Now: now}); err == nil || !strings.Contains(err.Error(), "sources") {
		t.Errorf("two issuers without sources: %v, want refused, naming sources", err)
	}
	withSources := func(is api.JWTIssuer, s ...string) api.JWTIssuer { is.Sources = s; return is }
	if _, err := api.NewCredentials(api.CredentialsConfig{Issuers: []api.JWTIssuer{withSources(bank, "reewild"), partner}, Now: now}); err == nil {
		t.Error("two issuers, one without sources: accepted")
	}
	// One issuer alone may leave them open (any source).
	if _, err := api.NewCredentials(api.CredentialsConfig{Issuers: []api.JWTIssuer{bank}, Now: now}); err != nil {
		t.Errorf("one issuer without sources: %v", err)
	}

	c, err := api.NewCredentials(api.CredentialsConfig{Issuers: []api.JWTIssuer{withSources(bank, "reewild"), withSources(partner, "reap")}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	bankAlice := "Bearer " + k.idp.Sign(t, claims("alice"))
	partnerAlice := "Bearer " + k.idpEC.Sign(t, jwt.MapClaims{"iss": testIssuerEC, "aud": testAudience, "uid": "alice", "exp": testNow.Add(time.Hour).Unix()})
	p, err := c.Authenticate(context.Background(), strings.TrimPrefix(partnerAlice, "Bearer "))
	if err != nil || p.ID != "alice" || p.Issuer != testIssuerEC {
		t.Errorf("partner's alice = %+v, %v; want id alice of issuer %s", p, err, testIssuerEC)
	}
	env := newAccessEnv(t, api.AccessOptions{
		Authenticator: c, DefaultSource: "reewild", PerUser: mustLimiter(t, 1),
		Now: func() time.Time { return time.Unix(1_700_000_000, 0) },
	}, &stubService{})
	if a := env.get(t, "/v1/users/alice/balance", bankAlice); a.code != http.StatusOK {
		t.Errorf("the bank's alice, her own balance: %d %s", a.code, a.body)
	}
	// The partner's alice is somebody else: the bank's source is closed
	// to her, and she has her own rate-limit bucket.
	if a := env.get(t, "/v1/users/alice/balance?source=reewild", partnerAlice); a.code != http.StatusForbidden {
		t.Errorf("the partner's alice reading the bank's alice: %d, want 403", a.code)
	}
	if !strings.Contains(env.logs.String(), `"issuer":"`+testIssuerEC+`"`) {
		t.Errorf("the refusal does not name the user's issuer:\n%s", env.logs)
	}
	env = newAccessEnv(t, api.AccessOptions{
		Authenticator: c, DefaultSource: "reewild", PerUser: mustLimiter(t, 1),
		Now: func() time.Time { return time.Unix(1_700_000_000, 0) },
	}, &stubService{})
	if a := env.get(t, "/v1/users/alice/balance", bankAlice); a.code != http.StatusOK {
		t.Errorf("the bank's alice: %d", a.code)
	}
	if a := env.get(t, "/v1/users/alice/balance?source=reap", partnerAlice); a.code != http.StatusOK {
		t.Errorf("the partner's alice after the bank's alice used her bucket: %d %s, want 200 (buckets per issuer)", a.code, a.body)
	}
}
