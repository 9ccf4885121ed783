// Package verifier verifies Clerk session tokens: strict parsing, keys by
// kid from a cached key set (or one configured key), RS256 signatures, then
// Clerk's session claims. It also tells the token types apart (DetectType)
// and verifies machine tokens in JWT format (VerifyMachineJWT) with the same
// parser and keys. It is usable on its own as a Go library.
package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultClockSkew is Clerk's default tolerance for exp, nbf and iat.
const DefaultClockSkew = 5 * time.Second

// Token categories (the cat header).
const (
	CategorySession = "cl_B7d4PD111AAA"
	CategoryIgnore  = "cl_I7d4PD111III"
)

// Config says what a valid token looks like.
type Config struct {
	// Keys resolves verification keys: a *KeyCache for a JWKS, or
	// StaticPEM/StaticJWK for networkless verification. Required.
	Keys Keys

	// Issuer is the exact iss every token must carry (e.g. the Frontend API
	// URL derived from the publishable key). Empty disables the check,
	// unless IssuerFunc is set.
	Issuer string
	// IssuerFunc, if set, decides iss instead of Issuer (for satellite
	// domains or several instances). The Caddy module always pins Issuer.
	IssuerFunc func(iss string) bool

	// AuthorizedParties, when non-empty, requires azp to equal one of them
	// exactly (origins such as "https://app.example.com").
	AuthorizedParties []string
	// Audience, when non-empty, requires aud to contain one of them.
	Audience []string

	// ClockSkew tolerates clock drift for exp, nbf and iat. Zero means
	// DefaultClockSkew; a negative value means no tolerance.
	ClockSkew time.Duration

	// AllowPending accepts sessions with sts "pending" (unfinished tasks).
	AllowPending bool

	// HeaderTypes, when set, lists the accepted typ headers and makes typ
	// required. By default typ may be absent or "JWT".
	HeaderTypes []string

	// AllowNonSessionTokens skips the session checks (sid present, sub not a
	// machine, cat a session category): only for verifying JWT templates.
	AllowNonSessionTokens bool

	// TokenCache, if set, remembers verified tokens until they expire (see
	// TokenCache). Give each Verifier its own: a cached result holds only
	// for the Config that produced it.
	TokenCache *TokenCache
	// OnCacheLookup, if set, is told whether each TokenCache lookup hit
	// (for metrics). It must be cheap: it runs on every request.
	OnCacheLookup func(hit bool)

	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	skewMs int64
	now    func() time.Time
}

// New returns a Verifier for cfg.
func New(cfg Config) (*Verifier, error) {
	if cfg.Keys == nil {
		return nil, errors.New("verifier: a key source is required")
	}
	v := &Verifier{cfg: cfg, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case cfg.ClockSkew == 0:
		v.skewMs = DefaultClockSkew.Milliseconds()
	case cfg.ClockSkew > 0:
		v.skewMs = cfg.ClockSkew.Milliseconds()
	}
	return v, nil
}

// Verify checks token and returns its claims, or an *Error with Clerk's
// reason. The order follows Clerk: structure, header, key, signature, then
// claims — so a forged token is reported as forged, never as expired.
// The returned Claims are read-only: a cached token's are shared by every
// caller that verifies it (VerifyTo).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	return v.VerifyTo(ctx, token, nil)
}

// VerifyTo is Verify writing the claims into dst, which it returns. With
// dst nil, a fresh verification returns a new Claims and a cache hit the
// ones the cache shares for that token (see hot.go), which allocates
// nothing: every Claims is read-only. On an error, what dst holds is
// unspecified.
func (v *Verifier) VerifyTo(ctx context.Context, token string, dst *Claims) (*Claims, error) {
	return v.VerifyAt(ctx, token, time.Time{}, dst)
}

