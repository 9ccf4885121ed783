package bapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestNewRejectsBadSecretKeys(t *testing.T) {
	for _, key := range []string{
		"",
		"pk_test_Zk3uQ9vT2mXcW8pL5rN7yB4hJ6dF1sA0gE2kV9xq",
		"sk_prod_Zk3uQ9vT2mXcW8pL5rN7yB4hJ6dF1sA0gE2kV9xq",
		"SK_TEST_Zk3uQ9vT2mXcW8pL5rN7yB4hJ6dF1sA0gE2kV9xq",
		"sk_test_",
		"sk_test_short",
		"sk_live_Zk3uQ9vT2mXcW8pL\r\nX-Evil: 1",
		"sk_test_Zk3uQ9vT2mXcW8pL 5rN7yB4hJ6dF1sA0gE2kV9xq",
	} {
		c, err := New(key)
		if err == nil || c != nil {
			t.Errorf("New(%q) accepted", key)
			continue
		}
		if body := strings.TrimPrefix(key, key[:min(len(key), 8)]); len(body) > 8 && strings.Contains(err.Error(), body) {
			t.Errorf("error echoes the key: %v", err)
		}
	}
	_, err := New("pk_live_whatever_long_enough_0000")
	if err == nil || err.Error() != "bapi: secret key must start with sk_live_ or sk_test_" {
		t.Fatalf("got %v", err)
	}
	for _, key := range []string{testKey, " " + testKey + "\n", "sk_live_0123456789abcdef"} {
		if _, err := New(key); err != nil {
			t.Errorf("New rejected a good key: %v", err)
		}
	}
}

func TestNewMachineSecretKey(t *testing.T) {
	for _, key := range []string{
		"sk_test_Zk3uQ9vT2mXcW8pL5rN7yB4hJ6dF1sA0gE2kV9xq",
		"AK_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=",
		"ak_short",
		"ak_" + strings.Repeat("a", 513),
		"ak_LCWGdaM8mv8K4PC/57IICZQX\r\nX-Evil: 1",
		"ak_LCWGdaM8mv8K4PC 57IICZQXAeWfCgF30DZaFXHoGn9=",
		"ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=\x00",
		"ak_LCWGdaM8mv8K4PC\"57IICZQXAeWfCgF30DZaFXHoGn9=",
	} {
		c, err := New(testKey, WithMachineSecretKey(key))
		if err == nil || c != nil {
			t.Errorf("machine key %q accepted", key)
			continue
		}
		if body := key[min(len(key), 3):]; len(body) > 4 && strings.Contains(err.Error(), body[:5]) {
			t.Errorf("error echoes the key: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "bapi: machine secret key ") {
			t.Errorf("error %q does not name the machine secret key", err)
		}
	}
	for _, key := range []string{testMachineKey, " " + testMachineKey + "\n", "ak_0123456789abcdef", "ak_a-b_c+d/e=f0123456"} {
		c, err := New(testKey, WithMachineSecretKey(key))
		if err != nil || !c.HasMachineSecretKey() {
			t.Errorf("New rejected a good machine key %q: %v", key, err)
		}
	}
	// "" (an unset setting passed through) means none.
	for _, opts := range [][]Option{nil, {WithMachineSecretKey("")}, {WithMachineSecretKey("  ")}} {
		c, err := New(testKey, opts...)
		if err != nil || c.HasMachineSecretKey() || strings.Contains(c.String(), "machine") {
			t.Errorf("%v %v %s", err, c.HasMachineSecretKey(), c)
		}
	}
}

func TestBaseURLNormalisation(t *testing.T) {
	for in, want := range map[string]string{
		"":                               DefaultBaseURL,
		"https://api.clerk.com":          "https://api.clerk.com",
		"https://api.clerk.com/":         "https://api.clerk.com",
		"https://api.clerk.com/v1":       "https://api.clerk.com",
		"https://api.clerk.com/v1/":      "https://api.clerk.com",
		" http://127.0.0.1:8080/clerk/ ": "http://127.0.0.1:8080/clerk",
		"http://127.0.0.1:8080/clerk/v1": "http://127.0.0.1:8080/clerk",
	} {
		var opts []Option
		if in != "" {
			opts = append(opts, WithBaseURL(in))
		}
		c, err := New(testKey, opts...)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if c.BaseURL() != want {
			t.Errorf("%q: got %q, want %q", in, c.BaseURL(), want)
		}
	}
	for _, bad := range []string{"api.clerk.com", "ftp://api.clerk.com", "https://", "https://u:p@api.clerk.com",
		"https://api.clerk.com?x=1", "https://api.clerk.com/#f", "://"} {
		if _, err := New(testKey, WithBaseURL(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}

	// Every accepted spelling reaches /v1/jwks exactly once.
	for _, suffix := range []string{"", "/", "/v1", "/v1/"} {
		var path atomic.Value
		e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
			path.Store(r.URL.Path)
			okJWKS(w, r)
		})
		c, err := New(testKey, WithBaseURL(e.srv.URL+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.JWKS(context.Background()); err != nil {
			t.Fatal(err)
		}
		if path.Load() != "/v1/jwks" {
			t.Errorf("base %q: server saw %v", suffix, path.Load())
		}
	}
}

func TestHeaders(t *testing.T) {
	var got atomic.Value
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Clone())
		okJWKS(w, r)
	})
	if _, err := e.c.JWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := got.Load().(http.Header)
	for name, want := range map[string]string{
		"Authorization":     "Bearer " + testKey,
		"User-Agent":        "caddy-clerk/" + Version,
		"Clerk-Api-Version": DefaultAPIVersion,
		"Accept":            "application/json",
	} {
		if h.Get(name) != want {
			t.Errorf("%s: got %q, want %q", name, h.Get(name), want)
		}
	}
	if DefaultAPIVersion != "2025-04-10" || !strings.HasPrefix(h.Get("User-Agent"), "caddy-clerk/") {
		t.Fatalf("version %s UA %s", DefaultAPIVersion, h.Get("User-Agent"))
	}

	e2 := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Clone())
		okJWKS(w, r)
	}, WithAPIVersion("2024-10-01"))
	if _, err := e2.c.JWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := got.Load().(http.Header).Get("Clerk-API-Version"); v != "2024-10-01" {
		t.Fatalf("override: %q", v)
	}
}

