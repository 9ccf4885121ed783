package verifier

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"sync/atomic"
	"time"
)

// Claims is a verified session token, the same shape for v1 and v2 tokens.
// The claims sessions have in common (issuer, organization, Billing) are in
// the embedded Shared, which Verify interns; the rest are the token's own.
// Read-only: the token cache shares one Claims between the requests of a
// token, and one Shared between sessions.
type Claims struct {
	Subject   string    // sub: the user id (user_…)
	SessionID string    // sid
	ID        string    // jti
	IssuedAt  time.Time // iat (zero if absent)
	NotBefore time.Time // nbf (zero if absent)
	Expiry    time.Time // exp

	*Shared

	Actor *Actor // act, when impersonating
	// FactorVerificationAge is fva: minutes since the first and the second
	// factor were verified, -1 for a factor group not enabled. Nil when the
	// token has no fva or fva is not two such numbers: that fails every
	// reverification check, as in Clerk, but not the token (fva is
	// experimental at Clerk; a change of its shape must not lock everyone out).
	FactorVerificationAge []float64

	// Raw is the verified payload's members that neither Shared nor the
	// fields above hold (act, custom JWT-template claims, and any typed
	// claim whose text Payload could not write back exactly), one JSON
	// object. Custom reads every claim; Payload is the whole payload.
	Raw json.RawMessage

	custom   *lazyTree // Raw decoded once, on first use of Custom (shared by a cache entry's Claims)
	stripped uint8     // own members (ownSub…) not in Raw: Custom and Payload write them from the fields
}

// Actor is the impersonator of an impersonated session.
type Actor struct {
	Issuer    string `json:"iss,omitempty"`
	SessionID string `json:"sid,omitempty"`
	Subject   string `json:"sub,omitempty"`
}

// rawClaims holds everything whose JSON type Verify checks itself.
type rawClaims struct {
	Sub json.RawMessage `json:"sub"`
	Sid json.RawMessage `json:"sid"`
	Iss json.RawMessage `json:"iss"`
	Azp json.RawMessage `json:"azp"`
	Aud json.RawMessage `json:"aud"`
	Exp json.RawMessage `json:"exp"`
	Nbf json.RawMessage `json:"nbf"`
	Iat json.RawMessage `json:"iat"`
	Jti json.RawMessage `json:"jti"`
	V   json.RawMessage `json:"v"`
	Sts json.RawMessage `json:"sts"`
	Fva json.RawMessage `json:"fva"`
	Act json.RawMessage `json:"act"`
	Fea json.RawMessage `json:"fea"`
	Pla json.RawMessage `json:"pla"`
	O   json.RawMessage `json:"o"`

	OrgID          json.RawMessage `json:"org_id"`
	OrgRole        json.RawMessage `json:"org_role"`
	OrgSlug        json.RawMessage `json:"org_slug"`
	OrgPermissions json.RawMessage `json:"org_permissions"`

	// members are all top-level members in order (names unescaped), so
	// that sealing a session needs no second scan; most fit in inline.
	members []rawMember
	inline  [20]rawMember
}

type rawMember struct{ name, raw []byte }

// field returns where a top-level claim's raw value goes, or nil.
func (r *rawClaims) field(name string) *json.RawMessage {
	switch name {
	case "sub":
		return &r.Sub
	case "sid":
		return &r.Sid
	case "iss":
		return &r.Iss
	case "azp":
		return &r.Azp
	case "aud":
		return &r.Aud
	case "exp":
		return &r.Exp
	case "nbf":
		return &r.Nbf
	case "iat":
		return &r.Iat
	case "jti":
		return &r.Jti
	case "v":
		return &r.V
	case "sts":
		return &r.Sts
	case "fva":
		return &r.Fva
	case "act":
		return &r.Act
	case "fea":
		return &r.Fea
	case "pla":
		return &r.Pla
	case "o":
		return &r.O
	case "org_id":
		return &r.OrgID
	case "org_role":
		return &r.OrgRole
	case "org_slug":
		return &r.OrgSlug
	case "org_permissions":
		return &r.OrgPermissions
	}
	return nil
}

