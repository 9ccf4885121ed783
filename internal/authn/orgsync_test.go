package authn

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// withOrgs rebuilds e's Authenticator with organization_sync
// (/orgs/:slug…, /o/:id…, /me…) and require_org.
func (e *env) withOrgs(require ...string) *env {
	e.t.Helper()
	s, err := NewOrgSync([]string{"/orgs/:slug", "/orgs/:slug/(.*)", "/o/:id/(.*)"}, []string{"/me", "/me/(.*)"})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.a.cfg
	cfg.OrgSync, cfg.RequireOrg = s, require
	e.a = New(cfg)
	return e
}

var (
	acme = &clerktest.Membership{ID: "org_acme1", Slug: "acme", Role: "org:admin"}
	beta = &clerktest.Membership{ID: "org_beta2", Slug: "beta", Role: "org:member"}
)

// orgWant is what a case expects: the state, and for a handshake its
// reason and organization_id (absent when orgParam is nil).
type orgWant struct {
	status   Status
	reason   Reason
	orgParam *string
	loop     bool
}

func param(s string) *string { return &s }

func checkOrgState(t *testing.T, st State, w orgWant) {
	t.Helper()
	if st.Status != w.status || st.Reason != w.reason {
		t.Fatalf("got %v %q (%v), want %v %q", st.Status, st.Reason, st.Err, w.status, w.reason)
	}
	if st.OrgLoopStopped != w.loop {
		t.Fatalf("OrgLoopStopped %v, want %v", st.OrgLoopStopped, w.loop)
	}
	if st.Status != Handshake {
		if st.Location != "" && st.Status == Forbidden {
			t.Fatalf("a refusal with a Location %q", st.Location)
		}
		return
	}
	u, err := url.Parse(st.Location)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	switch {
	case w.orgParam == nil && q.Has(queryOrganizationID):
		t.Fatalf("organization_id %q on the handshake, want none", q[queryOrganizationID])
	case w.orgParam != nil && (len(q[queryOrganizationID]) != 1 || q.Get(queryOrganizationID) != *w.orgParam):
		t.Fatalf("organization_id %q, want exactly %q", q[queryOrganizationID], *w.orgParam)
	}
	if !st.NoStore || len(st.SetCookies) == 0 {
		t.Fatalf("handshake without no-store or the redirect counter: %v", st.SetCookies)
	}
}

