package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Credentials authenticates the two kinds of principal access is
// configured with: API keys (backends, operators) and user JWTs. It
// implements Authenticator and is safe for concurrent use.
//
// A credential with exactly two dots is taken as a JWT, anything else as an
// API key: generate keys without dots (hex or base64url, such as
// `openssl rand -hex 32`).
type Credentials struct {
	keys    []APIKey
	issuers map[string]*issuer
}

// APIKey is one configured API key: never the key itself, only its
// SHA-256, a name for logs and its scopes.
type APIKey struct {
	Name   string
	SHA256 [sha256.Size]byte
	Scopes []Scope
}

// HashAPIKey returns the hex SHA-256 of an API key: what the config holds.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ParseAPIKeyHash parses the hex SHA-256 of an API key (64 hex digits,
// optionally prefixed "sha256:").
func ParseAPIKeyHash(s string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	s = strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
	if len(s) != hex.EncodedLen(sha256.Size) {
		return out, fmt.Errorf("not a hex SHA-256 (want %d hex digits, got %d characters)", hex.EncodedLen(sha256.Size), len(s))
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, errors.New("not a hex SHA-256 (a character is not a hex digit)")
	}
	return out, nil
}

// JWTIssuer verifies the user tokens of one identity provider.
type JWTIssuer struct {
	// Issuer must equal the token's iss claim.
	Issuer string
	// Audience must be one of the token's aud claim.
	Audience string
	// Keys verify the signature (ParseJWKS, ParsePEMPublicKeys). Only
	// RS256 and ES256 are accepted.
	Keys JWTKeys
	// UserClaim names the claim holding the user id; "sub" if empty.
	UserClaim string
	// Leeway is the clock skew allowed on exp and nbf; DefaultLeeway if 0.
	Leeway time.Duration
	// Sources are the sources whose user ids this issuer's tokens carry:
	// the only sources its users may read. Nil means any, which only a sole
	// issuer may leave open: with several, each names its sources, so that
	// one issuer's "alice" never reads another's (NewCredentials refuses
	// otherwise). Two issuers may name the same source only if both
	// identify its users by the same ids.
	Sources []string
}

// Limits of user tokens.
const (
	// DefaultLeeway is the clock skew allowed on exp and nbf by default.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest leeway an issuer may be configured with.
	MaxLeeway = 5 * time.Minute
)

// jwtMethods are the only signing algorithms accepted: "none", HS* (which a
// public key would verify as a shared secret) and the rest are refused
// before any key is looked at.
var jwtMethods = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}

// JWTKeys are an issuer's verification keys.
type JWTKeys struct {
	keyfunc jwt.Keyfunc
	n       int
}

// Len is the number of usable keys.
func (k JWTKeys) Len() int { return k.n }

// ParseJWKS reads a JWK Set (RFC 7517, as an identity provider publishes
// it). RSA (2048 bits or more) and P-256 keys meant for signatures are
// kept; keys for encryption or of other types are skipped; a private key
// is an error (give receiptd public keys only); a set with no usable key
// is an error. A token's kid picks its key; a token without kid is tried
// against every key.
func ParseJWKS(raw []byte) (JWTKeys, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return JWTKeys{}, fmt.Errorf("jwks: not a JWK Set: %w", err)
	}
	all, err := set.JWKSlice()
	if err != nil {
		return JWTKeys{}, fmt.Errorf("jwks: %w", err)
	}
	store := jwkset.NewMemoryStorage()
	n := 0
	for i, k := range all {
		m := k.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		if m.ALG != "" && !slices.Contains(jwtMethods, m.ALG.String()) {
			continue
		}
		usable, err := usableKey(k.Key())
		if err != nil {
			return JWTKeys{}, fmt.Errorf("jwks: key %d (kid %q): %w", i, m.KID, err)
		}
		if !usable {
			continue
		}
		if err := store.KeyWrite(context.Background(), k); err != nil {
			return JWTKeys{}, fmt.Errorf("jwks: key %d (kid %q): %w", i, m.KID, err)
		}
		n++
	}
	if n == 0 {
		return JWTKeys{}, errors.New("jwks: no RS256 or ES256 signing key in the set")
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return JWTKeys{}, fmt.Errorf("jwks: %w", err)
	}
	return JWTKeys{keyfunc: kf.Keyfunc, n: n}, nil
}

