package verifier

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// TokenType is the kind of credential a request presents, in Clerk's words.
type TokenType string

// The four token types of @clerk/backend.
const (
	TokenSession TokenType = "session_token"
	TokenM2M     TokenType = "m2m_token"
	TokenAPIKey  TokenType = "api_key"
	TokenOAuth   TokenType = "oauth_token"
)

// CategoryM2M is the cat header of machine-to-machine JWTs.
const CategoryM2M = "cl_B7d4PD333AAA"

// Prefixes of opaque machine tokens and of machine subjects.
const (
	m2mTokenPrefix   = "mt_"
	oauthTokenPrefix = "oat_"
	apiKeyPrefix     = "ak_"
	m2mSubjectPrefix = "mch_"
)

// DetectType tells which credential a raw Authorization token is, in
// @clerk/backend's order: the mt_ prefix or a JWT whose payload sub starts
// with mch_ is an M2M token (so a JWT with both an mch_ subject and typ
// at+jwt is M2M); then the oat_ prefix or a JWT whose header typ is exactly
// at+jwt or application/at+jwt is an OAuth token; then the ak_ prefix is an
// API key; anything else is a session token.
//
// "A JWT" means a token in JWT format (three non-empty dot-separated groups
// of [A-Za-z0-9_-] and nothing else), no larger than MaxTokenSize, whose
// header and payload decode (strict base64url, one JSON object each, no
// duplicate members). Nothing is verified: the answer only picks the
// verification to run. It runs on every request, so it is cheap: a token
// whose encoded segments cannot hold "at+jwt", "mch_" or an escape cannot be
// a machine JWT and is not even decoded (see mayBeMachineJWT); it allocates
// nothing and never panics.
func DetectType(token string) TokenType {
	if strings.HasPrefix(token, m2mTokenPrefix) {
		return TokenM2M // first in Clerk's order, whatever follows
	}
	m2m, oauth := inspectJWT(token)
	switch {
	case m2m:
		return TokenM2M
	case oauth || strings.HasPrefix(token, oauthTokenPrefix):
		return TokenOAuth
	case strings.HasPrefix(token, apiKeyPrefix):
		return TokenAPIKey
	}
	return TokenSession
}

// Opaque reports whether a machine token is opaque, verified at the Backend
// API, rather than a JWT verified locally by VerifyMachineJWT: an API key
// always (API keys have no JWT format), an M2M or OAuth token when it is not
// in JWT format. It is false for session tokens, and for tokens larger than
// MaxTokenSize, which VerifyMachineJWT refuses as oversized without calling
// anyone.
func Opaque(token string) bool {
	if len(token) > MaxTokenSize {
		return false
	}
	switch DetectType(token) {
	case TokenAPIKey:
		return true
	case TokenM2M, TokenOAuth:
		_, _, format := jwtSegments(token)
		return !format
	}
	return false
}

// NonSessionCategory reports whether token is a JWT whose header cat is a
// string other than the session and the ignore categories (a JWT template,
// an M2M token, a category yet unknown). It is false when cat is absent
// (tokens minted before categories), and for tokens not in JWT format or
// whose header does not decode: Verify refuses those on its own. Only the
// header is decoded.
func NonSessionCategory(token string) bool {
	first, _, ok := splitDots(token)
	if !ok {
		return false
	}
	buf := jwtBufs.Get().(*[MaxTokenSize]byte)
	defer jwtBufs.Put(buf)
	var cat []byte
	if !scanSegment(buf[:], token[:first], "cat", &cat) || len(cat) == 0 {
		return false
	}
	switch string(cat) {
	case `"` + CategorySession + `"`, `"` + CategoryIgnore + `"`:
		return false
	}
	if cat[0] != '"' {
		return false // not a string: the header does not decode as a JOSE header
	}
	if bytes.IndexByte(cat, '\\') >= 0 {
		if s, ok := jsonString(cat); !ok || s == CategorySession || s == CategoryIgnore {
			return false
		}
	}
	_, _, ok = jwtSegments(token) // the whole token, now that it matters
	return ok
}

// splitDots finds the first two dots of a token no larger than
// MaxTokenSize, both with something before and after them; the rest of
// JWT format (the alphabet, no third dot) is jwtSegments' to check.
func splitDots(token string) (first, second int, ok bool) {
	if len(token) > MaxTokenSize {
		return 0, 0, false
	}
	first = strings.IndexByte(token, '.')
	if first <= 0 {
		return 0, 0, false
	}
	i := strings.IndexByte(token[first+1:], '.')
	if i <= 0 {
		return 0, 0, false
	}
	second = first + 1 + i
	return first, second, second < len(token)-1
}

