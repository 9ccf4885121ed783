package authn

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// now is the fake clock of every table test: tokens are minted and
// verified at it.
var now = time.Unix(1_800_000_000, 0)

// fakeRedeemer answers nonces from a map and counts calls.
type fakeRedeemer struct {
	payloads map[string][]string
	calls    int
}

func (f *fakeRedeemer) HandshakePayload(_ context.Context, nonce string) ([]string, error) {
	f.calls++
	if d, ok := f.payloads[nonce]; ok {
		return d, nil
	}
	return nil, errors.New("nonce not found")
}

// key signs for every env: generating one per test would cost more than
// the tests.
var (
	key     *rsa.PrivateKey
	keyOnce sync.Once
)

type env struct {
	t        *testing.T
	clerk    *clerktest.Server
	a        *Authenticator
	redeemer *fakeRedeemer
	inst     *verifier.Instance
}

// newEnv is an Authenticator for a development (or production) instance,
// verifying with the emulator's key and the fake clock; nonce redeems
// nonces (a secret key) instead of asking for the signed legacy token.
// opts adjust the verifier's and the authenticator's configurations.
func newEnv(t *testing.T, production, nonce bool, opts ...func(*verifier.Config, *Config)) *env {
	t.Helper()
	keyOnce.Do(func() { key = clerktest.GenerateKey() })
	copts := []clerktest.Option{clerktest.WithClock(func() time.Time { return now }), clerktest.WithKey(key)}
	if production {
		copts = append(copts, clerktest.Production())
	}
	clerk := clerktest.NewT(t, copts...)
	keys, err := verifier.StaticPEM(clerk.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	vcfg := verifier.Config{Keys: keys, Issuer: clerk.Issuer(), Now: func() time.Time { return now }}
	inst, err := verifier.ParsePublishableKey(clerk.PublishableKey())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clerk: clerk, inst: inst, redeemer: &fakeRedeemer{payloads: map[string][]string{}}}
	cfg := Config{Instance: inst, FrontendAPI: clerk.FrontendAPIURL(), SessionCookie: true,
		SignInURL: "https://accounts.example/sign-in", CSRF: true, TrustedOrigins: []string{"https://app.example"},
		Now: func() time.Time { return now }}
	if nonce {
		cfg.Redeemer = e.redeemer
	}
	for _, o := range opts {
		o(&vcfg, &cfg)
	}
	if cfg.Verifier, err = verifier.New(vcfg); err != nil {
		t.Fatal(err)
	}
	e.a = New(cfg)
	return e
}

func (e *env) token(o clerktest.TokenOptions) string {
	if o.User == nil && o.Subject == "" {
		u := e.clerk.AdminUser()
		o.User = &u
	}
	return e.clerk.MustMint(o)
}

// legacy signs a legacy handshake payload with the instance key.
func (e *env) legacy(directives ...string) string {
	tok, err := clerktest.Sign(map[string]any{"alg": "RS256", "kid": e.clerk.CurrentKeyID(), "typ": "JWT"},
		map[string]any{"handshake": directives}, e.clerk.PrivateKey(e.clerk.CurrentKeyID()))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// req builds a request: kind is "page" (a navigation), "fetch" or "post".
func req(kind, target string, cookies ...string) *http.Request {
	method := http.MethodGet
	if kind == "post" {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, "http://site.example"+target, nil)
	if kind == "page" {
		r.Header.Set("Sec-Fetch-Dest", "document")
	} else {
		r.Header.Set("Sec-Fetch-Dest", "empty")
	}
	if len(cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(cookies, "; "))
	}
	return r
}

// state is Authenticate into a new State.
func (a *Authenticator) state(ctx context.Context, req Request) State {
	var st State
	a.Authenticate(ctx, req, &st)
	return st
}

func uat(t time.Time) string { return "__client_uat=" + strconv.FormatInt(t.Unix(), 10) }

