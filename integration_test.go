package caddyclerk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// siteConfig is the global options and the body of a config with the
// emulator as the Clerk instance; the sites are on localhost:
//   - {{main}} and {{untrusted}}: one site with every check, on two
//     servers: {{main}} trusts loopback proxies, {{untrusted}} trusts nobody
//   - {{optional}}: optional
//   - {{strip}}: strip_credentials
//   - {{nocsrf}}: csrf off
func siteConfig(clerk *clerktest.Server, upstream string, extra string) (global, body string) {
	block := func(inner string) string {
		return fmt.Sprintf(`clerk {
		publishable_key %s
		frontend_api_url %s
		sign_in_url %s/sign-in
		exclude /health /public/*
		%s
	}`, clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL(), inner)
	}
	global = `servers :{{main}} {
		trusted_proxies static 127.0.0.1/8
	}`
	body = fmt.Sprintf(`http://localhost:{{main}}, http://localhost:{{untrusted}} {
	%s
	@admin path /admin/*
	clerk @admin {
		publishable_key %s
		frontend_api_url %s
		require_role admin
	}
	@perm path /invoices/*
	clerk @perm {
		publishable_key %s
		frontend_api_url %s
		require_permission org:invoices:manage org:invoices:approve
	}
	@pro path /pro/*
	clerk @pro {
		publishable_key %s
		frontend_api_url %s
		require_claim plan pro enterprise
	}
	respond /health "ok" 200
	respond /public/* "public" 200
	reverse_proxy %s {%s
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
	%s
}
http://localhost:{{optional}} {
	%s
	reverse_proxy %s {%s
	}
}
http://localhost:{{strip}} {
	%s
	reverse_proxy %s
}
http://localhost:{{nocsrf}} {
	%s
	reverse_proxy %s
}
`, block("csrf_trusted_origins https://trusted.example.com"), clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.PublishableKey(), clerk.FrontendAPIURL(),
		clerk.PublishableKey(), clerk.FrontendAPIURL(), upstream, identityHeaders, extra,
		block("optional"), upstream, identityHeaders,
		block("strip_credentials"), upstream,
		block("csrf off"), upstream)
	return global, body
}

// fixture is Caddy in front of an emulator, with the echo upstream, and a
// client that follows no redirects and keeps no cookies.
type fixture struct {
	t      *testing.T
	clerk  *clerktest.Server
	caddy  *caddyRun
	client *http.Client
	up     *httptest.Server
	// The handshake sites (handshakeConfig), on 127.0.0.1.
	nonceSite, legacySite string
}

// newFixture runs siteConfig in front of a new emulator.
func newFixture(t *testing.T, opts ...clerktest.Option) *fixture {
	return startFixture(t, clerktest.NewT(t, opts...))
}

// startFixture runs siteConfig in front of clerk.
func startFixture(t *testing.T, clerk *clerktest.Server) *fixture {
	f := &fixture{t: t, clerk: clerk, up: echoUpstream(t), client: testClient(true)}
	global, body := siteConfig(f.clerk, f.up.Listener.Addr().String(), "")
	f.caddy = startCaddy(t, global, body)
	return f
}

// site is the base URL of a site of siteConfig: http://localhost:{{name}}.
func (f *fixture) site(name string) string { return "http://localhost:" + f.caddy.port(name) }

func (f *fixture) do(method, url string, header map[string]string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *fixture) upstreamSaw(body string) map[string]string {
	f.t.Helper()
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		f.t.Fatalf("not an upstream answer: %q", body)
	}
	return h
}

func (f *fixture) mint(o clerktest.TokenOptions) string { return f.clerk.MustMint(o) }

