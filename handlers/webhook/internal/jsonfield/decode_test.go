package jsonfield_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/receiptd/receiptd/examples"
	"github.com/receiptd/receiptd/handlers/webhook/internal/jsonfield"
)

type wireTx struct {
	TotalPoints json.RawMessage `json:"totalPoints"`
	Brand       json.RawMessage `json:"brand"`
}

type wireData struct {
	UserID      json.RawMessage `json:"userID"`
	Transaction *wireTx         `json:"transaction"`
}

type wire struct {
	EventType json.RawMessage `json:"eventType"`
	Data      *wireData       `json:"data"`
	Ignored   string
}

var wireDecoder = jsonfield.NewDecoder[wire]()

// TestDecoderReadsAsJavaScript: keys match exactly, the last of a
// repeated key wins, a nested object sent twice is the last one whole —
// what JSON.parse gives the sender's own JavaScript (issue 12, item 8:
// encoding/json read "TOTALPOINTS":888 as totalPoints).
func TestDecoderReadsAsJavaScript(t *testing.T) {
	type want struct {
		eventType, userID, points string
		noData, noTx              bool
	}
	for _, c := range []struct {
		body string
		want want
	}{
		{`{"eventType":"rewards.awarded","data":{"userID":"u1","transaction":{"totalPoints":5,"brand":"B"}}}`, want{`"rewards.awarded"`, `"u1"`, `5`, false, false}},
		// Case variants are other keys.
		{`{"data":{"transaction":{"totalPoints":5,"TOTALPOINTS":888}}}`, want{"", "", `5`, false, false}},
		{`{"data":{"transaction":{"TOTALPOINTS":888,"totalPoints":5}}}`, want{"", "", `5`, false, false}},
		{`{"data":{"transaction":{"TotalPoints":888}}}`, want{"", "", "", false, false}},
		{`{"EVENTTYPE":"rewards.awarded","eventtype":"x","EventType":"y"}`, want{"", "", "", true, true}},
		{`{"DATA":{"userID":"u1"},"Data":{"userID":"u2"}}`, want{"", "", "", true, true}},
		{`{"data":{"USERID":"u1","transaction":{}}}`, want{"", "", "", false, false}},
		{"{\"eventTyp\u0130\":1,\"eventTypE\":2}", want{"", "", "", true, true}},
		// The last of a repeated key wins.
		{`{"eventType":"a","eventType":"b"}`, want{`"b"`, "", "", true, true}},
		{`{"data":{"transaction":{"totalPoints":5,"totalPoints":888}}}`, want{"", "", `888`, false, false}},
		// A nested object sent twice is the last one, not a merge.
		{`{"data":{"userID":"u1","transaction":{"totalPoints":5}},"data":{"transaction":{"brand":"B"}}}`, want{"", "", "", false, false}},
		{`{"data":{"userID":"u1"},"data":null}`, want{"", "", "", true, true}},
		{`{"data":"x","data":{"userID":"u2"}}`, want{"", `"u2"`, "", false, true}},
		{`{"data":{"transaction":5},"data":{}}`, want{"", "", "", false, true}},
		{`{"data":{"transaction":5,"transaction":null}}`, want{"", "", "", false, true}},
		// Keys compare by value: escapes are decoded, as JavaScript does.
		{`{"\u0065ventType":"e","data":{"user\u0049D":"u\u0031"}}`, want{`"e"`, `"u\u0031"`, "", false, true}},
		{`{"eventType\u0000":"e"}`, want{"", "", "", true, true}},
		// Members without a field are checked and skipped, whatever they hold.
		{`{"x":{"eventType":"no"},"y":[{"data":1}],"eventType":"yes","z":-1.5e+3}`, want{`"yes"`, "", "", true, true}},
		{` { "eventType" : "sp" , "data" : { } } `, want{`"sp"`, "", "", false, true}},
	} {
		var w wire
		if err := wireDecoder.Decode([]byte(c.body), &w); err != nil {
			t.Errorf("Decode(%s): %v", c.body, err)
			continue
		}
		got := want{eventType: string(w.EventType), noData: w.Data == nil, noTx: w.Data == nil || w.Data.Transaction == nil}
		if w.Data != nil {
			got.userID = string(w.Data.UserID)
			if w.Data.Transaction != nil {
				got.points = string(w.Data.Transaction.TotalPoints)
			}
		}
		if got != c.want {
			t.Errorf("Decode(%s) = %+v, want %+v", c.body, got, c.want)
		}
	}
}

