package verifier_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// TestAgainstEmulator runs the verifier over real HTTP against the Clerk
// emulator: Clerk-shaped v1 and v2 tokens, rotation and an outage.
func TestAgainstEmulator(t *testing.T) {
	clerk := clerktest.NewT(t)
	inst, err := verifier.ParsePublishableKey(clerk.PublishableKey())
	if err != nil {
		t.Fatal(err)
	}
	kc := verifier.NewKeyCache(verifier.URLSource(clerk.JWKSURL(), nil), verifier.CacheOptions{UnknownKIDInterval: time.Millisecond})
	defer kc.Close()
	v, err := verifier.New(verifier.Config{Keys: kc, Issuer: clerk.Issuer()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin := clerk.AdminUser()
	for _, version := range []int{1, 2} {
		c, err := v.Verify(ctx, clerk.MustMint(clerktest.TokenOptions{User: &admin, Version: version}))
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		if c.Subject != admin.ID || !c.Has(verifier.Check{Role: "admin", Permission: "org:invoices:manage"}) {
			t.Fatalf("v%d claims: %+v", version, c)
		}
	}
	if inst.CookieSuffix == "" || clerk.Requests(clerktest.FAPIJWKS) != 1 {
		t.Fatalf("fetches: %d", clerk.Requests(clerktest.FAPIJWKS))
	}

	// Rotation: the first token signed by the new key passes.
	clerk.RotateKey()
	if _, err := v.Verify(ctx, clerk.MustMint(clerktest.TokenOptions{User: &admin})); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	// Outage: cached keys keep working, without touching Clerk.
	clerk.Down()
	before := clerk.Requests(clerktest.FAPIJWKS)
	for i := 0; i < 10; i++ {
		if _, err := v.Verify(ctx, clerk.MustMint(clerktest.TokenOptions{User: &admin})); err != nil {
			t.Fatalf("during outage: %v", err)
		}
	}
	if clerk.Requests(clerktest.FAPIJWKS) != before {
		t.Fatal("valid tokens caused JWKS fetches")
	}
	// Old key dropped from the set: refused once the set is refetched.
	clerk.Up()
	old := clerk.KeyIDs()[0]
	clerk.DropOldKeys()
	tok := clerk.MustMint(clerktest.TokenOptions{User: &admin, SigningKey: clerk.PrivateKey(old)})
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("before the next refresh the cached key still verifies: %v", err)
	}
	time.Sleep(2 * time.Millisecond)
	unknown := clerk.MustMint(clerktest.TokenOptions{User: &admin, Header: clerktest.HeaderOptions{KeyID: "ins_unknown"}})
	if _, err := v.Verify(ctx, unknown); verifier.KindOf(err) != verifier.KindUnknownKID {
		t.Fatalf("unknown kid: %v", err)
	}
	if _, err := v.Verify(ctx, tok); verifier.ReasonOf(err) != verifier.ReasonJWKKidMismatch {
		t.Fatalf("removed key: %v", err)
	}
}