// devBrowser is the cookie a development instance's browsers carry.
const devBrowser = "__clerk_db_jwt=dvb_test"

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestIntegration(t *testing.T) {
	f := newFixture(t)
	admin, member := f.clerk.AdminUser(), f.clerk.MemberUser()
	adminTok := f.mint(clerktest.TokenOptions{User: &admin, Claims: map[string]any{
		"plan": "pro", "meta": map[string]any{"tier": 2}, "tags": []any{"a", "b"}, "note": "line1\r\nX-Evil: 1",
	}})
	memberTok := f.mint(clerktest.TokenOptions{User: &member, Version: 1})

	t.Run("bearer token passes with every placeholder", func(t *testing.T) {
		resp, body := f.do("GET", f.site("main")+"/api", bearer(adminTok))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		h := f.upstreamSaw(body)
		want := map[string]string{
			"X-Clerk-User-Id": admin.ID, "X-Clerk-Authenticated": "true", "X-Clerk-Reason": "",
			"X-Clerk-Org-Id": admin.Org.ID, "X-Clerk-Org-Role": "org:admin", "X-Clerk-Org-Slug": admin.Org.Slug,
			"X-Clerk-Org-Permissions": "org:invoices:read,org:invoices:manage", "X-Clerk-Plan": "pro",
			"X-Clerk-Meta": `{"tier":2}`, "X-Clerk-Tags": "a,b", "X-Clerk-Note": "line1X-Evil: 1",
			"X-Auth-User": admin.ID, "X-Auth-Org-Role": "org:admin", "X-Clerk-Actor-Id": "",
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("%s = %q, want %q", k, h[k], v)
			}
		}
		if h["X-Auth-Org-Id"] != admin.Org.ID || h["X-Auth-Org-Slug"] != admin.Org.Slug || h["X-Auth-Session"] != h["X-Clerk-Session-Id"] {
			t.Errorf("http.auth.user.*: %v", h)
		}
		if h["X-Clerk-Session-Id"] == "" || h["X-Evil"] != "" {
			t.Errorf("session %q, injected header %q", h["X-Clerk-Session-Id"], h["X-Evil"])
		}
	})

	t.Run("v1 token in the session cookie, plain and suffixed", func(t *testing.T) {
		inst, _ := verifier.ParsePublishableKey(f.clerk.PublishableKey())
		for _, sfx := range []string{"", "_" + inst.CookieSuffix} {
			name := "__session" + sfx
			cookie := name + "=" + memberTok + "; __client_uat" + sfx + "=1"
			resp, body := f.do("GET", f.site("main")+"/api", map[string]string{"Cookie": cookie})
			if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-Org-Role"] != "org:member" {
				t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
			}
		}
	})

	t.Run("without forwarded_request a trusted proxy's X-Forwarded-Uri is not decided on", func(t *testing.T) {
		resp, body := f.do("GET", f.site("main")+"/api", map[string]string{"X-Forwarded-Uri": "/health", "X-Original-URI": "/health"})
		if resp.StatusCode != 401 || body != "401 session-token-and-uat-missing" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("header token wins over cookie", func(t *testing.T) {
		resp, body := f.do("GET", f.site("main")+"/api", map[string]string{"Authorization": "Bearer garbage", "Cookie": "__session=" + adminTok})
		if resp.StatusCode != 401 || !strings.Contains(body, "token-invalid") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("bare token without scheme, other schemes ignored", func(t *testing.T) {
		if resp, body := f.do("GET", f.site("main")+"/api", map[string]string{"Authorization": adminTok}); resp.StatusCode != 200 {
			t.Fatalf("bare: %d %s", resp.StatusCode, body)
		}
		resp, _ := f.do("GET", f.site("main")+"/api", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"})
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("basic: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("missing token: 401 challenge without error", func(t *testing.T) {
		resp, body := f.do("GET", f.site("main")+"/api", map[string]string{"Accept": "application/json"})
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" || body != "401 session-token-and-uat-missing" {
			t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})

	t.Run("invalid tokens: 401 with the reason", func(t *testing.T) {
		expired := f.mint(clerktest.TokenOptions{User: &admin, IssuedAt: time.Now().Add(-time.Hour)})
		foreign := f.mint(clerktest.TokenOptions{User: &admin, SigningKey: clerktest.GenerateKey()})
		wrongIss := f.mint(clerktest.TokenOptions{User: &admin, Issuer: "https://clerk.evil.example"})
		for tok, reason := range map[string]string{
			expired: "token-expired", foreign: "token-invalid-signature", wrongIss: "token-invalid-issuer",
			"a.b.c": "token-invalid", strings.Repeat("x", 9000): "token-invalid",
		} {
			resp, body := f.do("GET", f.site("main")+"/api", bearer(tok))
			want := `Bearer error="invalid_token", error_description="` + reason + `"`
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want || body != "401 "+reason {
				t.Errorf("%s: %d %q %q", reason, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		}
	})

	t.Run("page load redirects to sign-in with the current URL", func(t *testing.T) {
		// A development browser already holds its dev-browser token.
		for _, hdr := range []map[string]string{{"Sec-Fetch-Dest": "document"}, {"Accept": "text/html,application/xhtml+xml"}} {
			hdr["Cookie"] = devBrowser
			resp, _ := f.do("GET", f.site("untrusted")+"/docs/page?x=1&y=2", hdr)
			want := f.clerk.AccountsURL() + "/sign-in?redirect_url=" + url.QueryEscape(f.site("untrusted")+"/docs/page?x=1&y=2") +
				"&__clerk_db_jwt=dvb_test"
			if resp.StatusCode != 307 || resp.Header.Get("Location") != want {
				t.Fatalf("%v: %d %q", hdr, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		// fetch/XHR and POST never redirect.
		for _, tc := range []struct{ method, dest string }{{"GET", "empty"}, {"POST", "document"}} {
			resp, _ := f.do(tc.method, f.site("untrusted")+"/docs", map[string]string{"Sec-Fetch-Dest": tc.dest, "Accept": "text/html"})
			if resp.StatusCode != 401 {
				t.Fatalf("%s %s: %d", tc.method, tc.dest, resp.StatusCode)
			}
		}
	})

	t.Run("redirect URL trusts X-Forwarded-* only from trusted proxies", func(t *testing.T) {
		fwd := map[string]string{"Sec-Fetch-Dest": "document", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "docs.example.com",
			"Cookie": devBrowser}
		redirectURL := func(resp *http.Response) string {
			u, _ := url.Parse(resp.Header.Get("Location"))
			return u.Query().Get("redirect_url")
		}
		resp, _ := f.do("GET", f.site("main")+"/p", fwd)
		if got := redirectURL(resp); got != "https://docs.example.com/p" {
			t.Fatalf("trusted: %q", got)
		}
		resp, _ = f.do("GET", f.site("untrusted")+"/p", fwd)
		if got := redirectURL(resp); got != f.site("untrusted")+"/p" {
			t.Fatalf("untrusted: %q", got)
		}
		fwd["X-Forwarded-Host"] = "evil.example/@x"
		resp, _ = f.do("GET", f.site("main")+"/p", fwd)
		if got := redirectURL(resp); got != "https://localhost:"+f.caddy.port("main")+"/p" {
			t.Fatalf("malformed forwarded host: %q", got)
		}
	})

	t.Run("excluded paths and CORS preflight pass unverified", func(t *testing.T) {
		for _, p := range []string{"/health", "/public/x.css"} {
			if resp, _ := f.do("GET", f.site("main")+p, nil); resp.StatusCode != 200 {
				t.Fatalf("%s: %d", p, resp.StatusCode)
			}
		}
		resp, body := f.do("OPTIONS", f.site("main")+"/api", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-Authenticated"] != "false" {
			t.Fatalf("preflight: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("roles, permissions and claims", func(t *testing.T) {
		v2Member := f.mint(clerktest.TokenOptions{User: &member})
		cases := []struct {
			path, tok string
			want      int
			reason    string
		}{
			{"/admin/x", adminTok, 200, ""}, {"/admin/x", memberTok, 403, "missing-role"}, {"/admin/x", v2Member, 403, "missing-role"},
			{"/invoices/1", adminTok, 200, ""}, {"/invoices/1", v2Member, 403, "missing-permission"},
			{"/pro/x", adminTok, 200, ""}, {"/pro/x", v2Member, 403, "claim-mismatch"},
		}
		for _, c := range cases {
			resp, body := f.do("GET", f.site("main")+c.path, bearer(c.tok))
			if resp.StatusCode != c.want || (c.reason != "" && body != "403 "+c.reason) {
				t.Errorf("%s: %d %q", c.path, resp.StatusCode, body)
			}
		}
	})

	t.Run("optional lets anonymous through", func(t *testing.T) {
		resp, body := f.do("GET", f.site("optional")+"/x", map[string]string{"Sec-Fetch-Dest": "document", "Cookie": devBrowser})
		h := f.upstreamSaw(body)
		if resp.StatusCode != 200 || h["X-Clerk-Authenticated"] != "false" || h["X-Clerk-Reason"] != "session-token-and-uat-missing" || h["X-Clerk-User-Id"] != "" {
			t.Fatalf("%d %v", resp.StatusCode, h)
		}
		_, body = f.do("GET", f.site("optional")+"/x", bearer("a.b.c"))
		if h := f.upstreamSaw(body); h["X-Clerk-Reason"] != "token-invalid" {
			t.Fatalf("%v", h)
		}
		_, body = f.do("GET", f.site("optional")+"/x", bearer(adminTok))
		if h := f.upstreamSaw(body); h["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("%v", h)
		}
	})

	t.Run("client-sent identity headers never reach the upstream", func(t *testing.T) {
		spoof := map[string]string{"X-Clerk-User-Id": "user_attacker", "X-Clerk-Org-Role": "org:admin", "X-Clerk-Authenticated": "true"}
		for _, site := range []string{"optional"} { // anonymous
			_, body := f.do("GET", f.site(site)+"/x", spoof)
			h := f.upstreamSaw(body)
			if h["X-Clerk-User-Id"] != "" || h["X-Clerk-Org-Role"] != "" || h["X-Clerk-Authenticated"] != "false" {
				t.Fatalf("anonymous: %v", h)
			}
		}
		spoof["Authorization"] = "Bearer " + memberTok
		_, body := f.do("GET", f.site("main")+"/x", spoof)
		if h := f.upstreamSaw(body); h["X-Clerk-User-Id"] != member.ID || h["X-Clerk-Org-Role"] != "org:member" {
			t.Fatalf("authenticated: %v", h)
		}
	})
}

// TestCookieHardening: the CSRF guard for cookie-authenticated unsafe
// requests, and strip_credentials.
func TestCookieHardening(t *testing.T) {
	f := newFixture(t)
	admin := f.clerk.AdminUser()
	tok := f.mint(clerktest.TokenOptions{User: &admin})
	cookie := "__session=" + tok + "; __client_uat=1"
	cases := []struct {
		name, method, site string
		hdr                map[string]string
		want               int
	}{
		{"cross-site POST with the cookie", "POST", "main", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403},
		{"same-site subdomain POST", "POST", "main", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-site", "Origin": "http://sub.localhost:" + f.caddy.port("main")}, 403},
		{"same-origin POST", "POST", "main", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin", "Origin": f.site("main")}, 200},
		{"user-initiated (none)", "PUT", "main", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "none"}, 200},
		{"Bearer from another origin", "POST", "main", map[string]string{"Authorization": "Bearer " + tok, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 200},
		{"old client, same Origin", "DELETE", "main", map[string]string{"Cookie": cookie, "Origin": f.site("main")}, 200},
		{"old client, foreign Origin", "POST", "main", map[string]string{"Cookie": cookie, "Origin": "https://evil.example"}, 403},
		{"old client, trusted origin", "POST", "main", map[string]string{"Cookie": cookie, "Origin": "https://trusted.example.com"}, 200},
		{"no Origin, same-origin Referer", "POST", "main", map[string]string{"Cookie": cookie, "Referer": f.site("main") + "/form"}, 200},
		{"no Origin, foreign Referer", "POST", "main", map[string]string{"Cookie": cookie, "Referer": "https://evil.example/form"}, 403},
		{"no signal at all", "POST", "main", map[string]string{"Cookie": cookie}, 403},
		{"GET is not guarded", "GET", "main", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site"}, 200},
		{"csrf off", "POST", "nocsrf", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 200},
	}
	for _, c := range cases {
		resp, body := f.do(c.method, f.site(c.site)+"/api", c.hdr)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
		}
		if c.want == 403 && body != "403 csrf-origin-mismatch" {
			t.Errorf("%s: body %q", c.name, body)
		}
	}

	// strip_credentials: the upstream sees neither the token nor Clerk's
	// cookies; other cookies arrive intact.
	inst, _ := verifier.ParsePublishableKey(f.clerk.PublishableKey())
	_, body := f.do("GET", f.site("strip")+"/api", map[string]string{
		"Cookie": "theme=dark; __session=" + tok + "; __session_" + inst.CookieSuffix + "=" + tok + "; __client_uat=1; __client_uat_" + inst.CookieSuffix + "=1; __clerk_db_jwt=dvb; cart=a=b; __clerk_handshake_nonce=n",
	})
	h := f.upstreamSaw(body)
	if h["Cookie"] != "theme=dark; cart=a=b" || h["Authorization"] != "" {
		t.Fatalf("cookies %q, authorization %q", h["Cookie"], h["Authorization"])
	}
	_, body = f.do("GET", f.site("strip")+"/api", bearer(tok))
	if h := f.upstreamSaw(body); h["Authorization"] != "" || h["Cookie"] != "" {
		t.Fatalf("bearer: %v", h)
	}
	// Without the option, the upstream sees the credential.
	_, body = f.do("GET", f.site("main")+"/api", bearer(tok))
	if f.upstreamSaw(body)["Authorization"] == "" {
		t.Fatal("credentials stripped without strip_credentials")
	}
}

// TestKeysNotLoaded: Clerk down since start → 503 with Retry-After for
// requests needing keys; excluded paths work; recovery needs no reload.
func TestKeysNotLoaded(t *testing.T) {
	clerk := clerktest.NewT(t)
	clerk.Down()
	f := startFixture(t, clerk)
	admin := clerk.AdminUser()
	tok := clerk.MustMint(clerktest.TokenOptions{User: &admin})
	resp, _ := f.do("GET", f.site("main")+"/api", bearer(tok))
	if resp.StatusCode != 503 {
		t.Errorf("while Clerk is down: %d, want 503", resp.StatusCode)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	if resp, body := f.do("GET", f.site("main")+"/health", nil); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("excluded path while Clerk is down: %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	clerk.Up()
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("GET", f.site("main")+"/api", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := f.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("valid token still refused after Clerk came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReloadsShareKeys: several site blocks on one instance fetch the keys
// once; reloads keep the warm cache and leave no goroutines behind.
func TestReloadsShareKeys(t *testing.T) {
	f := newFixture(t)
	admin := f.clerk.AdminUser()
	tok := f.mint(clerktest.TokenOptions{User: &admin})
	if resp, body := f.do("GET", f.site("main")+"/api", bearer(tok)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if n := f.clerk.Requests(clerktest.FAPIJWKS); n != 1 {
		t.Fatalf("%d JWKS fetches for several handlers of one instance, want 1", n)
	}
	if n := refreshers(); n != 1 {
		t.Fatalf("%d key refresh goroutines before reloads, want 1", n)
	}
	for i := 0; i < 20; i++ {
		f.caddy.reload(siteConfig(f.clerk, f.up.Listener.Addr().String(), fmt.Sprintf("respond /reload-%d 204", i)))
		f.client.CloseIdleConnections() // the old server closes them (see reload)
		resp := afterReload(t, func() (*http.Response, error) {
			req, _ := http.NewRequest("GET", f.site("main")+"/api", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			return f.client.Do(req)
		})
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload %d: %d", i, resp.StatusCode)
		}
	}
	if n := f.clerk.Requests(clerktest.FAPIJWKS); n != 1 {
		t.Fatalf("reloads refetched the keys: %d fetches", n)
	}
	// Connections come and go with reloads; what must not grow is ours: one
	// background refresher per key source, whatever the number of reloads.
	if n := refreshers(); n != 1 {
		t.Fatalf("%d key refresh goroutines after 20 reloads, want 1", n)
	}
	// A config without the clerk handler: the last user's Cleanup stops it.
	f.caddy.reload("", `http://localhost:{{main}} {
	respond "bye"
}`)
	deadline := time.Now().Add(5 * time.Second)
	for refreshers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the key refresher outlived the last handler using it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refreshers counts live KeyCache background goroutines.
func refreshers() int {
	buf := make([]byte, 8<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	return strings.Count(stacks, "verifier.(*KeyCache).run(")
}
