package caddyclerk

import (
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("clerk", parseCaddyfile)
	// Authentication runs before basic_auth and everything that serves.
	httpcaddyfile.RegisterDirectiveOrder("clerk", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var c Handler
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return &c, err
}

// subdirectives lists what a clerk block accepts, for error messages.
const subdirectives = "publishable_key, secret_key, jwks_url, jwt_key, issuer, api_url, frontend_api_url, " +
	"sign_in_url, authorized_parties, clock_skew, session_cookie, allow_pending, exclude, require_role, " +
	"require_permission, require_claim, optional, csrf, csrf_trusted_origins, strip_credentials, token_cache, " +
	"handshake, sign_out_path, after_sign_out_url, forwarded_request, accept, machine_secret_key, require_scope, machine_cache_ttl, " +
	"machine_verify_rate, machine_stale_if_error, require_plan, require_feature, require_reverification, " +
	"organization_sync, require_org, frontend_api_proxy, satellite, shared_cache, userinfo_path"

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	clerk [<matcher>] {
//	    publishable_key    <pk_…>
//	    secret_key         <sk_…>
//	    jwks_url           <url>
//	    jwt_key            <PEM text or file path>
//	    issuer             <url>
//	    api_url            <url>
//	    frontend_api_url   <url>
//	    sign_in_url        <url>
//	    authorized_parties <origin…>
//	    clock_skew         <duration>
//	    session_cookie     on|off
//	    allow_pending
//	    exclude            <path pattern…>
//	    require_role       <role…>
//	    require_permission <permission…>
//	    require_claim      <claim.path> <value…>
//	    optional
//	    csrf               on|off
//	    csrf_trusted_origins <origin…>
//	    strip_credentials
//	    token_cache        <entries>|off
//	    handshake          on|off
//	    sign_out_path      <path>
//	    after_sign_out_url <url or path>
//	    forwarded_request
//	    accept             session_token|m2m_token|api_key|oauth_token… | any
//	    machine_secret_key <ak_…>
//	    require_scope      <scope…>
//	    machine_cache_ttl  <duration>
//	    machine_verify_rate <per second>
//	    machine_stale_if_error <duration>
//	    require_plan       <plan…>
//	    require_feature    <feature…>
//	    require_reverification strict_mfa|strict|moderate|lax
//	    require_reverification first_factor|second_factor|multi_factor <minutes>
//	    organization_sync {
//	        organization     <pattern…>   # e.g. /orgs/:slug /orgs/:slug/(.*)
//	        personal_account <pattern…>   # e.g. /me /me/(.*)
//	    }
//	    require_org        <id or slug…>
//	    frontend_api_proxy <public URL> [<upstream>]
//	    satellite          <domain>
//	    shared_cache       allow
//	    userinfo_path      <path>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("clerk takes no arguments on its line (only a matcher); put settings in a block, e.g. clerk { publishable_key pk_… }")
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		single := func() (string, error) {
			if seen[name] {
				return "", d.Errf("%s is set twice in this clerk block; keep one", name)
			}
			seen[name] = true
			if !d.NextArg() {
				return "", d.Errf("%s needs a value", name)
			}
			v := d.Val()
			if d.NextArg() {
				return "", d.Errf("%s takes one value, got more (quote values with spaces)", name)
			}
			return v, nil
		}
		onOff := func() (*bool, error) {
			v, err := single()
			if err != nil {
				return nil, err
			}
			if v != "on" && v != "off" {
				return nil, d.Errf("%s takes on or off, not %q", name, v)
			}
			on := v == "on"
			return &on, nil
		}
		flag := func() error {
			if seen[name] {
				return d.Errf("%s is set twice in this clerk block; keep one", name)
			}
			seen[name] = true
			if d.NextArg() {
				return d.Errf("%s takes no value", name)
			}
			return nil
		}
		var err error
		switch name {
		case "publishable_key":
			if h.PublishableKey, err = single(); err == nil && !hasPlaceholder(h.PublishableKey) {
				err = lineErr(d, checkPublishableKey(h.PublishableKey))
			}
		case "secret_key":
			if h.SecretKey, err = single(); err == nil && !hasPlaceholder(h.SecretKey) {
				err = lineErr(d, checkSecretKey(h.SecretKey))
			}
		case "jwks_url":
			h.JWKSURL, err = single()
		case "jwt_key":
			h.JWTKey, err = single()
		case "issuer":
			h.Issuer, err = single()
		case "api_url":
			h.APIURL, err = single()
		case "frontend_api_url":
			h.FrontendAPIURL, err = single()
		case "sign_in_url":
			h.SignInURL, err = single()
		case "authorized_parties":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("authorized_parties needs at least one origin, e.g. https://app.example.com")
			}
			h.AuthorizedParties = append(h.AuthorizedParties, args...)
		case "clock_skew":
			var v string
			if v, err = single(); err == nil {
				dur, perr := caddy.ParseDuration(v)
				if perr != nil || dur < 0 {
					return d.Errf("clock_skew %q is not a duration such as 5s", v)
				}
				cd := caddy.Duration(dur)
				h.ClockSkew = &cd
			}
		case "session_cookie":
			h.SessionCookie, err = onOff()
		case "allow_pending":
			err = flag()
			h.AllowPending = true
		case "optional":
			err = flag()
			h.Optional = true
		case "exclude":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("exclude needs at least one path pattern, e.g. /health or /assets/*")
			}
			h.Exclude = append(h.Exclude, args...)
			err = lineErr(d, checkExclude(args))
		case "require_role":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("require_role needs at least one role, e.g. admin or org:admin")
			}
			h.RequireRoles = append(h.RequireRoles, args)
		case "require_permission":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("require_permission needs at least one permission, e.g. org:invoices:read")
			}
			h.RequirePermissions = append(h.RequirePermissions, args)
		case "require_claim":
			args := d.RemainingArgs()
			c := ClaimRequirement{Values: []string{}}
			if len(args) > 0 {
				c = ClaimRequirement{Path: args[0], Values: args[1:]}
			}
			h.RequireClaims = append(h.RequireClaims, c)
			err = lineErr(d, checkClaim(c))
		case "csrf":
			h.CSRF, err = onOff()
		case "csrf_trusted_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("csrf_trusted_origins needs at least one origin, e.g. https://app.example.com")
			}
			h.CSRFTrustedOrigins = append(h.CSRFTrustedOrigins, args...)
			err = lineErr(d, checkTrustedOrigins(slices.DeleteFunc(args, hasPlaceholder)))
		case "token_cache":
			var v string
			if v, err = single(); err == nil {
				n := 0
				if v != "off" {
					var perr error
					n, perr = strconv.Atoi(v)
					if perr != nil || n <= 0 {
						return d.Errf("token_cache takes a number of entries (1 to %d) or off, not %q", maxTokenCache, v)
					}
					err = lineErr(d, checkTokenCache(n))
				}
				h.TokenCache = &n
			}
		case "strip_credentials":
			err = flag()
			h.StripCredentials = true
		case "handshake":
			h.Handshake, err = onOff()
		case "sign_out_path":
			if h.SignOutPath, err = single(); err == nil {
				err = lineErr(d, checkSignOutPath(h.SignOutPath))
			}
		case "after_sign_out_url":
			h.AfterSignOutURL, err = single()
		case "forwarded_request":
			err = flag()
			h.ForwardedRequest = true
		case "accept":
			if seen[name] {
				return d.Errf("accept is set twice in this clerk block; list every type on one line")
			}
			seen[name] = true
			if h.Accept = d.RemainingArgs(); len(h.Accept) == 0 {
				return d.Errf("accept needs token types: session_token, m2m_token, api_key, oauth_token, or any")
			}
			_, perr := parseAccept(h.Accept)
			err = lineErr(d, perr)
		case "machine_secret_key":
			if h.MachineSecretKey, err = single(); err == nil && !hasPlaceholder(h.MachineSecretKey) {
				err = lineErr(d, checkMachineSecretKey(h.MachineSecretKey))
			}
		case "require_scope":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("require_scope needs at least one scope, e.g. read:invoices")
			}
			h.RequireScopes = append(h.RequireScopes, args)
		case "machine_cache_ttl", "machine_stale_if_error":
			var v string
			if v, err = single(); err == nil {
				dur, perr := caddy.ParseDuration(v)
				if perr != nil || dur < 0 {
					return d.Errf("%s %q is not a duration such as 30s (0 turns it off)", name, v)
				}
				cd := caddy.Duration(dur)
				if name == "machine_cache_ttl" {
					h.MachineCacheTTL = &cd
				} else {
					h.MachineStaleIfError = &cd
				}
			}
		case "machine_verify_rate":
			var v string
			if v, err = single(); err == nil {
				n, perr := strconv.ParseFloat(v, 64)
				if perr != nil || !(n > 0 && n <= 100_000) {
					return d.Errf("machine_verify_rate takes verifications per second, e.g. 20, not %q", v)
				}
				h.MachineVerifyRate = &n
			}
		case "require_plan", "require_feature":
			args := d.RemainingArgs()
			kind := strings.TrimPrefix(name, "require_")
			if len(args) == 0 {
				return lineErr(d, checkScoped(name, kind, ""))
			}
			for _, v := range args {
				if err = lineErr(d, checkScoped(name, kind, v)); err != nil {
					return err
				}
			}
			if name == "require_plan" {
				h.RequirePlans = append(h.RequirePlans, args)
			} else {
				h.RequireFeatures = append(h.RequireFeatures, args)
			}
		case "require_reverification":
			if seen[name] {
				return d.Errf("require_reverification is set twice in this clerk block; keep one (the stricter)")
			}
			seen[name] = true
			args := d.RemainingArgs()
			if len(args) > 2 {
				return d.Errf("require_reverification takes a preset, or a level and minutes, e.g. require_reverification strict or second_factor 10")
			}
			r := &ReverificationRequirement{}
			if len(args) > 0 {
				switch args[0] {
				case verifier.LevelFirstFactor, verifier.LevelSecondFactor, verifier.LevelMultiFactor:
					r.Level = args[0]
				default:
					r.Preset = args[0]
				}
			}
			if len(args) == 2 {
				n, perr := strconv.Atoi(args[1])
				if perr != nil {
					if r.Level != "" {
						return d.Errf("require_reverification %s: minutes %q must be a whole number above 0, e.g. %s 10", r.Level, args[1], r.Level)
					}
					n = -1 // whatever follows a preset is too much
				}
				r.AfterMinutes = n
			}
			h.RequireReverification = r
			err = lineErr(d, checkReverification(r))
		case "organization_sync":
			if err = h.unmarshalOrganizationSync(d, seen[name]); err != nil {
				return err
			}
			seen[name] = true
			continue // its block is read
		case "require_org":
			if seen[name] {
				return d.Errf("require_org is set twice in this clerk block; list every organization on one line")
			}
			seen[name] = true
			h.RequireOrg = d.RemainingArgs()
			err = lineErr(d, checkRequireOrg(h.RequireOrg))
		case "frontend_api_proxy":
			if seen[name] {
				return d.Errf("frontend_api_proxy is set twice in this clerk block; keep one")
			}
			seen[name] = true
			args := d.RemainingArgs()
			if len(args) == 0 || len(args) > 2 {
				return d.Errf("frontend_api_proxy takes the public URL and optionally the upstream, " +
					"e.g. frontend_api_proxy https://app.example.com/__clerk")
			}
			p := &FrontendAPIProxy{URL: args[0]}
			if len(args) == 2 {
				p.Upstream = args[1]
			}
			h.FrontendAPIProxy = p
			if !hasPlaceholder(p.URL) && !hasPlaceholder(p.Upstream) {
				err = lineErr(d, checkFrontendAPIProxy(p))
			}
		case "satellite":
			if h.Satellite, err = single(); err == nil && !hasPlaceholder(h.Satellite) {
				err = lineErr(d, checkSatellite(h.Satellite))
			}
		case "userinfo_path":
			if h.UserinfoPath, err = single(); err == nil {
				err = lineErr(d, checkUserinfoPath(h.UserinfoPath))
			}
		case "shared_cache":
			if h.SharedCache, err = single(); err == nil {
				err = lineErr(d, checkSharedCache(h.SharedCache))
			}
		default:
			return d.Errf("unrecognized subdirective %q in clerk block (known: %s)", name, subdirectives)
		}
		if err != nil {
			return err
		}
		if d.NextBlock(1) {
			return d.Errf("%s does not take a block", name)
		}
	}
	return lineErr(d, checkKeySource(h))
}

