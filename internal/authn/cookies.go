package authn

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// Clerk's cookie and query parameter names (@clerk/backend constants).
const (
	cookieSession        = "__session"
	cookieClientUAT      = "__client_uat"
	cookieDevBrowser     = "__clerk_db_jwt"
	cookieHandshake      = "__clerk_handshake"
	cookieHandshakeNonce = "__clerk_handshake_nonce"
	cookieRedirectCount  = "__clerk_redirect_count"
	cookieRefresh        = "__refresh"
	// cookieTasksSent is ours: the jti of the pending token a browser was
	// last sent to the tasks page with.
	cookieTasksSent = "__caddy_clerk_tasks"

	queryDevBrowser       = "__clerk_db_jwt"
	queryLegacyDevBrowser = "__dev_session"
	queryHandshake        = "__clerk_handshake"
	queryHandshakeNonce   = "__clerk_handshake_nonce"
	queryHandshakeHelp    = "__clerk_help"
)

// cookies is what a browser request carries for Clerk.
type cookies struct {
	at                time.Time // the request's instant (Authenticator.at)
	suffixed          bool      // the __*_<suffix> cookies are the ones in use
	session           string
	clientUAT         int64
	devBrowser        string
	devBrowserInQuery bool
	nonce             string // handshake nonce, from the query or a cookie
	nonceCookie       bool
	handshakeToken    string // legacy signed handshake payload
	handshakeCookie   bool
	redirectCount     int
	tasksSent         string // cookieTasksSent
	// both session cookies as sent, for sign-out
	plainSession, sfxSession string
	// peeked remembers what a token says about itself: one request looks
	// at a token up to three times. cached is set when the token cache
	// already holds the token verified, so nothing needs decoding.
	peeked [2]struct {
		token  string
		u      verifier.Unverified
		err    error
		cached verifier.Hit
		hit    bool
	}
}

// carrier names the handshake result this request carries (nonce first, as
// it is redeemed first) and whether it came as a cookie rather than in the
// URL. name is "" when there is none.
func (c *cookies) carrier() (name string, asCookie bool) {
	switch {
	case c.nonce != "":
		return cookieHandshakeNonce, c.nonceCookie
	case c.handshakeToken != "":
		return cookieHandshake, c.handshakeCookie
	}
	return "", false
}

// peek is verifier.Peek, remembered for this request; a token the token
// cache holds is read from its verified claims instead of decoded.
func (a *Authenticator) peek(ctx context.Context, c *cookies, token string) (verifier.Unverified, error) {
	for i := range c.peeked {
		if p := &c.peeked[i]; p.token == token && token != "" {
			return p.u, p.err
		}
	}
	var u verifier.Unverified
	var err error
	var hit verifier.Hit
	ok := false
	if a.cfg.Verifier != nil {
		hit, ok = a.cfg.Verifier.Cached(ctx, token, c.at)
	}
	if ok {
		u = verifier.Unverified{Issuer: hit.Issuer(), IssuedAt: unix(hit.IssuedAt()), Expiry: unix(hit.Expiry())}
	} else {
		u, err = verifier.Peek(token)
	}
	c.peeked[1] = c.peeked[0]
	c.peeked[0].token, c.peeked[0].u, c.peeked[0].err, c.peeked[0].cached, c.peeked[0].hit = token, u, err, hit, ok
	return u, err
}

// cachedClaims are the verified claims peek found for token (the token
// cache's own, shared), or nil.
func (c *cookies) cachedClaims(token string) *verifier.Claims {
	for i := range c.peeked {
		if p := &c.peeked[i]; p.token == token && token != "" && p.hit {
			return p.cached.Claims(nil)
		}
	}
	return nil
}

// unix is t in Unix seconds, 0 for the zero time (as Peek reports absent
// claims).
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// readCookies picks Clerk's cookies as @clerk/backend does, including its
// rules for choosing between suffixed (__session_<suffix>) and plain
// cookies, which differ when an older clerk-js or another app on the same
// domain wrote the plain ones.
// at is the request's instant. c is filled, not returned: a result would
// be one more copy of it in the caller's frame, on the way to the token
// cache.
func (a *Authenticator) readCookies(r *http.Request, at time.Time, c *cookies) {
	ctx := r.Context()
	j := a.scan(r)
	*c = cookies{at: at}
	if a.suffix != "" {
		c.suffixed = a.useSuffixed(ctx, c, j.session, j.uat, j.sfxSession, j.sfxUAT)
	}
	uat := j.uat
	c.session = j.session
	if c.suffixed {
		c.session, uat = j.sfxSession, j.sfxUAT
	}
	if uat != "" { // parsing "" allocates an error on every request
		if n, err := strconv.ParseInt(uat, 10, 64); err == nil && n > 0 {
			c.clientUAT = n
		}
	}
	c.plainSession, c.sfxSession = j.session, j.sfxSession

	var q url.Values
	if strings.Contains(r.URL.RawQuery, "__clerk") {
		q = r.URL.Query() // only Clerk's own parameters matter here
	}
	if v := q.Get(queryDevBrowser); v != "" {
		c.devBrowser, c.devBrowserInQuery = v, true
	} else if c.suffixed {
		c.devBrowser = j.sfxDevBrowser
	} else {
		c.devBrowser = j.devBrowser
	}
	if c.nonce = q.Get(queryHandshakeNonce); c.nonce == "" {
		c.nonce = j.nonce
		c.nonceCookie = c.nonce != ""
	}
	if c.handshakeToken = q.Get(queryHandshake); c.handshakeToken == "" {
		c.handshakeToken = j.handshake
		c.handshakeCookie = c.handshakeToken != ""
	}
	c.tasksSent = j.tasksSent
	if j.redirectCount != "" {
		if n, err := strconv.Atoi(j.redirectCount); err == nil && n > 0 {
			c.redirectCount = n
		}
	}
}

