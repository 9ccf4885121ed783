package verifier

import (
	"context"
	"encoding/json"
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
	kid := ""
	if h.Kid != nil {
		kid = *h.Kid
	}
	if kid == "" && v.cfg.Keys.RequiresKID() {
		return nil, newError(KindMissingKID, "the handshake token names no signing key (kid)")
	}
	key, err := v.cfg.Keys.Key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if key.Alg != "" && key.Alg != "RS256" {
		return nil, newError(KindAlgNotAllowed, "the signing key is not for RS256")
	}
	if err := verifySignature("RS256", key.Public, p.signingInput, p.signature); err != nil {
		return nil, newError(KindBadSignature, "the handshake signature does not match the key")
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

// Peek decodes a token's payload without verifying anything.
func Peek(token string) (Unverified, error) {
	var u Unverified
	p, perr := parse(token)
	if perr != nil {
		return u, perr
	}
	r, perr := decodePayload(p.payload)
	if perr != nil {
		return u, perr
	}
	u.Issuer, _ = jsonString(r.Iss)
	if ms, ok, _ := timeClaim(r.Iat, "iat"); ok {
		u.IssuedAt = ms / 1000
	}
	if ms, ok, _ := timeClaim(r.Exp, "exp"); ok {
		u.Expiry = ms / 1000
	}
	return u, nil
}
