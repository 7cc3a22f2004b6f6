package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook"
	"github.com/receiptd/receiptd/handlers/webhook/reap"
	"github.com/receiptd/receiptd/handlers/webhook/reewild"
	"github.com/receiptd/receiptd/handlers/webhook/retm"
	"github.com/receiptd/receiptd/handlers/webhook/reusely"
	"github.com/receiptd/receiptd/handlers/webhook/reward"
	"github.com/receiptd/receiptd/handlers/webhook/standard"
	"github.com/receiptd/receiptd/internal/secret"
)

// Providers makes one verifier per configured source. A source with no
// verifier refuses to start unless it is marked insecure.
func (c *Config) Providers(logger *slog.Logger) ([]webhook.Provider, error) {
	var out []webhook.Provider
	for _, s := range c.Sources {
		p, err := buildProvider(s)
		if err != nil {
			return nil, fmt.Errorf("source %s (%s): %w", s.Name, s.Kind, err)
		}
		if s.Insecure {
			logger.Warn("source accepts deliveries WITHOUT verification (insecure: true); development only", "source", s.Name)
			p = webhook.Insecure(p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		logger.Warn("no sources configured: every webhook is answered 404 (see --config)")
	}
	return out, nil
}

// ErrNoVerifier: a source configured with nothing to verify deliveries with.
var ErrNoVerifier = errors.New("nothing to verify deliveries with: a source must be verifiable (configure its secrets, tokens or public keys, or insecure: true for development)")

func buildProvider(s SourceConfig) (webhook.Provider, error) {
	// credentials resolves the source's secrets, tokens or keys. With none
	// and insecure set, the provider gets a random throwaway credential it
	// never checks: webhook.Insecure bypasses Verify.
	credentials := func(refs []string, field string) ([][]byte, error) {
		vals, err := secret.ResolveAll(refs)
		if err != nil {
			return nil, fmt.Errorf("%s%w", field, err)
		}
		if len(vals) == 0 {
			if !s.Insecure {
				return nil, ErrNoVerifier
			}
			vals = [][]byte{[]byte(rand.Text())}
		}
		return vals, nil
	}
	allow, err := parseAllowIPs(s.AllowIPs)
	if err != nil {
		return nil, err
	}
	switch s.Kind {
	case "reewild":
		secrets, err := credentials(s.Secrets, "secrets")
		if err != nil {
			return nil, err
		}
		return reewild.New(reewild.Config{Source: s.Name, Secrets: secrets})
	case "reusely":
		secrets, err := credentials(s.Secrets, "secrets")
		if err != nil {
			return nil, err
		}
		return reusely.New(reusely.Config{Source: s.Name, Secrets: secrets, Algorithm: s.Algorithm, Encoding: s.Encoding, Tolerance: time.Duration(s.Tolerance)})
	case "standard":
		secrets, err := credentials(s.Secrets, "secrets")
		if err != nil {
			return nil, err
		}
		return standard.New(standard.Config{Source: s.Name, Secrets: secrets, Tolerance: time.Duration(s.Tolerance),
			Category: s.Category, EntityField: s.EntityField, StatusField: s.StatusField})
	case "reward":
		tokens, err := credentials(s.Tokens, "tokens")
		if err != nil {
			return nil, err
		}
		return reward.New(reward.Config{Source: s.Name, Tokens: tokens, AllowIPs: allow, BalanceSource: s.UserNamespace})
	case "retm":
		tokens, err := credentials(s.Tokens, "tokens")
		if err != nil {
			return nil, err
		}
		loc := time.UTC
		if s.Timezone != "" {
			if loc, err = time.LoadLocation(s.Timezone); err != nil {
				return nil, fmt.Errorf("timezone: %w", err)
			}
		}
		ts := make([]retm.Token, len(tokens))
		for i, t := range tokens {
			ts[i] = retm.Token{Value: t, Merchant: s.Merchant}
		}
		return retm.New(retm.Config{Source: s.Name, Tokens: ts, AllowIPs: allow, Currency: s.Currency, Location: loc})
	case "reap":
		pems, err := secret.ResolveAll(s.PublicKeys)
		if err != nil {
			return nil, fmt.Errorf("public_keys%w", err)
		}
		if len(pems) == 0 {
			return nil, ErrNoVerifier
		}
		keys, err := reap.ParsePublicKeys(pems...)
		if err != nil {
			return nil, fmt.Errorf("public_keys: %w", err)
		}
		return reap.New(reap.Config{Source: s.Name, PublicKeys: keys})
	default:
		return nil, fmt.Errorf("unknown kind %q", s.Kind)
	}
}

// parseAllowIPs reads addresses ("52.51.12.34") and prefixes ("10.0.0.0/8").
func parseAllowIPs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("allow_ips: %q is neither an address nor a prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
