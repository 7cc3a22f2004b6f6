package tokenauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/receiptd/receiptd/handlers/webhook"
)

const (
	// SchemeBearer is the Verification.Scheme of a delivery authenticated by
	// its Authorization: Bearer header.
	SchemeBearer = "bearer-token"
	// SchemePath is the Verification.Scheme of a delivery authenticated by
	// the token in its URL (webhook.TokenPattern).
	SchemePath = "path-token"
	// PathWildcard is the name of the path token's wildcard in
	// webhook.TokenPattern: r.PathValue(PathWildcard).
	PathWildcard = "token"
	// MinTokenLen is the shortest token New accepts, in bytes: a shared
	// token is the only credential, so it must not be guessable.
	MinTokenLen = 16
	// MaxTokenLen is the longest token New accepts, in bytes.
	MaxTokenLen = 512
)

// Errors of Check. Every one wraps webhook.ErrUnauthenticated, and none
// carries a presented token or any part of it.
var (
	errNoToken          = fmt.Errorf("tokenauth: no bearer token (Authorization: Bearer) and no path token: %w", webhook.ErrUnauthenticated)
	errSeveralHeaders   = fmt.Errorf("tokenauth: more than one Authorization header: %w", webhook.ErrUnauthenticated)
	errEmptyBearer      = fmt.Errorf("tokenauth: Authorization: Bearer with no token: %w", webhook.ErrUnauthenticated)
	errTokenMismatch    = fmt.Errorf("tokenauth: token matches no active token: %w", webhook.ErrUnauthenticated)
	errTokensDiffer     = fmt.Errorf("tokenauth: bearer and path tokens are both present and differ: %w", webhook.ErrUnauthenticated)
	errBadRemoteAddr    = fmt.Errorf("tokenauth: remote address is not an IP address: %w", webhook.ErrUnauthenticated)
	errRemoteNotAllowed = fmt.Errorf("tokenauth: remote address is not in the allow-list: %w", webhook.ErrUnauthenticated)
)

// Checker authenticates deliveries by a shared token: one of several active
// tokens (rotation), presented as Authorization: Bearer or as the path
// token, from an address on an optional allow-list. It is safe for
// concurrent use.
type Checker struct {
	tokens []token
	allow  []netip.Prefix
}

// token is one active token: only its digest is kept.
type token struct {
	digest [sha256.Size]byte
	keyID  string // webhook.KeyID of the token
}

// Match says which token authenticated a request, and how.
type Match struct {
	// Index is the position of the matching token in the list given to New.
	Index int
	// Verification is what the provider returns from Verify: the scheme
	// (SchemeBearer or SchemePath) and webhook.KeyID of the token.
	Verification webhook.Verification
}

