package bapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// emulatorClient talks to the Clerk emulator, recording the waits it would
// have slept instead of sleeping.
func emulatorClient(t *testing.T, clerk *clerktest.Server, secret string, opts ...Option) (*Client, *[]time.Duration) {
	t.Helper()
	// No keep-alives: a dropped connection must be a fresh dial, not a
	// transport-level silent retry.
	opts = append([]Option{WithBaseURL(clerk.URL()), WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}})}, opts...)
	c, err := New(secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	c.jitter = func(ceiling time.Duration) time.Duration { return ceiling }
	return c, waits
}

func TestAgainstEmulator(t *testing.T) {
	clerk := clerktest.NewT(t)
	ctx := context.Background()

	t.Run("endpoints", func(t *testing.T) {
		c, _ := emulatorClient(t, clerk, clerk.SecretKey())
		body, err := c.JWKS(ctx)
		if err != nil || !strings.Contains(string(body), clerk.CurrentKeyID()) {
			t.Fatalf("jwks: %v %s", err, body)
		}
		admin := clerk.AdminUser()
		u, err := c.User(ctx, admin.ID)
		if err != nil || u.ID != admin.ID || u.PrimaryEmail() != admin.Email {
			t.Fatalf("user: %v %+v", err, u)
		}
		clerk.StoreHandshakePayload("nonce-1", []string{"__session=abc; Path=/", "__client_uat=1; Path=/"})
		d, err := c.HandshakePayload(ctx, "nonce-1")
		if err != nil || len(d) != 2 || d[0] != "__session=abc; Path=/" {
			t.Fatalf("handshake: %v %v", err, d)
		}
		if _, err := c.User(ctx, "user_missing"); !IsNotFound(err) {
			t.Fatalf("unknown user: %v", err)
		}
	})

	t.Run("wrong secret: clerk_key_invalid with trace id, secret not echoed", func(t *testing.T) {
		wrong := "sk_test_" + strings.Repeat("W", 40)
		c, _ := emulatorClient(t, clerk, wrong)
		_, err := c.JWKS(ctx)
		var e *Error
		if !errors.As(err, &e) || !IsKeyInvalid(err) || e.TraceID == "" || e.Status != 401 {
			t.Fatalf("%v", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), clerk.SecretKey()) {
			t.Fatal("a secret appears in the error")
		}
	})

	t.Run("429 honours Retry-After, then succeeds", func(t *testing.T) {
		clerk.ResetCounts()
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.FailTimes(1, clerktest.RateLimit(2*time.Second)))
		defer clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		c, waits := emulatorClient(t, clerk, clerk.SecretKey())
		if _, err := c.JWKS(ctx); err != nil {
			t.Fatal(err)
		}
		if clerk.Requests(clerktest.BAPIJWKS) != 2 || len(*waits) != 1 || (*waits)[0] != 2*time.Second {
			t.Fatalf("requests %d, waits %v", clerk.Requests(clerktest.BAPIJWKS), *waits)
		}
	})

	t.Run("429 storm: bounded attempts, no retry storm", func(t *testing.T) {
		clerk.ResetCounts()
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.RateLimit(time.Second))
		defer clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		c, waits := emulatorClient(t, clerk, clerk.SecretKey())
		_, err := c.JWKS(ctx)
		if !IsRateLimited(err) || clerk.Requests(clerktest.BAPIJWKS) != DefaultMaxAttempts || len(*waits) != DefaultMaxAttempts-1 {
			t.Fatalf("%v: %d requests, waits %v", err, clerk.Requests(clerktest.BAPIJWKS), *waits)
		}
	})

	t.Run("5xx backoff grows, then succeeds", func(t *testing.T) {
		clerk.ResetCounts()
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.FailTimes(2, clerktest.Status(500)))
		defer clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		c, waits := emulatorClient(t, clerk, clerk.SecretKey())
		if _, err := c.JWKS(ctx); err != nil {
			t.Fatal(err)
		}
		if clerk.Requests(clerktest.BAPIJWKS) != 3 || len(*waits) != 2 || (*waits)[1] <= (*waits)[0] {
			t.Fatalf("requests %d, waits %v", clerk.Requests(clerktest.BAPIJWKS), *waits)
		}
	})

	t.Run("dropped connections are retried", func(t *testing.T) {
		clerk.ResetCounts()
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.FailTimes(1, clerktest.ConnectionReset))
		defer clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		c, _ := emulatorClient(t, clerk, clerk.SecretKey())
		if _, err := c.JWKS(ctx); err != nil || clerk.Requests(clerktest.BAPIJWKS) != 2 {
			t.Fatalf("%v after %d requests", err, clerk.Requests(clerktest.BAPIJWKS))
		}
	})

	t.Run("a hanging Clerk costs at most the timeout per attempt", func(t *testing.T) {
		clerk.SetFault(clerktest.BAPIJWKS, clerktest.Hang)
		defer clerk.SetFault(clerktest.BAPIJWKS, clerktest.NoFault)
		c, _ := emulatorClient(t, clerk, clerk.SecretKey(), WithTimeout(100*time.Millisecond), WithMaxAttempts(2))
		start := time.Now()
		_, err := c.JWKS(ctx)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

func TestMachineVerifyAgainstEmulator(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_760_000_000, 0)
	clerk := clerktest.NewT(t, clerktest.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }))
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()
	c, waits := emulatorClient(t, clerk, clerk.SecretKey())

	a, b, other := clerk.CreateMachine(), clerk.CreateMachine(), clerk.CreateMachine()
	exp := clerk.Now().Add(time.Hour)
	m2m := clerk.CreateM2MToken(clerktest.M2MOptions{Subject: a.ID, Scopes: []string{b.ID}, Claims: map[string]any{"env": "ci"}, Expiration: exp})
	key := clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: "org_2vYVtestTESTtestTESTtestTE", Name: "ci", Scopes: []string{"read"}})
	oat := clerk.CreateOAuthToken(clerktest.OAuthOptions{Subject: "user_2vYVtestTESTtestTESTtestTE", ClientID: "cid", Scopes: []string{"read:foo"}, Expiration: exp})

	t.Run("each type verifies", func(t *testing.T) {
		mt, err := c.VerifyM2MToken(ctx, m2m.Secret)
		if err != nil || mt.Type != TokenTypeM2M || mt.ID != m2m.ID || mt.Subject != a.ID || len(mt.Scopes) != 1 || mt.Scopes[0] != b.ID ||
			string(mt.Claims) != `{"env":"ci"}` || mt.Expiration != exp.UnixMilli() {
			t.Fatalf("m2m %+v %v", mt, err)
		}
		mt, err = c.VerifyAPIKey(ctx, key.Secret)
		if err != nil || mt.Type != TokenTypeAPIKey || mt.ID != key.ID || mt.Name != "ci" || mt.Subject != key.Subject || mt.Claims != nil || mt.Expiration != 0 {
			t.Fatalf("api key %+v %v", mt, err)
		}
		mt, err = c.VerifyOAuthToken(ctx, oat.Secret)
		if err != nil || mt.Type != TokenTypeOAuth || mt.ID != oat.ID || mt.ClientID != "cid" || mt.Subject != oat.Subject {
			t.Fatalf("oauth %+v %v", mt, err)
		}
		if clerk.Requests(clerktest.BAPIM2MVerify) != 1 || clerk.Requests(clerktest.BAPIAPIKeyVerify) != 1 || clerk.Requests(clerktest.BAPIOAuthVerify) != 1 {
			t.Fatal("counts")
		}
	})

	t.Run("machine secret key: only tokens granted to the machine", func(t *testing.T) {
		mb, _ := emulatorClient(t, clerk, clerk.SecretKey(), WithMachineSecretKey(b.SecretKey))
		if _, err := mb.VerifyM2MToken(ctx, m2m.Secret); err != nil {
			t.Fatal(err)
		}
		mo, _ := emulatorClient(t, clerk, clerk.SecretKey(), WithMachineSecretKey(other.SecretKey))
		if _, err := mo.VerifyM2MToken(ctx, m2m.Secret); !IsTokenInvalid(err) || !IsNotFound(err) {
			t.Fatalf("not granted: %v", err)
		}
		// The machine key is for M2M only.
		if _, err := mo.VerifyAPIKey(ctx, key.Secret); err != nil {
			t.Fatal(err)
		}
		// A machine key Clerk does not know.
		bad, _ := emulatorClient(t, clerk, clerk.SecretKey(), WithMachineSecretKey("ak_"+strings.Repeat("Q", 43)+"="))
		_, err := bad.VerifyM2MToken(ctx, m2m.Secret)
		if !IsKeyInvalid(err) || IsTokenInvalid(err) || IsUnavailable(err) || !bad.HasMachineSecretKey() {
			t.Fatalf("%v", err)
		}
		if strings.Contains(err.Error(), other.SecretKey) || strings.Contains(err.Error(), m2m.Secret) {
			t.Fatal("secret in error")
		}
	})

	t.Run("wrong secret key", func(t *testing.T) {
		wrong, _ := emulatorClient(t, clerk, "sk_test_"+strings.Repeat("W", 40))
		for _, call := range []func() error{
			func() error { _, err := wrong.VerifyM2MToken(ctx, m2m.Secret); return err },
			func() error { _, err := wrong.VerifyAPIKey(ctx, key.Secret); return err },
			func() error { _, err := wrong.VerifyOAuthToken(ctx, oat.Secret); return err },
		} {
			if err := call(); !IsKeyInvalid(err) || IsTokenInvalid(err) {
				t.Fatalf("%v", err)
			}
		}
	})

	t.Run("unknown, revoked, expired, other answers", func(t *testing.T) {
		for _, call := range []func() error{
			func() error { _, err := c.VerifyM2MToken(ctx, "mt_nope"); return err },
			func() error { _, err := c.VerifyAPIKey(ctx, "ak_"+strings.Repeat("x", 43)+"="); return err },
			func() error { _, err := c.VerifyOAuthToken(ctx, "oat_nope"); return err },
		} {
			if err := call(); !IsTokenInvalid(err) || !IsNotFound(err) || IsUnavailable(err) {
				t.Fatalf("%v", err)
			}
		}
		k2 := clerk.CreateAPIKey(clerktest.APIKeyOptions{})
		clerk.RevokeMachineToken(k2.ID)
		var ti *TokenInvalidError
		if _, err := c.VerifyAPIKey(ctx, k2.Secret); !errors.As(err, &ti) || ti.Reason != "revoked" {
			t.Fatalf("%v", err)
		}
		o2 := clerk.CreateOAuthToken(clerktest.OAuthOptions{Expiration: clerk.Now().Add(time.Minute)})
		if _, err := c.VerifyOAuthToken(ctx, o2.Secret); err != nil {
			t.Fatal(err)
		}
		advance(time.Minute)
		if _, err := c.VerifyOAuthToken(ctx, o2.Secret); !errors.As(err, &ti) || ti.Reason != "expired" {
			t.Fatalf("%v", err)
		}
		for answer, reason := range map[clerktest.MachineAnswer]string{
			clerktest.AnswerInactive:    "inactive",
			clerktest.AnswerWrongObject: "unexpected object",
			clerktest.AnswerWrongID:     "unexpected id",
			clerktest.AnswerEmpty:       "malformed response",
			clerktest.AnswerNotJSON:     "malformed response",
		} {
			clerk.SetMachineAnswer(clerktest.BAPIM2MVerify, answer)
			if _, err := c.VerifyM2MToken(ctx, m2m.Secret); !errors.As(err, &ti) || ti.Reason != reason {
				t.Errorf("answer %d: %v", answer, err)
			}
		}
		clerk.SetMachineAnswer(clerktest.BAPIM2MVerify, clerktest.AnswerClerk)
		if _, err := c.VerifyM2MToken(ctx, m2m.Secret); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("faults: two attempts at most, then unavailable", func(t *testing.T) {
		for _, f := range []clerktest.Fault{clerktest.Status(500), clerktest.Status(503), clerktest.RateLimit(time.Second), clerktest.ConnectionReset} {
			clerk.ResetCounts()
			*waits = nil
			clerk.SetFault(clerktest.BAPIAPIKeyVerify, f)
			_, err := c.VerifyAPIKey(ctx, key.Secret)
			if !IsUnavailable(err) || IsTokenInvalid(err) || clerk.Requests(clerktest.BAPIAPIKeyVerify) != MachineMaxAttempts || len(*waits) != 1 {
				t.Fatalf("%v: %v after %d requests, waits %v", f, err, clerk.Requests(clerktest.BAPIAPIKeyVerify), *waits)
			}
			if strings.Contains(err.Error(), key.Secret) {
				t.Fatal("secret in error")
			}
		}
		// A blip is retried through; a long Retry-After is not waited for.
		clerk.ResetCounts()
		clerk.SetFault(clerktest.BAPIAPIKeyVerify, clerktest.FailTimes(1, clerktest.Status(502)))
		if _, err := c.VerifyAPIKey(ctx, key.Secret); err != nil || clerk.Requests(clerktest.BAPIAPIKeyVerify) != 2 {
			t.Fatalf("%v", err)
		}
		clerk.ResetCounts()
		clerk.SetFault(clerktest.BAPIAPIKeyVerify, clerktest.RateLimit(5*time.Second))
		if _, err := c.VerifyAPIKey(ctx, key.Secret); !IsRateLimited(err) || clerk.Requests(clerktest.BAPIAPIKeyVerify) != 1 {
			t.Fatalf("%v", err)
		}
		clerk.SetFault(clerktest.BAPIAPIKeyVerify, clerktest.NoFault)

		clerk.Down()
		_, err1 := c.VerifyM2MToken(ctx, m2m.Secret)
		_, err2 := c.VerifyOAuthToken(ctx, oat.Secret)
		clerk.Up()
		if !IsUnavailable(err1) || !IsUnavailable(err2) {
			t.Fatalf("down: %v / %v", err1, err2)
		}
		if _, err := c.VerifyM2MToken(ctx, m2m.Secret); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a hanging Clerk costs at most two short attempts", func(t *testing.T) {
		clerk.SetFault(clerktest.BAPIM2MVerify, clerktest.Hang)
		defer clerk.SetFault(clerktest.BAPIM2MVerify, clerktest.NoFault)
		h, _ := emulatorClient(t, clerk, clerk.SecretKey(), WithMachineTimeout(100*time.Millisecond))
		start := time.Now()
		_, err := h.VerifyM2MToken(ctx, m2m.Secret)
		if !IsUnavailable(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}
