package clerktest

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
)

// RSA generation is slow under -race; share keys across tests.
var (
	keysOnce   sync.Once
	sharedKeys [3]*rsa.PrivateKey
)

func testKey(i int) *rsa.PrivateKey {
	keysOnce.Do(func() {
		var wg sync.WaitGroup
		for i := range sharedKeys {
			wg.Add(1)
			go func() { defer wg.Done(); sharedKeys[i] = GenerateKey() }()
		}
		wg.Wait()
	})
	return sharedKeys[i]
}

func newServer(t *testing.T, opts ...Option) *Server {
	t.Helper()
	return NewT(t, append([]Option{WithKey(testKey(0))}, opts...)...)
}

// fresh connections per request, so a dropped connection is never retried
// by the transport on a reused one.
func noKeepAlive() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, url, bearer string) resp {
	t.Helper()
	r, err := do(url, bearer)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return r
}

func newRequest(ctx context.Context, url, bearer string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err == nil && bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req, err
}

func do(url, bearer string) (resp, error) {
	req, err := newRequest(context.Background(), url, bearer)
	if err != nil {
		return resp{}, err
	}
	res, err := noKeepAlive().Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, body}, err
}

// post sends body as JSON.
func post(t *testing.T, url, bearer, body string) resp {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := noKeepAlive().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

func keysOf(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// segments decodes a compact JWS's header and payload without verifying.
func segments(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("segment not base64url: %v", err)
		}
		return decodeObject(t, b)
	}
	return dec(parts[0]), dec(parts[1])
}

// wantClerkError checks Clerk's error body and that its trace id matches
// the header.
func wantClerkError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	m := decodeObject(t, r.body)
	if got := keysOf(m); got != "clerk_trace_id,errors" {
		t.Fatalf("error body keys %s: %s", got, r.body)
	}
	errs, _ := m["errors"].([]any)
	if len(errs) != 1 {
		t.Fatalf("errors: %s", r.body)
	}
	e := errs[0].(map[string]any)
	if got := keysOf(e); got != "code,long_message,message,meta" {
		t.Fatalf("error keys %s", got)
	}
	if e["code"] != code {
		t.Fatalf("code %v, want %s", e["code"], code)
	}
	trace := r.header.Get("Clerk-Trace-Id")
	if trace == "" || m["clerk_trace_id"] != trace {
		t.Fatalf("trace id body %v header %q", m["clerk_trace_id"], trace)
	}
}
