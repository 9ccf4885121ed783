package authn

import (
	"context"
	"testing"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// TestCookieHitDecodesNothing: a session cookie the token cache holds is
// decided on from the cache entry (its iat for the __client_uat check, the
// claims the cache shares for it), without decoding the token again: no
// allocation at all, where Peek alone would allocate.
func TestCookieHitDecodesNothing(t *testing.T) {
	e := newEnv(t, true, true, func(v *verifier.Config, _ *Config) { v.TokenCache = verifier.NewTokenCache(16) })
	valid := e.token(clerktest.TokenOptions{})
	r := req("fetch", "/api", "__session="+valid, uat(now))
	ctx := context.Background()
	if st := e.a.state(ctx, Request{HTTP: r}); st.Status != SignedIn {
		t.Fatalf("first request: %v %q", st.Status, st.Reason)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if st := e.a.state(ctx, Request{HTTP: r}); st.Status != SignedIn {
			t.Fatalf("cached: %v %q", st.Status, st.Reason)
		}
	})
	peek := testing.AllocsPerRun(50, func() { _, _ = verifier.Peek(valid) })
	if allocs != 0 || peek == 0 {
		t.Fatalf("a cached cookie costs %.0f allocations (Peek alone %.0f)", allocs, peek)
	}
}
