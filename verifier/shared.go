package verifier

import (
	"bytes"
	"encoding/json"
	"sync"
	"unsafe"
)

// ownString is the index of sub, sid and jti in split's table, or -1.
func ownString(name string) int {
	switch name {
	case "sub":
		return 0
	case "sid":
		return 1
	case "jti":
		return 2
	}
	return -1
}

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

// share moves c's claims out of the whole payload: c.Raw keeps the members
// Shared has no field for, and c.Shared becomes the interned copy of its
// values, keyed by their raw text. Only what fillShared decoded without
// error is interned, so a key found means the same text decoded before:
// its claims are not decoded again. c.Shared holds iss, azp and aud as the
// validity checks decoded them. Raw is never modified after this, so
// strings may point into it.
func (c *Claims) share(payload []byte, r *rawClaims) *Error {
	var own, shared bytes.Buffer
	own.Grow(len(payload) / 2)
	var at [3][2]int                                 // where sub, sid and jti are in own
	_ = scanObject(payload, func(name, raw []byte) { // payload was validated already
		b := &own
		if sharedMember(string(name)) {
			b = &shared
		}
		if b.Len() == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		writeName(b, name)
		b.WriteByte(':')
		if i := ownString(string(name)); i >= 0 && b == &own {
			at[i] = [2]int{own.Len(), len(raw)}
		}
		b.Write(raw)
	})
	for _, b := range []*bytes.Buffer{&own, &shared} {
		if b.Len() > 0 {
			b.WriteByte('}')
		}
	}
	c.Raw = bytes.Clone(own.Bytes()) // exact size: it lives as long as the cache entry
	// The token's own strings point into Raw instead of copies of their own.
	for i, f := range []*string{&c.Subject, &c.SessionID, &c.ID} {
		if n := at[i][1]; n > 2 {
			v := c.Raw[at[i][0] : at[i][0]+n]
			if inner := v[1 : n-1]; v[0] == '"' && string(inner) == *f {
				*f = unsafe.String(&inner[0], len(inner))
			}
		}
	}
	interned.Lock()
	s, ok := interned.m[string(shared.Bytes())] // no copy of the key for a lookup
	interned.Unlock()
	if ok {
		c.Shared = s
		return nil
	}
	if err := c.fillShared(r); err != nil {
		return err
	}
	c.Shared.raw = bytes.Clone(shared.Bytes())
	interned.Lock()
	defer interned.Unlock()
	if interned.m == nil || len(interned.m) >= maxShared {
		interned.m = make(map[string]*Shared) // cached sessions keep their copies
	}
	interned.m[string(c.Shared.raw)] = c.Shared
	return nil
}

func writeName(b *bytes.Buffer, name []byte) {
	if bytes.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' }) < 0 {
		b.WriteByte('"')
		b.Write(name)
		b.WriteByte('"')
		return
	}
	q, _ := json.Marshal(string(name)) // rare: a name that needs escapes
	b.Write(q)
}

// Payload is the verified payload as one JSON object (members reordered:
// the token's own, then the shared ones).
func (c *Claims) Payload() json.RawMessage {
	var sharedRaw []byte
	if c.Shared != nil {
		sharedRaw = c.Shared.raw
	}
	switch {
	case len(sharedRaw) == 0:
		return c.Raw
	case len(c.Raw) == 0:
		return sharedRaw
	}
	out := make([]byte, 0, len(c.Raw)+len(sharedRaw))
	out = append(out, c.Raw[:len(c.Raw)-1]...)
	out = append(out, ',')
	return append(out, sharedRaw[1:]...)
}
