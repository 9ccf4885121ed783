package caddyclerk

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// handshakeConfig is the body of a config with two sites in front of
// clerk, {{<prefix>nonce}} redeeming nonces (secret_key) and
// {{<prefix>legacy}} with no secret key (legacy signed payloads). They
// listen on 127.0.0.1, the emulator's host, so cookies the emulator sets
// reach them as Clerk's parent-domain cookies would (cookies ignore ports).
func handshakeConfig(clerk *clerktest.Server, upstream, prefix string) string {
	return fmt.Sprintf(`http://127.0.0.1:{{%[1]snonce}} {
	clerk {
		publishable_key %s
		secret_key %s
		api_url %s
		frontend_api_url %s
		sign_in_url %s/sign-in
		sign_out_path /sign-out
		clock_skew 1s
	}
	reverse_proxy %s {%s
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
http://127.0.0.1:{{%[1]slegacy}} {
	clerk {
		publishable_key %[9]s
		frontend_api_url %s
		sign_in_url %s/sign-in
		clock_skew 1s
	}
	reverse_proxy %s {%s
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, prefix, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), clerk.FrontendAPIURL(), clerk.AccountsURL(),
		upstream, identityHeaders,
		clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL(), upstream, identityHeaders)
}

// newHandshakeFixture runs handshakeConfig in front of a new emulator.
func newHandshakeFixture(t *testing.T, opts ...clerktest.Option) *fixture {
	f := &fixture{t: t, clerk: clerktest.NewT(t, opts...), up: echoUpstream(t), client: testClient(true)}
	f.caddy = startCaddy(t, "", handshakeConfig(f.clerk, f.up.Listener.Addr().String(), ""))
	f.nonceSite, f.legacySite = f.caddy.url("nonce"), f.caddy.url("legacy")
	return f
}

// page is what a browser sends for a navigation, with these cookies.
func page(cookies ...string) map[string]string {
	h := map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"}
	if len(cookies) > 0 {
		h["Cookie"] = strings.Join(cookies, "; ")
	}
	return h
}

// handshakeQuery checks resp is Clerk's handshake redirect and returns its
// query.
func handshakeQuery(t *testing.T, f *fixture, resp *http.Response) url.Values {
	t.Helper()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 307 || loc == nil || !strings.HasPrefix(loc.String(), f.clerk.FrontendAPIURL()+"/v1/client/handshake?") {
		t.Fatalf("not a handshake: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("handshake redirect without Cache-Control: no-store")
	}
	return loc.Query()
}

func TestHandshakeStateMachine(t *testing.T) {
	f := newHandshakeFixture(t)
	admin := f.clerk.AdminUser()
	now := time.Now()
	fresh := f.mint(clerktest.TokenOptions{User: &admin})
	expired := f.mint(clerktest.TokenOptions{User: &admin, IssuedAt: now.Add(-time.Hour)})
	notYet := f.mint(clerktest.TokenOptions{User: &admin, IssuedAt: now.Add(time.Minute)})
	iatFuture := f.mint(clerktest.TokenOptions{User: &admin, IssuedAt: now.Add(time.Minute),
		Claims: map[string]any{"nbf": now.Add(-10 * time.Second).Unix()}})
	forged := f.mint(clerktest.TokenOptions{User: &admin, SigningKey: clerktest.GenerateKey()})
	uat := func(at time.Time) string { return fmt.Sprintf("__client_uat=%d", at.Unix()) }
	past := uat(now.Add(-time.Hour))

	cases := []struct {
		name    string
		url     string
		cookies []string
		reason  string
		devJWT  string // __clerk_db_jwt passed to the handshake
	}{
		{"development browser without a dev-browser token", "/p", nil, "dev-browser-missing", ""},
		{"back from the Account Portal with a dev-browser token", "/p?__clerk_db_jwt=dvb_q", nil, "dev-browser-sync", "dvb_q"},
		{"signed in at Clerk, no session cookie here", "/p", []string{devBrowser, past}, "client-uat-but-no-session-token", "dvb_test"},
		{"session cookie without __client_uat", "/p", []string{devBrowser, "__session=" + fresh}, "session-token-but-no-client-uat", "dvb_test"},
		{"token older than the last sign-in", "/p", []string{devBrowser, "__session=" + fresh, uat(now.Add(time.Hour))}, "session-token-iat-before-client-uat", "dvb_test"},
		{"expired token", "/p", []string{devBrowser, "__session=" + expired, past}, "session-token-expired-refresh-non-eligible-no-refresh-cookie", "dvb_test"},
		{"token not valid yet", "/p", []string{devBrowser, "__session=" + notYet, past}, "session-token-nbf", "dvb_test"},
		{"token issued in the future", "/p", []string{devBrowser, "__session=" + iatFuture, past}, "session-token-iat-in-the-future", "dvb_test"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, _ := f.do("GET", f.nonceSite+c.url, page(c.cookies...))
			q := handshakeQuery(t, f, resp)
			want := url.Values{
				"redirect_url":        {f.nonceSite + "/p"},
				"__clerk_api_version": {"2025-04-10"},
				"suffixed_cookies":    {"false"},
				"__clerk_hs_reason":   {c.reason},
				"format":              {"nonce"},
			}
			if c.devJWT != "" {
				want["__clerk_db_jwt"] = []string{c.devJWT}
			}
			if fmt.Sprint(q) != fmt.Sprint(want) {
				t.Errorf("handshake query\n got %v\nwant %v", q, want)
			}
			if sc := resp.Header.Values("Set-Cookie"); !slices.Equal(sc, []string{"__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"}) {
				t.Errorf("Set-Cookie %q", sc)
			}
			// The same state on a fetch or a form POST: 401 with the reason.
			for _, m := range []string{"GET", "POST"} {
				h := page(c.cookies...)
				if m == "GET" {
					h["Sec-Fetch-Dest"] = "empty"
				}
				resp, body := f.do(m, f.nonceSite+c.url, h)
				reason := c.reason
				if m == "POST" && strings.HasPrefix(reason, "session-token-expired") {
					reason = "session-token-expired-refresh-non-eligible-non-get"
				}
				if strings.HasPrefix(reason, "dev-browser") {
					continue // only page loads ask for a dev browser
				}
				if resp.StatusCode != 401 || body != "401 "+reason {
					t.Errorf("%s: %d %q, want 401 %s", m, resp.StatusCode, body, reason)
				}
			}
		})
	}

	t.Run("signed in: the page is served", func(t *testing.T) {
		resp, body := f.do("GET", f.nonceSite+"/p", page(devBrowser, "__session="+fresh, past))
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("signed out: sign-in, carrying the dev-browser token", func(t *testing.T) {
		for _, cookies := range [][]string{{devBrowser}, {devBrowser, "__client_uat=0"}} {
			resp, _ := f.do("GET", f.nonceSite+"/p?x=1", page(cookies...))
			want := f.clerk.AccountsURL() + "/sign-in?redirect_url=" + url.QueryEscape(f.nonceSite+"/p?x=1") + "&__clerk_db_jwt=dvb_test"
			if resp.StatusCode != 307 || resp.Header.Get("Location") != want {
				t.Fatalf("%v: %d %q", cookies, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})

	t.Run("a forged token signs out, it does not handshake", func(t *testing.T) {
		resp, _ := f.do("GET", f.nonceSite+"/p", page(devBrowser, "__session="+forged, past))
		if resp.StatusCode != 307 || !strings.HasPrefix(resp.Header.Get("Location"), f.clerk.AccountsURL()+"/sign-in?") {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		_, body := f.do("GET", f.nonceSite+"/p", map[string]string{"Cookie": devBrowser + "; __session=" + forged + "; " + past})
		if body != "401 token-invalid-signature" {
			t.Fatalf("fetch: %q", body)
		}
	})

	t.Run("loop guard: the third round trip gives up", func(t *testing.T) {
		resp, _ := f.do("GET", f.nonceSite+"/p", page(devBrowser, past, "__clerk_redirect_count=2"))
		handshakeQuery(t, f, resp)
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 1 || !strings.HasPrefix(sc[0], "__clerk_redirect_count=3;") {
			t.Fatalf("Set-Cookie %q", sc)
		}
		resp, _ = f.do("GET", f.nonceSite+"/p", page(devBrowser, past, "__clerk_redirect_count=3"))
		if resp.StatusCode != 307 || !strings.HasPrefix(resp.Header.Get("Location"), f.clerk.AccountsURL()+"/sign-in?") {
			t.Fatalf("after 3 round trips: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("without a secret key the handshake asks for the signed payload", func(t *testing.T) {
		resp, _ := f.do("GET", f.legacySite+"/p", page(devBrowser, past))
		if q := handshakeQuery(t, f, resp); q.Has("format") {
			t.Fatalf("format requested without a secret key: %v", q)
		}
	})

	t.Run("suffixed cookies are used and announced", func(t *testing.T) {
		sfx := "_" + f.clerk.CookieSuffix()
		resp, _ := f.do("GET", f.nonceSite+"/p", page("__clerk_db_jwt"+sfx+"=dvb_s", "__session"+sfx+"="+expired, "__client_uat"+sfx+"=1"))
		q := handshakeQuery(t, f, resp)
		if q.Get("suffixed_cookies") != "true" || q.Get("__clerk_db_jwt") != "dvb_s" {
			t.Fatalf("%v", q)
		}
		// Another app's plain cookie on the same domain: the suffixed one wins.
		other := f.mint(clerktest.TokenOptions{User: &admin, Issuer: "https://clerk.other.example"})
		resp, body := f.do("GET", f.nonceSite+"/p", page("__clerk_db_jwt"+sfx+"=dvb_s", "__session"+sfx+"="+fresh, "__client_uat"+sfx+"=1",
			"__session="+other, "__client_uat=0"))
		if resp.StatusCode != 200 {
			t.Fatalf("suffixed session beside another instance's plain one: %d %s", resp.StatusCode, body)
		}
		// A malformed plain cookie makes the request signed out (Clerk's
		// rule), even beside a good suffixed one.
		resp, _ = f.do("GET", f.nonceSite+"/p", page("__clerk_db_jwt=dvb_p", "__session"+sfx+"="+fresh, "__client_uat"+sfx+"=1",
			"__session=garbage"))
		if q := handshakeQuery(t, f, resp); q.Get("suffixed_cookies") != "false" {
			t.Fatalf("%v", q)
		}
	})
}

// directives are the Set-Cookie values a signed-in handshake returns.
func directives(token string, uat int64, dev bool) []string {
	d := []string{
		"__session=" + token + "; Path=/; SameSite=Lax",
		fmt.Sprintf("__client_uat=%d; Path=/; Max-Age=315360000; SameSite=Lax", uat),
	}
	if dev {
		d = append(d, "__clerk_db_jwt=dvb_new; Path=/; Max-Age=31536000; SameSite=Lax")
	}
	return d
}

func TestHandshakeResolution(t *testing.T) {
	f := newHandshakeFixture(t)
	admin := f.clerk.AdminUser()
	tok := f.mint(clerktest.TokenOptions{User: &admin})
	uat := time.Now().Add(-time.Minute).Unix()

	t.Run("development: nonce redeemed, cookies set, clean URL", func(t *testing.T) {
		f.clerk.StoreHandshakePayload("nonce1", append(directives(tok, uat, true), "bad\r\nX-Evil: 1", "=novalue"))
		resp, _ := f.do("GET", f.nonceSite+"/p?x=1&__clerk_handshake_nonce=nonce1&y=2", page())
		if resp.StatusCode != 307 || resp.Header.Get("Location") != f.nonceSite+"/p?x=1&y=2" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if sc := resp.Header.Values("Set-Cookie"); !slices.Equal(sc, directives(tok, uat, true)) {
			t.Fatalf("Set-Cookie %q", sc)
		}
	})

	t.Run("a nonce on a fetch is not redeemed", func(t *testing.T) {
		before := f.clerk.Requests(clerktest.BAPIHandshakePayload)
		f.do("GET", f.nonceSite+"/p?__clerk_handshake_nonce=nonce1", map[string]string{"Sec-Fetch-Dest": "empty"})
		f.do("POST", f.nonceSite+"/p?__clerk_handshake_nonce=nonce1", page())
		if n := f.clerk.Requests(clerktest.BAPIHandshakePayload); n != before {
			t.Fatalf("%d payload requests for non-page requests", n-before)
		}
	})

	t.Run("an unknown or malformed nonce is not applied, and leaves the URL", func(t *testing.T) {
		// Passing the request on would put the nonce in Caddy's error and
		// proxy logs (they record request URIs): reload the clean URL.
		for _, n := range []string{"nonce-unknown", "bad%20nonce"} {
			resp, _ := f.do("GET", f.nonceSite+"/p?x=1&__clerk_handshake_nonce="+n, page(devBrowser))
			if resp.StatusCode != 307 || resp.Header.Get("Location") != f.nonceSite+"/p?x=1" || len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Fatalf("%s: %d %q %q", n, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"))
			}
		}
	})

	t.Run("a payload whose session token does not verify is not applied", func(t *testing.T) {
		forged := f.mint(clerktest.TokenOptions{User: &admin, SigningKey: clerktest.GenerateKey()})
		f.clerk.StoreHandshakePayload("nonce2", directives(forged, uat, true))
		resp, _ := f.do("GET", f.nonceSite+"/p?__clerk_handshake_nonce=nonce2", page(devBrowser))
		for _, sc := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(sc, "__session=") {
				t.Fatalf("applied: %q", sc)
			}
		}
	})
}

func TestHandshakeResolutionProduction(t *testing.T) {
	f := newHandshakeFixture(t, clerktest.Production())
	admin := f.clerk.AdminUser()
	tok := f.mint(clerktest.TokenOptions{User: &admin})
	uat := time.Now().Add(-time.Minute).Unix()

	t.Run("production serves the request with the new cookies", func(t *testing.T) {
		f.clerk.StoreHandshakePayload("pnonce", directives(tok, uat, false))
		resp, body := f.do("GET", f.nonceSite+"/p", page("__clerk_handshake_nonce=pnonce", "__client_uat=1"))
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		want := append(directives(tok, uat, false), "__clerk_handshake_nonce=; Path=/; Max-Age=0")
		if sc := resp.Header.Values("Set-Cookie"); !slices.Equal(sc, want) {
			t.Fatalf("Set-Cookie\n got %q\nwant %q", sc, want)
		}
	})

	t.Run("production: no dev browser, signed out goes to sign-in", func(t *testing.T) {
		resp, _ := f.do("GET", f.nonceSite+"/p", page())
		want := f.clerk.AccountsURL() + "/sign-in?redirect_url=" + url.QueryEscape(f.nonceSite+"/p")
		if resp.StatusCode != 307 || resp.Header.Get("Location") != want {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = f.do("GET", f.nonceSite+"/p", page("__client_uat=5"))
		if q := handshakeQuery(t, f, resp); q.Get("__clerk_hs_reason") != "client-uat-but-no-session-token" || q.Has("__clerk_db_jwt") {
			t.Fatalf("%v", q)
		}
	})

	t.Run("signed-out payload: cookies cleared, then sign-in", func(t *testing.T) {
		f.clerk.StoreHandshakePayload("pout", []string{"__session=; Path=/; Max-Age=0", "__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax",
			"__clerk_handshake_nonce=; Path=/; Max-Age=0"})
		resp, _ := f.do("GET", f.nonceSite+"/p", page("__clerk_handshake_nonce=pout", "__client_uat=1"))
		if resp.StatusCode != 307 || !strings.HasPrefix(resp.Header.Get("Location"), f.clerk.AccountsURL()+"/sign-in?") {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 3 {
			t.Fatalf("Set-Cookie %q", sc)
		}
	})

	t.Run("an unknown nonce cookie is cleared, not retried on every page", func(t *testing.T) {
		resp, _ := f.do("GET", f.nonceSite+"/p", page("__clerk_handshake_nonce=gone", "__client_uat=1"))
		if sc := resp.Header.Values("Set-Cookie"); !slices.Contains(sc, "__clerk_handshake_nonce=; Path=/; Max-Age=0") {
			t.Fatalf("Set-Cookie %q", sc)
		}
	})
}

func TestSignOut(t *testing.T) {
	f := newHandshakeFixture(t)
	admin := f.clerk.AdminUser()
	signIn := func() (sid, tok string) {
		_, sid, err := f.clerk.SignInClient(admin.ID)
		if err != nil {
			t.Fatal(err)
		}
		return sid, f.mint(clerktest.TokenOptions{User: &admin, SessionID: sid})
	}
	past := fmt.Sprintf("__client_uat=%d", time.Now().Add(-time.Hour).Unix())

	t.Run("revokes the session, clears the cookies, goes on", func(t *testing.T) {
		sid, tok := signIn()
		resp, _ := f.do("GET", f.nonceSite+"/sign-out", page(devBrowser, "__session="+tok, past))
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if st := f.clerk.SessionStatus(sid); st != "revoked" {
			t.Fatalf("session %s", st)
		}
		sfx := "_" + f.clerk.CookieSuffix()
		want := []string{"__session=; Path=/; Max-Age=0", "__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax",
			"__session" + sfx + "=; Path=/; Max-Age=0", "__client_uat" + sfx + "=0; Path=/; Max-Age=315360000; SameSite=Lax"}
		if sc := resp.Header.Values("Set-Cookie"); !slices.Equal(sc, want) {
			t.Fatalf("Set-Cookie %q", sc)
		}
	})

	t.Run("an expired token still names the session", func(t *testing.T) {
		_, sid, _ := f.clerk.SignInClient(admin.ID)
		old := f.mint(clerktest.TokenOptions{User: &admin, SessionID: sid, IssuedAt: time.Now().Add(-3 * time.Hour)})
		f.do("GET", f.nonceSite+"/sign-out", page(devBrowser, "__session="+old, past))
		if st := f.clerk.SessionStatus(sid); st != "revoked" {
			t.Fatalf("session %s", st)
		}
	})

	t.Run("a forged token revokes nothing", func(t *testing.T) {
		_, sid, _ := f.clerk.SignInClient(admin.ID)
		forged := f.mint(clerktest.TokenOptions{User: &admin, SessionID: sid, SigningKey: clerktest.GenerateKey()})
		resp, _ := f.do("GET", f.nonceSite+"/sign-out", page(devBrowser, "__session="+forged, "__client_uat=0"))
		if resp.StatusCode != 303 || f.clerk.SessionStatus(sid) != "active" {
			t.Fatalf("%d, session %s", resp.StatusCode, f.clerk.SessionStatus(sid))
		}
	})

	t.Run("cross-site POST is refused, other methods are not allowed", func(t *testing.T) {
		sid, tok := signIn()
		resp, _ := f.do("POST", f.nonceSite+"/sign-out", map[string]string{"Cookie": "__session=" + tok + "; " + past,
			"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
		if resp.StatusCode != 403 || f.clerk.SessionStatus(sid) != "active" {
			t.Fatalf("cross-site: %d, session %s", resp.StatusCode, f.clerk.SessionStatus(sid))
		}
		resp, _ = f.do("POST", f.nonceSite+"/sign-out", map[string]string{"Cookie": "__session=" + tok + "; " + past,
			"Sec-Fetch-Site": "same-origin"})
		if resp.StatusCode != 303 || f.clerk.SessionStatus(sid) != "revoked" {
			t.Fatalf("same-origin: %d, session %s", resp.StatusCode, f.clerk.SessionStatus(sid))
		}
		if resp, _ := f.do("PUT", f.nonceSite+"/sign-out", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
			t.Fatalf("PUT: %d", resp.StatusCode)
		}
	})

	t.Run("no session cookie but signed in at Clerk: fetch one first", func(t *testing.T) {
		resp, _ := f.do("GET", f.nonceSite+"/sign-out", page(devBrowser, past))
		if q := handshakeQuery(t, f, resp); q.Get("redirect_url") != f.nonceSite+"/sign-out" {
			t.Fatalf("%v", q)
		}
	})
}

// browser follows redirects as a browser does for a navigation, keeping
// cookies, and records every hop.
type browser struct {
	t     *testing.T
	c     *http.Client
	trail []string
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// navigate loads u (a POST form when form is set) and follows redirects.
func (b *browser) navigate(u string, form url.Values) (final string, status int, body string) {
	b.t.Helper()
	b.trail = nil
	for hop := 0; hop < 12; hop++ {
		var req *http.Request
		if form != nil {
			req, _ = http.NewRequest("POST", u, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			form = nil
		} else {
			req, _ = http.NewRequest("GET", u, nil)
		}
		req.Header.Set("Sec-Fetch-Dest", "document")
		req.Header.Set("Accept", "text/html")
		resp, err := b.c.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.trail = append(b.trail, fmt.Sprintf("%d %s", resp.StatusCode, u))
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return u, resp.StatusCode, string(raw)
		}
		next, err := url.Parse(u)
		if err == nil {
			next, err = next.Parse(resp.Header.Get("Location"))
		}
		if err != nil {
			b.t.Fatalf("bad Location %q", resp.Header.Get("Location"))
		}
		u = next.String()
	}
	b.t.Fatalf("redirect loop:\n%s", strings.Join(b.trail, "\n"))
	return "", 0, ""
}

// fetch is a script's fetch() from the page: no navigation, no redirects.
func (b *browser) fetch(u string) (int, string) {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Sec-Fetch-Dest", "empty")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// signInAs submits the emulator's Account Portal form, as clicking a user
// does.
func (b *browser) signInAs(f *fixture, portal string, user clerktest.User) (string, int, string) {
	b.t.Helper()
	if !strings.HasPrefix(portal, f.clerk.AccountsURL()+"/sign-in?") {
		b.t.Fatalf("not on the sign-in page: %s\n%s", portal, strings.Join(b.trail, "\n"))
	}
	pu, _ := url.Parse(portal)
	form := url.Values{"user_id": {user.ID}, "redirect_url": {pu.Query().Get("redirect_url")},
		"__clerk_db_jwt": {pu.Query().Get("__clerk_db_jwt")}}
	return b.navigate(f.clerk.AccountsURL()+"/sign-in", form)
}

// signInFrom is a first visit to page: sent to the Account Portal, signed
// in as user, back on page with the user's identity upstream. It returns
// the page's body.
func (b *browser) signInFrom(f *fixture, page string, user clerktest.User) string {
	b.t.Helper()
	final, status, _ := b.navigate(page, nil)
	if status != 200 || !strings.HasPrefix(final, f.clerk.AccountsURL()+"/sign-in?") {
		b.t.Fatalf("first visit ended at %d %s\n%s", status, final, strings.Join(b.trail, "\n"))
	}
	final, status, body := b.signInAs(f, final, user)
	if status != 200 || final != page || f.upstreamSaw(body)["X-Clerk-User-Id"] != user.ID {
		b.t.Fatalf("after sign-in: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
	}
	return body
}

func (f *fixture) lastHandshakeReason() string {
	hs := f.clerk.Handshakes()
	if len(hs) == 0 {
		return ""
	}
	return hs[len(hs)-1].Get("__clerk_hs_reason")
}

// TestBrowserFlow walks the whole flow a static site sees, against the
// emulator's Frontend API and Account Portal: sign in, outlive the token,
// fetch from the page, sign out; development and production instances,
// nonce and legacy payloads. Each case has its own emulator and sites, all
// in one Caddy config, so that the cases (mostly waiting for a token to
// expire) run in parallel.
func TestBrowserFlow(t *testing.T) {
	cases := []struct {
		name   string
		opts   []clerktest.Option
		legacy bool     // the legacy site, else the nonce site
		signIn []string // the hops from sign-in to the page, by host
	}{
		{"development, nonce", nil, false, nil},
		{"development, legacy payload", nil, true, nil},
		{"production, nonce", []clerktest.Option{clerktest.Production()}, false, nil},
		{"production, legacy payload", []clerktest.Option{clerktest.Production()}, true, nil},
	}
	up := echoUpstream(t)
	fixtures := make([]*fixture, len(cases))
	var body strings.Builder
	for i, tc := range cases {
		clerk := clerktest.NewT(t, append(tc.opts, clerktest.WithSessionLifetime(time.Second))...)
		fixtures[i] = &fixture{clerk: clerk, up: up, client: testClient(true)}
		body.WriteString(handshakeConfig(clerk, up.Listener.Addr().String(), fmt.Sprintf("case%d_", i)))
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
			admin := f.clerk.AdminUser()
			b := newBrowser(t)

			b.signInFrom(f, site+"/docs?x=1", admin)

			// The 1 s token expires (with 1 s of clock skew allowed); the
			// next page load renews it without a visit to sign-in.
			time.Sleep(3 * time.Second)
			final, status, body := b.navigate(site+"/docs", nil)
			if status != 200 || final != site+"/docs" || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
				t.Fatalf("after expiry: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
			}
			if r := f.lastHandshakeReason(); r != "session-token-expired-refresh-non-eligible-no-refresh-cookie" {
				t.Fatalf("renewed by a handshake for %q\n%s", r, strings.Join(b.trail, "\n"))
			}
			if status, body := b.fetch(site + "/api/whoami"); status != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
				t.Fatalf("fetch: %d %s", status, body)
			}

			if tc.legacy {
				return // sign_out_path needs the secret key
			}
			sessions := f.clerk.Sessions()
			final, status, _ = b.navigate(site+"/sign-out", nil)
			if status != 200 || !strings.HasPrefix(final, f.clerk.AccountsURL()+"/sign-in?") {
				t.Fatalf("after sign-out: %d %s\n%s", status, final, strings.Join(b.trail, "\n"))
			}
			for _, s := range sessions {
				if s.UserID == admin.ID && f.clerk.SessionStatus(s.ID) == "active" {
					t.Fatalf("session %s still active after sign-out", s.ID)
				}
			}
			if status, _ := b.fetch(site + "/api/whoami"); status != 401 {
				t.Fatalf("fetch after sign-out: %d", status)
			}
		})
	}
}
