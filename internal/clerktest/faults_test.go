package clerktest

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestStatusFaults(t *testing.T) {
	s := newServer(t)
	bapi := s.BackendAPIURL() + "/jwks"
	s.SetFault(FAPIJWKS, Status(500))
	s.SetFault(BAPIJWKS, Status(503))
	wantClerkError(t, get(t, s.JWKSURL(), ""), 500, "internal_clerk_error")
	wantClerkError(t, get(t, bapi, s.SecretKey()), 503, "service_unavailable")
	// A fault comes before authentication, as an outage would.
	wantClerkError(t, get(t, bapi, ""), 503, "service_unavailable")
	s.SetFault(FAPIJWKS, NoFault)
	if get(t, s.JWKSURL(), "").status != 200 {
		t.Fatal("fault not cleared")
	}
	if s.Requests(FAPIJWKS) != 2 || s.Requests(BAPIJWKS) != 2 {
		t.Fatalf("counts fapi %d bapi %d", s.Requests(FAPIJWKS), s.Requests(BAPIJWKS))
	}
	s.ResetCounts()
	if s.Requests(FAPIJWKS) != 0 || s.Requests(BAPIJWKS) != 0 {
		t.Fatal("ResetCounts")
	}
}

func TestRateLimit(t *testing.T) {
	s := newServer(t)
	s.SetFault(BAPIUsers, RateLimit(1500*time.Millisecond))
	r := get(t, s.BackendAPIURL()+"/users/"+s.AdminUser().ID, s.SecretKey())
	wantClerkError(t, r, 429, "too_many_requests")
	if ra := r.header.Get("Retry-After"); ra != "2" {
		t.Fatalf("Retry-After %q", ra)
	}
}

func TestHangUnblocksOnClose(t *testing.T) {
	s := New(WithKey(testKey(0)))
	s.SetFault(FAPIJWKS, Hang)
	errc := make(chan error, 1)
	go func() {
		_, err := do(s.JWKSURL(), "")
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Requests(FAPIJWKS) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %s", d)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("hung request got a response")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("client still blocked after Close")
	}
	s.Close() // idempotent
}

func TestHangHonoursClientContext(t *testing.T) {
	s := newServer(t)
	s.SetFault(BAPIJWKS, Hang)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := newRequest(ctx, s.BackendAPIURL()+"/jwks", s.SecretKey())
	start := time.Now()
	if _, err := noKeepAlive().Do(req); err == nil {
		t.Fatal("hung request got a response")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestConnectionReset(t *testing.T) {
	s := newServer(t)
	s.SetFault(FAPIJWKS, ConnectionReset)
	if _, err := do(s.JWKSURL(), ""); err == nil {
		t.Fatal("dropped connection gave a response")
	}
	if s.Requests(FAPIJWKS) != 1 {
		t.Fatalf("count %d", s.Requests(FAPIJWKS))
	}
}

func TestFailTimes(t *testing.T) {
	s := newServer(t)
	s.SetFault(FAPIJWKS, FailTimes(2, Status(502)))
	for i := range 2 {
		if r := get(t, s.JWKSURL(), ""); r.status != 502 {
			t.Fatalf("request %d: status %d", i, r.status)
		}
	}
	if r := get(t, s.JWKSURL(), ""); r.status != 200 {
		t.Fatalf("not recovered: %d", r.status)
	}
	s.SetFault(FAPIJWKS, FailTimes(1, ConnectionReset))
	if _, err := do(s.JWKSURL(), ""); err == nil {
		t.Fatal("first request not dropped")
	}
	if get(t, s.JWKSURL(), "").status != 200 || s.Requests(FAPIJWKS) != 5 {
		t.Fatalf("count %d", s.Requests(FAPIJWKS))
	}
}

func TestDownUp(t *testing.T) {
	s := newServer(t)
	s.Down()
	wantClerkError(t, get(t, s.JWKSURL(), ""), 503, "service_unavailable")
	wantClerkError(t, get(t, s.BackendAPIURL()+"/users/"+s.AdminUser().ID, s.SecretKey()), 503, "service_unavailable")
	s.SetFaultAll(ConnectionReset)
	if _, err := do(s.BackendAPIURL()+"/jwks", s.SecretKey()); err == nil {
		t.Fatal("not dropped")
	}
	s.Up()
	if get(t, s.JWKSURL(), "").status != 200 || get(t, s.BackendAPIURL()+"/jwks", s.SecretKey()).status != 200 {
		t.Fatal("not up")
	}
}

// Many goroutines hit the server while faults and keys change, for -race.
func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				_, _ = do(s.JWKSURL(), "")
				_, _ = do(s.BackendAPIURL()+"/jwks", s.SecretKey())
				_ = s.MustMint(TokenOptions{})
				_ = s.Requests(FAPIJWKS)
			}
		}()
		if i%2 == 0 {
			s.SetFault(FAPIJWKS, FailTimes(3, Status(500)))
		} else {
			s.RotateKeyTo(testKey(i % 3))
			s.StoreHandshakePayload("n", []string{"x"})
			s.DropOldKeys()
		}
	}
	wg.Wait()
	if s.Requests(FAPIJWKS) != 80 || s.Requests(BAPIJWKS) != 80 {
		t.Fatalf("counts %d %d", s.Requests(FAPIJWKS), s.Requests(BAPIJWKS))
	}
}