func TestAuthenticate(t *testing.T) {
	dev := newEnv(t, false, true)
	valid := dev.token(clerktest.TokenOptions{})
	old := dev.token(clerktest.TokenOptions{IssuedAt: now.Add(-time.Hour)})
	db := "__clerk_db_jwt=dvb_1"
	type want struct {
		status     Status
		reason     Reason
		location   string // prefix; "" means none
		fromCookie bool
		cookies    []string // prefixes of Set-Cookie values, in order
		loop       bool
	}
	handshakeAt := dev.clerk.FrontendAPIURL() + "/v1/client/handshake?redirect_url="
	signIn := "https://accounts.example/sign-in?redirect_url="
	for _, tc := range []struct {
		name string
		r    *http.Request
		auth string
		want want
	}{
		{"bearer", req("fetch", "/api"), "Bearer " + valid, want{status: SignedIn}},
		{"bare token", req("fetch", "/api"), valid, want{status: SignedIn}},
		{"other scheme is no token", req("fetch", "/api"), "Basic " + valid, want{status: SignedOut, reason: ReasonSessionTokenAndUATMissing}},
		{"bearer wins over cookies", req("fetch", "/api", "__session=garbage", uat(now)), "Bearer " + valid, want{status: SignedIn}},
		{"bearer expired", req("fetch", "/api"), "Bearer " + old, want{status: SignedOut, reason: ReasonTokenExpired}},
		{"bearer expired on a page load goes to sign-in", req("page", "/"), "Bearer " + old,
			want{status: SignedOut, reason: ReasonTokenExpired, location: signIn + url.QueryEscape("http://site.example/")}},
		{"bearer POST is no CSRF case", req("post", "/api"), "Bearer " + valid, want{status: SignedIn}},
		{"nothing, fetch", req("fetch", "/api"), "", want{status: SignedOut, reason: ReasonSessionTokenAndUATMissing}},
		{"nothing, page: dev browser first", req("page", "/docs"), "",
			want{status: Handshake, reason: ReasonDevBrowserMissing, location: handshakeAt, cookies: []string{"__clerk_redirect_count=1;"}}},
		{"signed out with a dev browser, page", req("page", "/docs?x=1", db), "",
			want{status: SignedOut, reason: ReasonSessionTokenAndUATMissing, location: signIn + url.QueryEscape("http://site.example/docs?x=1") + "&__clerk_db_jwt=dvb_1"}},
		{"dev browser in the query", req("page", "/docs?__clerk_db_jwt=dvb_2", "__session="+valid, uat(now)), "",
			want{status: Handshake, reason: ReasonDevBrowserSync, location: handshakeAt + url.QueryEscape("http://site.example/docs") + "&"}},
		{"cookie session", req("fetch", "/api", "__session="+valid, uat(now.Add(-time.Minute))), "", want{status: SignedIn, fromCookie: true}},
		{"cookie session, page", req("page", "/", db, "__session="+valid, uat(now.Add(-time.Minute))), "", want{status: SignedIn, fromCookie: true}},
		{"session without client_uat, page", req("page", "/", db, "__session="+valid), "",
			want{status: Handshake, reason: ReasonSessionWithoutClientUAT, location: handshakeAt}},
		{"session without client_uat, fetch", req("fetch", "/api", "__session="+valid), "", want{status: SignedOut, reason: ReasonSessionWithoutClientUAT}},
		{"client_uat without session, page", req("page", "/", db, uat(now)), "",
			want{status: Handshake, reason: ReasonClientUATWithoutSession, location: handshakeAt}},
		{"client_uat without session, fetch", req("fetch", "/api", uat(now)), "", want{status: SignedOut, reason: ReasonClientUATWithoutSession}},
		{"signed in elsewhere since", req("page", "/", db, "__session="+valid, uat(now.Add(time.Minute))), "",
			want{status: Handshake, reason: ReasonIATBeforeClientUAT, location: handshakeAt}},
		{"expired, page", req("page", "/", db, "__session="+old, uat(now.Add(-2*time.Hour))), "",
			want{status: Handshake, reason: ReasonExpiredNoRefreshCookie, location: handshakeAt}},
		{"expired, POST", req("post", "/api", "__session="+old, uat(now.Add(-2*time.Hour))), "",
			want{status: SignedOut, reason: ReasonExpiredNonGet}},
		{"malformed session cookie", req("fetch", "/api", "__session=x.y", uat(now)), "", want{status: SignedOut, reason: ReasonTokenInvalid}},
		{"loop guard", req("page", "/", db, uat(now), "__clerk_redirect_count=3"), "",
			want{status: SignedOut, reason: ReasonClientUATWithoutSession, location: signIn, loop: true}},
		{"loop counter below the guard", req("page", "/", db, uat(now), "__clerk_redirect_count=2"), "",
			want{status: Handshake, reason: ReasonClientUATWithoutSession, location: handshakeAt, cookies: []string{"__clerk_redirect_count=3;"}}},
		{"cross-site POST with the cookie", withHeader(req("post", "/api", "__session="+valid, uat(now.Add(-time.Minute))), "Sec-Fetch-Site", "cross-site"), "",
			want{status: Forbidden, reason: ReasonCSRF, fromCookie: true}},
		{"same-origin POST with the cookie", withHeader(req("post", "/api", "__session="+valid, uat(now.Add(-time.Minute))), "Sec-Fetch-Site", "same-origin"), "",
			want{status: SignedIn, fromCookie: true}},
		{"trusted origin POST", withHeader(req("post", "/api", "__session="+valid, uat(now.Add(-time.Minute))), "Origin", "https://app.example"), "",
			want{status: SignedIn, fromCookie: true}},
		{"POST with no origin signal", req("post", "/api", "__session="+valid, uat(now.Add(-time.Minute))), "",
			want{status: Forbidden, reason: ReasonCSRF, fromCookie: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.auth != "" {
				tc.r.Header.Set("Authorization", tc.auth)
			}
			st := dev.a.state(context.Background(), Request{HTTP: tc.r})
			checkState(t, st, tc.want.status, tc.want.reason, tc.want.location, tc.want.cookies)
			if st.FromCookie != tc.want.fromCookie || st.LoopStopped != tc.want.loop {
				t.Fatalf("fromCookie %v loop %v, want %v %v", st.FromCookie, st.LoopStopped, tc.want.fromCookie, tc.want.loop)
			}
			if (st.Status == SignedIn || st.Status == Forbidden) && st.Claims == nil {
				t.Fatal("no claims")
			}
			if st.Status == Handshake || st.Location != "" {
				if !st.NoStore {
					t.Fatal("a redirect without Cache-Control: no-store")
				}
			}
		})
	}
}

