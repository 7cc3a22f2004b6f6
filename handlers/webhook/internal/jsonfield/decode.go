package jsonfield

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Decoding reads a body the way the sender's JavaScript reads it
// (JSON.parse): object keys match exactly, case-sensitively (encoding/json
// matches "TOTALPOINTS" to a field tagged totalPoints, and takes whichever
// of "totalPoints" and "TOTALPOINTS" comes last), a key sent twice means its
// last value, and a nested object sent twice is the last one whole, not a
// merge of both. A key with escapes is compared by its value
// ("\u0065ventType" is eventType), as JavaScript compares it.
//
// A body is JSON here exactly when json.Valid says it is: the same grammar,
// invalid UTF-8 inside strings accepted (as encoding/json does; String and
// ID refuse it where it matters), nesting at most MaxDepth deep. Every value
// is checked, wanted or not, so a body that decodes is JSON throughout.
// Values are the body's own bytes (json.RawMessage slices of it, their
// capacity cut to their length), not copies: read them before the body's
// buffer is reused.

// MaxDepth is the deepest nesting accepted: encoding/json's limit, so that
// json.Valid and these decoders agree on what is JSON.
const MaxDepth = 10000

// ErrNotObject: the body is JSON, but not an object.
var ErrNotObject = errors.New("not a JSON object")

// SyntaxError is JSON that is not valid, at Offset bytes into the input.
type SyntaxError struct {
	Offset int
	msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.msg)
}

// Object decodes a JSON object's members, each as its raw JSON text, by
// exact key; of a key sent twice the last value is kept. A body that is not
// a JSON object fails (ErrNotObject, or a *SyntaxError).
func Object(data []byte) (map[string]json.RawMessage, error) {
	s := scanner{data: data}
	s.space()
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		return nil, s.notObject()
	}
	out := make(map[string]json.RawMessage, 8)
	err := s.object(1, func(key []byte, escaped bool) (bool, error) {
		start := s.i
		if err := s.value(1); err != nil {
			return true, err
		}
		out[keyString(key, escaped)] = s.data[start:s.i:s.i]
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.end()
}

// ObjectValue decodes a member's value as Object does; ok is false for any
// value that is not a JSON object, including null.
func ObjectValue(raw json.RawMessage) (o map[string]json.RawMessage, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	o, err := Object(raw)
	if err != nil {
		return nil, false
	}
	return o, true
}

// Decoder decodes a JSON object into a struct of type T by the struct's
// `json:"name"` tags, matched exactly (see the package's decoding rules).
// A field is a json.RawMessage (the member's value as its JSON text, nil
// when absent) or a pointer to such a struct (a nested object: nil when the
// member is absent or null). A member whose last value is of another type
// where an object is wanted is a *TypeError, reported after the whole body
// is decoded (as encoding/json carries on past one), so that what else the
// body says is still read. Untagged fields are left alone. Members without
// a field are checked and skipped. A Decoder is safe for concurrent use.
type Decoder[T any] struct{ plan *plan }

// plan is how one struct type is decoded.
type plan struct {
	typ    reflect.Type
	fields map[string]planField // by the exact JSON name
}

type planField struct {
	index  int
	name   string
	nested *plan // for a pointer to a struct; nil for a json.RawMessage
}

// TypeError is a member whose (last) value is not an object where the
// struct wants one.
type TypeError struct {
	// Path names the member from the top: "data.user".
	Path string
	// Kind is what it is instead: "string", "number", "boolean" or "array".
	Kind string
}

func (e *TypeError) Error() string { return e.Path + " is " + article(e.Kind) + ", not an object" }

func article(kind string) string {
	if kind == "array" {
		return "an array"
	}
	return "a " + kind
}

// kindOf names the JSON value starting with c.
func kindOf(c byte) string {
	switch c {
	case '"':
		return "string"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// NewDecoder returns the Decoder of T. It panics if T is not a struct
// whose tagged fields are all exported json.RawMessage fields or pointers
// to such structs, with distinct names: a programming error, found by any
// test that decodes.
func NewDecoder[T any]() *Decoder[T] {
	p, err := newPlan(reflect.TypeFor[T](), 0)
	if err != nil {
		panic("jsonfield: NewDecoder: " + err.Error())
	}
	return &Decoder[T]{plan: p}
}

func newPlan(t reflect.Type, depth int) (*plan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%v is not a struct", t)
	}
	if depth > 16 {
		return nil, fmt.Errorf("%v nests too deep", t)
	}
	p := &plan{typ: t, fields: make(map[string]planField, t.NumField())}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" || !f.IsExported() {
			return nil, fmt.Errorf("%v.%s: tag %q: want an exported field with a name", t, f.Name, tag)
		}
		if _, dup := p.fields[name]; dup {
			return nil, fmt.Errorf("%v: two fields named %q", t, name)
		}
		pf := planField{index: i, name: name}
		switch {
		case f.Type == rawMessageType:
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			sub, err := newPlan(f.Type.Elem(), depth+1)
			if err != nil {
				return nil, err
			}
			pf.nested = sub
		default:
			return nil, fmt.Errorf("%v.%s: %v is neither json.RawMessage nor a pointer to a struct", t, f.Name, f.Type)
		}
		p.fields[name] = pf
	}
	return p, nil
}

