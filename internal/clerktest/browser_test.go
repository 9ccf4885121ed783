package clerktest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	nonceRE = regexp.MustCompile(`^[0-9A-Za-z]{32}$`)
	dvbRE   = regexp.MustCompile(`^dvb_[0-9A-Za-z]{27}$`)
	sessRE  = regexp.MustCompile(`^sess_[0-9A-Za-z]{27}$`)
)

// The app the browser returns to: another port of the same host, so it
// shares the emulator's cookies.
const appURL = "http://127.0.0.1:1/dashboard?tab=2"

// browser is a client with a cookie jar that stops at every redirect, so
// each hop can be checked.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T, s *Server) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t, &http.Client{
		Transport:     s.Client().Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(req *http.Request) resp {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, body}
}

func (b *browser) get(u string) resp {
	b.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) resp {
	b.t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// cookies are the jar's cookies for u, by name.
func (b *browser) cookies(u string) map[string]string {
	b.t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		b.t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range b.c.Jar.Cookies(pu) {
		out[c.Name] = c.Value
	}
	return out
}

func handshakeURL(s *Server, q url.Values) string {
	return s.FrontendAPIURL() + "/v1/client/handshake?" + q.Encode()
}

func hsQuery(redirect, format string, suffixed bool, extra ...string) url.Values {
	q := url.Values{"redirect_url": {redirect}, "suffixed_cookies": {strconv.FormatBool(suffixed)},
		"__clerk_api_version": {"2025-04-10"}, "__clerk_hs_reason": {"session-token-expired-refresh-non-eligible-no-refresh-cookie"}}
	if format != "" {
		q.Set("format", format)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func wantRedirect(t *testing.T, r resp, status int) *url.URL {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// redeem fetches a nonce's directives from the Backend API.
func redeem(t *testing.T, s *Server, nonce string) []string {
	t.Helper()
	req, _ := newRequest(t.Context(), s.BackendAPIURL()+"/clients/handshake_payload?nonce="+url.QueryEscape(nonce), s.SecretKey())
	r := (&browser{t, s.Client()}).do(req)
	if r.status != 200 {
		t.Fatalf("payload: status %d: %s", r.status, r.body)
	}
	var p struct {
		Directives []string `json:"directives"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p.Directives
}

// legacyDirectives verifies a handshake token against the JWKS and returns
// its directives.
func legacyDirectives(t *testing.T, s *Server, tok string) []string {
	t.Helper()
	if err := verifyWithJWKS(t, s, tok); err != nil {
		t.Fatalf("handshake token: %v", err)
	}
	h, c := segments(t, tok)
	if keysOf(h) != "alg,kid,typ" || h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != s.CurrentKeyID() {
		t.Fatalf("handshake header %v", h)
	}
	if keysOf(c) != "handshake" {
		t.Fatalf("handshake payload %v", c)
	}
	var out []string
	for _, d := range c["handshake"].([]any) {
		out = append(out, d.(string))
	}
	return out
}

func wantDirectives(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("directives\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// sessionToken finds the __session directive's token and checks it against
// the session, user and lifetime.
func sessionToken(t *testing.T, s *Server, dirs []string, sid, userID string, life time.Duration) {
	t.Helper()
	var tok string
	for _, d := range dirs {
		if v, ok := strings.CutPrefix(d, "__session="); ok {
			tok, _, _ = strings.Cut(v, ";")
		}
	}
	if err := verifyWithJWKS(t, s, tok); err != nil {
		t.Fatalf("session token %q: %v", tok, err)
	}
	_, c := segments(t, tok)
	if c["sid"] != sid || c["sub"] != userID || c["iss"] != s.Issuer() {
		t.Fatalf("claims %v, want sid %s sub %s", c, sid, userID)
	}
	if got := c["exp"].(float64) - c["iat"].(float64); got != life.Seconds() {
		t.Fatalf("exp-iat %v, want %v", got, life.Seconds())
	}
}

// clock is a settable emulator clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCookieSuffix(t *testing.T) {
	s := newServer(t)
	// @clerk/shared: btoa of the SHA-1 digest, made URL-safe, first 8.
	sum := sha1.Sum([]byte(s.PublishableKey()))
	std := base64.StdEncoding.EncodeToString(sum[:])
	want := strings.NewReplacer("+", "-", "/", "_").Replace(std)[:8]
	if s.CookieSuffix() != want || len(want) != 8 {
		t.Fatalf("suffix %q, want %q", s.CookieSuffix(), want)
	}
}

func TestHandshakeDevSignedOut(t *testing.T) {
	s := newServer(t)
	sfx := s.CookieSuffix()
	b := newBrowser(t, s)
	// No dev browser yet: the handshake creates one.
	r := b.get(handshakeURL(s, hsQuery("http://127.0.0.1:1/p?x=1&y=a%2Fb#frag", "nonce", true, "organization_id", "org_1")))
	loc := wantRedirect(t, r, http.StatusTemporaryRedirect)
	nonce := loc.Query().Get("__clerk_handshake_nonce")
	if !nonceRE.MatchString(nonce) || r.header.Get("Set-Cookie") != "" {
		t.Fatalf("nonce %q, Set-Cookie %q", nonce, r.header.Values("Set-Cookie"))
	}
	if want := "http://127.0.0.1:1/p?x=1&y=a%2Fb&__clerk_handshake_nonce=" + nonce + "#frag"; loc.String() != want {
		t.Fatalf("Location %s, want %s", loc, want)
	}
	dirs := redeem(t, s, nonce)
	dvb, _, _ := strings.Cut(strings.TrimPrefix(dirs[len(dirs)-1], "__clerk_db_jwt="), ";")
	if !dvbRE.MatchString(dvb) {
		t.Fatalf("dev browser %q", dvb)
	}
	wantDirectives(t, dirs, []string{
		"__session_" + sfx + "=; Path=/; Max-Age=0",
		"__session=; Path=/; Max-Age=0",
		"__client_uat_" + sfx + "=0; Path=/; Max-Age=315360000; SameSite=Lax",
		"__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax",
		"__clerk_db_jwt_" + sfx + "=" + dvb + "; Path=/; Max-Age=31536000; SameSite=Lax",
		"__clerk_db_jwt=" + dvb + "; Path=/; Max-Age=31536000; SameSite=Lax",
	})

	// The same dev browser again, legacy format, unsuffixed, a
	// previous nonce on the URL replaced.
	r = b.get(handshakeURL(s, hsQuery(appURL+"&__clerk_handshake=old", "", false, "__clerk_db_jwt", dvb)))
	loc = wantRedirect(t, r, http.StatusTemporaryRedirect)
	tok := loc.Query().Get("__clerk_handshake")
	if want := appURL + "&__clerk_handshake=" + tok; loc.String() != want {
		t.Fatalf("Location %s, want %s", loc, want)
	}
	wantDirectives(t, legacyDirectives(t, s, tok), []string{
		"__session=; Path=/; Max-Age=0",
		"__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax",
		"__clerk_db_jwt=" + dvb + "; Path=/; Max-Age=31536000; SameSite=Lax",
	})

	hs := s.Handshakes()
	if len(hs) != 2 || hs[0].Get("format") != "nonce" || hs[0].Get("suffixed_cookies") != "true" ||
		hs[0].Get("__clerk_hs_reason") == "" || hs[0].Get("__clerk_api_version") != "2025-04-10" ||
		hs[0].Has("__clerk_db_jwt") || hs[1].Get("__clerk_db_jwt") != dvb || hs[1].Has("format") ||
		hs[1].Get("redirect_url") != appURL+"&__clerk_handshake=old" {
		t.Fatalf("handshakes %v", hs)
	}
	hs[0].Set("format", "changed")
	if s.Handshakes()[0].Get("format") != "nonce" {
		t.Fatal("Handshakes returned the recorded values, not copies")
	}
	if s.Requests(FAPIHandshake) != 2 || len(s.Sessions()) != 0 {
		t.Fatalf("count %d, sessions %v", s.Requests(FAPIHandshake), s.Sessions())
	}
}

func TestHandshakeDevSignedIn(t *testing.T) {
	clk := &clock{t: fixedNow}
	s := newServer(t, WithClock(clk.now), WithSessionLifetime(3*time.Second))
	ada := s.AdminUser()
	ck, sid, err := s.SignInClient(ada.ID)
	if err != nil || ck.Name != "__clerk_db_jwt" || !dvbRE.MatchString(ck.Value) || !sessRE.MatchString(sid) {
		t.Fatalf("SignInClient: %v %v %q", err, ck, sid)
	}
	clk.add(10 * time.Second)
	uat := strconv.FormatInt(fixedNow.Unix(), 10)
	b := newBrowser(t, s)
	for _, format := range []string{"nonce", "token"} {
		for _, suffixed := range []bool{false, true} {
			r := b.get(handshakeURL(s, hsQuery(appURL, format, suffixed, "__clerk_db_jwt", ck.Value)))
			loc := wantRedirect(t, r, http.StatusTemporaryRedirect)
			var dirs []string
			if format == "nonce" {
				dirs = redeem(t, s, loc.Query().Get("__clerk_handshake_nonce"))
			} else {
				dirs = legacyDirectives(t, s, loc.Query().Get("__clerk_handshake"))
			}
			tok, _, _ := strings.Cut(strings.TrimPrefix(dirs[0], "__session"), ";")
			tok = tok[strings.Index(tok, "=")+1:]
			want := []string{"__session=" + tok + "; Path=/; SameSite=Lax",
				"__client_uat=" + uat + "; Path=/; Max-Age=315360000; SameSite=Lax",
				"__clerk_db_jwt=" + ck.Value + "; Path=/; Max-Age=31536000; SameSite=Lax"}
			if suffixed {
				var sw []string
				for _, d := range want {
					name, rest, _ := strings.Cut(d, "=")
					sw = append(sw, name+"_"+s.CookieSuffix()+"="+rest, d)
				}
				want = sw
			}
			wantDirectives(t, dirs, want)
			sessionToken(t, s, dirs, sid, ada.ID, 3*time.Second)
			if _, c := segments(t, tok); c["iat"] != float64(fixedNow.Add(10*time.Second).Unix()) {
				t.Fatalf("iat %v: not the emulator clock", c["iat"])
			}
		}
	}
	s.SetSessionLifetime(5 * time.Second)
	r := b.get(handshakeURL(s, hsQuery(appURL, "nonce", false, "__clerk_db_jwt", ck.Value)))
	dirs := redeem(t, s, wantRedirect(t, r, http.StatusTemporaryRedirect).Query().Get("__clerk_handshake_nonce"))
	sessionToken(t, s, dirs, sid, ada.ID, 5*time.Second)
}

func TestHandshakeProduction(t *testing.T) {
	s := newServer(t, Production())
	sfx := s.CookieSuffix()
	b := newBrowser(t, s)

	// No __client: signed out; the nonce travels in a cookie.
	r := b.get(handshakeURL(s, hsQuery(appURL, "nonce", true)))
	loc := wantRedirect(t, r, http.StatusTemporaryRedirect)
	set := r.header.Values("Set-Cookie")
	nonce, _, _ := strings.Cut(strings.TrimPrefix(strings.Join(set, ""), "__clerk_handshake_nonce="), ";")
	if loc.String() != appURL || len(set) != 1 || !nonceRE.MatchString(nonce) ||
		set[0] != "__clerk_handshake_nonce="+nonce+"; Path=/; Max-Age=60; HttpOnly; SameSite=Lax" {
		t.Fatalf("Location %s, Set-Cookie %q", loc, set)
	}
	// Cookies ignore ports: the app receives it.
	if got := b.cookies(appURL)["__clerk_handshake_nonce"]; got != nonce {
		t.Fatalf("app's nonce cookie %q", got)
	}
	wantDirectives(t, redeem(t, s, nonce), []string{
		"__session_" + sfx + "=; Path=/; Max-Age=0",
		"__session=; Path=/; Max-Age=0",
		"__client_uat_" + sfx + "=0; Path=/; Max-Age=315360000; SameSite=Lax",
		"__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax",
		"__clerk_handshake_nonce=; Path=/; Max-Age=0",
	})
	// A dev-browser parameter means nothing to a production instance.
	wantRedirect(t, b.get(handshakeURL(s, hsQuery(appURL, "nonce", false, "__clerk_db_jwt", "dvb_x"))), 307)
	if d := redeem(t, s, b.cookies(appURL)["__clerk_handshake_nonce"]); len(d) != 3 || d[0] != "__session=; Path=/; Max-Age=0" {
		t.Fatalf("directives %q", d)
	}

	// Signed in: the browser holds the client's __client cookie.
	bob := s.MemberUser()
	ck, sid, err := s.SignInClient(bob.ID)
	if err != nil || ck.Name != "__client" || !ck.HttpOnly || len(ck.Value) < 40 {
		t.Fatalf("SignInClient: %v %+v", err, ck)
	}
	emu, _ := url.Parse(s.URL())
	b.c.Jar.SetCookies(emu, []*http.Cookie{ck})
	r = b.get(handshakeURL(s, hsQuery(appURL, "", true)))
	loc = wantRedirect(t, r, http.StatusTemporaryRedirect)
	set = r.header.Values("Set-Cookie")
	tok := b.cookies(appURL)["__clerk_handshake"]
	if loc.String() != appURL || len(set) != 1 || set[0] != "__clerk_handshake="+tok+"; Path=/; Max-Age=60; SameSite=Lax" {
		t.Fatalf("Location %s, Set-Cookie %q", loc, set)
	}
	dirs := legacyDirectives(t, s, tok)
	uat := strconv.FormatInt(s.Sessions()[0].CreatedAt.Unix(), 10)
	if len(dirs) != 5 || !strings.HasPrefix(dirs[0], "__session_"+sfx+"=ey") || !strings.HasPrefix(dirs[1], "__session=ey") {
		t.Fatalf("directives %q", dirs)
	}
	wantDirectives(t, dirs[2:], []string{
		"__client_uat_" + sfx + "=" + uat + "; Path=/; Max-Age=315360000; SameSite=Lax",
		"__client_uat=" + uat + "; Path=/; Max-Age=315360000; SameSite=Lax",
		"__clerk_handshake=; Path=/; Max-Age=0",
	})
	sessionToken(t, s, dirs, sid, bob.ID, DefaultLifetime)
}

func TestHandshakeSecure(t *testing.T) {
	s := newServer(t, WithTLS(), Production())
	b := newBrowser(t, s)
	r := b.get(handshakeURL(s, hsQuery("https://127.0.0.1:1/", "nonce", false)))
	wantRedirect(t, r, http.StatusTemporaryRedirect)
	set := r.header.Get("Set-Cookie")
	if !strings.HasSuffix(set, "; HttpOnly; SameSite=Lax; Secure") {
		t.Fatalf("Set-Cookie %q", set)
	}
	nonce := b.cookies(s.URL())["__clerk_handshake_nonce"]
	for _, d := range redeem(t, s, nonce) {
		if !strings.HasSuffix(d, "; Secure") {
			t.Fatalf("directive %q lacks Secure", d)
		}
	}
	ck, _, _ := s.SignInClient(s.AdminUser().ID)
	if !ck.Secure {
		t.Fatal("__client cookie not Secure")
	}
}

func TestHandshakeNonceExpiry(t *testing.T) {
	clk := &clock{t: fixedNow}
	s := newServer(t, WithClock(clk.now))
	s.StoreHandshakePayload("stored", []string{"__session=x"})
	r := newBrowser(t, s).get(handshakeURL(s, hsQuery(appURL, "nonce", false)))
	loc := wantRedirect(t, r, http.StatusTemporaryRedirect)
	payload := s.BackendAPIURL() + "/clients/handshake_payload?nonce=" + loc.Query().Get("__clerk_handshake_nonce")
	clk.add(5*time.Minute - time.Second)
	if r := get(t, payload, s.SecretKey()); r.status != 200 {
		t.Fatalf("before expiry: %d", r.status)
	}
	clk.add(time.Second)
	wantClerkError(t, get(t, payload, s.SecretKey()), 404, "resource_not_found")
	if r := get(t, s.BackendAPIURL()+"/clients/handshake_payload?nonce=stored", s.SecretKey()); r.status != 200 {
		t.Fatalf("a stored nonce expired: %d", r.status)
	}
}

func TestHandshakeInvalidRedirect(t *testing.T) {
	s := newServer(t)
	bad := []string{"", "/relative", "app.example/x", "ftp://app.example/", "http://", "javascript:alert(1)", "http://%zz"}
	for _, u := range bad {
		q := hsQuery(u, "nonce", true)
		if u == "" {
			q.Del("redirect_url")
		}
		r := get(t, handshakeURL(s, q), "")
		wantClerkError(t, r, http.StatusBadRequest, "form_param_value_invalid")
		e := decodeObject(t, r.body)["errors"].([]any)[0].(map[string]any)
		if e["message"] != "redirect_url is invalid" {
			t.Fatalf("%q: message %v", u, e["message"])
		}
	}
	if len(s.Handshakes()) != len(bad) || s.Handshakes()[1].Get("redirect_url") != "/relative" {
		t.Fatalf("handshakes %v", s.Handshakes())
	}
}

func TestSignInPage(t *testing.T) {
	s := newServer(t)
	cy := s.AddUser(User{FirstName: "Cy"})
	q := url.Values{"redirect_url": {`http://127.0.0.1:1/"><script>x</script>`}, "__clerk_db_jwt": {"dvb_abc"}}
	r := get(t, s.AccountsURL()+"/sign-in?"+q.Encode(), "")
	body := string(r.body)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d %q", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<title>Sign in (Clerk emulator)</title>", "<h1>Sign in</h1>", "local Clerk emulator", "pick a demo user",
		`<form method="post" action="/accounts/sign-in">`,
		`<input type="hidden" name="user_id" value="` + s.AdminUser().ID + `">`,
		`<input type="hidden" name="__clerk_db_jwt" value="dvb_abc">`,
		`id="sign-in-ada">Ada Lovelace — ada@example.com (org:admin)</button>`,
		`id="sign-in-bob">Bob Builder — bob@example.com (org:member)</button>`,
		`id="sign-in-` + cy.ID + `">Cy (no organization)</button>`,
		`value="http://127.0.0.1:1/&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("page lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Fatal("redirect_url not escaped")
	}
	if a, b, c := strings.Index(body, "sign-in-ada"), strings.Index(body, "sign-in-bob"), strings.Index(body, "sign-in-"+cy.ID); !(a < b && b < c) {
		t.Fatal("users not in registration order")
	}
	if strings.Count(body, "<form") != 3 {
		t.Fatalf("%d forms", strings.Count(body, "<form"))
	}
}

func signInForm(userID, redirect, dvb string) url.Values {
	return url.Values{"user_id": {userID}, "redirect_url": {redirect}, "__clerk_db_jwt": {dvb}}
}

func TestSignInDevelopment(t *testing.T) {
	s := newServer(t, WithSessionLifetime(2*time.Second))
	ada, bob := s.AdminUser(), s.MemberUser()
	b := newBrowser(t, s)
	// The app's first handshake bootstraps the dev browser.
	r := b.get(handshakeURL(s, hsQuery(appURL, "nonce", false)))
	dirs := redeem(t, s, wantRedirect(t, r, 307).Query().Get("__clerk_handshake_nonce"))
	dvb, _, _ := strings.Cut(strings.TrimPrefix(dirs[2], "__clerk_db_jwt="), ";")

	r = b.post(s.AccountsURL()+"/sign-in", signInForm(ada.ID, appURL, dvb))
	loc := wantRedirect(t, r, http.StatusSeeOther)
	if loc.String() != appURL+"&__clerk_db_jwt="+dvb || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("Location %s, Set-Cookie %q", loc, r.header.Values("Set-Cookie"))
	}
	ss := s.Sessions()
	if len(ss) != 1 || ss[0].UserID != ada.ID || ss[0].Status != "active" || !strings.HasPrefix(ss[0].ClientID, "client_") {
		t.Fatalf("sessions %+v", ss)
	}
	adaSID := ss[0].ID
	r = b.get(handshakeURL(s, hsQuery(appURL, "nonce", false, "__clerk_db_jwt", dvb)))
	dirs = redeem(t, s, wantRedirect(t, r, 307).Query().Get("__clerk_handshake_nonce"))
	sessionToken(t, s, dirs, adaSID, ada.ID, 2*time.Second)

	// Signing in again replaces the client's session.
	r = b.post(s.AccountsURL()+"/sign-in", signInForm(bob.ID, appURL, dvb))
	wantRedirect(t, r, http.StatusSeeOther)
	ss = s.Sessions()
	if len(ss) != 2 || s.SessionStatus(adaSID) != "ended" || ss[1].Status != "active" || ss[1].UserID != bob.ID || ss[1].ClientID != ss[0].ClientID {
		t.Fatalf("sessions %+v", ss)
	}
	bobSID := ss[1].ID

	// Sign-out ends it; the next handshake signs out.
	q := url.Values{"redirect_url": {appURL}, "__clerk_db_jwt": {dvb}}
	r = b.get(s.AccountsURL() + "/sign-out?" + q.Encode())
	if loc := wantRedirect(t, r, http.StatusSeeOther); loc.String() != appURL {
		t.Fatalf("sign-out Location %s", loc)
	}
	if s.SessionStatus(bobSID) != "ended" {
		t.Fatalf("status %q", s.SessionStatus(bobSID))
	}
	r = b.get(handshakeURL(s, hsQuery(appURL, "nonce", false, "__clerk_db_jwt", dvb)))
	dirs = redeem(t, s, wantRedirect(t, r, 307).Query().Get("__clerk_handshake_nonce"))
	if dirs[0] != "__session=; Path=/; Max-Age=0" || dirs[1] != "__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax" {
		t.Fatalf("after sign-out: %q", dirs)
	}

	// Without a dev browser, sign-in makes a new client.
	r = b.post(s.AccountsURL()+"/sign-in", signInForm(ada.ID, appURL, ""))
	other := wantRedirect(t, r, http.StatusSeeOther).Query().Get("__clerk_db_jwt")
	if !dvbRE.MatchString(other) || other == dvb || s.Sessions()[2].ClientID == ss[0].ClientID {
		t.Fatalf("new dev browser %q", other)
	}
	// No valid redirect_url: a page.
	r = b.post(s.AccountsURL()+"/sign-in", signInForm(ada.ID, "/relative", other))
	if r.status != 200 || !strings.Contains(string(r.body), "Signed in as Ada Lovelace") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	r = b.get(s.AccountsURL() + "/sign-out?__clerk_db_jwt=" + other)
	if r.status != 200 || !strings.Contains(string(r.body), "Signed out") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	// An unknown user.
	r = b.post(s.AccountsURL()+"/sign-in", signInForm("user_nobody", appURL, dvb))
	if r.status != 400 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("unknown user: %d", r.status)
	}
	if s.Requests(AccountsSignIn) != 5 || s.Requests(AccountsSignOut) != 2 {
		t.Fatalf("counts %d %d", s.Requests(AccountsSignIn), s.Requests(AccountsSignOut))
	}
}

func TestSignInProduction(t *testing.T) {
	clk := &clock{t: fixedNow}
	s := newServer(t, Production(), WithClock(clk.now))
	sfx := s.CookieSuffix()
	ada := s.AdminUser()
	b := newBrowser(t, s)

	r := b.post(s.AccountsURL()+"/sign-in", signInForm(ada.ID, appURL, ""))
	loc := wantRedirect(t, r, http.StatusSeeOther)
	set := r.header.Values("Set-Cookie")
	client := b.cookies(s.URL())["__client"]
	uat := strconv.FormatInt(fixedNow.Unix(), 10)
	want := []string{
		"__client=" + client + "; Path=/; Max-Age=315360000; HttpOnly; SameSite=Lax",
		"__client_uat_" + sfx + "=" + uat + "; Path=/; Max-Age=315360000; SameSite=Lax",
		"__client_uat=" + uat + "; Path=/; Max-Age=315360000; SameSite=Lax",
	}
	if loc.String() != appURL || len(client) < 40 || strings.Join(set, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Location %s, Set-Cookie\n%s", loc, strings.Join(set, "\n"))
	}
	if got := b.cookies(appURL); got["__client_uat"] != uat || got["__client_uat_"+sfx] != uat {
		t.Fatalf("app's cookies %v", got)
	}
	sid := s.Sessions()[0].ID

	// The handshake finds the client by its cookie.
	clk.add(time.Minute)
	r = b.get(handshakeURL(s, hsQuery(appURL, "nonce", false)))
	wantRedirect(t, r, 307)
	dirs := redeem(t, s, b.cookies(appURL)["__clerk_handshake_nonce"])
	sessionToken(t, s, dirs, sid, ada.ID, DefaultLifetime)
	if dirs[1] != "__client_uat="+uat+"; Path=/; Max-Age=315360000; SameSite=Lax" {
		t.Fatalf("directives %q", dirs)
	}

	// Signing in again keeps the __client cookie.
	r = b.post(s.AccountsURL()+"/sign-in", signInForm(s.MemberUser().ID, appURL, ""))
	wantRedirect(t, r, http.StatusSeeOther)
	if len(r.header.Values("Set-Cookie")) != 2 || s.SessionStatus(sid) != "ended" || len(s.Sessions()) != 2 {
		t.Fatalf("Set-Cookie %q, sessions %+v", r.header.Values("Set-Cookie"), s.Sessions())
	}

	// Sign-out.
	r = b.get(s.AccountsURL() + "/sign-out?redirect_url=" + url.QueryEscape(appURL))
	if loc := wantRedirect(t, r, http.StatusSeeOther); loc.String() != appURL {
		t.Fatalf("Location %s", loc)
	}
	if set := r.header.Values("Set-Cookie"); strings.Join(set, "\n") != "__client_uat_"+sfx+"=0; Path=/; Max-Age=315360000; SameSite=Lax\n"+
		"__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax" {
		t.Fatalf("Set-Cookie %q", set)
	}
	if s.Sessions()[1].Status != "ended" || b.cookies(appURL)["__client_uat"] != "0" {
		t.Fatalf("sessions %+v", s.Sessions())
	}
	r = b.get(handshakeURL(s, hsQuery(appURL, "", false)))
	wantRedirect(t, r, 307)
	wantDirectives(t, legacyDirectives(t, s, b.cookies(appURL)["__clerk_handshake"]), []string{
		"__session=; Path=/; Max-Age=0",
		"__client_uat=0; Path=/; Max-Age=315360000; SameSite=Lax",
		"__clerk_handshake=; Path=/; Max-Age=0",
	})
}

func TestSessionsBAPI(t *testing.T) {
	clk := &clock{t: fixedNow}
	s := newServer(t, WithClock(clk.now))
	ada := s.AdminUser()
	ck, sid, err := s.SignInClient(ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	u := s.BackendAPIURL() + "/sessions/" + sid
	r := get(t, u, s.SecretKey())
	ms := fixedNow.UnixMilli()
	m := decodeObject(t, r.body)
	if r.status != 200 || !strings.HasPrefix(string(r.body), `{"object":"session","id":"`+sid+`","client_id":"client_`) ||
		keysOf(m) != "abandon_at,client_id,created_at,expire_at,id,last_active_at,object,status,updated_at,user_id" ||
		m["user_id"] != ada.ID || m["status"] != "active" || m["created_at"] != float64(ms) ||
		m["expire_at"] != float64(ms+7*86400_000) || m["abandon_at"] != float64(ms+30*86400_000) {
		t.Fatalf("status %d: %s", r.status, r.body)
	}

	revoke := func(id, bearer string) resp {
		t.Helper()
		req, _ := newRequest(t.Context(), s.BackendAPIURL()+"/sessions/"+id+"/revoke", bearer)
		req.Method = "POST"
		res, err := noKeepAlive().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return resp{res.StatusCode, res.Header, body}
	}
	wantClerkError(t, revoke(sid, ""), 401, "clerk_key_invalid")
	if s.SessionStatus(sid) != "active" {
		t.Fatal("revoked without the secret key")
	}
	clk.add(time.Minute)
	r = revoke(sid, s.SecretKey())
	m = decodeObject(t, r.body)
	if r.status != 200 || m["status"] != "revoked" || m["updated_at"] != float64(ms+60_000) || s.SessionStatus(sid) != "revoked" {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	// Revoking again changes nothing.
	clk.add(time.Minute)
	if r := revoke(sid, s.SecretKey()); r.status != 200 || decodeObject(t, r.body)["updated_at"] != float64(ms+60_000) {
		t.Fatalf("second revoke: %d %s", r.status, r.body)
	}
	wantClerkError(t, revoke("sess_nobody", s.SecretKey()), 404, "resource_not_found")
	wantClerkError(t, get(t, s.BackendAPIURL()+"/sessions/sess_nobody", s.SecretKey()), 404, "resource_not_found")
	wantClerkError(t, get(t, u, ""), 401, "clerk_key_invalid")

	// A revoked session's client is signed out.
	r = newBrowser(t, s).get(handshakeURL(s, hsQuery(appURL, "nonce", false, "__clerk_db_jwt", ck.Value)))
	dirs := redeem(t, s, wantRedirect(t, r, 307).Query().Get("__clerk_handshake_nonce"))
	if dirs[0] != "__session=; Path=/; Max-Age=0" {
		t.Fatalf("directives %q", dirs)
	}

	// The Go-side revoke.
	_, sid2, _ := s.SignInClient(s.MemberUser().ID)
	if !s.RevokeSessionID(sid2) || s.SessionStatus(sid2) != "revoked" || s.RevokeSessionID("sess_nobody") || s.SessionStatus("sess_nobody") != "" {
		t.Fatal("RevokeSessionID")
	}
	if s.Requests(BAPISessions) != 7 {
		t.Fatalf("count %d", s.Requests(BAPISessions))
	}
}

func TestSignInClient(t *testing.T) {
	s := newServer(t)
	if _, _, err := s.SignInClient("user_nobody"); err == nil {
		t.Fatal("signed in an unknown user")
	}
	ck1, sid1, _ := s.SignInClient(s.AdminUser().ID)
	ck2, sid2, _ := s.SignInClient(s.AdminUser().ID)
	ss := s.Sessions()
	if ck1.Value == ck2.Value || sid1 == sid2 || len(ss) != 2 || ss[0].ID != sid1 || ss[1].ID != sid2 ||
		ss[0].Status != "active" || ss[1].Status != "active" || ss[0].ClientID == ss[1].ClientID ||
		ck1.Name != "__clerk_db_jwt" || ck1.Path != "/" || ck1.HttpOnly {
		t.Fatalf("sessions %+v, cookies %+v %+v", ss, ck1, ck2)
	}
}

func TestBrowserFlowFaults(t *testing.T) {
	s := newServer(t)
	s.SetFault(FAPIHandshake, Status(503))
	wantClerkError(t, get(t, handshakeURL(s, hsQuery(appURL, "nonce", false)), ""), 503, "service_unavailable")
	if len(s.Handshakes()) != 0 || s.Requests(FAPIHandshake) != 1 {
		t.Fatal("a faulted handshake was recorded")
	}
	s.Down()
	for _, u := range []string{s.AccountsURL() + "/sign-in", s.AccountsURL() + "/sign-out", s.BackendAPIURL() + "/sessions/sess_x"} {
		wantClerkError(t, get(t, u, s.SecretKey()), 503, "service_unavailable")
	}
	s.Up()
	if r := get(t, s.AccountsURL()+"/sign-in", ""); r.status != 200 {
		t.Fatalf("after Up: %d", r.status)
	}
}

func TestBrowserFlowConcurrent(t *testing.T) {
	s := newServer(t, Production())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			user := s.AdminUser().ID
			if i%2 == 1 {
				user = s.MemberUser().ID
			}
			for _, step := range []struct {
				send func() (*http.Response, error)
				want int
			}{
				{func() (*http.Response, error) {
					return c.PostForm(s.AccountsURL()+"/sign-in", signInForm(user, appURL, ""))
				}, 303},
				{func() (*http.Response, error) { return c.Get(handshakeURL(s, hsQuery(appURL, "nonce", true))) }, 307},
			} {
				res, err := step.send()
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != step.want {
					t.Errorf("status %d, want %d", res.StatusCode, step.want)
				}
			}
			_ = s.Sessions()
			_ = s.Handshakes()
		}()
	}
	wg.Wait()
	if len(s.Sessions()) != 8 || len(s.Handshakes()) != 8 {
		t.Fatalf("%d sessions, %d handshakes", len(s.Sessions()), len(s.Handshakes()))
	}
	for _, ss := range s.Sessions() {
		if ss.Status != "active" {
			t.Fatalf("session %+v", ss)
		}
	}
}