func withHeader(r *http.Request, k, v string) *http.Request {
	r.Header.Set(k, v)
	return r
}

func checkState(t *testing.T, st State, status Status, reason Reason, location string, cookies []string) {
	t.Helper()
	if st.Status != status || st.Reason != reason {
		t.Fatalf("got %v %q (%v), want %v %q", st.Status, st.Reason, st.Err, status, reason)
	}
	if (location == "") != (st.Location == "") || !strings.HasPrefix(st.Location, location) {
		t.Fatalf("Location %q, want prefix %q", st.Location, location)
	}
	if cookies != nil {
		if len(st.SetCookies) != len(cookies) {
			t.Fatalf("Set-Cookie %q, want %q", st.SetCookies, cookies)
		}
		for i, c := range cookies {
			if !strings.HasPrefix(st.SetCookies[i], c) {
				t.Fatalf("Set-Cookie %q, want %q", st.SetCookies, cookies)
			}
		}
	}
}

// TestHandshakeURL: the parameters Clerk's Frontend API reads, the page to
// come back to without Clerk's own parameters, the dev-browser token on
// development instances, format=nonce only with a redeemer.
func TestHandshakeURL(t *testing.T) {
	for _, tc := range []struct {
		name             string
		production, nonc bool
		trusted          bool
		wantRedirect     string
		wantFormat       string
		wantDevBrowser   string
	}{
		{"development, nonce", false, true, false, "http://site.example/docs?a=1", "nonce", "dvb_1"},
		{"development, legacy", false, false, false, "http://site.example/docs?a=1", "", "dvb_1"},
		{"production, trusted proxy", true, true, true, "https://public.example/docs?a=1", "nonce", ""},
		{"production, untrusted forwarded headers", true, true, false, "http://site.example/docs?a=1", "nonce", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.production, tc.nonc)
			r := req("page", "/docs?a=1&__clerk_handshake_help=1&__clerk_help=1&__dev_session=x", "__clerk_db_jwt=dvb_1", uat(now))
			r.Header.Set("X-Forwarded-Host", "public.example")
			r.Header.Set("X-Forwarded-Proto", "https")
			st := e.a.state(context.Background(), Request{HTTP: r, TrustedProxy: tc.trusted})
			if st.Status != Handshake {
				t.Fatalf("%v %q", st.Status, st.Reason)
			}
			u, err := url.Parse(st.Location)
			if err != nil || u.Path != "/v1/client/handshake" {
				t.Fatalf("Location %q", st.Location)
			}
			q := u.Query()
			if got := q.Get("redirect_url"); got != strings.Replace(tc.wantRedirect, "?a=1", "?a=1&__clerk_handshake_help=1", 1) {
				t.Fatalf("redirect_url %q", got)
			}
			if q.Get("format") != tc.wantFormat || q.Get(queryDevBrowser) != tc.wantDevBrowser ||
				q.Get("__clerk_api_version") != clerkAPIVersion || q.Get("__clerk_hs_reason") != string(ReasonClientUATWithoutSession) ||
				q.Get("suffixed_cookies") != "false" {
				t.Fatalf("query %v", q)
			}
			if q.Has("__session") {
				t.Fatal("a session token in the handshake URL")
			}
		})
	}
}

