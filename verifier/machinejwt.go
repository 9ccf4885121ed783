package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// VerifyMachineJWT verifies a machine token in JWT format, an M2M JWT (sub
// mch_…) or an OAuth access token (typ at+jwt or application/at+jwt), told
// apart as DetectType does. It uses the same key source and the same strict
// parser as Verify and calls no one but the key source (§11.3):
//
//   - structure as for sessions; then the type: anything else is
//     KindNotMachine (token-type-mismatch);
//   - header: RS256 only, no crit; an M2M JWT's typ is absent or exactly
//     JWT and its cat absent or exactly CategoryM2M (the ignore category
//     too is refused, as @clerk/backend does), before any signature work;
//   - the key by kid and the signature, the step Verify uses;
//   - claims: exp required, exp/nbf/iat against the clock with the skew as
//     for sessions, sub a non-empty string, jti and client_id strings when
//     present; aud only when the Config's Audience is set. iss is not
//     pinned and AuthorizedParties do not apply: neither is defined for
//     machine tokens.
//
// The mapping is @clerk/backend's: for M2M, ID is jti, Scopes the scopes
// claim split on spaces, else aud, and Claims every member but iss, sub,
// exp, nbf, iat and jti; for OAuth, ID is jti, ClientID client_id, Scopes
// the scp array, else scope split on spaces. Errors are *Error, as Verify's.
// With a TokenCache, a verified token is remembered until its exp as a
// machine (never as a session). The returned Machine may be shared with
// other callers: do not modify it.
func (v *Verifier) VerifyMachineJWT(ctx context.Context, token string) (*Machine, error) {
	return v.VerifyMachineJWTAt(ctx, token, time.Time{})
}

// VerifyMachineJWTAt is VerifyMachineJWT at the instant at, as VerifyAt is
// VerifyTo's.
func (v *Verifier) VerifyMachineJWTAt(ctx context.Context, token string, at time.Time) (*Machine, error) {
	nowMs := v.ms(at)
	tc := v.cfg.TokenCache
	if tc != nil {
		m, ok := tc.getMachine(ctx, token, nowMs, v.skewMs, v.cfg.Keys)
		if v.cfg.OnCacheLookup != nil {
			v.cfg.OnCacheLookup(ok)
		}
		if ok {
			return m, nil
		}
	}
	p, perr := parse(token)
	if perr != nil {
		return nil, perr
	}
	// The type comes from the payload (sub) and the header (typ), as Clerk
	// decides it before verifying; the payload is only scanned here.
	r, perr := decodeMachinePayload(p.payload)
	if perr != nil {
		return nil, perr
	}
	h := &p.header
	var typ TokenType
	switch {
	case isM2MSubject(r.Sub):
		typ = TokenM2M
	case h.Typ != nil && oauthType(*h.Typ):
		typ = TokenOAuth
	default:
		return nil, newError(KindNotMachine, "the token is neither an M2M token (sub mch_…) nor an OAuth access token (typ at+jwt)")
	}
	if err := checkAlg(h); err != nil {
		return nil, err
	}
	if typ == TokenM2M {
		if h.Typ != nil && *h.Typ != "JWT" {
			return nil, errorf(KindBadTyp, "the M2M token type %s is not JWT", clip(strconv.Quote(*h.Typ)))
		}
		if h.Cat != nil && *h.Cat != CategoryM2M {
			return nil, errorf(KindBadCategory, "the M2M token category %s is not the M2M category", clip(strconv.Quote(*h.Cat)))
		}
	}

	key, kid, err := v.verifyJWS(ctx, p, "machine token")
	if err != nil {
		return nil, err
	}
	m, err := v.checkMachineClaims(typ, r, nowMs)
	if err == nil && tc != nil {
		tc.putMachine(token, m, key, kid)
	}
	return m, err
}