// New returns a Checker accepting any of tokens, from an address in allow
// (any address when allow is empty). It fails when no token is given, a
// token is shorter than MinTokenLen or longer than MaxTokenLen bytes, holds
// anything but visible ASCII (it must fit a header and a URL path segment),
// or is given twice, and when a prefix is invalid. Only the tokens' SHA-256
// digests are kept. IPv4-mapped IPv6 prefixes (::ffff:192.0.2.0/120) are
// stored as the IPv4 prefixes they mean.
func New(tokens [][]byte, allow []netip.Prefix) (*Checker, error) {
	if len(tokens) == 0 {
		return nil, errors.New("tokenauth: no token configured")
	}
	c := &Checker{tokens: make([]token, 0, len(tokens)), allow: make([]netip.Prefix, 0, len(allow))}
	keyIDs := make(map[string]int, len(tokens))
	for i, t := range tokens {
		if err := checkToken(t); err != nil {
			return nil, fmt.Errorf("tokenauth: token %d: %w", i, err)
		}
		tk := token{digest: sha256.Sum256(t), keyID: webhook.KeyID(t)}
		for j, other := range c.tokens {
			if other.digest == tk.digest {
				return nil, fmt.Errorf("tokenauth: token %d is token %d again", i, j)
			}
		}
		// Key ids name tokens in the metadata: two tokens must not share
		// one (a 2^-32 chance, but the config is where to find out).
		if j, dup := keyIDs[tk.keyID]; dup {
			return nil, fmt.Errorf("tokenauth: tokens %d and %d have the same key id %s: replace one", j, i, tk.keyID)
		}
		keyIDs[tk.keyID] = i
		c.tokens = append(c.tokens, tk)
	}
	for i, p := range allow {
		if !p.IsValid() {
			return nil, fmt.Errorf("tokenauth: allow-list prefix %d (%s) is invalid", i, p)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		c.allow = append(c.allow, p.Masked())
	}
	return c, nil
}

// checkToken reports what is wrong with a configured token, without
// repeating it.
func checkToken(t []byte) error {
	switch {
	case len(t) < MinTokenLen:
		return fmt.Errorf("shorter than %d bytes", MinTokenLen)
	case len(t) > MaxTokenLen:
		return fmt.Errorf("longer than %d bytes", MaxTokenLen)
	}
	for _, c := range t {
		if c <= ' ' || c > '~' {
			return errors.New("holds a byte other than visible ASCII (no spaces or control characters)")
		}
	}
	return nil
}

// KeyIDs returns webhook.KeyID of each token, in the order given to New.
func (c *Checker) KeyIDs() []string {
	ids := make([]string, len(c.tokens))
	for i, t := range c.tokens {
		ids[i] = t.keyID
	}
	return ids
}

// Check authenticates r. The remote address (r.RemoteAddr, as set by the
// server or a trusted-proxy middleware in front of it) must be in the
// allow-list when there is one. The token is taken from an Authorization
// header of the Bearer scheme (the scheme name in any case; an
// Authorization header of another scheme is not a token and is ignored) or
// from the path token (r.PathValue("token")). When both are present they
// must be the same token; the match is then reported as SchemeBearer.
//
// The presented token is hashed with SHA-256 and the digest compared with
// every active token's digest in constant time, all of them every time, so
// that neither the length nor the content of the tokens, nor which one
// matched, shows in the timing. A failure returns an error wrapping
// webhook.ErrUnauthenticated that never contains the token.
func (c *Checker) Check(r *http.Request) (Match, error) {
	if len(c.allow) > 0 {
		if err := c.checkRemote(r.RemoteAddr); err != nil {
			return Match{}, err
		}
	}

	bearer, hasBearer, err := bearerToken(r.Header)
	if err != nil {
		return Match{}, err
	}
	path := r.PathValue(PathWildcard)
	hasPath := path != ""

	var digest [sha256.Size]byte
	scheme := SchemeBearer
	switch {
	case hasBearer && hasPath:
		digest = sha256.Sum256([]byte(bearer))
		pathDigest := sha256.Sum256([]byte(path))
		if subtle.ConstantTimeCompare(digest[:], pathDigest[:]) != 1 {
			return Match{}, errTokensDiffer
		}
	case hasBearer:
		digest = sha256.Sum256([]byte(bearer))
	case hasPath:
		digest = sha256.Sum256([]byte(path))
		scheme = SchemePath
	default:
		return Match{}, errNoToken
	}

	index := c.lookup(&digest)
	if index < 0 {
		return Match{}, errTokenMismatch
	}
	return Match{
		Index:        index,
		Verification: webhook.Verification{Scheme: scheme, KeyID: c.tokens[index].keyID},
	}, nil
}

// lookup returns the index of the token whose digest is d, or -1. It
// compares d with every token, whatever matched, in constant time.
func (c *Checker) lookup(d *[sha256.Size]byte) int {
	found := -1
	for i := range c.tokens {
		eq := subtle.ConstantTimeCompare(c.tokens[i].digest[:], d[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	return found
}

// bearerToken returns the token of an Authorization: Bearer header. ok is
// false when there is no Authorization header or it is of another scheme.
// Several Authorization headers, or Bearer with nothing after it, are
// errors.
func bearerToken(h http.Header) (tok string, ok bool, err error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", false, errSeveralHeaders
	}
	v := strings.TrimSpace(values[0])
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, nil
	}
	tok = strings.TrimSpace(rest)
	if tok == "" {
		return "", false, errEmptyBearer
	}
	return tok, true, nil
}

// checkRemote reports whether remote (host:port, or a bare IP) is in the
// allow-list.
func (c *Checker) checkRemote(remote string) error {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remote); err == nil {
		addr = a
	} else {
		return errBadRemoteAddr
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range c.allow {
		if p.Contains(addr) {
			return nil
		}
	}
	return errRemoteNotAllowed
}
