package jsonfield_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

func TestIsNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "1.5": true, "1e9": true, "1E+9": true, "-2.5e-3": true,
		"": false, "01": false, "1.": false, ".5": false, "+1": false, "1e": false, "NaN": false, "Infinity": false, "0x10": false, " 1": false,
	} {
		if got := jsonfield.IsNumber(s); got != want {
			t.Errorf("IsNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestID(t *testing.T) {
	for raw, want := range map[string]string{
		`"abc"`: "abc", `42`: "42", `"a\u00e9"`: "aé", `-7`: "-7",
		`""`: "", `null`: "", `true`: "", `{}`: "", `"a\nb"`: "", `"\u0000"`: "", `01`: "", `"` + strings.Repeat("x", jsonfield.MaxIDLen+1) + `"`: "",
	} {
		got, ok := jsonfield.ID(json.RawMessage(raw))
		if got != want || ok != (want != "") {
			t.Errorf("ID(%.20s) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	if _, err := jsonfield.RequiredID(nil, "data.id"); err == nil || !strings.Contains(err.Error(), "no data.id") {
		t.Errorf("RequiredID of an absent field: %v", err)
	}
}

func TestDecimal(t *testing.T) {
	for _, c := range []struct {
		raw, want, text string
		ok, err         bool
	}{
		{`10.50`, "10.5", "10.50", true, false},
		{`"0.1"`, "0.1", "0.1", true, false},
		{`123456789012345678901234567890.000000000000000001`, "123456789012345678901234567890.000000000000000001", "123456789012345678901234567890.000000000000000001", true, false},
		{`null`, "", "", false, false},
		{`""`, "", "", false, false},
		{`"ten"`, "", "", false, true},
		{`true`, "", "", false, true},
		{`1e999`, "", "", false, true},
		{`"` + strings.Repeat("9", jsonfield.MaxDecimalText+1) + `"`, "", "", false, true},
	} {
		d, text, ok, err := jsonfield.Decimal(json.RawMessage(c.raw), "amount")
		if ok != c.ok || (err != nil) != c.err || text != c.text || (ok && d.String() != c.want) {
			t.Errorf("Decimal(%.24s) = %s, %q, %v, %v", c.raw, d, text, ok, err)
		}
	}
}

func TestIDReaders(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "00B4N5": true, strings.Repeat("x", jsonfield.MaxIDLen): true,
		"": false, strings.Repeat("x", jsonfield.MaxIDLen+1): false, "a\tb": false, "a\x7f": false, "a\ufffd": false,
	} {
		if got := jsonfield.IsID(id); got != want {
			t.Errorf("IsID(%.20q) = %v", id, got)
		}
	}
	if got := jsonfield.FirstID(nil, json.RawMessage(`""`), json.RawMessage(`{}`), json.RawMessage(`7`), json.RawMessage(`"b"`)); got != "7" {
		t.Errorf("FirstID = %q, want 7", got)
	}
	if got := jsonfield.FirstString(json.RawMessage(`7`), json.RawMessage(`""`), json.RawMessage(`"b"`)); got != "b" {
		t.Errorf("FirstString = %q, want b", got)
	}
	if err := jsonfield.NotID(json.RawMessage(`true`), "data.id"); err == nil || !strings.Contains(err.Error(), "data.id is not an id") {
		t.Errorf("NotID of a boolean: %v", err)
	}
	if err := jsonfield.NotID(json.RawMessage(`null`), "data.id"); err == nil || err.Error() != "no data.id" {
		t.Errorf("NotID of null: %v", err)
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abc", 2, "ab"}, {"aé", 2, "a"}, {"éé", 3, "é"}, {"é", 0, ""},
	} {
		if got := jsonfield.Truncate(c.s, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestObjectValue(t *testing.T) {
	for raw, want := range map[string]int{`{"a":1,"A":2,"a":3}`: 2, `{}`: 0, `null`: -1, `[]`: -1, `"{}"`: -1, ``: -1, `{"a":}`: -1} {
		o, ok := jsonfield.ObjectValue(json.RawMessage(raw))
		if ok != (want >= 0) || ok && len(o) != want {
			t.Errorf("ObjectValue(%s) = %v, %v", raw, o, ok)
		}
	}
	if o, _ := jsonfield.ObjectValue(json.RawMessage(`{"a":1,"a":3}`)); string(o["a"]) != "3" {
		t.Errorf("a repeated key: %s, want the last", o["a"])
	}
}
