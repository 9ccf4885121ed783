package authn

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// satelliteOf is e's Authenticator for a satellite domain.
func satelliteOf(e *env) *Authenticator {
	cfg := e.a.cfg
	cfg.Satellite = true
	return New(cfg)
}

func TestSatelliteSync(t *testing.T) {
	prod, dev := newEnv(t, true, true), newEnv(t, false, true)
	prodSat, devSat := satelliteOf(prod), satelliteOf(dev)
	pv := prod.token(clerktest.TokenOptions{})
	dv := dev.token(clerktest.TokenOptions{})
	signedIn := []string{"__session=" + pv, uat(now.Add(-time.Minute))}
	signIn := "https://accounts.example/sign-in?redirect_url="
	page := "http://site.example/docs?a=1"
	unsynced := page + "&__clerk_synced=false"
	prodHandshake := prod.clerk.FrontendAPIURL() + "/v1/client/handshake?redirect_url=" + url.QueryEscape(unsynced) + "&"
	count1 := []string{"__clerk_redirect_count=1;"}
	iframe := func(r *http.Request) *http.Request { return withHeader(r, "Sec-Fetch-Dest", "iframe") }
	for _, tc := range []struct {
		name     string
		a        *Authenticator
		r        *http.Request
		status   Status
		reason   Reason
		location string
		cookies  []string
		loop     bool
	}{
		{"prod: first visit, nothing to sync: signed out, back unsynced", prodSat, req("page", "/docs?a=1"),
			SignedOut, ReasonSessionTokenAndUATMissing, signIn + url.QueryEscape(unsynced), nil, false},
		{"prod: back from signing in on the primary: handshake", prodSat, req("page", "/docs?a=1&__clerk_synced=false"),
			Handshake, ReasonSatelliteNeedsSyncing, prodHandshake, count1, false},
		{"prod: needs sync even with cookies", prodSat, req("page", "/docs?a=1&__clerk_synced=false", signedIn...),
			Handshake, ReasonSatelliteNeedsSyncing, prodHandshake, count1, false},
		{"prod: synced, cookies: the usual rules", prodSat, req("page", "/docs?a=1&__clerk_synced=true", signedIn...),
			SignedIn, "", "", nil, false},
		{"prod: own cookies, no sync asked", prodSat, req("page", "/docs", signedIn...), SignedIn, "", "", nil, false},
		{"prod: synced, uat without session: the usual handshake", prodSat, req("page", "/docs?__clerk_synced=true", uat(now)),
			Handshake, ReasonClientUATWithoutSession, prod.clerk.FrontendAPIURL() + "/v1/client/handshake?", nil, false},
		{"prod: a fetch never syncs", prodSat, req("fetch", "/api?__clerk_synced=false"),
			SignedOut, ReasonSessionTokenAndUATMissing, "", nil, false},
		{"prod: an iframe never syncs", prodSat, iframe(req("page", "/docs?__clerk_synced=false", uat(now))),
			Handshake, ReasonClientUATWithoutSession, prod.clerk.FrontendAPIURL() + "/v1/client/handshake?", nil, false},
		{"prod: loop guard", prodSat, req("page", "/docs?a=1&__clerk_synced=false", "__clerk_redirect_count=3"),
			SignedOut, ReasonSatelliteNeedsSyncing, signIn, nil, true},
		{"prod: a satellite does no cross-origin sync", prodSat,
			withHeader(req("page", "/docs", signedIn...), "Referer", "https://other.example/"), SignedIn, "", "", nil, false},
		{"dev: sync through the primary's sign-in page", devSat, req("page", "/docs?a=1&__clerk_synced=false", "__clerk_db_jwt=dvb_1"),
			Handshake, ReasonSatelliteNeedsSyncing, "https://accounts.example/sign-in?__clerk_redirect_url=" + url.QueryEscape(unsynced), count1, false},
		{"dev: first visit skips the dev-browser handshake", devSat, req("page", "/docs?a=1"),
			SignedOut, ReasonSessionTokenAndUATMissing, signIn + url.QueryEscape(unsynced), nil, false},
		{"dev: back synced with a dev browser: dev-browser-sync", devSat,
			req("page", "/docs?__clerk_db_jwt=dvb_9&__clerk_synced=true"),
			Handshake, ReasonDevBrowserSync, dev.clerk.FrontendAPIURL() + "/v1/client/handshake?", nil, false},
		{"dev: own cookies", devSat, req("page", "/docs", "__clerk_db_jwt=dvb_1", "__session="+dv, uat(now.Add(-time.Minute))),
			SignedIn, "", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.a.state(context.Background(), Request{HTTP: tc.r})
			checkState(t, st, tc.status, tc.reason, tc.location, tc.cookies)
			if st.LoopStopped != tc.loop {
				t.Fatalf("loop %v, want %v", st.LoopStopped, tc.loop)
			}
		})
	}
}

