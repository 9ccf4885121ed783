package verifier

import (
	"bytes"
	"encoding/json"
	"sync"
)

// Shared holds the claims that many sessions have in common: the instance
// (iss, azp, aud, v), the active organization and Billing (o or org_*, fea,
// pla) and sts. Verify interns it, so the cached sessions of one
// organization share one copy: a cached session then costs its own claims
// (sub, sid, jti, times, fva, custom claims) and little more. Never modify a
// Shared that Verify returned.
type Shared struct {
	Issuer          string   // iss
	AuthorizedParty string   // azp: origin of the page that minted the token
	Audience        []string // aud, when present
	Version         int      // 1 for legacy tokens, 2 for current ones

	// The active organization, if any. Role and permissions carry the org:
	// prefix for both versions ("org:admin", "org:invoices:read").
	OrgID          string
	OrgSlug        string
	OrgRole        string
	OrgPermissions []string // nil when no organization is active

	Features []string // fea entries with their scope prefix ("o:dashboard")
	Plans    []string // pla entries with their scope prefix ("u:free")
	Status   string   // sts, e.g. "pending"

	// fea or pla has an entry without a scope (an empty one too): every
	// feature or plan check fails, as @clerk/shared throws on it.
	featuresMalformed, plansMalformed bool

	raw  []byte   // the members above as they came, one JSON object
	tree lazyTree // raw decoded once, for Custom
}

// sharedMember reports whether a top-level claim belongs to Shared.
func sharedMember(name string) bool {
	switch name {
	case "iss", "azp", "aud", "v", "sts", "fea", "pla", "o",
		"org_id", "org_slug", "org_role", "org_permissions":
		return true
	}
	return false
}

// maxShared bounds the intern table. Only signed tokens reach it, so its
// keys are what the instance issues: a few per organization and role.
const maxShared = 4096

var interned struct {
	sync.Mutex
	m map[string]*Shared
}

// intern returns the interned Shared whose members' raw text is raw,
// decoding it into c.Shared (checkClaims' draft) on a miss. Only what
// fillShared decoded without error is interned, so a key found means the
// same text decoded before: its claims are not decoded again. The interned
// copy follows from its raw text alone (iss, azp and aud as the validity
// checks decoded them).
func (c *Claims) intern(raw []byte, r *rawClaims) (*Shared, *Error) {
	interned.Lock()
	s, ok := interned.m[string(raw)] // no copy of the key for a lookup
	interned.Unlock()
	if ok {
		return s, nil
	}
	if err := c.fillShared(r); err != nil {
		return nil, err
	}
	s = c.Shared
	s.raw = bytes.Clone(raw)
	interned.Lock()
	defer interned.Unlock()
	if interned.m == nil || len(interned.m) >= maxShared {
		interned.m = make(map[string]*Shared) // cached sessions keep their copies
	}
	interned.m[string(s.raw)] = s
	return s, nil
}

// appendName appends name as a JSON string.
func appendName(b, name []byte) []byte {
	if bytes.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' }) < 0 {
		return append(append(append(b, '"'), name...), '"')
	}
	q, _ := json.Marshal(string(name)) // rare: a name that needs escapes
	return append(b, q...)
}

// Payload is the verified payload as one JSON object (members reordered:
// the token's own typed ones, then the rest of Raw, then the shared ones).
func (c *Claims) Payload() json.RawMessage {
	var sharedRaw []byte
	if c.Shared != nil {
		sharedRaw = c.Shared.raw
	}
	if c.stripped == 0 && len(sharedRaw) == 0 {
		return c.Raw
	}
	out := make([]byte, 0, 128+len(c.Raw)+len(sharedRaw))
	out = append(out, '{')
	sep := func() { // before each member but the first
		if len(out) > 1 {
			out = append(out, ',')
		}
	}
	for _, m := range ownMembers {
		if c.stripped&m.bit != 0 {
			sep()
			out = append(append(append(out, '"'), m.name...), '"', ':')
			out, _ = c.ownValue(m.bit, out)
		}
	}
	for _, obj := range [][]byte{c.Raw, sharedRaw} {
		if len(obj) > 2 { // an object's members, between its braces
			sep()
			out = append(out, obj[1:len(obj)-1]...)
		}
	}
	return append(out, '}')
}
