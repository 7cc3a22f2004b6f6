// Package secret resolves secret references from config files and flags: a
// literal value, "env:NAME" or "file:PATH". Errors name the reference, never
// the value.
package secret

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrEmpty: a reference that resolves to nothing.
var ErrEmpty = errors.New("secret: empty")

// Resolve turns a reference into its value: "env:NAME" reads the
// environment, "file:PATH" a file (trailing newlines trimmed), anything else
// is the literal value.
func Resolve(ref string) ([]byte, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		name := strings.TrimPrefix(ref, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("secret env:%s: variable not set or empty: %w", name, ErrEmpty)
		}
		return []byte(v), nil
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		v, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secret file:%s: %w", path, err)
		}
		v = bytes.TrimRight(v, "\r\n")
		if len(v) == 0 {
			return nil, fmt.Errorf("secret file:%s: %w", path, ErrEmpty)
		}
		return v, nil
	default:
		if ref == "" {
			return nil, fmt.Errorf("secret: empty literal: %w", ErrEmpty)
		}
		return []byte(ref), nil
	}
}

// ResolveAll resolves a list of references.
func ResolveAll(refs []string) ([][]byte, error) {
	out := make([][]byte, 0, len(refs))
	for i, r := range refs {
		v, err := Resolve(r)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}
