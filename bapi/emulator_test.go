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
