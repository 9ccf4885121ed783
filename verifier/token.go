package verifier

import (
	"encoding/base64"
	"errors"
	"strings"
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
	Alg, Kid, Typ, Cat *string
	Crit, Zip          bool // present at all
}

func (h *header) decode(b []byte) error {
	var bad bool
	str := func(raw []byte) *string {
		s, ok := jsonString(raw)
		if !ok {
			bad = true
		}
		return &s
	}
	err := scanObject(b, func(name, raw []byte) {
		switch string(name) {
		case "alg":
			h.Alg = str(raw)
		case "kid":
			h.Kid = str(raw)
		case "typ":
			h.Typ = str(raw)
		case "cat":
			h.Cat = str(raw)
		case "crit":
			h.Crit = true
		case "zip":
			h.Zip = true
		}
	})
	if err == nil && bad {
		err = errors.New("alg, kid, typ and cat must be strings")
	}
	return err
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
	if err := p.header.decode(hb); err != nil {
		return nil, wrapError(KindMalformed, "header is not a valid JSON object", err)
	}
	if p.header.Zip {
		// zip belongs to JWE; a JWS payload is never inflated.
		return nil, newError(KindMalformed, "header has zip, which a JWS must not use")
	}
	return p, nil
}

// decodePayload checks the payload is one JSON object without duplicates
// and picks out the claims Verify examines, in one pass.
func decodePayload(pb []byte) (*rawClaims, *Error) {
	r := &rawClaims{}
	r.members = r.inline[:0]
	err := scanObject(pb, func(name, raw []byte) {
		if f := r.field(string(name)); f != nil {
			*f = raw
		}
		r.members = append(r.members, rawMember{name, raw})
	})
	if err != nil {
		return nil, wrapError(KindMalformed, "payload is not a valid JSON object", err)
	}
	return r, nil
}
