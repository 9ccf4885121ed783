package caddyclerk

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
)

// The semantic checks of each setting. Provision runs them all, so a JSON
// config gets the same checks as a Caddyfile; the Caddyfile parser runs a
// setting's check as it reads it, only to name the line. Messages name the
// setting and the fix; Provision adds "clerk: ".

// maxTokenCache bounds token_cache (about 12 GB when full).
const maxTokenCache = 10_000_000

func checkPublishableKey(v string) error {
	if !strings.HasPrefix(v, "pk_") {
		return errors.New("publishable_key must start with pk_live_ or pk_test_ (it is the key shown as Publishable key in the Clerk dashboard)")
	}
	return nil
}

func checkSecretKey(v string) error {
	if !strings.HasPrefix(v, "sk_") {
		return errors.New("secret_key must start with sk_live_ or sk_test_; prefer {env.CLERK_SECRET_KEY} over pasting it here")
	}
	return nil
}

func checkExclude(patterns []string) error {
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			return fmt.Errorf("exclude pattern %q must start with / (or *), e.g. /health or /assets/*", p)
		}
	}
	return nil
}

func checkTrustedOrigins(origins []string) error {
	for _, o := range origins {
		if authn.OriginOf(o) != strings.TrimRight(o, "/") {
			return fmt.Errorf("csrf_trusted_origins: %q is not an origin (scheme://host[:port], no path)", o)
		}
	}
	return nil
}

func checkTokenCache(n int) error {
	if n < 0 || n > maxTokenCache {
		return fmt.Errorf("token_cache takes a number of entries (1 to %d) or off (0), not %d", maxTokenCache, n)
	}
	return nil
}

func checkSignOutPath(p string) error {
	if p != "" && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("sign_out_path %q must be a path starting with /, e.g. /sign-out", p)
	}
	return nil
}

func checkClaim(c ClaimRequirement) error {
	if c.Path == "" || len(c.Values) == 0 {
		return errors.New("require_claim needs a claim path and at least one value, e.g. require_claim metadata.plan pro")
	}
	return nil
}

func checkURL(setting, s string) error {
	u, err := url.Parse(s)
	if err == nil && (u.Scheme != "https" && u.Scheme != "http" || u.Host == "") {
		err = errors.New("not an absolute http(s) URL")
	}
	if err != nil {
		return fmt.Errorf("%s %q: %v", setting, s, err)
	}
	return nil
}

func checkUserinfoPath(p string) error {
	if p != "" && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("userinfo_path %q must be a path starting with /, e.g. /.clerk/me", p)
	}
	return nil
}

func checkSharedCache(v string) error {
	if v != "" && v != sharedCacheAllow {
		return fmt.Errorf("shared_cache takes allow (let shared caches store authenticated responses), not %q; "+
			"leave it out to keep them private", v)
	}
	return nil
}

func checkKeySource(h *Handler) error {
	if h.PublishableKey == "" && h.SecretKey == "" && h.JWKSURL == "" && h.JWTKey == "" {
		return errors.New("clerk needs a key source: add publishable_key (and secret_key for the Backend API), jwks_url or jwt_key")
	}
	return nil
}

// hasPlaceholder: the value is only known once Provision replaces it.
func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// checkSettings runs every setting's check on the provisioned values.
func (h *Handler) checkSettings() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if h.PublishableKey != "" {
		add(checkPublishableKey(h.PublishableKey))
	}
	if h.SecretKey != "" {
		add(checkSecretKey(h.SecretKey))
	}
	for _, u := range []struct{ setting, value string }{{"jwks_url", h.JWKSURL}, {"api_url", h.APIURL},
		{"frontend_api_url", h.FrontendAPIURL}, {"sign_in_url", h.SignInURL}} {
		if u.value != "" {
			add(checkURL(u.setting, u.value))
		}
	}
	add(checkKeySource(h))
	if h.ClockSkew != nil && *h.ClockSkew < 0 {
		add(fmt.Errorf("clock_skew %s is negative: use a duration such as 5s, or 0 for none", time.Duration(*h.ClockSkew)))
	}
	add(checkExclude(h.Exclude))
	add(checkTrustedOrigins(h.CSRFTrustedOrigins))
	if h.TokenCache != nil {
		add(checkTokenCache(*h.TokenCache))
	}
	add(checkSignOutPath(h.SignOutPath))
	if h.SignOutPath != "" && h.SecretKey == "" {
		add(errors.New("sign_out_path needs secret_key: signing out revokes the session at Clerk's Backend API; " +
			"without that, the Account Portal would sign the browser straight back in"))
	}
	for _, list := range h.RequireRoles {
		if len(list) == 0 {
			add(errors.New("require_role needs at least one role, e.g. admin or org:admin"))
		}
	}
	for _, list := range h.RequirePermissions {
		if len(list) == 0 {
			add(errors.New("require_permission needs at least one permission, e.g. org:invoices:read"))
		}
	}
	for _, c := range h.RequireClaims {
		add(checkClaim(c))
	}
	add(h.checkMachineSettings())
	add(checkSharedCache(h.SharedCache))
	add(checkUserinfoPath(h.UserinfoPath))
	switch {
	case h.UserinfoPath != "" && h.UserinfoPath == h.SignOutPath:
		add(fmt.Errorf("userinfo_path and sign_out_path are both %s: give each its own path", h.UserinfoPath))
	case h.UserinfoPath != "" && h.ForwardedRequest:
		add(errors.New("userinfo_path does not work with forwarded_request: the front proxy does not pass the answer's " +
			"body on; serve it from a clerk handler on the site itself"))
	}
	return errors.Join(errs...) // every mistake at once, in the order of the fields
}
