package caddyclerk

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// TestTwoInstances: nothing of a handshake is kept in Caddy. The browser
// leaves through one instance and comes back, with the nonce, to another
// (same keys, another port: what a load balancer does); the first one is
// stopped before the return trip, so nothing it held can help.
func TestTwoInstances(t *testing.T) {
	for _, production := range []bool{false, true} {
		t.Run(fmt.Sprintf("production=%v", production), func(t *testing.T) {
			var opts []clerktest.Option
			if production {
				opts = append(opts, clerktest.Production())
			}
			clerk := clerktest.NewT(t, opts...)
			up := echoUpstream(t)
			node := func(name string) string {
				return fmt.Sprintf(`http://127.0.0.1:{{%s}} {
	clerk {
		publishable_key %s
		secret_key %s
		api_url %s
		frontend_api_url %s
		sign_in_url %s/sign-in
	}
	reverse_proxy %s {%s
	}
}
`, name, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), clerk.FrontendAPIURL(), clerk.AccountsURL(),
					up.Listener.Addr().String(), identityHeaders)
			}
			runA := startCaddy(t, "", node("a"))
			f := &fixture{t: t, clerk: clerk, caddy: runA, up: up, client: testClient(true)}
			a := runA.url("a")
			admin := clerk.AdminUser()
			b := loopbackBrowser(t)
			b.signInFrom(f, a+"/docs", admin)

			// The session cookie is gone (a new tab after it expired): the next
			// page load needs the handshake.
			for _, c := range b.c.Jar.Cookies(mustURL(t, a)) {
				if strings.HasPrefix(c.Name, "__session") {
					b.c.Jar.SetCookies(mustURL(t, a), []*http.Cookie{{Name: c.Name, Path: "/", MaxAge: -1}})
				}
			}
			resp := browserGet(t, b, a+"/docs")
			if resp.StatusCode != 307 || !strings.HasPrefix(resp.Header.Get("Location"), clerk.FrontendAPIURL()+"/v1/client/handshake?") {
				t.Fatalf("no handshake: %d %s", resp.StatusCode, resp.Header.Get("Location"))
			}
			back := browserGet(t, b, resp.Header.Get("Location")) // at the Frontend API
			ret := back.Header.Get("Location")
			if back.StatusCode != 307 || !strings.HasPrefix(ret, a+"/docs") {
				t.Fatalf("Frontend API answered %d %s", back.StatusCode, ret)
			}

			runA.stop()
			runB := startCaddy(t, "", node("b"))
			bURL := runB.url("b")
			final, status, body := b.navigate(bURL+strings.TrimPrefix(ret, a), nil)
			if status != 200 || final != bURL+"/docs" || f.upstreamSaw(body)["X-Clerk-User-Id"] != admin.ID {
				t.Fatalf("the return trip on the other instance: %d %s %s\n%s", status, final, body, strings.Join(b.trail, "\n"))
			}
		})
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// browserGet is one navigation hop, redirects not followed.
func browserGet(t *testing.T, b *browser, u string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Accept", "text/html")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
