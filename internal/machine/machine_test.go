package machine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clerk is a fake Backend: a set of valid tokens, an outage switch, a
// refused key, and a call counter.
type clerk struct {
	mu       sync.Mutex
	valid    map[string]time.Time // token → expiry (zero: none)
	down     bool
	badKey   bool
	calls    atomic.Int64
	block    chan struct{} // when set, calls wait for it
	lastKind string
}

func (c *clerk) verify(_ context.Context, kind, token string) (string, time.Time, error) {
	c.calls.Add(1)
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastKind = kind
	switch {
	case c.badKey:
		return "", time.Time{}, fmt.Errorf("%w: 401", ErrKeyInvalid)
	case c.down:
		return "", time.Time{}, fmt.Errorf("%w: 503", ErrUnavailable)
	}
	exp, ok := c.valid[token]
	if !ok {
		return "", time.Time{}, fmt.Errorf("%w: 404", ErrInvalid)
	}
	return "id-of-" + token, exp, nil
}

func (c *clerk) set(f func()) { c.mu.Lock(); f(); c.mu.Unlock() }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(cfg Config) (*Verifier[string], *clerk, *clock) {
	c := &clerk{valid: map[string]time.Time{"ak_good": {}}}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	cfg.Now = clk.now
	return New(c.verify, cfg), c, clk
}

func defaults() Config {
	return Config{TTL: DefaultTTL, NegativeTTL: DefaultNegativeTTL, StaleIfError: DefaultStaleIfError, Rate: DefaultRate}
}

func expect(t *testing.T, v *Verifier[string], token string, want Result, wantErr error) {
	t.Helper()
	got, res, err := v.Verify(context.Background(), "api_key", token, time.Time{})
	if res != want || !errors.Is(err, wantErr) && !(err == nil && wantErr == nil) {
		t.Fatalf("%s: %q %v %v, want %v %v", token, got, res, err, want, wantErr)
	}
	if err == nil && got != "id-of-"+token {
		t.Fatalf("%s: value %q", token, got)
	}
}

func TestCacheHitAndTTL(t *testing.T) {
	v, c, clk := setup(defaults())
	expect(t, v, "ak_good", ResultOK, nil)
	expect(t, v, "ak_good", ResultCached, nil)
	clk.add(29 * time.Second)
	expect(t, v, "ak_good", ResultCached, nil)
	if c.calls.Load() != 1 {
		t.Fatalf("%d calls within the TTL", c.calls.Load())
	}
	clk.add(2 * time.Second)
	expect(t, v, "ak_good", ResultOK, nil)
	if c.calls.Load() != 2 {
		t.Fatalf("%d calls after the TTL", c.calls.Load())
	}
}

// TestRevocationWithinTTL: a revoked token passes until the TTL ends, then
// is refused (and remembered as refused).
func TestRevocationWithinTTL(t *testing.T) {
	v, c, clk := setup(defaults())
	expect(t, v, "ak_good", ResultOK, nil)
	c.set(func() { delete(c.valid, "ak_good") })
	clk.add(10 * time.Second)
	expect(t, v, "ak_good", ResultCached, nil)
	clk.add(21 * time.Second)
	expect(t, v, "ak_good", ResultInvalid, ErrInvalid)
	expect(t, v, "ak_good", ResultInvalid, ErrInvalid)
	if c.calls.Load() != 2 {
		t.Fatalf("%d calls", c.calls.Load())
	}
	// Refused is not stale-good: an outage now does not bring it back.
	c.set(func() { c.down = true })
	clk.add(31 * time.Second)
	expect(t, v, "ak_good", ResultUnavailable, ErrUnavailable)
}

func TestNegativeCache(t *testing.T) {
	v, c, clk := setup(defaults())
	for i := 0; i < 5; i++ {
		expect(t, v, "ak_unknown", ResultInvalid, ErrInvalid)
	}
	if c.calls.Load() != 1 {
		t.Fatalf("%d calls for one unknown token", c.calls.Load())
	}
	clk.add(31 * time.Second)
	c.set(func() { c.valid["ak_unknown"] = time.Time{} }) // created since
	expect(t, v, "ak_unknown", ResultOK, nil)
}

func TestExpiryCapsTheCache(t *testing.T) {
	v, c, clk := setup(defaults())
	c.set(func() { c.valid["ak_soon"] = clk.now().Add(5 * time.Second) })
	expect(t, v, "ak_soon", ResultOK, nil)
	clk.add(6 * time.Second)
	c.set(func() { c.down = true })
	// Past its own expiry it is neither fresh nor stale, whatever Clerk says.
	expect(t, v, "ak_soon", ResultUnavailable, ErrUnavailable)
}