func TestPrimarySync(t *testing.T) {
	dev, prod := newEnv(t, false, true), newEnv(t, true, true)
	dv := dev.token(clerktest.TokenOptions{})
	pv := prod.token(clerktest.TokenOptions{})
	devIn := []string{"__clerk_db_jwt=dvb_1", "__session=" + dv, uat(now.Add(-time.Minute))}
	prodIn := []string{"__session=" + pv, uat(now.Add(-time.Minute))}
	back := func(target string) string { return "/sign-in?__clerk_redirect_url=" + url.QueryEscape(target) }
	ref := func(r *http.Request, referer string) *http.Request { return withHeader(r, "Referer", referer) }
	crossOrigin := prod.clerk.FrontendAPIURL() + "/v1/client/handshake?redirect_url=" + url.QueryEscape("http://site.example/docs") + "&"
	for _, tc := range []struct {
		name     string
		a        *Authenticator
		r        *http.Request
		status   Status
		reason   Reason
		location string // exact; a prefix if it ends in &
	}{
		{"dev: answers a trusted satellite's sync", dev.a, req("page", back("https://app.example/docs?__clerk_synced=false"), devIn...),
			Handshake, ReasonPrimaryRespondsToSyncing, "https://app.example/docs?__clerk_db_jwt=dvb_1&__clerk_synced=true"},
		{"dev: answers before the dev-browser checks", dev.a, req("page", back("https://app.example/x")),
			Handshake, ReasonPrimaryRespondsToSyncing, "https://app.example/x?__clerk_synced=true"},
		{"dev: its own origin is trusted", dev.a, req("page", back("http://site.example/other"), "__clerk_db_jwt=dvb_1"),
			Handshake, ReasonPrimaryRespondsToSyncing, "http://site.example/other?__clerk_db_jwt=dvb_1&__clerk_synced=true"},
		{"dev: an untrusted target is no sync (no open redirect)", dev.a, req("page", back("https://evil.example/x"), "__clerk_db_jwt=dvb_1"),
			SignedOut, ReasonSessionTokenAndUATMissing,
			"https://accounts.example/sign-in?redirect_url=" + url.QueryEscape("http://site.example"+back("https://evil.example/x")) + "&__clerk_db_jwt=dvb_1"},
		{"dev: a target that is no URL", dev.a, req("page", back("javascript:alert(1)"), devIn...), SignedIn, "", ""},
		{"dev: a fetch is no sync", dev.a, req("fetch", back("https://app.example/x"), devIn...), SignedIn, "", ""},
		{"prod: a primary answers syncs in development only", prod.a, req("page", back("https://app.example/x"), prodIn...), SignedIn, "", ""},
		{"prod: a navigation from another site re-syncs", prod.a, ref(req("page", "/docs", prodIn...), "https://other.example/page"),
			Handshake, ReasonPrimaryCrossOriginSync, crossOrigin},
		{"prod: not twice in a row", prod.a, ref(req("page", "/docs", append(prodIn, "__clerk_redirect_count=1")...), "https://other.example/"),
			SignedIn, "", ""},
		{"prod: same origin", prod.a, ref(req("page", "/docs", prodIn...), "http://site.example/a"), SignedIn, "", ""},
		{"prod: from the Frontend API", prod.a, ref(req("page", "/docs", prodIn...), prod.clerk.FrontendAPIURL()+"/v1/client/handshake"),
			SignedIn, "", ""},
		{"prod: from the sign-in page", prod.a, ref(req("page", "/docs", prodIn...), "https://accounts.example/sign-in"), SignedIn, "", ""},
		{"prod: a dev Account Portal is not Clerk's for production", prod.a, ref(req("page", "/docs", prodIn...), "https://foo-1.accounts.dev/"),
			Handshake, ReasonPrimaryCrossOriginSync, crossOrigin},
		{"dev: a dev Account Portal is Clerk's", dev.a, ref(req("page", "/docs", devIn...), "https://foo-1.accounts.dev/"), SignedIn, "", ""},
		{"prod: a fetch", prod.a, ref(req("fetch", "/docs", prodIn...), "https://other.example/"), SignedIn, "", ""},
		{"prod: an iframe", prod.a, withHeader(ref(req("page", "/docs", prodIn...), "https://other.example/"), "Sec-Fetch-Dest", "iframe"),
			SignedIn, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.a.state(context.Background(), Request{HTTP: tc.r})
			checkState(t, st, tc.status, tc.reason, tc.location, nil)
			if st.Location != tc.location && !strings.HasSuffix(tc.location, "&") {
				t.Fatalf("Location %q, want %q", st.Location, tc.location)
			}
		})
	}
}

// TestOwnIssuerCookies: the plain cookies a proxied Frontend API's handshake
// writes (iss = the proxy URL) are the instance's, not another one's.
func TestOwnIssuerCookies(t *testing.T) {
	e := newEnv(t, true, true)
	const proxy = "https://app.example/__clerk"
	keys, err := verifier.StaticPEM(e.clerk.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Config{Keys: keys, Issuer: proxy, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.a.cfg
	cfg.Verifier, cfg.FrontendAPI = v, proxy
	a := New(cfg)
	tok := e.token(clerktest.TokenOptions{Issuer: proxy})
	st := a.state(context.Background(), Request{HTTP: req("fetch", "/api", "__session="+tok, uat(now.Add(-time.Minute)))})
	checkState(t, st, SignedIn, "", "", nil)
	// Another instance's plain cookie still defers to the suffixed ones.
	other := e.token(clerktest.TokenOptions{Issuer: "https://clerk.other.example"})
	st = a.state(context.Background(), Request{HTTP: req("fetch", "/api", "__session="+other, uat(now.Add(-time.Minute)),
		"__session_"+e.inst.CookieSuffix+"="+tok, "__client_uat_"+e.inst.CookieSuffix+"="+uat(now.Add(-time.Minute))[len("__client_uat="):])})
	checkState(t, st, SignedIn, "", "", nil)
}
