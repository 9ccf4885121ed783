package authn

// Fuzz target for what authn reads straight from the network (the Cookie
// header, the request target, Host and X-Forwarded-*). Its seeds run as a
// normal test; fuzz it with
//
//	go test -run '^$' -fuzz '^FuzzCookies$' -fuzztime 10m ./internal/authn

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// fuzzInstances are a development and a production instance, for their
// cookie suffixes and their rules for choosing suffixed cookies.
func fuzzInstances(tb testing.TB) [2]*verifier.Instance {
	tb.Helper()
	var out [2]*verifier.Instance
	for i, env := range []string{"test", "live"} {
		host := "clerk.fuzz.example$"
		if env == "test" {
			host = "fuzz-1.clerk.accounts.dev$"
		}
		inst, err := verifier.ParsePublishableKey("pk_" + env + "_" + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(host)), "="))
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = inst
	}
	return out
}

// fuzzValidHost is Go's HTTP server's test for a Host header
// (golang.org/x/net/http/httpguts.ValidHostHeader): a request with any
// other Host never reaches a handler.
func fuzzValidHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// fuzzValidHeaderValue is Go's HTTP server's test for a header value: no
// control characters but tab.
func fuzzValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// fuzzClerkCookies are every cookie name of Clerk's, for an instance.
func fuzzClerkCookies(inst *verifier.Instance) []string {
	sfx := "_" + inst.CookieSuffix
	return []string{cookieSession, cookieSession + sfx, cookieClientUAT, cookieClientUAT + sfx, cookieDevBrowser,
		cookieDevBrowser + sfx, cookieHandshake, cookieHandshakeNonce, cookieRedirectCount, "__refresh", "__refresh" + sfx}
}

