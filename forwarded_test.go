package caddyclerk

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// forwardAuthConfig is caddy-clerk as the auth service of a Caddy front
// proxy, in front of clerk, with names prefixed by p (sites on 127.0.0.1,
// the emulator's host, so that its cookies reach them):
//   - {{<p>auth}}: the auth service (forwarded_request), on a server that
//     trusts loopback proxies (global): /auth, and /auth/admin requiring
//     admin; /nginx and /nginx/admin the same for nginx's auth_request,
//     which cannot pass a redirect on, so the navigation headers are
//     dropped (signed-out page loads get 401, never 307)
//   - {{<p>authu}}: the same site on a server that trusts nobody
//   - {{<p>front}}: the front proxy: forward_auth to {{<p>auth}} (/auth, or
//     /auth/admin for /admin/*), copying X-Clerk-User-Id, then the upstream
func forwardAuthConfig(clerk *clerktest.Server, upstream, p string) (global, body string) {
	settings := fmt.Sprintf(`publishable_key %s
			secret_key %s
			api_url %s
			frontend_api_url %s
			sign_in_url %s/sign-in
			exclude /health /public/*
			sign_out_path /sign-out
			clock_skew 1s
			forwarded_request`, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), clerk.FrontendAPIURL(), clerk.AccountsURL())
	global = fmt.Sprintf(`servers :{{%sauth}} {
		trusted_proxies static 127.0.0.1/8
	}`, p)
	route := func(path, pre, extra string) string {
		return fmt.Sprintf(`
	route%s {%s
		clerk {
			%s%s
		}
		header X-Clerk-User-Id {clerk.user_id}
		respond 200
	}`, path, pre, settings, extra)
	}
	dropNavigation := `
		request_header -Sec-Fetch-Dest
		request_header -Accept`
	admin := "\n\t\t\trequire_role admin"
	routes := route(" /auth/admin", "", admin) + route("", "", "") +
		route(" /nginx/admin", dropNavigation, admin) + route(" /nginx", dropNavigation, "")
	body = fmt.Sprintf(`http://127.0.0.1:{{%[1]sauth}}, http://127.0.0.1:{{%[1]sauthu}} {%[2]s
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
http://127.0.0.1:{{%[1]sfront}} {
	handle /admin/* {
		forward_auth 127.0.0.1:{{%[1]sauth}} {
			uri /auth/admin
			copy_headers X-Clerk-User-Id
		}
		reverse_proxy %[3]s
	}
	handle {
		forward_auth 127.0.0.1:{{%[1]sauth}} {
			uri /auth
			copy_headers X-Clerk-User-Id
		}
		reverse_proxy %[3]s
	}
}
`, p, routes, upstream)
	return global, body
}

