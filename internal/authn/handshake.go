package authn

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

const (
	// clerkAPIVersion is the version the handshake asks for, as clerk-sdk-go v2.
	clerkAPIVersion = "2025-04-10"
	// maxRedirects ends a handshake loop: Clerk's guard, three round trips.
	maxRedirects = 3
	// RedeemTimeout bounds redeeming a nonce at the Backend API.
	RedeemTimeout = 5 * time.Second
)

// cookieSession is @clerk/backend's authenticateRequestWithTokenInCookie:
// resolve a handshake that just came back, else decide between signed in,
// signed out and "ask Clerk" (a handshake, for page loads only).
func (a *Authenticator) cookieSession(ctx context.Context, req Request, c *cookies) State {
	if (c.nonce != "" || c.handshakeToken != "") && IsPageLoad(req.HTTP) {
		return a.returned(ctx, req, c)
	}
	if st, ok := a.syncFlows(req, c); ok {
		return st
	}
	return a.cookieDecision(ctx, req, c)
}

// returned is cookieSession for a page load a handshake came back to. Its
// own function: its States would otherwise be in the frame of every
// cookie request, on the way to the token cache.
func (a *Authenticator) returned(ctx context.Context, req Request, c *cookies) State {
	back, done := a.resolve(ctx, req, c)
	if done {
		return back
	}
	// back: the side effects of a handshake that did not resolve
	if st, ok := a.syncFlows(req, c); ok {
		return merge(back, st)
	}
	return merge(back, a.cookieDecision(ctx, req, c))
}

// merge puts the side effects of an unresolved handshake before st's.
func merge(back, st State) State {
	if back.HandshakeResult == "" {
		return st
	}
	st.SetCookies = append(back.SetCookies, st.SetCookies...)
	st.HandshakeResult, st.HandshakeErr = back.HandshakeResult, back.HandshakeErr
	return st
}

func (a *Authenticator) cookieDecision(ctx context.Context, req Request, c *cookies) State {
	r := req.HTTP
	// Development instances know a browser by its dev-browser token. Only a
	// page load can fetch one, so, unlike @clerk/backend, other requests
	// skip these two steps and get the reason that fits them.
	devPage := a.development() && IsPageLoad(r)
	switch {
	case devPage && c.devBrowserInQuery:
		return a.handshake(req, c, ReasonDevBrowserSync, nil)
	case devPage && c.devBrowser == "":
		return a.handshake(req, c, ReasonDevBrowserMissing, nil)
	case c.clientUAT == 0 && c.session == "":
		return a.signedOut(req, ReasonSessionTokenAndUATMissing, nil, c)
	case c.clientUAT == 0:
		return a.handshake(req, c, ReasonSessionWithoutClientUAT, nil)
	case c.session == "":
		return a.handshake(req, c, ReasonClientUATWithoutSession, nil)
	}
	peek, err := a.peek(ctx, c, c.session)
	if err != nil {
		return a.signedOut(req, verifier.ReasonOf(err), err, c)
	}
	if peek.IssuedAt < c.clientUAT {
		// Signed in or out elsewhere since this token was minted.
		return a.handshake(req, c, ReasonIATBeforeClientUAT, nil)
	}
	if claims := c.cachedClaims(c.session); claims != nil {
		return a.cookieSignedIn(req, c, claims) // verified before: nothing to decode
	}
	claims, err := a.cfg.Verifier.VerifyAt(ctx, c.session, c.at, nil)
	if err != nil {
		if verifier.IsKeysUnavailable(err) {
			return unavailableKeys(err)
		}
		switch verifier.KindOf(err) {
		case verifier.KindExpired:
			reason := ReasonExpiredNoRefreshCookie
			if r.Method != http.MethodGet {
				reason = ReasonExpiredNonGet
			}
			return a.handshake(req, c, reason, err)
		case verifier.KindNotYetValid:
			return a.handshake(req, c, ReasonSessionNBF, err)
		case verifier.KindIATInFuture:
			return a.handshake(req, c, ReasonSessionIATInFuture, err)
		case verifier.KindPending:
			return a.pending(req, c, nil, true)
		}
		return a.signedOut(req, verifier.ReasonOf(err), err, c)
	}
	return a.cookieSignedIn(req, c, claims)
}

// handshake sends a page load to Clerk's Frontend API, which knows the
// browser by its own cookie (or dev-browser token) and sends it back with
// fresh cookies. Anything that is not a page load cannot follow that
// round trip and is refused with the reason instead.
func (a *Authenticator) handshake(req Request, c *cookies, reason Reason, err error) State {
	if !IsPageLoad(req.HTTP) {
		return a.signedOut(req, reason, err, c)
	}
	return a.counted(req, c, reason, err, func() string { return a.handshakeURL(req, c, reason) })
}

// counted is a redirect that counts towards the loop guard: to the
// handshake, or one of the sync redirects.
func (a *Authenticator) counted(req Request, c *cookies, reason Reason, err error, location func() string) State {
	if c.redirectCount >= maxRedirects {
		st := a.signedOut(req, reason, err, c)
		st.LoopStopped = true
		return st
	}
	return State{
		Status: Handshake, Reason: reason, Err: err, NoStore: true, Location: location(),
		// The counter lives two seconds: only a tight loop reaches the limit.
		SetCookies: []string{cookieRedirectCount + "=" + strconv.Itoa(c.redirectCount+1) + "; SameSite=Lax; HttpOnly; Max-Age=2"},
	}
}

