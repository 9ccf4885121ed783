package verifier

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxTokenSize bounds what we decode. Clerk session tokens are well under
// 2 KiB even with custom claims; anything near this limit is hostile.
const MaxTokenSize = 8 << 10

// b64 rejects padding and non-canonical trailing bits. It still skips CR/LF,
// so parse checks the alphabet first.
var b64 = base64.RawURLEncoding.Strict()

// header is the protected header, typed strictly: a kid that is an array or
// an alg that is a number is malformed, not coerced.
type header struct {
	Alg  *string         `json:"alg"`
	Kid  *string         `json:"kid"`
	Typ  *string         `json:"typ"`
	Cat  *string         `json:"cat"`
	Crit json.RawMessage `json:"crit"`
	Zip  json.RawMessage `json:"zip"`
}

// parsed is a compact JWS split and decoded, nothing verified yet.
type parsed struct {
	header       header
	payload      []byte // decoded; checked as a JSON object after the signature
	signingInput string // base64 header "." base64 payload
	signature    []byte
}

// parse splits and decodes a compact JWS strictly: three base64url segments
// (no padding, no whitespace, canonical bits) and a JSON object header
// without duplicate members and with valid UTF-8. The payload is only
// decoded here; checkPayload runs after the signature.
func parse(token string) (*parsed, *Error) {
	if len(token) == 0 {
		return nil, newError(KindMalformed, "token is empty")
	}
	if len(token) > MaxTokenSize {
		return nil, errorf(KindOversized, "token is larger than %d bytes", MaxTokenSize)
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			dots++
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return nil, newError(KindMalformed, "token has a character outside base64url")
		}
	}
	if dots != 2 {
		return nil, newError(KindMalformed, "token does not have three segments")
	}
	first := strings.IndexByte(token, '.')
	second := first + 1 + strings.IndexByte(token[first+1:], '.')
	h64, p64, s64 := token[:first], token[first+1:second], token[second+1:]
	if h64 == "" || p64 == "" || s64 == "" {
		return nil, newError(KindMalformed, "token has an empty segment")
	}

	hb, err := b64.DecodeString(h64)
	if err != nil {
		return nil, wrapError(KindMalformed, "header is not strict base64url", err)
	}
	pb, err := b64.DecodeString(p64)
	if err != nil {
		return nil, wrapError(KindMalformed, "payload is not strict base64url", err)
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return nil, wrapError(KindMalformed, "signature is not strict base64url", err)
	}

	p := &parsed{payload: pb, signingInput: token[:second], signature: sig}
	if err := checkJSONObject(hb); err != nil {
		return nil, wrapError(KindMalformed, "header is not a JSON object", err)
	}
	if err := json.Unmarshal(hb, &p.header); err != nil {
		return nil, wrapError(KindMalformed, "header has a member of the wrong type", err)
	}
	if len(p.header.Zip) > 0 {
		// zip belongs to JWE; a JWS payload is never inflated.
		return nil, newError(KindMalformed, "header has zip, which a JWS must not use")
	}
	return p, nil
}

func checkPayload(pb []byte) *Error {
	if err := checkJSONObject(pb); err != nil {
		return wrapError(KindMalformed, "payload is not a JSON object", err)
	}
	return nil
}

var (
	errNotObject    = errors.New("not a JSON object")
	errDuplicate    = errors.New("duplicate member")
	errInvalidUTF8  = errors.New("invalid UTF-8")
	errTrailingData = errors.New("data after the JSON value")
)

// checkJSONObject accepts exactly one JSON object with no duplicate member
// names at any depth. encoding/json keeps the last duplicate and silently
// replaces invalid UTF-8; an attacker could use either to make two parsers
// disagree about a claim.
func checkJSONObject(b []byte) error {
	if !utf8.Valid(b) {
		return errInvalidUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotObject
	}
	if err := checkObjectBody(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingData
	}
	return nil
}

// checkObjectBody reads members after '{' up to and including '}'.
func checkObjectBody(dec *json.Decoder) error {
	var seen map[string]struct{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		name, ok := tok.(string)
		if !ok {
			return errNotObject
		}
		if seen == nil {
			seen = make(map[string]struct{}, 16)
		}
		if _, dup := seen[name]; dup {
			return errDuplicate
		}
		seen[name] = struct{}{}
		if err := checkValue(dec); err != nil {
			return err
		}
	}
}

func checkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return checkObjectBody(dec)
	case '[':
		for dec.More() {
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return errNotObject
}