// with adds header pairs to h.
func with(h map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

// TestForwardAuth runs caddy-clerk as the auth service of Caddy's
// forward_auth: every decision is about the request the front proxy
// describes (its path, method, host and query), and its answers (200 with
// the identity, 401, 403, the redirects to sign-in and to the handshake)
// reach the client through the front proxy. Development and production
// instances; browser flows through the Account Portal and the handshake.
func TestForwardAuth(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	up := echoUpstream(t)
	dev := &fixture{t: t, clerk: clerktest.NewT(t), up: up, client: testClient(true)}
	prod := &fixture{t: t, clerk: clerktest.NewT(t, clerktest.Production()), up: up, client: testClient(true)}
	devGlobal, devBody := forwardAuthConfig(dev.clerk, up.Listener.Addr().String(), "")
	prodGlobal, prodBody := forwardAuthConfig(prod.clerk, up.Listener.Addr().String(), "prod_")
	global := devGlobal + "\n\t" + prodGlobal + fmt.Sprintf(`
	log {
		output file %s
		format json
		level WARN
	}`, logPath)
	run := startCaddy(t, global, devBody+prodBody)
	dev.caddy, prod.caddy = run, run
	front, auth, authu := run.url("front"), run.url("auth"), run.url("authu")
	f := dev

	admin, member := f.clerk.AdminUser(), f.clerk.MemberUser()
	adminTok := f.mint(clerktest.TokenOptions{User: &admin, Lifetime: time.Hour})
	memberTok := f.mint(clerktest.TokenOptions{User: &member, Lifetime: time.Hour})
	past := fmt.Sprintf("__client_uat=%d", time.Now().Add(-time.Hour).Unix())

	t.Run("Bearer: the user id is copied to the upstream, a client's own is not", func(t *testing.T) {
		resp, body := f.do("GET", front+"/p?x=1", with(bearer(memberTok), "X-Clerk-User-Id", "user_evil"))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if h := f.upstreamSaw(body); h["X-Clerk-User-Id"] != member.ID || h["_path"] != "/p" || h["Authorization"] == "" {
			t.Fatalf("upstream saw %v", h)
		}
	})

	t.Run("cookie session", func(t *testing.T) {
		resp, body := f.do("GET", front+"/p", page(devBrowser, "__session="+adminTok, past))
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("require_role: 403 for a member, the admin passes", func(t *testing.T) {
		resp, body := f.do("GET", front+"/admin/x", bearer(memberTok))
		if resp.StatusCode != 403 || body != "403 missing-role" {
			t.Fatalf("member: %d %q", resp.StatusCode, body)
		}
		resp, body = f.do("GET", front+"/admin/x", bearer(adminTok))
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("admin: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("exclude applies to the original path, not /auth", func(t *testing.T) {
		for _, p := range []string{"/health", "/public/a.css?v=1"} {
			resp, body := f.do("GET", front+p, map[string]string{"X-Clerk-User-Id": "user_evil"})
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
			}
			if h := f.upstreamSaw(body); h["X-Clerk-User-Id"] != "" {
				t.Fatalf("%s: a client's X-Clerk-User-Id reached the upstream: %v", p, h)
			}
		}
		// Hardening as for the request itself: encoded tricks are verified.
		if resp, _ := f.do("GET", front+"/health;x", nil); resp.StatusCode != 401 {
			t.Fatalf("/health;x: %d", resp.StatusCode)
		}
	})

	t.Run("no token: 401 with the challenge", func(t *testing.T) {
		resp, body := f.do("GET", front+"/p", map[string]string{"Sec-Fetch-Dest": "empty"})
		if resp.StatusCode != 401 || body != "401 session-token-and-uat-missing" || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("%d %q %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("page load: sign-in with the original absolute URL", func(t *testing.T) {
		resp, _ := f.do("GET", front+"/docs?x=1&y=2", page(devBrowser))
		want := f.clerk.AccountsURL() + "/sign-in?redirect_url=" + url.QueryEscape(front+"/docs?x=1&y=2") + "&__clerk_db_jwt=dvb_test"
		if resp.StatusCode != 307 || resp.Header.Get("Location") != want || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// A POST of the same page is no navigation: 401.
		if resp, _ := f.do("POST", front+"/docs", page(devBrowser)); resp.StatusCode != 401 {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
	})

	t.Run("handshake: redirect_url is the original URL, the counter cookie reaches the browser", func(t *testing.T) {
		resp, _ := f.do("GET", front+"/p?x=1", page(devBrowser, past))
		q := handshakeQuery(t, f, resp)
		if q.Get("redirect_url") != front+"/p?x=1" || q.Get("__clerk_hs_reason") != "client-uat-but-no-session-token" {
			t.Fatalf("%v", q)
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 1 || !strings.HasPrefix(sc[0], "__clerk_redirect_count=1;") {
			t.Fatalf("Set-Cookie %q", sc)
		}
		// The dev-browser token in the original query.
		resp, _ = f.do("GET", front+"/p?__clerk_db_jwt=dvb_q", page())
		if q := handshakeQuery(t, f, resp); q.Get("__clerk_db_jwt") != "dvb_q" || q.Get("redirect_url") != front+"/p" {
			t.Fatalf("%v", q)
		}
	})

	t.Run("nonce in the original query: cookies set, the clean original URL", func(t *testing.T) {
		f.clerk.StoreHandshakePayload("fwdnonce", directives(adminTok, time.Now().Add(-time.Minute).Unix(), true))
		resp, _ := f.do("GET", front+"/p?x=1&__clerk_handshake_nonce=fwdnonce", page())
		if resp.StatusCode != 307 || resp.Header.Get("Location") != front+"/p?x=1" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 3 || !strings.HasPrefix(sc[0], "__session=") {
			t.Fatalf("Set-Cookie %q", sc)
		}
	})

	t.Run("CSRF: the original method, the front proxy's origin", func(t *testing.T) {
		cookie := "__session=" + adminTok + "; " + past
		resp, body := f.do("POST", front+"/api", map[string]string{"Cookie": cookie, "Origin": front})
		if resp.StatusCode != 200 {
			t.Fatalf("same origin: %d %s", resp.StatusCode, body)
		}
		for _, origin := range []string{auth, "https://evil.example"} {
			resp, body = f.do("POST", front+"/api", map[string]string{"Cookie": cookie, "Origin": origin})
			if resp.StatusCode != 403 || body != "403 csrf-origin-mismatch" {
				t.Fatalf("Origin %s: %d %q", origin, resp.StatusCode, body)
			}
		}
	})

	t.Run("a CORS preflight of the original request passes", func(t *testing.T) {
		resp, body := f.do("OPTIONS", front+"/api", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
		if resp.StatusCode != 200 || f.upstreamSaw(body)["_path"] != "/api" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("sign_out_path is the original path", func(t *testing.T) {
		_, sid, err := f.clerk.SignInClient(admin.ID)
		if err != nil {
			t.Fatal(err)
		}
		tok := f.mint(clerktest.TokenOptions{User: &admin, SessionID: sid})
		resp, _ := f.do("GET", front+"/sign-out", page(devBrowser, "__session="+tok, past))
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || f.clerk.SessionStatus(sid) != "revoked" {
			t.Fatalf("%d %q, session %s", resp.StatusCode, resp.Header.Get("Location"), f.clerk.SessionStatus(sid))
		}
		if sc := resp.Header.Values("Set-Cookie"); !slices.Contains(sc, "__session=; Path=/; Max-Age=0") {
			t.Fatalf("Set-Cookie %q", sc)
		}
	})

	t.Run("a client's own X-Original-URI beside forward_auth's X-Forwarded-Uri: 401", func(t *testing.T) {
		resp, body := f.do("GET", front+"/admin/x", with(bearer(memberTok), "X-Original-URI", "/health"))
		if resp.StatusCode != 401 || body != "401 forwarded-request-invalid" || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("%d %q %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("forwarded headers from an untrusted client are ignored, logged once", func(t *testing.T) {
		spoof := map[string]string{"X-Forwarded-Uri": "/health", "X-Forwarded-Method": "GET"}
		for range 2 {
			resp, body := f.do("GET", authu+"/auth", spoof)
			if resp.StatusCode != 401 || body != "401 session-token-and-uat-missing" {
				t.Fatalf("untrusted: %d %q", resp.StatusCode, body)
			}
		}
		// From a trusted peer (the test runs on loopback) they are read.
		if resp, _ := f.do("GET", auth+"/auth", spoof); resp.StatusCode != 200 {
			t.Fatalf("trusted: %d", resp.StatusCode)
		}
		logs, _ := os.ReadFile(logPath)
		if n := strings.Count(string(logs), "forwarded_request: a request describing another one"); n != 1 {
			t.Fatalf("logged %d times:\n%s", n, logs)
		}
	})

	t.Run("production: a resolved handshake's cookies come back in a reload", func(t *testing.T) {
		pfront := run.url("prod_front")
		tok := prod.mint(clerktest.TokenOptions{User: &admin})
		uat := time.Now().Add(-time.Minute).Unix()
		prod.clerk.StoreHandshakePayload("pnonce", directives(tok, uat, false))
		resp, _ := prod.do("GET", pfront+"/p?x=1", page("__clerk_handshake_nonce=pnonce", "__client_uat=1"))
		if resp.StatusCode != 307 || resp.Header.Get("Location") != pfront+"/p?x=1" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		want := append(directives(tok, uat, false), "__clerk_handshake_nonce=; Path=/; Max-Age=0")
		if sc := resp.Header.Values("Set-Cookie"); !slices.Equal(sc, want) {
			t.Fatalf("Set-Cookie\n got %q\nwant %q", sc, want)
		}
	})

	for _, c := range []struct {
		name string
		f    *fixture
		p    string
	}{{"development", dev, ""}, {"production", prod, "prod_"}} {
		t.Run("browser through the front proxy, "+c.name, func(t *testing.T) {
			f, site := c.f, run.url(c.p+"front")
			admin := f.clerk.AdminUser()
			b := newBrowser(t)
			b.signInFrom(f, site+"/docs?x=1", admin)
			// The cookies the handshake set stuck (a front proxy drops a 2xx
			// answer's Set-Cookie): no more round trips, and the nonce is
			// not redeemed again.
			handshakes := len(f.clerk.Handshakes())
			redeemed := f.clerk.Requests(clerktest.BAPIHandshakePayload)
			final, status, body := b.navigate(site+"/docs", nil)
			if status != 200 || final != site+"/docs" || len(b.trail) != 1 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
				t.Fatalf("next page: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
			}
			if n := len(f.clerk.Handshakes()); n != handshakes {
				t.Fatalf("%d more handshakes", n-handshakes)
			}
			if n := f.clerk.Requests(clerktest.BAPIHandshakePayload); n != redeemed {
				t.Fatalf("the nonce was redeemed %d more times", n-redeemed)
			}
		})
	}
}