func TestTTLZeroAsksEveryTime(t *testing.T) {
	cfg := defaults()
	cfg.TTL = 0
	v, c, _ := setup(cfg)
	for i := 0; i < 3; i++ {
		expect(t, v, "ak_good", ResultOK, nil)
	}
	if c.calls.Load() != 3 {
		t.Fatalf("%d calls", c.calls.Load())
	}
	c.set(func() { c.down = true })
	expect(t, v, "ak_good", ResultCached, nil) // still known good during an outage
}

// TestOutage: errors are never cached; a token verified within
// StaleIfError keeps passing; one never seen is unavailable (503), never
// invalid (401).
func TestOutage(t *testing.T) {
	v, c, clk := setup(defaults())
	expect(t, v, "ak_good", ResultOK, nil)
	c.set(func() { c.down = true })
	clk.add(time.Minute)
	expect(t, v, "ak_good", ResultCached, nil)
	expect(t, v, "ak_never_seen", ResultUnavailable, ErrUnavailable)
	expect(t, v, "ak_never_seen", ResultUnavailable, ErrUnavailable)
	if n := c.calls.Load(); n != 4 {
		t.Fatalf("%d calls: an outage answer was cached", n)
	}
	clk.add(4*time.Minute + time.Second)
	expect(t, v, "ak_good", ResultUnavailable, ErrUnavailable)
	c.set(func() { c.down = false })
	expect(t, v, "ak_good", ResultOK, nil)
}

func TestKeyRefused(t *testing.T) {
	v, c, clk := setup(defaults())
	expect(t, v, "ak_good", ResultOK, nil)
	c.set(func() { c.badKey = true })
	clk.add(31 * time.Second)
	expect(t, v, "ak_good", ResultCached, nil) // our key's fault, not the client's
	expect(t, v, "ak_other", ResultUnavailable, ErrKeyInvalid)
	if !v.LogKeyRefused() || v.LogKeyRefused() {
		t.Fatal("the refused key is not logged exactly once")
	}
	clk.add(61 * time.Second)
	if !v.LogKeyRefused() {
		t.Fatal("not logged again after a minute")
	}
}

// TestSingleflight: concurrent requests with one unseen token make one
// Backend API call.
func TestSingleflight(t *testing.T) {
	v, c, _ := setup(defaults())
	c.block = make(chan struct{})
	var wg sync.WaitGroup
	results := make(chan Result, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, res, _ := v.Verify(context.Background(), "api_key", "ak_good", time.Time{})
			results <- res
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(c.block)
	wg.Wait()
	close(results)
	if n := c.calls.Load(); n != 1 {
		t.Fatalf("%d calls for one token", n)
	}
	for r := range results {
		if r != ResultOK && r != ResultCached {
			t.Fatalf("result %v", r)
		}
	}
}

// TestRateLimit: a spray of random tokens costs at most the burst plus the
// rate per second in Backend API calls; past it the answer is rate_limited
// (503), and a cached token is served whatever the limiter says.
func TestRateLimit(t *testing.T) {
	cfg := defaults()
	cfg.Rate, cfg.Burst = 20, 40
	v, c, _ := setup(cfg)
	expect(t, v, "ak_good", ResultOK, nil)
	limited := 0
	for i := 0; i < 500; i++ {
		_, res, err := v.Verify(context.Background(), "api_key", fmt.Sprintf("ak_spray_%d", i), time.Time{})
		if res == ResultRateLimited {
			if !errors.Is(err, ErrRateLimited) {
				t.Fatal(err)
			}
			limited++
		}
	}
	// The limiter runs on the real clock: allow what refills while the loop runs.
	if calls := c.calls.Load(); calls > 41+5 || limited < 500-45 {
		t.Fatalf("%d Backend API calls, %d limited", calls, limited)
	}
	expect(t, v, "ak_good", ResultCached, nil)
}

func TestKindsAreSeparate(t *testing.T) {
	v, c, _ := setup(defaults())
	if _, res, _ := v.Verify(context.Background(), "api_key", "ak_good", time.Time{}); res != ResultOK {
		t.Fatal(res)
	}
	if _, res, _ := v.Verify(context.Background(), "m2m_token", "ak_good", time.Time{}); res != ResultOK || c.lastKind != "m2m_token" {
		t.Fatalf("%v %q: one kind's answer served for another", res, c.lastKind)
	}
}

func TestBounded(t *testing.T) {
	cfg := defaults()
	cfg.Size, cfg.Rate = 64, 0
	v, c, _ := setup(cfg)
	for i := 0; i < 1000; i++ {
		tok := fmt.Sprintf("ak_%d", i)
		c.set(func() { c.valid[tok] = time.Time{} })
		v.Verify(context.Background(), "api_key", tok, time.Time{})
		v.Verify(context.Background(), "api_key", "ak_bad_"+tok, time.Time{})
	}
	if good, bad := v.Len(); good > 64 || bad > 64 {
		t.Fatalf("%d good, %d bad entries, bound 64", good, bad)
	}
}
