package authn

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// authRequest is what a front proxy sends its auth service: method and
// target of its own (GET /auth), the description in headers.
func authRequest(method string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, "http://auth.internal:9000/auth", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// TestForwarded: which headers describe the request a front proxy asks
// about, in what order, and what is refused.
func TestForwarded(t *testing.T) {
	type want struct {
		method, url string // url: CurrentURL of the described request
	}
	cases := []struct {
		name string
		r    *http.Request
		want want
		ok   bool
		err  string // a fragment of the error
	}{
		// Nothing describes another request: taken as it is.
		{"no forwarded headers", authRequest("GET"), want{}, false, ""},
		{"a method alone describes nothing", authRequest("GET", "X-Forwarded-Method", "POST", "X-Original-Method", "PUT"), want{}, false, ""},
		{"X-Forwarded-Host alone describes nothing", authRequest("GET", "X-Forwarded-Host", "app.example"), want{}, false, ""},

		// Caddy's forward_auth and Traefik's ForwardAuth.
		{"forward_auth", authRequest("GET", "X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/p/q?x=1&y=%20",
			"X-Forwarded-Host", "app.example", "X-Forwarded-Proto", "https"),
			want{"POST", "https://app.example/p/q?x=1&y=%20"}, true, ""},
		{"forwarded URI without host or proto: the request's own", authRequest("GET", "X-Forwarded-Uri", "/p"),
			want{"GET", "http://auth.internal:9000/p"}, true, ""},
		{"proxies append: the first X-Forwarded-Host and -Proto", authRequest("GET", "X-Forwarded-Uri", "/p",
			"X-Forwarded-Host", "app.example, inner.example", "X-Forwarded-Proto", "HTTPS, http"),
			want{"GET", "https://app.example/p"}, true, ""},

		// nginx auth_request: the subrequest keeps the method.
		{"nginx", authRequest("DELETE", "X-Original-URI", "/admin/x", "X-Original-Method", "DELETE",
			"X-Forwarded-Host", "app.example:8443", "X-Forwarded-Proto", "https"),
			want{"DELETE", "https://app.example:8443/admin/x"}, true, ""},
		{"nginx without X-Original-Method: the subrequest's own", authRequest("PATCH", "X-Original-URI", "/p"),
			want{"PATCH", "http://auth.internal:9000/p"}, true, ""},

		// ingress-nginx: X-Original-URL gives scheme and host (it blanks
		// X-Forwarded-Proto); X-Forwarded-* first when sent, as everywhere.
		{"ingress-nginx", authRequest("GET", "X-Original-URL", "https://app.example/p?q=1", "X-Original-Method", "PUT"),
			want{"PUT", "https://app.example/p?q=1"}, true, ""},
		{"X-Original-URL behind a proxy that sets X-Forwarded-Host/Proto", authRequest("GET", "X-Original-URL", "http://app.internal/p",
			"X-Forwarded-Host", "app.example", "X-Forwarded-Proto", "https"),
			want{"GET", "https://app.example/p"}, true, ""},
		{"ingress-nginx with auth-method: X-Original-URI too, the same target", authRequest("POST",
			"X-Original-URL", "http://app.example/p", "X-Original-URI", "/p", "X-Original-Method", "GET"),
			want{"GET", "http://app.example/p"}, true, ""},
		{"both families, the same request", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Original-URI", "/p",
			"X-Forwarded-Method", "POST", "X-Original-Method", "POST"),
			want{"POST", "http://auth.internal:9000/p"}, true, ""},

		// A client adds the family its front proxy does not set.
		{"behind nginx, a client's X-Forwarded-Uri", authRequest("GET", "X-Original-URI", "/admin", "X-Forwarded-Uri", "/health"),
			want{}, false, "X-Forwarded-Uri and X-Original-URI describe different requests"},
		{"behind Caddy, a client's X-Original-URI", authRequest("GET", "X-Forwarded-Uri", "/admin", "X-Original-URI", "/health"),
			want{}, false, "describe different requests"},
		{"behind ingress-nginx, a client's X-Forwarded-Uri", authRequest("GET", "X-Original-URL", "https://app.example/admin", "X-Forwarded-Uri", "/health"),
			want{}, false, "describe different requests"},
		{"methods differ", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Method", "GET", "X-Original-Method", "POST"),
			want{}, false, "X-Forwarded-Method and X-Original-Method differ"},
		{"a target sent twice", authRequest("GET", "X-Forwarded-Uri", "/admin", "X-Forwarded-Uri", "/health"),
			want{}, false, "X-Forwarded-Uri is sent more than once"},
		{"a method sent twice", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Method", "GET", "X-Forwarded-Method", "GET"),
			want{}, false, "X-Forwarded-Method is sent more than once"},

		// Malformed values.
		{"empty target", authRequest("GET", "X-Forwarded-Uri", ""), want{}, false, "not a path starting with /"},
		{"relative target", authRequest("GET", "X-Forwarded-Uri", "health"), want{}, false, "not a path starting with /"},
		{"asterisk", authRequest("GET", "X-Original-URI", "*"), want{}, false, "not a path starting with /"},
		{"absolute URL as URI", authRequest("GET", "X-Forwarded-Uri", "http://evil.example/x"), want{}, false, "not a path starting with /"},
		{"network-path reference", authRequest("GET", "X-Forwarded-Uri", "//evil.example/x"), want{}, false, "starts with //"},
		{"space", authRequest("GET", "X-Original-URI", "/a b"), want{}, false, "space or a control character"},
		{"CR LF", authRequest("GET", "X-Forwarded-Uri", "/a\r\nX-Evil: 1"), want{}, false, "control character"},
		{"NUL", authRequest("GET", "X-Forwarded-Uri", "/a\x00"), want{}, false, "control character"},
		{"DEL", authRequest("GET", "X-Forwarded-Uri", "/a\x7f"), want{}, false, "control character"},
		{"bad escape", authRequest("GET", "X-Forwarded-Uri", "/a%zz"), want{}, false, "not a request target"},
		{"method not a token", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Method", "GET /x"), want{}, false, "X-Forwarded-Method is not a method"},
		{"empty method", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Original-Method", ""), want{}, false, "X-Original-Method is not a method"},
		{"host with a path", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Host", "evil.example/x"), want{}, false, "X-Forwarded-Host is not a host"},
		{"host with userinfo", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Host", "app.example@evil.example"), want{}, false, "not a host"},
		{"host a URL cannot hold", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Host", "%"), want{}, false, "not a host"},
		{"port not a number", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Host", "app.example:x"), want{}, false, "not a host"},
		{"proto", authRequest("GET", "X-Forwarded-Uri", "/p", "X-Forwarded-Proto", "ftp"), want{}, false, "neither http nor https"},
		{"X-Original-URL not absolute", authRequest("GET", "X-Original-URL", "/p"), want{}, false, "not an absolute http(s) URL"},
		{"X-Original-URL other scheme", authRequest("GET", "X-Original-URL", "javascript://app.example/p"), want{}, false, "not an absolute http(s) URL"},
		{"X-Original-URL without a path", authRequest("GET", "X-Original-URL", "https://app.example"), want{}, false, "has no path"},
		{"X-Original-URL with userinfo", authRequest("GET", "X-Original-URL", "https://u@evil.example/p"), want{}, false, "no valid host"},
		{"X-Original-URL empty host", authRequest("GET", "X-Original-URL", "https:///p"), want{}, false, "no valid host"},
		{"X-Original-URL //", authRequest("GET", "X-Original-URL", "https://app.example//evil.example/"), want{}, false, "starts with //"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := *tc.r
			req, ok, err := Forwarded(tc.r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || ok || req.HTTP != nil {
					t.Fatalf("got %v %v, want an error with %q", ok, err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok {
				t.Fatalf("got %v %v, want %v", ok, err, tc.ok)
			}
			if tc.r.Method != before.Method || tc.r.URL != before.URL || tc.r.Host != before.Host {
				t.Fatal("the request itself was changed")
			}
			if !ok {
				return
			}
			d := req.HTTP
			if d.Method != tc.want.method || CurrentURL(req) != tc.want.url || !req.Forwarded || !req.TrustedProxy {
				t.Fatalf("described %s %s (forwarded %v)", d.Method, CurrentURL(req), req.Forwarded)
			}
			if d.RequestURI != d.URL.RequestURI() || d.URL.Host != "" || d.Context() != tc.r.Context() {
				t.Fatalf("described request %q %q", d.RequestURI, d.URL)
			}
		})
	}
}

// TestForwardedTLS: without X-Forwarded-Proto the scheme is the auth
// request's own.
func TestForwardedTLS(t *testing.T) {
	r := authRequest("GET", "X-Forwarded-Uri", "/p")
	r.TLS = &tls.ConnectionState{}
	req, ok, err := Forwarded(r)
	if !ok || err != nil || CurrentURL(req) != "https://auth.internal:9000/p" {
		t.Fatalf("%v %v %q", ok, err, CurrentURL(req))
	}
}

// TestForwardedDecisions: each decision reads the described request: the
// page-load rule, the sign-in redirect, the handshake and its redirect_url,
// the query carriers, CSRF, and a production handshake's cookies coming
// back in a redirect (a front proxy drops a 2xx answer's Set-Cookie).
func TestForwardedDecisions(t *testing.T) {
	describe := func(t *testing.T, r *http.Request) Request {
		t.Helper()
		req, ok, err := Forwarded(r)
		if !ok || err != nil {
			t.Fatalf("%v %v", ok, err)
		}
		return req
	}
	const front = "https://app.example"
	page := func(method, uri string, cookies ...string) *http.Request {
		r := authRequest("GET", "X-Forwarded-Method", method, "X-Forwarded-Uri", uri,
			"X-Forwarded-Host", "app.example", "X-Forwarded-Proto", "https", "Sec-Fetch-Dest", "document")
		if len(cookies) > 0 {
			r.Header.Set("Cookie", strings.Join(cookies, "; "))
		}
		return r
	}
	ctx := context.Background()

	t.Run("signed-out page load: sign-in with the original URL", func(t *testing.T) {
		e := newEnv(t, true, true)
		st := e.a.state(ctx, describe(t, page("GET", "/docs?a=1")))
		want := "https://accounts.example/sign-in?redirect_url=" + url.QueryEscape(front+"/docs?a=1")
		checkState(t, st, SignedOut, ReasonSessionTokenAndUATMissing, want, nil)
		if st.Location != want {
			t.Fatalf("Location %q", st.Location)
		}
	})

	t.Run("the original method decides the page load", func(t *testing.T) {
		e := newEnv(t, true, true)
		st := e.a.state(ctx, describe(t, page("POST", "/docs")))
		checkState(t, st, SignedOut, ReasonSessionTokenAndUATMissing, "", nil)
	})

	t.Run("handshake: redirect_url is the original URL", func(t *testing.T) {
		e := newEnv(t, true, true)
		st := e.a.state(ctx, describe(t, page("GET", "/docs?a=1", uat(now))))
		checkState(t, st, Handshake, ReasonClientUATWithoutSession, e.clerk.FrontendAPIURL()+"/v1/client/handshake?", nil)
		u, _ := url.Parse(st.Location)
		if got := u.Query().Get("redirect_url"); got != front+"/docs?a=1" {
			t.Fatalf("redirect_url %q", got)
		}
	})

	t.Run("dev-browser token in the original query", func(t *testing.T) {
		e := newEnv(t, false, true)
		st := e.a.state(ctx, describe(t, page("GET", "/docs?__clerk_db_jwt=dvb_q")))
		checkState(t, st, Handshake, ReasonDevBrowserSync, e.clerk.FrontendAPIURL()+"/v1/client/handshake?", nil)
		if u, _ := url.Parse(st.Location); u.Query().Get("__clerk_db_jwt") != "dvb_q" || u.Query().Get("redirect_url") != front+"/docs" {
			t.Fatalf("Location %q", st.Location)
		}
	})

	t.Run("nonce in the original query: reload the clean original URL", func(t *testing.T) {
		e := newEnv(t, false, true)
		e.redeemer.payloads["n1"] = []string{"__session=" + e.token(clerktest.TokenOptions{}) + "; Path=/"}
		st := e.a.state(ctx, describe(t, page("GET", "/docs?__clerk_handshake_nonce=n1&x=1", "__clerk_db_jwt=d")))
		checkState(t, st, Reload, "", front+"/docs?x=1", []string{"__session="})
		if st.Location != front+"/docs?x=1" || e.redeemer.calls != 1 {
			t.Fatalf("Location %q, %d calls", st.Location, e.redeemer.calls)
		}
	})

	t.Run("production nonce cookie: the cookies come back in a reload", func(t *testing.T) {
		e := newEnv(t, true, true)
		e.redeemer.payloads["n4"] = []string{"__session=" + e.token(clerktest.TokenOptions{}) + "; Path=/", uat(now) + "; Path=/"}
		st := e.a.state(ctx, describe(t, page("GET", "/docs", "__clerk_handshake_nonce=n4")))
		checkState(t, st, Reload, "", front+"/docs", []string{"__session=", "__client_uat=", "__clerk_handshake_nonce=; Path=/; Max-Age=0"})
		if st.HandshakeResult != HandshakeResolved || !st.NoStore {
			t.Fatalf("%+v", st)
		}
	})

	t.Run("CSRF: the original method and origin", func(t *testing.T) {
		e := newEnv(t, true, true)
		tok := e.token(clerktest.TokenOptions{})
		post := func(origin string) State {
			r := authRequest("GET", "X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/api",
				"X-Forwarded-Host", "app.example", "X-Forwarded-Proto", "https",
				"Cookie", "__session="+tok+"; "+uat(now.Add(-time.Minute)), "Origin", origin)
			return e.a.state(ctx, describe(t, r))
		}
		checkState(t, post("https://app.example"), SignedIn, "", "", nil)
		checkState(t, post("http://auth.internal:9000"), Forbidden, ReasonCSRF, "", nil)
		checkState(t, post("https://evil.example"), Forbidden, ReasonCSRF, "", nil)
	})
}