// jar is Clerk's cookies as a request sends them: the first of each name,
// as r.Cookie(name) reads it.
type jar struct {
	session, uat, devBrowser, sfxSession, sfxUAT, sfxDevBrowser, nonce, handshake, redirectCount, tasksSent string
}

// scan reads every Clerk cookie in one pass over the Cookie header (each
// asset of a page comes with it) and allocates nothing; CookieValue of
// each name gives the same values.
func (a *Authenticator) scan(r *http.Request) jar {
	var j jar
	var seen uint16
	sfx := a.suffix
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if len(part) < 3 || part[0] != '_' || part[1] != '_' {
				continue // not one of Clerk's
			}
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				continue
			}
			var dst *string
			var bit uint16
			name, suffixed := k, false
			if sfx != "" && len(k) > len(sfx) && k[len(k)-len(sfx):] == sfx {
				name, suffixed = k[:len(k)-len(sfx)], true
			}
			switch {
			case name == cookieSession && suffixed:
				dst, bit = &j.sfxSession, 1<<0
			case name == cookieClientUAT && suffixed:
				dst, bit = &j.sfxUAT, 1<<1
			case name == cookieDevBrowser && suffixed:
				dst, bit = &j.sfxDevBrowser, 1<<2
			case k == cookieSession:
				dst, bit = &j.session, 1<<3
			case k == cookieClientUAT:
				dst, bit = &j.uat, 1<<4
			case k == cookieDevBrowser:
				dst, bit = &j.devBrowser, 1<<5
			case k == cookieHandshakeNonce:
				dst, bit = &j.nonce, 1<<6
			case k == cookieHandshake:
				dst, bit = &j.handshake, 1<<7
			case k == cookieRedirectCount:
				dst, bit = &j.redirectCount, 1<<8
			case k == cookieTasksSent:
				dst, bit = &j.tasksSent, 1<<9
			default:
				continue
			}
			if seen&bit != 0 {
				continue // the first of a name wins, as in net/http
			}
			seen |= bit
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			*dst = v
		}
	}
	return j
}

// CookieValue is r.Cookie(name).Value without parsing and allocating every
// cookie of the request: the cookie path runs on each asset of a page.
func CookieValue(r *http.Request, name string) string {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v
			}
		}
	}
	return ""
}

// useSuffixed is @clerk/backend's shouldUseSuffixed.
func (a *Authenticator) useSuffixed(ctx context.Context, c *cookies, session, uat, sfxSession, sfxUAT string) bool {
	inst := a.cfg.Instance
	if session != "" {
		u, err := a.peek(ctx, c, session)
		if err != nil || u.Issuer == "" {
			return false // malformed plain cookie: let it sign the request out
		}
		host := strings.TrimPrefix(strings.TrimPrefix(u.Issuer, "https://"), "http://")
		if host != inst.FrontendAPI && !a.ownIssuer(u.Issuer) {
			return true // the plain cookie belongs to another instance
		}
	}
	if sfxUAT == "" && sfxSession == "" {
		return false
	}
	plain, _ := a.peek(ctx, c, session)
	sfx, sfxErr := a.peek(ctx, c, sfxSession)
	if sfxUAT != "0" && uat != "0" && plain.IssuedAt > sfx.IssuedAt {
		return false // both signed in, the plain one newer
	}
	if sfxUAT == "0" && uat != "0" {
		return false // plain cookies are written by old and new clerk-js alike
	}
	if !inst.Production && sfxSession != "" && sfxErr == nil && sfxUAT != "0" && uat == "0" &&
		sfx.Expiry <= c.at.Unix() {
		return false // development: suffixed cookies may be stale after a downgrade
	}
	return true
}

// SignedOutCookies expire the session cookies and mark the client signed
// out (__client_uat=0), plain and suffixed.
func (a *Authenticator) SignedOutCookies() []string {
	var out []string
	for _, sfx := range []string{"", a.suffix} {
		if sfx == "" && len(out) > 0 {
			continue
		}
		out = append(out, cookieSession+sfx+"=; Path=/; Max-Age=0",
			cookieClientUAT+sfx+"=0; Path=/; Max-Age=315360000; SameSite=Lax")
	}
	return out
}

// clerkCookie reports whether a cookie is one of Clerk's credentials.
func clerkCookie(name string) bool {
	for _, p := range []string{cookieSession, cookieClientUAT, cookieDevBrowser, cookieHandshake, cookieRedirectCount, cookieRefresh} {
		if name == p || strings.HasPrefix(name, p+"_") {
			return true
		}
	}
	return false
}

// StripCredentials removes the Authorization header and Clerk's cookies,
// leaving every other cookie exactly as the client sent it.
func StripCredentials(r *http.Request) {
	r.Header.Del("Authorization")
	lines := r.Header.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, pair := range strings.Split(line, ";") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			name, _, _ := strings.Cut(pair, "=")
			if !clerkCookie(strings.TrimSpace(name)) {
				kept = append(kept, pair)
			}
		}
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
}
