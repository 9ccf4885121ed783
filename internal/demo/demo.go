// Package demo runs caddy-clerk end to end on this machine with no Clerk
// account: a local Clerk emulator, Caddy with the clerk handler in front of
// a small static site and an echo API, and a sign-in page where you pick a
// demo user. cmd/demo runs it for a person; its tests and the browser
// end-to-end test in e2e/ drive it.
package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-clerk/caddy-clerk"
	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// Demo is everything the demo runs.
type Demo struct {
	Clerk *clerktest.Server // the emulator: its users, sessions and handshakes
	Site  string            // http://host:port
	// ProxyURL is where the site serves the emulator's Frontend API
	// (Site + "/__clerk") in proxy mode, "" otherwise.
	ProxyURL    string
	AdminToken  string // Ada's session token, valid for 24 h
	MemberToken string // Bob's
	// PendingUser is Grace, who has a task to finish (reset-password):
	// after signing in she is sent to the Account Portal's tasks page.
	PendingUser clerktest.User
	echo        *http.Server
	dir         string
}

// Close stops Caddy, the echo API and the emulator, and removes the site.
func (d *Demo) Close() {
	_ = caddy.Stop()
	_ = d.echo.Close()
	d.Clerk.Close()
	_ = os.RemoveAll(d.dir)
}

// Options are the demo's settings.
type Options struct {
	// Lifetime of the session tokens the handshake mints.
	Lifetime time.Duration
	// Proxy runs a production instance whose Frontend API the site serves
	// itself under /__clerk (frontend_api_proxy): Clerk proxies production
	// instances only.
	Proxy bool
}

// StartLoopback is Start on a free 127.0.0.1 port, for tests.
func StartLoopback(lifetime time.Duration) (*Demo, error) {
	return StartLoopbackWith(Options{Lifetime: lifetime})
}

// StartLoopbackWith is StartWith on a free 127.0.0.1 port, for tests.
func StartLoopbackWith(o Options) (*Demo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return StartWith(addr, o)
}

// Start runs the emulator (a development instance: its Account Portal
// hands the dev-browser token back, as Clerk's does), Caddy, the static
// site and the echo API. The site and the emulator share the loopback
// host, as an app and Clerk share a parent domain.
func Start(addr string, lifetime time.Duration) (*Demo, error) {
	return StartWith(addr, Options{Lifetime: lifetime})
}

// StartWith is Start with the demo's options.
func StartWith(addr string, o Options) (*Demo, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr: %v", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, errors.New("-addr must be a loopback address such as 127.0.0.1:8080")
	}
	opts := []clerktest.Option{clerktest.WithSessionLifetime(o.Lifetime)}
	if o.Proxy {
		opts = append(opts, clerktest.Production())
	}
	d := &Demo{Clerk: clerktest.New(opts...), Site: "http://" + addr}
	// The Frontend API: the emulator's own URL, or served by the site.
	fapi := "frontend_api_url " + d.Clerk.FrontendAPIURL()
	if o.Proxy {
		d.ProxyURL = d.Site + "/__clerk"
		fapi = "frontend_api_proxy " + d.ProxyURL + " " + d.Clerk.FrontendAPIURL()
	}
	d.PendingUser = d.Clerk.AddUser(clerktest.User{FirstName: "Grace", LastName: "Hopper", Username: "grace", Email: "grace@example.com"})
	if err := d.Clerk.SetUserTask(d.PendingUser.ID, clerktest.TaskResetPassword); err != nil {
		return nil, err
	}

	// The echo API shows what an upstream receives from Caddy.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.echo = &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.echo.Serve(ln) }()

	if d.dir, err = os.MkdirTemp("", "caddy-clerk-demo"); err != nil {
		return nil, err
	}
	if err := writeSite(d.dir); err != nil {
		return nil, err
	}

	caddyfile := fmt.Sprintf(demoCaddyfile, port, addr, host,
		d.Clerk.PublishableKey(), d.Clerk.SecretKey(), d.Clerk.URL(), fapi, d.Clerk.AccountsURL(),
		d.Clerk.PublishableKey(), d.Clerk.SecretKey(), d.Clerk.URL(), fapi, d.Clerk.AccountsURL(),
		d.Clerk.PublishableKey(), d.Clerk.SecretKey(), d.Clerk.URL(), fapi, d.Clerk.AccountsURL(),
		ln.Addr().String(), d.dir) // the echo API is %[19]s, the site's root %[20]s
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return nil, fmt.Errorf("demo Caddyfile: %v", err)
	}
	for _, w := range warn {
		log.Printf("Caddyfile warning: %s", w.Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return nil, err
	}
	admin, member := d.Clerk.AdminUser(), d.Clerk.MemberUser()
	iss := d.ProxyURL // tokens of a proxied Frontend API carry its URL
	d.AdminToken = d.Clerk.MustMint(clerktest.TokenOptions{User: &admin, Lifetime: 24 * time.Hour, Issuer: iss})
	d.MemberToken = d.Clerk.MustMint(clerktest.TokenOptions{User: &member, Lifetime: 24 * time.Hour, Issuer: iss})
	return d, nil
}

