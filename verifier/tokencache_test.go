package verifier

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestTokenCache(t *testing.T) {
	keys := testKeys(t)
	clock := newFakeClock()
	now := clock.Now()
	src := &fakeSource{doc: jwksDoc(t, keys[0])}
	kc := NewKeyCache(src, CacheOptions{Now: clock.Now})
	defer kc.Close()
	tc := NewTokenCache(64)
	v, _ := New(Config{Keys: kc, Issuer: testIssuer, TokenCache: tc, Now: clock.Now})
	ctx := context.Background()
	tok := mint(t, keys[0], claimsAt(now))

	c1, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := v.Verify(ctx, tok)
	if err != nil || !sameEntry(c1, c2) || tc.Len() != 1 {
		t.Fatalf("second verification was not a cache hit: %v %p %p", err, c1, c2)
	}

	// Invalid tokens are never cached; a one-byte change is a different token.
	bad := tok[:len(tok)-2] + "AA"
	if bad == tok { // one signature in 4096 ends in AA
		bad = tok[:len(tok)-2] + "BA"
	}
	for i := 0; i < 2; i++ {
		if _, err := v.Verify(ctx, bad); KindOf(err) != KindBadSignature {
			t.Fatalf("tampered: %v", err)
		}
	}
	if tc.Len() != 1 {
		t.Fatalf("cache holds %d entries", tc.Len())
	}

	// A refresh that changes nothing keeps the entry.
	clock.Add(31 * time.Second)
	if _, err := kc.Key(ctx, "ins_unknown"); KindOf(err) != KindUnknownKID {
		t.Fatal(err)
	}
	if c3, _ := v.Verify(ctx, tok); !sameEntry(c1, c3) {
		t.Fatal("an unchanged key set invalidated the cached token")
	}

	// Every hit re-checks exp: past exp + skew the token is expired.
	clock.Add(35 * time.Second) // exp is iat+60, skew 5 s: now iat+66
	if _, err := v.Verify(ctx, tok); KindOf(err) != KindExpired {
		t.Fatalf("want expired, got %v", err)
	}

	// A key dropped from the set drops its cached tokens.
	tok2 := mint(t, keys[0], claimsAt(clock.Now()))
	if _, err := v.Verify(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	src.set(jwksDoc(t, keys[1]), nil)
	clock.Add(31 * time.Second)
	if _, err := kc.Key(ctx, "ins_unknown2"); KindOf(err) != KindUnknownKID {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok2); KindOf(err) != KindUnknownKID {
		t.Fatalf("token of a removed key: %v", err)
	}
}

// TestTokenCacheTailConfirms: an entry found under a token's hash answers
// only if the token's last bytes are the entry's too (a 64-bit hash alone
// could collide by chance).
func TestTokenCacheTailConfirms(t *testing.T) {
	k := testKeys(t)[0]
	keys, _ := StaticPEM(pemOf(t, k))
	tc := NewTokenCache(64)
	v, _ := New(Config{Keys: keys, Issuer: testIssuer, TokenCache: tc})
	tok := mint(t, k, claimsAt(time.Now()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Cached(context.Background(), tok, time.Time{}); !ok {
		t.Fatal("not cached")
	}
	e, _ := tc.entries.Get(tc.id(tok))
	e.tail ^= 1 // as if another token had the same hash
	if _, ok := v.Cached(context.Background(), tok, time.Time{}); ok {
		t.Fatal("an entry with another token's tail answered")
	}
	if tail("ab") != 0x6162 || tail("0123456789") != tail("23456789") {
		t.Fatal("tail is not the last 8 bytes")
	}
}

// sameEntry reports whether two Claims came from one cache entry.
func sameEntry(a, b *Claims) bool { return a != nil && b != nil && a.custom == b.custom }

func TestTokenCacheKeyChangedUnderSameKID(t *testing.T) {
	keys := testKeys(t)
	clock := newFakeClock()
	src := &fakeSource{doc: jwksDoc(t, keys[0])}
	kc := NewKeyCache(src, CacheOptions{Now: clock.Now})
	defer kc.Close()
	v, _ := New(Config{Keys: kc, Issuer: testIssuer, TokenCache: NewTokenCache(64), Now: clock.Now})
	tok := mint(t, keys[0], claimsAt(clock.Now()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// Same kid, different key material.
	impostor := &testKey{kid: keys[0].kid, priv: keys[1].priv}
	src.set(jwksDoc(t, impostor), nil)
	clock.Add(31 * time.Second)
	_, _ = kc.Key(context.Background(), "ins_unknown")
	if _, err := v.Verify(context.Background(), tok); KindOf(err) != KindBadSignature {
		t.Fatalf("want a fresh verification to fail, got %v", err)
	}
}

func TestTokenCacheBoundAndConcurrency(t *testing.T) {
	k := testKeys(t)[0]
	keys, _ := StaticPEM(pemOf(t, k))
	tc := NewTokenCache(32)
	v, _ := New(Config{Keys: keys, Issuer: testIssuer, TokenCache: tc})
	var toks []string
	for i := 0; i < 200; i++ {
		cl := claimsAt(time.Now())
		cl["jti"] = fmt.Sprint(i)
		toks = append(toks, mint(t, k, cl))
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := range toks {
				if _, err := v.Verify(context.Background(), toks[(i+g*25)%len(toks)]); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if n := tc.Len(); n > 32 {
		t.Fatalf("cache holds %d entries, bound 32", n)
	}
}

// TestTokenCacheFootprint measures what one entry costs with a realistic v2
// session payload (an active organization, features, custom claims): the
// heap, not the process's resident memory (about three times the heap with
// Go's default GC target and the garbage of first verifications; the load
// harness reports that).
func TestTokenCacheFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~20 MB")
	}
	const n = 10000
	key := &Key{ID: "ins_x"}
	build := func(i int) *cachedToken {
		payload := fmt.Sprintf(`{"azp":"https://app.example.com","exp":%d,"fea":"o:invoices,o:reports","fva":[0,-1],"iat":1,"iss":"https://clerk.example.com","jti":"%020d","nbf":1,"o":{"fpm":"3,1","id":"org_2abcdefghijklmnopqrstuvwxyz","per":"read,manage","rol":"admin","slg":"acme"},"sid":"sess_2abcdefghijklmnopqrstuvwxyz","sub":"user_2abcdefghijklmnopqrstuvwxyz","v":2,"metadata":{"plan":"pro"}}`, time.Now().Add(time.Hour).Unix(), i)
		r, err := decodePayload([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		c := &Claims{Shared: &Shared{}, Expiry: time.Now().Add(time.Hour)}
		c.Subject, _ = optString(r.Sub, "sub")
		c.SessionID, _ = optString(r.Sid, "sid")
		if err := c.fillOwn(r); err != nil {
			t.Fatal(err)
		}
		e, err := c.seal(r) // as Verify does
		if err != nil {
			t.Fatal(err)
		}
		e.setKey(key, "ins_x")
		return e
	}
	var before, after runtimeMem
	before.read()
	tc := NewTokenCache(n)
	for i := 0; i < n; i++ {
		tc.store(fmt.Sprintf("token-%d", i), build(i))
	}
	after.read()
	per := (after.heap - before.heap) / n
	t.Logf("token cache: %d bytes per entry (%d entries, %.1f MiB)", per, tc.Len(), float64(after.heap-before.heap)/(1<<20))
	// About 300 bytes: the entry (96), its strings with Raw's custom claims
	// (160), the map slot and the eviction ring; the organization and the
	// rest of Shared are interned once.
	if tc.Len() > n || tc.Len() < n*95/100 || per > 384 {
		t.Fatalf("%d entries at %d bytes each", tc.Len(), per)
	}
}

// TestVerifyAtDecidesOnItsInstant: VerifyAt and Cached judge a token at
// the instant given, on a miss and on a hit, and never on the Verifier's
// own clock (pinned here where the token is valid).
func TestVerifyAtDecidesOnItsInstant(t *testing.T) {
	k := testKeys(t)[0]
	keys, _ := StaticPEM(pemOf(t, k))
	issued := time.Now().Truncate(time.Second)
	tok := mint(t, k, claimsAt(issued)) // valid from issued-10s to issued+60s
	late := issued.Add(60*time.Second + DefaultClockSkew)
	early := issued.Add(-10*time.Second - DefaultClockSkew - time.Second)
	for _, cached := range []bool{false, true} {
		cfg := Config{Keys: keys, Issuer: testIssuer, Now: func() time.Time { return issued }}
		if cached {
			cfg.TokenCache = NewTokenCache(64)
		}
		v, _ := New(cfg)
		if cached {
			if _, err := v.VerifyAt(context.Background(), tok, issued, nil); err != nil {
				t.Fatal(err)
			}
			if _, ok := v.Cached(context.Background(), tok, late); ok {
				t.Error("Cached answered after exp")
			}
		}
		if _, err := v.VerifyAt(context.Background(), tok, late, nil); KindOf(err) != KindExpired {
			t.Errorf("cached %v: at exp+skew: %v, want expired", cached, err)
		}
		if !cached {
			if _, err := v.VerifyAt(context.Background(), tok, early, nil); KindOf(err) != KindNotYetValid {
				t.Errorf("before nbf-skew: %v, want not yet valid", err)
			}
		}
		if _, err := v.VerifyAt(context.Background(), tok, late.Add(-time.Millisecond), nil); err != nil {
			t.Errorf("cached %v: just before exp+skew: %v", cached, err)
		}
		// A zero instant is the clock's, never the year 1.
		v, _ = New(Config{Keys: keys, Issuer: testIssuer, TokenCache: cfg.TokenCache, Now: func() time.Time { return late }})
		if _, err := v.VerifyAt(context.Background(), tok, time.Time{}, nil); KindOf(err) != KindExpired {
			t.Errorf("cached %v: zero instant, clock at exp+skew: %v, want expired", cached, err)
		}
		if _, ok := v.Cached(context.Background(), tok, time.Time{}); ok {
			t.Errorf("cached %v: Cached with a zero instant answered after exp", cached)
		}
	}
}
