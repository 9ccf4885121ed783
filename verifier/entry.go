package verifier

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// A verified session is kept as a cachedToken: its strings in one
// allocation, its times as offsets, the claims sessions share interned
// (Shared), and the members Claims has typed fields for left out of Raw
// whenever Payload can write their text back exactly. Every Claims, cached
// or not, is rebuilt from one (claimsOf), so a cache hit and a fresh
// verification give the same answer. A hundred thousand cached sessions
// are what this saves memory for: about 300 bytes each instead of 580.

// Members with typed fields that Raw may leave out (Claims.stripped).
const (
	ownSub uint8 = 1 << iota
	ownSid
	ownJti
	ownIat
	ownNbf
	ownExp
	ownFva
)

// ownMembers are those members, in the order Payload writes them.
var ownMembers = [...]struct {
	name string
	bit  uint8
}{{"sub", ownSub}, {"sid", ownSid}, {"jti", ownJti}, {"iat", ownIat}, {"nbf", ownNbf}, {"exp", ownExp}, {"fva", ownFva}}

func ownBit(name string) uint8 {
	for _, m := range ownMembers {
		if m.name == name {
			return m.bit
		}
	}
	return 0
}

// cachedToken is a verified session or machine token (extra.machine),
// never both: each verification only takes its own kind. 96 bytes.
type cachedToken struct {
	key   *Key
	expMs int64
	tail  uint64 // TokenCache's confirmation of the token

	shared *Shared
	extra  *entryExtra // rare parts; nil for most sessions
	// text is sub, sid and jti (lengths sub, sid, jti), then Raw.
	text          string
	iat, nbf      int32 // milliseconds before expMs when has says so; farTime: in extra
	fva           [2]float64
	tree          lazyTree // Raw decoded once, for Custom
	sub, sid, jti uint16
	has           uint8 // hasIat, hasNbf, hasFva
	stripped      uint8 // Claims.stripped
}

const (
	hasIat uint8 = 1 << iota
	hasNbf
	hasFva
	kidOther // the token's kid is extra.kid, not key.ID
)

// farTime is the offset of an iat or nbf too far from exp for an int32 of
// milliseconds; entryExtra holds it then.
const farTime = math.MinInt32

// entryExtra is what few sessions need (an actor, a kid that is not the
// key's ID, as with no kid and a single key, times far from the expiry),
// or a machine token.
type entryExtra struct {
	machine      *Machine
	actor        *Actor
	kid          string
	iatMs, nbfMs int64 // when the offset is farTime
}

// kid is the kid the token named.
func (e *cachedToken) kid() string {
	if e.has&kidOther != 0 {
		return e.extra.kid
	}
	return e.key.ID
}

// machineOf is the entry's machine token, nil for a session.
func (e *cachedToken) machineOf() *Machine {
	if e.extra == nil {
		return nil
	}
	return e.extra.machine
}

func (e *cachedToken) extraPart() *entryExtra {
	if e.extra == nil {
		e.extra = &entryExtra{}
	}
	return e.extra
}

// setKey records the key that verified the token and the kid that named it.
func (e *cachedToken) setKey(key *Key, kid string) {
	e.key = key
	if kid != key.ID {
		e.extraPart().kid = kid
		e.has |= kidOther
	}
}

// seal makes c, whose own claims are decoded (checkClaims, fillOwn), the
// claims of a new entry for the payload decodePayload read into r: Raw
// keeps the members that neither Shared nor a typed field holds exactly,
// and c.Shared becomes the interned copy of its claims. The entry has no
// key yet.
func (c *Claims) seal(r *rawClaims) (*cachedToken, *Error) {
	e := &cachedToken{expMs: c.Expiry.UnixMilli()}
	var ownBuf, sharedBuf [512]byte // on the stack unless a payload is larger
	own, shared := ownBuf[:0], sharedBuf[:0]
	for _, m := range r.members {
		bit := ownBit(string(m.name))
		switch {
		case sharedMember(string(m.name)):
			shared = appendMember(shared, m)
		case c.writesBack(bit, m.raw):
			e.stripped |= bit
		default:
			own = appendMember(own, m)
		}
	}
	if len(own) > 0 {
		own = append(own, '}')
	}
	if len(shared) > 0 {
		shared = append(shared, '}')
	}

	// One allocation for the strings; MaxTokenSize keeps their lengths in
	// a uint16.
	text := make([]byte, 0, len(c.Subject)+len(c.SessionID)+len(c.ID)+len(own))
	text = append(append(append(append(text, c.Subject...), c.SessionID...), c.ID...), own...)
	e.text = unsafe.String(unsafe.SliceData(text), len(text))
	e.sub, e.sid, e.jti = uint16(len(c.Subject)), uint16(len(c.SessionID)), uint16(len(c.ID))

	if !c.IssuedAt.IsZero() {
		e.has |= hasIat
		e.iat = e.offset(c.IssuedAt)
	}
	if !c.NotBefore.IsZero() {
		e.has |= hasNbf
		e.nbf = e.offset(c.NotBefore)
	}
	if len(c.FactorVerificationAge) == 2 {
		e.has |= hasFva
		e.fva = [2]float64(c.FactorVerificationAge)
	}
	if c.Actor != nil {
		e.extraPart().actor = c.Actor
	}
	if e.iat == farTime || e.nbf == farTime {
		x := e.extraPart()
		x.iatMs, x.nbfMs = c.IssuedAt.UnixMilli(), c.NotBefore.UnixMilli()
	}

	var err *Error
	if e.shared, err = c.intern(shared, r); err != nil {
		return nil, err
	}
	e.claimsOf(c)
	return e, nil
}

