package caddyclerk

// Reliability under Clerk faults, end to end: a real Caddy (started by
// harness_test.go's startCaddy) in front of the Clerk emulator, driven over
// HTTP on 127.0.0.1. What Caddy does to Clerk is observed at the emulator
// (its request counters, timestamped), never inside the module. Each test
// (each variant of TestFaultOutageAfterWarmUp) uses a fresh emulator, so
// its key source (and so its key cache in keyCaches) is new, and sets
// cacheOptions for that cache only, restoring it afterwards. The tests run
// one after another: caddy.Load replaces the process's one config; the
// variants of TestFaultOutageAfterWarmUp share one config and run in
// parallel.
//
// Run them alone with go test -race -count=1 -run 'TestFault' .
// CLERK_FAULT_LOG=1 shows Caddy's debug log.

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// faultSite is a running Caddy with one site: clerk, /health excluded,
// 200 "ok <user id>" for signed-in requests, and errors rendered as
// "<status> <clerk.reason>".
type faultSite struct {
	t      *testing.T
	base   string
	client *http.Client
	stalls *faultStalls
}

// startFaultCaddy adapts and loads the site with the given clerk block
// lines, and stops Caddy when the test ends. It returns how long Load took,
// less the time the process was stalled.
func startFaultCaddy(t *testing.T, clerkLines string) (*faultSite, time.Duration) {
	t.Helper()
	sites, took := startFaultSites(t, clerkLines)
	return sites[0], took
}