// ParsePEMPublicKeys reads PEM public keys ("PUBLIC KEY", "RSA PUBLIC KEY"
// or "CERTIFICATE" blocks; several per input allowed): RSA of 2048 bits or
// more, or ECDSA P-256. A token is tried against every key.
func ParsePEMPublicKeys(pems ...[]byte) (JWTKeys, error) {
	var set jwt.VerificationKeySet
	for i, p := range pems {
		found := false
		for rest := p; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			var key any
			var err error
			switch block.Type {
			case "PUBLIC KEY":
				key, err = x509.ParsePKIXPublicKey(block.Bytes)
			case "RSA PUBLIC KEY":
				key, err = x509.ParsePKCS1PublicKey(block.Bytes)
			case "CERTIFICATE":
				var cert *x509.Certificate
				if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
					key = cert.PublicKey
				}
			default:
				if strings.Contains(block.Type, "PRIVATE") {
					return JWTKeys{}, fmt.Errorf("public key %d: a private key: give receiptd public keys only", i)
				}
				continue
			}
			if err != nil {
				return JWTKeys{}, fmt.Errorf("public key %d: %w", i, err)
			}
			usable, err := usableKey(key)
			if err != nil {
				return JWTKeys{}, fmt.Errorf("public key %d: %w", i, err)
			}
			if !usable {
				return JWTKeys{}, fmt.Errorf("public key %d: a %T, want RSA or ECDSA P-256", i, key)
			}
			set.Keys = append(set.Keys, key)
			found = true
		}
		if !found {
			return JWTKeys{}, fmt.Errorf("public key %d: no PEM public key", i)
		}
	}
	if len(set.Keys) == 0 {
		return JWTKeys{}, errors.New("no public keys")
	}
	return JWTKeys{keyfunc: func(*jwt.Token) (any, error) { return set, nil }, n: len(set.Keys)}, nil
}

// usableKey reports whether key can verify RS256 or ES256; an error for a
// private key or a weak one.
func usableKey(key any) (bool, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return false, fmt.Errorf("RSA key of %d bits, want 2048 or more", k.N.BitLen())
		}
		return true, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return false, fmt.Errorf("ECDSA key on %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return true, nil
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey, []byte:
		return false, errors.New("a private or symmetric key: give receiptd public keys only")
	}
	return false, nil
}

type issuer struct {
	JWTIssuer
	parser *jwt.Parser
}

// CredentialsConfig configures NewCredentials.
type CredentialsConfig struct {
	APIKeys []APIKey
	Issuers []JWTIssuer
	// Now is the clock tokens are checked against; time.Now if nil.
	Now func() time.Time
}