// Decode sets *dst from the JSON object data. *dst is zeroed first. A body
// that is not a JSON object fails (ErrNotObject, or a *SyntaxError, and
// *dst is left zero, as encoding/json leaves it: nothing is read from text
// that is not JSON); one with a *TypeError is decoded all the same.
func (d *Decoder[T]) Decode(data []byte, dst *T) error {
	var zero T
	*dst = zero
	s := scanner{data: data}
	s.space()
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		return s.notObject()
	}
	typeErr, err := s.into(d.plan, reflect.ValueOf(dst).Elem(), 1)
	if err == nil {
		err = s.end()
	}
	if err != nil {
		*dst = zero
		return err
	}
	if typeErr != nil {
		return typeErr
	}
	return nil
}

// into decodes the object at s.i, depth deep, into v (a struct of p's
// type). err is a syntax error; typeErr the first field (in the struct's
// order) whose last value is of the wrong type, here or below.
func (s *scanner) into(p *plan, v reflect.Value, depth int) (typeErr *TypeError, err error) {
	var bad []fieldError // few: usually none
	err = s.object(depth, func(key []byte, escaped bool) (bool, error) {
		var f planField
		var ok bool
		if escaped {
			f, ok = p.fields[keyString(key, true)]
		} else {
			f, ok = p.fields[string(key)]
		}
		if !ok {
			return false, nil
		}
		fv := v.Field(f.index)
		start := s.i
		if f.nested == nil {
			err := s.value(depth)
			fv.SetBytes(s.data[start:s.i:s.i])
			return true, err
		}
		bad = slices.DeleteFunc(bad, func(e fieldError) bool { return e.index == f.index }) // the last value decides
		switch c := s.data[start]; c {
		case '{':
			nv := reflect.New(f.nested.typ)
			fv.Set(nv)
			te, err := s.into(f.nested, nv.Elem(), depth+1)
			if te != nil {
				bad = append(bad, fieldError{f.index, &TypeError{Path: f.name + "." + te.Path, Kind: te.Kind}})
			}
			return true, err
		case 'n':
			fv.SetZero()
		default:
			fv.SetZero()
			bad = append(bad, fieldError{f.index, &TypeError{Path: f.name, Kind: kindOf(c)}})
		}
		return true, s.value(depth)
	})
	if err != nil || len(bad) == 0 {
		return nil, err
	}
	return slices.MinFunc(bad, func(a, b fieldError) int { return a.index - b.index }).err, nil
}

type fieldError struct {
	index int
	err   *TypeError
}

// keyString is a member's key as a string: its text, or (escaped) its
// text unquoted as encoding/json unquotes it: escapes decoded, invalid
// UTF-8 and lone surrogates become U+FFFD (which no wanted key holds).
func keyString(key []byte, escaped bool) string {
	if !escaped {
		return string(key)
	}
	var s string
	q := make([]byte, 0, len(key)+2)
	q = append(append(append(q, '"'), key...), '"')
	if json.Unmarshal(q, &s) != nil {
		return "" // not reached: the scanner checked the escapes
	}
	return s
}
