package authn

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

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

	queryDevBrowser       = "__clerk_db_jwt"
	queryLegacyDevBrowser = "__dev_session"
	queryHandshake        = "__clerk_handshake"
	queryHandshakeNonce   = "__clerk_handshake_nonce"
	queryHandshakeHelp    = "__clerk_help"
)

// cookies is what a browser request carries for Clerk.
type cookies struct {
	suffixed          bool // the __*_<suffix> cookies are the ones in use
	session           string
	clientUAT         int64
	devBrowser        string
	devBrowserInQuery bool
	nonce             string // handshake nonce, from the query or a cookie
	nonceCookie       bool
	handshakeToken    string // legacy signed handshake payload
	handshakeCookie   bool
	redirectCount     int
	// every session cookie present, for sign-out
	sessions []string
	// peeked remembers decoded payloads: one request looks at a token up
	// to three times.
	peeked [2]struct {
		token string
		u     verifier.Unverified
		err   error
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

// peek is verifier.Peek, remembered for this request.
func (c *cookies) peek(token string) (verifier.Unverified, error) {
	for i := range c.peeked {
		if p := &c.peeked[i]; p.token == token && token != "" {
			return p.u, p.err
		}
	}
	u, err := verifier.Peek(token)
	c.peeked[1] = c.peeked[0]
	c.peeked[0].token, c.peeked[0].u, c.peeked[0].err = token, u, err
	return u, err
}

// readCookies picks Clerk's cookies as @clerk/backend does, including its
// rules for choosing between suffixed (__session_<suffix>) and plain
// cookies, which differ when an older clerk-js or another app on the same
// domain wrote the plain ones.
func (a *Authenticator) readCookies(r *http.Request) cookies {
	get := func(name string) string { return CookieValue(r, name) }
	var c cookies
	sfx := a.suffix
	plainSession, plainUAT := get(cookieSession), get(cookieClientUAT)
	var sfxSession, sfxUAT string
	if sfx != "" {
		sfxSession, sfxUAT = get(cookieSession+sfx), get(cookieClientUAT+sfx)
		c.suffixed = a.useSuffixed(&c, plainSession, plainUAT, sfxSession, sfxUAT)
	}
	uat := plainUAT
	c.session = plainSession
	if c.suffixed {
		c.session, uat = sfxSession, sfxUAT
	}
	if n, err := strconv.ParseInt(uat, 10, 64); err == nil && n > 0 {
		c.clientUAT = n
	}
	for _, s := range []string{sfxSession, plainSession} {
		if s != "" {
			c.sessions = append(c.sessions, s)
		}
	}

	var q url.Values
	if strings.Contains(r.URL.RawQuery, "__clerk") {
		q = r.URL.Query() // only Clerk's own parameters matter here
	}
	if v := q.Get(queryDevBrowser); v != "" {
		c.devBrowser, c.devBrowserInQuery = v, true
	} else if c.suffixed {
		c.devBrowser = get(cookieDevBrowser + sfx)
	} else {
		c.devBrowser = get(cookieDevBrowser)
	}
	if c.nonce = q.Get(queryHandshakeNonce); c.nonce == "" {
		c.nonce = get(cookieHandshakeNonce)
		c.nonceCookie = c.nonce != ""
	}
	if c.handshakeToken = q.Get(queryHandshake); c.handshakeToken == "" {
		c.handshakeToken = get(cookieHandshake)
		c.handshakeCookie = c.handshakeToken != ""
	}
	if n, err := strconv.Atoi(get(cookieRedirectCount)); err == nil && n > 0 {
		c.redirectCount = n
	}
	return c
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
func (a *Authenticator) useSuffixed(c *cookies, session, uat, sfxSession, sfxUAT string) bool {
	inst := a.cfg.Instance
	if session != "" {
		u, err := c.peek(session)
		if err != nil || u.Issuer == "" {
			return false // malformed plain cookie: let it sign the request out
		}
		host := strings.TrimPrefix(strings.TrimPrefix(u.Issuer, "https://"), "http://")
		if host != inst.FrontendAPI {
			return true // the plain cookie belongs to another instance
		}
	}
	if sfxUAT == "" && sfxSession == "" {
		return false
	}
	plain, _ := c.peek(session)
	sfx, sfxErr := c.peek(sfxSession)
	if sfxUAT != "0" && uat != "0" && plain.IssuedAt > sfx.IssuedAt {
		return false // both signed in, the plain one newer
	}
	if sfxUAT == "0" && uat != "0" {
		return false // plain cookies are written by old and new clerk-js alike
	}
	if !inst.Production && sfxSession != "" && sfxErr == nil && sfxUAT != "0" && uat == "0" &&
		sfx.Expiry <= a.now().Unix() {
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