// b64urlChar marks the base64url alphabet.
var b64urlChar = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

// jwtSegments checks Clerk's "JWT format" (three non-empty dot-separated
// groups of [A-Za-z0-9_-], nothing else) and returns the two dots.
func jwtSegments(token string) (first, second int, ok bool) {
	first, second = -1, -1
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c != '.' {
			if !b64urlChar[c] {
				return -1, -1, false
			}
			continue
		}
		switch {
		case first < 0:
			first = i
		case second < 0:
			second = i
		default:
			return -1, -1, false
		}
	}
	ok = first > 0 && second > first+1 && second < len(token)-1
	return first, second, ok
}

// jwtBufs holds scratch space for decoding a token's segments: the
// scanner's callbacks make a stack buffer escape, and detection runs on
// every request.
var jwtBufs = sync.Pool{New: func() any { return new([MaxTokenSize]byte) }}

// inspectJWT reports whether token is an M2M JWT (payload sub a string
// starting with mch_) and whether it is an OAuth JWT (header typ an OAuth
// access token type): both false unless it is a JWT whose header and
// payload decode.
func inspectJWT(token string) (m2m, oauth bool) {
	first, second, ok := splitDots(token)
	if !ok || !mayBeMachineJWT(token[:first], token[first+1:second]) {
		return false, false
	}
	return decodeMachineJWT(token, first, second)
}

// mayBeMachineJWT is a filter on the still-encoded segments that spares most
// tokens (sessions) any decoding. An M2M JWT's payload holds "mch_" in its
// sub, each character literal or escaped as \u00XX, so it holds "mch_" or
// "\u00"; likewise an OAuth JWT's header holds "at+jwt" or "\u00". In a
// token in JWT format (no characters that decoding would skip), bytes at
// offset 3g+k of a decoded segment are encoded by fixed characters starting
// at 4g, 4g+2 or 4g+3 (k = 0, 1, 2): a segment without those characters at
// those places cannot hold the bytes. False means certainly not a machine
// JWT; true means decode and see.
func mayBeMachineJWT(header, payload string) bool {
	return mayHold(header, &oauthWords, &escapeWords) || mayHold(payload, &m2mWords, &escapeWords)
}

// b64Words are, for each offset k of a byte string modulo 3 in decoded
// bytes, the first four base64url characters that encode it alone, read
// as a little-endian word.
type b64Words [3]uint32

var (
	m2mWords    = wordsOf(m2mSubjectPrefix)
	oauthWords  = wordsOf("at+jwt")
	escapeWords = wordsOf(`\u00`)
)

// wordStart is where the characters that encode bytes at offset 3g+k
// begin, less 4g.
var wordStart = [3]int{0, 2, 3}

func wordsOf(s string) b64Words {
	var w b64Words
	for k := range w {
		buf := make([]byte, k+len(s)+2)
		copy(buf[k:], s)
		enc := base64.RawURLEncoding.EncodeToString(buf)
		// Character i carries bits [6i, 6i+6); s holds [8k, 8(k+len(s))).
		run := enc[(8*k+5)/6 : 8*(k+len(s))/6]
		if (8*k+5)/6 != wordStart[k] || len(run) < 4 {
			panic("verifier: bad base64 run for " + s)
		}
		w[k] = le32(run, 0)
	}
	return w
}

