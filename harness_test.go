package caddyclerk

// The one way this package's tests run Caddy: in this process, with
// caddy.Load (admin off, as cmd/demo does), every site on a free port.
//
//	run := startCaddy(t, "", `http://127.0.0.1:{{site}} {
//		bind 127.0.0.1
//		respond "ok"
//	}`)
//	resp, _ := testClient(true).Get(run.url("site") + "/x")
//
// {{name}} anywhere in the global options or the body stands for a port
// nobody listens on, the same port for every use of the name, and for the
// whole test: run.reload keeps it, so a reload is exactly what `caddy
// reload` does through the admin API. caddy.Load replaces the process's one
// config, so tests using it run one after another (parallel subtests may
// share one config). With free ports the tests no longer collide with other
// test processes on the machine; Caddy listens with SO_REUSEPORT, so the only
// way two processes could still share a port is the instant between a port
// being found free and Caddy binding it.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// globalOptions are the global options every config here starts with; extra
// goes inside the block (a log section, servers options, for instance).
func globalOptions(extra string) string {
	if extra != "" {
		extra = "\t" + extra + "\n"
	}
	return `{
	admin off
	auto_https off
	persist_config off
	http_port {{http}}
` + extra + `}
`
}

// caddyRun is Caddy running a test's config.
type caddyRun struct {
	t      testing.TB
	ports  map[string]string // {{name}} → port
	warned map[string]bool   // Caddyfile warnings logged, once each
	// loadStart and loadEnd bracket the last caddy.Load (adapting, which
	// takes milliseconds, excluded).
	loadStart, loadEnd time.Time
}

// startCaddy adapts globalOptions(global) followed by body, with a free port
// for each {{name}}, and runs it; Caddy stops when the test ends.
func startCaddy(t testing.TB, global, body string) *caddyRun {
	t.Helper()
	c := &caddyRun{t: t, ports: map[string]string{}, warned: map[string]bool{}}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("caddy.Stop: %v", err)
		}
	})
	// A port found free may be taken again before Caddy binds it (by a
	// process that does not use SO_REUSEPORT): then try other ports.
	for attempt := 1; ; attempt++ {
		err := c.load(global, body)
		if err == nil {
			return c
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("starting Caddy: %v", err)
		}
		t.Logf("starting Caddy, attempt %d: %v; again on other ports", attempt, err)
		clear(c.ports)
	}
}

// reload runs another config in place of the running one; a name used
// before keeps its port. The old servers close their idle keep-alive
// connections as they stop, and a request that races onto one fails with
// no answer (EOF, "server closed idle connection"): unless that is what a
// test is about (TestLoadReloads retries such a request once, as clients
// do), close the client's idle connections after a reload.
func (c *caddyRun) reload(global, body string) {
	c.t.Helper()
	if err := c.load(global, body); err != nil {
		c.t.Fatalf("reloading Caddy: %v", err)
	}
}

// afterReload sends a request right after a reload, again if the
// connection breaks: Caddy's listeners use SO_REUSEPORT, and a connection
// still queued on the old socket when it closes is reset (a reload's race
// in Caddy, seen under load; no answer is lost, none was given).
func afterReload(t *testing.T, send func() (*http.Response, error)) *http.Response {
	t.Helper()
	var err error
	for i := 0; i < 5; i++ {
		var resp *http.Response
		if resp, err = send(); err == nil {
			return resp
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// stop stops Caddy before the test ends (it closes the log files).
func (c *caddyRun) stop() {
	c.t.Helper()
	if err := caddy.Stop(); err != nil {
		c.t.Fatalf("caddy.Stop: %v", err)
	}
}

var portMarker = regexp.MustCompile(`\{\{([A-Za-z][A-Za-z0-9_]*)\}\}`)

func (c *caddyRun) load(global, body string) error {
	c.t.Helper()
	caddyfile := globalOptions(global) + body
	var names []string
	for _, m := range portMarker.FindAllStringSubmatch(caddyfile, -1) {
		if _, ok := c.ports[m[1]]; !ok {
			c.ports[m[1]] = ""
			names = append(names, m[1])
		}
	}
	for i, p := range freePorts(c.t, len(names)) {
		c.ports[names[i]] = p
	}
	caddyfile = portMarker.ReplaceAllStringFunc(caddyfile, func(m string) string {
		return c.ports[portMarker.FindStringSubmatch(m)[1]]
	})
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		c.t.Fatalf("adapting the Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		if !c.warned[w.String()] {
			c.warned[w.String()] = true
			c.t.Logf("Caddyfile warning: %s", w.String())
		}
	}
	c.loadStart = time.Now()
	err = caddy.Load(cfg, true)
	c.loadEnd = time.Now()
	return err
}

// freePorts returns n distinct ports that nothing listens on, on any
// address.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		defer ln.Close() // held until all are found, so they differ
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ports = append(ports, port)
	}
	return ports
}

// port is the port that stands for {{name}}.
func (c *caddyRun) port(name string) string {
	c.t.Helper()
	p := c.ports[name]
	if p == "" {
		c.t.Fatalf("no {{%s}} in the config", name)
	}
	return p
}

// addr is 127.0.0.1:{{name}}.
func (c *caddyRun) addr(name string) string { return "127.0.0.1:" + c.port(name) }

// url is http://127.0.0.1:{{name}}, a site's base URL.
func (c *caddyRun) url(name string) string { return "http://" + c.addr(name) }

// echoUpstream answers with the request headers it received as JSON: all
// values of each, joined by " | ", and the request path as "_path".
func echoUpstream(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{"_path": r.URL.Path}
		for k, v := range r.Header {
			h[k] = strings.Join(v, " | ")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	}))
	t.Cleanup(s.Close)
	return s
}

// identityHeaders are reverse_proxy lines handing every identity
// placeholder to the upstream.
const identityHeaders = `
			header_up X-Clerk-User-Id {clerk.user_id}
			header_up X-Clerk-Session-Id {clerk.session_id}
			header_up X-Clerk-Authenticated {clerk.authenticated}
			header_up X-Clerk-Reason {clerk.reason}
			header_up X-Clerk-Org-Id {clerk.org_id}
			header_up X-Clerk-Org-Role {clerk.org_role}
			header_up X-Clerk-Org-Slug {clerk.org_slug}
			header_up X-Clerk-Org-Permissions {clerk.org_permissions}
			header_up X-Clerk-Actor-Id {clerk.actor_id}
			header_up X-Clerk-Plan {clerk.claims.plan}
			header_up X-Clerk-Meta {clerk.claims.meta}
			header_up X-Clerk-Tags {clerk.claims.tags}
			header_up X-Clerk-Note {clerk.claims.note}
			header_up X-Auth-User {http.auth.user.id}
			header_up X-Auth-Org-Role {http.auth.user.org_role}
			header_up X-Auth-Session {http.auth.user.session_id}
			header_up X-Auth-Org-Id {http.auth.user.org_id}
			header_up X-Auth-Org-Slug {http.auth.user.org_slug}`

// testClient never follows redirects (a 307 is an answer to check), keeps no
// cookies, and keeps connections alive if asked (as browsers and API
// clients do). It dials localhost as 127.0.0.1, whatever the resolver
// prefers: sites that trust loopback proxies trust 127.0.0.1/8.
func testClient(keepAlive bool) *http.Client {
	var d net.Dialer
	return &http.Client{
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, err := net.SplitHostPort(addr); err == nil && host == "localhost" {
					addr = net.JoinHostPort("127.0.0.1", port)
				}
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			DisableKeepAlives:   !keepAlive,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}