// VerifyAt is VerifyTo with exp, nbf and iat checked at the instant at, not
// on the Verifier's clock: a caller that has the time the request arrived
// (Caddy reads it for every request) spares a clock read, which costs here
// about a third of a cached hit's own work. A zero at is the clock's now.
func (v *Verifier) VerifyAt(ctx context.Context, token string, at time.Time, dst *Claims) (*Claims, error) {
	nowMs := v.ms(at)
	tc := v.cfg.TokenCache
	if tc != nil {
		e := tc.get(ctx, token, nowMs, v.skewMs, v.cfg.Keys)
		if v.cfg.OnCacheLookup != nil {
			v.cfg.OnCacheLookup(e != nil)
		}
		if e != nil {
			return e.claimsOf(dst), nil
		}
	}
	p, perr := parse(token)
	if perr != nil {
		return nil, perr
	}
	if err := v.checkHeader(&p.header); err != nil {
		return nil, err
	}

	key, kid, err := v.verifyJWS(ctx, p, "token")
	if err != nil {
		return nil, err
	}
	r, perr := decodePayload(p.payload)
	if perr != nil {
		return nil, perr
	}
	if dst == nil {
		dst = new(Claims)
	}
	e, cerr := v.checkClaims(p, r, dst, nowMs)
	if cerr != nil {
		return nil, cerr
	}
	if tc != nil {
		e.setKey(key, kid)
		tc.store(token, e)
	}
	return dst, nil
}

// verifyJWS is the step every token type shares once its header passed:
// the key by kid, bound to RS256, and the signature over the signing input.
// what names the token in errors.
func (v *Verifier) verifyJWS(ctx context.Context, p *parsed, what string) (*Key, string, error) {
	kid := ""
	if p.header.Kid != nil {
		kid = *p.header.Kid
	}
	if kid == "" && v.cfg.Keys.RequiresKID() {
		return nil, "", newError(KindMissingKID, "the "+what+" names no signing key (kid)")
	}
	key, err := v.cfg.Keys.Key(ctx, kid)
	if err != nil {
		return nil, "", err
	}
	if key.Alg != "" && key.Alg != "RS256" {
		return nil, "", errorf(KindAlgNotAllowed, "the signing key is for %s, the %s says RS256", key.Alg, what)
	}
	if err := verifySignature("RS256", key.Public, p.signingInput, p.signature); err != nil {
		return nil, "", newError(KindBadSignature, "the "+what+" signature does not match the key")
	}
	return key, kid, nil
}

// Cached returns token's session if this Verifier verified it before and
// the answer still holds at the instant at (within exp, its key
// unchanged), without any decoding: the cookie path asks before reading
// the token's iat. A zero at is the clock's now.
func (v *Verifier) Cached(ctx context.Context, token string, at time.Time) (Hit, bool) {
	if v.cfg.TokenCache == nil {
		return Hit{}, false
	}
	e := v.cfg.TokenCache.get(ctx, token, v.ms(at), v.skewMs, v.cfg.Keys)
	return Hit{e}, e != nil
}

// CachedMachine is Cached for machine JWTs VerifyMachineJWT verified.
func (v *Verifier) CachedMachine(ctx context.Context, token string, at time.Time) (*Machine, bool) {
	if v.cfg.TokenCache == nil {
		return nil, false
	}
	return v.cfg.TokenCache.getMachine(ctx, token, v.ms(at), v.skewMs, v.cfg.Keys)
}

// ms is at in Unix milliseconds, or the clock's now when at is zero (a
// zero time would pass every exp).
func (v *Verifier) ms(at time.Time) int64 {
	if at.IsZero() {
		at = v.now()
	}
	return at.UnixMilli()
}

func (v *Verifier) checkHeader(h *header) *Error {
	if err := checkAlg(h); err != nil {
		return err
	}
	if len(v.cfg.HeaderTypes) > 0 {
		if h.Typ == nil || !contains(v.cfg.HeaderTypes, *h.Typ) {
			return newError(KindBadTyp, "the token type (typ) is not accepted")
		}
	} else if h.Typ != nil && *h.Typ != "JWT" {
		return errorf(KindBadTyp, "the token type %s is not JWT", clip(strconv.Quote(*h.Typ)))
	}
	if h.Cat != nil && !v.cfg.AllowNonSessionTokens && *h.Cat != CategorySession && *h.Cat != CategoryIgnore {
		return errorf(KindNotSession, "the token category %s is not a session token", clip(strconv.Quote(*h.Cat)))
	}
	return nil
}