// The second clerk block repeats the instance because each handler is
// configured on its own; both share one key cache.
const demoCaddyfile = `{
	admin off
	auto_https off
	http_port %s
	persist_config off
}
http://%s {
	bind %s
	clerk {
		publishable_key %s
		secret_key %s
		api_url %s
		%s
		sign_in_url %s/sign-in
		sign_out_path /sign-out
		userinfo_path /.clerk/me
		exclude /style.css
		organization_sync {
			organization /orgs/:slug /orgs/:slug/(.*)
		}
	}
	@admin path /admin /admin/*
	clerk @admin {
		publishable_key %s
		secret_key %s
		api_url %s
		%s
		sign_in_url %s/sign-in
		require_role admin
	}
	# A settings API: a stale session gets Clerk's JSON 403, which clerk-js
	# (useReverification) turns into its verification modal.
	@settings path /api/settings
	clerk @settings {
		publishable_key %s
		secret_key %s
		api_url %s
		%s
		sign_in_url %s/sign-in
		require_reverification strict
	}
	handle /api/* {
		reverse_proxy %s {
			header_up X-Clerk-User-Id {clerk.user_id}
			header_up X-Clerk-Session-Id {clerk.session_id}
			header_up X-Clerk-Org-Id {clerk.org_id}
			header_up X-Clerk-Org-Role {clerk.org_role}
			header_up X-Clerk-Org-Permissions {clerk.org_permissions}
		}
	}
	handle /orgs/* {
		reverse_proxy %[19]s {
			header_up X-Clerk-User-Id {clerk.user_id}
			header_up X-Clerk-Org-Id {clerk.org_id}
			header_up X-Clerk-Org-Slug {clerk.org_slug}
			header_up X-Clerk-Org-Role {clerk.org_role}
		}
	}
	handle {
		root * %[20]s
		file_server
	}
	handle_errors 403 {
		respond "403 Forbidden ({clerk.reason}). /admin/ is for organization admins (Ada, with acme active); /orgs/<slug>/ for members of that organization (Ada: acme and beta; Bob: beta)." 403
	}
}
`

// echo answers with the identity headers Caddy forwarded.
func echo(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for k := range r.Header {
		if strings.HasPrefix(k, "X-Clerk-") {
			out[k] = r.Header.Get(k)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func writeSite(dir string) error {
	pages := map[string]string{
		"index.html":       pageIndex,
		"admin/index.html": pageAdmin,
		"style.css":        "body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;line-height:1.5}pre{background:#f4f4f4;padding:1rem}",
	}
	for name, body := range pages {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

const pageIndex = `<!doctype html><title>caddy-clerk demo</title><link rel="stylesheet" href="/style.css">
<h1>A static page behind Clerk</h1>
<p id="signed-in">Signed in as <b id="name">…</b> · <a href="/sign-out" id="sign-out">Sign out</a></p>
<p>No application code: Caddy's <code>clerk</code> handler let you in, and renews your 60-second
session token through Clerk's handshake on every page load. Who you are, from its
<code>userinfo_path</code> (<code>/.clerk/me</code>):</p>
<pre id="who">loading…</pre>
<p><a href="/admin/" id="admin">Admin area</a> (organization admins only) · <a href="/orgs/acme/" id="org-acme">acme</a> ·
<a href="/orgs/beta/" id="org-beta">beta</a> (the URL names the organization; Caddy switches your session to it) ·
<a href="/api/whoami">what the API upstream receives</a></p>
<script>
fetch('/.clerk/me').then(r => r.json()).then(me => {
  const u = me.user || {};
  document.getElementById('name').textContent =
    [u.first_name, u.last_name].filter(Boolean).join(' ') || u.primary_email_address || me.user_id;
  document.getElementById('who').textContent = JSON.stringify(me, null, 2);
});
</script>
`

const pageAdmin = `<!doctype html><title>Admin</title><link rel="stylesheet" href="/style.css">
<h1>Admin area</h1><p>Only members with the <code>org:admin</code> role get here (<code>require_role admin</code>).</p>
<p><a href="/">Back</a> · <a href="/sign-out" id="sign-out">Sign out</a></p>
`

// Banner is what the demo prints on start: the URL, what to try, and
// the two tokens for curl.
func (d *Demo) Banner() string {
	mode := ""
	if d.ProxyURL != "" {
		mode = "\n  Proxy mode: a production instance whose Frontend API this site serves at " + d.ProxyURL +
			"\n  (frontend_api_proxy); the handshake goes through it and tokens carry it as iss.\n"
	}
	return fmt.Sprintf(`
caddy-clerk demo — no Clerk account needed (local Clerk emulator at %s)
%s
  Open %s/ in a browser: you are sent to sign in; pick Ada (admin) or Bob (member), or
  Grace, who has a task to finish first (the Account Portal's tasks page, then back).
  The page shows who is signed in (userinfo_path); /admin/ is for organization admins only;
  /orgs/acme/ and /orgs/beta/ switch your session's active organization to the one in the
  URL (organization_sync): Ada is a member of both, Bob of beta only (acme gives him 403);
  "Sign out" revokes the session. Session tokens live as long as Clerk's (60 s, or
  -token-lifetime): reload after that and the handshake renews yours, no sign-in needed.

  Or with curl (tokens valid for 24 h):
    curl -i %s/api/whoami                                  # 401, no session
    curl -H "Authorization: Bearer $ADMIN"  %s/api/whoami  # identity forwarded
    curl -i -H "Authorization: Bearer $MEMBER" %s/admin/   # 403, not an admin

  ADMIN=%s
  MEMBER=%s

Ctrl-C to stop.
`, d.Clerk.URL(), mode, d.Site, d.Site, d.Site, d.Site, d.AdminToken, d.MemberToken)
}
