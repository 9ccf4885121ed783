package caddyclerk

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// orgConfig is handshakeConfig's two sites ({{<prefix>nonce}} with
// secret_key, {{<prefix>legacy}} without) with organization_sync, and
// {{<prefix>require}}: require_org beta.
func orgConfig(clerk *clerktest.Server, upstream, prefix string) string {
	orgSync := `
		organization_sync {
			organization     /orgs/:slug /orgs/:slug/(.*) /o/:id/(.*)
			personal_account /me /me/(.*)
		}`
	site := func(name, settings string) string {
		return fmt.Sprintf(`http://127.0.0.1:{{%s%s}} {
	clerk {
		publishable_key %s
		frontend_api_url %s
		sign_in_url %s/sign-in%s
	}
	reverse_proxy %s {%s
		header_up X-Org {clerk.org_id}
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, prefix, name, clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL(), settings, upstream, identityHeaders)
	}
	secret := fmt.Sprintf(`
		secret_key %s
		api_url %s`, clerk.SecretKey(), clerk.URL())
	return site("nonce", secret+orgSync) + site("legacy", orgSync) + site("require", secret+orgSync+`
		require_org beta`)
}

// post is a same-origin form POST from the browser's page.
func (b *browser) post(u string) (int, string) {
	req, _ := http.NewRequest("POST", u, strings.NewReader("a=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Dest", "empty")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// TestOrganizationFlow walks organization_sync with a cookie-jar browser
// against the emulator, for development and production instances, nonce
// and legacy payloads: activation by slug and by id, the personal account,
// a non-member refused after one handshake, 403 for every request that
// cannot follow a handshake, and hostile URLs that never reach the
// upstream under another tenant's identity.
func TestOrganizationFlow(t *testing.T) {
	cases := []struct {
		name   string
		opts   []clerktest.Option
		legacy bool
	}{
		{"development, nonce", nil, false},
		{"development, legacy payload", nil, true},
		{"production, nonce", []clerktest.Option{clerktest.Production()}, false},
		{"production, legacy payload", []clerktest.Option{clerktest.Production()}, true},
	}
	up := echoUpstream(t)
	fixtures := make([]*fixture, len(cases))
	var body strings.Builder
	for i, tc := range cases {
		clerk := clerktest.NewT(t, tc.opts...)
		fixtures[i] = &fixture{clerk: clerk, up: up, client: testClient(true)}
		body.WriteString(orgConfig(clerk, up.Listener.Addr().String(), fmt.Sprintf("case%d_", i)))
	}
	run := startCaddy(t, "", body.String())
	for i, tc := range cases {
		f := fixtures[i]
		f.caddy = run
		f.nonceSite, f.legacySite = run.url(fmt.Sprintf("case%d_nonce", i)), run.url(fmt.Sprintf("case%d_legacy", i))
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f.t = t
			site := f.nonceSite
			if tc.legacy {
				site = f.legacySite
			}
			ada, bob := f.clerk.AdminUser(), f.clerk.MemberUser()
			beta, _ := ada.Membership("beta")
			b := newBrowser(t)
			trail := func() string { return strings.Join(b.trail, "\n") }
			// at loads page and checks it is served with org active ("" for
			// none), after exactly hops handshakes (asking for orgParam).
			at := func(b *browser, page, orgID string, hops int, orgParam string) {
				t.Helper()
				before := len(f.clerk.Handshakes())
				final, status, body := b.navigate(page, nil)
				if status != 200 || final != page {
					t.Fatalf("%s: %d at %s %s\n%s", page, status, final, body, trail())
				}
				h := f.upstreamSaw(body)
				if h["X-Org"] != orgID || h["X-Clerk-Org-Id"] != orgID {
					t.Fatalf("%s: upstream saw org %q, want %q", page, h["X-Org"], orgID)
				}
				hs := f.clerk.Handshakes()[before:]
				if len(hs) != hops {
					t.Fatalf("%s: %d handshakes, want %d\n%s", page, len(hs), hops, trail())
				}
				for _, q := range hs {
					if q.Get("__clerk_hs_reason") != "active-organization-mismatch" || q.Get("organization_id") != orgParam || len(q["organization_id"]) != 1 {
						t.Fatalf("%s: handshake %v", page, q)
					}
				}
			}

			b.signInFrom(f, site+"/orgs/acme/", ada)
			at(b, site+"/orgs/acme/settings", ada.Org.ID, 0, "")
			at(b, site+"/orgs/beta/x?y=1", beta.ID, 1, "beta")
			at(b, site+"/orgs/beta/", beta.ID, 0, "")
			at(b, site+"/o/"+ada.Org.ID+"/x", ada.Org.ID, 1, ada.Org.ID)
			at(b, site+"/me", "", 1, "")
			at(b, site+"/me/profile", "", 0, "")
			at(b, site+"/orgs/acme/", ada.Org.ID, 1, "acme")
			// A forged organization_id in the page's own query asks Clerk
			// for nothing, and does not change what the upstream sees.
			at(b, site+"/orgs/acme/?organization_id=beta", ada.Org.ID, 0, "")
			at(b, site+"/docs?organization_id="+beta.ID, ada.Org.ID, 0, "")

			// What cannot follow a handshake is refused (acme is active).
			if status, body := b.fetch(site + "/orgs/beta/api"); status != 403 || body != "403 active-organization-mismatch" {
				t.Fatalf("fetch: %d %q", status, body)
			}
			if status, body := b.post(site + "/orgs/beta/api"); status != 403 || body != "403 active-organization-mismatch" {
				t.Fatalf("POST: %d %q", status, body)
			}
			if status, body := b.post(site + "/orgs/acme/api"); status != 200 || f.upstreamSaw(body)["X-Org"] != ada.Org.ID {
				t.Fatalf("POST in the active org: %d %q", status, body)
			}
			adaTok := f.mint(clerktest.TokenOptions{User: &ada, Lifetime: time.Hour})
			for _, dest := range []string{"document", "empty"} {
				h := bearer(adaTok)
				h["Sec-Fetch-Dest"] = dest
				if resp, body := f.do("GET", site+"/orgs/beta/", h); resp.StatusCode != 403 || body != "403 active-organization-mismatch" {
					t.Fatalf("Bearer (%s): %d %q", dest, resp.StatusCode, body)
				}
			}
			if resp, body := f.do("GET", site+"/orgs/acme/x", bearer(adaTok)); resp.StatusCode != 200 || f.upstreamSaw(body)["X-Org"] != ada.Org.ID {
				t.Fatalf("Bearer in its org: %d %q", resp.StatusCode, body)
			}

			betaTok := f.mint(clerktest.TokenOptions{User: &ada, Org: &beta, Lifetime: time.Hour})
			if resp, body := f.do("GET", site+"/orgs/beta/", bearer(betaTok)); resp.StatusCode != 200 {
				t.Fatalf("Bearer in beta: %d %q", resp.StatusCode, body)
			}
			// Hostile paths: whatever an upstream makes of them, none
			// passes under acme's identity into another tenant.
			for _, p := range []string{"/orgs/acme/../beta/", "/orgs/acme/%2e%2e/beta/", "/orgs/acme/..%2Fbeta/", "/x/../orgs/beta/",
				"/x/..%2forgs/beta/", "/orgs/acme%2F..%2Fbeta/", "/orgs/acme;beta/", "/orgs/acme;/", "/orgs//beta/", "/orgs/acme/..%5Cbeta"} {
				if status, body := b.fetch(site + p); status != 403 || body != "403 active-organization-mismatch" {
					t.Errorf("fetch %s: %d %q", p, status, body)
				}
				// Nor under beta's: the path arrives as sent (a client that
				// cleaned "/x/../orgs/beta/" would get 200 here).
				for _, tok := range []string{adaTok, betaTok} {
					if resp, body := f.do("GET", site+p, bearer(tok)); resp.StatusCode != 403 {
						t.Errorf("Bearer %s: %d %q", p, resp.StatusCode, body)
					}
				}
			}

			// Bob is no member of acme: one handshake asks for it, and the
			// answer that comes back (beta still active) is 403 at once.
			bb := newBrowser(t)
			bb.signInFrom(f, site+"/orgs/beta/", bob)
			before := len(f.clerk.Handshakes())
			final, status, body := bb.navigate(site+"/orgs/acme/", nil)
			if status != 403 || body != "403 active-organization-mismatch" || final == "" {
				t.Fatalf("Bob at acme: %d %q\n%s", status, body, strings.Join(bb.trail, "\n"))
			}
			hs := f.clerk.Handshakes()[before:]
			if len(hs) != 1 || hs[0].Get("organization_id") != "acme" {
				t.Fatalf("Bob at acme: handshakes %v", hs)
			}
			if status, body := bb.fetch(site + "/orgs/beta/"); status != 200 || f.upstreamSaw(body)["X-Org"] != bob.Org.ID {
				t.Fatalf("Bob, back in beta: %d %q", status, body)
			}

			// Clerk's loop guard, ours stricter: past it, 403.
			bobTok := f.mint(clerktest.TokenOptions{User: &bob, Lifetime: time.Hour})
			past := fmt.Sprintf("__client_uat=%d", time.Now().Add(-time.Hour).Unix())
			for n, want := range map[string]int{"2": 307, "3": 403} {
				resp, body := f.do("GET", site+"/orgs/acme/", page(devBrowser, "__session="+bobTok, past, "__clerk_redirect_count="+n))
				if resp.StatusCode != want || (want == 403 && body != "403 active-organization-mismatch") {
					t.Fatalf("redirect count %s: %d %q", n, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestRequireOrgFlow: require_org beta activates beta for Ada (a member)
// on a page load, refuses Cy (no member) at the loop guard and refuses
// what cannot follow the handshake.
func TestRequireOrgFlow(t *testing.T) {
	f := &fixture{t: t, clerk: clerktest.NewT(t, clerktest.Production()), up: echoUpstream(t), client: testClient(true)}
	f.caddy = startCaddy(t, "", orgConfig(f.clerk, f.up.Listener.Addr().String(), ""))
	site := f.caddy.url("require")
	ada := f.clerk.AdminUser()
	beta, _ := ada.Membership("beta")
	cy := f.clerk.AddUser(clerktest.User{FirstName: "Cy", Email: "cy@example.com",
		Org: &clerktest.Membership{Slug: "gamma", Role: "org:admin"}})

	b := newBrowser(t)
	final, status, _ := b.navigate(site+"/docs", nil)
	final, status, body := b.signInAs(f, final, ada)
	if status != 200 || final != site+"/docs" || f.upstreamSaw(body)["X-Org"] != beta.ID {
		t.Fatalf("Ada: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
	}
	if q := f.clerk.Handshakes(); q[len(q)-1].Get("organization_id") != "beta" {
		t.Fatalf("the last handshake %v", q[len(q)-1])
	}
	adaTok := f.mint(clerktest.TokenOptions{User: &ada})
	if resp, body := f.do("GET", site+"/docs", bearer(adaTok)); resp.StatusCode != 403 || body != "403 organization-required" {
		t.Fatalf("Bearer in acme: %d %q", resp.StatusCode, body)
	}
	// The URL names acme: activating beta would contradict it.
	if status, body := b.fetch(site + "/orgs/acme/"); status != 403 {
		t.Fatalf("fetch /orgs/acme/: %d %q", status, body)
	}
	final, status, body = b.navigate(site+"/orgs/acme/", nil)
	if status != 403 || body != "403 organization-required" {
		t.Fatalf("page /orgs/acme/: %d %q %s\n%s", status, body, final, strings.Join(b.trail, "\n"))
	}

	cb := newBrowser(t)
	final, _, _ = cb.navigate(site+"/docs", nil)
	before := len(f.clerk.Handshakes())
	final, status, body = cb.signInAs(f, final, cy)
	if status != 403 || body != "403 organization-required" {
		t.Fatalf("Cy: %d %q at %s\n%s", status, body, final, strings.Join(cb.trail, "\n"))
	}
	// The handshake that renewed Cy's session did not ask for beta, so the
	// loop guard ends the asking: after it, two activation handshakes.
	if n := len(f.clerk.Handshakes()) - before; n != 3 {
		t.Fatalf("Cy: %d handshakes, want 3\n%s", n, strings.Join(cb.trail, "\n"))
	}
}

// TestOrganizationTwoInstances: nothing is stored in Caddy, so the
// activation handshake may start at one instance and come back to
// another (behind one load balancer: the same host for the browser).
func TestOrganizationTwoInstances(t *testing.T) {
	f := &fixture{t: t, clerk: clerktest.NewT(t, clerktest.Production()), up: echoUpstream(t), client: testClient(true)}
	f.caddy = startCaddy(t, "", orgConfig(f.clerk, f.up.Listener.Addr().String(), "a_")+orgConfig(f.clerk, f.up.Listener.Addr().String(), "b_"))
	siteA, siteB := f.caddy.url("a_nonce"), f.caddy.url("b_nonce")
	ada := f.clerk.AdminUser()
	beta, _ := ada.Membership("beta")
	b := newBrowser(t)
	b.signInFrom(f, siteA+"/orgs/acme/", ada)

	u := siteA + "/orgs/beta/"
	var hops []string
	for range 6 {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Sec-Fetch-Dest", "document")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		hops = append(hops, fmt.Sprintf("%d %s", resp.StatusCode, u))
		if resp.StatusCode != 307 {
			if resp.StatusCode != 200 || !strings.HasPrefix(u, siteB) || f.upstreamSaw(string(raw))["X-Org"] != beta.ID {
				t.Fatalf("ended %d at %s: %s\n%s", resp.StatusCode, u, raw, strings.Join(hops, "\n"))
			}
			return
		}
		u = resp.Header.Get("Location")
		if strings.HasPrefix(u, siteA) && len(hops) > 1 {
			u = siteB + strings.TrimPrefix(u, siteA) // the load balancer picks the other instance
		}
	}
	t.Fatalf("no end:\n%s", strings.Join(hops, "\n"))
}
