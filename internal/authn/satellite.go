package authn

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// Multi-domain query parameters (@clerk/backend constants).
const (
	querySynced      = "__clerk_synced" // "false": needs sync, "true": done
	queryRedirectURL = "__clerk_redirect_url"
)

// syncFlows is §9.1's multi-domain sync, before the cookie rules: a
// satellite's page load that has not synced yet, and a development
// primary answering a satellite's sync. ok is false when neither applies.
func (a *Authenticator) syncFlows(req Request, c *cookies) (st State, ok bool) {
	r := req.HTTP
	var q url.Values
	if strings.Contains(r.URL.RawQuery, "__clerk") {
		q = r.URL.Query()
	}
	if a.cfg.Satellite {
		// Only a top-level navigation, as @clerk/backend: not iframes, not
		// Accept-based guesses.
		if r.Method != http.MethodGet || field(r, "Sec-Fetch-Dest") != "document" || q.Get(querySynced) == "true" {
			return State{}, false
		}
		hasCookies := c.session != "" || c.clientUAT > 0
		needsSync := q.Get(querySynced) == "false"
		switch {
		case !hasCookies && !needsSync:
			// Never signed in here and not back from signing in: no round
			// trip to Clerk on every anonymous page load.
			return a.signedOut(req, ReasonSessionTokenAndUATMissing, nil, c), true
		case !needsSync:
			return State{}, false // cookies of its own: the usual rules
		case a.development():
			// Development satellites sync through the primary's sign-in
			// page, which sends the browser back with its dev-browser token.
			loc := a.cfg.SignInURL + sep(a.cfg.SignInURL) + queryRedirectURL + "=" + queryEscape(PageURL(req))
			return a.redirect(req, c, ReasonSatelliteNeedsSyncing, loc), true
		}
		return a.handshake(req, c, ReasonSatelliteNeedsSyncing, nil), true
	}
	if target := q.Get(queryRedirectURL); target != "" && a.development() && IsPageLoad(r) {
		if back, ok := a.syncTarget(req, target); ok {
			if c.devBrowser != "" {
				back = withQueryParam(back, queryDevBrowser, c.devBrowser)
			}
			return a.redirect(req, c, ReasonPrimaryRespondsToSyncing, withQueryParam(back, querySynced, "true").String()), true
		}
	}
	return State{}, false
}

// syncTarget accepts where a development primary sends a synced browser
// only if it is this site or an origin the site trusts (authorized_parties,
// csrf_trusted_origins): anything else would make the primary an open
// redirect that also hands out the browser's dev-browser token.
func (a *Authenticator) syncTarget(req Request, target string) (*url.URL, bool) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || !validHost(u.Host) {
		return nil, false
	}
	origin := u.Scheme + "://" + u.Host
	if strings.EqualFold(origin, OriginOf(CurrentURL(req))) {
		return u, true
	}
	for _, o := range a.cfg.TrustedOrigins {
		if strings.EqualFold(origin, o) {
			return u, true
		}
	}
	return nil, false
}

// redirect is handshake's state for a redirect that is not to the Frontend
// API (the sync redirects), with the same counter and loop guard.
func (a *Authenticator) redirect(req Request, c *cookies, reason Reason, loc string) State {
	return a.counted(req, c, reason, nil, func() string { return loc })
}

// cookieSignedIn is a session cookie that verified. On a primary domain a
// navigation from another site (a satellite's link, say) first goes
// through the handshake, so a sign-out or switch made on the satellite
// shows here too (§9.1, @clerk/backend's primary-domain-cross-origin-sync).
func (a *Authenticator) cookieSignedIn(req Request, c *cookies, claims *verifier.Claims) State {
	if !a.cfg.Satellite && a.crossOriginNavigation(req, c) {
		return a.handshake(req, c, ReasonPrimaryCrossOriginSync, nil)
	}
	return a.signedIn(req, claims, c, true)
}

func (a *Authenticator) crossOriginNavigation(req Request, c *cookies) bool {
	r := req.HTTP
	referer := field(r, "Referer")
	if referer == "" || r.Method != http.MethodGet || field(r, "Sec-Fetch-Dest") != "document" || c.redirectCount != 0 {
		return false // most page loads: nothing to parse
	}
	ref := OriginOf(referer)
	return ref != "" && !strings.EqualFold(ref, OriginOf(CurrentURL(req))) && !a.clerkOrigin(ref)
}

// clerkOrigin: a referrer that is Clerk itself (the Frontend API, the
// Account Portal, the sign-in page) brings a browser back, not from
// another domain of the app.
func (a *Authenticator) clerkOrigin(origin string) bool {
	known := []string{OriginOf(a.cfg.FrontendAPI), OriginOf(a.cfg.SignInURL)}
	if inst := a.cfg.Instance; inst != nil {
		known = append(known, inst.FrontendAPIURL(), inst.AccountsURL())
	}
	for _, k := range known {
		if k != "" && strings.EqualFold(origin, k) {
			return true
		}
	}
	if a.development() {
		host := strings.ToLower(origin[strings.Index(origin, "://")+3:])
		return strings.HasSuffix(host, ".accounts.dev") || host == "accounts.lclclerk.com" || strings.HasSuffix(host, ".accountsstage.dev")
	}
	return false
}

// withQueryParam is u with name=value in its query, replacing any earlier
// name and keeping the other parameters as they were written.
func withQueryParam(u *url.URL, name, value string) *url.URL {
	v := *u
	var kept []string
	if v.RawQuery != "" {
		for _, p := range strings.Split(v.RawQuery, "&") {
			k, _, _ := strings.Cut(p, "=")
			if k, err := url.QueryUnescape(k); err == nil && k == name {
				continue
			}
			kept = append(kept, p)
		}
	}
	v.RawQuery = strings.Join(append(kept, url.QueryEscape(name)+"="+url.QueryEscape(value)), "&")
	return &v
}

// satelliteReturn is the URL a satellite's sign-in sends the browser back
// to: with __clerk_synced=false, so that it syncs on arrival.
func satelliteReturn(page string) string {
	u, err := url.Parse(page)
	if err != nil {
		return page
	}
	return withQueryParam(u, querySynced, "false").String()
}

// ownIssuer: a token minted by the Frontend API this site uses instead of
// the publishable key's (frontend_api_proxy, a satellite's clerk.<domain>,
// frontend_api_url) belongs to the instance too, for the choice between
// plain and suffixed cookies; otherwise the plain cookies its handshake
// writes would look like another instance's and be passed over.
func (a *Authenticator) ownIssuer(iss string) bool {
	return a.cfg.FrontendAPI != "" && strings.TrimRight(iss, "/") == a.cfg.FrontendAPI
}