type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestWithHTTPClient(t *testing.T) {
	e := newEnv(t, okJWKS)
	tr := &countingTransport{next: http.DefaultTransport}
	c, err := New(testKey, WithBaseURL(e.srv.URL), WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.JWKS(context.Background()); err != nil || tr.n.Load() != 1 {
		t.Fatalf("err %v, transport used %d times", err, tr.n.Load())
	}
}

func TestRedirectsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		okJWKS(w, r)
	}))
	defer other.Close()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/jwks", http.StatusFound)
	})
	_, err := e.c.JWKS(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusFound {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	e.wantHits(1)
	if elsewhere.Load() != 0 {
		t.Fatal("redirect followed with the secret key")
	}
}

func TestClientFormattingHidesSecret(t *testing.T) {
	c, err := New(testKey, WithMachineSecretKey(testMachineKey))
	if err != nil {
		t.Fatal(err)
	}
	body := testKey[len("sk_test_"):]
	mbody := testMachineKey[len("ak_"):]
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
		outs = append(outs,
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c),
			fmt.Sprintf(verb, struct{ C *Client }{c}),
			fmt.Sprintf(verb, struct{ c Client }{*c}), // unexported: fmt skips Format and dumps fields
			fmt.Sprintf(verb, []any{c}))
	}
	outs = append(outs, c.String(), c.GoString(), fmt.Sprint(c), fmt.Sprintln(*c))
	for _, out := range outs {
		if strings.Contains(out, body) || strings.Contains(out, mbody) || strings.Contains(out, "Bearer") {
			t.Fatalf("secret in %q", out)
		}
	}
	if s := fmt.Sprintf("%v", c); !strings.Contains(s, "sk_test_[redacted]") || !strings.Contains(s, DefaultBaseURL) ||
		!strings.Contains(s, "machine_key: ak_[redacted]") {
		t.Fatalf("String() = %s", s)
	}

	core, logs := observer.New(zapcore.DebugLevel)
	zap.New(core).Info("client", zap.Any("client", c), zap.Stringer("s", c), zap.Reflect("r", c))
	for _, entry := range logs.All() {
		if s := fmt.Sprint(entry.ContextMap()); strings.Contains(s, body) || strings.Contains(s, mbody) {
			t.Fatalf("secret logged: %s", s)
		}
	}
}