// startFaultSites is startFaultCaddy with one site for each clerk block, in
// one config.
func startFaultSites(t *testing.T, clerkLines ...string) ([]*faultSite, time.Duration) {
	t.Helper()
	logging := "log {\n\t\toutput discard\n\t}"
	if os.Getenv("CLERK_FAULT_LOG") != "" {
		logging = "log {\n\t\tlevel DEBUG\n\t}"
	}
	var body strings.Builder
	for i, lines := range clerkLines {
		fmt.Fprintf(&body, `http://127.0.0.1:{{site%d}} {
	bind 127.0.0.1
	clerk {
%s
		exclude /health
	}
	respond /health "ok" 200
	respond "ok {clerk.user_id}" 200
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, i, lines)
	}
	stalls := watchFaultStalls(t)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections) // after Caddy stopped
	run := startCaddy(t, logging, body.String())
	took := stalls.net(run.loadStart, run.loadEnd) // adapting takes milliseconds; the bound is on Load
	var sites []*faultSite
	for i := range clerkLines {
		sites = append(sites, &faultSite{t: t, base: run.url(fmt.Sprintf("site%d", i)),
			client: &http.Client{Transport: tr, Timeout: 15 * time.Second}, stalls: stalls})
	}
	return sites, took
}

// faultResp is one answer, with when it was asked and answered.
type faultResp struct {
	status     int
	body       string
	header     http.Header
	start, end time.Time
	latency    time.Duration
}

// get requests path with token as a bearer token ("" for none). It returns
// an error rather than failing, so goroutines can use it.
func (s *faultSite) get(path, token string) (faultResp, error) {
	req, err := http.NewRequest("GET", s.base+path, nil)
	if err != nil {
		return faultResp{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return faultResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return faultResp{}, err
	}
	end := time.Now()
	return faultResp{status: resp.StatusCode, body: string(b), header: resp.Header, start: start, end: end, latency: end.Sub(start)}, nil
}

// must is get that fails the test on a transport error.
func (s *faultSite) must(path, token string) faultResp {
	s.t.Helper()
	r, err := s.get(path, token)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// expectOK asserts that token is accepted as user.
func (s *faultSite) expectOK(what, token string, user clerktest.User) faultResp {
	s.t.Helper()
	r := s.must("/api", token)
	if r.status != 200 || r.body != "ok "+user.ID {
		s.t.Fatalf("%s: got %d %q, want 200 %q", what, r.status, r.body, "ok "+user.ID)
	}
	return r
}

// expectRefused asserts a 401 with exactly this reason, in the body and in
// the WWW-Authenticate challenge.
func (s *faultSite) expectRefused(what, token string, reason verifier.Reason) {
	s.t.Helper()
	r := s.must("/api", token)
	if want := "401 " + string(reason); r.status != 401 || r.body != want {
		s.t.Fatalf("%s: got %d %q, want %q", what, r.status, r.body, want)
	}
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error_description="`+string(reason)+`"`) {
		s.t.Fatalf("%s: WWW-Authenticate %q does not name %s", what, ch, reason)
	}
}

// waitOK polls until token is accepted, failing after deadline; it returns
// how long that took (less stalls).
func (s *faultSite) waitOK(what, token string, deadline time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	for {
		r, err := s.get("/api", token)
		if err == nil && r.status == 200 {
			return s.stalls.net(start, r.end)
		}
		if time.Since(start) > deadline {
			s.t.Fatalf("%s: still refused after %v: %d %q (err %v)", what, deadline, r.status, r.body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// net is how long r took while the process was running: what Caddy made
// it wait, not what the machine did.
func (s *faultSite) net(r faultResp) time.Duration { return s.stalls.net(r.start, r.end) }

// faultStalls notices when the test process is not running (other
// processes hog the CPU: parallel test binaries, fuzzers): a goroutine
// sleeping 2 ms at a time records every wake-up more than 20 ms late. A
// request that waits inside Caddy (on a fetch, say) does not stall it, so
// subtracting stalls from a latency leaves what Caddy is responsible for.
type faultStalls struct {
	mu     sync.Mutex
	spans  [][2]time.Time
	last   time.Time // the latest wake-up
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

func watchFaultStalls(t *testing.T) *faultStalls {
	s := &faultStalls{last: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		prev := time.Now()
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			now := time.Now()
			s.mu.Lock()
			if now.Sub(prev) > 20*time.Millisecond {
				s.spans = append(s.spans, [2]time.Time{prev.Add(2 * time.Millisecond), now})
			}
			s.last = now
			s.mu.Unlock()
			prev = now
		}
	}()
	t.Cleanup(func() { s.closed.Do(func() { close(s.stop) }); <-s.done })
	return s
}

// net is to.Sub(from) less the stalls within it. It first waits for a
// wake-up after to, so a stall running at to is counted.
func (s *faultStalls) net(from, to time.Time) time.Duration {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		seen := !s.last.Before(to)
		s.mu.Unlock()
		if seen {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := to.Sub(from)
	for _, sp := range s.spans {
		lo, hi := sp[0], sp[1]
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		if hi.After(lo) {
			d -= hi.Sub(lo)
		}
	}
	return d
}

// setFaultCacheOptions sets the options of the key caches this test
// creates.
func setFaultCacheOptions(t *testing.T, o verifier.CacheOptions) {
	old := cacheOptions
	cacheOptions = o
	t.Cleanup(func() { cacheOptions = old })
}

// faultHit is when the emulator counted one request: between lo and hi,
// two reads of its counter. Timing checks use the bounds, never a guess,
// so a poll delayed by CPU pressure cannot fail a test, only widen a span.
type faultHit struct{ lo, hi time.Time }

// minGap and maxGap bound the time between two counted requests.
func minGap(a, b faultHit) time.Duration { return b.lo.Sub(a.hi) }
func maxGap(a, b faultHit) time.Duration { return b.hi.Sub(a.lo) }

// faultHits records the requests an emulator endpoint receives, by reading
// its counter about every millisecond. The emulator counts a request
// before applying its fault, so faulted requests are seen too; and it
// reads the fault under the same lock, so every request counted after
// SetFault returned suffered the fault.
type faultHits struct {
	clerk *clerktest.Server
	e     clerktest.Endpoint
	base  int // the counter when watching began: hits[i] is request base+i+1
	mu    sync.Mutex
	hits  []faultHit
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func watchFaultHits(t *testing.T, clerk *clerktest.Server, e clerktest.Endpoint) *faultHits {
	h := &faultHits{clerk: clerk, e: e, stop: make(chan struct{}), done: make(chan struct{})}
	prev := time.Now()
	h.base = clerk.Requests(e)
	go func() {
		defer close(h.done)
		last := h.base
		for {
			select {
			case <-h.stop:
				return
			default:
			}
			before := time.Now()
			n := clerk.Requests(e)
			after := time.Now()
			if n > last {
				h.mu.Lock()
				for ; last < n; last++ {
					h.hits = append(h.hits, faultHit{lo: prev, hi: after})
				}
				h.mu.Unlock()
			}
			prev = before
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *faultHits) close() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// all returns every request so far.
func (h *faultHits) all() []faultHit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]faultHit(nil), h.hits...)
}

// after returns the requests counted after the counter read n (requests
// n+1, n+2, …).
func (h *faultHits) after(n int) []faultHit {
	all := h.all()
	if i := n - h.base; i > 0 {
		if i >= len(all) {
			return nil
		}
		return all[i:]
	}
	return all
}

// upTo drops the requests certainly counted after t.
func upTo(hits []faultHit, t time.Time) []faultHit {
	var out []faultHit
	for _, x := range hits {
		if !x.lo.After(t) {
			out = append(out, x)
		}
	}
	return out
}

// wait polls until the endpoint has received n requests in all since
// watching began, and they are recorded.
func (h *faultHits) wait(t *testing.T, what string, n int, deadline time.Duration) []faultHit {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		if all := h.all(); len(all) >= n {
			return all
		}
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s: %s requests at %s", deadline, what, h.e, describeFaultHits(h.all()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func describeFaultHits(hits []faultHit) string {
	if len(hits) == 0 {
		return "(none)"
	}
	parts := make([]string, len(hits))
	for i, x := range hits {
		parts[i] = "+" + x.hi.Sub(hits[0].hi).Round(time.Millisecond).String()
		if w := x.hi.Sub(x.lo); w > 5*time.Millisecond {
			parts[i] += fmt.Sprintf("(±%v)", w.Round(time.Millisecond))
		}
	}
	return strings.Join(parts, " ")
}

// faultBackoffCeiling is the cache's backoff before jitter after n
// consecutive failures: MinBackoff·2^(n-1) capped at MaxBackoff; the delay
// is drawn from [ceiling/2, ceiling].
func faultBackoffCeiling(minB, maxB time.Duration, n int) time.Duration {
	d := minB
	for i := 1; i < n && d < maxB; i++ {
		d *= 2
	}
	return min(d, maxB)
}

// checkFaultBackoff asserts that consecutive failing fetches (the requests
// in hits, the first being failure number 1 or later) are spaced by the
// fetch's own duration plus at least the jittered backoff, and, if
// maxSlack > 0, at most the backoff's ceiling plus maxSlack (and the
// stalls in between).
// The backoff timer starts once a failed request is over, so requests are
// at least the backoff apart; a hanging fetch's timeout starts a little
// before its request reaches the emulator (dialling): 100 ms of slack.
func checkFaultBackoff(t *testing.T, hits []faultHit, fetchDur, minB, maxB, maxSlack time.Duration, stalls *faultStalls) {
	t.Helper()
	for k := 1; k < len(hits); k++ {
		ceil := faultBackoffCeiling(minB, maxB, k)
		low := ceil / 2
		if fetchDur > 0 {
			low += fetchDur - 100*time.Millisecond
		}
		if maxGap(hits[k-1], hits[k]) < low {
			t.Errorf("retry %d came %v after failure %d, want at least %v (fetch %v + backoff ≥ %v); requests at %s",
				k, maxGap(hits[k-1], hits[k]).Round(time.Millisecond), k, low, fetchDur, ceil/2, describeFaultHits(hits))
			return
		}
		if high := fetchDur + ceil + maxSlack; maxSlack > 0 && stalls.net(hits[k-1].hi, hits[k].lo) > high {
			t.Errorf("retry %d came %v after failure %d, want at most %v; requests at %s",
				k, stalls.net(hits[k-1].hi, hits[k].lo).Round(time.Millisecond), k, high, describeFaultHits(hits))
			return
		}
	}
}

// faultTraffic runs fn in n goroutines, each calling it back to back until
// d has passed. fn reports problems with t.Errorf.
func faultTraffic(d time.Duration, n int, fn func(worker int)) {
	faultTrafficUntil(d, d, nil, n, fn)
}

// faultTrafficUntil is faultTraffic that goes on after d until enough()
// holds, but not beyond maxD: a test that needs some event to happen
// under traffic waits for it rather than guessing a duration.
func faultTrafficUntil(d, maxD time.Duration, enough func() bool, n int, fn func(worker int)) {
	start := time.Now()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for !stop.Load() {
				fn(i)
			}
		}(i)
	}
	for {
		el := time.Since(start)
		if el >= maxD || (el >= d && (enough == nil || enough())) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
}

// faultTally counts answers by status and keeps the first few surprises.
type faultTally struct {
	mu       sync.Mutex
	n        int
	byCode   map[int]int
	maxLat   time.Duration
	slow     []faultResp // answers slower than 100 ms, to weigh against stalls
	oddities []string
}

func newFaultTally() *faultTally { return &faultTally{byCode: map[int]int{}} }

// add counts r; check returns "" if r is as expected, else what is wrong.
func (c *faultTally) add(r faultResp, err error, check func(faultResp) string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if err != nil {
		c.byCode[-1]++
		if len(c.oddities) < 5 {
			c.oddities = append(c.oddities, err.Error())
		}
		return
	}
	c.byCode[r.status]++
	c.maxLat = max(c.maxLat, r.latency)
	if r.latency > 100*time.Millisecond && len(c.slow) < 10000 {
		c.slow = append(c.slow, r)
	}
	if msg := check(r); msg != "" && len(c.oddities) < 5 {
		c.oddities = append(c.oddities, msg)
	}
}

// only reports whether every answer had this status and passed its check.
func (c *faultTally) only(status int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n > 0 && c.byCode[status] == c.n && len(c.oddities) == 0
}

// maxNet is the longest latency less stalls.
func (c *faultTally) maxNet(site *faultSite) time.Duration {
	c.mu.Lock()
	slow := append([]faultResp(nil), c.slow...)
	d := min(c.maxLat, 100*time.Millisecond)
	c.mu.Unlock()
	for _, r := range slow {
		d = max(d, site.net(r))
	}
	return d
}

func (c *faultTally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d requests, by status %v, max latency %v, first problems %q",
		c.n, c.byCode, c.maxLat.Round(time.Millisecond), c.oddities)
}

// faultMint mints a 10-minute token for u, signed by key (nil: the
// current key).
func faultMint(clerk *clerktest.Server, u clerktest.User, key *rsa.PrivateKey) string {
	return clerk.MustMint(clerktest.TokenOptions{User: &u, SigningKey: key, Lifetime: 10 * time.Minute})
}

// faultAttackerToken is signed by a foreign key and names a random kid.
func faultAttackerToken(clerk *clerktest.Server, u clerktest.User, foreign *rsa.PrivateKey) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return clerk.MustMint(clerktest.TokenOptions{User: &u, SigningKey: foreign, Lifetime: 10 * time.Minute,
		Header: clerktest.HeaderOptions{KeyID: "ins_" + hex.EncodeToString(b)}})
}

// faultFAPILines is a clerk block whose keys come from the emulator's
// Frontend API JWKS (unless extra sets another source).
func faultFAPILines(clerk *clerktest.Server, extra ...string) string {
	lines := []string{"publishable_key " + clerk.PublishableKey(), "frontend_api_url " + clerk.FrontendAPIURL()}
	lines = append(lines, extra...)
	return "\t\t" + strings.Join(lines, "\n\t\t")
}

// 1. Clerk down at start: Caddy starts at once, key-needing requests get
// 503 + Retry-After, excluded paths work, background retries back off,
// request-driven fetches while cold are rate limited; recovery needs no
// reload.
func TestFaultClerkDownAtStart(t *testing.T) {
	const fetchTimeout, minB = 500 * time.Millisecond, 200 * time.Millisecond
	const maxB = 30 * time.Second // the default
	const coldGap = time.Second   // ColdRetryInterval, the default
	setFaultCacheOptions(t, verifier.CacheOptions{FetchTimeout: fetchTimeout, MinBackoff: minB})
	clerk := clerktest.NewT(t)
	admin := clerk.AdminUser()
	tok := faultMint(clerk, admin, nil)
	clerk.SetFault(clerktest.FAPIJWKS, clerktest.Hang)
	hits := watchFaultHits(t, clerk, clerktest.FAPIJWKS)

	site, took := startFaultCaddy(t, faultFAPILines(clerk))
	if took > 2*time.Second {
		t.Fatalf("caddy.Load took %v with the JWKS endpoint hanging, want < 2s", took)
	}
	if r := site.must("/health", ""); r.status != 200 || r.body != "ok" || site.net(r) > 500*time.Millisecond {
		t.Fatalf("excluded path while Clerk hangs: %d %q in %v", r.status, r.body, site.net(r))
	}

	// Background only (no request needs keys yet): each hanging fetch is
	// abandoned after FetchTimeout, then retried after 100-200 ms,
	// 200-400 ms, 400-800 ms: four fetches in about 3.5 s.
	bg := hits.wait(t, "four background fetches", 4, 15*time.Second)[:4]
	checkFaultBackoff(t, bg, fetchTimeout, minB, maxB, 500*time.Millisecond, site.stalls)
	t.Logf("background fetches of a hanging JWKS at %s", describeFaultHits(bg))

	// A request needing keys: 503 with Retry-After, after waiting at most
	// for the fetch under way.
	r := site.must("/api", tok)
	if r.status != 503 || r.body != "503 jwk-remote-failed-to-load" {
		t.Fatalf("while Clerk hangs: %d %q, want 503 jwk-remote-failed-to-load", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Fatalf("503 with Retry-After %q, want a number of seconds", r.header.Get("Retry-After"))
	}
	if site.net(r) > fetchTimeout+time.Second {
		t.Fatalf("the 503 took %v, want at most about FetchTimeout (%v)", site.net(r), fetchTimeout)
	}

	// Steady traffic while Clerk answers 503 at once: requests drive a
	// fetch at most once per ColdRetryInterval, never one per request. By
	// now the background retries are 1.6 s apart or more, and growing with
	// every failure: at most 2 in the window.
	clerk.Down()
	const window = 4 * time.Second
	before := clerk.Requests(clerktest.FAPIJWKS)
	w0 := time.Now()
	tl := newFaultTally()
	var healthFailed atomic.Bool
	faultTraffic(window, 4, func(int) {
		r, err := site.get("/api", tok)
		tl.add(r, err, func(r faultResp) string {
			if r.status != 503 || r.body != "503 jwk-remote-failed-to-load" || r.header.Get("Retry-After") == "" {
				return fmt.Sprintf("%d %q Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
			}
			return ""
		})
		if h, err := site.get("/health", ""); (err != nil || h.status != 200) && healthFailed.CompareAndSwap(false, true) {
			t.Errorf("excluded path while Clerk is down: %d %q %v", h.status, h.body, err)
		}
	})
	wEnd := time.Now()
	elapsed, running := wEnd.Sub(w0), site.stalls.net(w0, wEnd)
	during := hits.after(before)
	fetched := clerk.Requests(clerktest.FAPIJWKS) - before
	t.Logf("cold traffic for %v: %s; %d JWKS requests at %s", elapsed.Round(time.Millisecond), tl, fetched, describeFaultHits(during))
	if !tl.only(503) {
		t.Fatalf("cold traffic: %s", tl)
	}
	// Two fetches closer than ColdRetryInterval: only a background retry
	// can do that. (The interval runs from when a fetch is decided, a
	// little before its request reaches the emulator: 100 ms of slack.)
	tight := 0
	for i := 1; i < len(during); i++ {
		if maxGap(during[i-1], during[i]) < coldGap-100*time.Millisecond {
			tight++
		}
	}
	if limit := int(elapsed/coldGap) + 1 + 2; fetched > limit || tight > 2 {
		t.Fatalf("%d JWKS requests (%d closer than %v) in %v of traffic, want at most %d (one per %v, and 2 background retries)",
			fetched, tight, coldGap, elapsed, limit, coldGap)
	}
	if fetched < int(running/coldGap)/2 {
		t.Fatalf("only %d JWKS requests in %v of traffic: cold requests should retry about once per %v", fetched, running, coldGap)
	}
	if tl.byCode[503] < 5*fetched {
		t.Fatalf("%d requests caused %d fetches: not rate limited", tl.byCode[503], fetched)
	}

	// Clerk is back: a valid token passes within about ColdRetryInterval,
	// with no reload.
	clerk.Up()
	if d := site.waitOK("after Clerk came back", tok, 10*time.Second); d > 3*time.Second {
		t.Fatalf("recovery took %v, want about ColdRetryInterval (%v)", d, coldGap)
	}
	// Loaded: requests no longer cause fetches.
	before = clerk.Requests(clerktest.FAPIJWKS)
	for i := 0; i < 50; i++ {
		site.expectOK("warm", tok, admin)
	}
	if n := clerk.Requests(clerktest.FAPIJWKS) - before; n != 0 {
		t.Fatalf("%d JWKS requests for 50 requests once the keys loaded", n)
	}
}

// faultFront is a reverse proxy to the emulator that can stop listening
// (connection refused) and listen again on the same address. It counts the
// requests it forwards.
type faultFront struct {
	t      *testing.T
	target *url.URL
	served atomic.Int64
	mu     sync.Mutex
	addr   string
	srv    *http.Server
}

func newFaultFront(t *testing.T, target string) *faultFront {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultFront{t: t, target: u}
	f.listen("127.0.0.1:0")
	t.Cleanup(f.down)
	return f
}

func (f *faultFront) listen(addr string) {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatalf("listening on %s: %v", addr, err)
	}
	proxy := httputil.NewSingleHostReverseProxy(f.target)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.served.Add(1)
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	f.mu.Lock()
	f.addr, f.srv = ln.Addr().String(), srv
	f.mu.Unlock()
}

// down closes the listener and every connection: new ones are refused.
func (f *faultFront) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (f *faultFront) up() { f.listen(f.addr) }

// 2. Clerk down after warm-up: valid tokens keep passing on the cached
// keys for the whole outage, without waiting on Clerk, while refreshes
// keep failing with backoff; refreshes succeed again afterwards.
func TestFaultOutageAfterWarmUp(t *testing.T) {
	const refresh, fetchTimeout = 200 * time.Millisecond, 2 * time.Second
	const minB, maxB = 200 * time.Millisecond, 800 * time.Millisecond
	variants := []struct {
		name     string
		outage   time.Duration
		minFails int
		fetchDur time.Duration // how long a failing fetch lasts
		refused  bool          // a real connection refused, through faultFront
		// Go's transport resends a GET on a new connection when a reused
		// keep-alive connection fails before any response: the first
		// failing fetch (the only one on a reused connection: a reset
		// connection is not kept) may reach the emulator twice.
		resent bool
		fault  clerktest.Fault
	}{
		{name: "status-500", outage: 3 * time.Second, minFails: 4, fault: clerktest.Status(500)},
		{name: "hang", outage: 5500 * time.Millisecond, minFails: 3, fetchDur: fetchTimeout, fault: clerktest.Hang},
		{name: "connection-reset", outage: 3 * time.Second, minFails: 4, resent: true, fault: clerktest.ConnectionReset},
		{name: "connection-refused", outage: 3 * time.Second, refused: true},
	}
	// The variants run in parallel: each has its own emulator (so its own
	// key source and key cache) and its own site, all in one Caddy config.
	// cacheOptions is read when a key cache is made: the same for all.
	setFaultCacheOptions(t, verifier.CacheOptions{RefreshInterval: refresh, FetchTimeout: fetchTimeout,
		MinBackoff: minB, MaxBackoff: maxB})
	type variantEnv struct {
		clerk                         *clerktest.Server
		admin, member                 clerktest.User
		adminTok, memberTok, attacker string
		newKey                        *rsa.PrivateKey
		front                         *faultFront
		hits                          *faultHits
	}
	envs := make([]*variantEnv, len(variants))
	lines := make([]string, len(variants))
	for i, v := range variants {
		e := &variantEnv{clerk: clerktest.NewT(t)}
		e.admin, e.member = e.clerk.AdminUser(), e.clerk.MemberUser()
		e.adminTok, e.memberTok = faultMint(e.clerk, e.admin, nil), faultMint(e.clerk, e.member, nil)
		e.attacker = faultAttackerToken(e.clerk, e.admin, clerktest.GenerateKey())
		e.newKey = clerktest.GenerateKey()
		lines[i] = faultFAPILines(e.clerk, "token_cache off")
		if v.refused {
			e.front = newFaultFront(t, e.clerk.URL())
			lines[i] = faultFAPILines(e.clerk, "token_cache off", "jwks_url http://"+e.front.addr+"/.well-known/jwks.json")
		}
		e.hits = watchFaultHits(t, e.clerk, clerktest.FAPIJWKS)
		envs[i] = e
	}
	sites, _ := startFaultSites(t, lines...)
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			e := envs[i]
			clerk, admin, member, hits, front, newKey := e.clerk, e.admin, e.member, e.hits, e.front, e.newKey
			adminTok, memberTok, attacker := e.adminTok, e.memberTok, e.attacker
			if front != nil {
				front.t = t
			}
			site := &faultSite{t: t, base: sites[i].base, client: sites[i].client, stalls: sites[i].stalls}
			site.waitOK("warm-up", adminTok, 10*time.Second)
			hits.wait(t, "scheduled refreshes", 3, 5*time.Second)
			if v.refused && front.served.Load() == 0 {
				t.Fatal("the keys did not come through the front")
			}

			outageStart := time.Now()
			if v.refused {
				front.down()
			} else {
				clerk.SetFault(clerktest.FAPIJWKS, v.fault)
			}
			faulted := clerk.Requests(clerktest.FAPIJWKS) // every request after this one fails
			tl := newFaultTally()
			var probed atomic.Bool
			// The outage lasts v.outage, longer if the machine is so busy that
			// fewer than minFails refreshes were tried by then.
			failing := func() []faultHit {
				f := hits.after(faulted)
				if v.resent && len(f) > 0 {
					// Drop the first: whether or not it was resent, the rest
					// are failures 1, 2, … or later ones, whose backoff is no
					// shorter.
					f = f[1:]
				}
				return f
			}
			enough := func() bool { return v.refused || len(failing()) >= v.minFails }
			faultTrafficUntil(v.outage, 4*v.outage, enough, 2, func(w int) {
				tok, u := adminTok, admin
				if w == 1 {
					tok, u = memberTok, member
				}
				r, err := site.get("/api", tok)
				tl.add(r, err, func(r faultResp) string {
					if r.status != 200 || r.body != "ok "+u.ID {
						return fmt.Sprintf("%d %q", r.status, r.body)
					}
					return ""
				})
				// Midway, a token with an unknown kid: 401, never 5xx. It may
				// wait for a fetch under way (at most FetchTimeout).
				if w == 0 && time.Since(outageStart) > v.outage/2 && probed.CompareAndSwap(false, true) {
					r, err := site.get("/api", attacker)
					if err != nil || r.status != 401 || r.body != "401 jwk-kid-mismatch" {
						t.Errorf("unknown kid during the outage: %d %q %v", r.status, r.body, err)
					} else if site.net(r) > fetchTimeout+time.Second {
						t.Errorf("unknown kid during the outage took %v, want at most FetchTimeout (%v)", site.net(r), fetchTimeout)
					}
				}
			})
			failed := failing()
			t.Logf("%s outage of %v: valid tokens %s; failing refreshes at %s", v.name, v.outage, tl, describeFaultHits(failed))
			if !tl.only(200) {
				t.Fatalf("valid tokens during the outage: %s", tl)
			}
			if d := tl.maxNet(site); d > 500*time.Millisecond {
				t.Fatalf("a valid request waited %v during the outage, stalls excluded (FetchTimeout %v)", d, fetchTimeout)
			}
			if !v.refused { // refused connections never reach the emulator
				// Refreshes kept failing, spaced by backoff: never a tight loop.
				if len(failed) < v.minFails {
					t.Fatalf("%d failing refreshes during the %v outage, want at least %d", len(failed), v.outage, v.minFails)
				}
				checkFaultBackoff(t, failed, v.fetchDur, minB, maxB, 0, nil)
			}

			// Clerk is back: refreshes succeed again, as a key rotated now
			// shows (unknown kids cannot fetch: UnknownKIDInterval is 30 s
			// and every refresh counts).
			if v.refused {
				front.up()
			} else {
				clerk.SetFault(clerktest.FAPIJWKS, clerktest.NoFault)
			}
			clerk.RotateKeyTo(newKey)
			site.waitOK("a new key after the outage", faultMint(clerk, member, nil), v.fetchDur+maxB+5*time.Second)
			site.expectOK("after the outage", adminTok, admin)
			site.expectOK("after the outage", memberTok, member)
		})
	}
}

// 3. Key rotation: the first token of a new key passes on its first
// request at the cost of one fetch; a key dropped from the JWKS stops
// working after the next refresh, while the remaining key keeps working.
func TestFaultKeyRotation(t *testing.T) {
	const refresh, unknownGap = 4 * time.Second, 300 * time.Millisecond
	setFaultCacheOptions(t, verifier.CacheOptions{RefreshInterval: refresh, UnknownKIDInterval: unknownGap})
	clerk := clerktest.NewT(t)
	admin, member := clerk.AdminUser(), clerk.MemberUser()
	oldKid := clerk.CurrentKeyID()
	oldKey := clerk.PrivateKey(oldKid)
	oldTok := faultMint(clerk, admin, nil)
	newKey := clerktest.GenerateKey() // before the timed part: generation is slow under -race

	hits := watchFaultHits(t, clerk, clerktest.FAPIJWKS)
	site, _ := startFaultCaddy(t, faultFAPILines(clerk))
	site.waitOK("warm-up", oldTok, 10*time.Second)
	site.expectOK("old key, cached token", oldTok, admin)

	// Rotate once an unknown-kid fetch is allowed (UnknownKIDInterval since
	// the last fetch) while the next scheduled refresh is far away, so the
	// fetch the new token causes is the only one.
	hits.wait(t, "the first fetch", 1, 5*time.Second)
	for {
		all := hits.all()
		last, now := all[len(all)-1], time.Now()
		if now.Sub(last.hi) >= unknownGap+50*time.Millisecond && last.lo.Add(refresh).Sub(now) > 2*time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	newKid := clerk.RotateKeyTo(newKey)
	newTok := faultMint(clerk, member, nil)
	before := clerk.Requests(clerktest.FAPIJWKS)
	site.expectOK("first request with the new key", newTok, member)
	if n := clerk.Requests(clerktest.FAPIJWKS) - before; n != 1 {
		t.Fatalf("the new key's first token caused %d JWKS requests, want 1", n)
	}
	before = clerk.Requests(clerktest.FAPIJWKS)
	site.expectOK("new key again", newTok, member)
	site.expectOK("old key, still published", oldTok, admin)
	site.expectOK("old key, fresh token", faultMint(clerk, admin, oldKey), admin)
	if n := clerk.Requests(clerktest.FAPIJWKS) - before; n != 0 {
		t.Fatalf("known keys caused %d JWKS requests", n)
	}

	// Clerk drops the old key. Until a refresh, the cached set still has it.
	clerk.DropOldKeys()
	if got := clerk.KeyIDs(); len(got) != 1 || got[0] != newKid {
		t.Fatalf("emulator JWKS holds %v, want only %s", got, newKid)
	}
	removed := clerk.Requests(clerktest.FAPIJWKS)
	r := site.must("/api", oldTok)
	if clerk.Requests(clerktest.FAPIJWKS) == removed && r.status != 200 {
		t.Fatalf("old key before any refresh: %d %q, want 200 (the cached set still has it)", r.status, r.body)
	}
	// After the next refresh it is refused, token cache or not, with
	// Clerk's reason.
	deadline := time.Now().Add(refresh + 5*time.Second)
	for {
		r := site.must("/api", oldTok)
		if r.status == 401 {
			break
		}
		if r.status != 200 || time.Now().After(deadline) {
			t.Fatalf("old key after it left the JWKS: %d %q", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if clerk.Requests(clerktest.FAPIJWKS) == removed {
		t.Fatal("the removed key was refused before any refresh")
	}
	site.expectRefused("cached token of the removed key", oldTok, verifier.ReasonJWKKidMismatch)
	site.expectRefused("fresh token of the removed key", faultMint(clerk, admin, oldKey), verifier.ReasonJWKKidMismatch)
	// Signed by the removed key but naming the remaining one: a forgery.
	forged := clerk.MustMint(clerktest.TokenOptions{User: &admin, SigningKey: oldKey, Lifetime: 10 * time.Minute,
		Header: clerktest.HeaderOptions{KeyID: newKid}})
	site.expectRefused("removed key under the remaining kid", forged, verifier.ReasonTokenInvalidSignature)
	// The remaining key keeps working.
	site.expectOK("remaining key, cached token", newTok, member)
	site.expectOK("remaining key, fresh token", faultMint(clerk, admin, nil), admin)
}

// 4. Unknown-kid flood: attackers sending tokens with random kids at full
// speed cannot make Caddy hammer Clerk (one fetch per UnknownKIDInterval at
// most), and neither they nor the fetch disturb valid traffic.
func TestFaultUnknownKIDFlood(t *testing.T) {
	// UnknownKIDInterval is 4 s instead of the default 30 s, so that the
	// flood outlasts one interval in seconds; the refresh stays at 1 h. (The
	// default itself is the verifier's unit tests' business, on a fake
	// clock.)
	const unknownGap = 4 * time.Second
	if cacheOptions.UnknownKIDInterval != 0 {
		t.Fatalf("cacheOptions.UnknownKIDInterval is %v: the module should leave it to the verifier's default (30 s)",
			cacheOptions.UnknownKIDInterval)
	}
	setFaultCacheOptions(t, verifier.CacheOptions{UnknownKIDInterval: unknownGap})
	clerk := clerktest.NewT(t)
	admin, member := clerk.AdminUser(), clerk.MemberUser()
	valid := []string{faultMint(clerk, admin, nil), faultMint(clerk, member, nil)}
	users := []clerktest.User{admin, member}
	foreign := clerktest.GenerateKey()
	attackers := make([]string, 128) // distinct random kids, cycled
	for i := range attackers {
		attackers[i] = faultAttackerToken(clerk, admin, foreign)
	}

	hits := watchFaultHits(t, clerk, clerktest.FAPIJWKS)
	site, _ := startFaultCaddy(t, faultFAPILines(clerk))
	site.waitOK("warm-up", valid[0], 10*time.Second)
	first := hits.wait(t, "the start fetch", 1, 5*time.Second)[0]
	if n := clerk.Requests(clerktest.FAPIJWKS); n != 1 {
		t.Fatalf("%d JWKS requests to warm up, want 1", n)
	}
	// The start fetch set the rate limit's clock before the emulator saw
	// it. No unknown kid may fetch until one interval (4 s) after it; then
	// one may, and none again until two intervals (8 s; the 1 h refresh is
	// far). A flood ending an interval and 1 s (5 s) after the start fetch
	// therefore allows exactly 2 JWKS requests in all (on a machine too
	// busy to send an attacker request in that last second, the flood goes
	// on until the second fetch, at most to 1.5 intervals (6 s), still
	// short of two).
	floodEnd, want := first.hi.Add(unknownGap+time.Second), 2
	attack, good := newFaultTally(), newFaultTally()
	var next atomic.Int64
	enough := func() bool { return clerk.Requests(clerktest.FAPIJWKS) >= want }
	faultTrafficUntil(time.Until(floodEnd), time.Until(first.lo.Add(unknownGap*3/2)), enough, 5, func(w int) {
		if w == 0 { // valid traffic, interleaved
			i := int(next.Add(1)) % len(valid)
			r, err := site.get("/api", valid[i])
			good.add(r, err, func(r faultResp) string {
				if r.status != 200 || r.body != "ok "+users[i].ID {
					return fmt.Sprintf("%d %q", r.status, r.body)
				}
				return ""
			})
			return
		}
		r, err := site.get("/api", attackers[int(next.Add(1))%len(attackers)])
		attack.add(r, err, func(r faultResp) string {
			if r.status != 401 || r.body != "401 jwk-kid-mismatch" {
				return fmt.Sprintf("%d %q", r.status, r.body)
			}
			return ""
		})
	})
	floodEnd = time.Now()
	total := clerk.Requests(clerktest.FAPIJWKS)
	all := hits.all()
	t.Logf("flood until +%v after the start fetch: attackers %s; valid %s; JWKS requests at %s",
		floodEnd.Sub(first.hi).Round(time.Millisecond), attack, good, describeFaultHits(all))
	if !good.only(200) {
		t.Fatalf("valid traffic during the flood: %s", good)
	}
	if !attack.only(401) || attack.n < 100 {
		t.Fatalf("attackers: %s", attack)
	}
	if total > want {
		t.Fatalf("%d JWKS requests during the flood (at %s), want at most %d", total, describeFaultHits(all), want)
	}
	if total < want {
		t.Fatalf("%d JWKS requests (at %s), want exactly %d: once UnknownKIDInterval is over, an unknown kid may fetch",
			total, describeFaultHits(all), want)
	}
	if len(all) == 2 && maxGap(all[0], all[1]) < unknownGap-250*time.Millisecond {
		t.Fatalf("the unknown-kid fetch came %v after the start fetch, want at least %v", maxGap(all[0], all[1]), unknownGap)
	}
}

// faultBAPILines is a clerk block whose keys come from the emulator's
// Backend API (secret_key); the issuer is still its Frontend API.
func faultBAPILines(clerk *clerktest.Server) string {
	return faultFAPILines(clerk, "secret_key "+clerk.SecretKey(), "api_url "+clerk.URL())
}

// checkFaultRateLimitSpacing asserts that no Backend API JWKS request of a
// 429 storm (Retry-After: 1) came less than 1 s after the previous one,
// and that there were at most one a second (+2).
func checkFaultRateLimitSpacing(t *testing.T, hits []faultHit, storm time.Duration) {
	t.Helper()
	const retryAfter = time.Second
	for i := 1; i < len(hits); i++ {
		if gap := maxGap(hits[i-1], hits[i]); gap < retryAfter {
			t.Errorf("Backend API JWKS request %d came %v after a 429 with Retry-After: 1 (requests at %s)",
				i+1, gap.Round(time.Millisecond), describeFaultHits(hits))
			break
		}
	}
	if limit := int(storm/retryAfter) + 2; len(hits) > limit {
		t.Errorf("%d Backend API JWKS requests in a %v storm of 429s, want at most %d (requests at %s)",
			len(hits), storm.Round(time.Millisecond), limit, describeFaultHits(hits))
	}
}

// 5. 429 storms from the Backend API (keys from secret_key): Retry-After is
// honoured across every retry, no retry storm, and keys flow again once
// the 429s stop. The cache options are the defaults in "cold".
func TestFaultBackendAPIRateLimit(t *testing.T) {
	const storm = 4 * time.Second

	t.Run("cold", func(t *testing.T) {
		setFaultCacheOptions(t, verifier.CacheOptions{})
		clerk := clerktest.NewT(t)
		admin := clerk.AdminUser()
		tok := faultMint(clerk, admin, nil)
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.RateLimit(time.Second))
		hits := watchFaultHits(t, clerk, clerktest.BAPIJWKS)
		start := time.Now()
		site, _ := startFaultCaddy(t, faultBAPILines(clerk))
		tl := newFaultTally()
		faultTraffic(storm, 2, func(int) {
			r, err := site.get("/api", tok)
			tl.add(r, err, func(r faultResp) string {
				if r.status != 503 || r.body != "503 jwk-remote-failed-to-load" || r.header.Get("Retry-After") == "" {
					return fmt.Sprintf("%d %q", r.status, r.body)
				}
				return ""
			})
		})
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		stormEnd := time.Now()
		during := upTo(hits.all(), stormEnd)
		t.Logf("storm of %v: %s; Backend API JWKS requests at %s", stormEnd.Sub(start).Round(time.Millisecond), tl, describeFaultHits(during))
		if !tl.only(503) {
			t.Errorf("requests during the storm: %s", tl)
		}
		if d := site.waitOK("once the 429s stopped", tok, 15*time.Second); d > 5*time.Second {
			t.Errorf("keys loaded %v after the 429s stopped", d)
		}
		checkFaultRateLimitSpacing(t, during, stormEnd.Sub(start))
	})

	t.Run("warm", func(t *testing.T) {
		// A short refresh, so refreshes run into the storm, and a short
		// backoff: a backoff shorter than Clerk's Retry-After must not
		// shorten it.
		setFaultCacheOptions(t, verifier.CacheOptions{RefreshInterval: 500 * time.Millisecond, MinBackoff: 100 * time.Millisecond})
		clerk := clerktest.NewT(t)
		admin := clerk.AdminUser()
		tok := faultMint(clerk, admin, nil)
		newKey := clerktest.GenerateKey()
		hits := watchFaultHits(t, clerk, clerktest.BAPIJWKS)
		site, _ := startFaultCaddy(t, faultBAPILines(clerk))
		site.waitOK("warm-up", tok, 10*time.Second)

		clerk.SetFault(clerktest.BAPIJWKS, clerktest.RateLimit(time.Second))
		faulted := clerk.Requests(clerktest.BAPIJWKS)
		start := time.Now()
		tl := newFaultTally()
		faultTraffic(storm, 2, func(int) {
			r, err := site.get("/api", tok)
			tl.add(r, err, func(r faultResp) string {
				if r.status != 200 {
					return fmt.Sprintf("%d %q", r.status, r.body)
				}
				return ""
			})
		})
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		stormEnd := time.Now()
		during := upTo(hits.after(faulted), stormEnd)
		t.Logf("storm of %v: valid tokens %s; Backend API JWKS requests at %s",
			stormEnd.Sub(start).Round(time.Millisecond), tl, describeFaultHits(during))
		if !tl.only(200) {
			t.Errorf("valid tokens during the storm: %s", tl)
		}
		// A fetch here lasts 2 s (three attempts 1 s apart): a request
		// waiting on it would take that long.
		if d := tl.maxNet(site); d > time.Second {
			t.Errorf("a valid request waited %v during the storm, stalls excluded", d)
		}
		// Keys flow again: a key rotated now is picked up by the refreshes.
		clerk.RotateKeyTo(newKey)
		site.waitOK("a new key once the 429s stopped", faultMint(clerk, admin, nil), 15*time.Second)
		checkFaultRateLimitSpacing(t, during, stormEnd.Sub(start))
	})
}

// Clerk answering garbage after warm-up never replaces the good key set.
func TestFaultGarbageJWKSKeepsKeys(t *testing.T) {
	setFaultCacheOptions(t, verifier.CacheOptions{RefreshInterval: 100 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	clerk := clerktest.NewT(t)
	admin := clerk.AdminUser()
	kid := clerk.CurrentKeyID()
	pub := clerk.PrivateKey(kid).PublicKey
	jwk := func(kid, use string, pub *rsa.PublicKey) string {
		return fmt.Sprintf(`{"use":%q,"kty":"RSA","kid":%q,"alg":"RS256","n":%q,"e":%q}`, use, kid,
			base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()))
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	foreign := clerktest.GenerateKey()
	garbage := []struct{ name, body string }{
		{"truncated JSON", `{"keys":[{"use":"sig","kty":"RSA",`},
		{"HTML error page", "<html><body><h1>502 Bad Gateway</h1></body></html>"},
		{"JSON null", "null"},
		{"a bare array of keys", "[" + jwk(kid, "sig", &pub) + "]"},
		{"keys not an array", `{"keys":"nope"}`},
		{"no keys", `{"keys":[]}`},
		{"only a symmetric key", `{"keys":[{"kty":"oct","kid":"ins_x","k":"AAAA"}]}`},
		{"only an RSA-1024 key", `{"keys":[` + jwk("ins_small", "sig", &small.PublicKey) + `]}`},
		{"our kid, for encryption", `{"keys":[` + jwk(kid, "enc", &pub) + `]}`},
		{"larger than 1 MiB", `{"keys":[` + jwk("ins_foreign", "sig", &foreign.PublicKey) + `],"pad":"` + strings.Repeat("A", 1<<20) + `"}`},
	}

	site, _ := startFaultCaddy(t, faultFAPILines(clerk, "token_cache off"))
	site.waitOK("warm-up", faultMint(clerk, admin, nil), 10*time.Second)
	for _, g := range garbage {
		clerk.SetRawJWKS([]byte(g.body))
		n := clerk.Requests(clerktest.FAPIJWKS)
		// Fetches are serialised: once the third request after the switch
		// arrived, two fetches of the garbage have been handled.
		deadline := time.Now().Add(10 * time.Second)
		for clerk.Requests(clerktest.FAPIJWKS) < n+3 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no refreshes", g.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		site.expectOK(g.name+": fresh token of the cached key", faultMint(clerk, admin, nil), admin)
	}
	// The real set again, with a new key: refreshes succeed, tokens pass.
	clerk.SetRawJWKS(nil)
	clerk.RotateKey()
	site.waitOK("a new key after the garbage", faultMint(clerk, admin, nil), 10*time.Second)
	site.expectOK("the old key after the garbage", faultMint(clerk, admin, clerk.PrivateKey(kid)), admin)
}
