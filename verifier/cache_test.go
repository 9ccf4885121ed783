package verifier

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCacheConstructionNeverBlocks(t *testing.T) {
	src := &fakeSource{hang: true}
	start := time.Now()
	kc := NewKeyCache(src, CacheOptions{FetchTimeout: time.Hour})
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("NewKeyCache took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := kc.Key(ctx, "ins_x")
	if !IsKeysUnavailable(err) || ReasonOf(err) != ReasonJWKRemoteFailedToLoad {
		t.Fatalf("want keys-unavailable, got %v", err)
	}
	done := make(chan struct{})
	go func() { kc.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close did not stop a hanging fetch")
	}
}

func TestCacheRotationOnFirstUnknownKID(t *testing.T) {
	keys := testKeys(t)
	clock := newFakeClock()
	src := &fakeSource{doc: jwksDoc(t, keys[0])}
	kc := NewKeyCache(src, CacheOptions{Now: clock.Now})
	defer kc.Close()
	v, _ := New(Config{Keys: kc, Issuer: testIssuer})

	if _, err := v.Verify(context.Background(), mint(t, keys[0], claimsAt(time.Now()))); err != nil {
		t.Fatal(err)
	}
	before := src.count.Load()

	// Clerk rotates: the new key appears in the JWKS and tokens use it.
	src.set(jwksDoc(t, keys[0], keys[1]), nil)
	clock.Add(31 * time.Second)
	if _, err := v.Verify(context.Background(), mint(t, keys[1], claimsAt(time.Now()))); err != nil {
		t.Fatalf("first token of the new key: %v", err)
	}
	if got := src.count.Load() - before; got != 1 {
		t.Fatalf("rotation took %d fetches, want 1", got)
	}

	// A key removed from the set stops working after the next refresh.
	src.set(jwksDoc(t, keys[1]), nil)
	clock.Add(31 * time.Second)
	_, err := v.Verify(context.Background(), mint(t, keys[2], claimsAt(time.Now()))) // unknown kid → refresh
	if KindOf(err) != KindUnknownKID {
		t.Fatalf("want unknown kid, got %v", err)
	}
	_, err = v.Verify(context.Background(), mint(t, keys[0], claimsAt(time.Now())))
	if KindOf(err) != KindUnknownKID || ReasonOf(err) != ReasonJWKKidMismatch {
		t.Fatalf("removed key: want jwk-kid-mismatch, got %v", err)
	}
}

func TestCacheUnknownKIDFloodIsRateLimited(t *testing.T) {
	keys := testKeys(t)
	clock := newFakeClock()
	src := &fakeSource{doc: jwksDoc(t, keys[0])}
	kc := NewKeyCache(src, CacheOptions{Now: clock.Now})
	defer kc.Close()
	waitFor(t, "first load", kc.Loaded)
	clock.Add(31 * time.Second)

	flood := func() {
		var wg sync.WaitGroup
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := kc.Key(context.Background(), fmt.Sprintf("ins_attacker_%d", i))
				if KindOf(err) != KindUnknownKID {
					t.Errorf("want unknown kid, got %v", err)
				}
			}(i)
		}
		wg.Wait()
	}
	for window := 0; window < 3; window++ {
		before := src.count.Load()
		flood()
		if got := src.count.Load() - before; got > 1 {
			t.Fatalf("window %d: %d fetches for 1000 unknown kids, want at most 1", window, got)
		}
		clock.Add(30 * time.Second)
	}
	// The known key still resolves without a fetch.
	before := src.count.Load()
	if _, err := kc.Key(context.Background(), keys[0].kid); err != nil {
		t.Fatal(err)
	}
	if src.count.Load() != before {
		t.Fatal("a known kid caused a fetch")
	}
}

