package clerktest

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

var kidRE = regexp.MustCompile(`^ins_[0-9A-Za-z]{27}$`)

func TestJWKSShape(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		name, url, bearer string
	}{
		{"fapi", s.JWKSURL(), ""},
		{"bapi", s.BackendAPIURL() + "/jwks", s.SecretKey()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, tc.url, tc.bearer)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if cc := r.header.Get("Cache-Control"); cc != "" {
				t.Errorf("Cache-Control %q by default", cc)
			}
			if r.header.Get("Clerk-Trace-Id") == "" {
				t.Error("no Clerk-Trace-Id")
			}
			m := decodeObject(t, r.body)
			if keysOf(m) != "keys" {
				t.Fatalf("top-level keys %s", keysOf(m))
			}
			keys := m["keys"].([]any)
			if len(keys) != 1 {
				t.Fatalf("%d keys", len(keys))
			}
			k := keys[0].(map[string]any)
			if got := keysOf(k); got != "alg,e,kid,kty,n,use" {
				t.Fatalf("key members %s", got)
			}
			if k["use"] != "sig" || k["kty"] != "RSA" || k["alg"] != "RS256" || k["e"] != "AQAB" || k["kid"] != s.CurrentKeyID() {
				t.Fatalf("key %v", k)
			}
			// Clerk's member order.
			if !strings.HasPrefix(string(r.body), `{"keys":[{"use":"sig","kty":"RSA","kid":"ins_`) {
				t.Fatalf("body %s", r.body)
			}
			set, err := jwk.Parse(r.body)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := set.LookupKeyID(s.CurrentKeyID()); !ok || set.Len() != 1 {
				t.Fatalf("jwx set: len %d", set.Len())
			}
		})
	}
	if !kidRE.MatchString(s.CurrentKeyID()) {
		t.Errorf("kid %q not Clerk-like", s.CurrentKeyID())
	}
}

func TestJWKSCacheControl(t *testing.T) {
	s := newServer(t, WithJWKSMaxAge(5*time.Minute))
	if cc := get(t, s.JWKSURL(), "").header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("Cache-Control %q", cc)
	}
	s.SetJWKSMaxAge(-1)
	if cc := get(t, s.JWKSURL(), "").header.Get("Cache-Control"); cc != "" {
		t.Fatalf("Cache-Control %q after disabling", cc)
	}
}

func TestRawJWKS(t *testing.T) {
	s := newServer(t)
	s.SetRawJWKS([]byte(`{"keys":[]}`))
	if b := string(get(t, s.JWKSURL(), "").body); b != `{"keys":[]}` {
		t.Fatalf("body %s", b)
	}
	s.SetRawJWKS(nil)
	if b := get(t, s.JWKSURL(), "").body; !strings.Contains(string(b), s.CurrentKeyID()) {
		t.Fatalf("body %s", b)
	}
}

func TestBAPIRequiresSecret(t *testing.T) {
	s := newServer(t)
	u := s.BackendAPIURL() + "/jwks"
	for _, bearer := range []string{"", "sk_test_wrong", s.SecretKey() + "x"} {
		r := get(t, u, bearer)
		wantClerkError(t, r, 401, "clerk_key_invalid")
		e := decodeObject(t, r.body)["errors"].([]any)[0].(map[string]any)
		if e["message"] != "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct." {
			t.Fatalf("message %v", e["message"])
		}
		if len(e["meta"].(map[string]any)) != 0 {
			t.Fatalf("meta %v", e["meta"])
		}
	}
	// The secret without the Bearer scheme is refused too.
	req, _ := newRequest(context.Background(), u, "")
	req.Header.Set("Authorization", s.SecretKey())
	res, err := noKeepAlive().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("bare secret: status %d", res.StatusCode)
	}
	if get(t, u, s.SecretKey()).status != 200 {
		t.Fatal("right secret refused")
	}
}

