package caddyclerk

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// provisioned is a handler of this package as Caddy drives it.
type provisioned interface {
	caddy.Provisioner
	caddy.Validator
	caddy.CleanerUpper
}

// provision provisions and validates h as Caddy would, cleaning up after
// the test.
func provision(t *testing.T, h provisioned) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := h.Provision(ctx)
	if err == nil {
		err = h.Validate()
		t.Cleanup(func() { _ = h.Cleanup() })
	}
	return err
}

func TestProvision(t *testing.T) {
	clerk := clerktest.NewT(t)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "clerk.pem")
	_ = os.WriteFile(pemFile, []byte(clerk.PublicKeyPEM()), 0o600)
	t.Setenv("TEST_CLERK_PK", clerk.PublishableKey())
	t.Setenv("TEST_CLERK_SK", clerk.SecretKey())

	t.Run("env and file placeholders", func(t *testing.T) {
		h := &Handler{PublishableKey: "{env.TEST_CLERK_PK}", SecretKey: "{env.TEST_CLERK_SK}", APIURL: clerk.URL(),
			FrontendAPIURL: clerk.FrontendAPIURL(), JWTKey: "{file." + pemFile + "}"}
		if err := provision(t, h); err != nil {
			t.Fatal(err)
		}
		if h.PublishableKey != clerk.PublishableKey() || h.SecretKey != clerk.SecretKey() || !strings.HasPrefix(h.JWTKey, "-----BEGIN") {
			t.Fatal("placeholders not resolved")
		}
	})
	t.Run("jwt_key from a file path", func(t *testing.T) {
		h := &Handler{JWTKey: pemFile, Issuer: clerk.Issuer()}
		if err := provision(t, h); err != nil {
			t.Fatal(err)
		}
		admin := clerk.AdminUser()
		if _, err := h.verifier.Verify(context.Background(), clerk.MustMint(clerktest.TokenOptions{User: &admin})); err != nil {
			t.Fatalf("networkless verification: %v", err)
		}
	})
	t.Run("secret key: keys from the Backend API", func(t *testing.T) {
		h := &Handler{PublishableKey: clerk.PublishableKey(), SecretKey: clerk.SecretKey(), APIURL: clerk.URL(), FrontendAPIURL: clerk.FrontendAPIURL()}
		if err := provision(t, h); err != nil {
			t.Fatal(err)
		}
		admin := clerk.AdminUser()
		if _, err := h.verifier.Verify(context.Background(), clerk.MustMint(clerktest.TokenOptions{User: &admin})); err != nil {
			t.Fatal(err)
		}
		if clerk.Requests(clerktest.BAPIJWKS) == 0 || clerk.Requests(clerktest.FAPIJWKS) != 0 {
			t.Fatalf("BAPI %d, FAPI %d", clerk.Requests(clerktest.BAPIJWKS), clerk.Requests(clerktest.FAPIJWKS))
		}
	})
	on := true
	for name, tc := range map[string]struct {
		h    Handler
		want string
	}{
		"bad publishable key": {Handler{PublishableKey: "pk_live_%%%"}, "publishable_key"},
		"no issuer":           {Handler{JWKSURL: "https://x.example/jwks"}, "set publishable_key (or issuer)"},
		"missing pem file":    {Handler{JWTKey: filepath.Join(dir, "nope.pem"), Issuer: "https://x"}, "jwt_key is neither a PEM public key nor a readable file"},
		"bad secret":          {Handler{PublishableKey: clerk.PublishableKey(), SecretKey: "sk_live_short"}, "secret_key"},
		"relative jwks url":   {Handler{PublishableKey: clerk.PublishableKey(), JWKSURL: "/jwks"}, "jwks_url"},
		"bad sign-in url":     {Handler{PublishableKey: clerk.PublishableKey(), SignInURL: "accounts.example.com"}, "sign_in_url"},
		"sign-out without a secret key": {Handler{PublishableKey: clerk.PublishableKey(), SignOutPath: "/sign-out"},
			"sign_out_path needs secret_key"},
		"handshake without a publishable key": {Handler{JWTKey: pemFile, Issuer: "https://x", Handshake: &on}, "handshake needs publishable_key"},
	} {
		t.Run(name, func(t *testing.T) {
			h := tc.h
			err := provision(t, &h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error with %q, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), "sk_live_short") {
				t.Fatal("the secret key appears in the error")
			}
		})
	}
}