// TestTypeErrors: where the struct wants an object, the member's last
// value must be one (or null); the error names it, and the rest of the body
// is still decoded.
func TestTypeErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"data":[{"userID":"u2"}],"eventType":"e"}`:                   "data is an array, not an object",
		`{"data":{"userID":"u1"},"data":"x","eventType":"e"}`:          "data is a string, not an object",
		`{"eventType":"e","data":{"transaction":5}}`:                   "data.transaction is a number, not an object",
		`{"eventType":"e","data":{"transaction":true,"userID":1}}`:     "data.transaction is a boolean, not an object",
		`{"eventType":"e","data":{"transaction":[]},"data":{"x":"y"}}`: "",
		`{"eventType":"e","data":{"transaction":[]},"data":null}`:      "",
		`{"eventType":"e","data":7,"data":{"transaction":{}}}`:         "",
	} {
		var w wire
		err := wireDecoder.Decode([]byte(body), &w)
		var te *jsonfield.TypeError
		switch {
		case want == "" && err != nil:
			t.Errorf("Decode(%s) = %v, want no error (the last value decides)", body, err)
		case want != "" && (!errors.As(err, &te) || err.Error() != want):
			t.Errorf("Decode(%s) = %v, want the TypeError %q", body, err, want)
		case string(w.EventType) != `"e"`:
			t.Errorf("Decode(%s): eventType %q, want it decoded all the same", body, w.EventType)
		}
	}
}

// TestDecodeErrors: anything json.Valid refuses fails with a
// *SyntaxError; valid JSON that is not an object fails with ErrNotObject.
func TestDecodeErrors(t *testing.T) {
	for _, body := range []string{
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,"a":1}`, `{"a":1}}`, `{"a":1} x`, `{"a":1}{"b":2}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `{"a":1e}`, `{"a":NaN}`, `{"a":-Infinity}`, `{"a":tru}`, `{"a":nul}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", "{\"a\":\"tab\there\"}", `{"a":"unterminated}`,
		`{"a":[1,2}`, `{"a":[1,,2]}`, `{"a":[1 2]}`, `{"a":{"b" 1}}`, `{"a":{"b":1]}`, `{a:1}`, `{'a':1}`, "{\"a\":1}\x00",
		`{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, // 10,001 deep
		strings.Repeat("[", 100_000),
	} {
		if json.Valid([]byte(body)) {
			t.Fatalf("test case %.40q is valid JSON", body)
		}
		var w wire
		for name, err := range map[string]error{"Decode": wireDecoder.Decode([]byte(body), &w), "Object": second(jsonfield.Object([]byte(body)))} {
			if se := (*jsonfield.SyntaxError)(nil); !errors.As(err, &se) {
				t.Errorf("%s(%.40q) = %v, want a *SyntaxError", name, body, err)
			}
		}
	}
	for _, body := range []string{`null`, `[]`, ` [{"eventType":"x"}] `, `"s"`, `1`, `true`, strings.Repeat("[", 10000) + strings.Repeat("]", 10000)} {
		var w wire
		for name, err := range map[string]error{"Decode": wireDecoder.Decode([]byte(body), &w), "Object": second(jsonfield.Object([]byte(body)))} {
			if !errors.Is(err, jsonfield.ErrNotObject) {
				t.Errorf("%s(%.40q) = %v, want ErrNotObject", name, body, err)
			}
		}
	}
	// At the depth limit exactly: JSON, as json.Valid says.
	deepest := `{"eventType":"x","data":{"userID":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`
	var w wire
	if !json.Valid([]byte(deepest)) || wireDecoder.Decode([]byte(deepest), &w) != nil || string(w.EventType) != `"x"` {
		t.Errorf("a body 10,000 deep: valid %v, decoded %q", json.Valid([]byte(deepest)), w.EventType)
	}
	// Invalid UTF-8 in a string is taken, as encoding/json takes it.
	if err := wireDecoder.Decode([]byte("{\"eventType\":\"\xff\xfe\"}"), &w); err != nil || string(w.EventType) != "\"\xff\xfe\"" {
		t.Errorf("invalid UTF-8 in a string: %v, %q", err, w.EventType)
	}
}

func second[T any](_ T, err error) error { return err }

// TestNewDecoderRefuses: a struct the decoder cannot fill is a panic at
// construction, not a surprise at the first delivery.
func TestNewDecoderRefuses(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	mustPanic("string field", func() {
		jsonfield.NewDecoder[struct {
			A string `json:"a"`
		}]()
	})
	mustPanic("not a struct", func() { jsonfield.NewDecoder[map[string]json.RawMessage]() })
	mustPanic("a nested string field", func() {
		jsonfield.NewDecoder[struct {
			A *struct {
				B int `json:"b"`
			} `json:"a"`
		}]()
	})
	// Two fields of one name and unexported tagged fields panic too; go
	// vet refuses both before a test could build them.
}

// FuzzDecode: Object and Decoder agree with encoding/json on what is JSON
// (json.Valid) and, for an object, on its members where encoding/json reads
// keys exactly (into a map: every key as sent, the last of a repeated one):
// the same keys, each with the same text.
func FuzzDecode(f *testing.F) {
	names, _ := fs.Glob(examples.Payloads, "*/*.json")
	for _, n := range names {
		b, _ := fs.ReadFile(examples.Payloads, n)
		f.Add(b)
	}
	for _, s := range []string{
		`{"data":{"transaction":{"totalPoints":5,"TOTALPOINTS":888}}}`, `{"a":1,"a":2}`, `{"\u0061":1,"a":2}`, `{"data":{"userID":"u"},"data":5}`,
		"{\"\xff\":1,\"\xfe\":2}", `{"\ud800":1,"\udc00":2}`, `[]`, `null`, `{"a":[{"b":[1,2,{"c":"\"}"}]}]}`, `{"a":1e400}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		valid := json.Valid(body)
		m, err := jsonfield.Object(body)
		var w wire
		derr := wireDecoder.Decode(body, &w)
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		isObject := valid && trimmed[0] == '{'

		switch {
		case !valid:
			if se := (*jsonfield.SyntaxError)(nil); !errors.As(err, &se) || !errors.As(derr, &se) {
				t.Fatalf("invalid JSON: Object %v, Decode %v", err, derr)
			}
			return
		case !isObject:
			if !errors.Is(err, jsonfield.ErrNotObject) || !errors.Is(derr, jsonfield.ErrNotObject) {
				t.Fatalf("not an object: Object %v, Decode %v", err, derr)
			}
			return
		case err != nil || derr != nil && !errors.As(derr, new(*jsonfield.TypeError)):
			t.Fatalf("an object: Object %v, Decode %v", err, derr)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(m, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("Object = %v\nencoding/json: %v", keys(m), keys(want))
		}
		if !bytes.Equal(w.EventType, want["eventType"]) {
			t.Fatalf("eventType %q, want %q", w.EventType, want["eventType"])
		}
		data := want["data"]
		if (w.Data != nil) != (len(data) > 0 && data[0] == '{') {
			t.Fatalf("data %v for %q", w.Data != nil, data)
		}
		if te := (*jsonfield.TypeError)(nil); errors.As(derr, &te) && te.Path == "data" && (len(data) == 0 || data[0] == '{' || data[0] == 'n') {
			t.Fatalf("TypeError %v for data %q", te, data)
		}
		if w.Data != nil {
			dm, err := jsonfield.Object(data)
			if err != nil || !bytes.Equal(w.Data.UserID, dm["userID"]) {
				t.Fatalf("data.userID %q, want %q (%v)", w.Data.UserID, dm["userID"], err)
			}
		}
	})
}

func keys(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }
