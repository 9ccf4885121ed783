package clerktest

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// proxiedGet is a request as a Frontend API proxy sends it.
func proxiedGet(t *testing.T, s *Server, path, proxyURL, key string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL()+path, nil)
	req.Header.Set("Clerk-Proxy-Url", proxyURL)
	req.Header.Set("Clerk-Secret-Key", key)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func TestProxiedFrontendAPI(t *testing.T) {
	prod := newServer(t, Production())
	dev := newServer(t)
	const proxy = "https://app.example.com/__clerk"
	for _, tc := range []struct {
		name   string
		s      *Server
		proxy  string
		key    string
		status int
		code   string
	}{
		{"wrong secret key", prod, proxy, "sk_live_nope", 401, "proxy_secret_key_invalid"},
		{"no secret key", prod, proxy, "", 401, "proxy_secret_key_invalid"},
		{"development instance", dev, proxy, dev.SecretKey(), 400, "proxy_not_allowed"},
		{"relative proxy URL", prod, "/__clerk", prod.SecretKey(), 400, "proxy_url_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := proxiedGet(t, tc.s, "/.well-known/jwks.json", tc.proxy, tc.key)
			if res.StatusCode != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
				t.Fatalf("%d %s, want %d %s", res.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	t.Run("recorded without the key", func(t *testing.T) {
		n := len(prod.ProxiedRequests())
		if res, _ := proxiedGet(t, prod, "/.well-known/jwks.json?x=1", proxy, prod.SecretKey()); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		p := prod.ProxiedRequests()[n]
		if !p.SecretKeyOK || p.ProxyURL != proxy || p.Path != "/.well-known/jwks.json" || p.RawQuery != "x=1" ||
			p.Header.Get("Clerk-Secret-Key") != "" {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("tokens minted through the proxy carry its URL", func(t *testing.T) {
		user := prod.AdminUser()
		client, _, err := prod.SignInClient(user.ID)
		if err != nil {
			t.Fatal(err)
		}
		res, _ := proxiedGet(t, prod, "/v1/client/handshake?format=nonce&redirect_url="+url.QueryEscape("https://app.example.com/docs"),
			proxy, prod.SecretKey(), client)
		if res.StatusCode != 307 || res.Header.Get("Location") != "https://app.example.com/docs" {
			t.Fatalf("%d %s", res.StatusCode, res.Header.Get("Location"))
		}
		var nonce string
		for _, c := range res.Cookies() {
			if c.Name == "__clerk_handshake_nonce" && c.Value != "" {
				nonce = c.Value
			}
		}
		r := get(t, prod.BackendAPIURL()+"/clients/handshake_payload?nonce="+nonce, prod.SecretKey())
		var session string
		for _, d := range decodeObject(t, r.body)["directives"].([]any) {
			if v, ok := strings.CutPrefix(d.(string), "__session="); ok {
				session, _, _ = strings.Cut(v, ";")
			}
		}
		if _, claims := segments(t, session); claims["iss"] != proxy {
			t.Fatalf("iss %v, want %s", claims["iss"], proxy)
		}
	})
}

// A production satellite domain's Frontend API knows no browser until the
// primary's hands its client over; it mints tokens as itself.
func TestSatelliteDomainSync(t *testing.T) {
	s := newServer(t, Production())
	s.AddSatellite("localhost")
	user := s.AdminUser()
	client, _, err := s.SignInClient(user.ID)
	if err != nil {
		t.Fatal(err)
	}
	satFAPI := strings.Replace(s.URL(), "127.0.0.1", "localhost", 1)
	nc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	hop := func(u string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		req.URL.Host = strings.Replace(req.URL.Host, "localhost", "127.0.0.1", 1) // dialled as 127.0.0.1
		req.Host = mustHost(t, u)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		res, err := nc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	back := "http://localhost:9/docs?__clerk_synced=false"
	hs := satFAPI + "/v1/client/handshake?format=nonce&redirect_url=" + url.QueryEscape(back)
	res := hop(hs)
	sync := res.Header.Get("Location")
	if res.StatusCode != 307 || !strings.HasPrefix(sync, s.URL()+"/v1/client/sync?redirect_url=") {
		t.Fatalf("not sent to the primary: %d %s", res.StatusCode, sync)
	}
	// The primary hands its client (its __client cookie) to satellites only.
	if res := hop(s.URL() + "/v1/client/sync?redirect_url=" + url.QueryEscape("http://evil.example/x")); res.StatusCode != 400 {
		t.Fatalf("sync to a non-satellite: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res = hop(sync, client)
	ret := res.Header.Get("Location")
	if res.StatusCode != 307 || !strings.HasPrefix(ret, hs+"&__clerk_sync_token=") {
		t.Fatalf("primary answered %d %s", res.StatusCode, ret)
	}
	res = hop(ret)
	if res.StatusCode != 307 || res.Header.Get("Location") != "http://localhost:9/docs?__clerk_synced=true" {
		t.Fatalf("satellite answered %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	var nonce, own string
	for _, c := range res.Cookies() {
		switch c.Name {
		case "__clerk_handshake_nonce":
			nonce = c.Value
		case "__client":
			own = c.Value
		}
	}
	if own == "" {
		t.Fatal("the satellite domain got no client cookie of its own")
	}
	if res := hop(ret); res.StatusCode != 400 {
		t.Fatalf("a sync token used twice: %d", res.StatusCode)
	}
	r := get(t, s.BackendAPIURL()+"/clients/handshake_payload?nonce="+nonce, s.SecretKey())
	var session string
	for _, d := range decodeObject(t, r.body)["directives"].([]any) {
		if v, ok := strings.CutPrefix(d.(string), "__session="); ok {
			session, _, _ = strings.Cut(v, ";")
		}
	}
	if _, claims := segments(t, session); claims["iss"] != satFAPI || claims["sub"] != user.ID {
		t.Fatalf("claims %v, want iss %s", claims, satFAPI)
	}
}

func mustHost(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
