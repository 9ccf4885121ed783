package authn

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// pendingEnv is how the handler sets a site up: the verifier lets pending
// sessions through (with a token cache, so the cached path is taken on a
// second look) and the authenticator decides.
func pendingEnv(t *testing.T, production, allow bool) *env {
	return newEnv(t, production, true, func(v *verifier.Config, c *Config) {
		v.AllowPending, v.TokenCache = true, verifier.NewTokenCache(100)
		c.AllowPending = allow
	})
}

// TestPending: §11.6. A pending session is signed out for authorization;
// only a page load that came with the session cookie goes to the tasks
// page, never into a handshake.
func TestPending(t *testing.T) {
	dev := pendingEnv(t, false, false)
	pending := dev.token(clerktest.TokenOptions{Pending: true, Claims: map[string]any{"jti": "jti_1"}})
	mark := "__caddy_clerk_tasks=jti_1; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"
	sfx := dev.inst.CookieSuffix
	tasks := "https://accounts.example/sign-in/tasks?redirect_url="
	minuteAgo := uat(now.Add(-time.Minute))
	for _, tc := range []struct {
		name     string
		r        *http.Request
		auth     string
		location string
	}{
		{"page load with the cookie goes to the tasks page", req("page", "/docs?x=1", "__clerk_db_jwt=dvb_1", "__session="+pending, minuteAgo), "",
			tasks + url.QueryEscape("http://site.example/docs?x=1") + "&__clerk_db_jwt=dvb_1"},
		{"suffixed cookies", req("page", "/", "__clerk_db_jwt_"+sfx+"=dvb_s", "__session_"+sfx+"="+pending, "__client_uat_"+sfx+"=1"), "",
			tasks + url.QueryEscape("http://site.example/") + "&__clerk_db_jwt=dvb_s"},
		{"fetch with the cookie: 401", req("fetch", "/api", "__session="+pending, minuteAgo), "", ""},
		{"cross-site POST with the cookie: pending, not a CSRF refusal", withHeader(req("post", "/api", "__session="+pending, minuteAgo),
			"Sec-Fetch-Site", "cross-site"), "", ""},
		{"bearer fetch: 401", req("fetch", "/api"), "Bearer " + pending, ""},
		{"bearer on a page load: 401, a header token is no browser session", req("page", "/"), "Bearer " + pending, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 { // the second time from the token cache
				r := tc.r.Clone(context.Background())
				if tc.auth != "" {
					r.Header.Set("Authorization", tc.auth)
				}
				st := dev.a.state(context.Background(), Request{HTTP: r})
				cookies := []string{}
				if tc.location != "" {
					cookies = []string{mark}
				}
				checkState(t, st, SignedOut, ReasonSessionPending, tc.location, cookies)
				if tc.location != "" && st.Location != tc.location {
					t.Fatalf("look %d: Location %q, want %q", i, st.Location, tc.location)
				}
				if st.NoStore != (tc.location != "") || st.Claims != nil || verifier.KindOf(st.Err) != verifier.KindPending {
					t.Fatalf("look %d: no-store %v, claims %v, err %v", i, st.NoStore, st.Claims, st.Err)
				}
			}
		})
	}
}

// TestPendingBackFromTasks: a browser back from the tasks page with the
// token it was sent there with gets a fresh one through the handshake (the
// task may be done within the second of __client_uat); with a new pending
// token it goes to the tasks page again, and the loop guard bounds it.
func TestPendingBackFromTasks(t *testing.T) {
	e := pendingEnv(t, false, false)
	tok := e.token(clerktest.TokenOptions{Pending: true, Claims: map[string]any{"jti": "jti_1"}})
	cookies := []string{"__clerk_db_jwt=d", "__session=" + tok, uat(now.Add(-time.Minute))}
	for _, tc := range []struct {
		name   string
		extra  []string
		status Status
		loc    string
	}{
		{"sent with this token", []string{"__caddy_clerk_tasks=jti_1"}, Handshake, e.clerk.FrontendAPIURL() + "/v1/client/handshake?"},
		{"sent with another token", []string{"__caddy_clerk_tasks=jti_0"}, SignedOut, "https://accounts.example/sign-in/tasks?"},
		{"loop guard", []string{"__caddy_clerk_tasks=jti_1", "__clerk_redirect_count=3"}, SignedOut, "https://accounts.example/sign-in?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := e.a.state(context.Background(), Request{HTTP: req("page", "/", append(cookies, tc.extra...)...)})
			checkState(t, st, tc.status, ReasonSessionPending, tc.loc, nil)
		})
	}
}