// unmarshalOrganizationSync reads organization_sync's block; each
// pattern line is checked as it is read, to name its line.
func (h *Handler) unmarshalOrganizationSync(d *caddyfile.Dispenser, twice bool) error {
	if twice {
		return d.Errf("organization_sync is set twice in this clerk block; keep one block")
	}
	if d.NextArg() {
		return d.Errf("organization_sync takes a block, e.g. organization_sync { organization /orgs/:slug /orgs/:slug/(.*) }")
	}
	o := &OrganizationSync{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		list := d.Val()
		var dst *[]string
		switch list {
		case "organization":
			dst = &o.Organization
		case "personal_account":
			dst = &o.PersonalAccount
		default:
			return d.Errf("unrecognized %q in organization_sync (known: organization, personal_account)", list)
		}
		if *dst != nil {
			return d.Errf("organization_sync: %s is set twice; list every pattern on one line", list)
		}
		*dst = d.RemainingArgs()
		if err := lineErr(d, checkOrgPatterns(list, *dst)); err != nil {
			return err
		}
	}
	h.OrganizationSync = o
	return lineErr(d, checkOrganizationSync(o))
}

// lineErr puts the Caddyfile line on a setting's check error.
func lineErr(d *caddyfile.Dispenser, err error) error {
	if err != nil {
		return d.Err(err.Error())
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
