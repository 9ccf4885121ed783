package verifycompare

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	clerkjwt "github.com/clerk/clerk-sdk-go/v2/jwt"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

const (
	issuer = "https://clerk.example.com" // clerk-sdk-go accepts https://clerk.* issuers
	kid    = "ins_test0"
	azp    = "https://app.example.com"
)

// fixture is one RSA key, its JWK and a token it signed.
type fixture struct {
	jwk   []byte // the public key as a JWK, as Clerk's JWKS lists it
	token string
}

// newFixture makes a realistic v2 session token with an active
// organization (the shape verifier/bench_test.go uses), valid for an hour.
func newFixture(b *testing.B) fixture {
	b.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	enc := base64.RawURLEncoding
	jwk, err := json.Marshal(map[string]string{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": enc.EncodeToString(priv.N.Bytes()),
		"e": enc.EncodeToString(big.NewInt(int64(priv.E)).Bytes()),
	})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	header, err := json.Marshal(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT", "cat": verifier.CategorySession})
	if err != nil {
		b.Fatal(err)
	}
	payload, err := json.Marshal(map[string]any{
		"azp": azp, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix() - 10,
		"iss": issuer, "jti": "abcdef0123456789abcd", "sid": "sess_123", "sub": "user_123", "v": 2,
		"fva": []int{0, -1}, "fea": "o:invoices,o:reports",
		"o": map[string]any{"id": "org_2abc", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,1"},
	})
	if err != nil {
		b.Fatal(err)
	}
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	h := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
	if err != nil {
		b.Fatal(err)
	}
	return fixture{jwk: jwk, token: input + "." + enc.EncodeToString(sig)}
}

// BenchmarkVerifyCaddyClerk is caddy-clerk's verifier on the token with a
// warm key cache and no token cache: verifier.BenchmarkVerify, here so one
// run gives both sides.
func BenchmarkVerifyCaddyClerk(b *testing.B) {
	f := newFixture(b)
	doc := []byte(`{"keys":[` + string(f.jwk) + `]}`)
	kc := verifier.NewKeyCache(verifier.FuncSource("static", func(context.Context) ([]byte, time.Duration, error) {
		return doc, 0, nil
	}), verifier.CacheOptions{})
	defer kc.Close()
	v, err := verifier.New(verifier.Config{Keys: kc, Issuer: issuer, AuthorizedParties: []string{azp}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, f.token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, f.token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyClerkSDKGo is the same token through clerk-sdk-go v2's
// jwt.Verify with its JWK given (no network).
func BenchmarkVerifyClerkSDKGo(b *testing.B) {
	f := newFixture(b)
	var key clerk.JSONWebKey
	if err := json.Unmarshal(f.jwk, &key); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := clerkjwt.Verify(ctx, &clerkjwt.VerifyParams{Token: f.token, JWK: &key}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := clerkjwt.Verify(ctx, &clerkjwt.VerifyParams{Token: f.token, JWK: &key}); err != nil {
			b.Fatal(err)
		}
	}
}
