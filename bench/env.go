package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// environment is everything the rows need: the Clerk emulator, tokens, and
// one running server set per row.
type environment struct {
	o          options
	out        string
	bins       map[string]string
	clerk      *clerktest.Server
	admin      clerktest.User
	life       time.Duration
	token      string   // the single token
	apiKey     string   // the API key of rows 7 and 7r (ak_…)
	m2m        string   // the M2M JWT of row 8
	cycle      []string // distinct tokens for the *c rows
	unique     []string // tokens for the *u rows, minted when first needed
	uniqueFile string   // prefix of the per-thread token files
	report     string   // Lua scripts
	sprayLua   string
	cycleLua   string
	uniqueLua  string
	pemPath    string
	caddyEnv   []string
	sites      map[string]*site // by row id
	hz         float64
	client     *http.Client
}

// site is one Caddy process (plus the auth service for row 6).
type site struct {
	caddy   *child
	extra   []*child // further processes whose CPU the row pays for
	port    int
	admin   int
	fwdPort int
	pprof   map[string]string // process name -> pprof base URL
	caddyf  string
	logPath string
	rss0    int64 // resident memory (bytes) once started and checked, before any load
}

func (s *site) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", s.port) }

func (s *site) pids() []int {
	p := []int{s.caddy.pid()}
	for _, c := range s.extra {
		p = append(p, c.pid())
	}
	return p
}

func (s *site) alive() error {
	for _, c := range append([]*child{s.caddy}, s.extra...) {
		if c.exited() {
			return fmt.Errorf("%s exited: %v", c.name, c.err)
		}
	}
	return nil
}