func le32(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// mayHold reports whether seg, a base64url segment, has the characters of
// x or y at a place where they encode those bytes (see mayBeMachineJWT).
func mayHold(seg string, x, y *b64Words) bool {
	i := 0
	for ; i+8 <= len(seg); i += 4 {
		g := seg[i : i+8] // one load, no bounds checks
		w := uint64(g[0]) | uint64(g[1])<<8 | uint64(g[2])<<16 | uint64(g[3])<<24 |
			uint64(g[4])<<32 | uint64(g[5])<<40 | uint64(g[6])<<48 | uint64(g[7])<<56
		w0, w2, w3 := uint32(w), uint32(w>>16), uint32(w>>24)
		if w0 == x[0] || w0 == y[0] || w2 == x[1] || w2 == y[1] || w3 == x[2] || w3 == y[2] {
			return true
		}
	}
	// The last group: what still fits.
	for k, start := range wordStart {
		if i+start+4 <= len(seg) {
			if w := le32(seg, i+start); w == x[k] || w == y[k] {
				return true
			}
		}
	}
	return false
}

// decodeMachineJWT is inspectJWT without the filter: JWT format, both
// segments decoded and scanned strictly.
func decodeMachineJWT(token string, first, second int) (m2m, oauth bool) {
	if _, _, ok := jwtSegments(token); !ok {
		return false, false
	}
	buf := jwtBufs.Get().(*[MaxTokenSize]byte)
	defer jwtBufs.Put(buf)
	// The header takes at most 3/4 of its segment; the payload fits behind.
	h := (first*3 + 3) / 4
	var typ, sub []byte
	if !scanSegment(buf[:h], token[:first], "typ", &typ) ||
		!scanSegment(buf[h:], token[first+1:second], "sub", &sub) {
		return false, false
	}
	return isM2MSubject(sub), isOAuthType(typ)
}

// scanMember checks b is one strict JSON object; the raw value of its
// top-level member name, if present, goes to *val and points into b.
func scanMember(b []byte, name string, val *[]byte) bool {
	return scanObject(b, func(k, raw []byte) {
		if string(k) == name {
			*val = raw
		}
	}) == nil
}

// scanSegment decodes one base64url segment into buf and scans it with
// scanMember.
func scanSegment(buf []byte, seg, name string, val *[]byte) bool {
	n, err := b64.Decode(buf, []byte(seg))
	return err == nil && scanMember(buf[:n], name, val)
}

// isM2MSubject reports whether a raw JSON value is a string starting with
// mch_.
func isM2MSubject(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	if bytes.HasPrefix(raw[1:], []byte(m2mSubjectPrefix)) {
		return true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	s, ok := jsonString(raw)
	return ok && strings.HasPrefix(s, m2mSubjectPrefix)
}

// isOAuthType reports whether a raw JSON value is exactly one of the OAuth
// access token types of RFC 9068 (case-sensitive, as Clerk compares).
func isOAuthType(raw []byte) bool {
	switch string(raw) {
	case `"at+jwt"`, `"application/at+jwt"`:
		return true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	s, ok := jsonString(raw)
	return ok && oauthType(s)
}

func oauthType(typ string) bool { return typ == "at+jwt" || typ == "application/at+jwt" }

// Machine is a verified machine credential: an M2M token, an OAuth access
// token or an API key, JWT or opaque. A Machine may be shared between
// requests (caches hand out the same one): do not modify it, and pass it by
// pointer (it decodes Claims once, on first use, and go vet refuses copies).
type Machine struct {
	Type     TokenType
	ID       string // mt_…/ak_…/oat_… id, or the JWT's jti
	Subject  string
	Name     string // API key name
	ClientID string // OAuth client_id
	Scopes   []string
	Claims   json.RawMessage // custom claims (M2M and API keys), nil when none
	Expiry   time.Time       // zero when none

	custom lazyTree // Claims decoded once, on first use of Custom
}

// UserID is the user the credential acts for, as @clerk/backend's userId:
// an OAuth token's subject, an API key's subject when it is a user (user_…),
// otherwise "".
func (m *Machine) UserID() string {
	if m == nil {
		return ""
	}
	switch m.Type {
	case TokenOAuth:
		return m.Subject
	case TokenAPIKey:
		if strings.HasPrefix(m.Subject, "user_") {
			return m.Subject
		}
	}
	return ""
}

// OrgID is the organization an API key belongs to (its subject when it is
// org_…), otherwise "".
func (m *Machine) OrgID() string {
	if m != nil && m.Type == TokenAPIKey && strings.HasPrefix(m.Subject, "org_") {
		return m.Subject
	}
	return ""
}

// MachineID is an M2M token's subject (mch_…), otherwise "".
func (m *Machine) MachineID() string {
	if m != nil && m.Type == TokenM2M {
		return m.Subject
	}
	return ""
}

// Custom returns a custom claim by dotted path ("tenant.region"), with the
// semantics of Claims.Custom: decoded once as encoding/json does (numbers
// as json.Number). Do not modify the result.
func (m *Machine) Custom(path string) (any, bool) {
	if m == nil {
		return nil, false
	}
	return m.custom.lookup(m.Claims, path)
}

// HasScope reports whether s is one of the credential's scopes, compared
// exactly. An empty s is never a scope.
func (m *Machine) HasScope(s string) bool {
	return m != nil && s != "" && contains(m.Scopes, s)
}