func TestCacheOutageAfterWarmUpKeepsVerifying(t *testing.T) {
	keys := testKeys(t)
	src := &fakeSource{doc: jwksDoc(t, keys[0])}
	var mu sync.Mutex
	var results []FetchResult
	kc := NewKeyCache(src, CacheOptions{
		RefreshInterval: 5 * time.Millisecond, MinBackoff: 2 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnFetch: func(r FetchResult) { mu.Lock(); results = append(results, r); mu.Unlock() },
	})
	defer kc.Close()
	v, _ := New(Config{Keys: kc, Issuer: testIssuer})
	waitFor(t, "first load", kc.Loaded)

	src.set(nil, errDown)
	start := src.count.Load()
	waitFor(t, "failed refreshes", func() bool { return src.count.Load() > start+5 })
	for i := 0; i < 20; i++ {
		if _, err := v.Verify(context.Background(), mint(t, keys[0], claimsAt(time.Now()))); err != nil {
			t.Fatalf("during the outage: %v", err)
		}
	}
	// Hanging Clerk: still served from the cache, and no request waits.
	src.mu.Lock()
	src.hang = true
	src.mu.Unlock()
	t0 := time.Now()
	if _, err := v.Verify(context.Background(), mint(t, keys[0], claimsAt(time.Now()))); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 100*time.Millisecond {
		t.Fatalf("a cached-key verification waited %v on a hanging Clerk", d)
	}
	mu.Lock()
	defer mu.Unlock()
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no failed refresh was reported")
	}
}

func TestCacheColdStartRecovers(t *testing.T) {
	keys := testKeys(t)
	clock := newFakeClock()
	src := &fakeSource{err: errDown}
	kc := NewKeyCache(src, CacheOptions{Now: clock.Now, MinBackoff: time.Hour})
	defer kc.Close()
	waitFor(t, "first attempt", func() bool { return src.count.Load() >= 1 })

	// Requests while cold: 503-style error, and at most one fetch a second.
	for i := 0; i < 50; i++ {
		if _, err := kc.Key(context.Background(), keys[0].kid); !IsKeysUnavailable(err) {
			t.Fatalf("want keys unavailable, got %v", err)
		}
	}
	if n := src.count.Load(); n > 2 {
		t.Fatalf("%d fetches within one second while cold", n)
	}
	// Clerk comes back: the next request a second later loads the keys.
	src.set(jwksDoc(t, keys[0]), nil)
	clock.Add(1100 * time.Millisecond)
	if _, err := kc.Key(context.Background(), keys[0].kid); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestCacheKeepsGoodKeysOverUnusableSet(t *testing.T) {
	keys := testKeys(t)
	src := &fakeSource{doc: jwksDoc(t, keys[0])}
	kc := NewKeyCache(src, CacheOptions{RefreshInterval: 5 * time.Millisecond})
	defer kc.Close()
	waitFor(t, "first load", kc.Loaded)
	src.set([]byte(`{"keys":[{"kty":"oct","kid":"x","k":"AAAA"}]}`), nil)
	n := src.count.Load()
	waitFor(t, "refreshes", func() bool { return src.count.Load() > n+2 })
	if _, err := kc.Key(context.Background(), keys[0].kid); err != nil {
		t.Fatalf("good keys were replaced: %v", err)
	}
}

func TestCacheHonoursShorterMaxAge(t *testing.T) {
	keys := testKeys(t)
	src := &fakeSource{doc: jwksDoc(t, keys[0]), maxAge: 10 * time.Millisecond}
	kc := NewKeyCache(src, CacheOptions{MinBackoff: 5 * time.Millisecond})
	defer kc.Close()
	waitFor(t, "refetch after max-age", func() bool { return src.count.Load() >= 3 })
}

func TestCacheBackoffBounds(t *testing.T) {
	kc := &KeyCache{opt: CacheOptions{MinBackoff: time.Second, MaxBackoff: 30 * time.Second}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 50: 30 * time.Second} {
		for i := 0; i < 100; i++ {
			d := kc.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestCacheCloseLeavesNoGoroutines(t *testing.T) {
	keys := testKeys(t)
	base := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		src := &fakeSource{doc: jwksDoc(t, keys[0])}
		if i%2 == 0 {
			src.hang = true
		}
		kc := NewKeyCache(src, CacheOptions{RefreshInterval: time.Millisecond})
		if i%2 == 1 {
			waitFor(t, "load", kc.Loaded)
		}
		kc.Close()
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}