func (a *Authenticator) handshakeURL(req Request, c *cookies, reason Reason) string {
	var b strings.Builder
	b.WriteString(a.cfg.FrontendAPI)
	b.WriteString("/v1/client/handshake?redirect_url=")
	b.WriteString(queryEscape(PageURL(req)))
	b.WriteString("&__clerk_api_version=" + clerkAPIVersion)
	b.WriteString("&suffixed_cookies=" + strconv.FormatBool(c.suffixed))
	b.WriteString("&__clerk_hs_reason=" + queryEscape(string(reason)))
	if a.cfg.Redeemer != nil {
		// Without a secret key a nonce cannot be redeemed: Clerk then sends
		// its signed handshake token instead.
		b.WriteString("&format=nonce")
	}
	if a.development() && c.devBrowser != "" {
		b.WriteString("&" + queryDevBrowser + "=" + queryEscape(c.devBrowser))
	}
	b.WriteString(a.orgQuery(req))
	return b.String()
}

// resolve applies what Clerk sent back. done is false when the payload
// could not be had or did not verify: the request then goes on as if there
// had been no handshake (with st's side effects), and the loop guard
// bounds the retries.
func (a *Authenticator) resolve(ctx context.Context, req Request, c *cookies) (st State, done bool) {
	_, asCookie := c.carrier()
	inQuery := !asCookie
	fail := func(err error) (State, bool) {
		st := State{Status: Reload, HandshakeResult: HandshakeFailed, HandshakeErr: err, SetCookies: clearCarrier(c, nil)}
		if inQuery {
			// Never pass on a URL holding a handshake credential: Caddy's
			// error and proxy logs record request URIs.
			st.Location, st.NoStore = PageURL(req), true
			return st, true
		}
		return st, false
	}
	directives, session, err := a.redeem(ctx, c)
	if err != nil {
		return fail(err)
	}
	var claims *verifier.Claims
	pending := false // the Verifier refuses pending sessions itself
	if session != "" {
		if claims, err = a.cfg.Verifier.Verify(ctx, session); err != nil {
			if pending = verifier.KindOf(err) == verifier.KindPending; !pending {
				return fail(errVerifyReturned{err})
			}
		}
	}
	effects := append(directives, clearCarrier(c, directives)...)
	if a.development() || inQuery || req.Forwarded {
		// Development hands the payload over in the URL (production in a
		// cookie): reload it clean, so it never reaches logs or upstreams.
		// A front proxy drops a 2xx answer's Set-Cookie: the cookies go in
		// the redirect, which it hands to the browser.
		return State{Status: Reload, HandshakeResult: HandshakeResolved, SetCookies: effects,
			Location: PageURL(req), NoStore: true, Claims: claims}, true // Claims: for organizations, which drops them
	}
	switch {
	case pending:
		st = a.pending(req, c, nil, true)
	case claims == nil:
		st = a.signedOut(req, ReasonSessionTokenMissing, nil, c)
	default:
		st = a.signedIn(req, claims, c, true)
	}
	st.SetCookies = append(effects, st.SetCookies...)
	st.HandshakeResult = HandshakeResolved
	return st, true
}

// errVerifyReturned marks a handshake whose session token did not verify.
type errVerifyReturned struct{ err error }

func (e errVerifyReturned) Error() string {
	return "the handshake returned a session token that does not verify: " + e.err.Error()
}
func (e errVerifyReturned) Unwrap() error { return e.err }

// redeem trades the nonce at the Backend API, or verifies the legacy
// handshake token with the instance keys, and returns the well-formed
// Set-Cookie directives and the session token among them.
func (a *Authenticator) redeem(ctx context.Context, c *cookies) ([]string, string, error) {
	var raw []string
	var err error
	if c.nonce != "" {
		if a.cfg.Redeemer == nil {
			return nil, "", errors.New("a handshake nonce can only be redeemed with secret_key")
		}
		if !validNonce(c.nonce) {
			return nil, "", errors.New("the handshake nonce is malformed")
		}
		ctx, cancel := context.WithTimeout(ctx, RedeemTimeout)
		defer cancel()
		raw, err = a.cfg.Redeemer.HandshakePayload(ctx, c.nonce)
	} else {
		raw, err = a.cfg.Verifier.VerifyHandshake(ctx, c.handshakeToken)
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

// clearCarrier expires a handshake nonce or token that came as a cookie,
// unless Clerk's directives already do: left alone, every page load for its
// lifetime would try to redeem it again.
func clearCarrier(c *cookies, directives []string) []string {
	name, asCookie := c.carrier()
	if !asCookie {
		return nil
	}
	for _, d := range directives {
		if n, _, _ := parseDirective(d); n == name {
			return nil
		}
	}
	return []string{name + "=; Path=/; Max-Age=0"}
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
