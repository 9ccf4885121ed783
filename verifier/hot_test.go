package verifier

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSharedClaims: a cache hit without dst returns the claims the cache
// shares for the token, the same every time and equal to a copy written
// into dst, and a token verified afresh after its entry was dropped gets
// claims of its new entry.
func TestSharedClaims(t *testing.T) {
	clock := newFakeClock()
	tc := NewTokenCache(64)
	v, k := staticVerifier(t, func(c *Config) { c.Now, c.TokenCache = clock.Now, tc })
	ctx := context.Background()
	tok := mint(t, k, claimsAt(clock.Now()))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	shared, err := v.Verify(ctx, tok)
	if again, _ := v.Verify(ctx, tok); err != nil || again != shared || shared.Subject != "user_123" {
		t.Fatalf("two hits: %v, the same Claims: %v", err, again == shared)
	}
	var own Claims
	if mine, _ := v.VerifyTo(ctx, tok, &own); mine != &own || !reflect.DeepEqual(own, *shared) {
		t.Fatal("the copy in dst differs from the shared claims")
	}
	// Hit.Claims(nil), the cookie path's, is the same.
	if hit, ok := v.Cached(ctx, tok, clock.Now()); !ok || hit.Claims(nil) != shared {
		t.Fatal("Cached's claims are not the shared ones")
	}
	// A new entry for the token (the old one dropped) has claims of its own.
	e, _ := tc.entries.Get(tc.id(tok))
	tc.drop(tc.id(tok), e)
	if fresh, err := v.Verify(ctx, tok); err != nil || fresh == shared {
		t.Fatalf("re-verified: %v, the dropped entry's claims: %v", err, fresh == shared)
	}
	if hit, _ := v.Verify(ctx, tok); hit == shared || hit.Subject != "user_123" {
		t.Fatal("the new entry answered with the dropped entry's claims")
	}
}

// TestSharedClaimsSlots: twice as many entries as the table has slots
// (so slots are shared), read in random order, each answer with its own
// session.
func TestSharedClaimsSlots(t *testing.T) {
	entries := make([]*cachedToken, 2*hotSlots)
	for i := range entries {
		sub, sid := fmt.Sprintf("user_%d", i), fmt.Sprintf("sess_%d", i)
		entries[i] = &cachedToken{text: sub + sid, sub: uint16(len(sub)), sid: uint16(len(sid)), expMs: 1, shared: &Shared{}}
	}
	for round := range 3 {
		for _, i := range rand.Perm(len(entries)) {
			if c := entries[i].sharedClaims(); c.Subject != fmt.Sprintf("user_%d", i) || c.SessionID != fmt.Sprintf("sess_%d", i) {
				t.Fatalf("entry %d, round %d: claims of %q %q", i, round, c.Subject, c.SessionID)
			}
		}
	}
}