func TestKeysAndURLs(t *testing.T) {
	s := newServer(t)
	host := strings.TrimPrefix(s.URL(), "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") || strings.HasSuffix(s.URL(), "/") {
		t.Fatalf("URL %q", s.URL())
	}
	pk := s.PublishableKey()
	enc, ok := strings.CutPrefix(pk, "pk_test_")
	if !ok || strings.Contains(enc, "=") {
		t.Fatalf("publishable key %q", pk)
	}
	raw, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || string(raw) != host+"$" {
		t.Fatalf("pk decodes to %q (%v), want %q", raw, err, host+"$")
	}
	if !regexp.MustCompile(`^sk_test_[0-9A-Za-z]{40}$`).MatchString(s.SecretKey()) {
		t.Fatalf("secret %q", s.SecretKey())
	}
	if s.Issuer() != s.URL() || s.FrontendAPIURL() != s.URL() || s.AccountsURL() != s.URL()+"/accounts" {
		t.Fatal("URL accessors disagree")
	}

	p := newServer(t, Production(), WithoutDemoUsers())
	if !strings.HasPrefix(p.PublishableKey(), "pk_live_") || !strings.HasPrefix(p.SecretKey(), "sk_live_") {
		t.Fatalf("production keys %q %q", p.PublishableKey(), p.SecretKey())
	}
	if p.AdminUser().ID != "" {
		t.Fatal("demo users registered despite WithoutDemoUsers")
	}
	if !strings.Contains(s.PublicKeyPEM(), "BEGIN PUBLIC KEY") {
		t.Fatal("PEM")
	}
}

func TestRotateKey(t *testing.T) {
	s := newServer(t)
	old := s.CurrentKeyID()
	kid := s.RotateKeyTo(testKey(1))
	if kid == old || s.CurrentKeyID() != kid || !kidRE.MatchString(kid) {
		t.Fatalf("rotation: old %s new %s current %s", old, kid, s.CurrentKeyID())
	}
	set, err := jwk.Parse(get(t, s.JWKSURL(), "").body)
	if err != nil {
		t.Fatal(err)
	}
	_, hasOld := set.LookupKeyID(old)
	_, hasNew := set.LookupKeyID(kid)
	if set.Len() != 2 || !hasOld || !hasNew {
		t.Fatalf("after rotation: %d keys, old %v new %v", set.Len(), hasOld, hasNew)
	}
	if h, _ := segments(t, s.MustMint(TokenOptions{})); h["kid"] != kid {
		t.Fatalf("new tokens use %v", h["kid"])
	}
	// An old key still signs on request, with its own kid.
	if h, _ := segments(t, s.MustMint(TokenOptions{SigningKey: s.PrivateKey(old)})); h["kid"] != old {
		t.Fatalf("old-key token kid %v", h["kid"])
	}

	s.DropOldKeys()
	if ids := s.KeyIDs(); len(ids) != 1 || ids[0] != kid {
		t.Fatalf("after DropOldKeys: %v", ids)
	}
	set, _ = jwk.Parse(get(t, s.JWKSURL(), "").body)
	if _, ok := set.LookupKeyID(old); ok || set.Len() != 1 {
		t.Fatal("old key still served")
	}

	s.RotateKeyTo(testKey(2))
	if !s.RemoveKey(kid) || s.RemoveKey(kid) {
		t.Fatal("RemoveKey result")
	}
	if len(s.KeyIDs()) != 1 {
		t.Fatalf("after RemoveKey: %v", s.KeyIDs())
	}
}

func TestRotateKeyGenerates(t *testing.T) {
	if testing.Short() {
		t.Skip("generates an RSA key")
	}
	s := newServer(t)
	kid := s.RotateKey()
	if s.PrivateKey(kid) == nil || s.PrivateKey(kid).Equal(testKey(0)) {
		t.Fatal("RotateKey did not make a new key")
	}
}
