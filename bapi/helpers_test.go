package bapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const testKey = "sk_test_Zk3uQ9vT2mXcW8pL5rN7yB4hJ6dF1sA0gE2kV9xq"

// testMachineKey has the / + = a machine secret key may hold.
const testMachineKey = "ak_Qm7/Tz2+Lp9xWv4kRb8nYc1dHf6gJs3e0aUo5iEr1T0="

// env is a loopback Backend API stand-in and a client pointed at it, with
// sleeping replaced by a recorder and jitter by its upper bound.
type env struct {
	t    *testing.T
	srv  *httptest.Server
	c    *Client
	hits atomic.Int64
	logs *observer.ObservedLogs

	mu        sync.Mutex
	waits     []time.Duration
	sensitive []string // besides the key, must not show in errors or logs
}

func newEnv(t *testing.T, h http.HandlerFunc, opts ...Option) *env {
	t.Helper()
	e := &env{t: t}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(e.srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	all := append([]Option{WithBaseURL(e.srv.URL), WithLogger(zap.New(core))}, opts...)
	c, err := New(testKey, all...)
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
		return ctx.Err()
	}
	c.jitter = func(ceiling time.Duration) time.Duration { return ceiling }
	e.c = c
	t.Cleanup(e.checkLogs)
	return e
}

func (e *env) recordedWaits() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.waits...)
}

func (e *env) wantHits(n int64) {
	e.t.Helper()
	if got := e.hits.Load(); got != n {
		e.t.Fatalf("requests: got %d, want %d", got, n)
	}
}

func (e *env) wantWaits(want ...time.Duration) {
	e.t.Helper()
	got := e.recordedWaits()
	if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
		e.t.Fatalf("waits: got %v, want %v", got, want)
	}
}

// forbidden are the strings no error or log line may contain.
func (e *env) forbidden() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string{testKey, testKey[len("sk_test_"):], testMachineKey, testMachineKey[len("ak_"):]}, e.sensitive...)
}

// clean fails if err's text holds the key or a sensitive value.
func (e *env) clean(err error) {
	e.t.Helper()
	if err == nil {
		return
	}
	for _, f := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, bad := range e.forbidden() {
			if strings.Contains(f, bad) {
				e.t.Fatalf("error leaks %q: %s", bad, f)
			}
		}
	}
}

// checkLogs runs at cleanup: no log entry may hold the key or the nonce.
func (e *env) checkLogs() {
	for _, entry := range e.logs.All() {
		line := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, bad := range append(e.forbidden(), "Bearer", "Authorization") {
			if strings.Contains(line, bad) {
				e.t.Errorf("log leaks %q: %s", bad, line)
			}
		}
	}
}

func writeClerkError(w http.ResponseWriter, status int, code, msg, long string) {
	body, _ := json.Marshal(map[string]any{
		"errors":         []map[string]any{{"code": code, "message": msg, "long_message": long, "meta": map[string]any{}}},
		"clerk_trace_id": "trace-body",
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// sequence answers the i-th request with steps[i] (the last one repeats).
func sequence(steps ...http.HandlerFunc) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		steps[min(i, len(steps)-1)](w, r)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Clerk-Trace-Id", fmt.Sprintf("trace-%d", code))
		writeClerkError(w, code, "err_"+fmt.Sprint(code), http.StatusText(code), "long "+http.StatusText(code))
	}
}

func rateLimited(retryAfter string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Clerk-Trace-Id", "trace-429")
		writeClerkError(w, 429, "too_many_requests", "Too many requests", "Too many requests, please try again later.")
	}
}

func okJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"keys":[]}`))
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
