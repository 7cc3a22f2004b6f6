// Package tokenauth is the shared-token check of the providers that sign
// nothing (Reward, RETM): a delivery is authentic when it presents one of
// the source's active tokens and, where an allow-list is configured, comes
// from an allowed address. The providers (handlers/webhook/reward,
// handlers/webhook/retm) call Checker.Check from their Verify.
//
// # Basics
//
// A token is presented either as
//
//	Authorization: Bearer <token>         Verification.Scheme "bearer-token"
//	POST /webhooks/{source}/{token}       Verification.Scheme "path-token"
//
// (webhook.TokenPattern serves the second). When both are present they must
// be the same token. An Authorization header of another scheme (Basic, …)
// is not a token and is ignored; two Authorization headers, or Bearer with
// nothing after it, are refused. Several tokens may be active at once, so a
// rotation can overlap: the key id recorded is webhook.KeyID of the token
// that matched (Verification.KeyID), and Match.Index says which one it was.
//
// The presented token is hashed with SHA-256 and the digest compared with
// every configured token's digest with crypto/subtle, all of them on every
// request: equal-length digests, so neither a token's length nor which
// token matched shows in the timing. Only digests are kept in memory after
// New.
//
// The allow-list (netip prefixes; empty means any address) is checked
// against r.RemoteAddr before the token. Behind a reverse proxy RemoteAddr
// is the proxy's: a trusted-proxy middleware must set it from the
// forwarding header first; this package never reads X-Forwarded-For itself,
// since any client can send one.
//
// Every failure returns an error wrapping webhook.ErrUnauthenticated (the
// handler answers 401 and stores nothing). No error, and no log line made
// from one, ever contains a presented or configured token.
//
// # Caveats
//
// A shared token does not cover the body: anyone holding it can send any
// body, and a captured delivery replays forever. The providers' dedupe keys
// are what keep a replay from counting twice. A path token also appears in
// the URL, and so in the access logs of any proxy on the way: prefer the
// Bearer header where the provider can send one.
//
// Tokens must be MinTokenLen (16) to MaxTokenLen (512) bytes of visible
// ASCII, so that they fit a header and a URL path segment unescaped.
//
// This package imports handlers/webhook (for ErrUnauthenticated,
// Verification and KeyID) and the standard library only.
package tokenauth
