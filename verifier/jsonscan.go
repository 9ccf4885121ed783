package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// A small strict JSON scanner. encoding/json keeps the last of duplicate
// members and replaces invalid UTF-8, so two parsers can disagree about a
// claim; it is also the slowest part of a verification. This scanner checks
// RFC 8259 syntax, refuses duplicate member names at any depth, bounds
// nesting, and hands the top-level members to the caller without
// allocating.

// maxDepth bounds nesting; Clerk claims nest two levels.
const maxDepth = 32

var (
	errNotObject   = errors.New("not a JSON object")
	errDuplicate   = errors.New("duplicate member")
	errInvalidUTF8 = errors.New("invalid UTF-8")
	errSyntax      = errors.New("invalid JSON")
	errTooDeep     = errors.New("JSON nested too deeply")
)

// checkJSONObject accepts exactly one JSON object with unique member names.
func checkJSONObject(b []byte) error { return scanObject(b, nil) }

// scanObject validates b as one JSON object and calls member for each
// top-level member with its (unescaped) name and raw value.
func scanObject(b []byte, member func(name, raw []byte)) error {
	if !utf8.Valid(b) {
		return errInvalidUTF8
	}
	s := scanner{b: b}
	s.space()
	if s.i >= len(b) || b[s.i] != '{' {
		return errNotObject
	}
	if err := s.object(0, member); err != nil {
		return err
	}
	s.space()
	if s.i != len(b) {
		return errSyntax
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object scans {...} starting at '{'.
func (s *scanner) object(depth int, member func(name, raw []byte)) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	s.i++ // '{'
	var buf [24][]byte
	names := buf[:0]
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errSyntax
		}
		start := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		name := s.b[start+1 : s.i-1]
		if escaped {
			var str string
			if json.Unmarshal(s.b[start:s.i], &str) != nil {
				return errSyntax
			}
			name = []byte(str)
		}
		for _, n := range names {
			if bytes.Equal(n, name) {
				return errDuplicate
			}
		}
		names = append(names, name)
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errSyntax
		}
		s.i++
		s.space()
		vstart := s.i
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if member != nil {
			member(name, s.b[vstart:s.i])
		}
		if done, err := s.next('}'); done || err != nil {
			return err
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth, nil)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errSyntax
}

func (s *scanner) array(depth int) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.space()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if done, err := s.next(']'); done || err != nil {
			return err
		}
	}
}

// next reads what follows a member or element: ',' (more to come) or the
// closing delimiter (done).
func (s *scanner) next(closing byte) (done bool, err error) {
	s.space()
	if s.i >= len(s.b) {
		return false, errSyntax
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return false, nil
	case closing:
		s.i++
		return true, nil
	}
	return false, errSyntax
}

// str scans a string starting at '"' and reports whether it had escapes.
func (s *scanner) str() (bool, error) {
	s.i++ // opening quote
	escaped := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return false, errSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return false, errSyntax
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return false, errSyntax
					}
				}
				s.i += 6
			default:
				return false, errSyntax
			}
		case c < 0x20:
			return false, errSyntax
		default:
			s.i++
		}
	}
	return false, errSyntax
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return errSyntax
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return errSyntax
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errSyntax
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errSyntax
		}
		return s.inRange(start)
	}
	if s.i-start > 300 {
		return s.inRange(start)
	}
	return nil
}

// inRange refuses a number beyond float64 (1e700), as encoding/json does:
// only numbers with an exponent or hundreds of digits can be.
func (s *scanner) inRange(start int) error {
	if _, err := strconv.ParseFloat(string(s.b[start:s.i]), 64); err != nil {
		return errSyntax
	}
	return nil
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errSyntax
	}
	s.i += len(lit)
	return nil
}

// jsonString decodes a raw JSON value that must be a string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