// TestJSONConfigChecks: a JSON config gets every check the Caddyfile
// parser makes (Provision runs them), with the setting and the fix named.
func TestJSONConfigChecks(t *testing.T) {
	clerk := clerktest.NewT(t)
	pk, sk := clerk.PublishableKey(), clerk.SecretKey()
	for _, tc := range []struct{ json, want string }{
		{`{"publishable_key":"` + pk + `","exclude":["health"]}`, `exclude pattern "health" must start with / (or *)`},
		{`{"publishable_key":"` + pk + `","secret_key":"` + sk + `","sign_out_path":"sign-out"}`, `sign_out_path "sign-out" must be a path starting with /`},
		{`{"publishable_key":"` + pk + `","csrf_trusted_origins":["https://app.example.com/x"]}`, `csrf_trusted_origins: "https://app.example.com/x" is not an origin`},
		{`{"publishable_key":"sk_live_abc"}`, "publishable_key must start with pk_live_ or pk_test_"},
		{`{"publishable_key":"` + pk + `","secret_key":"pk_x"}`, "secret_key must start with sk_live_ or sk_test_"},
		{`{"publishable_key":"` + pk + `","token_cache":20000000}`, "token_cache takes a number of entries"},
		{`{"publishable_key":"` + pk + `","token_cache":-1}`, "token_cache takes a number of entries"},
		{`{"publishable_key":"` + pk + `","clock_skew":-5000000000}`, "clock_skew -5s is negative"},
		{`{"publishable_key":"` + pk + `","require_roles":[[]]}`, "require_role needs at least one role"},
		{`{"publishable_key":"` + pk + `","require_permissions":[[]]}`, "require_permission needs at least one permission"},
		{`{"publishable_key":"` + pk + `","require_claims":[{"path":"metadata.plan"}]}`, "require_claim needs a claim path and at least one value"},
		{`{"issuer":"https://x.example"}`, "clerk needs a key source"},
		{`{"publishable_key":"` + pk + `","sign_in_url":"accounts.example.com"}`, `sign_in_url "accounts.example.com": not an absolute http(s) URL`},
		{`{"publishable_key":"` + pk + `","exclude":["health"],"csrf_trusted_origins":["a"]}`, "csrf_trusted_origins"}, // every mistake at once
		{`{"publishable_key":"` + pk + `","accept":["api_key"]}`, "accept api_key needs secret_key"},
		{`{"publishable_key":"` + pk + `","accept":["oauth_token"]}`, "accept oauth_token needs secret_key"},
		{`{"publishable_key":"` + pk + `","accept":["m2m_token"]}`, "accept m2m_token needs secret_key"},
		{`{"publishable_key":"` + pk + `","accept":["bearer"]}`, `accept: "bearer" is not a token type`},
		{`{"publishable_key":"` + pk + `","accept":["any","api_key"]}`, "accept any already takes every token type"},
		{`{"publishable_key":"` + pk + `","secret_key":"` + sk + `","machine_secret_key":"ak_0123456789"}`, "machine_secret_key verifies M2M tokens: add accept m2m_token"},
		{`{"publishable_key":"` + pk + `","secret_key":"` + sk + `","accept":["m2m_token"],"machine_secret_key":"sk_x"}`, "machine_secret_key must start with ak_"},
		{`{"publishable_key":"` + pk + `","require_scopes":[["read"]]}`, "require_scope applies to machine tokens"},
		{`{"publishable_key":"` + pk + `","secret_key":"` + sk + `","accept":["api_key"],"require_scopes":[[]]}`, "require_scope needs at least one scope"},
		{`{"publishable_key":"` + pk + `","secret_key":"` + sk + `","accept":["api_key"],"machine_cache_ttl":-1}`, "machine_cache_ttl -1ns is negative"},
		{`{"publishable_key":"` + pk + `","secret_key":"` + sk + `","accept":["api_key"],"machine_verify_rate":0}`, "machine_verify_rate 0"},
		{`{"publishable_key":"` + pk + `","organization_sync":{}}`, "organization_sync needs organization or personal_account patterns"},
		{`{"publishable_key":"` + pk + `","organization_sync":{"organization":["/orgs/*"]}}`, `organization_sync: organization pattern "/orgs/*": "*" is path-to-regexp syntax`},
		{`{"publishable_key":"` + pk + `","organization_sync":{"organization":["/orgs/(.*)"]}}`, "names no organization: add :slug or :id"},
		{`{"publishable_key":"` + pk + `","organization_sync":{"personal_account":["/me/:slug"]}}`, "takes no parameter"},
		{`{"publishable_key":"` + pk + `","organization_sync":{"organization":[]}}`, "organization_sync needs organization or personal_account patterns"},
		{`{"publishable_key":"` + pk + `","require_org":[]}`, "require_org needs at least one organization"},
		{`{"publishable_key":"` + pk + `","require_org":["a b"]}`, `require_org "a b" is neither`},
	} {
		var h Handler
		if err := json.Unmarshal([]byte(tc.json), &h); err != nil {
			t.Fatal(err)
		}
		err := provision(t, &h)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "clerk: ") {
			t.Errorf("%s: want an error with %q, got %v", tc.json, tc.want, err)
		}
		if err != nil && strings.Contains(err.Error(), sk) {
			t.Errorf("%s: the secret key appears in the error", tc.json)
		}
	}
	// The same settings, right, are accepted.
	var h Handler
	ok := `{"publishable_key":"` + pk + `","secret_key":"` + sk + `","api_url":"` + clerk.URL() + `","exclude":["/health","*.css"],` +
		`"sign_out_path":"/sign-out","csrf_trusted_origins":["https://app.example.com/"],"token_cache":10,` +
		`"organization_sync":{"organization":["/orgs/:slug","/orgs/:slug/(.*)"],"personal_account":["/me"]},"require_org":["acme"]}`
	if err := json.Unmarshal([]byte(ok), &h); err != nil {
		t.Fatal(err)
	}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
}

