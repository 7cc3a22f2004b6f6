package eventcodec_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/receiptd/receiptd/aggregate"
	"github.com/receiptd/receiptd/eventcodec"
)

var update = flag.Bool("update", false, "rewrite testdata/golden_v2.json and testdata/v1_log.json")

// goldenEvent is one event as the log holds it, with what it decodes to.
type goldenEvent struct {
	Name     string          `json:"name"`
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Data     []byte          `json:"data"`
	Metadata []byte          `json:"metadata"`
	Body     []byte          `json:"body,omitempty"`
	Decoded  json.RawMessage `json:"decoded"`
	Meta     json.RawMessage `json:"meta"`
	Raw      []byte          `json:"raw,omitempty"`
}

func (g goldenEvent) event() aggregate.Event {
	return aggregate.Event{ID: g.ID, Type: g.Type, Data: g.Data, Metadata: g.Metadata, Body: g.Body}
}

// checkGolden compares events with the golden file, or rewrites it.
func checkGolden(t *testing.T, file string, events []aggregate.Event, names []string, exactBody bool) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		var out []goldenEvent
		for i, e := range events {
			out = append(out, describe(t, names[i], e))
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	var golden []goldenEvent
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden) != len(events) {
		t.Fatalf("%s holds %d events, the test makes %d", path, len(golden), len(events))
	}
	for i, g := range golden {
		e := events[i]
		// What is stored decodes, forever, to what it decoded to when it
		// was written.
		g.Decoded, g.Meta = compact(t, g.Decoded), compact(t, g.Meta)
		if got := describe(t, g.Name, g.event()); !reflect.DeepEqual(got, g) {
			t.Errorf("%s: stored event decodes differently:\n got %s %s %q\nwant %s %s %q", g.Name, got.Decoded, got.Meta, got.Raw, g.Decoded, g.Meta, g.Raw)
		}
		// And today's encoder writes the same bytes. (A zstd frame may
		// change with the library's version and still decode the same:
		// the body is compared decompressed unless exactBody.)
		if e.Type != g.Type || e.ID != g.ID || !bytes.Equal(e.Data, g.Data) || !bytes.Equal(e.Metadata, g.Metadata) ||
			(exactBody && !bytes.Equal(e.Body, g.Body)) {
			t.Errorf("%s: encoding changed:\n got %s %x | %x\nwant %s %x | %x", g.Name, e.Type, e.Data, e.Metadata, g.Type, g.Data, g.Metadata)
		}
		if raw, err := eventcodec.RawBody(e); err != nil || !bytes.Equal(raw, g.Raw) {
			t.Errorf("%s: raw body %q (%v), want %q", g.Name, raw, err, g.Raw)
		}
	}
}

func compact(t *testing.T, b []byte) json.RawMessage {
	t.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		t.Fatal(err)
	}
	return c.Bytes()
}

func describe(t *testing.T, name string, e aggregate.Event) goldenEvent {
	t.Helper()
	d, err := decode(e)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m, err := eventcodec.Metadata(e)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	raw, err := eventcodec.RawBody(e)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(raw) == 0 {
		raw = nil // as the golden file's omitempty reads it back
	}
	return goldenEvent{Name: name, ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata, Body: e.Body,
		Decoded: encodeJSON(t, d), Meta: encodeJSON(t, m), Raw: raw}
}

// TestGoldenV2 pins the v2 bytes of every kind of event: a change to the
// encoding that would make stored events decode differently fails here.
func TestGoldenV2(t *testing.T) {
	var (
		events []aggregate.Event
		names  []string
	)
	for _, f := range append(seedFacts(t), oddFacts()...) {
		e, err := eventcodec.Encode(f.id, f.fact, f.meta, f.body)
		if err != nil {
			t.Fatal(err)
		}
		events, names = append(events, e), append(names, f.name)
	}
	checkGolden(t, "golden_v2.json", events, names, false)
}

// TestV1Log: a log of v1 events as the webhook handler wrote them before
// v2 (testdata/v1_log.json, never rewritten but by -update) decodes to the
// same structs, metadata and raw bodies as it did then.
func TestV1Log(t *testing.T) {
	var (
		events []aggregate.Event
		names  []string
	)
	for _, f := range append(seedFacts(t), oddFacts()...) {
		if f.body != nil && !json.Valid(f.body) || f.body != nil && len(f.body) == 0 {
			continue
		}
		events, names = append(events, v1Event(t, f)), append(names, f.name)
	}
	checkGolden(t, "v1_log.json", events, names, true)
}
