package caddyclerk

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/verifier"
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
	add(h.checkBillingSettings())
	add(h.checkMachineSettings())
	add(checkOrganizationSync(h.OrganizationSync))
	if h.RequireOrg != nil {
		add(checkRequireOrg(h.RequireOrg))
	}
	if h.FrontendAPIProxy != nil {
		add(checkFrontendAPIProxy(h.FrontendAPIProxy))
		add(checkProxyKeys(h))
	}
	if h.Satellite != "" {
		add(checkSatellite(h.Satellite))
		add(checkSatelliteSettings(h))
	}
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

// checkScoped checks a require_plan or require_feature value (kind "plan"
// or "feature"): a key, optionally scoped u:/user: or o:/org:/organization:,
// as Clerk's has() looks it up.
func checkScoped(setting, kind, v string) error {
	fix := fmt.Sprintf("write %s pro (the user's or the organization's), u:pro (the user's) or o:pro (the organization's)", setting)
	if kind == "feature" {
		fix = strings.ReplaceAll(fix, "pro", "export")
	}
	if v == "" {
		return fmt.Errorf("%s: an empty %s; %s", setting, kind, fix)
	}
	if strings.ContainsAny(v, ", \t") {
		return fmt.Errorf("%s %q: give each %s as its own value (any of them will do), not joined with commas or spaces", setting, v, kind)
	}
	parts := strings.Split(v, ":")
	switch {
	case len(parts) == 1:
		return nil
	case len(parts) > 2:
		return fmt.Errorf("%s %q: a %s key has no colon, only its scope is followed by one; %s", setting, v, kind, fix)
	case parts[0] == "":
		return fmt.Errorf("%s %q: nothing before the colon; %s", setting, v, fix)
	case parts[1] == "":
		return fmt.Errorf("%s %q: nothing after the colon; %s", setting, v, fix)
	}
	switch parts[0] {
	case "u", "user", "o", "org", "organization":
		return nil
	}
	return fmt.Errorf("%s %q: unknown scope %q (Clerk's has() would fail); %s", setting, v, parts[0], fix)
}

// checkReverification checks require_reverification: a preset alone, or a
// level with minutes.
func checkReverification(r *ReverificationRequirement) error {
	const usage = "use a preset (strict_mfa, strict, moderate, lax) or a level with minutes " +
		"(first_factor, second_factor or multi_factor, e.g. second_factor 10)"
	switch {
	case r.Preset != "" && r.Level != "":
		return fmt.Errorf("require_reverification: give a preset or a level, not both; %s", usage)
	case r.Preset != "":
		p, ok := verifier.ReverificationPresets[r.Preset]
		if !ok {
			return fmt.Errorf("require_reverification %q is neither a preset nor a level; %s", r.Preset, usage)
		}
		if r.AfterMinutes != 0 {
			return fmt.Errorf("require_reverification %s: a preset takes no minutes (%s means %s within %d); "+
				"for other minutes give a level, e.g. require_reverification %s %d",
				r.Preset, r.Preset, p.Level, p.AfterMinutes, p.Level, p.AfterMinutes)
		}
		return nil
	case r.Level == "":
		return fmt.Errorf("require_reverification needs a preset or a level: %s", usage)
	}
	if _, _, ok := (verifier.Reverification{Level: r.Level, AfterMinutes: 1}).Resolve(); !ok {
		return fmt.Errorf("require_reverification %q is neither a preset nor a level; %s", r.Level, usage)
	}
	if r.AfterMinutes <= 0 {
		return fmt.Errorf("require_reverification %s needs minutes, a whole number above 0 (not %d), e.g. require_reverification %s 10",
			r.Level, r.AfterMinutes, r.Level)
	}
	return nil
}

