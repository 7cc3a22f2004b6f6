package bytesize_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/receiptd/receiptd/internal/bytesize"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bytesize.Size
	}{
		{"268435456", 256 << 20}, {"256MiB", 256 << 20}, {"256 MiB", 256 << 20}, {"1GiB", 1 << 30},
		{"1.5GiB", 3 << 29}, {"512KiB", 512 << 10}, {"2TiB", 2 << 40}, {"100MB", 100e6}, {"1GB", 1e9},
		{"64kB", 64e3}, {"64KB", 64e3}, {"4096B", 4096}, {"0", 0},
	} {
		got, err := bytesize.Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "-1MiB", "12 parsecs", "1e400", "NaN", "Inf", "9223372036854775807KiB", "1,5GiB", "0x10"} {
		if got, err := bytesize.Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
	for _, c := range []struct {
		in   bytesize.Size
		want string
	}{{256 << 20, "256MiB"}, {1 << 30, "1GiB"}, {1536 << 10, "1536KiB"}, {1000, "1000B"}, {0, "0B"}} {
		if got := c.in.String(); got != c.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(c.in), got, c.want)
		}
		if back, err := bytesize.Parse(c.in.String()); err != nil || back != c.in {
			t.Errorf("%q reads back as %d, %v", c.in.String(), back, err)
		}
	}
}

// TestYAML: a size in a YAML document, as a number or a string with a
// unit; the errors name the line.
func TestYAML(t *testing.T) {
	var v struct {
		A bytesize.Size `yaml:"a"`
		B bytesize.Size `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: 268435456\nb: 1GiB\n"), &v); err != nil || v.A != 256<<20 || v.B != 1<<30 {
		t.Errorf("got %+v, %v", v, err)
	}
	for _, c := range []struct{ doc, want string }{
		{"a: 256M\n", "line 1: size \"256M\": not a number of bytes"},
		{"a: 1\nb: -1GiB\n", "line 2: size \"-1GiB\": negative"},
		{"a: [1]\n", "line 1: a size is a number of bytes or a string such as 256MiB"},
	} {
		if err := yaml.Unmarshal([]byte(c.doc), &v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to say %q", c.doc, err, c.want)
		}
	}
}
