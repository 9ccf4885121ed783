package caddyclerk

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-clerk/caddy-clerk/bapi"
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

	queryDevBrowser       = "__clerk_db_jwt"
	queryLegacyDevBrowser = "__dev_session"
	queryHandshake        = "__clerk_handshake"
	queryHandshakeNonce   = "__clerk_handshake_nonce"
	queryHandshakeHelp    = "__clerk_help"

	// clerkAPIVersion is the version the handshake asks for, as clerk-sdk-go v2.
	clerkAPIVersion = "2025-04-10"
	// maxRedirects ends a handshake loop: Clerk's guard, three round trips.
	maxRedirects = 3
	// handshakeTimeout bounds redeeming a nonce at the Backend API.
	handshakeTimeout = 5 * time.Second
	// signOutSkew lets an expired session token still name the session to
	// revoke; its signature is checked as ever.
	signOutSkew = 30 * 24 * time.Hour
)

// Reasons for a handshake, in @clerk/backend's words (AuthErrorReason).
const (
	reasonClientUATWithoutSession verifier.Reason = "client-uat-but-no-session-token"
	reasonSessionWithoutClientUAT verifier.Reason = "session-token-but-no-client-uat"
	reasonIATBeforeClientUAT      verifier.Reason = "session-token-iat-before-client-uat"
	reasonDevBrowserMissing       verifier.Reason = "dev-browser-missing"
	reasonDevBrowserSync          verifier.Reason = "dev-browser-sync"
	reasonSessionNBF              verifier.Reason = "session-token-nbf"
	reasonSessionIATInFuture      verifier.Reason = "session-token-iat-in-the-future"
	// We never hold a refresh token, so an expired session is never
	// eligible for refresh; the suffix says why, as @clerk/backend does.
	reasonExpiredNoRefreshCookie verifier.Reason = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
	reasonExpiredNonGet          verifier.Reason = "session-token-expired-refresh-non-eligible-non-get"
)