// checkAlg is the header check every verified token type shares: RS256
// and no critical extensions.
func checkAlg(h *header) *Error {
	if h.Alg == nil || *h.Alg != "RS256" {
		alg := "none"
		if h.Alg != nil {
			alg = strconv.Quote(*h.Alg)
		}
		return errorf(KindAlgNotAllowed, "algorithm %s is not allowed (RS256 only)", clip(alg))
	}
	if h.Crit {
		// We implement no JWS extensions, so any critical one is unknown.
		return newError(KindUnsupportedCrit, "the token lists critical header extensions we do not support")
	}
	return nil
}

// checkClaims checks and decodes the claims into c (overwritten) and
// returns the cache entry they were sealed in (without its key).
func (v *Verifier) checkClaims(p *parsed, r *rawClaims, c *Claims, nowMs int64) (*cachedToken, *Error) {
	*c = Claims{Shared: &Shared{}}
	var err *Error

	// Issuer and azp first: they say whose token this is at all. A non-string
	// iss fails the pin as a bad issuer, and is an invalid claim otherwise.
	iss, issErr := optString(r.Iss, "iss")
	if v.cfg.Issuer != "" || v.cfg.IssuerFunc != nil {
		ok := issErr == nil && iss != ""
		if ok && v.cfg.IssuerFunc != nil {
			ok = v.cfg.IssuerFunc(iss)
		} else if ok {
			ok = iss == v.cfg.Issuer
		}
		if !ok {
			return nil, errorf(KindBadIssuer, "the issuer %s is not this instance's", clip(strconv.Quote(iss)))
		}
	}
	if issErr != nil {
		return nil, issErr
	}
	c.Issuer = iss
	if c.AuthorizedParty, err = optString(r.Azp, "azp"); err != nil {
		if len(v.cfg.AuthorizedParties) > 0 {
			return nil, newError(KindBadAZP, "the authorized party (azp) is not a string")
		}
		return nil, err
	}
	if len(v.cfg.AuthorizedParties) > 0 {
		if c.AuthorizedParty == "" || !contains(v.cfg.AuthorizedParties, c.AuthorizedParty) {
			return nil, errorf(KindBadAZP, "the authorized party %s is not allowed", clip(strconv.Quote(c.AuthorizedParty)))
		}
	}

	// Time claims that are present, so an expired token says so.
	t, err := v.checkTimes(r, nowMs)
	if err != nil {
		return nil, err
	}

	// Then the shape of a session token.
	if c.Subject, err = subject(r.Sub); err != nil {
		return nil, err
	}
	if !t.hasExp {
		return nil, newError(KindInvalidClaim, "the expiry (exp) claim is missing")
	}
	c.Expiry = time.UnixMilli(t.exp)
	if t.hasNbf {
		c.NotBefore = time.UnixMilli(t.nbf)
	}
	if t.hasIat {
		c.IssuedAt = time.UnixMilli(t.iat)
	}
	if c.SessionID, err = optString(r.Sid, "sid"); err != nil {
		return nil, err
	}
	if !v.cfg.AllowNonSessionTokens {
		if c.SessionID == "" {
			return nil, newError(KindNotSession, "the token has no session id (sid): not a session token")
		}
		if strings.HasPrefix(c.Subject, "mch_") {
			return nil, newError(KindNotSession, "the subject is a machine: not a session token")
		}
	}

	aud, err := audience(r.Aud)
	if err != nil {
		return nil, err
	}
	c.Audience = aud
	if len(v.cfg.Audience) > 0 && !intersects(v.cfg.Audience, aud) {
		return nil, newError(KindBadAudience, "the audience (aud) does not include this service")
	}

	if err := c.fillOwn(r); err != nil {
		return nil, err
	}
	e, err := c.seal(r)
	if err != nil {
		return nil, err
	}
	if c.Status == "pending" && !v.cfg.AllowPending {
		return nil, newError(KindPending, "the session is pending (unfinished tasks)")
	}
	return e, nil
}