// FuzzCookies: arbitrary Cookie headers, request targets, Host and
// X-Forwarded-* values through everything the handler reads from them
// before any token is verified: readCookies, CookieValue, parseDirective,
// PageURL/CurrentURL, HeaderToken and StripCredentials never panic;
// CookieValue agrees with net/http's r.Cookie on well-formed headers;
// readCookies only ever picks values that are there; the URL the browser is
// sent back to keeps the request's own host (or a trusted, well-formed
// X-Forwarded-Host) and drops Clerk's handshake parameters; after
// StripCredentials no Clerk cookie is left and no other cookie is changed.
func FuzzCookies(f *testing.F) {
	insts := fuzzInstances(f)
	tok := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2NsZXJrLmZ1enouZXhhbXBsZSIsImlhdCI6MTcwMDAwMDAwMH0.c2ln"
	sfx := "_" + insts[0].CookieSuffix
	for _, c := range []string{
		"", "__session=" + tok + "; __client_uat=1700000000",
		"__session" + sfx + "=" + tok + "; __client_uat" + sfx + "=1; __session=garbage; __client_uat=0",
		"__session=\"" + tok + "\"", "__session=\"", "__session=; __session=b", "__session; __session=b", " __session = a ",
		"a=1;b=2;;; c=3", "__clerk_handshake_nonce=abc; __clerk_handshake=x.y.z; __clerk_redirect_count=99999999999999999999",
		"__client_uat=-5; __clerk_redirect_count=-1", "__client_uat=9223372036854775808", "__clerk_db_jwt=dvb_1\n__session=x",
		"__session=a\x00b; __client_uat=\xff", "\v__session=x", "__session=x\r\nX-Evil: 1", "x=" + strings.Repeat("a", 300),
		"__session=a; Path=/; HttpOnly; Max-Age=0", "=novalue", "bad name=1", "__session=a,b; __session_" + insts[1].CookieSuffix + "=c",
	} {
		f.Add(c, "/p?x=1", "127.0.0.1:9120", "", "", "", false, false)
	}
	for _, target := range []string{"/", "/p?__clerk_handshake_nonce=n&x=1", "/p?__clerk_db_jwt=d&__dev_session=e&__clerk_help=1&y",
		"/p?%5F%5Fclerk_handshake=x", "/p?__clerk_handshake=%zz", "//evil.example/x", "/\\evil.example", "/p?a=b#__clerk_handshake=x",
		"/p?__clerk_handshake=1;__clerk_handshake=2", "*", "http://evil.example/x", "/%2F%2Fevil.example", "/p?redirect_url=https://evil.example"} {
		f.Add("__clerk_db_jwt=d", target, "127.0.0.1:9120", "", "", "", false, false)
	}
	for _, fwd := range [][3]string{
		{"evil.example", "https", "Bearer a"}, {"evil.example/@x", "javascript", "Bearer"}, {"a@b", "http", "Bearer  a b"},
		{"//evil", "https://evil", "a.b.c"}, {"evil.example, good.example", "https, http", "Basic x"},
		{"evil.example\r\nX: 1", "HTTPS", "bearer x"}, {"evil.example%2F%2Fx", "", "Bearer\ta"}, {"[::1]:1", "", ""},
		{"evil.example:443", "http", ""}, {"evil.example\\@x", "https", ""}, {"evil.example?x", "", ""}, {"evil.example#x", "", ""},
	} {
		f.Add("", "/p", "127.0.0.1:9120", fwd[0], fwd[1], fwd[2], true, true)
		f.Add("", "/p", "evil.example", fwd[0], fwd[1], fwd[2], false, false)
	}
	for _, host := range []string{"evil.example/@x", "a@b", "//evil", "evil.example\r\n", "", "[::1]", "a:b:c", "%2F"} {
		f.Add("", "/p", host, "", "", "", false, true)
	}

	nameRE := regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)
	f.Fuzz(func(t *testing.T, cookie, target, host, fwdHost, fwdProto, auth string, trusted, prod bool) {
		inst := insts[0]
		if prod {
			inst = insts[1]
		}
		a := New(Config{Instance: inst, SessionCookie: true})
		u, err := url.ParseRequestURI(target)
		realTarget := err == nil && strings.HasPrefix(target, "/")
		if err != nil {
			u = &url.URL{Path: "/p"}
		}
		r := &http.Request{Method: http.MethodGet, URL: u, Host: host, Header: http.Header{}}
		for _, line := range strings.Split(cookie, "\n") {
			if line != "" {
				r.Header.Add("Cookie", line)
			}
		}
		if fwdHost != "" {
			r.Header.Set("X-Forwarded-Host", fwdHost)
		}
		if fwdProto != "" {
			r.Header.Set("X-Forwarded-Proto", fwdProto)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}

		// scan reads each Clerk cookie exactly as CookieValue does.
		j := a.scan(r)
		for name, got := range map[string]string{cookieSession: j.session, cookieClientUAT: j.uat, cookieDevBrowser: j.devBrowser,
			cookieSession + "_" + inst.CookieSuffix: j.sfxSession, cookieClientUAT + "_" + inst.CookieSuffix: j.sfxUAT,
			cookieDevBrowser + "_" + inst.CookieSuffix: j.sfxDevBrowser, cookieHandshakeNonce: j.nonce, cookieHandshake: j.handshake,
			cookieRedirectCount: j.redirectCount} {
			if want := CookieValue(r, name); got != want {
				t.Fatalf("scan %s = %q, CookieValue %q", name, got, want)
			}
		}

		// readCookies picks only values that are there.
		st := cookiesOf(a, r)
		sfx := "_" + inst.CookieSuffix
		plain, suffixed := CookieValue(r, cookieSession), CookieValue(r, cookieSession+sfx)
		if st.session != plain && st.session != suffixed {
			t.Fatalf("session %q is neither cookie (%q, %q)", st.session, plain, suffixed)
		}
		if plain != suffixed && (st.session == suffixed) != st.suffixed {
			t.Fatalf("suffixed=%v but the session is %q", st.suffixed, st.session)
		}
		if st.plainSession != plain || st.sfxSession != suffixed {
			t.Fatalf("sessions %q %q", st.plainSession, st.sfxSession)
		}
		if st.clientUAT < 0 || st.redirectCount < 0 {
			t.Fatalf("client_uat %d, redirect count %d", st.clientUAT, st.redirectCount)
		}
		if uat := CookieValue(r, cookieClientUAT); !st.suffixed && st.clientUAT != 0 {
			if n, err := strconv.ParseInt(uat, 10, 64); err != nil || n != st.clientUAT {
				t.Fatalf("client_uat %d from %q", st.clientUAT, uat)
			}
		}
		q, _ := url.ParseQuery(r.URL.RawQuery)
		if n := q.Get(queryHandshakeNonce); n != "" && strings.Contains(r.URL.RawQuery, "__clerk") && st.nonce != n {
			t.Fatalf("nonce %q, query %q", st.nonce, n)
		}
		if st.nonceCookie && st.nonce != CookieValue(r, cookieHandshakeNonce) {
			t.Fatalf("nonce cookie %q", st.nonce)
		}

		// cookieValue is net/http's r.Cookie(name).Value on well-formed
		// headers (and, unlike it, reads past net/http's 3000-cookie limit).
		wellFormed, names := true, []string{}
		for _, line := range r.Header["Cookie"] {
			cs, err := http.ParseCookie(line)
			if err != nil {
				wellFormed = false
				break
			}
			for _, c := range cs {
				names = append(names, c.Name)
			}
		}
		if wellFormed && len(names) <= 3000 {
			for _, name := range append(names, fuzzClerkCookies(inst)...) {
				got := CookieValue(r, name)
				c, err := r.Cookie(name)
				if (err != nil && got != "") || (err == nil && got != c.Value) {
					t.Fatalf("CookieValue(%q) = %q, net/http %v %v", name, got, c, err)
				}
			}
		}

		// parseDirective passes on nothing that could split or bloat a
		// Set-Cookie header.
		for _, d := range append(strings.Split(cookie, "\n"), cookie) {
			name, value, ok := parseDirective(d)
			if !ok {
				continue
			}
			if len(d) > 8<<10 || !fuzzValidHeaderValue(d) || strings.ContainsRune(d, '\t') {
				t.Fatalf("directive %q accepted", d)
			}
			if name == "" || name != strings.TrimSpace(name) || strings.ContainsAny(name, "=;") || value != strings.TrimSpace(value) {
				t.Fatalf("directive %q parsed as %q=%q", d, name, value)
			}
		}

		// headerToken returns a trimmed token, the whole header when it has
		// no scheme, and nothing for other schemes.
		token := HeaderToken(r)
		if token != strings.TrimSpace(token) {
			t.Fatalf("token %q not trimmed", token)
		}
		if a := strings.TrimSpace(auth); a != "" && !strings.Contains(a, " ") && token != a {
			t.Fatalf("bare %q read as %q", a, token)
		}

		// Where the browser is sent back to: the request's own host (or a
		// trusted proxy's well-formed one), never Clerk's handshake
		// parameters, never a userinfo.
		page := PageURL(Request{HTTP: r, TrustedProxy: trusted})
		if realTarget && fuzzValidHost(host) && fuzzValidHeaderValue(fwdHost) && fuzzValidHeaderValue(fwdProto) {
			want := host
			if fh := firstValue(fwdHost); trusted && validHost(fh) {
				want = fh
			}
			pu, err := url.Parse(page)
			wu, werr := url.Parse("http://" + want + "/")
			if err == nil && werr == nil {
				if pu.User != nil || pu.Host != wu.Host || (pu.Scheme != "http" && pu.Scheme != "https") {
					t.Fatalf("page URL %q for host %q (forwarded %q, trusted %v): host %q, user %v", page, host, fwdHost, trusted, pu.Host, pu.User)
				}
				if !trusted && pu.Scheme != "http" {
					t.Fatalf("scheme %q from an untrusted client", pu.Scheme)
				}
				if pu.Path != r.URL.Path {
					t.Fatalf("page URL %q changed the path %q to %q", page, r.URL.Path, pu.Path)
				}
				for k := range pu.Query() {
					switch k {
					case queryDevBrowser, queryLegacyDevBrowser, queryHandshake, queryHandshakeNonce, queryHandshakeHelp:
						t.Fatalf("page URL %q keeps %s", page, k)
					}
				}
			}
		}

		// stripCredentials leaves no Clerk credential and every other
		// cookie as it was.
		r2 := r.Clone(r.Context())
		StripCredentials(r2)
		if r2.Header.Get("Authorization") != "" {
			t.Fatal("Authorization left")
		}
		for _, name := range fuzzClerkCookies(inst) {
			if v := CookieValue(r2, name); v != "" {
				t.Fatalf("%s=%q left after stripping %q", name, v, cookie)
			}
		}
		if st2 := cookiesOf(a, r2); st2.session != "" || st2.clientUAT != 0 || (st2.devBrowser != "" && !st2.devBrowserInQuery) || st2.nonceCookie || st2.handshakeCookie {
			t.Fatalf("Clerk state left after stripping: %+v", st2)
		}
		if wellFormed && len(names) <= 3000 {
			for _, name := range names {
				if clerkCookie(name) || !nameRE.MatchString(name) {
					continue
				}
				before, _ := r.Cookie(name)
				after, err := r2.Cookie(name)
				if err != nil || after.Value != before.Value {
					t.Fatalf("cookie %s changed by stripping: %v -> %v (%v)", name, before, after, err)
				}
			}
		}
	})
}