// NewCredentials checks the configuration and returns the authenticator.
func NewCredentials(c CredentialsConfig) (*Credentials, error) {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	out := &Credentials{issuers: map[string]*issuer{}}
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]bool{}
	for i, k := range c.APIKeys {
		switch {
		case k.Name == "":
			return nil, fmt.Errorf("api: api key %d: no name", i)
		case names[k.Name]:
			return nil, fmt.Errorf("api: api key %q: name used twice", k.Name)
		case hashes[k.SHA256]:
			return nil, fmt.Errorf("api: api key %q: the same key as another", k.Name)
		case k.SHA256 == [sha256.Size]byte{}:
			return nil, fmt.Errorf("api: api key %q: no hash", k.Name)
		case len(k.Scopes) == 0:
			return nil, fmt.Errorf("api: api key %q: no scopes", k.Name)
		}
		for _, s := range k.Scopes {
			if !slices.Contains(Scopes, s) {
				return nil, fmt.Errorf("api: api key %q: unknown scope %q", k.Name, s)
			}
		}
		names[k.Name], hashes[k.SHA256] = true, true
		k.Scopes = slices.Clone(k.Scopes)
		out.keys = append(out.keys, k)
	}
	for i, is := range c.Issuers {
		switch {
		case len(c.Issuers) > 1 && len(is.Sources) == 0:
			return nil, fmt.Errorf("api: issuer %q: no sources: with several token issuers each must name the sources whose user ids its tokens carry, or one issuer's users could read another's users of the same id", is.Issuer)
		case is.Issuer == "":
			return nil, fmt.Errorf("api: issuer %d: no issuer (iss)", i)
		case out.issuers[is.Issuer] != nil:
			return nil, fmt.Errorf("api: issuer %q: configured twice", is.Issuer)
		case is.Audience == "":
			return nil, fmt.Errorf("api: issuer %q: no audience", is.Issuer)
		case is.Keys.keyfunc == nil || is.Keys.n == 0:
			return nil, fmt.Errorf("api: issuer %q: no keys", is.Issuer)
		case is.Leeway < 0 || is.Leeway > MaxLeeway:
			return nil, fmt.Errorf("api: issuer %q: leeway %v outside 0..%v", is.Issuer, is.Leeway, MaxLeeway)
		}
		if is.UserClaim == "" {
			is.UserClaim = "sub"
		}
		if is.Leeway == 0 {
			is.Leeway = DefaultLeeway
		}
		is.Sources = slices.Clone(is.Sources)
		out.issuers[is.Issuer] = &issuer{JWTIssuer: is, parser: jwt.NewParser(
			jwt.WithValidMethods(jwtMethods),
			jwt.WithIssuer(is.Issuer),
			jwt.WithAudience(is.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(is.Leeway),
			jwt.WithTimeFunc(now),
		)}
	}
	if len(out.keys) == 0 && len(out.issuers) == 0 {
		return nil, errors.New("api: no API keys and no token issuers: nobody could call")
	}
	return out, nil
}

// Authenticate implements Authenticator. Its errors name what is wrong
// (expired, wrong audience, unknown key, …), never the credential.
func (c *Credentials) Authenticate(_ context.Context, credential string) (Principal, error) {
	if strings.Count(credential, ".") == 2 {
		return c.user(credential)
	}
	return c.apiKey(credential)
}

func (c *Credentials) apiKey(key string) (Principal, error) {
	sum := sha256.Sum256([]byte(key))
	var found *APIKey
	for i := range c.keys { // every key, no early exit
		if subtle.ConstantTimeCompare(sum[:], c.keys[i].SHA256[:]) == 1 {
			found = &c.keys[i]
		}
	}
	if found == nil {
		return Principal{}, errors.New("unknown API key")
	}
	return Principal{Kind: PrincipalAPIKey, ID: found.Name, Scopes: slices.Clone(found.Scopes)}, nil
}

func (c *Credentials) user(token string) (Principal, error) {
	// A first look, unverified, only to pick the issuer's keys and rules
	// and to name the refusal; the verified parse below decides.
	peek := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(token, peek)
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable), err == nil && !slices.Contains(jwtMethods, tok.Method.Alg()):
		return Principal{}, errNotAllowedAlg
	case err != nil:
		return Principal{}, errors.New("invalid token: malformed")
	}
	iss, _ := peek["iss"].(string)
	is := c.issuers[iss]
	if is == nil {
		return Principal{}, errors.New("invalid token: unknown issuer")
	}
	claims := jwt.MapClaims{}
	if _, err := is.parser.ParseWithClaims(token, claims, is.Keys.keyfunc); err != nil {
		return Principal{}, tokenError(err)
	}
	user, _ := claims[is.UserClaim].(string)
	if user == "" || len(user) > MaxIDLength {
		return Principal{}, fmt.Errorf("invalid token: claim %q is not a user id", is.UserClaim)
	}
	return Principal{Kind: PrincipalUser, ID: user, Issuer: is.Issuer, Sources: slices.Clone(is.Sources)}, nil
}

var errNotAllowedAlg = errors.New("invalid token: algorithm not allowed (RS256 or ES256 only)")

// tokenError names what is wrong with a token the parser refused.
func tokenError(err error) error {
	reason := "invalid"
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		reason = "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		reason = "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		reason = "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		reason = "a required claim (exp, aud) is missing"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "no key for it"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason = "malformed"
	}
	return errors.New("invalid token: " + reason)
}
