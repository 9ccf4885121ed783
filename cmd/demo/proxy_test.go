package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/demo"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// TestDemoProxy walks the -proxy demo: a production instance whose
// Frontend API the site serves at /__clerk. Signing in ends with the
// handshake through the site, a session whose iss is the proxy URL, and
// the printed tokens work.
func TestDemoProxy(t *testing.T) {
	d, err := demo.StartLoopbackWith(demo.Options{Lifetime: time.Minute, Proxy: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if d.ProxyURL != d.Site+"/__clerk" || !strings.Contains(d.Banner(), d.ProxyURL) {
		t.Fatalf("proxy URL %q; banner:\n%s", d.ProxyURL, d.Banner())
	}
	jar, _ := cookiejar.New(nil)
	var hops []string
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		hops = append(hops, r.URL.String())
		return nil
	}}
	do := func(method, u string, form url.Values, dest, bearer string) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Sec-Fetch-Dest", dest)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	ada := d.Clerk.AdminUser()
	resp, body := do("GET", d.Site+"/", nil, "document", "")
	if resp.Request.URL.Path != "/accounts/sign-in" || !strings.Contains(body, `id="sign-in-ada"`) {
		t.Fatalf("not sent to sign-in: %s %s", resp.Request.URL, body)
	}
	resp, body = do("POST", d.Clerk.AccountsURL()+"/sign-in", url.Values{"user_id": {ada.ID},
		"redirect_url": {resp.Request.URL.Query().Get("redirect_url")}}, "document", "")
	if resp.StatusCode != 200 || resp.Request.URL.String() != d.Site+"/" || !strings.Contains(body, "A static page behind Clerk") {
		t.Fatalf("after sign-in: %d %s %s\n%s", resp.StatusCode, resp.Request.URL, body, strings.Join(hops, "\n"))
	}
	through := false
	for _, h := range hops {
		through = through || strings.HasPrefix(h, d.ProxyURL+"/v1/client/handshake?")
	}
	proxied := d.Clerk.ProxiedRequests()
	if !through || len(proxied) == 0 || !proxied[0].SecretKeyOK {
		t.Fatalf("the handshake did not go through the site's /__clerk: %+v\n%s", proxied, strings.Join(hops, "\n"))
	}
	site, _ := url.Parse(d.Site)
	for _, ck := range jar.Cookies(site) {
		if strings.HasPrefix(ck.Name, "__session") {
			if u, err := verifier.Peek(ck.Value); err != nil || u.Issuer != d.ProxyURL {
				t.Fatalf("session iss %q (%v), want %s", u.Issuer, err, d.ProxyURL)
			}
		}
	}
	resp, body = do("GET", d.Site+"/api/whoami", nil, "empty", "")
	var who map[string]string
	if err := json.Unmarshal([]byte(body), &who); err != nil || who["X-Clerk-User-Id"] != ada.ID {
		t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	}
	jar2, _ := cookiejar.New(nil)
	c.Jar = jar2
	if resp, body := do("GET", d.Site+"/api/whoami", nil, "empty", d.AdminToken); resp.StatusCode != 200 || !strings.Contains(body, ada.ID) {
		t.Fatalf("printed token: %d %s", resp.StatusCode, body)
	}
}