// machinePayload is what VerifyMachineJWT reads of a payload.
type machinePayload struct {
	rawClaims // sub, exp, nbf, iat, jti, aud
	scopes    json.RawMessage
	clientID  json.RawMessage
	scp       json.RawMessage
	scope     json.RawMessage
	others    []member // for an M2M token's claims, in payload order
}

type member struct{ name, raw []byte }

// notClaims are the members an M2M token's claims leave out, as
// @clerk/backend does (aud and scopes stay).
func notClaims(name string) bool {
	switch name {
	case "iss", "sub", "exp", "nbf", "iat", "jti":
		return true
	}
	return false
}

// decodeMachinePayload checks the payload is one strict JSON object and
// picks out the members a machine token uses, in one pass.
func decodeMachinePayload(pb []byte) (*machinePayload, *Error) {
	r := &machinePayload{}
	err := scanObject(pb, func(name, raw []byte) {
		n := string(name)
		switch n {
		case "scopes":
			r.scopes = raw
		case "client_id":
			r.clientID = raw
		case "scp":
			r.scp = raw
		case "scope":
			r.scope = raw
		default:
			if f := r.field(n); f != nil {
				*f = raw
			}
		}
		if !notClaims(n) {
			r.others = append(r.others, member{name, raw})
		}
	})
	if err != nil {
		return nil, wrapError(KindMalformed, "payload is not a valid JSON object", err)
	}
	return r, nil
}

// checkMachineClaims checks the claims of a machine token whose signature
// holds and maps them.
func (v *Verifier) checkMachineClaims(typ TokenType, r *machinePayload, nowMs int64) (*Machine, error) {
	t, err := v.checkTimes(&r.rawClaims, nowMs)
	if err != nil {
		return nil, err
	}
	m := &Machine{Type: typ}
	if m.Subject, err = subject(r.Sub); err != nil {
		return nil, err
	}
	if !t.hasExp {
		return nil, newError(KindInvalidClaim, "the expiry (exp) claim is missing")
	}
	m.Expiry = time.UnixMilli(t.exp)
	if m.ID, err = optString(r.Jti, "jti"); err != nil {
		return nil, err
	}
	aud, err := audience(r.Aud)
	if err != nil {
		return nil, err
	}
	if len(v.cfg.Audience) > 0 && !intersects(v.cfg.Audience, aud) {
		return nil, newError(KindBadAudience, "the audience (aud) does not include this service")
	}

	switch typ {
	case TokenM2M:
		if len(r.scopes) > 0 {
			s, err := optString(r.scopes, "scopes")
			if err != nil {
				return nil, err
			}
			m.Scopes = splitScopes(s)
		} else {
			m.Scopes = nonEmpty(aud)
		}
		m.Claims = objectOf(r.others)
	case TokenOAuth:
		if m.ClientID, err = optString(r.clientID, "client_id"); err != nil {
			return nil, err
		}
		switch {
		case len(r.scp) > 0:
			var list []string
			if r.scp[0] != '[' || json.Unmarshal(r.scp, &list) != nil {
				return nil, newError(KindInvalidClaim, "claim scp is not an array of strings")
			}
			m.Scopes = nonEmpty(list)
		case len(r.scope) > 0:
			s, err := optString(r.scope, "scope")
			if err != nil {
				return nil, err
			}
			m.Scopes = splitScopes(s)
		}
	}
	if m.Scopes == nil {
		m.Scopes = []string{}
	}
	return m, nil
}

// splitScopes splits a space-separated scope list, as Clerk does (on ' '
// only), leaving out empty parts.
func splitScopes(s string) []string {
	return nonEmpty(strings.Split(s, " "))
}

func nonEmpty(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// objectOf writes members back as one JSON object, or nil when there are
// none. Names were unescaped by the scanner, so they are quoted afresh;
// values are the payload's own, already checked.
func objectOf(members []member) json.RawMessage {
	if len(members) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, mb := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(string(mb.name)) // a string always marshals
		b.Write(name)
		b.WriteByte(':')
		b.Write(mb.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}