func newEnvironment(ctx context.Context, o options, bins map[string]string, selected []row) (*environment, error) {
	e := &environment{o: o, out: o.out, bins: bins, sites: map[string]*site{}, hz: clockTicks(),
		client: &http.Client{Timeout: 10 * time.Second}}
	e.clerk = clerktest.New()
	e.admin = e.clerk.AdminUser()

	// Tokens must outlive the whole run, profiling included.
	est := time.Duration(o.rounds*len(selected)+len(selected)) * (o.warmup + o.duration + 15*time.Second)
	e.life = max(time.Hour, 2*est)
	e.token = e.clerk.MustMint(clerktest.TokenOptions{User: &e.admin, Lifetime: e.life})
	e.apiKey = e.clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: e.admin.ID, Name: "bench"}).Secret
	e.m2m = e.clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Lifetime: e.life})
	cycleFiles := filepath.Join(e.out, "tokens-cycle.")
	e.uniqueFile = filepath.Join(e.out, "tokens-unique.")
	for _, r := range selected {
		if r.load == loadCycle && e.cycle == nil {
			fmt.Printf("minting %d distinct tokens for the cycled rows...\n", o.cycleTokens)
			e.cycle = mintMany(e.clerk, e.admin, e.life, o.cycleTokens)
			if err := writeTokenFiles(cycleFiles, o.threads, e.cycle); err != nil {
				return nil, err
			}
		}
	}
	var scripts []string
	var err error
	if e.report, e.sprayLua, scripts, err = writeLua(e.out, cycleFiles, e.uniqueFile); err != nil {
		return nil, err
	}
	e.cycleLua, e.uniqueLua = scripts[0], scripts[1]
	e.pemPath = filepath.Join(e.out, "clerk-public-key.pem") // caddy-security wants .pem or .key
	if err := os.WriteFile(e.pemPath, []byte(e.clerk.PublicKeyPEM()), 0o644); err != nil {
		return nil, err
	}
	home := filepath.Join(e.out, "caddy-home")
	e.caddyEnv = []string{"XDG_DATA_HOME=" + home + "/data", "XDG_CONFIG_HOME=" + home + "/config"}

	fmt.Printf("starting %d server sets...\n", len(selected))
	for _, r := range selected {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s := &site{pprof: map[string]string{}}
		for _, p := range []*int{&s.port, &s.admin} {
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
		if r.binary == binForward {
			if err := e.startAuthsvc(r, s); err != nil {
				return nil, err
			}
		}
		s.caddyf = filepath.Join(e.out, "Caddyfile-"+r.id)
		if err := os.WriteFile(s.caddyf, []byte(e.caddyfile(r, s)), 0o644); err != nil {
			return nil, err
		}
		e.sites[r.id] = s
		if err := e.startCaddy(r, s); err != nil {
			return nil, err
		}
	}
	// All servers are up before any is checked or loaded.
	for _, r := range selected {
		if err := e.check(ctx, r); err != nil {
			return nil, err
		}
	}
	for _, r := range selected {
		if err := e.sites[r.id].baseline(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *environment) close() {
	killAll()
	e.clerk.Close()
}

func (e *environment) startAuthsvc(r row, s *site) error {
	var err error
	if s.fwdPort, err = freePort(); err != nil {
		return err
	}
	pp, err := freePort()
	if err != nil {
		return err
	}
	svc, err := startChild("authsvc (row "+r.id+")", filepath.Join(e.out, "authsvc-"+r.id+".log"), nil,
		e.bins[binForward], "-listen", fmt.Sprintf("127.0.0.1:%d", s.fwdPort),
		"-api-url", e.clerk.BackendAPIURL(), "-secret-key", e.clerk.SecretKey(),
		"-issuer", e.clerk.Issuer(), "-pprof", fmt.Sprintf("127.0.0.1:%d", pp))
	if err != nil {
		return err
	}
	if err := waitPort(svc, fmt.Sprintf("127.0.0.1:%d", s.fwdPort), 15*time.Second); err != nil {
		return err
	}
	s.extra = append(s.extra, svc)
	s.pprof["authsvc"] = fmt.Sprintf("http://127.0.0.1:%d", pp)
	return nil
}

func (e *environment) startCaddy(r row, s *site) error {
	bin := e.bins[r.binary]
	if r.binary == binForward {
		bin = e.bins[binClerk]
	}
	s.logPath = filepath.Join(e.out, "caddy-"+r.id+".log")
	c, err := startChild("caddy (row "+r.id+")", s.logPath, e.caddyEnv, bin,
		"run", "--config", s.caddyf, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	s.caddy = c
	s.pprof["caddy"] = fmt.Sprintf("http://127.0.0.1:%d", s.admin)
	if err := waitPort(c, fmt.Sprintf("127.0.0.1:%d", s.port), 30*time.Second); err != nil {
		return fmt.Errorf("%v\n--- %s:\n%s", err, s.logPath, tail(s.logPath, 20))
	}
	return nil
}

// restart gives a row a fresh Caddy process: the fresh-token rows need
// servers whose caches have never seen the token pool.
func (e *environment) restart(ctx context.Context, r row) error {
	s := e.sites[r.id]
	s.caddy.stop()
	_ = os.Rename(s.logPath, s.logPath+".prev")
	if err := e.startCaddy(r, s); err != nil {
		return err
	}
	if err := e.check(ctx, r); err != nil {
		return err
	}
	return s.baseline()
}

// baseline records the site's resident memory before any load.
func (s *site) baseline() error {
	var err error
	s.rss0, err = sumRSS(s.pids())
	return err
}

// caddyfile is the whole config of one row's Caddy. No access log and
// WARN-level logging: nothing is written per successful request.
func (e *environment) caddyfile(r row, s *site) string {
	var global, body string
	switch r.kind {
	case "respond":
		body = `respond "ok" 200`
	case "respond-vars":
		// Any handler before respond costs Caddy's middleware chain its
		// frames: a handler's own cost is what it adds over this row.
		body = "vars bench 1\n\trespond \"ok\" 200"
	case "respond-private":
		// The response row 2 sends (Cache-Control: private), set by
		// Caddy's header handler before respond, without authentication.
		body = "header Cache-Control private\n\trespond \"ok\" 200"
	case "respond-clerk-excluded":
		// The clerk handler on a path it excludes: every request runs its
		// plumbing (placeholders, vars, the exclude matcher, respond's
		// switch, the counter), none is verified.
		body = fmt.Sprintf(`clerk {
		publishable_key %s
		jwks_url %s
		issuer %s
		exclude /*
	}
	respond "ok" 200`, e.clerk.PublishableKey(), e.clerk.JWKSURL(), e.clerk.Issuer())
	case "clerk", "clerk-nocache", "clerk-sized", "clerk-shared":
		cache := ""
		switch r.kind {
		case "clerk-nocache":
			cache = "\n\t\ttoken_cache off"
		case "clerk-sized":
			cache = fmt.Sprintf("\n\t\ttoken_cache %d", r.cache)
		case "clerk-shared":
			cache = "\n\t\tshared_cache allow"
		}
		body = fmt.Sprintf(`clerk {
		publishable_key %s
		jwks_url %s
		issuer %s%s
	}
	respond "ok" 200`, e.clerk.PublishableKey(), e.clerk.JWKSURL(), e.clerk.Issuer(), cache)
	case "clerk-machine":
		// Opaque machine tokens are verified at the emulator's Backend
		// API; caching, negative cache and machine_verify_rate are the
		// defaults. The key set (for M2M JWTs) comes from the Backend API
		// too (secret_key).
		body = fmt.Sprintf(`clerk {
		publishable_key %s
		secret_key %s
		api_url %s
		accept %s
	}
	respond "ok" 200`, e.clerk.PublishableKey(), e.clerk.SecretKey(), e.clerk.BackendAPIURL(), r.accept)
	case "security":
		// Bearer tokens are read only with "validate bearer header"; "allow
		// roles any" admits any validly signed token (Clerk's carry no roles
		// claim); API clients get 401, not a redirect to a login portal.
		global = fmt.Sprintf(`
	security {
		authorization policy bench {
			crypto key verify from file %s
			set token sources header
			validate bearer header
			allow roles any
			disable auth redirect
		}
	}`, e.pemPath)
		body = `route {
		authorize with bench
		respond "ok" 200
	}`
	case "forward":
		body = fmt.Sprintf(`forward_auth 127.0.0.1:%d {
		uri /verify
		copy_headers X-Clerk-User-Id
	}
	respond "ok" 200`, s.fwdPort)
	default:
		panic("unknown site kind " + r.kind)
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	log {
		level WARN
	}%s
}

http://:%d {
	bind 127.0.0.1
	%s
}
`, s.admin, global, s.port, body)
}

// mintMany mints n distinct tokens (fresh sid and jti each) on all cores.
// realistic is a session as a paying organization's member has it: the
// organization with its features and permissions, a user feature, a plan
// and a JWT template's custom claims.
func realistic(u clerktest.User, life time.Duration) clerktest.TokenOptions {
	return clerktest.TokenOptions{User: &u, Lifetime: life, Features: []string{"u:premium"}, Plan: "o:pro",
		Claims: map[string]any{"email": u.Email, "metadata": map[string]any{"plan": "pro", "seats": 25}}}
}

func mintMany(c *clerktest.Server, u clerktest.User, life time.Duration, n int) []string {
	out := make([]string, n)
	workers := max(1, min(n, runtime.NumCPU()))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i] = c.MustMint(realistic(u, life))
			}
		}()
	}
	wg.Wait()
	return out
}

// ensureUnique builds the fresh-token pool once: enough for a measured
// fresh-token run at rate req/s with half again to spare, starting with
// the cycled tokens (new to these servers too). A server never sees a pool
// token before its measured run: warm-ups use the single token.
func (e *environment) ensureUnique(rate float64) error {
	if e.unique != nil {
		return nil
	}
	n := e.o.uniqueTokens
	if n == 0 {
		n = int(math.Ceil(1.5*rate*e.o.uniqueDuration.Seconds()/1000)) * 1000
	}
	e.unique = e.cycle
	return e.growUnique(max(n, 1000, len(e.cycle)))
}

// growUnique mints tokens until the pool holds n (a run that ran out
// doubles it).
func (e *environment) growUnique(n int) error {
	more := n - len(e.unique)
	if more <= 0 {
		return nil
	}
	fmt.Printf("minting %d tokens for the fresh-token rows (pool %d)... ", more, n)
	start := time.Now()
	e.unique = append(append([]string(nil), e.unique...), mintMany(e.clerk, e.admin, e.life, more)...)
	fmt.Printf("%.0f s\n", time.Since(start).Seconds())
	return writeTokenFiles(e.uniqueFile, e.o.threads, e.unique)
}

// durationFor is a row's measured run: the fresh-token rows have their
// own, shorter one, as their token pool costs ~1 ms of RSA signing per
// token to mint.
func (e *environment) durationFor(r row) time.Duration {
	if r.load == loadUnique {
		return e.o.uniqueDuration
	}
	return e.o.duration
}

// credential is the single credential a row's bearer or cookie load sends.
func (e *environment) credential(r row) string {
	switch r.cred {
	case credAPIKey:
		return e.apiKey
	case credM2MJWT:
		return e.m2m
	}
	return e.token
}

// request builds a request to the row's site carrying token as the row's
// load does ("" sends none).
func (e *environment) request(r row, token string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, e.sites[r.id].url(), nil)
	if token != "" {
		if r.load == loadCookie {
			req.Header.Set("Cookie", sessionCookie(token))
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	return req
}

func (e *environment) status(r row, token string) (int, string, error) {
	code, body, _, err := e.answer(r, token)
	return code, body, err
}

// answer is status with the response headers.
func (e *environment) answer(r row, token string) (int, string, http.Header, error) {
	resp, err := e.client.Do(e.request(r, token))
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body), resp.Header, nil
}

// check proves a row is what it claims before it is measured: valid
// credentials get 200 "ok"; an authenticating row refuses a missing
// credential and forged ones with 401 (for JWTs a broken signature and an
// altered payload, for API keys an unknown key and the real key with one
// character changed, for machine rows a session token too). The spray row
// must also answer random keys 401 or 503 machine-verify-rate-limited, show
// its limiter biting, and still pass the real key. (Fresh-token rows are
// checked with the single token only, so that no pool token reaches a
// server before its run; wrk fails the row on any non-2xx answer.)
func (e *environment) check(ctx context.Context, r row) error {
	err := e.checkRow(ctx, r)
	if err != nil {
		s := e.sites[r.id]
		return fmt.Errorf("row %s (%s) is not answering as it must, so it cannot be measured: %v\n--- %s:\n%s",
			r.id, r.name, err, s.logPath, tail(s.logPath, 15))
	}
	return nil
}

func (e *environment) checkRow(ctx context.Context, r row) error {
	valid := []string{e.credential(r)}
	if r.load == loadCycle {
		n := len(e.cycle)
		valid = []string{e.cycle[0], e.cycle[n/2], e.cycle[n-1]}
		for range 7 {
			valid = append(valid, e.cycle[rand.IntN(n)])
		}
	}
	// Keys load in the background: wait out the first 503s.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, err := e.status(r, valid[0])
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("valid token: got %d %q (err %v), want 200", code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, tok := range valid {
		if code, body, err := e.status(r, tok); err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
			return fmt.Errorf("valid token #%d: got %d %q (err %v), want 200 ok", i, code, body, err)
		}
	}
	want := 401
	if !r.authenticates() {
		want = 200 // the ceiling must not be checking anything
	}
	for _, c := range e.forged(r) {
		code, body, err := e.status(r, c.token)
		if err != nil {
			return fmt.Errorf("%s: %v", c.what, err)
		}
		if code != want {
			return fmt.Errorf("%s: got %d %q, want %d", c.what, code, strings.TrimSpace(body), want)
		}
	}
	if r.load == loadSpray {
		if err := e.checkSpray(r); err != nil {
			return err
		}
	}
	return e.sites[r.id].alive()
}

type forgery struct{ what, token string }

// forged are the credentials an authenticating row must refuse with 401.
func (e *environment) forged(r row) []forgery {
	switch r.cred {
	case credAPIKey:
		return []forgery{
			{"no API key", ""},
			{"an unknown API key", randomAPIKey()},
			{"the API key with one character changed", tamperMiddle(e.apiKey)},
			{"a valid session token (not an accepted type)", e.token},
		}
	case credM2MJWT:
		return []forgery{
			{"no token", ""},
			{"M2M JWT with a broken signature", tamperSignature(e.m2m)},
			{"M2M JWT with an altered payload (another mch_ sub) and the original signature", tamperPayload(e.m2m, clerktest.NewMachineID())},
			{"a valid session token (not an accepted type)", e.token},
		}
	}
	return []forgery{
		{"no token", ""},
		{"token with a broken signature", tamperSignature(e.token)},
		{"token with an altered payload (sub) and the original signature", tamperPayload(e.token, "user_someone_else")},
	}
}

// checkSpray sends more random keys than the limiter's burst, one after
// another: each must get 401 (asked Clerk: unknown) or 503 with
// Retry-After: 1 (machine-verify-rate-limited; Clerk unreachable says 5),
// the first a 401 and some a 503. The real key, cached, must then still
// pass.
func (e *environment) checkSpray(r row) error {
	_, burst := machineLimit()
	n401, n503 := 0, 0
	for i := range 3 * burst {
		code, body, hdr, err := e.answer(r, randomAPIKey())
		if err != nil {
			return fmt.Errorf("random API key #%d: %v", i, err)
		}
		switch {
		case code == 401:
			n401++
		case code == 503 && hdr.Get("Retry-After") == "1":
			n503++
		default:
			return fmt.Errorf("random API key #%d: got %d %q (Retry-After %q), want 401, or 503 with Retry-After: 1",
				i, code, strings.TrimSpace(body), hdr.Get("Retry-After"))
		}
		if i == 0 && code != 401 {
			return fmt.Errorf("the first random API key got %d, want 401 (the limiter's bucket is full)", code)
		}
	}
	if n503 == 0 {
		return fmt.Errorf("%d random API keys in a row all got 401: machine_verify_rate is not limiting (burst %d)", n401, burst)
	}
	if code, body, err := e.status(r, e.apiKey); err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
		return fmt.Errorf("the real API key while the limiter is exhausted: got %d %q (err %v), want 200 ok", code, body, err)
	}
	return nil
}

// sessionCookie is what a browser signed in with clerk-js sends: the
// session token and __client_uat (the client's last sign-in, never after
// the token's iat). Without __client_uat Clerk treats the cookie as stale.
func sessionCookie(token string) string {
	return fmt.Sprintf("__session=%s; __client_uat=%d", token, claimsOf(token).IAT)
}

type tokenClaims struct {
	IAT int64 `json:"iat"`
}

func claimsOf(token string) tokenClaims {
	var c tokenClaims
	parts := strings.SplitN(token, ".", 3)
	if len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(raw, &c)
		}
	}
	return c
}

// tamperSignature changes one character in the middle of the signature
// (the last one could differ only in padding bits a lax decoder ignores).
func tamperSignature(tok string) string {
	dot := strings.LastIndexByte(tok, '.')
	i := dot + (len(tok)-dot)/2
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// tamperPayload re-encodes the payload with another sub, keeping the
// original header and signature.
func tamperPayload(tok, sub string) string {
	parts := strings.SplitN(tok, ".", 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		panic(err)
	}
	claims["sub"] = sub
	raw, _ = json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
}

// tamperMiddle changes the middle character of an opaque token to
// another base64 character.
func tamperMiddle(tok string) string {
	i := len(tok) / 2
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// randomAPIKey is a value shaped like a Clerk API key that no one issued.
func randomAPIKey() string {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return "ak_" + base64.StdEncoding.EncodeToString(b)
}

// result is one measured run of a row.
type result struct {
	row        row
	wrk        wrkResult
	cpuSec     float64 // the row's server processes
	background float64 // cores busy with anything but the servers and wrk, steal excluded
	stolen     float64 // cores the host took from this machine (steal): other tenants of the host
	rss, rss0  int64   // resident memory of the row's server processes after the run, and before any load
	machine    *machineStats
	// allocBytes and gcs are what Caddy's Go runtime allocated and how
	// many collections it ran during the run: the GC's work follows the
	// bytes allocated, and neither drifts with the host's speed.
	allocBytes, gcs float64
}

func (r result) allocPerReq() float64 { return r.allocBytes / float64(r.wrk.Requests) }
func (r result) gcsPer10k() float64   { return r.gcs / float64(r.wrk.Requests) * 1e4 }

func (r result) cpuPerReqUS() float64 { return r.cpuSec / float64(r.wrk.Requests) * 1e6 }

func (e *environment) wrkFor(r row, load string, d time.Duration, bin, logPath string) wrkRun {
	w := wrkRun{bin: bin, threads: e.o.threads, connections: e.o.connections, duration: d,
		script: e.report, url: e.sites[r.id].url(), logPath: logPath}
	switch load {
	case loadBearer:
		w.header = "Authorization: Bearer " + e.credential(r)
	case loadCookie:
		w.header = "Cookie: " + sessionCookie(e.token)
	case loadCycle:
		w.script = e.cycleLua
	case loadUnique:
		w.script = e.uniqueLua
	case loadSpray:
		w.script = e.sprayLua
	}
	return w
}

// wrkArgsFor is the wrk command line of a row's measured run, tokens and
// the per-run directory elided.
func (e *environment) wrkArgsFor(r row) string {
	args := e.wrkFor(r, r.load, e.durationFor(r), "wrk", "").args()
	iat := fmt.Sprint(claimsOf(e.token).IAT)
	for i, a := range args {
		a = strings.ReplaceAll(a, e.token, "<token>")
		a = strings.ReplaceAll(a, e.apiKey, "<api key>")
		a = strings.ReplaceAll(a, e.m2m, "<M2M JWT>")
		a = strings.ReplaceAll(a, iat, "<iat>")
		a = strings.ReplaceAll(a, e.out+"/", "")
		if strings.ContainsAny(a, " ") {
			a = "'" + a + "'"
		}
		args[i] = a
	}
	return "wrk " + strings.Join(args, " ")
}

// measure warms a row up, then runs the measured load, reading the CPU
// time of the row's server processes and of the whole machine right
// before and after it.
func (e *environment) measure(ctx context.Context, r row, wrkBin, logPath string) (result, error) {
	s := e.sites[r.id]
	if e.o.warmup > 0 {
		warm := r.load
		if warm == loadUnique {
			warm = loadBearer // pool tokens stay new to the server
		}
		w, err := e.wrkFor(r, warm, e.o.warmup, wrkBin, strings.TrimSuffix(logPath, ".txt")+"-warmup.txt").run(ctx)
		if err != nil {
			return result{}, fmt.Errorf("warm-up: %v", err)
		}
		if w.Status > 0 && r.load != loadSpray {
			return result{}, fmt.Errorf("warm-up had errors (%s): not a measurement", w.errorText())
		}
		if w.socketErrors() > 0 {
			return result{}, errSocket{"warm-up: " + w.errorText()}
		}
	}
	pids := s.pids()
	g0, m0, err := e.counts(s, r.machine())
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	b0, st0, err := machineTicks()
	if err != nil {
		return result{}, err
	}
	t0, err := sumTicks(pids)
	if err != nil {
		return result{}, err
	}
	w, err := e.wrkFor(r, r.load, e.durationFor(r), wrkBin, logPath).run(ctx)
	if err != nil {
		return result{}, err
	}
	t1, err := sumTicks(pids)
	if err != nil {
		return result{}, err
	}
	b1, st1, err := machineTicks()
	if err != nil {
		return result{}, err
	}
	wall := time.Since(start).Seconds()
	g1, m1, err := e.counts(s, r.machine())
	if err != nil {
		return result{}, err
	}
	var ms *machineStats
	if r.machine() {
		ms = m1.since(m0)
	}
	if w.Status > 0 && r.load != loadSpray {
		return result{}, fmt.Errorf("the run had errors (%s): not a measurement", w.errorText())
	}
	if w.socketErrors() > 0 {
		return result{}, errSocket{w.errorText()}
	}
	if ms != nil {
		if err := ms.consistent(r, w, e.o.connections); err != nil {
			return result{}, err
		}
	}
	if r.load == loadUnique && r.authenticates() && w.Laps > 0 {
		return result{row: r, wrk: w}, errPoolExhausted
	}
	if err := s.alive(); err != nil {
		return result{}, err
	}
	rss, err := sumRSS(pids)
	if err != nil {
		return result{}, err
	}
	server := float64(t1-t0) / e.hz
	stolen := float64(st1-st0) / e.hz
	other := float64(b1-b0)/e.hz - stolen - server - w.cpu.Seconds()
	return result{row: r, wrk: w, cpuSec: server, background: max(0, other) / wall, stolen: stolen / wall,
		rss: rss, rss0: s.rss0, machine: ms, allocBytes: g1.allocBytes - g0.allocBytes, gcs: g1.gcs - g0.gcs}, nil
}

// errPoolExhausted is a fresh-token run that reused tokens: discarded.
var errPoolExhausted = errors.New("the fresh-token pool ran out and tokens were reused")

// errSocket is a run that lost requests to timeouts or socket errors
// (another process starving the machine): discarded, and retried.
type errSocket struct{ what string }

func (e errSocket) Error() string { return "the run had errors (" + e.what + "): not a measurement" }

// profile re-runs a row's load while taking CPU profiles of its server
// processes through their /debug/pprof endpoints (Caddy's admin API).
func (e *environment) profile(ctx context.Context, r row, wrkBin, dir string) ([]string, error) {
	s := e.sites[r.id]
	secs := int(e.durationFor(r).Seconds())
	if secs > 3 {
		secs -= 2 // inside the load, not at its edges
	}
	type got struct {
		file string
		err  error
	}
	ch := make(chan got, len(s.pprof))
	client := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	for name, base := range s.pprof {
		go func() {
			time.Sleep(time.Second)
			file := filepath.Join(dir, fmt.Sprintf("profile-%s-%s.pb.gz", r.id, name))
			resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs))
			if err != nil {
				ch <- got{err: err}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				ch <- got{err: fmt.Errorf("%s: %s %s", base, resp.Status, b)}
				return
			}
			f, err := os.Create(file)
			if err == nil {
				_, err = io.Copy(f, resp.Body)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			ch <- got{file: file, err: err}
		}()
	}
	w, err := e.wrkFor(r, r.load, e.durationFor(r), wrkBin, filepath.Join(dir, "wrk-"+r.id+"-profiled.txt")).run(ctx)
	var files []string
	for range s.pprof {
		g := <-ch
		if g.err != nil && err == nil {
			err = g.err
		}
		if g.file != "" {
			files = append(files, g.file)
		}
	}
	if err == nil && (w.socketErrors() > 0 || (w.Status > 0 && r.load != loadSpray)) {
		err = fmt.Errorf("the profiled run had errors (%s)", w.errorText())
	}
	return files, err
}
