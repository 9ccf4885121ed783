package caddyclerk

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// logsConfig is the global options and the body of TestLogsNoSecrets's
// config. Its sites are all on the emulator's host (127.0.0.1), so that its
// cookies would reach them:
//   - {{nonce}}: secret_key: Backend API keys, nonces, sign-out
//   - {{legacy}}: Frontend API JWKS, legacy signed handshake
//   - {{wrongkey}}: a wrong secret key: keys never load
//   - {{deadjwks}}: jwks_url nobody answers: keys never load
func logsConfig(logPath string, clerk *clerktest.Server, upstream, wrongSecret, deadJWKS string) (global, body string) {
	site := func(addr, clerkOptions string) string {
		return fmt.Sprintf(`%s {
	bind 127.0.0.1
	clerk {
		publishable_key %s
		frontend_api_url %s
		sign_in_url %s/sign-in
		%s
	}
	handle /api/* {
		reverse_proxy %s {%s
		}
	}
	handle {
		respond "ok {clerk.user_id}" 200
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, addr, clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL(), clerkOptions, upstream, identityHeaders)
	}
	// Every logger at DEBUG, Caddy's own (http.log.error, reverse_proxy, …)
	// and ours, into one JSON file. No site enables access logs.
	global = fmt.Sprintf(`log {
		level DEBUG
		output file %s
		format json
	}`, logPath)
	body = site("http://127.0.0.1:{{nonce}}", fmt.Sprintf("secret_key %s\n\t\tapi_url %s\n\t\tsign_out_path /sign-out", clerk.SecretKey(), clerk.URL())) +
		site("http://127.0.0.1:{{legacy}}", "# the Frontend API's JWKS") +
		site("http://127.0.0.1:{{wrongkey}}", fmt.Sprintf("secret_key %s\n\t\tapi_url %s\n\t\tsign_out_path /sign-out", wrongSecret, clerk.URL())) +
		site("http://127.0.0.1:{{deadjwks}}", "jwks_url "+deadJWKS)
	return global, body
}

// randomText is n random characters of the alphabet Clerk's keys and nonces
// use.
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// deadURL is a loopback URL on a port nobody listens on.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/.well-known/jwks.json"
}

// secretSet is every credential the scenario used. A log must contain none
// of them, nor any window of window characters of one: a token cut short or
// split into parts still leaks.
type secretSet struct {
	names, values []string
	windows       []int
}

func (s *secretSet) add(name, value string, window int) {
	if value == "" {
		return
	}
	s.names, s.values, s.windows = append(s.names, name), append(s.values, value), append(s.windows, window)
}

// token records a JWT: the whole of it, and its payload and signature
// segments on their own (the header is the same for every token of a key).
func (s *secretSet) token(name, tok string) {
	s.add(name, tok, 40)
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		s.add(name+" (payload segment)", parts[1], 40)
		s.add(name+" (signature segment)", parts[2], 40)
	}
}

// leaks returns, for each secret found in text, its name and the line.
func (s *secretSet) leaks(text string) []string {
	var found []string
	lineStart := func(i int) int { return strings.LastIndexByte(text[:i], '\n') + 1 }
	lineOf := func(i int) string {
		end := strings.IndexByte(text[i:], '\n')
		if end < 0 {
			end = len(text) - i
		}
		return text[lineStart(i) : i+end]
	}
	// Tokens share long stretches (the header, the start of the claims), so
	// a line is blamed once, on the first secret found in it.
	reported, lines := map[string]bool{}, map[int]bool{}
	for i, v := range s.values {
		if j := strings.Index(text, v); j >= 0 && !lines[lineStart(j)] {
			found = append(found, fmt.Sprintf("%s, whole, in: %s", s.names[i], lineOf(j)))
			reported[s.names[i]], lines[lineStart(j)] = true, true
		}
	}
	// Every window of every secret, looked up while sliding over the text.
	byLen := map[int]map[string]int{}
	for i, v := range s.values {
		n := min(s.windows[i], len(v))
		if byLen[n] == nil {
			byLen[n] = map[string]int{}
		}
		for j := 0; j+n <= len(v); j++ {
			byLen[n][v[j:j+n]] = i
		}
	}
	for n, m := range byLen {
		for j := 0; j+n <= len(text); j++ {
			if i, ok := m[text[j:j+n]]; ok && !reported[s.names[i]] && !lines[lineStart(j)] {
				reported[s.names[i]], lines[lineStart(j)] = true, true
				found = append(found, fmt.Sprintf("%d characters of %s in: %s", n, s.names[i], lineOf(j)))
			}
		}
	}
	sort.Strings(found)
	return found
}

type logsClient struct {
	t *testing.T
	c *http.Client
}

func (lc logsClient) get(rawURL string, hdr map[string]string) (*http.Response, string) {
	lc.t.Helper()
	return lc.do(http.MethodGet, rawURL, hdr)
}

func (lc logsClient) do(method, rawURL string, hdr map[string]string) (*http.Response, string) {
	lc.t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		lc.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := lc.c.Do(req)
	if err != nil {
		lc.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// want checks a status and, if not "", the exact body.
func (lc logsClient) want(what string, resp *http.Response, body string, status int, wantBody string) {
	lc.t.Helper()
	if resp.StatusCode != status || (wantBody != "" && body != wantBody) {
		lc.t.Errorf("%s: %d %q (Location %q), want %d %q", what, resp.StatusCode, clipText(body, 300),
			resp.Header.Get("Location"), status, wantBody)
	}
}

// setCookie is the value of the named cookie the response sets, "" if none.
func setCookie(resp *http.Response, name string) string {
	for _, c := range resp.Cookies() {
		if c.Name == name && c.MaxAge >= 0 {
			return c.Value
		}
	}
	return ""
}

// logEntry is one JSON log line.
type logEntry map[string]any

func (e logEntry) str(k string) string { s, _ := e[k].(string); return s }

// TestLogsNoSecrets captures every log line Caddy and the module write at
// DEBUG level through a scenario that touches every credential the module
// handles — bearer and cookie tokens (valid, expired, forged), the handshake
// both ways (nonce redeemed at the Backend API, legacy signed token), stored
// handshake payloads, Backend API failures (500, 429, a wrong secret key),
// sign-out with revocation, and JWKS outages — and checks that no secret
// key, token, nonce, dev-browser token or cookie value appears in them,
// while the refusals' Clerk reason codes do.
func TestLogsNoSecrets(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := echoUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	wrongSecret := "sk_test_" + randomText(40)

	// An unknown kid may refetch the keys at once, so the outage below is
	// reached without waiting 30 s. Read only when a handler is provisioned.
	saved := cacheOptions
	cacheOptions.UnknownKIDInterval = 10 * time.Millisecond
	t.Cleanup(func() { cacheOptions = saved })

	var secrets secretSet
	secrets.add("the secret key", clerk.SecretKey(), 20)
	secrets.add("the wrong secret key", wrongSecret, 20)

	// The Backend API fails the first two JWKS fetches with 500: the client
	// retries (and logs that at DEBUG).
	clerk.SetFault(clerktest.BAPIJWKS, clerktest.FailTimes(2, clerktest.Status(http.StatusInternalServerError)))
	global, body := logsConfig(logPath, clerk, up.Listener.Addr().String(), wrongSecret, deadURL(t))
	run := startCaddy(t, global, body)
	logsNonceSite, logsLegacySite := run.url("nonce"), run.url("legacy")
	logsWrongKey, logsDeadJWKS := run.url("wrongkey"), run.url("deadjwks")

	lc := logsClient{t: t, c: testClient(true)}
	admin, member := clerk.AdminUser(), clerk.MemberUser()
	now := time.Now()
	valid := clerk.MustMint(clerktest.TokenOptions{User: &admin, Lifetime: time.Hour})
	expired := clerk.MustMint(clerktest.TokenOptions{User: &admin, IssuedAt: now.Add(-time.Hour)})
	forged := clerk.MustMint(clerktest.TokenOptions{User: &admin, Lifetime: time.Hour, SigningKey: clerktest.GenerateKey()})
	appCookie := "app_session=" + randomText(32)
	secrets.token("a valid token", valid)
	secrets.token("an expired token", expired)
	secrets.token("a forged token", forged)
	secrets.add("an application cookie", strings.TrimPrefix(appCookie, "app_session="), 20)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	xhr := func(cookie string) map[string]string {
		return map[string]string{"Cookie": cookie, "Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "same-origin"}
	}
	page := func(cookie string) map[string]string {
		h := map[string]string{"Sec-Fetch-Dest": "document", "Accept": "text/html"}
		if cookie != "" {
			h["Cookie"] = cookie
		}
		return h
	}

	for _, site := range []string{logsNonceSite, logsLegacySite} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			if resp, _ := lc.get(site+"/page", bearer(valid)); resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never accepted a valid token", site)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Log("tokens in the header and in cookies")
	for _, site := range []string{logsNonceSite, logsLegacySite} {
		resp, body := lc.get(site+"/api/whoami", bearer(valid))
		lc.want("valid bearer, proxied", resp, body, 200, "")
		resp, body = lc.get(site+"/page", bearer(valid))
		lc.want("valid bearer", resp, body, 200, "ok "+admin.ID)
		resp, body = lc.get(site+"/page", bearer(expired))
		lc.want("expired bearer", resp, body, 401, "401 token-expired")
		resp, body = lc.get(site+"/api/whoami", bearer(forged))
		lc.want("forged bearer", resp, body, 401, "401 token-invalid-signature")
		resp, body = lc.get(site+"/api/whoami", map[string]string{"Accept": "application/json"})
		lc.want("no token", resp, body, 401, "401 session-token-and-uat-missing")
		resp, body = lc.get(site+"/api/whoami", xhr(appCookie+"; __session="+valid+"; __client_uat=1000000000"))
		lc.want("valid cookie", resp, body, 200, "")
		resp, body = lc.get(site+"/page", xhr(appCookie+"; __session="+expired+"; __client_uat=1000000000"))
		lc.want("expired cookie", resp, body, 401, "401 session-token-expired-refresh-non-eligible-no-refresh-cookie")
		h := xhr(appCookie + "; __session=" + valid + "; __client_uat=1000000000")
		h["Sec-Fetch-Site"], h["Origin"] = "cross-site", "https://evil.example"
		resp, body = lc.do(http.MethodPost, site+"/api/whoami", h)
		lc.want("cross-site POST with the cookie", resp, body, 403, "403 csrf-origin-mismatch")
		resp, body = lc.get(site+"/docs", page(""))
		lc.want("page load, new browser", resp, body, 307, "")
	}

	t.Log("the handshake with a nonce, redeemed at the Backend API after a 429")
	devCookie, sid, err := clerk.SignInClient(admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	dvb := devCookie.Value
	secrets.add("the dev-browser token", dvb, 20)
	stale := clerk.MustMint(clerktest.TokenOptions{User: &admin, SessionID: sid, IssuedAt: now.Add(-10 * time.Minute)})
	secrets.token("a stale session token", stale)
	staleBrowser := fmt.Sprintf("%s; __session=%s; __client_uat=%d; __clerk_db_jwt=%s", appCookie, stale,
		now.Add(-20*time.Minute).Unix(), dvb)
	resp, body := lc.get(logsNonceSite+"/docs?x=1", page(staleBrowser))
	lc.want("stale page load", resp, body, 307, "")
	toClerk := resp.Header.Get("Location")
	if !strings.HasPrefix(toClerk, clerk.FrontendAPIURL()+"/v1/client/handshake?") || !strings.Contains(toClerk, "format=nonce") {
		t.Fatalf("not a nonce handshake: %q", toClerk)
	}
	resp, _ = lc.get(toClerk, nil)
	back := resp.Header.Get("Location")
	u, err := url.Parse(back)
	if err != nil || u.Query().Get("__clerk_handshake_nonce") == "" {
		t.Fatalf("the emulator's handshake answered %d %q", resp.StatusCode, back)
	}
	secrets.add("the handshake nonce", u.Query().Get("__clerk_handshake_nonce"), 20)
	clerk.SetFault(clerktest.BAPIHandshakePayload, clerktest.FailTimes(1, clerktest.RateLimit(time.Second)))
	resp, body = lc.get(back, page(staleBrowser))
	lc.want("back from the handshake", resp, body, 307, "")
	fresh := setCookie(resp, "__session")
	if resp.Header.Get("Location") != logsNonceSite+"/docs?x=1" || fresh == "" {
		t.Fatalf("the nonce was not resolved: Location %q, cookies %q", resp.Header.Get("Location"), resp.Header.Values("Set-Cookie"))
	}
	secrets.token("the session token from the handshake", fresh)
	freshBrowser := fmt.Sprintf("%s; __session=%s; __client_uat=%s; __clerk_db_jwt=%s", appCookie, fresh,
		setCookie(resp, "__client_uat"), dvb)
	resp, body = lc.get(logsNonceSite+"/docs?x=1", page(freshBrowser))
	lc.want("page load with the renewed session", resp, body, 200, "ok "+admin.ID)

	t.Log("a stored handshake payload, and nonces that cannot be redeemed")
	stored := randomText(32)
	storedTok := clerk.MustMint(clerktest.TokenOptions{User: &member, Lifetime: time.Hour})
	secrets.add("a stored nonce", stored, 20)
	secrets.token("the stored payload's session token", storedTok)
	clerk.StoreHandshakePayload(stored, []string{
		"__session=" + storedTok + "; Path=/; SameSite=Lax",
		"__client_uat=1000000000; Path=/; Max-Age=315360000; SameSite=Lax",
		"__clerk_db_jwt=" + dvb + "; Path=/; Max-Age=31536000; SameSite=Lax",
	})
	resp, body = lc.get(logsNonceSite+"/stored?__clerk_handshake_nonce="+stored, page("__clerk_db_jwt="+dvb))
	lc.want("stored payload", resp, body, 307, "")
	if setCookie(resp, "__session") != storedTok || resp.Header.Get("Location") != logsNonceSite+"/stored" {
		t.Errorf("the stored payload was not applied: Location %q", resp.Header.Get("Location"))
	}
	clerk.SetFault(clerktest.BAPIHandshakePayload, clerktest.Status(http.StatusInternalServerError))
	failing := randomText(32)
	secrets.add("a nonce the Backend API failed on", failing, 20)
	resp, body = lc.get(logsNonceSite+"/failing?__clerk_handshake_nonce="+failing, page("__clerk_db_jwt="+dvb))
	lc.want("nonce while the Backend API fails", resp, body, 307, "")
	clerk.SetFault(clerktest.BAPIHandshakePayload, clerktest.NoFault)
	unknown := randomText(32)
	secrets.add("an unknown nonce", unknown, 20)
	resp, body = lc.get(logsNonceSite+"/unknown?__clerk_handshake_nonce="+unknown, page("__clerk_db_jwt="+dvb))
	lc.want("unknown nonce", resp, body, 307, "")
	// A nonce that cannot be used must not stay in the URL of a request
	// that goes on: Caddy's error log (any error answer) and reverse_proxy's
	// debug log record the URI. Two ways a browser gets there: a URL with a
	// spent nonce reloaded while signed in (passed to the upstream), and a
	// site whose keys never loaded (503). Either answer is acceptable here —
	// the page as it is, or a reload of the URL without the nonce — as long
	// as the nonce is not logged.
	spent := randomText(32)
	secrets.add("a spent nonce in a signed-in page's URL", spent, 20)
	resp, body = lc.get(logsNonceSite+"/api/whoami?__clerk_handshake_nonce="+spent, page(freshBrowser))
	if resp.StatusCode != 200 && resp.StatusCode != 307 {
		t.Errorf("spent nonce, signed in: %d %q", resp.StatusCode, clipText(body, 300))
	}
	wrongNonce := randomText(32)
	secrets.add("a nonce sent to the site with the wrong key", wrongNonce, 20)
	resp, body = lc.get(logsWrongKey+"/docs?__clerk_handshake_nonce="+wrongNonce, page(staleBrowser))
	if resp.StatusCode != 503 && resp.StatusCode != 307 {
		t.Errorf("nonce on the site with the wrong key: %d %q", resp.StatusCode, clipText(body, 300))
	}

	t.Log("the legacy handshake (signed payload, no secret key)")
	resp, body = lc.get(logsLegacySite+"/legacy", page(staleBrowser))
	lc.want("stale page load, legacy site", resp, body, 307, "")
	toClerk = resp.Header.Get("Location")
	if strings.Contains(toClerk, "format=nonce") {
		t.Fatalf("the legacy site asked for a nonce: %q", toClerk)
	}
	resp, _ = lc.get(toClerk, nil)
	back = resp.Header.Get("Location")
	if u, err = url.Parse(back); err != nil || u.Query().Get("__clerk_handshake") == "" {
		t.Fatalf("the emulator's handshake answered %d %q", resp.StatusCode, back)
	}
	secrets.token("the signed handshake payload", u.Query().Get("__clerk_handshake"))
	resp, body = lc.get(back, page(staleBrowser))
	lc.want("back from the legacy handshake", resp, body, 307, "")
	legacyFresh := setCookie(resp, "__session")
	if legacyFresh == "" {
		t.Fatalf("the signed payload was not applied: %q", resp.Header.Values("Set-Cookie"))
	}
	secrets.token("the session token from the legacy handshake", legacyFresh)
	// A handshake token that does not verify, in the URL of a signed-in
	// page load that is passed on: the same rule as for nonces above.
	legacyBrowser := fmt.Sprintf("__session=%s; __client_uat=%s; __clerk_db_jwt=%s", legacyFresh, setCookie(resp, "__client_uat"), dvb)
	resp, body = lc.get(logsLegacySite+"/api/whoami?__clerk_handshake="+forged, page(legacyBrowser))
	if resp.StatusCode != 200 && resp.StatusCode != 307 {
		t.Errorf("forged handshake token, signed in: %d %q", resp.StatusCode, clipText(body, 300))
	}

	t.Log("sign-out: revoked after a 429; a revocation that fails with 500")
	clerk.SetFault(clerktest.BAPISessions, clerktest.FailTimes(1, clerktest.RateLimit(time.Second)))
	resp, body = lc.get(logsNonceSite+"/sign-out", page(freshBrowser))
	lc.want("sign-out", resp, body, 303, "")
	if s := clerk.SessionStatus(sid); s != "revoked" {
		t.Errorf("session after sign-out: %q, want revoked", s)
	}
	memberCookie, memberSid, err := clerk.SignInClient(member.ID)
	if err != nil {
		t.Fatal(err)
	}
	secrets.add("the member's dev-browser token", memberCookie.Value, 20)
	memberTok := clerk.MustMint(clerktest.TokenOptions{User: &member, SessionID: memberSid, Lifetime: time.Hour})
	secrets.token("the member's session token", memberTok)
	memberBrowser := fmt.Sprintf("__session=%s; __client_uat=1000000000; __clerk_db_jwt=%s", memberTok, memberCookie.Value)
	clerk.SetFault(clerktest.BAPISessions, clerktest.Status(http.StatusInternalServerError))
	resp, body = lc.get(logsNonceSite+"/sign-out", page(memberBrowser))
	lc.want("sign-out while the Backend API fails", resp, body, 303, "")
	clerk.SetFault(clerktest.BAPISessions, clerktest.NoFault)
	// Where no key ever loaded, no session cookie verifies: sign-out takes
	// the browser through the handshake to fetch one.
	resp, body = lc.get(logsWrongKey+"/sign-out", page(memberBrowser))
	lc.want("sign-out on the site with the wrong key", resp, body, 307, "")

	t.Log("keys that never loaded: a wrong secret key, a JWKS nobody answers")
	for _, site := range []string{logsWrongKey, logsDeadJWKS} {
		resp, body = lc.get(site+"/page", bearer(valid))
		lc.want(site+": valid bearer", resp, body, 503, "503 jwk-remote-failed-to-load")
		resp, body = lc.get(site+"/page", xhr(appCookie+"; __session="+valid+"; __client_uat=1000000000"))
		lc.want(site+": valid cookie", resp, body, 503, "503 jwk-remote-failed-to-load")
	}

	t.Log("a JWKS outage with keys cached: a rotated key cannot be fetched")
	clerk.SetFault(clerktest.FAPIJWKS, clerktest.Status(http.StatusServiceUnavailable))
	clerk.RotateKey()
	rotated := clerk.MustMint(clerktest.TokenOptions{User: &admin, Lifetime: time.Hour})
	secrets.token("a token signed by the rotated key", rotated)
	resp, body = lc.get(logsLegacySite+"/page", bearer(rotated))
	lc.want("new kid during the outage", resp, body, 401, "401 jwk-kid-mismatch")
	resp, body = lc.get(logsLegacySite+"/page", bearer(valid))
	lc.want("cached keys during the outage", resp, body, 200, "ok "+admin.ID)
	clerk.SetFault(clerktest.FAPIJWKS, clerktest.NoFault)

	// Stopping Caddy closes the log file; everything is written by then.
	lc.c.CloseIdleConnections()
	run.stop()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)

	var entries []logEntry
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON log line: %q", sc.Text())
		}
		entries = append(entries, e)
	}
	t.Logf("%d log lines, %d bytes, %d secrets checked", len(entries), len(raw), len(secrets.values))

	inURI := false
	for _, leak := range secrets.leaks(text) {
		t.Errorf("leaked: %s", leak)
		inURI = inURI || strings.Contains(leak, `"uri":"`)
	}
	if inURI {
		t.Error("a credential was logged as part of a request URI: Caddy logs the URI of every request that " +
			"ends in an error (http.log.error) or is proxied (reverse_proxy, DEBUG), so a handshake nonce or " +
			"token in the query that could not be used must not stay in the URL: reload the page without it")
	}

	// The test must not pass by logging nothing: the refusals are logged at
	// DEBUG with their Clerk reason, and Caddy's own debug logs are there.
	reasons := map[string]bool{}
	messages := map[string]bool{}
	for _, e := range entries {
		if e.str("logger") == "http.handlers.clerk" && e.str("reason") != "" {
			reasons[e.str("reason")] = true
		}
		messages[e.str("logger")+": "+e.str("msg")] = true
	}
	for _, r := range []string{
		"token-expired", "token-invalid-signature", "session-token-and-uat-missing",
		"session-token-expired-refresh-non-eligible-no-refresh-cookie", "csrf-origin-mismatch",
		"dev-browser-missing",
		"jwk-remote-failed-to-load", "jwk-kid-mismatch",
	} {
		if !reasons[r] {
			t.Errorf("no log entry of http.handlers.clerk with reason %q; reasons logged: %v", r, slices.Sorted(maps.Keys(reasons)))
		}
	}
	var logged []string
	for m := range messages {
		logged = append(logged, m)
	}
	sort.Strings(logged)
	for _, want := range []string{
		"http.handlers.clerk: handshake with Clerk",
		"http.handlers.clerk: Clerk handshake could not be resolved",
		"http.handlers.clerk: signed out",
		"http.handlers.clerk: sign-out: could not revoke the Clerk session; it stays signed in at Clerk",
		"http.handlers.clerk.api: clerk api: retrying",
		"http.handlers.clerk.keys: loaded the Clerk signing keys",
		"http.handlers.clerk.keys: loading the Clerk signing keys failed",
		"http.handlers.clerk.keys: refreshing the Clerk signing keys failed; using the cached keys",
		"http.handlers.reverse_proxy: upstream roundtrip",
		"http.log.error: clerk: session-token-and-uat-missing",
	} {
		if !messages[want] {
			t.Errorf("nothing logged as %q; logged:\n%s", want, strings.Join(logged, "\n"))
		}
	}
}
