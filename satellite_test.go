package caddyclerk

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// satelliteConfig is a primary site on 127.0.0.1 and a satellite on
// localhost (two domains: cookies of one never reach the other), in front
// of one emulator. In production the satellite's Frontend API is the
// emulator reached as localhost (its clerk.<domain>); in development it is
// the instance's, and the satellite signs in on the primary's /sign-in.
func satelliteConfig(clerk *clerktest.Server, upstream string, production bool) string {
	satFAPI, satSignIn := clerk.FrontendAPIURL(), "http://127.0.0.1:{{primary}}/sign-in"
	if production {
		satFAPI = strings.Replace(clerk.FrontendAPIURL(), "127.0.0.1", "localhost", 1)
		satSignIn = clerk.AccountsURL() + "/sign-in"
	}
	site := func(addr, settings string) string {
		return fmt.Sprintf(`%s {
	bind 127.0.0.1
	clerk {
		publishable_key %s
		secret_key %s
		api_url %s
		%s
	}
	reverse_proxy %s {%s
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, addr, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), settings, upstream, identityHeaders)
	}
	return site("http://127.0.0.1:{{primary}}", fmt.Sprintf("frontend_api_url %s\n\t\tsign_in_url %s/sign-in\n\t\tcsrf_trusted_origins http://localhost:{{satellite}}",
		clerk.FrontendAPIURL(), clerk.AccountsURL())) +
		site("http://localhost:{{satellite}}", fmt.Sprintf("satellite localhost\n\t\tfrontend_api_url %s\n\t\tsign_in_url %s", satFAPI, satSignIn))
}

func TestSatelliteProduction(t *testing.T) {
	clerk := clerktest.NewT(t, clerktest.Production())
	clerk.AddSatellite("localhost")
	up := echoUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	run := startCaddy(t, fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logPath),
		satelliteConfig(clerk, up.Listener.Addr().String(), true))
	f := &fixture{t: t, clerk: clerk, caddy: run, up: up, client: testClient(true)}
	primary, sat := run.url("primary"), "http://localhost:"+run.port("satellite")
	admin := clerk.AdminUser()

	// A sync that loops ends signed out, with a warning about the setup.
	resp, _ := f.do("GET", sat+"/docs?__clerk_synced=false", page("__clerk_redirect_count=3"))
	if resp.StatusCode != 307 || !strings.HasPrefix(resp.Header.Get("Location"), clerk.AccountsURL()+"/sign-in?") {
		t.Fatalf("loop guard: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if raw, _ := os.ReadFile(logPath); !strings.Contains(string(raw), "Clerk satellite sync redirect loop") {
		t.Fatalf("no satellite loop warning in the log:\n%s", raw)
	}

	b := loopbackBrowser(t)
	b.signInFrom(f, primary+"/docs", admin)
	before := len(clerk.Handshakes())

	// The satellite knows nothing of the browser yet, and without cookies
	// or a sync request it does not ask Clerk: sign in, coming back unsynced.
	final, status, _ := b.navigate(sat+"/docs?a=1", nil)
	portal, _ := url.Parse(final)
	if status != 200 || !strings.HasPrefix(final, clerk.AccountsURL()+"/sign-in?") ||
		portal.Query().Get("redirect_url") != sat+"/docs?a=1&__clerk_synced=false" {
		t.Fatalf("first visit to the satellite: %d %s\n%s", status, final, strings.Join(b.trail, "\n"))
	}
	if n := len(clerk.Handshakes()); n != before {
		t.Fatalf("%d handshakes: the satellite's skip rule asked Clerk", n-before)
	}
	// Back from the primary's sign-in: the satellite's handshake syncs the
	// client from the primary's Frontend API and lands on the page signed in.
	final, status, body := b.signInAs(f, final, admin)
	if status != 200 || final != sat+"/docs?a=1&__clerk_synced=true" || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
		t.Fatalf("after sign-in: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
	}
	trail := strings.Join(b.trail, "\n")
	if r := f.lastHandshakeReason(); r != "satellite-needs-syncing" || !strings.Contains(trail, "/v1/client/sync?") {
		t.Fatalf("synced by %q\n%s", r, trail)
	}
	// Its own cookies now: the next page loads pass without Clerk.
	n := len(clerk.Handshakes())
	if final, status, body := b.navigate(sat+"/other", nil); status != 200 || final != sat+"/other" ||
		f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID || len(clerk.Handshakes()) != n {
		t.Fatalf("next page: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
	}

	// The primary re-syncs a navigation that comes from the satellite (once
	// its redirect counter, two seconds long, is gone).
	req, _ := http.NewRequest("GET", primary+"/docs", nil)
	b.c.Jar.SetCookies(req.URL, []*http.Cookie{{Name: "__clerk_redirect_count", Path: "/", MaxAge: -1}})
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Referer", sat+"/other")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 307 || loc == nil || loc.Query().Get("__clerk_hs_reason") != "primary-domain-cross-origin-sync" {
		t.Fatalf("navigation from the satellite: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if final, status, body := b.navigate(loc.String(), nil); status != 200 || final != primary+"/docs" ||
		f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
		t.Fatalf("after the cross-origin sync: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
	}
}

func TestSatelliteDevelopment(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := echoUpstream(t)
	run := startCaddy(t, "", satelliteConfig(clerk, up.Listener.Addr().String(), false))
	f := &fixture{t: t, clerk: clerk, caddy: run, up: up, client: testClient(true)}
	primary, sat := run.url("primary"), "http://localhost:"+run.port("satellite")
	admin := clerk.AdminUser()
	b := loopbackBrowser(t)

	// A first visit goes to the primary's sign-in page, to come back unsynced.
	resp, _ := f.do("GET", sat+"/docs", page())
	if want := primary + "/sign-in?redirect_url=" + url.QueryEscape(sat+"/docs?__clerk_synced=false"); resp.StatusCode != 307 ||
		resp.Header.Get("Location") != want {
		t.Fatalf("first visit: %d %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// The primary hands its dev-browser token only to a trusted origin.
	resp, _ = f.do("GET", primary+"/sign-in?__clerk_redirect_url="+url.QueryEscape("http://evil.example/x"), page(devBrowser))
	if strings.Contains(resp.Header.Get("Location"), "evil.example/x?") {
		t.Fatalf("open redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	b.signInFrom(f, primary+"/docs", admin)
	// Signed in on the primary; the satellite syncs through its sign-in page
	// (primary-responds-to-syncing), then the dev-browser handshake.
	final, status, body := b.navigate(sat+"/docs?__clerk_synced=false", nil)
	trail := strings.Join(b.trail, "\n")
	if status != 200 || final != sat+"/docs?__clerk_synced=true" || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
		t.Fatalf("sync: %d %s %s\n%s", status, final, body, trail)
	}
	if !strings.Contains(trail, "307 "+primary+"/sign-in?__clerk_redirect_url=") || f.lastHandshakeReason() != "dev-browser-sync" {
		t.Fatalf("not synced through the primary (last handshake %q):\n%s", f.lastHandshakeReason(), trail)
	}
}