// checkBillingSettings are the require_plan, require_feature and
// require_reverification checks of checkSettings.
func (h *Handler) checkBillingSettings() error {
	var errs []error
	for _, rule := range []struct {
		setting, kind string
		lists         [][]string
	}{{"require_plan", "plan", h.RequirePlans}, {"require_feature", "feature", h.RequireFeatures}} {
		for _, list := range rule.lists {
			if len(list) == 0 {
				errs = append(errs, checkScoped(rule.setting, rule.kind, ""))
			}
			for _, v := range list {
				if err := checkScoped(rule.setting, rule.kind, v); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if h.RequireReverification != nil {
		if err := checkReverification(h.RequireReverification); err != nil {
			errs = append(errs, err)
		}
	}
	if len(h.RequirePlans)+len(h.RequireFeatures) > 0 || h.RequireReverification != nil {
		if acc, err := parseAccept(h.Accept); err == nil && !acc.Has(verifier.TokenSession) {
			errs = append(errs, errors.New("require_plan, require_feature and require_reverification ask about a user's session, "+
				"and this route accepts none (machine tokens never hold them): add session_token to accept, or remove them"))
		}
	}
	return errors.Join(errs...)
}

// checkOrgPatterns checks one organization_sync list (organization or
// personal_account).
func checkOrgPatterns(list string, patterns []string) error {
	if len(patterns) == 0 {
		return fmt.Errorf("organization_sync: %s needs at least one pattern, e.g. %s", list, orgPatternExample(list))
	}
	var errs []error
	for _, p := range patterns {
		if _, err := authn.ParseOrgPattern(p, list == "personal_account"); err != nil {
			errs = append(errs, fmt.Errorf("organization_sync: %s %w", list, err))
		}
	}
	return errors.Join(errs...)
}

func orgPatternExample(list string) string {
	if list == "personal_account" {
		return "/me /me/(.*)"
	}
	return "/orgs/:slug /orgs/:slug/(.*)"
}

func checkOrganizationSync(s *OrganizationSync) error {
	if s == nil {
		return nil
	}
	if len(s.Organization) == 0 && len(s.PersonalAccount) == 0 {
		return errors.New("organization_sync needs organization or personal_account patterns, e.g. organization /orgs/:slug /orgs/:slug/(.*)")
	}
	var errs []error
	if s.Organization != nil {
		errs = append(errs, checkOrgPatterns("organization", s.Organization))
	}
	if s.PersonalAccount != nil {
		errs = append(errs, checkOrgPatterns("personal_account", s.PersonalAccount))
	}
	return errors.Join(errs...)
}

func checkRequireOrg(orgs []string) error {
	if len(orgs) == 0 {
		return errors.New("require_org needs at least one organization: an id (org_…) or a slug, e.g. require_org acme")
	}
	for _, o := range orgs {
		if o == "" || o == "org_" || strings.ContainsFunc(o, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("/?#&%", r) }) {
			return fmt.Errorf("require_org %q is neither an organization id (org_…) nor a slug (such as acme)", o)
		}
	}
	return nil
}

// defaultFAPIUpstream is the shared host Clerk's own proxy helper uses.
const defaultFAPIUpstream = "https://frontend-api.clerk.dev"

// checkFrontendAPIProxy checks the URLs; the keys are checked with the
// other settings (checkProxyKeys).
func checkFrontendAPIProxy(p *FrontendAPIProxy) error {
	if _, err := proxyURL("frontend_api_proxy", p.URL, true); err != nil {
		return err
	}
	if p.Upstream != "" {
		if _, err := proxyURL("frontend_api_proxy upstream", p.Upstream, false); err != nil {
			return err
		}
	}
	return nil
}

// proxyURL parses the public URL (withPath: a path is required) or the
// upstream (an origin). Plain http is for loopback tests and demos only:
// the Frontend API's cookies and the secret key must not cross a network
// in the clear.
func proxyURL(setting, raw string, withPath bool) (*url.URL, error) {
	example := "https://app.example.com/__clerk"
	if !withPath {
		example = defaultFAPIUpstream
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s %q is not an absolute URL without query, e.g. %s", setting, raw, example)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())) {
		return nil, fmt.Errorf("%s %q must be https (plain http only on localhost or 127.0.0.1), e.g. %s", setting, raw, example)
	}
	p := strings.TrimRight(u.Path, "/")
	switch {
	case withPath && p == "":
		return nil, fmt.Errorf("%s %q needs a path that is only the Frontend API's, e.g. %s", setting, raw, example)
	case !withPath && p != "":
		return nil, fmt.Errorf("%s %q must be an origin (no path), e.g. %s", setting, raw, example)
	case withPath && (u.RawPath != "" || !plainPrefix(p)):
		return nil, fmt.Errorf("%s %q: the path may hold only letters, digits, '-', '_', '.' and '/' "+
			"and no '.' or '..' segments, e.g. /__clerk", setting, raw)
	}
	u.Path = p
	return u, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func plainPrefix(p string) bool {
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return false
			}
		}
	}
	return true
}