// FuzzForwarded: whatever a front proxy passes on (its own headers and the
// client's), the described request is one a browser could have made of the
// described host: an origin-form target, a token method, an http(s) URL
// with no userinfo and the same path; or an error, never a panic.
//
//	go test -run '^$' -fuzz '^FuzzForwarded$' -fuzztime 10m ./internal/authn
func FuzzForwarded(f *testing.F) {
	for _, s := range [][7]string{
		{"GET", "/p?x=1", "", "", "", "app.example", "https"},
		{"POST", "", "/admin", "GET", "", "app.example:8443", "http"},
		{"", "", "", "PUT", "https://app.example/p?q=1", "evil.example", ""},
		{"GET", "/health", "/admin", "", "", "", ""},
		{"GET", "//evil.example/x", "", "", "", "", ""},
		{"GET /x", "/p", "/p", "GET", "http://a@b/p", "a/b", "ftp"},
		{"", "/a\r\nX: 1", "*", "", "https://app.example", "", "HTTPS, http"},
		{"", "/%zz", "", "", "https://app.example//x", "", ""},
		{"", "", "", "", "javascript://app.example/p", "", ""},
		{"", "/\\evil.example", "", "", "http://[::1]:80/p", "[::1]", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6])
	}
	f.Fuzz(func(t *testing.T, fwdMethod, fwdURI, origURI, origMethod, origURL, fwdHost, fwdProto string) {
		r, _ := http.NewRequest("GET", "http://auth.internal/auth", nil)
		for k, v := range map[string]string{"X-Forwarded-Method": fwdMethod, "X-Forwarded-Uri": fwdURI,
			"X-Original-URI": origURI, "X-Original-Method": origMethod, "X-Original-URL": origURL,
			"X-Forwarded-Host": fwdHost, "X-Forwarded-Proto": fwdProto} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		req, ok, err := Forwarded(r)
		if err != nil || !ok {
			if ok || req.HTTP != nil {
				t.Fatalf("refused (%v) but described", err)
			}
			return
		}
		d := req.HTTP
		if !isToken(d.Method) || !strings.HasPrefix(d.RequestURI, "/") || strings.HasPrefix(d.RequestURI, "//") {
			t.Fatalf("described %q %q", d.Method, d.RequestURI)
		}
		for _, v := range []string{fwdURI, origURI} {
			if v != "" && v != d.RequestURI {
				t.Fatalf("target %q from %q, %q", d.RequestURI, fwdURI, origURI)
			}
		}
		cur := CurrentURL(req)
		if !fuzzValidHeaderValue(cur) || strings.ContainsAny(cur, " \t") {
			t.Fatalf("current URL %q", cur)
		}
		u, err := url.Parse(cur)
		if err != nil {
			t.Fatalf("current URL %q: %v", cur, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host != d.Host || u.Path != d.URL.Path {
			t.Fatalf("current URL %q: host %q, described %q %q", cur, u.Host, d.Host, d.URL.Path)
		}
		if origURL != "" && fwdHost == "" && !strings.HasSuffix(origURL, "://"+d.Host+d.RequestURI) {
			t.Fatalf("X-Original-URL %q described as %q", origURL, cur)
		}
	})
}
