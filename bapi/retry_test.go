package bapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRateLimitRetryAfterSeconds(t *testing.T) {
	e := newEnv(t, sequence(rateLimited("1"), okJWKS))
	body, err := e.c.JWKS(context.Background())
	if err != nil || string(body) != `{"keys":[]}` {
		t.Fatalf("%s %v", body, err)
	}
	e.wantHits(2)
	e.wantWaits(time.Second)
}

func TestRateLimitRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, sequence(rateLimited(now.Add(3*time.Second).Format(http.TimeFormat)), okJWKS))
	e.c.now = func() time.Time { return now }
	if _, err := e.c.JWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.wantHits(2)
	e.wantWaits(3 * time.Second)
}

func TestRateLimitRetryAfterAboveBound(t *testing.T) {
	e := newEnv(t, rateLimited("30"), WithMaxRetryAfter(10*time.Second))
	_, err := e.c.JWKS(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || !IsRateLimited(err) || apiErr.RetryAfter != 30*time.Second ||
		apiErr.Code != "too_many_requests" || apiErr.TraceID != "trace-429" {
		t.Fatalf("got %#v", err)
	}
	if !strings.Contains(err.Error(), "429 too_many_requests") || !strings.Contains(err.Error(), "retry after 30s") {
		t.Fatalf("text %q", err)
	}
	e.clean(err)
	e.wantHits(1)
	e.wantWaits()
}

func TestRateLimitStorm(t *testing.T) {
	e := newEnv(t, rateLimited("1"), WithMaxAttempts(4))
	_, err := e.c.JWKS(context.Background())
	if !IsRateLimited(err) {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	e.wantHits(4)
	e.wantWaits(time.Second, time.Second, time.Second)

	// Without a usable Retry-After, 429s back off like 5xx.
	e2 := newEnv(t, rateLimited("soon"))
	if _, err := e2.c.JWKS(context.Background()); !IsRateLimited(err) {
		t.Fatalf("got %v", err)
	}
	e2.wantHits(3)
	e2.wantWaits(200*time.Millisecond, 400*time.Millisecond)
}

func TestServerErrorThenSuccess(t *testing.T) {
	e := newEnv(t, sequence(status(502), status(503), okJWKS))
	if _, err := e.c.JWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.wantHits(3)
	e.wantWaits(200*time.Millisecond, 400*time.Millisecond)
}

func TestServerErrorsExhaustAttempts(t *testing.T) {
	e := newEnv(t, status(500))
	_, err := e.c.JWKS(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.TraceID != "trace-500" {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	e.wantHits(DefaultMaxAttempts)
	e.wantWaits(200*time.Millisecond, 400*time.Millisecond)

	// The ceiling doubles up to the cap.
	e2 := newEnv(t, status(503), WithMaxAttempts(7))
	_, _ = e2.c.JWKS(context.Background())
	e2.wantHits(7)
	e2.wantWaits(200*time.Millisecond, 400*time.Millisecond, 800*time.Millisecond,
		1600*time.Millisecond, 2*time.Second, 2*time.Second)
}

func TestBackoffIsJittered(t *testing.T) {
	e := newEnv(t, status(500), WithMaxAttempts(8))
	var mu sync.Mutex
	var ceilings []time.Duration
	e.c.jitter = func(c time.Duration) time.Duration {
		mu.Lock()
		ceilings = append(ceilings, c)
		mu.Unlock()
		return fullJitter(c)
	}
	_, _ = e.c.JWKS(context.Background())
	e.wantHits(8)
	waits := e.recordedWaits()
	want := []time.Duration{200, 400, 800, 1600, 2000, 2000, 2000}
	if len(waits) != len(want) || len(ceilings) != len(want) {
		t.Fatalf("waits %v ceilings %v", waits, ceilings)
	}
	for i, w := range waits {
		if ceilings[i] != want[i]*time.Millisecond || w < 0 || w > ceilings[i] {
			t.Fatalf("attempt %d: wait %v, ceiling %v", i+1, w, ceilings[i])
		}
	}

	// Full jitter spreads over [0, ceiling].
	seen := map[bool]int{}
	for range 2000 {
		d := fullJitter(time.Second)
		if d < 0 || d > time.Second {
			t.Fatalf("jitter %v", d)
		}
		seen[d < 500*time.Millisecond]++
	}
	if seen[true] < 700 || seen[false] < 700 || fullJitter(0) != 0 {
		t.Fatalf("jitter not spread: %v", seen)
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 422} {
		e := newEnv(t, status(code))
		_, err := e.c.JWKS(context.Background())
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != code {
			t.Fatalf("%d: got %v", code, err)
		}
		e.wantHits(1)
		e.wantWaits()
	}
}

func TestNetworkErrorsRetried(t *testing.T) {
	e := newEnv(t, hangUp)
	_, err := e.c.JWKS(context.Background())
	var apiErr *Error
	if err == nil || errors.As(err, &apiErr) || !strings.HasPrefix(err.Error(), "clerk api: GET /v1/jwks: ") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), e.srv.URL) {
		t.Fatalf("error names the URL: %v", err)
	}
	e.clean(err)
	e.wantHits(3)
	e.wantWaits(200*time.Millisecond, 400*time.Millisecond)

	// A network error, then success.
	e2 := newEnv(t, sequence(hangUp, okJWKS))
	if _, err := e2.c.JWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	e2.wantHits(2)
}

// hang blocks until the client gives up or the test ends.
func hang(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

func TestAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, hang(release), WithTimeout(100*time.Millisecond), WithMaxAttempts(2))
	t.Cleanup(func() { close(release) })
	start := time.Now()
	_, err := e.c.JWKS(context.Background())
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("got %v", err)
	}
	if elapsed < 200*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("took %v for two 100ms attempts", elapsed)
	}
	e.clean(err)
	e.wantHits(2)
	e.wantWaits(200 * time.Millisecond)
}

func TestContextCancelDuringRequest(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, hang(release), WithTimeout(time.Minute))
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.c.JWKS(ctx)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	e.clean(err)
	e.wantHits(1)
	e.wantWaits()
}

func TestContextCancelDuringBackoff(t *testing.T) {
	e := newEnv(t, status(503))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var slept atomic.Int64
	e.c.jitter = func(time.Duration) time.Duration { return time.Hour }
	e.c.sleep = func(ctx context.Context, d time.Duration) error {
		slept.Add(1)
		time.AfterFunc(20*time.Millisecond, cancel) // cancel once the real wait has begun
		return sleepCtx(ctx, d)
	}
	start := time.Now()
	_, err := e.c.JWKS(ctx)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || !strings.Contains(err.Error(), "retry abandoned: context canceled") {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	e.wantHits(1)
	if slept.Load() != 1 {
		t.Fatalf("slept %d times", slept.Load())
	}
}

func TestDeadlineShorterThanWait(t *testing.T) {
	e := newEnv(t, rateLimited("8"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.c.JWKS(ctx)
	if !IsRateLimited(err) {
		t.Fatalf("got %v", err)
	}
	e.wantHits(1)
	e.wantWaits()
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                  0,
		"1":                 time.Second,
		" 7 ":               7 * time.Second,
		"0":                 0,
		"-3":                0,
		"1.5":               0,
		"soon":              0,
		"99999999999999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		"Sun, 01 Mar 2026 12:00:05 GMT":                   5 * time.Second,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("%q: got %v, want %v", in, got, want)
		}
	}
}