// cookieState is what a browser request carries for Clerk.
type cookieState struct {
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
func (st *cookieState) carrier() (name string, asCookie bool) {
	switch {
	case st.nonce != "":
		return cookieHandshakeNonce, st.nonceCookie
	case st.handshakeToken != "":
		return cookieHandshake, st.handshakeCookie
	}
	return "", false
}

// peek is verifier.Peek, remembered for this request.
func (st *cookieState) peek(token string) (verifier.Unverified, error) {
	for i := range st.peeked {
		if p := &st.peeked[i]; p.token == token && token != "" {
			return p.u, p.err
		}
	}
	u, err := verifier.Peek(token)
	st.peeked[1] = st.peeked[0]
	st.peeked[0].token, st.peeked[0].u, st.peeked[0].err = token, u, err
	return u, err
}

// readCookies picks Clerk's cookies as @clerk/backend does, including its
// rules for choosing between suffixed (__session_<suffix>) and plain
// cookies, which differ when an older clerk-js or another app on the same
// domain wrote the plain ones.
func (h *Handler) readCookies(r *http.Request) cookieState {
	get := func(name string) string { return cookieValue(r, name) }
	var st cookieState
	sfx := ""
	if h.instance != nil {
		sfx = "_" + h.instance.CookieSuffix
	}
	plainSession, plainUAT := get(cookieSession), get(cookieClientUAT)
	var sfxSession, sfxUAT string
	if sfx != "" {
		sfxSession, sfxUAT = get(cookieSession+sfx), get(cookieClientUAT+sfx)
		st.suffixed = h.useSuffixed(&st, plainSession, plainUAT, sfxSession, sfxUAT)
	}
	uat := plainUAT
	st.session = plainSession
	if st.suffixed {
		st.session, uat = sfxSession, sfxUAT
	}
	if n, err := strconv.ParseInt(uat, 10, 64); err == nil && n > 0 {
		st.clientUAT = n
	}
	for _, s := range []string{sfxSession, plainSession} {
		if s != "" {
			st.sessions = append(st.sessions, s)
		}
	}

	var q url.Values
	if strings.Contains(r.URL.RawQuery, "__clerk") {
		q = r.URL.Query() // only Clerk's own parameters matter here
	}
	if v := q.Get(queryDevBrowser); v != "" {
		st.devBrowser, st.devBrowserInQuery = v, true
	} else if st.suffixed {
		st.devBrowser = get(cookieDevBrowser + sfx)
	} else {
		st.devBrowser = get(cookieDevBrowser)
	}
	if st.nonce = q.Get(queryHandshakeNonce); st.nonce == "" {
		st.nonce = get(cookieHandshakeNonce)
		st.nonceCookie = st.nonce != ""
	}
	if st.handshakeToken = q.Get(queryHandshake); st.handshakeToken == "" {
		st.handshakeToken = get(cookieHandshake)
		st.handshakeCookie = st.handshakeToken != ""
	}
	if n, err := strconv.Atoi(get(cookieRedirectCount)); err == nil && n > 0 {
		st.redirectCount = n
	}
	return st
}

// cookieValue is r.Cookie(name).Value without parsing and allocating every
// cookie of the request: the cookie path runs on each asset of a page.
func cookieValue(r *http.Request, name string) string {
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
func (h *Handler) useSuffixed(st *cookieState, session, uat, sfxSession, sfxUAT string) bool {
	if session != "" {
		u, err := st.peek(session)
		if err != nil || u.Issuer == "" {
			return false // malformed plain cookie: let it sign the request out
		}
		host := strings.TrimPrefix(strings.TrimPrefix(u.Issuer, "https://"), "http://")
		if host != h.instance.FrontendAPI {
			return true // the plain cookie belongs to another instance
		}
	}
	if sfxUAT == "" && sfxSession == "" {
		return false
	}
	plain, _ := st.peek(session)
	sfx, sfxErr := st.peek(sfxSession)
	if sfxUAT != "0" && uat != "0" && plain.IssuedAt > sfx.IssuedAt {
		return false // both signed in, the plain one newer
	}
	if sfxUAT == "0" && uat != "0" {
		return false // plain cookies are written by old and new clerk-js alike
	}
	if !h.instance.Production && sfxSession != "" && sfxErr == nil && sfxUAT != "0" && uat == "0" &&
		sfx.Expiry <= time.Now().Unix() {
		return false // development: suffixed cookies may be stale after a downgrade
	}
	return true
}

// serveCookies is @clerk/backend's authenticateRequestWithTokenInCookie:
// resolve a handshake that just came back, else decide between signed in,
// signed out and "ask Clerk" (a handshake, for page loads only).
func (h *Handler) serveCookies(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	repl *caddy.Replacer, holder *claimsHolder, st *cookieState) error {
	if (st.nonce != "" || st.handshakeToken != "") && isPageLoad(r) {
		if done, err := h.resolveHandshake(w, r, next, repl, holder, st); done {
			return err
		}
	}
	// Development instances know a browser by its dev-browser token. Only a
	// page load can fetch one, so, unlike @clerk/backend, other requests
	// skip these two steps and get the reason that fits them.
	devPage := !h.instance.Production && isPageLoad(r)
	switch {
	case devPage && st.devBrowserInQuery:
		return h.maybeHandshake(w, r, next, repl, st, reasonDevBrowserSync, nil)
	case devPage && st.devBrowser == "":
		return h.maybeHandshake(w, r, next, repl, st, reasonDevBrowserMissing, nil)
	case st.clientUAT == 0 && st.session == "":
		return h.refuse(w, r, next, repl, verifier.ReasonSessionTokenAndUATMissing, nil, st)
	case st.clientUAT == 0:
		return h.maybeHandshake(w, r, next, repl, st, reasonSessionWithoutClientUAT, nil)
	case st.session == "":
		return h.maybeHandshake(w, r, next, repl, st, reasonClientUATWithoutSession, nil)
	}
	peek, err := st.peek(st.session)
	if err != nil {
		return h.refuse(w, r, next, repl, verifier.ReasonOf(err), err, st)
	}
	if peek.IssuedAt < st.clientUAT {
		// Signed in or out elsewhere since this token was minted.
		return h.maybeHandshake(w, r, next, repl, st, reasonIATBeforeClientUAT, nil)
	}
	claims, err := h.verifier.Verify(r.Context(), st.session)
	if err != nil {
		if verifier.IsKeysUnavailable(err) {
			return h.keysUnavailable(w, r, next, repl, err)
		}
		switch verifier.KindOf(err) {
		case verifier.KindExpired:
			reason := reasonExpiredNoRefreshCookie
			if r.Method != http.MethodGet {
				reason = reasonExpiredNonGet
			}
			return h.maybeHandshake(w, r, next, repl, st, reason, err)
		case verifier.KindNotYetValid:
			return h.maybeHandshake(w, r, next, repl, st, reasonSessionNBF, err)
		case verifier.KindIATInFuture:
			return h.maybeHandshake(w, r, next, repl, st, reasonSessionIATInFuture, err)
		}
		return h.refuse(w, r, next, repl, verifier.ReasonOf(err), err, st)
	}
	return h.signedIn(w, r, next, repl, holder, claims, true)
}

// maybeHandshake sends a page load to Clerk's Frontend API, which knows the
// browser by its own cookie (or dev-browser token) and sends it back with
// fresh cookies. Anything that is not a page load cannot follow that
// round trip and is refused with the reason instead.
func (h *Handler) maybeHandshake(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	repl *caddy.Replacer, st *cookieState, reason verifier.Reason, err error) error {
	if !isPageLoad(r) {
		return h.refuse(w, r, next, repl, reason, err, st)
	}
	if st.redirectCount >= maxRedirects {
		h.logger.Warn("Clerk handshake redirect loop: treating the request as signed out; "+
			"the keys probably do not match the Clerk instance (publishable_key, secret_key, jwt_key)",
			zap.String("reason", string(reason)), zap.String("uri", r.URL.Path))
		return h.refuse(w, r, next, repl, reason, err, st)
	}
	repl.Set("clerk.reason", string(reason))
	h.log(zapcore.DebugLevel, r, "handshake with Clerk", reason, err)
	countRequest(outcomeHandshake, reason)
	metrics.handshakes.WithLabelValues("started").Inc()
	hdr := w.Header()
	// The counter lives two seconds: only a tight loop reaches the limit.
	hdr.Add("Set-Cookie", cookieRedirectCount+"="+strconv.Itoa(st.redirectCount+1)+"; SameSite=Lax; HttpOnly; Max-Age=2")
	// Chrome caches redirects of inactive tabs; a cached one would loop.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Location", h.handshakeURL(r, st, reason))
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

func (h *Handler) handshakeURL(r *http.Request, st *cookieState, reason verifier.Reason) string {
	var b strings.Builder
	b.WriteString(h.fapi)
	b.WriteString("/v1/client/handshake?redirect_url=")
	b.WriteString(url.QueryEscape(pageURL(r)))
	b.WriteString("&__clerk_api_version=" + clerkAPIVersion)
	b.WriteString("&suffixed_cookies=" + strconv.FormatBool(st.suffixed))
	b.WriteString("&__clerk_hs_reason=" + url.QueryEscape(string(reason)))
	if h.bapi != nil {
		// Without a secret key a nonce cannot be redeemed: Clerk then sends
		// its signed handshake token instead.
		b.WriteString("&format=nonce")
	}
	if !h.instance.Production && st.devBrowser != "" {
		b.WriteString("&" + queryDevBrowser + "=" + url.QueryEscape(st.devBrowser))
	}
	return b.String()
}

// resolveHandshake applies what Clerk sent back. done is false when the
// payload could not be had or did not verify: the request then goes on as
// if there had been no handshake, and the loop guard bounds the retries.
func (h *Handler) resolveHandshake(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	repl *caddy.Replacer, holder *claimsHolder, st *cookieState) (done bool, err error) {
	_, asCookie := st.carrier()
	inQuery := !asCookie
	fail := func(msg string, err error) (bool, error) {
		h.log(zapcore.WarnLevel, r, msg, verifier.ReasonOf(err), err)
		h.clearHandshakeCookie(w, st, nil)
		metrics.handshakes.WithLabelValues("failed").Inc()
		if inQuery {
			// Never pass on a URL holding a handshake credential: Caddy's
			// error and proxy logs record request URIs.
			return true, reloadClean(w, r)
		}
		return false, nil
	}
	directives, session, err := h.handshakeDirectives(r.Context(), st)
	if err != nil {
		return fail("Clerk handshake could not be resolved", err)
	}
	var claims *verifier.Claims
	if session != "" {
		if claims, err = h.verifier.Verify(r.Context(), session); err != nil {
			return fail("Clerk handshake returned a session token that does not verify", err)
		}
	}
	hdr := w.Header()
	for _, d := range directives {
		hdr.Add("Set-Cookie", d)
	}
	h.clearHandshakeCookie(w, st, directives)
	metrics.handshakes.WithLabelValues("resolved").Inc()
	if !h.instance.Production || inQuery {
		// Development hands the payload over in the URL (production in a
		// cookie): reload it clean, so it never reaches logs or upstreams.
		countRequest(outcomeHandshake, "")
		return true, reloadClean(w, r)
	}
	if claims == nil {
		return true, h.refuse(w, r, next, repl, verifier.ReasonSessionTokenMissing, nil, st)
	}
	return true, h.signedIn(w, r, next, repl, holder, claims, true)
}

// reloadClean sends the browser to the same page without Clerk's
// handshake parameters.
func reloadClean(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", pageURL(r))
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

// handshakeDirectives redeems the nonce at the Backend API, or verifies
// the legacy handshake token with the instance keys, and returns the
// well-formed Set-Cookie directives and the session token among them.
func (h *Handler) handshakeDirectives(ctx context.Context, st *cookieState) ([]string, string, error) {
	var raw []string
	var err error
	if st.nonce != "" {
		if h.bapi == nil {
			return nil, "", errors.New("a handshake nonce can only be redeemed with secret_key")
		}
		if !validNonce(st.nonce) {
			return nil, "", errors.New("the handshake nonce is malformed")
		}
		ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
		raw, err = h.bapi.HandshakePayload(ctx, st.nonce)
	} else {
		raw, err = h.verifier.VerifyHandshake(ctx, st.handshakeToken)
	}
	if err != nil {
		return nil, "", err
	}
	directives := raw[:0:0]
	session := ""
	for _, d := range raw {
		name, value, ok := parseDirective(d)
		if !ok {
			continue
		}
		directives = append(directives, d)
		if strings.HasPrefix(name, cookieSession) {
			session = value
		}
	}
	return directives, session, nil
}

// clearHandshakeCookie expires a handshake nonce or token that came as a
// cookie, unless Clerk's directives already do: left alone, every page
// load for its lifetime would try to redeem it again.
func (h *Handler) clearHandshakeCookie(w http.ResponseWriter, st *cookieState, directives []string) {
	name, asCookie := st.carrier()
	if !asCookie {
		return
	}
	for _, d := range directives {
		if n, _, _ := parseDirective(d); n == name {
			return
		}
	}
	w.Header().Add("Set-Cookie", name+"=; Path=/; Max-Age=0")
}

// parseDirective checks a Set-Cookie value from Clerk before it is passed
// on: a cookie name, no control characters, a sane size.
func parseDirective(d string) (name, value string, ok bool) {
	if len(d) == 0 || len(d) > 8<<10 {
		return "", "", false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c < 0x20 || c == 0x7f {
			return "", "", false
		}
	}
	pair, _, _ := strings.Cut(d, ";")
	name, value, found := strings.Cut(pair, "=")
	name = strings.TrimSpace(name)
	if !found || name == "" || strings.ContainsAny(name, " \t\"(),/:<>?@[\\]{}") {
		return "", "", false
	}
	return name, strings.TrimSpace(value), true
}

func validNonce(n string) bool {
	if len(n) > 256 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// pageURL is the absolute URL of the request without Clerk's handshake and
// dev-browser query parameters: where the browser should land.
func pageURL(r *http.Request) string {
	u := currentURL(r)
	path, query, found := strings.Cut(u, "?")
	if !found {
		return u
	}
	var kept []string
	for _, part := range strings.Split(query, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			switch k {
			case queryDevBrowser, queryLegacyDevBrowser, queryHandshake, queryHandshakeNonce, queryHandshakeHelp:
				continue
			}
		}
		kept = append(kept, part)
	}
	if len(kept) == 0 {
		return path
	}
	return path + "?" + strings.Join(kept, "&")
}

// signOut ends the Clerk session: revoke it at the Backend API (else the
// Account Portal, which still knows the client, would sign the browser
// straight back in), expire the session cookies, go to AfterSignOutURL.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	repl *caddy.Replacer) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("clerk: sign-out takes GET or POST"))
	}
	if r.Method == http.MethodPost && h.csrf() && !h.sameOriginRequest(r) {
		repl.Set("clerk.reason", reasonCSRF)
		return caddyhttp.Error(http.StatusForbidden, errors.New("clerk: "+reasonCSRF))
	}
	st := h.readCookies(r)
	tokens := st.sessions
	if t := headerToken(r); t != "" {
		tokens = append(tokens, t)
	}
	ctx, cancel := context.WithTimeout(r.Context(), handshakeTimeout)
	defer cancel()
	if (st.nonce != "" || st.handshakeToken != "") && h.fapi != "" {
		// Back from the handshake below, with a fresh session token.
		if _, s, err := h.handshakeDirectives(ctx, &st); err != nil {
			h.log(zapcore.WarnLevel, r, "sign-out: the handshake could not be resolved", verifier.ReasonOf(err), err)
		} else if s != "" {
			tokens = append(tokens, s)
		}
		h.clearHandshakeCookie(w, &st, nil)
	}
	revoked := 0
	seen := map[string]bool{}
	for _, t := range tokens {
		c, err := h.lenient.Verify(ctx, t)
		if err != nil {
			h.log(zapcore.WarnLevel, r, "sign-out: a session token does not verify; it names no session to revoke",
				verifier.ReasonOf(err), err)
			continue
		}
		if c.SessionID == "" || seen[c.SessionID] {
			continue
		}
		seen[c.SessionID] = true
		if _, err := h.bapi.RevokeSession(ctx, c.SessionID); err != nil && !bapi.IsNotFound(err) {
			h.logger.Warn("sign-out: could not revoke the Clerk session; it stays signed in at Clerk",
				zap.String("session_id", c.SessionID), zap.Error(err))
			continue
		}
		revoked++
		h.logger.Info("signed out", zap.String("session_id", c.SessionID), zap.String("user_id", c.Subject))
	}
	if revoked == 0 && len(seen) == 0 && st.clientUAT > 0 && h.fapi != "" && r.Method == http.MethodGet &&
		st.nonce == "" && st.handshakeToken == "" {
		// Signed in at Clerk but no session cookie here to name the
		// session: fetch one through the handshake, then come back.
		return h.maybeHandshake(w, r, next, repl, &st, reasonClientUATWithoutSession, nil)
	}
	hdr := w.Header()
	suffixes := []string{""}
	if h.instance != nil {
		suffixes = append(suffixes, "_"+h.instance.CookieSuffix)
	}
	for _, sfx := range suffixes {
		hdr.Add("Set-Cookie", cookieSession+sfx+"=; Path=/; Max-Age=0")
		hdr.Add("Set-Cookie", cookieClientUAT+sfx+"=0; Path=/; Max-Age=315360000; SameSite=Lax")
	}
	countRequest(outcomeSignOut, "")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Location", h.AfterSignOutURL)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}