// v2Org is the compact "o" claim of v2 tokens.
type v2Org struct {
	ID   string `json:"id"`
	Slug string `json:"slg"`
	Role string `json:"rol"`
	Per  string `json:"per"`
	FPM  string `json:"fpm"`
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

// optString decodes an optional string claim: absent → "", present but not a
// string → error.
func optString(m json.RawMessage, name string) (string, *Error) {
	if len(m) == 0 {
		return "", nil
	}
	s, ok := jsonString(m)
	if !ok {
		return "", errorf(KindInvalidClaim, "claim %s is not a string", name)
	}
	return s, nil
}

// fillOwn decodes the token's own optional claims (jti, fva, act). A wrong
// type is an invalid claim: fail closed rather than guess.
func (c *Claims) fillOwn(r *rawClaims) *Error {
	var err *Error
	if c.ID, err = optString(r.Jti, "jti"); err != nil {
		return err
	}
	c.FactorVerificationAge = decodeFactorAges(r.Fva)
	if !isNull(r.Act) {
		var a Actor
		if r.Act[0] != '{' || json.Unmarshal(r.Act, &a) != nil {
			return newError(KindInvalidClaim, "claim act is not an object")
		}
		c.Actor = &a
	}
	return nil
}

// fillShared decodes the claims Shared holds: iss, azp and aud (checked
// before, by the config's rules), sts, v, the organization, fea and pla, so
// that an interned Shared follows from its raw text alone. A wrong type is
// an invalid claim: fail closed rather than guess at an organization or a
// role.
func (c *Claims) fillShared(r *rawClaims) *Error {
	var err *Error
	if c.Issuer, err = optString(r.Iss, "iss"); err != nil {
		return err
	}
	if c.AuthorizedParty, err = optString(r.Azp, "azp"); err != nil {
		return err
	}
	if c.Audience, err = audience(r.Aud); err != nil {
		return err
	}
	if c.Status, err = optString(r.Sts, "sts"); err != nil {
		return err
	}
	c.Version = 1
	if !isNull(r.V) {
		var v int
		if json.Unmarshal(r.V, &v) != nil || v < 1 {
			return newError(KindInvalidClaim, "claim v is not a positive integer")
		}
		c.Version = v
	}
	fea, err := optString(r.Fea, "fea")
	if err != nil {
		return err
	}
	c.Features, c.featuresMalformed = splitList(fea), unscoped(fea)
	pla, err := optString(r.Pla, "pla")
	if err != nil {
		return err
	}
	c.Plans, c.plansMalformed = splitList(pla), unscoped(pla)

	if c.Version >= 2 {
		if isNull(r.O) {
			return nil
		}
		var o v2Org
		if r.O[0] != '{' || json.Unmarshal(r.O, &o) != nil {
			return newError(KindInvalidClaim, "claim o is not an organization object")
		}
		c.OrgID, c.OrgSlug = o.ID, o.Slug
		if o.Role != "" {
			c.OrgRole = withOrgPrefix(o.Role)
		}
		c.OrgPermissions = decodePermissions(c.Features, splitList(o.Per), o.FPM)
		return nil
	}

	if c.OrgID, err = optString(r.OrgID, "org_id"); err != nil {
		return err
	}
	if c.OrgSlug, err = optString(r.OrgSlug, "org_slug"); err != nil {
		return err
	}
	if c.OrgRole, err = optString(r.OrgRole, "org_role"); err != nil {
		return err
	}
	if !isNull(r.OrgPermissions) {
		if json.Unmarshal(r.OrgPermissions, &c.OrgPermissions) != nil {
			return newError(KindInvalidClaim, "claim org_permissions is not an array of strings")
		}
	}
	if c.OrgID != "" && c.OrgPermissions == nil {
		c.OrgPermissions = []string{}
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// unscoped reports whether a non-empty fea or pla has an entry without a
// colon, an empty one included ("u:a,").
func unscoped(s string) bool {
	if s == "" {
		return false
	}
	for _, p := range strings.Split(s, ",") {
		if !strings.Contains(p, ":") {
			return true
		}
	}
	return false
}

// decodeFactorAges is fva when it is exactly two numbers, each -1 or ≥ 0;
// else nil.
func decodeFactorAges(m json.RawMessage) []float64 {
	if isNull(m) || m[0] != '[' {
		return nil
	}
	var list []any
	if json.Unmarshal(m, &list) != nil || len(list) != 2 {
		return nil
	}
	out := make([]float64, 2)
	for i, x := range list {
		f, ok := x.(float64)
		if !ok || !validFactorAge(f) {
			return nil
		}
		out[i] = f
	}
	return out
}

// orgScoped reports whether a fea entry applies to the organization.
func orgScoped(entry string) bool {
	scope, _, ok := strings.Cut(entry, ":")
	return ok && (scope == "o" || scope == "ou" || scope == "uo")
}

// decodePermissions expands v2 permissions: fpm holds one bitmask per
// org-scoped feature (in fea order, as @clerk/backend indexes them); bit j
// of mask i grants org:<feature i>:<per[j]>. Masks are big integers (they
// can pass 2^53). Any malformed mask fails closed: no permissions at all.
func decodePermissions(features, per []string, fpm string) []string {
	out := []string{}
	if fpm == "" || len(per) == 0 {
		return out
	}
	masks := strings.Split(fpm, ",")
	parsed := make([]*big.Int, len(masks))
	for i, m := range masks {
		n, ok := new(big.Int).SetString(strings.TrimSpace(m), 10)
		if !ok || n.Sign() < 0 {
			return []string{}
		}
		parsed[i] = n
	}
	i := 0
	for _, f := range features {
		if !orgScoped(f) {
			continue
		}
		if i >= len(parsed) {
			break
		}
		mask := parsed[i]
		i++
		_, name, _ := strings.Cut(f, ":")
		for j, p := range per {
			if mask.Bit(j) == 1 {
				out = append(out, "org:"+name+":"+p)
			}
		}
	}
	return out
}

func withOrgPrefix(s string) string {
	if strings.HasPrefix(s, "org:") {
		return s
	}
	return "org:" + s
}

// Custom returns a claim of the raw payload by dotted path ("metadata.plan"),
// decoded as encoding/json does (numbers as json.Number). The payload is
// decoded once per Claims: placeholders and require_claim rules ask many
// times, and cached Claims serve many requests. Do not modify the result.
func (c *Claims) Custom(path string) (any, bool) {
	top, _, _ := strings.Cut(path, ".")
	if sharedMember(top) {
		if c.Shared == nil {
			return nil, false
		}
		return c.Shared.tree.lookup(c.Shared.raw, path)
	}
	if bit := ownBit(top); bit != 0 && c.stripped&bit != 0 {
		if top != path { // sub.x: strings, numbers and arrays have no members
			return nil, false
		}
		return c.ownClaim(bit), true
	}
	if c.custom == nil { // Claims not made by Verify
		return new(lazyTree).lookup(c.Raw, path)
	}
	return c.custom.lookup(c.Raw, path)
}

// lazyTree is a JSON document decoded on its first lookup, safe for
// concurrent use. Claims.Custom and Machine.Custom share it. A pointer, not
// a sync.Once: every cached token carries one, most never decode.
type lazyTree struct {
	p atomic.Pointer[any]
}

// lookup finds a dotted path ("metadata.plan") in raw, decoded once as
// encoding/json does (numbers as json.Number). Each part names a member of
// an object; an empty path, an empty document or anything that is not an
// object on the way finds nothing.
func (l *lazyTree) lookup(raw []byte, path string) (any, bool) {
	if len(raw) == 0 || path == "" {
		return nil, false
	}
	tree := l.p.Load()
	if tree == nil {
		// Two first lookups may both decode: the same result either way.
		tree = new(any)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(tree) != nil {
			*tree = nil
		}
		l.p.Store(tree)
	}
	cur := *tree
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}