// TestTokensJudgedWhenReceived: a credential is judged at the time Caddy's
// server received the request (its start_time var), cached or not: a
// session from the header or the cookie, an M2M JWT, an API key.
func TestTokensJudgedWhenReceived(t *testing.T) {
	clerk := clerktest.NewT(t)
	admin := clerk.AdminUser()
	session := clerk.MustMint(clerktest.TokenOptions{User: &admin, Lifetime: time.Minute})
	m2m, err := clerk.MintM2MJWT(clerktest.M2MJWTOptions{Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	apiKey := clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: admin.ID}).Secret
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	sessions := &Handler{PublishableKey: clerk.PublishableKey(), FrontendAPIURL: clerk.FrontendAPIURL()}
	machines := &Handler{PublishableKey: clerk.PublishableKey(), FrontendAPIURL: clerk.FrontendAPIURL(),
		SecretKey: clerk.SecretKey(), APIURL: clerk.URL(), Accept: []string{"m2m_token", "api_key"}}
	for _, h := range []*Handler{sessions, machines} {
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		defer h.Cleanup()
	}
	serve := func(h *Handler, header, value string, received time.Time) (int, string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(header, value)
		w := httptest.NewRecorder()
		repl := caddy.NewReplacer()
		r := caddyhttp.PrepareRequest(req, repl, w, nil)
		caddyhttp.SetVar(r.Context(), startTimeVar, received)
		err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		reason, _ := repl.GetString("clerk.reason")
		if he, ok := err.(caddyhttp.HandlerError); ok {
			return he.StatusCode, reason
		}
		return w.Code, reason
	}
	bearer := "Bearer " + session
	deadline := time.Now().Add(5 * time.Second)
	for _, first := range []struct { // each route's keys load
		h     *Handler
		token string
	}{{sessions, bearer}, {machines, "Bearer " + m2m}} {
		for code, _ := serve(first.h, "Authorization", first.token, time.Now()); code != 200; code, _ = serve(first.h, "Authorization", first.token, time.Now()) {
			if time.Now().After(deadline) {
				t.Fatal("keys never loaded")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, c := range []struct {
		name          string
		h             *Handler
		header, value string
	}{
		{"Bearer session", sessions, "Authorization", bearer},
		{"session cookie", sessions, "Cookie", "__session=" + session + "; __client_uat=1"},
		{"M2M JWT", machines, "Authorization", "Bearer " + m2m},
	} {
		if code, reason := serve(c.h, c.header, c.value, time.Now()); code != 200 {
			t.Fatalf("%s, received now: %d %s", c.name, code, reason)
		}
		// Cached now, and valid on the clock: judged as received an hour on.
		if code, reason := serve(c.h, c.header, c.value, time.Now().Add(time.Hour)); code == 200 || !strings.Contains(reason, "expired") {
			t.Errorf("%s, received after exp: %d %q, want a refusal for expiry", c.name, code, reason)
		}
	}
	// An API key is cached for machine_cache_ttl (30 s) from when it was
	// verified: a request received after that asks the Backend API again.
	verifies := func() int { return clerk.Requests(clerktest.BAPIAPIKeyVerify) }
	before := verifies()
	for i, received := range []time.Time{time.Now(), time.Now(), time.Now().Add(time.Hour)} {
		if code, reason := serve(machines, "Authorization", "Bearer "+apiKey, received); code != 200 {
			t.Fatalf("API key, request %d: %d %s", i, code, reason)
		}
	}
	if got := verifies() - before; got != 2 {
		t.Errorf("API key: %d Backend API verifications, want 2 (the first request and the one received after the TTL)", got)
	}
}
