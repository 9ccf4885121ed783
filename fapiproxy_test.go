package caddyclerk

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// loopbackBrowser is newBrowser dialing localhost as 127.0.0.1, where
// Caddy listens, so a site on localhost and one on 127.0.0.1 are two
// domains with their own cookies.
func loopbackBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Transport: testClient(true).Transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// fakeFAPI stands for the Frontend API behind the proxy: it records what
// reaches it and answers /loc with the Location in ?to= and two cookies.
type fakeFAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newFakeFAPI(t *testing.T) *fakeFAPI {
	f := &fakeFAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Clone(r.Context()))
		f.mu.Unlock()
		w.Header().Add("Set-Cookie", "__client=c1; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "__client_uat=1; Path=/")
		if to := r.URL.Query().Get("to"); r.URL.Path == "/loc" {
			w.Header().Set("Location", to)
			w.WriteHeader(http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "fapi "+r.URL.Path)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeFAPI) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.seen...)
}

// TestFrontendAPIProxyRules: §9.2's rules, as the Frontend API sees the
// requests and the browser the answers; hostile paths reach neither the
// Frontend API nor the site; the secret key is in no answer and no log.
func TestFrontendAPIProxyRules(t *testing.T) {
	clerk := clerktest.NewT(t, clerktest.Production())
	fapi := newFakeFAPI(t)
	up := echoUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	run := startCaddy(t, fmt.Sprintf("log {\n\t\tlevel DEBUG\n\t\toutput file %s\n\t\tformat json\n\t}", logPath),
		fmt.Sprintf(`http://127.0.0.1:{{app}} {
	log {
		output file %[6]s.access
	}
	clerk {
		publishable_key %[1]s
		secret_key %[2]s
		api_url %[3]s
		frontend_api_proxy http://127.0.0.1:{{app}}/__clerk %[4]s
	}
	reverse_proxy %[5]s
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), fapi.URL, up.Listener.Addr().String(), logPath))
	app := run.url("app")
	public := app + "/__clerk"
	client := testClient(false)
	get := func(path string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", app+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	t.Run("request headers", func(t *testing.T) {
		n := len(fapi.requests())
		resp, body := get("/__clerk/v1/client/sign_ins?_clerk_js_version=5&x=a%20b", map[string]string{
			"Cookie": "__client=c1; __session=s", "Clerk-Secret-Key": "sk_live_forged", "Clerk-Proxy-Url": "https://evil.example",
			"Connection": "X-Hop", "X-Hop": "1", "Accept-Encoding": "gzip", "X-Forwarded-For": "203.0.113.9",
		})
		if resp.StatusCode != 200 || body != "fapi /v1/client/sign_ins" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		reqs := fapi.requests()
		if len(reqs) != n+1 {
			t.Fatalf("%d requests reached the Frontend API", len(reqs)-n)
		}
		r := reqs[n]
		want := map[string]string{
			"Host":             fapi.Listener.Addr().String(),
			"Query":            "_clerk_js_version=5&x=a%20b",
			"Clerk-Proxy-Url":  public,
			"Clerk-Secret-Key": clerk.SecretKey(),
			"Accept-Encoding":  "identity",
			"X-Forwarded-For":  "127.0.0.1", // the client, not what it claimed (not a trusted proxy)
			"X-Forwarded-Host": run.addr("app"),
			"Cookie":           "__client=c1; __session=s",
			"X-Hop":            "",
		}
		got := map[string]string{"Host": r.Host, "Query": r.URL.RawQuery}
		for k := range want {
			if k != "Host" && k != "Query" {
				got[k] = strings.Join(r.Header.Values(k), ", ")
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the Frontend API saw\n %v\nwant\n %v", got, want)
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 2 {
			t.Errorf("Set-Cookie %q: want both", sc)
		}
	})

	t.Run("the prefix alone is the root", func(t *testing.T) {
		resp, body := get("/__clerk", nil)
		if resp.StatusCode != 200 || body != "fapi /" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})

	fapiOrigin := fapi.URL
	for _, c := range []struct{ location, want string }{
		{fapiOrigin + "/v1/oauth_callback?code=1#top", public + "/v1/oauth_callback?code=1#top"},
		{fapiOrigin, public},
		{"/v1/client?x=1", public + "/v1/client?x=1"},
		{app + "/docs", app + "/docs"}, // the site: as is
		{"https://accounts.example.com/sign-in", "https://accounts.example.com/sign-in"}, // elsewhere: as is
		{fapiOrigin + "0/v1/x", fapiOrigin + "0/v1/x"},                                   // another port, same prefix
		{"//evil.example/x", "//evil.example/x"},                                         // protocol-relative: not a path of it
	} {
		t.Run("Location "+c.location, func(t *testing.T) {
			resp, _ := get("/__clerk/loc?to="+strings.ReplaceAll(c.location, "#", "%23"), nil)
			if resp.StatusCode != 302 || resp.Header.Get("Location") != c.want {
				t.Fatalf("%d Location %q, want %q", resp.StatusCode, resp.Header.Get("Location"), c.want)
			}
		})
	}

	t.Run("hostile paths", func(t *testing.T) {
		n := len(fapi.requests())
		for _, p := range []string{"/__clerk/../admin", "/__clerk/%2e%2e/admin", "/__clerk%2f..%2fadmin", "/__clerk/v1/%2F..",
			"/__clerk/v1/..%2f..%2fx", "/docs/../__clerk/v1/client", "/__clerk//v1", "/__clerk/v1/%252e%252e/x",
			"/__clerk/./v1", "/__clerk/v1%5c..%5cx", "/__clerk/v1\\..\\x"} {
			resp, body := get(p, nil)
			if resp.StatusCode != 400 || body != "400 proxy-path-invalid" {
				t.Errorf("%s: %d %q, want 400 proxy-path-invalid", p, resp.StatusCode, body)
			}
		}
		if reqs := fapi.requests(); len(reqs) != n {
			t.Errorf("%d hostile requests reached the Frontend API: %s", len(reqs)-n, reqs[n].URL)
		}
		// Only the exact prefix is the proxy's: anything else is the site's,
		// behind authentication.
		for _, p := range []string{"/__CLERK/v1/client", "/__clerkx/v1", "/x/__clerk/v1"} {
			if resp, body := get(p, nil); resp.StatusCode != 401 {
				t.Errorf("%s: %d %q, want the site's 401", p, resp.StatusCode, body)
			}
		}
		if reqs := fapi.requests(); len(reqs) != n {
			t.Errorf("%d requests outside the prefix reached the Frontend API", len(reqs)-n)
		}
	})

	run.stop() // flush the logs
	for _, f := range []string{logPath, logPath + ".access"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 {
			t.Errorf("%s is empty: nothing was checked", f)
		}
		if strings.Contains(string(raw), clerk.SecretKey()) || strings.Contains(string(raw), clerk.SecretKey()[8:28]) {
			t.Errorf("%s holds the secret key", f)
		}
	}
}

// TestFrontendAPIProxyHandshake: a production instance's Frontend API served
// through the site: sign-in, the handshake through /__clerk with the proxy
// headers, tokens whose iss is the proxy URL accepted, and tokens of the
// unproxied issuer refused (the pinned issuer followed the proxy).
func TestFrontendAPIProxyHandshake(t *testing.T) {
	clerk := clerktest.NewT(t, clerktest.Production())
	up := echoUpstream(t)
	run := startCaddy(t, "", fmt.Sprintf(`http://127.0.0.1:{{app}} {
	clerk {
		publishable_key %[1]s
		secret_key %[2]s
		api_url %[3]s
		sign_in_url %[4]s/sign-in
		frontend_api_proxy http://127.0.0.1:{{app}}/__clerk %[3]s
	}
	reverse_proxy %[5]s {%[6]s
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), clerk.AccountsURL(), up.Listener.Addr().String(), identityHeaders))
	f := &fixture{t: t, clerk: clerk, caddy: run, up: up, client: testClient(true)}
	app := run.url("app")
	public := app + "/__clerk"
	admin := clerk.AdminUser()
	b := loopbackBrowser(t)
	b.signInFrom(f, app+"/docs", admin)
	trail := strings.Join(b.trail, "\n")
	if !strings.Contains(trail, "307 "+public+"/v1/client/handshake?") {
		t.Fatalf("the handshake did not go through the proxy:\n%s", trail)
	}
	var hs []clerktest.ProxiedRequest
	for _, p := range clerk.ProxiedRequests() {
		if p.Path == "/v1/client/handshake" {
			hs = append(hs, p)
		}
	}
	if len(hs) != 1 || !hs[0].SecretKeyOK || hs[0].ProxyURL != public || hs[0].Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Fatalf("proxied handshakes: %+v", hs)
	}
	// The session cookie the handshake set carries iss = the proxy URL.
	u, _ := http.NewRequest("GET", app+"/", nil)
	var session string
	for _, c := range b.c.Jar.Cookies(u.URL) {
		if strings.HasPrefix(c.Name, "__session") {
			session = c.Value
		}
	}
	if u, err := verifier.Peek(session); err != nil || u.Issuer != public {
		t.Fatalf("session token iss %q (%v), want %s", u.Issuer, err, public)
	}
	// A token of the instance's own Frontend API host is not this site's.
	direct := f.mint(clerktest.TokenOptions{User: &admin})
	resp, body := f.do("GET", app+"/api", map[string]string{"Authorization": "Bearer " + direct})
	if resp.StatusCode != 401 || body != "401 token-invalid-issuer" {
		t.Fatalf("a token with iss %s: %d %q", clerk.Issuer(), resp.StatusCode, body)
	}
	proxied := f.mint(clerktest.TokenOptions{User: &admin, Issuer: public})
	resp, body = f.do("GET", app+"/api", map[string]string{"Authorization": "Bearer " + proxied})
	if resp.StatusCode != 200 || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
		t.Fatalf("a token with iss %s: %d %q", public, resp.StatusCode, body)
	}
}