// times are a payload's time claims in milliseconds.
type times struct {
	exp, nbf, iat          int64
	hasExp, hasNbf, hasIat bool
}

// checkTimes decodes exp, nbf and iat where present and checks them against
// nowMs with the skew: exp <= now - skew is expired, nbf or iat later than
// now + skew is too early. Whether exp is required is the caller's
// business, checked after the subject as Clerk does.
func (v *Verifier) checkTimes(r *rawClaims, nowMs int64) (times, *Error) {
	var t times
	var err *Error
	if t.exp, t.hasExp, err = timeClaim(r.Exp, "exp"); err != nil {
		return t, err
	}
	if t.nbf, t.hasNbf, err = timeClaim(r.Nbf, "nbf"); err != nil {
		return t, err
	}
	if t.iat, t.hasIat, err = timeClaim(r.Iat, "iat"); err != nil {
		return t, err
	}
	if t.hasExp && t.exp <= nowMs-v.skewMs {
		return t, errorf(KindExpired, "the token expired at %s", time.UnixMilli(t.exp).UTC().Format(time.RFC3339))
	}
	if t.hasNbf && t.nbf > nowMs+v.skewMs {
		return t, errorf(KindNotYetValid, "the token is not valid before %s", time.UnixMilli(t.nbf).UTC().Format(time.RFC3339))
	}
	if t.hasIat && t.iat > nowMs+v.skewMs {
		return t, errorf(KindIATInFuture, "the token was issued in the future (%s)", time.UnixMilli(t.iat).UTC().Format(time.RFC3339))
	}
	return t, nil
}

// subject decodes sub, which must be a non-empty string.
func subject(m json.RawMessage) (string, *Error) {
	if len(m) == 0 || m[0] != '"' {
		return "", newError(KindMissingClaim, "the subject (sub) claim is missing or not a string")
	}
	sub, err := optString(m, "sub")
	if err != nil {
		return "", err
	}
	if sub == "" {
		return "", newError(KindInvalidClaim, "the subject (sub) claim is empty")
	}
	return sub, nil
}

// maxTime is the end of year 9999: later values are overflow attempts.
const maxTime = 253402300799

// timeClaim decodes a NumericDate to milliseconds. Present means present
// and a number: null, strings, booleans and huge values are invalid claims.
func timeClaim(m json.RawMessage, name string) (int64, bool, *Error) {
	if len(m) == 0 {
		return 0, false, nil
	}
	c := m[0]
	if !(c == '-' || (c >= '0' && c <= '9')) {
		return 0, false, errorf(KindInvalidClaim, "claim %s is not a number", name)
	}
	f, err := strconv.ParseFloat(string(m), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxTime {
		return 0, false, errorf(KindInvalidClaim, "claim %s is not a valid time", name)
	}
	return int64(math.Floor(f * 1000)), true, nil
}

func audience(m json.RawMessage) ([]string, *Error) {
	if isNull(m) {
		if len(m) > 0 {
			return nil, newError(KindInvalidClaim, "claim aud is null")
		}
		return nil, nil
	}
	if m[0] == '"' {
		var s string
		if json.Unmarshal(m, &s) != nil {
			return nil, newError(KindInvalidClaim, "claim aud is not a string")
		}
		return []string{s}, nil
	}
	var list []string
	if json.Unmarshal(m, &list) != nil {
		return nil, newError(KindInvalidClaim, "claim aud is not a string or an array of strings")
	}
	return list, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func intersects(a, b []string) bool {
	for _, x := range b {
		if x != "" && contains(a, x) {
			return true
		}
	}
	return false
}

// clip keeps attacker-chosen strings in messages short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// String describes the verifier without secrets.
func (v *Verifier) String() string {
	return fmt.Sprintf("verifier(issuer=%q, parties=%d)", v.cfg.Issuer, len(v.cfg.AuthorizedParties))
}