func TestOrganizationSync(t *testing.T) {
	e := newEnv(t, false, true).withOrgs()
	inAcme := e.token(clerktest.TokenOptions{Org: acme})
	inBeta := e.token(clerktest.TokenOptions{Org: beta})
	personal := e.token(clerktest.TokenOptions{NoOrg: true})
	expiredAcme := e.token(clerktest.TokenOptions{Org: acme, IssuedAt: now.Add(-time.Hour)})
	db := "__clerk_db_jwt=dvb_1"
	past := uat(now.Add(-2 * time.Hour))
	page := func(target, tok string, more ...string) Request {
		return Request{HTTP: req("page", target, append([]string{db, "__session=" + tok, past}, more...)...)}
	}
	mismatch := orgWant{status: Forbidden, reason: ReasonActiveOrgMismatch}
	for _, tc := range []struct {
		name string
		r    Request
		want orgWant
	}{
		{"the URL's org is active", page("/orgs/acme/x", inAcme), orgWant{status: SignedIn}},
		{"trailing slash, no rest", page("/orgs/acme/", inAcme), orgWant{status: SignedIn}},
		{"no pattern matches: anything goes", page("/docs", inBeta), orgWant{status: SignedIn}},
		{"another org by slug: activate it", page("/orgs/beta/x", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")}},
		{"slugs compare exactly, the match ignores case", page("/ORGS/Acme/x", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("Acme")}},
		{"another org by id", page("/o/org_beta2/x", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("org_beta2")}},
		{"the URL's org by id", page("/o/org_acme1/x", inAcme), orgWant{status: SignedIn}},
		{"personal account while an org is active", page("/me", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("")}},
		{"personal account, none active", page("/me/settings", personal), orgWant{status: SignedIn}},
		{"an org URL with no org active", page("/orgs/acme/", personal),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("acme")}},
		{"loop counter below the guard", page("/orgs/beta/", inAcme, "__clerk_redirect_count=2"),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")}},
		{"loop guard: 403, not signed in as Clerk does", page("/orgs/beta/", inAcme, "__clerk_redirect_count=3"),
			orgWant{status: Forbidden, reason: ReasonActiveOrgMismatch, loop: true}},
		{"fetch", Request{HTTP: req("fetch", "/orgs/beta/api", "__session="+inAcme, past)}, mismatch},
		{"POST", Request{HTTP: withHeader(req("post", "/orgs/beta/api", "__session="+inAcme, past), "Sec-Fetch-Site", "same-origin")}, mismatch},
		{"POST in the right org", Request{HTTP: withHeader(req("post", "/orgs/acme/api", "__session="+inAcme, past), "Sec-Fetch-Site", "same-origin")},
			orgWant{status: SignedIn}},
		{"Bearer page load: no handshake for a header token", Request{HTTP: withHeader(req("page", "/orgs/beta/"), "Authorization", "Bearer "+inAcme)}, mismatch},
		{"Bearer in the right org", Request{HTTP: withHeader(req("fetch", "/orgs/acme/"), "Authorization", "Bearer "+inAcme)}, orgWant{status: SignedIn}},
		{"expired token on an org URL: the handshake asks for the URL's org", page("/orgs/beta/x", expiredAcme),
			orgWant{status: Handshake, reason: ReasonExpiredNoRefreshCookie, orgParam: param("beta")}},
		{"expired token, URL of the active org: still asks for it", page("/orgs/acme/x", expiredAcme),
			orgWant{status: Handshake, reason: ReasonExpiredNoRefreshCookie, orgParam: param("acme")}},
		{"expired token elsewhere: no organization_id", page("/docs", expiredAcme),
			orgWant{status: Handshake, reason: ReasonExpiredNoRefreshCookie}},
		{"a forged organization_id in the page's query is not forwarded", page("/orgs/beta/?organization_id=org_evil", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")}},
		{"a forged organization_id where no pattern matches", page("/docs?organization_id=org_evil", expiredAcme),
			orgWant{status: Handshake, reason: ReasonExpiredNoRefreshCookie}},
		{"a forged organization_id does not make the right org wrong", page("/orgs/acme/?organization_id=beta", inAcme), orgWant{status: SignedIn}},
		{"dot segments naming another tenant", page("/orgs/acme/../beta/", inAcme), mismatch},
		{"dot segments into a tenant from outside", page("/x/../orgs/beta/", inAcme), mismatch},
		{"encoded slash in the slug", page("/orgs/acme%2F..%2Fbeta/", inAcme), mismatch},
		{"; in the slug", page("/orgs/acme;beta/", inAcme), mismatch},
		{"; in the slug of the active org", page("/orgs/acme;x/", inAcme), mismatch},
		{"signed out: sign-in as ever", Request{HTTP: req("page", "/orgs/acme/", db)}, orgWant{status: SignedOut, reason: ReasonSessionTokenAndUATMissing}},
		{"signed out fetch", Request{HTTP: req("fetch", "/orgs/acme/")}, orgWant{status: SignedOut, reason: ReasonSessionTokenAndUATMissing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkOrgState(t, e.a.state(context.Background(), tc.r), tc.want)
		})
	}

	t.Run("without the handshake a mismatch is 403", func(t *testing.T) {
		cfg := e.a.cfg
		cfg.FrontendAPI = ""
		a := New(cfg)
		checkOrgState(t, a.state(context.Background(), page("/orgs/beta/", inAcme)), mismatch)
	})
}

// TestOrganizationSyncResolved: back from the handshake, the new session's
// organization is known in the same request: still another tenant than
// the URL's (not a member) is 403 at once, with the cookies Clerk sent.
func TestOrganizationSyncResolved(t *testing.T) {
	for _, tc := range []struct {
		name       string
		production bool
		nonce      bool
		org        *clerktest.Membership // the session Clerk sends back
		target     string
		want       Status
	}{
		{"production nonce, activated", true, true, beta, "/orgs/beta/", SignedIn},
		{"production nonce, not a member", true, true, acme, "/orgs/beta/", Forbidden},
		{"production legacy, activated", true, false, beta, "/orgs/beta/", SignedIn},
		{"production legacy, not a member", true, false, acme, "/orgs/beta/", Forbidden},
		{"development nonce, activated: reload", false, true, beta, "/orgs/beta/", Reload},
		{"development nonce, not a member", false, true, acme, "/orgs/beta/", Forbidden},
		{"development legacy, not a member", false, false, acme, "/orgs/beta/", Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.production, tc.nonce).withOrgs()
			dirs := []string{"__session=" + e.token(clerktest.TokenOptions{Org: tc.org}) + "; Path=/", uat(now) + "; Path=/"}
			var carrier string
			if tc.nonce {
				e.redeemer.payloads["n1"] = dirs
				carrier = "__clerk_handshake_nonce=n1"
			} else {
				carrier = "__clerk_handshake=" + e.legacy(dirs...)
			}
			var r Request
			if tc.production {
				r = Request{HTTP: req("page", tc.target, carrier, "__client_uat=1")}
			} else {
				r = Request{HTTP: req("page", tc.target+"?"+carrier, "__clerk_db_jwt=d")}
			}
			st := e.a.state(context.Background(), r)
			if st.Status != tc.want || st.HandshakeResult != HandshakeResolved {
				t.Fatalf("%v %q %q, want %v", st.Status, st.Reason, st.HandshakeResult, tc.want)
			}
			if len(st.SetCookies) < 2 || st.SetCookies[0] != dirs[0] {
				t.Fatalf("Clerk's cookies are not passed on: %q", st.SetCookies)
			}
			switch tc.want {
			case Forbidden:
				if st.Reason != ReasonActiveOrgMismatch || st.Location != "" || !st.NoStore || st.Claims == nil {
					t.Fatalf("%q %q no-store %v", st.Reason, st.Location, st.NoStore)
				}
			case Reload:
				if st.Claims != nil {
					t.Fatal("a reload carries an identity")
				}
			}
		})
	}
}

func TestRequireOrg(t *testing.T) {
	e := newEnv(t, false, true).withOrgs("beta", "org_gamma3")
	inAcme := e.token(clerktest.TokenOptions{Org: acme})
	inBeta := e.token(clerktest.TokenOptions{Org: beta})
	inGamma := e.token(clerktest.TokenOptions{Org: &clerktest.Membership{ID: "org_gamma3", Slug: "gamma"}})
	personal := e.token(clerktest.TokenOptions{NoOrg: true})
	db := "__clerk_db_jwt=dvb_1"
	past := uat(now.Add(-time.Minute))
	page := func(target, tok string, more ...string) Request {
		return Request{HTTP: req("page", target, append([]string{db, "__session=" + tok, past}, more...)...)}
	}
	required := orgWant{status: Forbidden, reason: ReasonOrganizationRequired}
	for _, tc := range []struct {
		name string
		r    Request
		want orgWant
	}{
		{"a required org by slug", page("/docs", inBeta), orgWant{status: SignedIn}},
		{"a required org by id", page("/docs", inGamma), orgWant{status: SignedIn}},
		{"another org: activate the first", page("/docs", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")}},
		{"no org: activate the first", page("/docs", personal),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")}},
		{"loop guard", page("/docs", inAcme, "__clerk_redirect_count=3"),
			orgWant{status: Forbidden, reason: ReasonOrganizationRequired, loop: true}},
		{"fetch", Request{HTTP: req("fetch", "/docs", "__session="+inAcme, past)}, required},
		{"Bearer", Request{HTTP: withHeader(req("page", "/docs"), "Authorization", "Bearer "+inAcme)}, required},
		{"the URL names the active org, which is not required", page("/orgs/acme/", inAcme), required},
		{"the URL names another org: organization_sync first", page("/orgs/beta/", inAcme),
			orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")}},
		{"the personal account cannot hold an org", page("/me", personal), required},
		{"signed out: sign-in as ever", Request{HTTP: req("page", "/docs", db)}, orgWant{status: SignedOut, reason: ReasonSessionTokenAndUATMissing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkOrgState(t, e.a.state(context.Background(), tc.r), tc.want)
		})
	}

	// A handshake that renewed the token did not ask for require_org's
	// organization: coming back without it asks, within the loop guard.
	t.Run("back from the handshake without it: ask for it", func(t *testing.T) {
		p := newEnv(t, true, true).withOrgs("beta")
		dir := "__session=" + p.token(clerktest.TokenOptions{Org: acme}) + "; Path=/"
		p.redeemer.payloads["n1"] = []string{dir}
		p.redeemer.payloads["n2"] = []string{dir}
		st := p.a.state(context.Background(), Request{HTTP: req("page", "/docs", "__clerk_handshake_nonce=n1", "__client_uat=1", "__clerk_redirect_count=1")})
		checkOrgState(t, st, orgWant{status: Handshake, reason: ReasonActiveOrgMismatch, orgParam: param("beta")})
		if st.HandshakeResult != HandshakeResolved || st.SetCookies[0] != dir {
			t.Fatalf("the resolved handshake's cookies are lost: %q %q", st.HandshakeResult, st.SetCookies)
		}
		st = p.a.state(context.Background(), Request{HTTP: req("page", "/docs", "__clerk_handshake_nonce=n2", "__client_uat=1", "__clerk_redirect_count=3")})
		checkOrgState(t, st, orgWant{status: Forbidden, reason: ReasonOrganizationRequired, loop: true})
	})
	t.Run("development: the reload asks for it", func(t *testing.T) {
		d := newEnv(t, false, true).withOrgs("beta")
		d.redeemer.payloads["n1"] = []string{"__session=" + d.token(clerktest.TokenOptions{Org: acme}) + "; Path=/"}
		st := d.a.state(context.Background(), Request{HTTP: req("page", "/docs?__clerk_handshake_nonce=n1", "__clerk_db_jwt=d")})
		if st.Status != Reload || st.Claims != nil {
			t.Fatalf("%v %q", st.Status, st.Reason)
		}
	})
}

// TestOrganizationsMachines: a machine acts in its owning organization (an
// API key of an org_… subject) and in none otherwise; it never carries a
// slug, so a slug URL never confirms it.
func TestOrganizationsMachines(t *testing.T) {
	e := newEnv(t, false, true).withOrgs()
	r := func(target string) Request {
		return Request{HTTP: withHeader(req("fetch", target), "Authorization", "Bearer ak_x")}
	}
	orgKey := &verifier.Machine{Type: verifier.TokenAPIKey, Subject: "org_acme1"}
	userKey := &verifier.Machine{Type: verifier.TokenAPIKey, Subject: "user_1"}
	m2m := &verifier.Machine{Type: verifier.TokenM2M, Subject: "mch_1"}
	for _, tc := range []struct {
		name   string
		m      *verifier.Machine
		target string
		want   Status
	}{
		{"org API key, its id", orgKey, "/o/org_acme1/x", SignedIn},
		{"org API key, another id", orgKey, "/o/org_beta2/x", Forbidden},
		{"org API key, a slug cannot be confirmed", orgKey, "/orgs/acme/", Forbidden},
		{"org API key, personal account", orgKey, "/me", Forbidden},
		{"org API key, no tenant", orgKey, "/docs", SignedIn},
		{"user API key, personal account", userKey, "/me", SignedIn},
		{"user API key, an org", userKey, "/o/org_acme1/x", Forbidden},
		{"M2M, an org", m2m, "/orgs/acme/", Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := State{Status: SignedIn, Machine: tc.m, TokenType: tc.m.Type}
			e.a.organizations(r(tc.target), &st)
			if st.Status != tc.want || (tc.want == Forbidden && st.Reason != ReasonActiveOrgMismatch) {
				t.Fatalf("%v %q, want %v", st.Status, st.Reason, tc.want)
			}
		})
	}
	req := newEnv(t, false, true).withOrgs("org_acme1")
	decide := func(a *Authenticator, m *verifier.Machine) State {
		st := State{Status: SignedIn, Machine: m}
		a.organizations(r("/docs"), &st)
		return st
	}
	if st := decide(req.a, orgKey); st.Status != SignedIn {
		t.Fatalf("require_org by id, the owning org: %v", st.Status)
	}
	if st := decide(req.a, m2m); st.Status != Forbidden || st.Reason != ReasonOrganizationRequired {
		t.Fatalf("require_org, M2M: %v %q", st.Status, st.Reason)
	}
	slug := newEnv(t, false, true).withOrgs("acme")
	if st := decide(slug.a, orgKey); st.Status != Forbidden {
		t.Fatalf("require_org by slug, a machine: %v", st.Status)
	}
}
