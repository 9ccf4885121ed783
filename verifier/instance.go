package verifier

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strings"
)

// Instance is what a publishable key says about a Clerk instance.
type Instance struct {
	// FrontendAPI is the Frontend API host, e.g. clerk.example.com or
	// happy-cat-12.clerk.accounts.dev.
	FrontendAPI string
	// Production is true for pk_live_ keys.
	Production bool
	// CookieSuffix names the suffixed cookies (__session_<suffix>).
	CookieSuffix string
}

// ParsePublishableKey decodes pk_test_/pk_live_ + base64("<host>$").
func ParsePublishableKey(pk string) (*Instance, error) {
	var prod bool
	var enc string
	switch {
	case strings.HasPrefix(pk, "pk_live_"):
		prod, enc = true, pk[len("pk_live_"):]
	case strings.HasPrefix(pk, "pk_test_"):
		enc = pk[len("pk_test_"):]
	default:
		return nil, errors.New("publishable key must start with pk_live_ or pk_test_")
	}
	enc = strings.TrimRight(enc, "=")
	raw, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(enc); err != nil {
			return nil, errors.New("publishable key is not valid base64 after its prefix")
		}
	}
	host, ok := strings.CutSuffix(string(raw), "$")
	if !ok || strings.Contains(host, "$") || !strings.Contains(host, ".") || strings.ContainsAny(host, "/?#@ \t\r\n") {
		return nil, errors.New("publishable key does not encode a Frontend API host")
	}
	return &Instance{FrontendAPI: host, Production: prod, CookieSuffix: CookieSuffix(pk)}, nil
}

// FrontendAPIURL is https://<Frontend API host>.
func (i *Instance) FrontendAPIURL() string { return "https://" + i.FrontendAPI }

// Issuer is the iss of the instance's session tokens.
func (i *Instance) Issuer() string { return i.FrontendAPIURL() }

// JWKSURL is the public JWKS of the Frontend API.
func (i *Instance) JWKSURL() string { return i.FrontendAPIURL() + "/.well-known/jwks.json" }

// AccountsURL is the Account Portal origin: clerk.example.com →
// https://accounts.example.com, foo-13.clerk.accounts.dev →
// https://foo-13.accounts.dev. Empty when the host follows neither form.
func (i *Instance) AccountsURL() string {
	h := i.FrontendAPI
	switch {
	case strings.Contains(h, ".clerk.accounts."):
		return "https://" + strings.Replace(h, ".clerk.accounts.", ".accounts.", 1)
	case strings.HasPrefix(h, "clerk.accounts."):
		return "https://accounts." + strings.TrimPrefix(h, "clerk.accounts.")
	case strings.HasPrefix(h, "clerk."):
		return "https://accounts." + strings.TrimPrefix(h, "clerk.")
	}
	return ""
}

// SignInURL is the Account Portal's sign-in page, or empty if unknown.
func (i *Instance) SignInURL() string {
	if a := i.AccountsURL(); a != "" {
		return a + "/sign-in"
	}
	return ""
}

// CookieSuffix is the first 8 characters of base64url(SHA-1(pk)), as
// @clerk/shared computes it for __session_<suffix> and friends.
func CookieSuffix(pk string) string {
	sum := sha1.Sum([]byte(pk))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:8]
}
