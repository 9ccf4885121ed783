package caddyclerk

// Hostile input through a real Caddy: every attack class of the Clerk
// reference (shared/reference/clerk-auth.md §3) as a Bearer token and as a
// session cookie, hostile headers and cookies, header injection through
// placeholders, open redirects through Host and X-Forwarded-*, and forged
// handshake carriers. Requests go over raw TCP so that they can carry
// what net/http's client refuses to send (CR/LF, NUL, bad Host headers).
//
// Caddy runs in-process on 127.0.0.1 (harness_test.go's startCaddy), beside
// the Clerk emulator; run with
//
//	go test -race -count=1 -run 'TestHostile' .

import (
	"bufio"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// hostileReasons are the {clerk.reason} values a refused request may carry.
var hostileReasons = []string{
	"token-expired", "token-invalid", "token-invalid-algorithm", "token-invalid-authorized-parties",
	"token-invalid-signature", "token-not-active-yet", "token-iat-in-the-future", "token-invalid-issuer",
	"token-type-mismatch", "jwk-kid-mismatch", "session-token-missing", "session-token-and-uat-missing",
	"session-pending", "client-uat-but-no-session-token", "session-token-but-no-client-uat",
	"session-token-iat-before-client-uat", "session-token-expired-refresh-non-eligible-no-refresh-cookie",
	"session-token-expired-refresh-non-eligible-non-get", "session-token-nbf", "session-token-iat-in-the-future",
}

type hostileEnv struct {
	clerk    *clerktest.Server
	key      *rsa.PrivateKey // the instance's signing key
	kid      string
	attacker *rsa.PrivateKey
	admin    clerktest.User
	valid    string // a valid session token of the admin user
	header   string // the JOSE header Clerk puts on session tokens
	jku      *httptest.Server
	jkuHits  atomic.Int64
	logPath  string
	tokens   []string // every token sent: none may appear in our logs
	forged   []string // Set-Cookie directives an attacker would like applied

	// The sites' addresses (host:port), one Caddy server each.
	siteJWKS    string // publishable key: the emulator's JWKS, legacy handshake, 2 MB headers, echo upstream
	sitePEM     string // jwt_key: one static key (kid ignored), 2 MB headers
	siteOpen    string // any Host; no trusted proxies
	siteProxied string // any Host; loopback is a trusted proxy
	siteNonce   string // secret key: handshake nonces redeemed at the Backend API
	siteLimits  string // jwt_key, Caddy's default header limit (16 KiB)
}

// hostileCaddyfile is the global options and the body of the sites'
// config.
func hostileCaddyfile(e *hostileEnv, upstream, pemPath string) (global, body string) {
	c := e.clerk
	instance := fmt.Sprintf(`publishable_key %s
		frontend_api_url %s
		sign_in_url %s/sign-in`, c.PublishableKey(), c.FrontendAPIURL(), c.AccountsURL())
	global = fmt.Sprintf(`log {
		output file %s {
			roll_disabled
		}
		format json
		level DEBUG
	}
	servers 127.0.0.1:{{jwks}} {
		max_header_size 2MB
	}
	servers 127.0.0.1:{{pem}} {
		max_header_size 2MB
	}
	servers 127.0.0.1:{{proxied}} {
		trusted_proxies static 127.0.0.1/8
	}`, e.logPath)
	body = fmt.Sprintf(`(hostile_errors) {
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
http://127.0.0.1:{{jwks}} {
	bind 127.0.0.1
	clerk {
		%[1]s
		exclude /public/*
	}
	reverse_proxy %[2]s {
		header_up X-Clerk-User-Id {clerk.user_id}
		header_up X-Clerk-Org-Slug {clerk.org_slug}
		header_up X-Clerk-Note {clerk.claims.note}
		header_up X-Clerk-Tags {clerk.claims.tags}
		header_up X-Clerk-Meta {clerk.claims.meta}
		header_up X-Clerk-Reason {clerk.reason}
	}
	import hostile_errors
}
http://127.0.0.1:{{pem}} {
	bind 127.0.0.1
	clerk {
		jwt_key %[3]s
		issuer %[4]s
	}
	respond "ok {clerk.user_id}" 200
	import hostile_errors
}
http://:{{open}} {
	bind 127.0.0.1
	clerk {
		%[1]s
	}
	respond "ok {clerk.user_id}" 200
	import hostile_errors
}
http://:{{proxied}} {
	bind 127.0.0.1
	clerk {
		%[1]s
	}
	respond "ok {clerk.user_id}" 200
	import hostile_errors
}
http://127.0.0.1:{{nonce}} {
	bind 127.0.0.1
	clerk {
		%[1]s
		secret_key %[5]s
		api_url %[6]s
	}
	respond "ok {clerk.user_id}" 200
	import hostile_errors
}
http://127.0.0.1:{{limits}} {
	bind 127.0.0.1
	clerk {
		jwt_key %[3]s
		issuer %[4]s
	}
	respond "ok {clerk.user_id}" 200
	import hostile_errors
}
`, instance, upstream, pemPath, c.Issuer(), c.SecretKey(), c.URL())
	return global, body
}

func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	e := &hostileEnv{clerk: clerktest.NewT(t), attacker: clerktest.GenerateKey()}
	e.kid = e.clerk.CurrentKeyID()
	e.key = e.clerk.PrivateKey(e.kid)
	e.admin = e.clerk.AdminUser()
	e.valid = e.clerk.MustMint(clerktest.TokenOptions{User: &e.admin, Lifetime: time.Hour})
	e.header = `{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"` + e.kid + `","typ":"JWT"}`
	e.jku = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.jkuHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	t.Cleanup(e.jku.Close)
	up := echoUpstream(t)

	dir := t.TempDir()
	e.logPath = filepath.Join(dir, "caddy.log")
	pemPath := filepath.Join(dir, "clerk.pem")
	if err := os.WriteFile(pemPath, []byte(e.clerk.PublicKeyPEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	global, body := hostileCaddyfile(e, up.Listener.Addr().String(), pemPath)
	run := startCaddy(t, global, body)
	e.siteJWKS, e.sitePEM, e.siteOpen = run.addr("jwks"), run.addr("pem"), run.addr("open")
	e.siteProxied, e.siteNonce, e.siteLimits = run.addr("proxied"), run.addr("nonce"), run.addr("limits")

	// Ready once both key sources (the Frontend API JWKS and the Backend
	// API's) have loaded.
	deadline := time.Now().Add(15 * time.Second)
	for _, site := range []string{e.siteJWKS, e.siteNonce, e.sitePEM} {
		for {
			r := hostileSend(t, site, hostileReq("GET", "/api", site, "Authorization", "Bearer "+e.valid))
			if r.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never accepted a valid token: %d %q", site, r.status, r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return e
}

// hostileResp is a response read off the wire.
type hostileResp struct {
	status int
	header http.Header
	body   string
}

// hostileReq builds a raw HTTP/1.1 request: values go on the wire exactly
// as given, CR, LF and NUL included.
func hostileReq(method, target, host string, headers ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ": " + headers[i+1] + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// hostileSend writes raw to addr and reads the response. The write runs
// beside the read: a server refusing an oversized request answers before
// it has read it all.
func hostileSend(t *testing.T, addr, raw string) hostileResp {
	t.Helper()
	hostileRequests.Add(1)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(conn, raw)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: no response (%v) to %.200q", addr, err, raw)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close()
	<-done
	return hostileResp{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

var hostileB64 = base64.RawURLEncoding

var hostileRequests atomic.Int64

// sign makes a compact JWS with exactly these header and payload bytes,
// RS256-signed by key.
func (e *hostileEnv) sign(key *rsa.PrivateKey, header string, payload []byte) string {
	input := hostileB64.EncodeToString([]byte(header)) + "." + hostileB64.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return input + "." + hostileB64.EncodeToString(sig)
}

// payload is a valid session payload of the admin user, changed by mut.
func (e *hostileEnv) payload(mut func(map[string]any)) []byte {
	claims, err := e.clerk.Claims(clerktest.TokenOptions{User: &e.admin, Lifetime: time.Hour})
	if err != nil {
		panic(err)
	}
	if mut != nil {
		mut(claims)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return b
}

// hostileAppend adds raw JSON members to a payload object.
func hostileAppend(payload []byte, members string) []byte {
	return append(payload[:len(payload)-1:len(payload)-1], []byte(","+members+"}")...)
}

func (e *hostileEnv) jwk(key *rsa.PublicKey, kid string) string {
	return fmt.Sprintf(`{"kty":"RSA","kid":%q,"use":"sig","alg":"RS256","n":%q,"e":"AQAB"}`, kid,
		hostileB64.EncodeToString(key.N.Bytes()))
}

// hostileToken is one attack: a token, and whether it holds bytes an
// HTTP header cannot carry (Go's server may refuse the request first).
type hostileToken struct {
	name, token string
	wire        bool
}

// attackTokens builds a token for each attack class of the reference.
func (e *hostileEnv) attackTokens(t *testing.T) []hostileToken {
	enc := func(b string) string { return hostileB64.EncodeToString([]byte(b)) }
	payload := e.payload(nil)
	good := e.sign(e.key, e.header, payload)
	parts := strings.Split(good, ".")
	withHeader := func(h string) string { return e.sign(e.key, h, payload) }
	kid := e.kid

	// HS256 "signed" with the public key itself as the HMAC secret.
	hs := func(secret []byte) string {
		input := enc(`{"alg":"HS256","kid":"`+kid+`","typ":"JWT"}`) + "." + enc(string(payload))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return input + "." + hostileB64.EncodeToString(mac.Sum(nil))
	}
	pemBytes := []byte(e.clerk.PublicKeyPEM())

	// A self-signed certificate for the attacker's key, for x5c.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clerk.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &e.attacker.PublicKey, e.attacker)
	if err != nil {
		t.Fatal(err)
	}
	attackerJWK := e.jwk(&e.attacker.PublicKey, kid)

	// Non-canonical base64: the signature's last character with its unused
	// low bits set.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := parts[2]
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	var nonCanonical string
	switch len(sig) % 4 {
	case 2:
		nonCanonical = sig[:len(sig)-1] + string(alphabet[last|0x0f])
	case 3:
		nonCanonical = sig[:len(sig)-1] + string(alphabet[last|0x03])
	}
	stdAlphabet := strings.NewReplacer("-", "+", "_", "/").Replace(good)

	toks := []hostileToken{
		{name: "alg none, no signature", token: enc(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."},
		{name: "alg none with kid, no signature", token: enc(`{"alg":"none","kid":"`+kid+`"}`) + "." + parts[1] + "."},
		{name: "alg none, signed", token: withHeader(`{"alg":"none","kid":"` + kid + `"}`)},
		{name: "alg None, signed", token: withHeader(`{"alg":"None","kid":"` + kid + `"}`)},
		{name: "alg NONE, signed", token: withHeader(`{"alg":"NONE","kid":"` + kid + `"}`)},
		{name: "alg none, forged signature", token: enc(`{"alg":"none","kid":"`+kid+`"}`) + "." + parts[1] + "." + parts[2]},
		{name: "HS256 with the public key PEM as secret", token: hs(pemBytes)},
		{name: "HS256 with the PEM, no final newline", token: hs([]byte(strings.TrimSpace(string(pemBytes))))},
		{name: "HS256 with the modulus as secret", token: hs(e.key.N.Bytes())},
		{name: "alg RS512", token: withHeader(`{"alg":"RS512","kid":"` + kid + `"}`)},
		{name: "alg PS256", token: withHeader(`{"alg":"PS256","kid":"` + kid + `"}`)},
		{name: "alg ES256", token: withHeader(`{"alg":"ES256","kid":"` + kid + `"}`)},
		{name: "embedded jwk, attacker-signed", token: e.sign(e.attacker, `{"alg":"RS256","kid":"`+kid+`","jwk":`+attackerJWK+`}`, payload)},
		{name: "embedded jwk without kid", token: e.sign(e.attacker, `{"alg":"RS256","jwk":`+attackerJWK+`}`, payload)},
		{name: "embedded x5c, attacker-signed", token: e.sign(e.attacker, `{"alg":"RS256","kid":"`+kid+`","x5c":["`+base64.StdEncoding.EncodeToString(cert)+`"]}`, payload)},
		{name: "jku to a watched server", token: e.sign(e.attacker, `{"alg":"RS256","kid":"attacker-1","jku":"`+e.jku.URL+`/jwks.json"}`, payload)},
		{name: "jku with the instance's kid", token: e.sign(e.attacker, `{"alg":"RS256","kid":"`+kid+`","jku":"`+e.jku.URL+`/jwks.json"}`, payload)},
		{name: "x5u to a watched server", token: e.sign(e.attacker, `{"alg":"RS256","kid":"attacker-2","x5u":"`+e.jku.URL+`/cert.pem"}`, payload)},
		{name: "x5u with the instance's kid", token: e.sign(e.attacker, `{"alg":"RS256","kid":"`+kid+`","x5u":"`+e.jku.URL+`/cert.pem"}`, payload)},
		{name: "crit exp", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","crit":["exp"],"exp":1}`)},
		{name: "crit empty", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","crit":[]}`)},
		{name: "crit b64", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","crit":["b64"],"b64":false}`)},
		{name: "duplicate alg in the header", token: withHeader(`{"alg":"none","alg":"RS256","kid":"` + kid + `"}`)},
		{name: "duplicate kid in the header", token: withHeader(`{"alg":"RS256","kid":"attacker","kid":"` + kid + `"}`)},
		{name: "escaped duplicate in the header", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","\u0061lg":"none"}`)},
		{name: "duplicate sub in the payload", token: e.sign(e.key, e.header, hostileAppend(payload, `"sub":"user_attacker"`))},
		{name: "duplicate exp in the payload", token: e.sign(e.key, e.header, hostileAppend(payload, `"exp":99999999999`))},
		{name: "escaped duplicate in the payload", token: e.sign(e.key, e.header, hostileAppend(payload, `"\u0073ub":"user_attacker"`))},
		{name: "nested duplicate in the payload", token: e.sign(e.key, e.header, hostileAppend(payload, `"x":{"a":1,"a":2}`))},
		{name: "padding on the header", token: parts[0] + "=." + parts[1] + "." + parts[2]},
		{name: "padding on the payload", token: parts[0] + "." + parts[1] + "==." + parts[2]},
		{name: "padding on the signature", token: good + "="},
		{name: "non-canonical trailing bits", token: parts[0] + "." + parts[1] + "." + nonCanonical},
		{name: "standard base64 alphabet", token: stdAlphabet},
		{name: "space inside", token: parts[0][:10] + " " + parts[0][10:] + "." + parts[1] + "." + parts[2]},
		{name: "tab inside", token: parts[0] + ".\t" + parts[1] + "." + parts[2]},
		{name: "CR LF inside", token: parts[0] + "\r\n." + parts[1] + "." + parts[2], wire: true},
		{name: "obs-fold inside", token: parts[0] + "\r\n ." + parts[1] + "." + parts[2], wire: true},
		{name: "LF inside", token: parts[0] + "\n" + parts[1] + "." + parts[2], wire: true},
		{name: "NUL inside", token: parts[0] + "\x00." + parts[1] + "." + parts[2], wire: true},
		{name: "non-ASCII inside", token: parts[0] + "é." + parts[1] + "." + parts[2]},
		{name: "one segment", token: parts[0]},
		{name: "two segments", token: parts[0] + "." + parts[1]},
		{name: "four segments", token: good + "." + parts[2]},
		{name: "five segments", token: good + ".e30.e30"},
		{name: "empty segments", token: ".."},
		{name: "empty payload segment", token: parts[0] + ".." + parts[2]},
		{name: "100 KB token", token: e.sign(e.key, e.header, hostileAppend(payload, `"pad":"`+strings.Repeat("a", 100<<10)+`"`))},
		{name: "10,000 levels of nesting", token: e.sign(e.key, e.header, hostileAppend(payload, `"deep":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)))},
		{name: "2,500 levels of nesting (under 8 KiB)", token: e.sign(e.key, e.header, hostileAppend(payload, `"deep":`+strings.Repeat("[", 2500)+strings.Repeat("]", 2500)))},
		{name: "2,000 levels of nesting in the header", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","x":` + strings.Repeat("{\"a\":", 2000) + "1" + strings.Repeat("}", 2000) + `}`)},
		{name: "header null", token: e.sign(e.key, "null", payload)},
		{name: "header array", token: e.sign(e.key, `["RS256"]`, payload)},
		{name: "payload array", token: e.sign(e.key, e.header, []byte(`[{"sub":"user_1"}]`))},
		{name: "payload null", token: e.sign(e.key, e.header, []byte(`null`))},
		{name: "zip", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","zip":"DEF"}`)},
		{name: "kid array", token: withHeader(`{"alg":"RS256","kid":["` + kid + `"]}`)},
		{name: "typ at+jwt", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","typ":"at+jwt"}`)},
		{name: "cat of a JWT template", token: withHeader(`{"alg":"RS256","kid":"` + kid + `","cat":"cl_B7d4PD222AAA"}`)},
		{name: "unknown kid, attacker-signed", token: e.sign(e.attacker, `{"alg":"RS256","kid":"ins_attacker"}`, payload)},
		{name: "instance kid, attacker-signed", token: e.sign(e.attacker, e.header, payload)},
		{name: "tampered payload", token: parts[0] + "." + enc(strings.Replace(string(payload), e.admin.ID, "user_attacker", 1)) + "." + parts[2]},
		{name: "invalid UTF-8 in sub", token: e.sign(e.key, e.header, []byte(strings.Replace(string(payload), `"sub":"`, "\"sub\":\"\xff", 1)))},
		{name: "invalid UTF-8 in a claim", token: e.sign(e.key, e.header, hostileAppend(payload, "\"note\":\"\xc3\x28\""))},
		{name: "overlong UTF-8 in a claim", token: e.sign(e.key, e.header, hostileAppend(payload, "\"note\":\"\xc0\xaf\""))},
		{name: "UTF-8 surrogate in a claim", token: e.sign(e.key, e.header, hostileAppend(payload, "\"note\":\"\xed\xa0\x80\""))},
		{name: "invalid UTF-8 in the header", token: withHeader("{\"alg\":\"RS256\",\"kid\":\"" + kid + "\",\"x\":\"\xfe\"}")},
		{name: "no sid (a JWT template)", token: e.sign(e.key, e.header, e.payload(func(m map[string]any) { delete(m, "sid") }))},
		{name: "machine subject", token: e.sign(e.key, e.header, e.payload(func(m map[string]any) { m["sub"] = "mch_1" }))},
		{name: "another issuer", token: e.sign(e.key, e.header, e.payload(func(m map[string]any) { m["iss"] = "https://clerk.evil.example" }))},
		{name: "pending session", token: e.sign(e.key, e.header, e.payload(func(m map[string]any) { m["sts"] = "pending" }))},
	}
	// Time claims that are not times. A negative or zero iat or nbf is a
	// valid time (1970): only exp is tried with those.
	for _, name := range []string{"exp", "nbf", "iat"} {
		values := []string{`null`, `"1999999999"`, `1e300`, `1e400`, `-1e300`, `"NaN"`, `true`, `{}`, `[]`, `253402300800`, `9007199254740993e10`}
		if name == "exp" {
			values = append(values, `-1`, `0`, `-0.5`, `1e-300`)
		}
		for _, v := range values {
			toks = append(toks, hostileToken{name: name + " " + v, token: e.sign(e.key, e.header,
				e.payload(func(m map[string]any) { m[name] = json.RawMessage(v) }))})
		}
	}
	if nonCanonical == "" {
		t.Log("the signature's length leaves no unused bits; the non-canonical case repeats the good token")
		toks = slices.DeleteFunc(toks, func(h hostileToken) bool { return h.name == "non-canonical trailing bits" })
	}
	if stdAlphabet == good {
		toks = slices.DeleteFunc(toks, func(h hostileToken) bool { return h.name == "standard base64 alphabet" })
	}
	for _, tok := range toks {
		e.tokens = append(e.tokens, tok.token)
	}
	return toks
}

func hostileReasonOK(reason string) bool { return slices.Contains(hostileReasons, reason) }

func TestHostile(t *testing.T) {
	before := runtime.NumGoroutine()
	hostileRequests.Store(0)
	t.Run("through Caddy", func(t *testing.T) {
		e := startHostile(t)
		t.Run("attack tokens", e.testAttackTokens)
		t.Run("Authorization headers", e.testAuthorization)
		t.Run("cookies", e.testCookies)
		t.Run("header injection", e.testHeaderInjection)
		t.Run("open redirects", e.testOpenRedirects)
		t.Run("excluded paths", e.testExclude)
		t.Run("legacy handshake carriers", e.testLegacyHandshake)
		t.Run("handshake nonces", e.testNonces)
		if n := e.jkuHits.Load(); n != 0 {
			t.Errorf("a jku/x5u URL named in a token was fetched %d times", n)
		}
		t.Run("logs", e.testLogs)
		t.Logf("%d requests", hostileRequests.Load())
	})
	// After Caddy stopped and the emulator closed: nothing of ours left
	// running. (Caddy's storage lock refresher may take up to 5 s to end.)
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			t.Logf("goroutines: %d before, %d after", before, n)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 8<<20)
			t.Fatalf("%d goroutines 15 s after the end, %d before: a leak\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := hostileRefreshers(); n != 0 {
		t.Fatalf("%d key refreshers left running", n)
	}
}

// hostileRefreshers counts live key-cache refreshers.
func hostileRefreshers() int {
	buf := make([]byte, 8<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "verifier.(*KeyCache).run(")
}

// testAttackTokens: every attack class, as a Bearer token and as the
// session cookie (with __client_uat), against a JWKS key set and against a
// single PEM key: 401 with one of Clerk's reasons, never 200, never 5xx.
func (e *hostileEnv) testAttackTokens(t *testing.T) {
	toks := e.attackTokens(t)
	refused := map[string]bool{}
	defer func() {
		t.Logf("%d attack tokens; refused by Go's HTTP server (400): %v", len(toks), slices.Sorted(maps.Keys(refused)))
	}()
	for _, site := range []string{e.siteJWKS, e.sitePEM} {
		// The control: the same requests with a valid token pass.
		for _, hdr := range [][]string{{"Authorization", "Bearer " + e.valid}, {"Cookie", "__session=" + e.valid + "; __client_uat=1"}} {
			if r := hostileSend(t, site, hostileReq("GET", "/api", site, hdr...)); r.status != 200 {
				t.Fatalf("%s: the valid token via %s: %d %q", site, hdr[0], r.status, r.body)
			}
		}
		for _, tc := range toks {
			for _, carrier := range []string{"bearer", "cookie"} {
				hdr := []string{"Authorization", "Bearer " + tc.token}
				if carrier == "cookie" {
					hdr = []string{"Cookie", "__session=" + tc.token + "; __client_uat=1"}
				}
				start := time.Now()
				r := hostileSend(t, site, hostileReq("GET", "/api", site, hdr...))
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("%s %s via %s: %v", site, tc.name, carrier, took)
				}
				if tc.wire && r.status == 400 {
					refused[tc.name+" via "+carrier] = true // Go's HTTP server, before any handler
					continue
				}
				reason := strings.TrimPrefix(r.body, "401 ")
				if r.status != 401 || !hostileReasonOK(reason) {
					t.Errorf("%s %s via %s: %d %q, want 401 with a reason", site, tc.name, carrier, r.status, r.body)
					continue
				}
				want := `Bearer error="invalid_token", error_description="` + reason + `"`
				if carrier == "bearer" && r.header.Get("WWW-Authenticate") != want {
					t.Errorf("%s %s: WWW-Authenticate %q", site, tc.name, r.header.Get("WWW-Authenticate"))
				}
			}
		}
	}
}

// testAuthorization: malformed Authorization headers are refused with 401
// (or by Go's server, 400, or Caddy's header limit, 431), never 5xx.
func (e *hostileEnv) testAuthorization(t *testing.T) {
	huge := "Bearer " + strings.Repeat("a", 1<<20)
	cases := []struct {
		name   string
		site   string
		values []string // one Authorization header each
		want   []int
	}{
		{"scheme only", e.siteJWKS, []string{"Bearer"}, []int{401}},
		{"scheme and spaces", e.siteJWKS, []string{"Bearer  "}, []int{401}},
		{"two words", e.siteJWKS, []string{"Bearer a b"}, []int{401}},
		{"two tokens", e.siteJWKS, []string{"Bearer " + e.valid + " " + e.valid}, []int{401}},
		{"tab for the space", e.siteJWKS, []string{"Bearer\t" + e.valid}, []int{401}},
		{"1 MB, under a 2 MB limit", e.siteJWKS, []string{huge}, []int{401}},
		{"1 MB, over the default limit", e.siteLimits, []string{huge}, []int{431}},
		{"non-ASCII bytes", e.siteJWKS, []string{"Bearer \xff\xfe\xfd.\x80.\xc0"}, []int{401}},
		{"UTF-8 text", e.siteJWKS, []string{"Bearer ťóķéñ.ťóķéñ.ťóķéñ"}, []int{401}},
		{"NUL", e.siteJWKS, []string{"Bearer a\x00b.c.d"}, []int{400, 401}},
		{"NUL before the token", e.siteJWKS, []string{"Bearer \x00" + e.valid}, []int{400, 401}},
		{"garbage first, valid second", e.siteJWKS, []string{"Bearer garbage", "Bearer " + e.valid}, []int{401}},
		{"on a static key", e.sitePEM, []string{"Bearer", "Bearer a b"}, []int{401}},
	}
	for _, c := range cases {
		var hdr []string
		for _, v := range c.values {
			hdr = append(hdr, "Authorization", v)
		}
		r := hostileSend(t, c.site, hostileReq("GET", "/api", c.site, hdr...))
		if !slices.Contains(c.want, r.status) {
			t.Errorf("%s: %d %.100q, want %v", c.name, r.status, r.body, c.want)
		}
		if r.status == 401 && !hostileReasonOK(strings.TrimPrefix(r.body, "401 ")) {
			t.Errorf("%s: body %.100q", c.name, r.body)
		}
	}
}

// testCookies: huge Cookie headers, thousands of cookies, duplicated
// session cookies: Caddy's 431 above its limit, never a 5xx; the first
// __session cookie decides, as net/http's r.Cookie would.
func (e *hostileEnv) testCookies(t *testing.T) {
	session := "__session=" + e.valid + "; __client_uat=1"
	pad := func(n int) string { return "pad=" + strings.Repeat("a", n) }
	many := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "c%d=%d; ", i, i)
		}
		return b.String()
	}
	garbage := strings.Repeat("__session=garbage.x.y; ", 500)
	sfx := "_" + e.clerk.CookieSuffix()
	okBody := "ok " + e.admin.ID
	cases := []struct {
		name    string
		site    string
		cookies []string // one Cookie header each
		want    int
		body    string // expected body for 200
	}{
		{"near the 16 KiB limit", e.siteLimits, []string{pad(14<<10) + "; " + session}, 200, okBody},
		{"just over the limit (with Go's 4 KiB slack)", e.siteLimits, []string{pad(21<<10) + "; " + session}, 431, ""},
		{"64 KiB", e.siteLimits, []string{pad(64<<10) + "; " + session}, 431, ""},
		{"1,400 small cookies under the limit", e.siteLimits, []string{many(1400) + session}, 200, okBody},
		{"20,000 small cookies (2 MB limit)", e.siteJWKS, []string{many(20000) + session}, 200, ""},
		{"valid first, then 500 invalid", e.siteJWKS, []string{session + "; " + garbage}, 200, ""},
		{"500 invalid, then valid", e.siteJWKS, []string{garbage + session}, 401, ""},
		{"invalid line first, valid line second", e.siteJWKS, []string{"__session=garbage; __client_uat=1", session}, 401, ""},
		{"valid line first, invalid line second", e.siteJWKS, []string{session, garbage}, 200, ""},
		{"1,000 Cookie lines, the valid one last", e.siteJWKS, append(slices.Repeat([]string{"__session=garbage; __client_uat=1"}, 1000), session), 401, ""},
		{"1,000 Cookie lines, the valid one first", e.siteJWKS, append([]string{session}, slices.Repeat([]string{"__session=garbage"}, 1000)...), 200, ""},
		{"500 invalid then valid, static key", e.sitePEM, []string{garbage + session}, 401, ""},
		{"valid suffixed, malformed plain (Clerk's rule: signed out)", e.siteJWKS,
			[]string{"__session" + sfx + "=" + e.valid + "; __client_uat" + sfx + "=1; __session=garbage"}, 401, ""},
		{"empty and quoted", e.siteJWKS, []string{`__session=""; __session="` + e.valid + `"; __client_uat=1`}, 401, ""},
		{"quoted valid", e.siteJWKS, []string{`__session="` + e.valid + `"; __client_uat=1`}, 200, ""},
		{"client_uat negative", e.siteJWKS, []string{"__session=" + e.valid + "; __client_uat=-5"}, 401, ""},
		{"client_uat overflows", e.siteJWKS, []string{"__session=" + e.valid + "; __client_uat=99999999999999999999"}, 401, ""},
		{"client_uat max int64", e.siteJWKS, []string{"__session=" + e.valid + "; __client_uat=9223372036854775807"}, 401, ""},
		{"client_uat not a number", e.siteJWKS, []string{"__session=" + e.valid + "; __client_uat=1e9"}, 401, ""},
		{"NUL in a cookie", e.siteJWKS, []string{"__session=a\x00b; __client_uat=1"}, 400, ""},
	}
	for _, c := range cases {
		var hdr []string
		for _, v := range c.cookies {
			hdr = append(hdr, "Cookie", v)
		}
		start := time.Now()
		r := hostileSend(t, c.site, hostileReq("GET", "/api", c.site, hdr...))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: took %v", c.name, took)
		}
		switch {
		case r.status != c.want:
			t.Errorf("%s: %d %.200q, want %d", c.name, r.status, r.body, c.want)
		case c.want == 200 && c.site == e.siteJWKS:
			var h map[string]string
			if json.Unmarshal([]byte(r.body), &h) != nil || h["X-Clerk-User-Id"] != e.admin.ID {
				t.Errorf("%s: upstream saw %.300q", c.name, r.body)
			}
		case c.want == 200 && c.body != "" && r.body != c.body:
			t.Errorf("%s: body %q", c.name, r.body)
		case c.want == 401 && !hostileReasonOK(strings.TrimPrefix(r.body, "401 ")):
			t.Errorf("%s: body %q", c.name, r.body)
		}
	}
	// The loop guard's counter and other Clerk cookies with garbage, on
	// page loads: a redirect or a refusal, never a 5xx.
	for _, c := range []string{"__clerk_redirect_count=-1", "__clerk_redirect_count=99999999999999999999",
		"__clerk_redirect_count=3; __client_uat=1", "__clerk_db_jwt=; __client_uat=x", "__clerk_db_jwt=" + strings.Repeat("d", 8000),
		"__session_" + e.clerk.CookieSuffix() + "=" + strings.Repeat("x.", 3000)} {
		r := hostileSend(t, e.siteJWKS, hostileReq("GET", "/p", e.siteJWKS, "Sec-Fetch-Dest", "document", "Cookie", c))
		if r.status >= 500 || r.status == 200 {
			t.Errorf("page load with %.60q: %d %.200q", c, r.status, r.body)
		}
	}
}

// testHeaderInjection: claims holding CR, LF and NUL, forwarded through
// header_up placeholders, arrive as one clean header each.
func (e *hostileEnv) testHeaderInjection(t *testing.T) {
	tok := e.clerk.MustMint(clerktest.TokenOptions{User: &e.admin, Subject: "user_1\r\nX-Evil-Sub: 1", Claims: map[string]any{
		"note": "line1\r\nX-Evil: 1\x00\r\n\r\nGET / HTTP/1.1",
		"tags": []any{"a\r\nX-Evil-Tag: 1", "b\nc"},
		"meta": map[string]any{"x": "y\r\nX-Evil-Meta: 1"},
		"o":    map[string]any{"id": "org_1", "slg": "acme\r\nX-Evil-Org: 1", "rol": "admin"},
	}})
	e.tokens = append(e.tokens, tok)
	for _, carrier := range [][]string{{"Authorization", "Bearer " + tok}, {"Cookie", "__session=" + tok + "; __client_uat=1"}} {
		r := hostileSend(t, e.siteJWKS, hostileReq("GET", "/api", e.siteJWKS, carrier...))
		var h map[string]string
		if r.status != 200 || json.Unmarshal([]byte(r.body), &h) != nil {
			t.Fatalf("via %s: %d %q", carrier[0], r.status, r.body)
		}
		for k, v := range h {
			if strings.HasPrefix(k, "X-Evil") || strings.ContainsAny(v, "\r\n\x00") {
				t.Errorf("via %s: header %s: %q", carrier[0], k, v)
			}
		}
		want := map[string]string{
			"X-Clerk-User-Id":  "user_1X-Evil-Sub: 1",
			"X-Clerk-Note":     "line1X-Evil: 1GET / HTTP/1.1",
			"X-Clerk-Tags":     "aX-Evil-Tag: 1,bc",
			"X-Clerk-Meta":     `{"x":"y\r\nX-Evil-Meta: 1"}`,
			"X-Clerk-Org-Slug": "acmeX-Evil-Org: 1",
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("via %s: %s = %q, want %q", carrier[0], k, h[k], v)
			}
		}
	}
}

// testOpenRedirects: page loads with hostile Host, X-Forwarded-Host and
// X-Forwarded-Proto values. The sign-in and handshake redirects go to Clerk,
// and their redirect_url stays on the request's own host: a Host Go's
// server accepted (hostile ones are refused with 400 first), or, from a
// trusted proxy only, a well-formed X-Forwarded-Host.
func (e *hostileEnv) testOpenRedirects(t *testing.T) {
	clerkURL, _ := url.Parse(e.clerk.URL())
	past := fmt.Sprintf("__client_uat=%d", time.Now().Add(-time.Hour).Unix())
	type rc struct {
		site, name, target, host, xfh, xfp string
		wantHost, wantScheme               string
		mayRefuse                          bool // Go's server may answer 400 to this Host
	}
	var cases []rc
	for _, site := range []string{e.siteOpen, e.siteProxied} {
		trusted := site == e.siteProxied
		// What a trusted proxy's X-Forwarded-* say, or the request's own.
		fwdHost, fwdScheme := site, "http"
		if trusted {
			fwdHost, fwdScheme = "docs.example.com", "https"
		}
		malformedScheme := "http"
		if trusted {
			malformedScheme = "https"
		}
		local := []rc{
			{name: "plain", target: "/p?x=1", host: site, wantHost: site},
			{name: "another Host", target: "/p", host: "evil.example", wantHost: "evil.example"},
			{name: "Host with a path and userinfo", target: "/p", host: "evil.example/@x", wantHost: "evil.example/@x", mayRefuse: true},
			{name: "Host with userinfo", target: "/p", host: "a@b", wantHost: "a@b", mayRefuse: true},
			{name: "Host //evil", target: "/p", host: "//evil", wantHost: "//evil", mayRefuse: true},
			{name: "Host with a fragment", target: "/p", host: "evil.example#@x", wantHost: "evil.example#@x", mayRefuse: true},
			{name: "Host with a backslash", target: "/p", host: `evil.example\@x`, wantHost: `evil.example\@x`, mayRefuse: true},
			{name: "Host with a query", target: "/p", host: "evil.example?x", wantHost: "evil.example?x", mayRefuse: true},
			{name: "Host with a space", target: "/p", host: "evil.example x", wantHost: "evil.example x", mayRefuse: true},
			{name: "empty Host", target: "/p", host: "", wantHost: "", mayRefuse: true},
			{name: "Host, CRLF, another header", target: "/p", host: "evil.example\r\nX-Injected: 1", wantHost: "evil.example", mayRefuse: true},
			{name: "path //evil", target: "//evil.example/x", host: site, wantHost: site},
			{name: "path with a backslash", target: `/\evil.example`, host: site, wantHost: site, mayRefuse: true},
			{name: "path with encoded slashes", target: "/%2F%2Fevil.example", host: site, wantHost: site},
			{name: "redirect_url in the query", target: "/p?redirect_url=https://evil.example", host: site, wantHost: site},
			// RFC 9112 §3.2.2: an absolute-form target's authority is the
			// request's host (Go sets r.Host from it): the client names its
			// own host, as it does with the Host header.
			{name: "absolute-form target", target: "http://evil.example/x", host: site, wantHost: "evil.example"},
			{name: "forwarded host and proto", target: "/p", host: site, xfh: "docs.example.com", xfp: "https", wantHost: fwdHost, wantScheme: fwdScheme},
			{name: "forwarded lists", target: "/p", host: site, xfh: "docs.example.com, evil.example", xfp: "https, http", wantHost: fwdHost, wantScheme: fwdScheme},
			{name: "forwarded proto javascript", target: "/p", host: site, xfh: "docs.example.com", xfp: "javascript", wantHost: fwdHost},
			{name: "forwarded proto URL", target: "/p", host: site, xfp: "https://evil.example", wantHost: site},
			// A CRLF ends the header: what is left of it is a well-formed
			// host, which only a trusted proxy may name.
			{name: "forwarded host, CRLF, another header", target: "/p", host: site, xfh: "evil.example\r\nX-Injected: 1",
				xfp: "https", wantHost: map[bool]string{true: "evil.example", false: site}[trusted], wantScheme: malformedScheme},
		}
		for _, bad := range []string{"evil.example/@x", "a@b", "//evil", `evil.example\x`, "evil.example?x", "evil.example#x",
			"evil example", "evil.example/", "@evil.example", "evil.example\tx", " ,evil.example"} {
			local = append(local, rc{name: "malformed forwarded host " + bad, target: "/p", host: site, xfh: bad, xfp: "https",
				wantHost: site, wantScheme: malformedScheme})
		}
		for i := range local {
			local[i].site = site
			if local[i].wantScheme == "" {
				local[i].wantScheme = "http"
			}
		}
		cases = append(cases, local...)
	}
	refused := map[string]bool{}
	defer func() {
		t.Logf("%d cases; refused by Go's HTTP server (400): %v", len(cases), slices.Sorted(maps.Keys(refused)))
	}()
	for _, c := range cases {
		site := c.site
		for _, kind := range []string{"sign-in", "handshake"} {
			cookie := "__clerk_db_jwt=dvb_hostile"
			wantPath := "/sign-in"
			if kind == "handshake" {
				cookie += "; " + past
				wantPath = "/v1/client/handshake"
			}
			hdr := []string{"Sec-Fetch-Dest", "document", "Cookie", cookie}
			if c.xfh != "" {
				hdr = append(hdr, "X-Forwarded-Host", c.xfh)
			}
			if c.xfp != "" {
				hdr = append(hdr, "X-Forwarded-Proto", c.xfp)
			}
			r := hostileSend(t, site, hostileReq("GET", c.target, c.host, hdr...))
			if r.status == 400 && c.mayRefuse {
				refused[c.name] = true
				continue
			}
			loc, err := url.Parse(r.header.Get("Location"))
			if r.status != 307 || err != nil {
				t.Errorf("%s %s (%s): %d %q", site, c.name, kind, r.status, r.header.Get("Location"))
				continue
			}
			if loc.Scheme != clerkURL.Scheme || loc.Host != clerkURL.Host || !strings.HasSuffix(loc.Path, wantPath) || loc.User != nil {
				t.Errorf("%s %s (%s): redirected to %q, not to Clerk's %s", site, c.name, kind, loc, wantPath)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s (%s): a redirect built from request headers without Cache-Control: no-store", site, c.name, kind)
			}
			back, err := url.Parse(loc.Query().Get("redirect_url"))
			if err != nil || back.User != nil || back.Host != c.wantHost || back.Scheme != c.wantScheme {
				t.Errorf("%s %s (%s): redirect_url %q, want %s://%s", site, c.name, kind, loc.Query().Get("redirect_url"), c.wantScheme, c.wantHost)
			}
		}
	}
}

// testExclude: with exclude /public/*, paths that only look like they are
// under /public/ (dot segments, encoded slashes and dots, doubled slashes)
// still need a token; whatever passes unverified is, cleaned, under
// /public/ for the upstream too.
func (e *hostileEnv) testExclude(t *testing.T) {
	var passed []string
	defer func() { t.Logf("passed unverified: %q", passed) }()
	for _, p := range []string{"/public/x", "/PUBLIC/x", "/public/../api", "/public/..%2fapi", "/public/%2e%2e/api", "/public/%2E%2E%2Fapi",
		"//public/../api", "/public/x/../../api", "/public%2f..%2fapi", "/public/./../api", "/public/..;/api", "/public/..\\api",
		"/public/%252e%252e/api", "/./public/../api", "/public/.%2e/api", "/api/../public/x", "/public"} {
		r := hostileSend(t, e.siteJWKS, hostileReq("GET", p, e.siteJWKS))
		switch r.status {
		case 401:
		case 200:
			var h map[string]string
			if json.Unmarshal([]byte(r.body), &h) != nil {
				t.Errorf("%s: %q", p, r.body)
				continue
			}
			passed = append(passed, p)
			if strings.ContainsAny(p, ";\\") || strings.Contains(p, "%25") {
				t.Errorf("%s passed unverified: upstreams such as Tomcat, IIS or double-decoding frameworks read it as /api", p)
			}
			if seen := path.Clean(strings.ToLower(h["_path"])); !strings.HasPrefix(seen, "/public/") {
				t.Errorf("%s passed unverified and reached the upstream as %q", p, h["_path"])
			}
		default:
			if r.status >= 500 {
				t.Errorf("%s: %d %q", p, r.status, r.body)
			}
		}
	}
	if r := hostileSend(t, e.siteJWKS, hostileReq("GET", "/public/x", e.siteJWKS)); r.status != 200 {
		t.Errorf("the control: /public/x is excluded, got %d", r.status)
	}
}

// forgedDirectives are what an attacker would like a handshake to set: a
// real session (the attacker's own, say), a fresh __client_uat, a
// dev-browser token and a cookie of their choosing.
func (e *hostileEnv) forgedDirectives() []string {
	if e.forged == nil {
		e.forged = []string{"__session=" + e.valid + "; Path=/; SameSite=Lax", fmt.Sprintf("__client_uat=%d; Path=/", time.Now().Unix()),
			"__clerk_db_jwt=dvb_evil; Path=/", "evil=1; Path=/"}
	}
	return e.forged
}

// hostileNothingApplied: the only cookies a refused handshake may set are
// the loop guard's counter and the clearing of a handshake cookie.
func hostileNothingApplied(t *testing.T, name string, r hostileResp) {
	t.Helper()
	if r.status >= 500 || r.status == 200 {
		t.Errorf("%s: %d %.200q", name, r.status, r.body)
	}
	for _, sc := range r.header.Values("Set-Cookie") {
		if !strings.HasPrefix(sc, "__clerk_redirect_count=") && sc != "__clerk_handshake=; Path=/; Max-Age=0" &&
			sc != "__clerk_handshake_nonce=; Path=/; Max-Age=0" {
			t.Errorf("%s: applied %q", name, sc)
		}
	}
}

// testLegacyHandshake: __clerk_handshake in the query or a cookie with
// garbage, or forged (another key, alg none, HMAC, an embedded key, a
// session token that does not verify): nothing is applied. The control:
// the same directives signed by the instance key are.
func (e *hostileEnv) testLegacyHandshake(t *testing.T) {
	enc := func(b []byte) string { return hostileB64.EncodeToString(b) }
	payload, _ := json.Marshal(map[string]any{"handshake": e.forgedDirectives()})
	forgedSession := e.clerk.MustMint(clerktest.TokenOptions{User: &e.admin, SigningKey: e.attacker})
	badSession, _ := json.Marshal(map[string]any{"handshake": []string{"__session=" + forgedSession + "; Path=/", "evil=1; Path=/"}})
	hs := func() string {
		input := enc([]byte(`{"alg":"HS256","kid":"`+e.kid+`"}`)) + "." + enc(payload)
		mac := hmac.New(sha256.New, []byte(e.clerk.PublicKeyPEM()))
		mac.Write([]byte(input))
		return input + "." + enc(mac.Sum(nil))
	}()
	forged := map[string]string{
		"another key, the instance's kid":      e.sign(e.attacker, `{"alg":"RS256","kid":"`+e.kid+`","typ":"JWT"}`, payload),
		"another key, its own kid":             e.sign(e.attacker, `{"alg":"RS256","kid":"ins_attacker"}`, payload),
		"alg none":                             enc([]byte(`{"alg":"none"}`)) + "." + enc(payload) + ".",
		"HS256 with the PEM":                   hs,
		"embedded jwk":                         e.sign(e.attacker, `{"alg":"RS256","jwk":`+e.jwk(&e.attacker.PublicKey, e.kid)+`}`, payload),
		"jku":                                  e.sign(e.attacker, `{"alg":"RS256","kid":"x","jku":"`+e.jku.URL+`"}`, payload),
		"a session token that does not verify": e.sign(e.key, `{"alg":"RS256","kid":"`+e.kid+`","typ":"JWT"}`, badSession),
		"garbage":                              "garbage",
		"three garbage segments":               "a.b.c",
		"10 KB":                                strings.Repeat("A", 10<<10),
		"padded":                               e.sign(e.key, `{"alg":"RS256","kid":"`+e.kid+`"}`, payload) + "=",
		"signed payload, no handshake":         e.sign(e.key, `{"alg":"RS256","kid":"`+e.kid+`"}`, []byte(`{"other":["evil=1"]}`)),
	}
	for name, tok := range forged {
		e.tokens = append(e.tokens, tok)
		r := hostileSend(t, e.siteJWKS, hostileReq("GET", "/p?x=1&__clerk_handshake="+url.QueryEscape(tok), e.siteJWKS,
			"Sec-Fetch-Dest", "document", "Cookie", "__clerk_db_jwt=dvb_x"))
		hostileNothingApplied(t, "query, "+name, r)
		r = hostileSend(t, e.siteJWKS, hostileReq("GET", "/p", e.siteJWKS,
			"Sec-Fetch-Dest", "document", "Cookie", "__clerk_db_jwt=dvb_x; __clerk_handshake="+tok))
		hostileNothingApplied(t, "cookie, "+name, r)
		if !slices.Contains(r.header.Values("Set-Cookie"), "__clerk_handshake=; Path=/; Max-Age=0") {
			t.Errorf("cookie, %s: the unusable handshake cookie is not cleared: %q", name, r.header.Values("Set-Cookie"))
		}
	}
	for _, q := range []string{"%00", "%", "%zz", "a%0D%0AX-Evil:%201", strings.Repeat("%FF", 1000)} {
		r := hostileSend(t, e.siteJWKS, hostileReq("GET", "/p?__clerk_handshake="+q, e.siteJWKS, "Sec-Fetch-Dest", "document"))
		hostileNothingApplied(t, "query "+q[:min(len(q), 12)], r)
	}

	// The control: signed by the instance key, the same directives apply;
	// a directive with CR/LF among them is dropped, and splits nothing.
	genuine := e.sign(e.key, `{"alg":"RS256","kid":"`+e.kid+`","typ":"JWT"}`, payload)
	withCRLF, _ := json.Marshal(map[string]any{"handshake": append(slices.Clone(e.forgedDirectives()), "x=1\r\nX-Evil: 1", "y=2\x00")})
	for _, tok := range []string{genuine, e.sign(e.key, `{"alg":"RS256","kid":"`+e.kid+`"}`, withCRLF)} {
		e.tokens = append(e.tokens, tok)
		r := hostileSend(t, e.siteJWKS, hostileReq("GET", "/p?__clerk_handshake="+tok, e.siteJWKS, "Sec-Fetch-Dest", "document"))
		if got := r.header.Values("Set-Cookie"); r.status != 307 || !slices.Equal(got, e.forgedDirectives()) {
			t.Errorf("genuine handshake: %d, Set-Cookie %q", r.status, got)
		}
		for k := range r.header {
			if strings.HasPrefix(k, "X-Evil") {
				t.Errorf("genuine handshake: header %s", k)
			}
		}
	}
}

// testNonces: __clerk_handshake_nonce values that cannot be Clerk's (10 KB,
// not base62) never reach the Backend API; an unknown but well-formed one
// does, once (the control).
func (e *hostileEnv) testNonces(t *testing.T) {
	before := e.clerk.Requests(clerktest.BAPIHandshakePayload)
	var query []string
	for _, v := range []string{strings.Repeat("a", 10<<10), strings.Repeat("aZ9", 3500), "a b", "abc.def", "a\x00b", "é",
		"../../v1/users/user_1", "n?x=1", "n#x", "n&nonce=y", "a;b", "a\r\nX-Evil: 1", "a/b", "a+b", "a%b", "nonce="} {
		query = append(query, url.QueryEscape(v))
	}
	query = append(query, "%", "%zz", "a%00b")
	for _, q := range query {
		r := hostileSend(t, e.siteNonce, hostileReq("GET", "/p?__clerk_handshake_nonce="+q, e.siteNonce,
			"Sec-Fetch-Dest", "document", "Cookie", "__clerk_db_jwt=dvb_x"))
		hostileNothingApplied(t, "nonce query "+q[:min(len(q), 20)], r)
	}
	for _, v := range []string{strings.Repeat("a", 10<<10), "abc.def", "a/b", "a%20b", "a:b", "a=b", "\xff\xfe"} {
		r := hostileSend(t, e.siteNonce, hostileReq("GET", "/p", e.siteNonce,
			"Sec-Fetch-Dest", "document", "Cookie", "__clerk_db_jwt=dvb_x; __clerk_handshake_nonce="+v))
		hostileNothingApplied(t, "nonce cookie "+v[:min(len(v), 20)], r)
	}
	if n := e.clerk.Requests(clerktest.BAPIHandshakePayload) - before; n != 0 {
		t.Errorf("%d Backend API handshake requests for nonces that cannot be Clerk's", n)
	}
	r := hostileSend(t, e.siteNonce, hostileReq("GET", "/p?__clerk_handshake_nonce=unknownNonce123", e.siteNonce,
		"Sec-Fetch-Dest", "document", "Cookie", "__clerk_db_jwt=dvb_x"))
	hostileNothingApplied(t, "unknown nonce", r)
	if n := e.clerk.Requests(clerktest.BAPIHandshakePayload) - before; n != 1 {
		t.Errorf("the control: %d Backend API requests for a well-formed unknown nonce, want 1", n)
	}
}

// testLogs: after all of the above, at DEBUG level, our log lines hold no
// token, and no line at all holds the secret key.
func (e *hostileEnv) testLogs(t *testing.T) {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), e.clerk.SecretKey()) {
		t.Error("the secret key is in Caddy's log")
	}
	ours := 0
	for _, line := range strings.Split(string(b), "\n") {
		var entry struct {
			Logger string `json:"logger"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || !strings.HasPrefix(entry.Logger, "http.handlers.clerk") {
			continue
		}
		ours++
		for _, tok := range append(e.tokens, e.valid) {
			if len(tok) < 64 {
				continue
			}
			if sig := tok[len(tok)-40:]; strings.Contains(line, sig) {
				t.Errorf("a token is in our log: %.300s", line)
				break
			}
		}
	}
	if ours == 0 {
		t.Error("no log line of ours at DEBUG level: the check saw nothing")
	}
	t.Logf("%d log lines of ours checked", ours)
}
