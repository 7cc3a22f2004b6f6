package jsonfield

// scanner checks JSON text as encoding/json's scanner does (json.Valid), one
// value at a time, without building anything: data[i] is the next byte to
// read.
type scanner struct {
	data []byte
	i    int
}

func (s *scanner) fail(msg string) error { return &SyntaxError{Offset: s.i, msg: msg} }

// space skips insignificant white space.
func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// end checks that nothing but white space follows the top-level value.
func (s *scanner) end() error {
	s.space()
	if s.i != len(s.data) {
		return s.fail("data after the top-level value")
	}
	return nil
}

// notObject checks the top-level value at s.i, which is not an object:
// ErrNotObject if it and the rest are JSON, else the syntax error.
func (s *scanner) notObject() error {
	if s.i >= len(s.data) {
		return s.fail("no value")
	}
	if err := s.value(0); err != nil {
		return err
	}
	if err := s.end(); err != nil {
		return err
	}
	return ErrNotObject
}

// object scans the object at s.i ('{'), depth deep (the top-level object is
// 1 deep). For each member it calls member with the key's text (without the
// quotes; escaped says it holds escapes) and s.i at the value's first byte:
// member either scans the value itself and returns true, or returns false
// and the value is checked and skipped.
func (s *scanner) object(depth int, member func(key []byte, escaped bool) (bool, error)) error {
	if depth > MaxDepth {
		return s.fail("nested too deep")
	}
	s.i++ // '{'
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return s.fail("want a member's key")
		}
		start := s.i + 1
		escaped, err := s.str()
		if err != nil {
			return err
		}
		key := s.data[start : s.i-1]
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return s.fail("want ':' after a key")
		}
		s.i++
		s.space()
		if s.i >= len(s.data) {
			return s.fail("want a value")
		}
		done, err := member(key, escaped)
		if err != nil {
			return err
		}
		if !done {
			if err := s.value(depth); err != nil {
				return err
			}
		}
		s.space()
		if s.i >= len(s.data) {
			return s.fail("unterminated object")
		}
		switch s.data[s.i] {
		case ',':
			s.i++
			s.space()
		case '}':
			s.i++
			return nil
		default:
			return s.fail("want ',' or '}' after a member")
		}
	}
}

// value checks and skips the value at s.i, found in containers depth deep.
// Containers are walked without recursion, with a stack of their kinds.
func (s *scanner) value(depth int) error {
	var buf [64]byte
	stack := buf[:0] // '{' or '[' per open container
	for {
		// A value starts at s.i.
		if s.i >= len(s.data) {
			return s.fail("want a value")
		}
		switch c := s.data[s.i]; c {
		case '{', '[':
			if depth+len(stack)+1 > MaxDepth {
				return s.fail("nested too deep")
			}
			s.i++
			s.space()
			closing := byte('}')
			if c == '[' {
				closing = ']'
			}
			if s.i < len(s.data) && s.data[s.i] == closing {
				s.i++
				break // an empty container is a whole value
			}
			stack = append(stack, c)
			if c == '{' {
				if err := s.key(); err != nil {
					return err
				}
			}
			continue // to its first value
		case '"':
			if _, err := s.str(); err != nil {
				return err
			}
		case 't':
			if err := s.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := s.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return s.fail("want a value")
			}
			if err := s.number(); err != nil {
				return err
			}
		}
		// A value ended: close every container it ends, or go on to the
		// next value of the innermost one.
		for {
			if len(stack) == 0 {
				return nil
			}
			s.space()
			if s.i >= len(s.data) {
				return s.fail("unterminated container")
			}
			top := stack[len(stack)-1]
			c := s.data[s.i]
			if c == ',' {
				s.i++
				s.space()
				if top == '{' {
					if err := s.key(); err != nil {
						return err
					}
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			return s.fail("want ',' or the container's end")
		}
	}
}

// key skips a member's key and its ':', leaving s.i at the value.
func (s *scanner) key() error {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return s.fail("want a member's key")
	}
	if _, err := s.str(); err != nil {
		return err
	}
	s.space()
	if s.i >= len(s.data) || s.data[s.i] != ':' {
		return s.fail("want ':' after a key")
	}
	s.i++
	s.space()
	return nil
}

// str skips the string at s.i ('"'). escaped says its value is not its
// text: it holds an escape, or a byte past ASCII (which encoding/json
// unquotes too, invalid UTF-8 becoming U+FFFD). As encoding/json: control
// characters must be escaped, an escape is one of \" \\ \/ \b \f \n \r \t
// \uXXXX, and other bytes (invalid UTF-8 too) are taken as they are.
func (s *scanner) str() (escaped bool, err error) {
	s.i++ // '"'
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.data) {
				return escaped, s.fail("unterminated escape")
			}
			switch s.data[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.data) || !isHex(s.data[s.i+2]) || !isHex(s.data[s.i+3]) || !isHex(s.data[s.i+4]) || !isHex(s.data[s.i+5]) {
					return escaped, s.fail(`invalid \u escape`)
				}
				s.i += 6
			default:
				return escaped, s.fail("invalid escape")
			}
		case c < 0x20:
			return escaped, s.fail("control character in a string")
		case c >= 0x80:
			escaped = true
			s.i++
		default:
			s.i++
		}
	}
	return escaped, s.fail("unterminated string")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// literal skips lit at s.i.
func (s *scanner) literal(lit string) error {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.i += len(lit)
	return nil
}

// number skips the number at s.i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d := s.data
	if s.i < len(d) && d[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(d) && d[s.i] == '0':
		s.i++
	case s.i < len(d) && '1' <= d[s.i] && d[s.i] <= '9':
		s.digits()
	default:
		return s.fail("invalid number")
	}
	if s.i < len(d) && d[s.i] == '.' {
		s.i++
		if s.i >= len(d) || !isDigit(d[s.i]) {
			return s.fail("invalid number")
		}
		s.digits()
	}
	if s.i < len(d) && (d[s.i] == 'e' || d[s.i] == 'E') {
		s.i++
		if s.i < len(d) && (d[s.i] == '+' || d[s.i] == '-') {
			s.i++
		}
		if s.i >= len(d) || !isDigit(d[s.i]) {
			return s.fail("invalid number")
		}
		s.digits()
	}
	return nil
}

func (s *scanner) digits() {
	for s.i < len(s.data) && isDigit(s.data[s.i]) {
		s.i++
	}
}
