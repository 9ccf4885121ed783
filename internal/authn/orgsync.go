package authn

import (
	"slices"
	"strings"
)

// queryOrganizationID is the handshake parameter that asks Clerk's
// Frontend API to activate an organization (id or slug; "" for the
// personal account).
const queryOrganizationID = "organization_id"

// activeOrg is the organization a credential acts in: a session's active
// organization, an API key's owning organization (a machine has no slug).
type activeOrg struct{ id, slug string }

func activeOrgOf(st *State) activeOrg {
	switch {
	case st.Claims != nil:
		return activeOrg{st.Claims.OrgID, st.Claims.OrgSlug}
	case st.Machine != nil:
		return activeOrg{id: st.Machine.OrgID()}
	}
	return activeOrg{}
}

// holds: the credential acts in the tenant t names, compared exactly, as
// @clerk/backend does (the URL match itself ignores case).
func (o activeOrg) holds(t OrgTarget) bool {
	switch t.Kind {
	case TargetOrg:
		if t.ID != "" {
			return t.ID == o.id
		}
		return t.Slug == o.slug && o.slug != ""
	case TargetPersonal:
		return o.id == ""
	}
	return true
}

// isOneOf: require_org; values starting org_ are ids, others slugs.
func (o activeOrg) isOneOf(required []string) bool {
	return o.id != "" && slices.ContainsFunc(required, func(v string) bool {
		if strings.HasPrefix(v, "org_") {
			return v == o.id
		}
		return v == o.slug
	})
}

// orgQuery is the organization_id parameter of a handshake from req: the
// tenant its URL names, on every handshake whatever its reason (as
// @clerk/backend does), so that the session Clerk sends back is already in
// it. A URL whose tenant is ambiguous asks for nothing.
func (a *Authenticator) orgQuery(req Request) string {
	if a.cfg.OrgSync == nil {
		return ""
	}
	t, ambiguous := a.cfg.OrgSync.Target(req.HTTP.URL)
	if t.Kind == TargetNone || ambiguous {
		return ""
	}
	return "&" + queryOrganizationID + "=" + queryEscape(t.Param())
}

// organizations applies organization_sync and require_org to a verified
// credential: an upstream never sees a request whose identity acts in
// another tenant than the one its URL names. A browser's page load is sent
// through the handshake to switch its session's active organization (and
// comes back as the next request); everything else, and a page load the
// handshake could not fix, gets 403.
func (a *Authenticator) organizations(req Request, st *State) {
	if a.cfg.OrgSync != nil || len(a.cfg.RequireOrg) > 0 {
		*st = a.orgDecision(req, *st)
	}
	if st.Status == Reload {
		st.Claims = nil // the reloaded request decides on its own
	}
}

func (a *Authenticator) orgDecision(req Request, st State) State {
	resolved := st.HandshakeResult == HandshakeResolved
	switch {
	case st.Status == SignedIn:
	case st.Status == Reload && resolved && st.Claims != nil:
		// Back from the handshake with a session: its organization is
		// known now, so a refusal needs no further round trip.
	default:
		return st
	}
	org := activeOrgOf(&st)
	var t OrgTarget
	if a.cfg.OrgSync != nil {
		var ambiguous bool
		if t, ambiguous = a.cfg.OrgSync.Target(req.HTTP.URL); ambiguous {
			return forbid(st, ReasonActiveOrgMismatch)
		}
	}
	switch {
	case !org.holds(t):
		// Every handshake from this URL asked for its tenant: one that
		// comes back without it will not get it.
		if resolved {
			return forbid(st, ReasonActiveOrgMismatch)
		}
		return a.activate(req, st, "", ReasonActiveOrgMismatch)
	case len(a.cfg.RequireOrg) > 0 && !org.isOneOf(a.cfg.RequireOrg):
		if t.Kind != TargetNone {
			// The URL's tenant holds but is not one of require_org's:
			// activating another would contradict the URL.
			return forbid(st, ReasonOrganizationRequired)
		}
		if st.Status == Reload {
			return st // the reloaded page load asks for it
		}
		// A handshake that came back may not have asked for it (one
		// renewing the token does not): ask, within the loop guard.
		return a.activate(req, st, a.cfg.RequireOrg[0], ReasonOrganizationRequired)
	}
	return st
}

// activate sends a browser's page load through the handshake with
// organization_id: the URL's tenant (orgQuery adds it), or want when the
// URL names none. Anything that cannot follow it, or has looped (Clerk's
// organization guard, redirect count >= 3), is refused with reason.
func (a *Authenticator) activate(req Request, st State, want string, reason Reason) State {
	if st.Status != SignedIn || st.Claims == nil || !st.FromCookie ||
		st.Claims.Status == "pending" || a.cfg.FrontendAPI == "" || !IsPageLoad(req.HTTP) {
		return forbid(st, reason)
	}
	var c cookies
	a.readCookies(req.HTTP, a.at(req), &c)
	if c.redirectCount >= maxRedirects {
		st = forbid(st, reason)
		st.OrgLoopStopped = true
		return st
	}
	hs := a.handshake(req, &c, ReasonActiveOrgMismatch, nil)
	if want != "" {
		hs.Location += "&" + queryOrganizationID + "=" + queryEscape(want)
	}
	hs.SetCookies = append(st.SetCookies, hs.SetCookies...)
	hs.HandshakeResult, hs.HandshakeErr = st.HandshakeResult, st.HandshakeErr
	return hs
}

// forbid refuses a verified credential; the cookies a handshake just set
// still go to the browser.
func forbid(st State, reason Reason) State {
	st.Status, st.Reason, st.Location = Forbidden, reason, ""
	st.NoStore = st.NoStore || st.HandshakeResult != ""
	return st
}