// TestPendingAllowed: allow_pending keeps a pending session signed in,
// with its status in the claims.
func TestPendingAllowed(t *testing.T) {
	e := pendingEnv(t, false, true)
	tok := e.token(clerktest.TokenOptions{Pending: true})
	for _, r := range []*http.Request{
		req("page", "/", "__clerk_db_jwt=d", "__session="+tok, uat(now.Add(-time.Minute))),
		withHeader(req("fetch", "/api"), "Authorization", "Bearer "+tok),
	} {
		st := e.a.state(context.Background(), Request{HTTP: r})
		if st.Status != SignedIn || st.Claims == nil || st.Claims.Status != "pending" {
			t.Fatalf("%v %q %v", st.Status, st.Reason, st.Err)
		}
	}
}

// TestPendingAfterHandshake: a handshake that brings back a pending
// session answers with the tasks page at once (with the handshake's
// cookies) instead of starting another handshake; in development the
// reload that follows does the same.
func TestPendingAfterHandshake(t *testing.T) {
	prod := pendingEnv(t, true, false)
	prod.redeemer.payloads["n1"] = []string{"__session=" + prod.token(clerktest.TokenOptions{Pending: true}) + "; Path=/", uat(now) + "; Path=/"}
	st := prod.a.state(context.Background(), Request{HTTP: req("page", "/docs", "__clerk_handshake_nonce=n1")})
	checkState(t, st, SignedOut, ReasonSessionPending, "https://accounts.example/sign-in/tasks?redirect_url=",
		[]string{"__session=", "__client_uat=", "__clerk_handshake_nonce=; Path=/; Max-Age=0", "__caddy_clerk_tasks="})
	if st.HandshakeResult != HandshakeResolved {
		t.Fatalf("handshake result %q", st.HandshakeResult)
	}

	// Signed in elsewhere since the pending token: refresh it first.
	dev := pendingEnv(t, false, false)
	tok := dev.token(clerktest.TokenOptions{Pending: true, IssuedAt: now.Add(-30 * time.Second)})
	st = dev.a.state(context.Background(), Request{HTTP: req("page", "/", "__clerk_db_jwt=d", "__session="+tok, uat(now))})
	checkState(t, st, Handshake, ReasonIATBeforeClientUAT, dev.clerk.FrontendAPIURL(), nil)
}

// TestPendingRefusingVerifier: a Verifier that refuses pending sessions
// itself (verifier.Config.AllowPending false) gets the same answers.
func TestPendingRefusingVerifier(t *testing.T) {
	prod := newEnv(t, true, true)
	tok := prod.token(clerktest.TokenOptions{Pending: true})
	st := prod.a.state(context.Background(), Request{HTTP: req("page", "/", "__session="+tok, uat(now.Add(-time.Minute)))})
	checkState(t, st, SignedOut, ReasonSessionPending, "https://accounts.example/sign-in/tasks?redirect_url=", nil)
	st = prod.a.state(context.Background(), Request{HTTP: withHeader(req("page", "/"), "Authorization", "Bearer "+tok)})
	checkState(t, st, SignedOut, ReasonSessionPending, "", nil)
	prod.redeemer.payloads["n1"] = []string{"__session=" + tok + "; Path=/"}
	st = prod.a.state(context.Background(), Request{HTTP: req("page", "/", "__clerk_handshake_nonce=n1")})
	checkState(t, st, SignedOut, ReasonSessionPending, "https://accounts.example/sign-in/tasks?redirect_url=", nil)
}

func TestTasksURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://accounts.example.com/sign-in":       "https://accounts.example.com/sign-in/tasks",
		"https://accounts.example.com/sign-in/":      "https://accounts.example.com/sign-in/tasks",
		"https://app.example.com/login?theme=dark":   "https://app.example.com/login/tasks?theme=dark",
		"https://app.example.com/login#top":          "https://app.example.com/login/tasks#top",
		"http://127.0.0.1:4000/accounts/sign-in?a=b": "http://127.0.0.1:4000/accounts/sign-in/tasks?a=b",
	} {
		if got := TasksURL(in); got != want {
			t.Errorf("TasksURL(%q) = %q, want %q", in, got, want)
		}
	}
}
