package reap_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/receiptd/receiptd/handlers/webhook/reap"
)

// vector is one case of testdata/stringify/vectors.json, made by Node.js
// (testdata/stringify/gen.js): Output is JSON.stringify(JSON.parse(Input)),
// or null when JSON.parse throws.
type vector struct {
	Input  string  `json:"input"`
	Output *string `json:"output"`
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "stringify", "vectors.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		tb.Fatal(err)
	}
	if len(vs) < 50 {
		tb.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func TestCompactJSONVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := reap.CompactJSON([]byte(v.Input))
			if v.Output == nil {
				if err == nil {
					t.Fatalf("CompactJSON(%q) = %q, want an error (JSON.parse throws)", v.Input, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("CompactJSON(%q): %v", v.Input, err)
			}
			if string(got) != *v.Output {
				t.Fatalf("CompactJSON(%q)\n got %q\nwant %q", v.Input, got, *v.Output)
			}
		})
	}
}

// TestCompactJSONAndJSONCompact records the decision: json.Compact is
// JSON.stringify's equal on the example deliveries (no number, escape or
// key that JavaScript rewrites), and not in general.
func TestCompactJSONAndJSONCompact(t *testing.T) {
	goCompact := func(b []byte) string {
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	for _, ex := range loadExamples(t) {
		got, err := reap.CompactJSON(ex.Body)
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		if want := goCompact(ex.Body); string(got) != want {
			t.Errorf("%s: CompactJSON = %s, json.Compact = %s", ex.Name, got, want)
		}
		if again, err := reap.CompactJSON(got); err != nil || !bytes.Equal(again, got) {
			t.Errorf("%s: CompactJSON is not idempotent: %s, %v", ex.Name, again, err)
		}
	}
	for _, tc := range []struct{ in, stringify string }{
		{`[1.0]`, `[1]`},
		{`[1e2]`, `[100]`},
		{`[0.10]`, `[0.1]`},
		{`[-0]`, `[0]`},
		{`[1e21]`, `[1e+21]`},
		{`[0.0000001]`, `[1e-7]`},
		{`[12345678901234567890]`, `[12345678901234567000]`},
		{`[1e400]`, `[null]`},
		{`["\u00e9"]`, `["é"]`},
		{`["\/"]`, `["/"]`},
		{`["\u001F"]`, `["\u001f"]`},
		{`["\u0008"]`, `["\b"]`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"b":1,"1":2}`, `{"1":2,"b":1}`},
	} {
		got, err := reap.CompactJSON([]byte(tc.in))
		if err != nil || string(got) != tc.stringify {
			t.Errorf("CompactJSON(%s) = %s, %v; want %s", tc.in, got, err, tc.stringify)
		}
		if goCompact([]byte(tc.in)) == tc.stringify {
			t.Errorf("json.Compact(%s) = JSON.stringify's %s: not a case where they differ", tc.in, tc.stringify)
		}
	}
}

func TestCompactJSONRefuses(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for _, in := range []string{
		"\"\xff\"",            // invalid UTF-8
		"\"\xed\xa0\x80\"",    // a surrogate encoded in UTF-8
		"\"\xe2\x82\"",        // a truncated sequence
		deep,                  // deeper than encoding/json goes
		"{\"a\":1}\x00",       // trailing byte
		"[1,2",                // unterminated
		"\"\\u00zz\"",         // bad escape
		"[01]", "[1.]", "[-]", // bad numbers
	} {
		if got, err := reap.CompactJSON([]byte(in)); err == nil {
			t.Errorf("CompactJSON(%.40q) = %.40q, want an error", in, got)
		}
	}
	ok := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	if _, err := reap.CompactJSON([]byte(ok)); err != nil {
		t.Errorf("CompactJSON of 10000 nested arrays: %v", err)
	}
}

// randomJSON writes a random JSON text that exercises what JSON.stringify
// rewrites: number notations, escapes (surrogates included), raw UTF-8,
// repeated and array-index keys, whitespace.
func randomJSON(r *rand.Rand, b *strings.Builder, depth int) {
	ws := func() {
		if r.IntN(4) == 0 {
			b.WriteString([]string{" ", "\n  ", "\t", "\r\n"}[r.IntN(4)])
		}
	}
	ws()
	switch k := r.IntN(10); {
	case k < 2 && depth < 5:
		b.WriteByte('{')
		n := r.IntN(6)
		keys := []string{"a", "b", "eventId", "0", "1", "2", "10", "01", "-1", "4294967294", "4294967295", `\u0031`, `\u00e9`, "é", ""}
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			ws()
			b.WriteString(`"` + keys[r.IntN(len(keys))] + `"`)
			ws()
			b.WriteByte(':')
			randomJSON(r, b, depth+1)
		}
		ws()
		b.WriteByte('}')
	case k < 4 && depth < 5:
		b.WriteByte('[')
		n := r.IntN(5)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			randomJSON(r, b, depth+1)
		}
		ws()
		b.WriteByte(']')
	case k < 7:
		b.WriteString(randomNumber(r))
	case k < 9:
		b.WriteByte('"')
		for range r.IntN(8) {
			b.WriteString(randomStringPiece(r))
		}
		b.WriteByte('"')
	default:
		b.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	}
	ws()
}

func randomNumber(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return strconv.FormatInt(r.Int64N(1<<62)-(1<<61), 10)
	case 1:
		return strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)), 'g', -1, 64)
	case 2:
		return strconv.FormatFloat(r.Float64()*math.Pow(10, float64(r.IntN(40)-20)), 'f', r.IntN(12), 64)
	case 3:
		return fmt.Sprintf("%d.%0*d", r.IntN(1000), r.IntN(4)+1, 0) // 1.0, 12.00
	case 4:
		e := []string{"e", "E", "e+", "E-", "e-"}[r.IntN(5)]
		return fmt.Sprintf("%d%s%d", r.IntN(100), e, r.IntN(400))
	default:
		return []string{"0", "-0", "-0.0", "0e0", "1e21", "1e-7", "9007199254740993", "123456789012345678901234567890"}[r.IntN(8)]
	}
}

func randomStringPiece(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return fmt.Sprintf(`\u%04x`, r.IntN(0x10000))
	case 1:
		return fmt.Sprintf(`\u%04X`, 0xd800+r.IntN(0x800)) // surrogates, paired or not
	case 2:
		return []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[r.IntN(8)]
	case 3:
		return string(rune(0x80 + r.IntN(0x2000)))
	case 4:
		return []string{"😀", "日本", "\u2028", "<>&", "\u007f"}[r.IntN(5)]
	default:
		return string(rune('a' + r.IntN(26)))
	}
}

// TestCompactJSONMatchesNode cross-checks CompactJSON with Node.js's
// JSON.stringify(JSON.parse(…)) on random documents, when node is
// installed.
func TestCompactJSONMatchesNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if testing.Short() {
		t.Skip("runs node")
	}
	r := rand.New(rand.NewPCG(2026, 10))
	inputs := make([]string, 3000)
	for i := range inputs {
		var b strings.Builder
		randomJSON(r, &b, 0)
		inputs[i] = base64.StdEncoding.EncodeToString([]byte(b.String()))
	}
	for _, ex := range loadExamples(t) {
		inputs = append(inputs, base64.StdEncoding.EncodeToString(ex.Body))
	}
	// Bodies travel as base64 both ways, so that nothing (a lone surrogate
	// in particular) is re-encoded on the way.
	const script = `
let data = '';
process.stdin.on('data', (c) => { data += c; });
process.stdin.on('end', () => {
  const out = JSON.parse(data).map((b64) => {
    try {
      return Buffer.from(JSON.stringify(JSON.parse(Buffer.from(b64, 'base64').toString('utf8'))), 'utf8').toString('base64');
    } catch (e) {
      return null;
    }
  });
  process.stdout.write(JSON.stringify(out));
});`
	in, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var want []*string
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(inputs) {
		t.Fatalf("node answered %d results (%v)", len(want), err)
	}
	failures := 0
	for i, b64 := range inputs {
		body, _ := base64.StdEncoding.DecodeString(b64)
		got, err := reap.CompactJSON(body)
		switch {
		case want[i] == nil && err == nil:
			t.Errorf("CompactJSON(%q) = %q; JSON.parse throws", body, got)
		case want[i] != nil && err != nil:
			t.Errorf("CompactJSON(%q): %v", body, err)
		case want[i] != nil:
			w, _ := base64.StdEncoding.DecodeString(*want[i])
			if !bytes.Equal(got, w) {
				t.Errorf("CompactJSON(%q)\n got %q\nnode %q", body, got, w)
			}
		}
		if t.Failed() {
			if failures++; failures > 10 {
				t.FailNow()
			}
		}
	}
}

// FuzzCompactJSON: CompactJSON never panics; it succeeds exactly on valid
// UTF-8 JSON (within the depth bound); its output is JSON that decodes to
// the same value as the input (encoding/json, like JavaScript, keeps the
// last of repeated keys and reads numbers as doubles) and is its own
// compact form.
func FuzzCompactJSON(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Input))
	}
	for _, ex := range loadExamples(f) {
		f.Add(ex.Body)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := reap.CompactJSON(in)
		if err != nil {
			if json.Valid(in) && utf8.Valid(in) && !bytes.Contains(in, []byte(strings.Repeat("[", 1000))) && !bytes.Contains(in, []byte(strings.Repeat("{\"\":", 1000))) {
				// Valid, not deep: only an exotic nesting could explain it.
				var v any
				if json.Unmarshal(in, &v) == nil {
					t.Fatalf("CompactJSON(%q) refused valid JSON: %v", in, err)
				}
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("CompactJSON accepted invalid JSON %q", in)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("CompactJSON(%q) = %q, not valid UTF-8 JSON", in, out)
		}
		if again, err := reap.CompactJSON(out); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("CompactJSON is not idempotent on %q: %q, %v", out, again, err)
		}
		var a, b any
		if json.Unmarshal(in, &a) != nil {
			return // a number out of float64's range: JavaScript writes null
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("CompactJSON(%q) = %q does not decode: %v", in, out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("CompactJSON(%q) = %q changes the value: %#v vs %#v", in, out, a, b)
		}
	})
}

func BenchmarkCompactJSON(b *testing.B) {
	body := loadExample(b, "account_status_change.rejected-retry")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reap.CompactJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}