// TestResolve: a handshake that comes back, by nonce or legacy token, in
// the URL or a cookie, resolved or not.
func TestResolve(t *testing.T) {
	type want struct {
		status   Status
		reason   Reason
		location string
		result   string
		cookies  []string
		calls    int
	}
	cases := []struct {
		name             string
		production, nonc bool
		build            func(e *env) *http.Request
		want             want
	}{
		{"development nonce: reload the clean URL", false, true, func(e *env) *http.Request {
			e.redeemer.payloads["n1"] = []string{"__session=" + e.token(clerktest.TokenOptions{}) + "; Path=/", uat(now) + "; Path=/"}
			return req("page", "/docs?__clerk_handshake_nonce=n1&x=1", "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs?x=1", HandshakeResolved, []string{"__session=", "__client_uat="}, 1}},
		{"unknown nonce in the URL: reload clean, nothing applied", false, true, func(e *env) *http.Request {
			return req("page", "/docs?__clerk_handshake_nonce=nope", "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeFailed, []string{}, 1}},
		{"malformed nonce is never sent", false, true, func(e *env) *http.Request {
			return req("page", "/docs?__clerk_handshake_nonce=a%2Fb", "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeFailed, []string{}, 0}},
		{"a nonce on a fetch is not redeemed", false, true, func(e *env) *http.Request {
			return req("fetch", "/api?__clerk_handshake_nonce=n1")
		}, want{SignedOut, ReasonSessionTokenAndUATMissing, "", "", nil, 0}},
		{"directives with a token that does not verify", false, true, func(e *env) *http.Request {
			e.redeemer.payloads["n2"] = []string{"__session=" + e.token(clerktest.TokenOptions{SigningKey: clerktest.GenerateKey()}) + "; Path=/"}
			return req("page", "/docs?__clerk_handshake_nonce=n2", "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeFailed, []string{}, 1}},
		{"directives with CR/LF are dropped", false, true, func(e *env) *http.Request {
			e.redeemer.payloads["n3"] = []string{"__session=x\r\nSet-Cookie: evil=1", uat(now) + "; Path=/"}
			return req("page", "/docs?__clerk_handshake_nonce=n3", "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeResolved, []string{"__client_uat="}, 1}},
		{"production nonce cookie: serve the page signed in", true, true, func(e *env) *http.Request {
			e.redeemer.payloads["n4"] = []string{"__session=" + e.token(clerktest.TokenOptions{}) + "; Path=/", uat(now) + "; Path=/"}
			return req("page", "/docs", "__clerk_handshake_nonce=n4")
		}, want{SignedIn, "", "", HandshakeResolved, []string{"__session=", "__client_uat=", "__clerk_handshake_nonce=; Path=/; Max-Age=0"}, 1}},
		{"production nonce cookie cleared by Clerk's own directive", true, true, func(e *env) *http.Request {
			e.redeemer.payloads["n5"] = []string{"__session=" + e.token(clerktest.TokenOptions{}) + "; Path=/", "__clerk_handshake_nonce=; Max-Age=0"}
			return req("page", "/docs", "__clerk_handshake_nonce=n5")
		}, want{SignedIn, "", "", HandshakeResolved, []string{"__session=", "__clerk_handshake_nonce=; Max-Age=0"}, 1}},
		{"production: signed out by the handshake", true, true, func(e *env) *http.Request {
			e.redeemer.payloads["n6"] = []string{"__client_uat=0; Path=/"}
			return req("page", "/docs", "__clerk_handshake_nonce=n6")
		}, want{SignedOut, ReasonSessionTokenMissing, "https://accounts.example/sign-in", HandshakeResolved, []string{"__client_uat=0", "__clerk_handshake_nonce=;"}, 1}},
		{"production: a failed cookie nonce falls through and starts the next", true, true, func(e *env) *http.Request {
			return req("page", "/docs", "__clerk_handshake_nonce=gone", uat(now))
		}, want{Handshake, ReasonClientUATWithoutSession, "FAPI/v1/client/handshake", HandshakeFailed,
			[]string{"__clerk_handshake_nonce=; Path=/; Max-Age=0", "__clerk_redirect_count=1"}, 1}},
		{"legacy token in the URL", false, false, func(e *env) *http.Request {
			return req("page", "/docs?__clerk_handshake="+e.legacy("__session="+e.token(clerktest.TokenOptions{})+"; Path=/"), "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeResolved, []string{"__session="}, 0}},
		{"forged legacy token", false, false, func(e *env) *http.Request {
			forged, _ := clerktest.Sign(map[string]any{"alg": "RS256", "kid": e.clerk.CurrentKeyID()},
				map[string]any{"handshake": []string{"__session=x"}}, clerktest.GenerateKey())
			return req("page", "/docs?__clerk_handshake="+forged, "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeFailed, []string{}, 0}},
		{"a nonce without a secret key cannot be redeemed", false, false, func(e *env) *http.Request {
			return req("page", "/docs?__clerk_handshake_nonce=n1", "__clerk_db_jwt=d")
		}, want{Reload, "", "http://site.example/docs", HandshakeFailed, []string{}, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.production, tc.nonc)
			r := tc.build(e)
			st := e.a.state(context.Background(), Request{HTTP: r})
			w := tc.want
			w.location = strings.Replace(w.location, "FAPI", e.clerk.FrontendAPIURL(), 1)
			checkState(t, st, w.status, w.reason, w.location, w.cookies)
			if st.HandshakeResult != w.result || (w.result == HandshakeFailed) != (st.HandshakeErr != nil) {
				t.Fatalf("result %q (%v), want %q", st.HandshakeResult, st.HandshakeErr, w.result)
			}
			if e.redeemer.calls != w.calls {
				t.Fatalf("%d redeemer calls, want %d", e.redeemer.calls, w.calls)
			}
			if strings.Contains(st.Location, "__clerk_handshake") {
				t.Fatalf("a handshake credential stays in the URL: %q", st.Location)
			}
		})
	}
}

// TestSuffixedCookies: @clerk/backend's choice between __session and
// __session_<suffix>.
func TestSuffixedCookies(t *testing.T) {
	e := newEnv(t, true, true)
	sfx := "_" + e.inst.CookieSuffix
	mine := e.token(clerktest.TokenOptions{})
	newer := e.token(clerktest.TokenOptions{IssuedAt: now.Add(10 * time.Second)})
	foreign := e.token(clerktest.TokenOptions{Issuer: "https://clerk.other.example"})
	for _, tc := range []struct {
		name     string
		cookies  []string
		suffixed bool
		session  string
	}{
		{"only plain", []string{"__session=" + mine, uat(now)}, false, mine},
		{"only suffixed", []string{"__session" + sfx + "=" + mine, "__client_uat" + sfx + "=1"}, true, mine},
		{"plain from another instance", []string{"__session=" + foreign, "__client_uat=1", "__session" + sfx + "=" + mine, "__client_uat" + sfx + "=1"}, true, mine},
		{"plain newer", []string{"__session=" + newer, "__client_uat=1", "__session" + sfx + "=" + mine, "__client_uat" + sfx + "=1"}, false, newer},
		{"suffixed signed out, plain in", []string{"__session=" + mine, "__client_uat=1", "__client_uat" + sfx + "=0"}, false, mine},
		{"malformed plain", []string{"__session=garbage", "__client_uat=1", "__session" + sfx + "=" + mine, "__client_uat" + sfx + "=1"}, false, "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cookiesOf(e.a, req("fetch", "/", tc.cookies...))
			if c.suffixed != tc.suffixed || c.session != tc.session {
				t.Fatalf("suffixed %v session %.12q…, want %v %.12q…", c.suffixed, c.session, tc.suffixed, tc.session)
			}
		})
	}
}

func TestSessionCookieOff(t *testing.T) {
	e := newEnv(t, true, true)
	a := New(Config{Verifier: e.a.cfg.Verifier, Instance: e.inst, FrontendAPI: "https://x", SessionCookie: false})
	st := a.state(context.Background(), Request{HTTP: req("page", "/", "__session="+e.token(clerktest.TokenOptions{}), uat(now))})
	checkState(t, st, SignedOut, ReasonSessionTokenMissing, "", nil)
}

// TestPrepareSignOut: every session token a sign-out request carries, and the
// handshake that fetches one when the browser holds none.
func TestPrepareSignOut(t *testing.T) {
	e := newEnv(t, true, true)
	sfx := "_" + e.inst.CookieSuffix
	a, b, fresh := e.token(clerktest.TokenOptions{}), e.token(clerktest.TokenOptions{}), e.token(clerktest.TokenOptions{})
	r := req("page", "/sign-out", "__session="+a, "__session"+sfx+"="+b, "__clerk_handshake_nonce=n")
	r.Header.Set("Authorization", "Bearer h")
	e.redeemer.payloads["n"] = []string{"__session=" + fresh}
	so := e.a.PrepareSignOut(context.Background(), Request{HTTP: r})
	if strings.Join(so.Tokens, " ") != strings.Join([]string{b, a, "h", fresh}, " ") {
		t.Fatalf("tokens %d", len(so.Tokens))
	}
	if len(so.SetCookies) != 1 || !strings.HasPrefix(so.SetCookies[0], "__clerk_handshake_nonce=;") || so.HandshakeErr != nil {
		t.Fatalf("%q %v", so.SetCookies, so.HandshakeErr)
	}
	if _, ok := e.a.FetchSession(Request{HTTP: r}, &so); ok {
		t.Fatal("a handshake after one came back")
	}
	r = req("page", "/sign-out", uat(now))
	so = e.a.PrepareSignOut(context.Background(), Request{HTTP: r})
	st, ok := e.a.FetchSession(Request{HTTP: r}, &so)
	if !ok || st.Status != Handshake || st.Reason != ReasonClientUATWithoutSession {
		t.Fatalf("%v %v %q", ok, st.Status, st.Reason)
	}
	if got := e.a.SignedOutCookies(); len(got) != 4 || !strings.HasPrefix(got[2], "__session"+sfx+"=;") {
		t.Fatalf("%q", got)
	}
}

// cookiesOf is what readCookies picks from r now.
func cookiesOf(a *Authenticator, r *http.Request) cookies {
	var c cookies
	a.readCookies(r, time.Now(), &c)
	return c
}
