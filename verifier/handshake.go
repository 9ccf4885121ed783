package verifier

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// VerifyHandshake checks a legacy handshake token (__clerk_handshake): a
// JWT signed by the instance key whose payload is {"handshake":[<Set-Cookie
// directive>, …]}. Like @clerk/backend it checks the header (RS256, typ
// JWT or absent), the key and the signature, but no time claims: the
// session token among the directives is verified on its own afterwards.
func (v *Verifier) VerifyHandshake(ctx context.Context, token string) ([]string, error) {
	p, perr := parse(token)
	if perr != nil {
		return nil, perr
	}
	h := &p.header
	if h.Alg == nil || *h.Alg != "RS256" {
		return nil, newError(KindAlgNotAllowed, "the handshake token is not RS256")
	}
	if h.Crit {
		return nil, newError(KindUnsupportedCrit, "the handshake token lists critical header extensions")
	}
	if h.Typ != nil && *h.Typ != "JWT" {
		return nil, newError(KindBadTyp, "the handshake token type is not JWT")
	}
	if _, _, err := v.verifyJWS(ctx, p, "handshake token"); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := scanObject(p.payload, func(name, value []byte) {
		if string(name) == "handshake" {
			raw = value
		}
	}); err != nil {
		return nil, wrapError(KindMalformed, "handshake payload is not a valid JSON object", err)
	}
	var directives []string
	if len(raw) == 0 || json.Unmarshal(raw, &directives) != nil {
		return nil, newError(KindMissingClaim, "handshake payload has no list of cookie directives")
	}
	return directives, nil
}

// Unverified is what a token says about itself before any check. It only
// chooses between cookies (as @clerk/backend does); never trust it.
type Unverified struct {
	Issuer string
	// IssuedAt and Expiry are Unix seconds, 0 when absent or not numbers.
	IssuedAt, Expiry int64
}

// Peek decodes a token's payload without verifying anything; it skips the
// header and signature, so it is cheap enough for every cookie request.
func Peek(token string) (Unverified, error) {
	var u Unverified
	if len(token) > MaxTokenSize {
		return u, errorf(KindOversized, "token is larger than %d bytes", MaxTokenSize)
	}
	first := strings.IndexByte(token, '.')
	second := -1
	if first >= 0 {
		if i := strings.IndexByte(token[first+1:], '.'); i >= 0 {
			second = first + 1 + i
		}
	}
	if second < 0 || strings.IndexByte(token[second+1:], '.') >= 0 {
		return u, newError(KindMalformed, "token does not have three segments")
	}
	p64 := token[first+1 : second]
	for i := 0; i < len(p64); i++ {
		if c := p64[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return u, newError(KindMalformed, "payload has a character outside base64url")
		}
	}
	pb, err := b64.DecodeString(p64)
	if err != nil {
		return u, wrapError(KindMalformed, "payload is not strict base64url", err)
	}
	var iss, iat, exp []byte
	if err := scanObject(pb, func(name, raw []byte) {
		switch string(name) {
		case "iss":
			iss = raw
		case "iat":
			iat = raw
		case "exp":
			exp = raw
		}
	}); err != nil {
		return u, wrapError(KindMalformed, "payload is not a valid JSON object", err)
	}
	u.Issuer, _ = jsonString(iss)
	if ms, ok, _ := timeClaim(iat, "iat"); ok {
		u.IssuedAt = time.UnixMilli(ms).Unix()
	}
	if ms, ok, _ := timeClaim(exp, "exp"); ok {
		u.Expiry = time.UnixMilli(ms).Unix()
	}
	return u, nil
}