// TestFrontendAPIProxyReload: the proxy the handler provisions lives and
// goes with its config: reloads keep it working, a dead upstream is a 502
// that never reaches the site, and without the setting the path is the
// site's again.
func TestFrontendAPIProxyReload(t *testing.T) {
	clerk := clerktest.NewT(t, clerktest.Production())
	config := func(proxy string) string {
		return fmt.Sprintf(`http://127.0.0.1:{{app}} {
	clerk {
		publishable_key %s
		secret_key %s
		api_url %s
		%s
	}
	respond "site"
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), proxy)
	}
	proxied := "frontend_api_proxy http://127.0.0.1:{{app}}/__clerk " + clerk.URL()
	run := startCaddy(t, "", config(proxied))
	client := testClient(false)
	get := func(path string) (int, string) {
		t.Helper()
		client.CloseIdleConnections() // the old server closes them (see reload)
		resp := afterReload(t, func() (*http.Response, error) { return client.Get(run.url("app") + path) })
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	jwks := "/__clerk/.well-known/jwks.json"
	if status, body := get(jwks); status != 200 || !strings.Contains(body, `"keys"`) {
		t.Fatalf("through the proxy: %d %s", status, body)
	}
	run.reload("", config(proxied))
	if status, body := get(jwks); status != 200 || !strings.Contains(body, `"keys"`) {
		t.Fatalf("after a reload: %d %s", status, body)
	}
	run.reload("", config("frontend_api_proxy http://127.0.0.1:{{app}}/__clerk "+strings.TrimSuffix(deadURL(t), "/.well-known/jwks.json")))
	if status, body := get(jwks); status != 502 || strings.Contains(body, "site") {
		t.Fatalf("dead upstream: %d %s", status, body)
	}
	run.reload("", config("frontend_api_url "+clerk.FrontendAPIURL()))
	if status, body := get(jwks); status != 401 {
		t.Fatalf("without frontend_api_proxy: %d %s, want the site's 401", status, body)
	}
}
