package caddyclerk

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// nginxBinary finds nginx. Locally a missing nginx skips the test; under CI
// (which installs Debian's nginx) it fails.
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("NGINX"), "nginx", "/usr/sbin/nginx"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx not found (CI installs Debian's nginx package; set NGINX to its path)")
	}
	t.Skip("nginx not found: install Debian's nginx package (or set NGINX) to run the nginx auth_request test")
	return ""
}

// nginxAuthConf is the auth subrequest's settings, shared by the auth
// locations (the README's recipe): no body, the original request in
// X-Original-URI and X-Original-Method with its host and scheme.
const nginxAuthConf = `internal;
proxy_pass_request_body off;
proxy_set_header Content-Length "";
proxy_set_header X-Original-URI $request_uri;
proxy_set_header X-Original-Method $request_method;
proxy_set_header X-Forwarded-Host $http_host;
proxy_set_header X-Forwarded-Proto $scheme;
`

// startNginx runs nginx with conf (an http block's servers) as a
// subprocess in its own directory, listening on 127.0.0.1:port, and stops
// it when the test ends.
func startNginx(t *testing.T, port, servers string) {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "clerk_auth.conf"), []byte(nginxAuthConf), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, servers)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-e", "stderr", "-p", dir, "-c", confPath)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("nginx's output:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nginx exited: %v\n%s\n%s", err, stderr.String(), conf)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s:\n%s", port, stderr.String())
		}
	}
}

// TestNginxAuthRequest runs caddy-clerk as the auth service of a real
// nginx's auth_request, configured as the README says: X-Original-URI and
// X-Original-Method, the identity back with auth_request_set, 401 turned
// into the sign-in redirect by error_page, /admin/ asking an endpoint that
// requires admin, /api/ keeping its 401. The auth service's /nginx routes
// drop the navigation headers: nginx answers 500 for a 307.
func TestNginxAuthRequest(t *testing.T) {
	nginxBinary(t) // skips (fails under CI) before anything starts
	f := &fixture{t: t, clerk: clerktest.NewT(t), up: echoUpstream(t), client: testClient(true)}
	global, body := forwardAuthConfig(f.clerk, f.up.Listener.Addr().String(), "")
	f.caddy = startCaddy(t, global, body)
	authAddr, echoAddr := f.caddy.addr("auth"), f.up.Listener.Addr().String()
	port := freePorts(t, 1)[0]
	site := "http://127.0.0.1:" + port
	signIn := f.clerk.AccountsURL() + "/sign-in"
	protected := func(authLocation string, signInOn401 bool) string {
		s := fmt.Sprintf(`auth_request %s;
			auth_request_set $clerk_user $upstream_http_x_clerk_user_id;
			proxy_set_header X-Clerk-User-Id $clerk_user;
			proxy_pass http://%s;`, authLocation, echoAddr)
		if signInOn401 {
			s += "\n\t\t\terror_page 401 = @signin;"
		}
		return s
	}
	startNginx(t, port, fmt.Sprintf(`	server {
		listen 127.0.0.1:%s;
		location / {
			%s
		}
		location /admin/ {
			%s
		}
		location /api/ {
			%s
		}
		location = /_auth {
			proxy_pass http://%s/nginx;
			include clerk_auth.conf;
		}
		location = /_auth_admin {
			proxy_pass http://%s/nginx/admin;
			include clerk_auth.conf;
		}
		location @signin {
			return 302 %s?redirect_url=$scheme://$http_host$request_uri;
		}
	}`, port, protected("/_auth", true), protected("/_auth_admin", true), protected("/_auth", false),
		authAddr, authAddr, signIn))

	admin, member := f.clerk.AdminUser(), f.clerk.MemberUser()
	adminTok := f.mint(clerktest.TokenOptions{User: &admin, Lifetime: time.Hour})
	memberTok := f.mint(clerktest.TokenOptions{User: &member, Lifetime: time.Hour})
	past := fmt.Sprintf("__client_uat=%d", time.Now().Add(-time.Hour).Unix())
	spoofed := func(h map[string]string) map[string]string {
		h["X-Clerk-User-Id"] = "user_evil"
		return h
	}

	t.Run("Bearer: the user id reaches the upstream, a client's own does not", func(t *testing.T) {
		resp, body := f.do("GET", site+"/p?x=1", spoofed(bearer(memberTok)))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if h := f.upstreamSaw(body); h["X-Clerk-User-Id"] != member.ID || h["_path"] != "/p" {
			t.Fatalf("upstream saw %v", h)
		}
	})

	t.Run("cookie session", func(t *testing.T) {
		resp, body := f.do("GET", site+"/p", page(devBrowser, "__session="+adminTok, past))
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("require_role: 403", func(t *testing.T) {
		if resp, body := f.do("GET", site+"/admin/x", bearer(memberTok)); resp.StatusCode != 403 {
			t.Fatalf("member: %d %s", resp.StatusCode, body)
		}
		resp, body := f.do("GET", site+"/admin/x", bearer(adminTok))
		if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("admin: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("exclude on the original URI", func(t *testing.T) {
		resp, body := f.do("GET", site+"/health", spoofed(map[string]string{}))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if h := f.upstreamSaw(body); h["_path"] != "/health" || h["X-Clerk-User-Id"] != "" {
			t.Fatalf("upstream saw %v", h)
		}
	})

	t.Run("no token on a page load: 302 to sign-in with the original URL", func(t *testing.T) {
		for _, h := range []map[string]string{page(devBrowser), page(devBrowser, past), spoofed(page())} {
			resp, body := f.do("GET", site+"/docs?x=1", h)
			if want := signIn + "?redirect_url=" + site + "/docs?x=1"; resp.StatusCode != 302 || resp.Header.Get("Location") != want {
				t.Fatalf("%v: %d %q %s", h, resp.StatusCode, resp.Header.Get("Location"), body)
			}
		}
	})

	t.Run("an API without a token keeps the 401", func(t *testing.T) {
		resp, _ := f.do("GET", site+"/api/x", map[string]string{"Sec-Fetch-Dest": "empty"})
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("CSRF against the original origin", func(t *testing.T) {
		cookie := "__session=" + adminTok + "; " + past
		if resp, body := f.do("POST", site+"/api/x", map[string]string{"Cookie": cookie, "Origin": site}); resp.StatusCode != 200 {
			t.Fatalf("same origin: %d %s", resp.StatusCode, body)
		}
		if resp, _ := f.do("POST", site+"/api/x", map[string]string{"Cookie": cookie, "Origin": "https://evil.example"}); resp.StatusCode != 403 {
			t.Fatalf("cross-site: %d", resp.StatusCode)
		}
	})

	t.Run("a client's X-Forwarded-Uri beside nginx's X-Original-URI: 401", func(t *testing.T) {
		resp, _ := f.do("GET", site+"/api/x", with(bearer(memberTok), "X-Forwarded-Uri", "/health"))
		if resp.StatusCode != 401 {
			t.Fatalf("%d", resp.StatusCode)
		}
		// The same without a conflict passes: the 401 was the conflict's.
		if resp, _ := f.do("GET", site+"/api/x", with(bearer(memberTok), "X-Forwarded-Uri", "/api/x")); resp.StatusCode != 200 {
			t.Fatalf("agreeing: %d", resp.StatusCode)
		}
	})
}