// checkProxyKeys: Clerk proxies production instances only, and the
// Frontend API accepts a proxy only with the instance's secret key.
func checkProxyKeys(h *Handler) error {
	if h.SecretKey == "" {
		return errors.New("frontend_api_proxy needs secret_key: the Frontend API accepts a proxy only with the " +
			"instance's secret key (sent upstream as Clerk-Secret-Key, never to a browser)")
	}
	if strings.HasPrefix(h.PublishableKey, "pk_test_") || strings.HasPrefix(h.SecretKey, "sk_test_") {
		return errors.New("frontend_api_proxy works with production instances only (Clerk does not proxy development " +
			"instances): use the pk_live_/sk_live_ keys of your production instance, or remove frontend_api_proxy in development")
	}
	if h.FrontendAPIURL != "" {
		if u, _ := proxyURL("", h.FrontendAPIProxy.URL, true); u != nil && strings.TrimRight(h.FrontendAPIURL, "/") != u.String() {
			return fmt.Errorf("frontend_api_url %q and frontend_api_proxy %q name two Frontend APIs: remove frontend_api_url "+
				"(frontend_api_proxy sets it)", h.FrontendAPIURL, h.FrontendAPIProxy.URL)
		}
	}
	return nil
}

// checkSatellite: the satellite domain is a host, as Clerk's domain option.
func checkSatellite(domain string) error {
	if strings.Contains(domain, "://") || strings.ContainsAny(domain, "/?#@ \t") || !strings.Contains(domain, ".") && !loopbackHost(domain) {
		return fmt.Errorf("satellite %q takes this site's domain only, e.g. satellite docs.other.org (no scheme, no path)", domain)
	}
	return nil
}

// checkSatelliteSettings: a satellite signs in on the primary domain, and
// syncs with it through the handshake.
func checkSatelliteSettings(h *Handler) error {
	var errs []error
	if h.PublishableKey == "" {
		errs = append(errs, errors.New("satellite needs publishable_key: it names the instance whose primary domain the site syncs with"))
	}
	if h.SignInURL == "" {
		errs = append(errs, fmt.Errorf("satellite needs sign_in_url: the primary domain's sign-in page, "+
			"e.g. sign_in_url https://app.example.com/sign-in (a satellite cannot sign a browser in itself)"))
	} else if u, err := url.Parse(h.SignInURL); err == nil && u.Host != "" &&
		strings.EqualFold(u.Hostname(), hostOnly(h.Satellite)) {
		errs = append(errs, fmt.Errorf("sign_in_url %q is on the satellite %s itself: use the primary domain's sign-in page, "+
			"e.g. https://app.example.com/sign-in", h.SignInURL, h.Satellite))
	}
	if h.Handshake != nil && !*h.Handshake || h.SessionCookie != nil && !*h.SessionCookie {
		errs = append(errs, errors.New("satellite needs the handshake and the session cookie: remove handshake off and session_cookie off"))
	}
	return errors.Join(errs...)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
