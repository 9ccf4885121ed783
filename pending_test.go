package caddyclerk

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// TestPendingBrowserFlow: §11.6 through Caddy, against the emulator. A user
// with a task signs in, is sent to the Account Portal's tasks page (not
// into a handshake loop), finishes the task and lands on the page signed
// in; meanwhile a fetch with the pending cookie gets 401 session-pending.
func TestPendingBrowserFlow(t *testing.T) {
	cases := []struct {
		name string
		opts []clerktest.Option
	}{
		{"development", nil},
		{"production", []clerktest.Option{clerktest.Production()}},
	}
	up := echoUpstream(t)
	fixtures := make([]*fixture, len(cases))
	var body strings.Builder
	for i, tc := range cases {
		fixtures[i] = &fixture{clerk: clerktest.NewT(t, tc.opts...), up: up, client: testClient(true)}
		body.WriteString(handshakeConfig(fixtures[i].clerk, up.Listener.Addr().String(), fmt.Sprintf("case%d_", i)))
	}
	run := startCaddy(t, "", body.String())
	for i, tc := range cases {
		f := fixtures[i]
		f.caddy, f.nonceSite = run, run.url(fmt.Sprintf("case%d_nonce", i))
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f.t = t
			ada := f.clerk.AdminUser()
			if err := f.clerk.SetUserTask(ada.ID, clerktest.TaskChooseOrganization); err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t)
			page := f.nonceSite + "/docs?x=1"
			final, status, _ := b.navigate(page, nil)
			if status != 200 || !strings.HasPrefix(final, f.clerk.AccountsURL()+"/sign-in?") {
				t.Fatalf("first visit ended at %d %s\n%s", status, final, strings.Join(b.trail, "\n"))
			}
			handshakes := len(f.clerk.Handshakes())
			final, status, body := b.signInAs(f, final, ada)
			tasks, _ := url.Parse(final)
			if status != 200 || tasks.Path != "/accounts/sign-in/tasks" || tasks.Query().Get("redirect_url") != page ||
				!strings.Contains(body, `id="task-choose-organization"`) {
				t.Fatalf("after sign-in: %d %s\n%s", status, final, strings.Join(b.trail, "\n"))
			}
			if n := len(f.clerk.Handshakes()) - handshakes; n > 1 {
				t.Fatalf("%d handshakes on the way to the tasks page\n%s", n, strings.Join(b.trail, "\n"))
			}
			if status, body := b.fetch(f.nonceSite + "/api"); status != 401 || body != "401 session-pending" {
				t.Fatalf("fetch while pending: %d %q", status, body)
			}

			form := url.Values{"redirect_url": {tasks.Query().Get("redirect_url")}, "__clerk_db_jwt": {tasks.Query().Get("__clerk_db_jwt")}}
			final, status, body = b.navigate(f.clerk.AccountsURL()+"/sign-in/tasks/"+clerktest.TaskChooseOrganization, form)
			if status != 200 || final != page || f.upstreamSaw(body)["X-Clerk-User-Id"] != ada.ID {
				t.Fatalf("after the task: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
			}
			if status, body := b.fetch(f.nonceSite + "/api"); status != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != ada.ID {
				t.Fatalf("fetch after the task: %d %s", status, body)
			}
		})
	}
}

// TestPendingAnswers: every answer to a pending session through Caddy:
// the tasks redirect (no-store, dev-browser token, suffixed cookies), 401
// for fetches and Bearer tokens, allow_pending, optional.
func TestPendingAnswers(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := echoUpstream(t)
	site := func(port, extra string) string {
		return fmt.Sprintf(`http://127.0.0.1:{{%s}} {
	clerk {
		publishable_key %s
		frontend_api_url %s
		sign_in_url %s/sign-in
		%s
	}
	reverse_proxy %s {%s
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, port, clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL(), extra, up.Listener.Addr().String(), identityHeaders)
	}
	run := startCaddy(t, "", site("strict", "")+site("allow", "allow_pending")+site("opt", "optional"))
	f := &fixture{t: t, clerk: clerk, up: up, client: testClient(true), caddy: run}
	ada := clerk.AdminUser()
	tok := f.mint(clerktest.TokenOptions{User: &ada, Pending: true})
	sfx := clerk.CookieSuffix()
	plain := page("__clerk_db_jwt=dvb_1", "__session="+tok, "__client_uat=1")
	suffixed := page("__clerk_db_jwt_"+sfx+"=dvb_2", "__session_"+sfx+"="+tok, "__client_uat_"+sfx+"=1")
	fetch := map[string]string{"Sec-Fetch-Dest": "empty", "Cookie": plain["Cookie"]}
	bearerPage := page()
	bearerPage["Authorization"] = "Bearer " + tok

	for _, tc := range []struct {
		name, site  string
		header      map[string]string
		status      int
		devBrowser  string // the tasks redirect's __clerk_db_jwt
		body, saw   string // the error body, or whom the upstream saw
		reasonSaw   string
		unsetCookie bool
	}{
		{name: "page load", site: "strict", header: plain, status: 307, devBrowser: "dvb_1"},
		{name: "page load, suffixed cookies", site: "strict", header: suffixed, status: 307, devBrowser: "dvb_2"},
		{name: "fetch", site: "strict", header: fetch, status: 401, body: "401 session-pending"},
		{name: "bearer page load", site: "strict", header: bearerPage, status: 401, body: "401 session-pending"},
		{name: "bearer fetch", site: "strict", header: bearer(tok), status: 401, body: "401 session-pending"},
		{name: "allow_pending page load", site: "allow", header: plain, status: 200, saw: ada.ID},
		{name: "allow_pending bearer", site: "allow", header: bearer(tok), status: 200, saw: ada.ID},
		{name: "optional page load passes anonymously", site: "opt", header: plain, status: 200, reasonSaw: "session-pending"},
		{name: "optional bearer passes anonymously", site: "opt", header: bearer(tok), status: 200, reasonSaw: "session-pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do("GET", run.url(tc.site)+"/docs?x=1", tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			switch tc.status {
			case 307:
				loc, _ := url.Parse(resp.Header.Get("Location"))
				q := loc.Query()
				if !strings.HasPrefix(loc.String(), clerk.AccountsURL()+"/sign-in/tasks?") ||
					q.Get("redirect_url") != run.url(tc.site)+"/docs?x=1" || q.Get("__clerk_db_jwt") != tc.devBrowser {
					t.Fatalf("Location %s", loc)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Fatalf("Cache-Control %q", cc)
				}
			case 401:
				if body != tc.body || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "session-pending") {
					t.Fatalf("body %q, WWW-Authenticate %q", body, resp.Header.Get("WWW-Authenticate"))
				}
			default:
				saw := f.upstreamSaw(body)
				if saw["X-Clerk-User-Id"] != tc.saw || saw["X-Clerk-Reason"] != tc.reasonSaw {
					t.Fatalf("upstream saw %v", saw)
				}
			}
		})
	}
	if n := len(clerk.Handshakes()); n != 0 {
		t.Fatalf("%d handshakes for a pending session", n)
	}
}