// appendMember adds m to the JSON object being written in b.
func appendMember(b []byte, m rawMember) []byte {
	if len(b) == 0 {
		b = append(b, '{')
	} else {
		b = append(b, ',')
	}
	return append(append(appendName(b, m.name), ':'), m.raw...)
}

// offset is t in milliseconds before the expiry, farTime when it does not
// fit.
func (e *cachedToken) offset(t time.Time) int32 {
	d := e.expMs - t.UnixMilli()
	if d <= farTime || d > math.MaxInt32 {
		return farTime
	}
	return int32(d)
}

// timeOf is the session's iat (bit hasIat) or nbf (hasNbf), zero when it
// has none.
func (e *cachedToken) timeOf(bit uint8) time.Time {
	if e.has&bit == 0 {
		return time.Time{}
	}
	off := e.iat
	if bit == hasNbf {
		off = e.nbf
	}
	switch {
	case off != farTime:
		return time.UnixMilli(e.expMs - int64(off))
	case bit == hasNbf:
		return time.UnixMilli(e.extra.nbfMs)
	}
	return time.UnixMilli(e.extra.iatMs)
}

// claimsOf writes the entry's session into dst, which shares the entry's
// strings, Shared and decoded custom claims; with dst nil, it is the
// Claims the cache shares for the entry (sharedClaims).
func (e *cachedToken) claimsOf(dst *Claims) *Claims {
	if dst == nil {
		return e.sharedClaims()
	}
	t := e.text
	a, b, n := int(e.sub), int(e.sub)+int(e.sid), int(e.sub)+int(e.sid)+int(e.jti)
	*dst = Claims{Subject: t[:a], SessionID: t[a:b], ID: t[b:n], Expiry: time.UnixMilli(e.expMs),
		Shared: e.shared, custom: &e.tree, stripped: e.stripped}
	if len(t) > n {
		dst.Raw = unsafe.Slice(unsafe.StringData(t[n:]), len(t)-n)
	}
	dst.IssuedAt, dst.NotBefore = e.timeOf(hasIat), e.timeOf(hasNbf)
	if e.has&hasFva != 0 {
		dst.FactorVerificationAge = e.fva[:]
	}
	if e.extra != nil {
		dst.Actor = e.extra.actor
	}
	return dst
}

// writesBack reports whether Payload writes exactly raw back for the own
// member bit from c's typed fields.
func (c *Claims) writesBack(bit uint8, raw []byte) bool {
	var buf [40]byte
	v, ok := c.ownValue(bit, buf[:0])
	return ok && bytes.Equal(v, raw)
}

// ownValue appends the JSON text of an own member, from c's typed fields,
// to b; ok is false when c has no value for it.
func (c *Claims) ownValue(bit uint8, b []byte) (_ []byte, ok bool) {
	switch bit {
	case ownSub:
		return appendPlainString(b, c.Subject)
	case ownSid:
		return appendPlainString(b, c.SessionID)
	case ownJti:
		return appendPlainString(b, c.ID)
	case ownIat:
		return appendUnix(b, c.IssuedAt)
	case ownNbf:
		return appendUnix(b, c.NotBefore)
	case ownExp:
		return appendUnix(b, c.Expiry)
	case ownFva:
		if len(c.FactorVerificationAge) != 2 {
			return b, false
		}
		b = strconv.AppendFloat(append(b, '['), c.FactorVerificationAge[0], 'f', -1, 64)
		b = strconv.AppendFloat(append(b, ','), c.FactorVerificationAge[1], 'f', -1, 64)
		return append(b, ']'), true
	}
	return b, false
}

// appendPlainString appends s quoted, if it needs no escapes.
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return b, false
		}
	}
	return append(append(append(b, '"'), s...), '"'), true
}

// appendUnix appends t in whole Unix seconds, if it is that.
func appendUnix(b []byte, t time.Time) ([]byte, bool) {
	ms := t.UnixMilli()
	if t.IsZero() || ms%1000 != 0 {
		return b, false
	}
	return strconv.AppendInt(b, ms/1000, 10), true
}

// ownClaim is Custom for a member Raw left out: the value encoding/json
// gives its text (numbers as json.Number).
func (c *Claims) ownClaim(bit uint8) any {
	switch bit {
	case ownSub:
		return c.Subject
	case ownSid:
		return c.SessionID
	case ownJti:
		return c.ID
	case ownFva:
		return []any{json.Number(strconv.FormatFloat(c.FactorVerificationAge[0], 'f', -1, 64)),
			json.Number(strconv.FormatFloat(c.FactorVerificationAge[1], 'f', -1, 64))}
	}
	v, _ := c.ownValue(bit, nil)
	return json.Number(v)
}

// Hit is a session the token cache still holds for a token: its times
// are read without building Claims.
type Hit struct{ e *cachedToken }

// Issuer is the session's iss.
func (h Hit) Issuer() string { return h.e.shared.Issuer }

// Expiry is the session's exp.
func (h Hit) Expiry() time.Time { return time.UnixMilli(h.e.expMs) }

// IssuedAt is the session's iat; zero when it has none.
func (h Hit) IssuedAt() time.Time { return h.e.timeOf(hasIat) }

// Claims writes the session's claims into dst and returns it, as VerifyTo
// would; with dst nil, it returns the ones the cache shares.
func (h Hit) Claims(dst *Claims) *Claims { return h.e.claimsOf(dst) }
