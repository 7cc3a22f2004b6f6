package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a size in bytes, written in YAML as a number of bytes or
// with a unit: "256MiB", "1GiB", "512KiB" (powers of 1024), "100MB",
// "1GB" (powers of 1000), "4096B".
type Size int64

// units are the units Size reads, longest first.
var units = []struct {
	name string
	n    int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1},
}

// Parse reads a size as Size's YAML does.
func Parse(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.name); ok {
			t, mult = strings.TrimSpace(num), u.n
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("size %q: negative", s)
		}
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q: too large", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("size %q: not a number of bytes, nor one with a unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("size %q: negative", s)
	}
	if v := f * float64(mult); v < math.MaxInt64 {
		return Size(v), nil
	}
	return 0, fmt.Errorf("size %q: too large", s)
}

// UnmarshalYAML reads a number of bytes or a size with a unit.
func (b *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size is a number of bytes or a string such as 256MiB", n.Line)
	}
	v, err := Parse(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String writes b with the largest power-of-1024 unit that divides it
// exactly ("256MiB", "1536KiB", "1000B").
func (b Size) String() string {
	for _, u := range units[:4] {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
