package reewild_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// examplesDir holds the seed's example payloads, one file per event type.
const examplesDir = "../../../examples/reewild"

// example is one seed payload.
type example struct {
	name string // the event type, the file's base name
	body []byte
}

// loadExamples reads every example payload, sorted by name.
func loadExamples(tb testing.TB) []example {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) != 8 {
		tb.Fatalf("want the 8 seed examples in %s, found %d", examplesDir, len(paths))
	}
	sort.Strings(paths)
	out := make([]example, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, example{name: strings.TrimSuffix(filepath.Base(p), ".json"), body: b})
	}
	return out
}

// loadExample reads the example payload of one event type.
func loadExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
