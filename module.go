package caddyclerk

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-clerk/caddy-clerk/bapi"
	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/internal/machine"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler authenticates requests with Clerk session tokens. Signed-in users
// pass, with their identity in placeholders; others are redirected to sign in
// (page loads) or refused with 401 (everything else), unless Optional.
type Handler struct {
	// PublishableKey (pk_live_… or pk_test_…) names the Clerk instance: it
	// gives the Frontend API host, the JWKS URL, the issuer, the Account
	// Portal sign-in page and the cookie suffix.
	PublishableKey string `json:"publishable_key,omitempty"`
	// SecretKey (sk_live_… or sk_test_…) lets the keys come from the Backend
	// API (GET /v1/jwks). It never appears in logs, errors or placeholders.
	SecretKey string `json:"secret_key,omitempty"`
	// JWKSURL is an explicit JWKS to fetch keys from.
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWTKey is the instance's PEM public key ("JWT public key" in the
	// dashboard), armored or bare base64, or a path to a file holding it:
	// verification then needs no network at all.
	JWTKey string `json:"jwt_key,omitempty"`
	// Issuer overrides the iss every token must carry exactly.
	Issuer string `json:"issuer,omitempty"`
	// APIURL is the Backend API base. Default https://api.clerk.com.
	APIURL string `json:"api_url,omitempty"`
	// FrontendAPIURL overrides the Frontend API origin (a proxied Frontend
	// API): its JWKS is used, and it becomes the expected issuer.
	FrontendAPIURL string `json:"frontend_api_url,omitempty"`
	// SignInURL overrides the Account Portal sign-in page that page loads
	// are redirected to.
	SignInURL string `json:"sign_in_url,omitempty"`
	// AuthorizedParties are the origins allowed in azp. Empty allows any.
	AuthorizedParties []string `json:"authorized_parties,omitempty"`
	// ClockSkew tolerates clock drift for exp, nbf and iat. Default 5s.
	ClockSkew *caddy.Duration `json:"clock_skew,omitempty"`
	// SessionCookie reads the __session cookie when there is no
	// Authorization header. Default true.
	SessionCookie *bool `json:"session_cookie,omitempty"`
	// AllowPending treats a pending session (sts "pending": its user has a
	// task to finish, such as choose-organization or reset-password) as
	// signed in. Without it such a session is not signed in: a page load is
	// redirected to the Account Portal's tasks page (<sign_in_url>/tasks,
	// which finishes the task and comes back), anything else gets 401 with
	// {clerk.reason} session-pending.
	AllowPending bool `json:"allow_pending,omitempty"`
	// Exclude lists path patterns (Caddy path matcher syntax, such as
	// /health or /assets/*) that pass without any check.
	Exclude []string `json:"exclude,omitempty"`
	// RequireRoles: each entry is a list of roles of which the user's active
	// organization role must be one; every entry must hold. "admin" and
	// "org:admin" are the same role.
	RequireRoles [][]string `json:"require_roles,omitempty"`
	// RequirePermissions: like RequireRoles, for organization permissions.
	RequirePermissions [][]string `json:"require_permissions,omitempty"`
	// RequirePlans: each entry lists Clerk Billing plans (the token's pla)
	// of which the session must have one; every entry must hold. "pro"
	// matches the user's or the active organization's plan, "u:pro" or
	// "user:pro" only the user's, "o:pro", "org:pro" or "organization:pro"
	// only the organization's. Machine tokens never have a plan.
	RequirePlans [][]string `json:"require_plans,omitempty"`
	// RequireFeatures: like RequirePlans, for Billing features (fea).
	RequireFeatures [][]string `json:"require_features,omitempty"`
	// RequireReverification asks that the session verified a factor
	// recently (the token's fva), as Clerk's has({reverification}). A
	// session that did not gets 403 with Clerk's JSON reverification hint,
	// so clerk-js can ask the user to verify again and retry.
	RequireReverification *ReverificationRequirement `json:"require_reverification,omitempty"`
	// RequireClaims: each entry requires a claim (dotted path into the
	// token, for custom JWT-template claims) to equal one of its values.
	RequireClaims []ClaimRequirement `json:"require_claims,omitempty"`
	// Optional lets unauthenticated requests through with empty identity
	// placeholders and {clerk.authenticated} = false.
	Optional bool `json:"optional,omitempty"`
	// CSRF guards cookie-authenticated requests with unsafe methods (all but
	// GET, HEAD, OPTIONS, TRACE): they pass only with Sec-Fetch-Site
	// same-origin or none, or, without that header, with an Origin (else
	// Referer) that is the request's own origin, an authorized party or a
	// trusted origin. Default true. Bearer-header requests are not subject to
	// it: a browser never adds that header on its own.
	CSRF *bool `json:"csrf,omitempty"`
	// CSRFTrustedOrigins are further origins allowed to send unsafe
	// cookie-authenticated requests.
	CSRFTrustedOrigins []string `json:"csrf_trusted_origins,omitempty"`
	// StripCredentials removes the Authorization header and Clerk's cookies
	// (__session*, __client_uat*, __clerk_db_jwt*, handshake cookies) before
	// the request goes downstream, so upstreams and their logs never see
	// them. Other cookies are kept as they were.
	StripCredentials bool `json:"strip_credentials,omitempty"`
	// TokenCache is how many verified tokens to remember until they expire,
	// so repeated requests with one token skip the RSA verification. Every
	// hit still checks exp, and a token whose key left the key set is
	// verified afresh. Default 50000 (about 60 MB when full); 0 turns the cache off.
	TokenCache *int `json:"token_cache,omitempty"`
	// Handshake keeps browser sessions alive on pages without clerk-js:
	// when the session cookie is stale or missing but the browser has a
	// Clerk client, a page load is sent through Clerk's handshake
	// (Frontend API /v1/client/handshake) and comes back with fresh
	// cookies. It needs publishable_key. With secret_key the handshake uses
	// nonces redeemed at the Backend API; without, Clerk's signed handshake
	// token. Default on when publishable_key is set.
	Handshake *bool `json:"handshake,omitempty"`
	// SignOutPath is a path on this site (e.g. /sign-out) that signs the
	// browser out: it revokes the Clerk session through the Backend API
	// (so the Account Portal will not sign the browser straight back in),
	// clears the session cookies and redirects to AfterSignOutURL. GET and
	// POST; POST is subject to the CSRF check. Needs secret_key.
	SignOutPath string `json:"sign_out_path,omitempty"`
	// AfterSignOutURL is where SignOutPath sends the browser. Default "/",
	// which, being protected, leads to the sign-in page.
	AfterSignOutURL string `json:"after_sign_out_url,omitempty"`
	// ForwardedRequest makes this handler the external auth service of a
	// front proxy (nginx auth_request, ingress-nginx, Traefik ForwardAuth,
	// Caddy's forward_auth): every decision (exclude, sign_out_path, the
	// page-load rule, CSRF, the handshake, redirect URLs) is about the
	// request the proxy describes in X-Forwarded-Method, X-Forwarded-Uri,
	// X-Forwarded-Host and X-Forwarded-Proto, or X-Original-Method and
	// X-Original-URI or X-Original-URL. They are read only from the
	// server's trusted_proxies; from anyone else the request is taken as it
	// is. Malformed or conflicting headers from a trusted proxy answer 401
	// ({clerk.reason} forwarded-request-invalid).
	ForwardedRequest bool `json:"forwarded_request,omitempty"`

	// Accept lists the credentials this route takes: session_token (the
	// default), m2m_token, api_key, oauth_token, or "any" for all four.
	// Machine tokens come only from the Authorization header. Opaque ones
	// (mt_, ak_, oat_) are verified at the Backend API and need secret_key
	// (M2M: or machine_secret_key); JWT-format M2M and OAuth tokens are
	// verified locally with the instance's keys.
	Accept []string `json:"accept,omitempty"`
	// MachineSecretKey (ak_…) verifies opaque M2M tokens as that machine:
	// only tokens granted to it pass. Without it, secret_key verifies any
	// M2M token of the instance. It never appears in logs or errors.
	MachineSecretKey string `json:"machine_secret_key,omitempty"`
	// RequireScopes: each entry lists scopes of which the machine token
	// must carry one; every entry must hold. A session has no scopes.
	RequireScopes [][]string `json:"require_scopes,omitempty"`
	// MachineCacheTTL is how long a verified opaque machine token is
	// believed without asking Clerk again (never past its expiry), so a
	// revocation takes effect within it. Default 30s; 0 asks every time.
	MachineCacheTTL *caddy.Duration `json:"machine_cache_ttl,omitempty"`
	// MachineVerifyRate bounds Backend API verifications of machine tokens
	// not in the cache, per second on this node (burst twice as many); past
	// it such requests get 503. Default 20.
	MachineVerifyRate *float64 `json:"machine_verify_rate,omitempty"`
	// MachineStaleIfError is how long after its last verification an
	// opaque machine token keeps passing while Clerk is unreachable.
	// Default 5m.
	MachineStaleIfError *caddy.Duration `json:"machine_stale_if_error,omitempty"`

	// OrganizationSync names the tenant in the URL, as Clerk's
	// organizationSyncOptions: a browser's page load whose URL names another
	// organization than its session's active one (or the personal account
	// while one is active) goes through Clerk's handshake, which activates
	// it; every other request whose credential acts in another tenant than
	// the URL names gets 403 (active-organization-mismatch).
	OrganizationSync *OrganizationSync `json:"organization_sync,omitempty"`
	// RequireOrg: the active organization must be one of these, by id
	// (org_…) or slug. A page load whose session has none of them
	// activates the first through the handshake; anything else gets 403
	// (organization-required). Machine tokens pass only as an API key owned
	// by one of the listed ids.
	RequireOrg []string `json:"require_org,omitempty"`
	// FrontendAPIProxy serves Clerk's Frontend API under a path of this
	// site, through Caddy's reverse_proxy (Clerk's proxy setup): the
	// handshake then goes through it and the tokens' issuer is its URL
	// (unless issuer is set). Production instances only; needs secret_key.
	FrontendAPIProxy *FrontendAPIProxy `json:"frontend_api_proxy,omitempty"`
	// Satellite is the domain (e.g. other.org) of this site when it is a
	// satellite of the instance: page loads sync with the primary domain,
	// whose sign-in page (sign_in_url, required) signs the browser in. In
	// production the Frontend API is then clerk.<domain>.
	Satellite string `json:"satellite,omitempty"`
	// SharedCache "allow" lets shared caches (CDNs, caching proxies) store
	// responses to authenticated requests, for a cache keyed on the
	// credential. By default every response to a request that passed on a
	// session or machine token carries Cache-Control: private, with public
	// and s-maxage removed and CDN-Cache-Control and Surrogate-Control
	// dropped, whatever the upstream or a header directive set; anonymous
	// requests (optional), excluded paths and preflights are left alone.
	SharedCache string `json:"shared_cache,omitempty"`

	// UserinfoPath is a path on this site (e.g. /.clerk/me) where a
	// signed-in GET or HEAD is answered by the handler with who is signed
	// in, as JSON (Cache-Control: no-store): user_id, session_id,
	// session_status, organization (id, slug, role, permissions) or null,
	// plans, features, actor or null, and user: first_name, last_name,
	// username, primary_email_address and image_url from the Backend API
	// (with secret_key; cached per user for 5 minutes) or null. A machine
	// token gets its identity (token_type, subject, token_id, scopes, …).
	// Not signed in: 401 with {clerk.reason}, never a redirect; other
	// methods: 405. The require_* rules of this handler apply to it.
	UserinfoPath string `json:"userinfo_path,omitempty"`

	verifier *verifier.Verifier
	// lenient verifies tokens for sign-out, where an expired session token
	// still names the session to revoke.
	lenient *verifier.Verifier
	authn   *authn.Authenticator
	// handshake: browser sessions go through Clerk's handshake
	handshake bool
	accept    authn.Accept
	opaque    *machine.Verifier[*verifier.Machine]
	bapi      *bapi.Client
	pool      string // key into keyCaches, "" for a static key
	instance  *verifier.Instance
	excluded  caddyhttp.MatchPath
	logger    *zap.Logger
	// untrustedWarned: forwarded_request headers from an untrusted peer
	// were logged once.
	untrustedWarned *atomic.Bool
	// fapi is the provisioned frontend_api_proxy, nil without one.
	fapi *fapiProxy
	// notPrivateWarned: a response left with shared-cacheable headers was
	// logged once (private.go).
	notPrivateWarned *atomic.Bool
	// profiles caches the Backend API profiles userinfo_path shows.
	profiles *profileCache
}

// ClaimRequirement requires the claim at Path to equal one of Values.
type ClaimRequirement struct {
	// Path is a dotted path into the token's claims, e.g. metadata.plan.
	Path string `json:"path"`
	// Values are the accepted values; numbers and booleans compare by their
	// JSON text, arrays match when any element matches.
	Values []string `json:"values"`
}

// ReverificationRequirement is a Preset, or a Level with AfterMinutes.
type ReverificationRequirement struct {
	// Preset is one of Clerk's: strict_mfa (multi_factor, 10 minutes),
	// strict (second_factor, 10), moderate (second_factor, 60) or lax
	// (second_factor, 1440).
	Preset string `json:"preset,omitempty"`
	// Level is first_factor, second_factor (the first factor counts when
	// the user has no second) or multi_factor (both, or the first alone
	// when the user has no second).
	Level string `json:"level,omitempty"`
	// AfterMinutes goes with Level: a factor verified this many minutes
	// ago or longer is stale.
	AfterMinutes int `json:"after_minutes,omitempty"`
}

func (r ReverificationRequirement) check() verifier.Reverification {
	return verifier.Reverification{Preset: r.Preset, Level: r.Level, AfterMinutes: r.AfterMinutes}
}

// OrganizationSync maps URL paths to tenants, in the pattern syntax of
// Clerk's docs (path-to-regexp v6, matched case-insensitively against the
// whole escaped path, an optional trailing slash allowed): literal text,
// :slug or :id for one path segment, and (.*) for any text. Any other
// path-to-regexp syntax is refused.
type OrganizationSync struct {
	// Organization patterns name an organization by :slug or :id, e.g.
	// ["/orgs/:slug", "/orgs/:slug/(.*)"]. The first that matches wins; :id
	// wins over :slug in one pattern.
	Organization []string `json:"organization,omitempty"`
	// PersonalAccount patterns name the user's personal account (no active
	// organization), e.g. ["/me", "/me/(.*)"]. They are tried only when no
	// organization pattern matches.
	PersonalAccount []string `json:"personal_account,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.clerk",
		New: func() caddy.Module { return new(Handler) },
	}
}

// signOutSkew lets an expired session token still name the session to
// revoke; its signature is checked as ever.
const signOutSkew = 30 * 24 * time.Hour

// Provision sets the handler up in named steps; each error names the
// setting and the fix. It never waits on Clerk.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	for _, step := range []func(caddy.Context) error{
		h.resolvePlaceholders,
		h.provisionSettings,
		h.provisionFrontendAPIProxy,
		h.provisionInstance,
		h.provisionSatellite,
		h.provisionBackendAPI,
		h.provisionVerifiers,
		h.provisionExclude,
		h.provisionMachines,
		h.provisionAuthn,
	} {
		if err := step(ctx); err != nil {
			_ = h.Cleanup() // idempotent; Caddy calls it too
			return err
		}
	}
	return nil
}

// resolvePlaceholders replaces {env.*} and {file.*} in the settings that
// take them, and drops empty list entries.
func (h *Handler) resolvePlaceholders(caddy.Context) error {
	repl := caddy.NewReplacer()
	for _, s := range []*string{&h.PublishableKey, &h.SecretKey, &h.JWKSURL, &h.JWTKey, &h.Issuer,
		&h.APIURL, &h.FrontendAPIURL, &h.SignInURL, &h.AfterSignOutURL, &h.MachineSecretKey, &h.Satellite} {
		*s = strings.TrimSpace(repl.ReplaceKnown(*s, ""))
	}
	if p := h.FrontendAPIProxy; p != nil {
		p.URL = strings.TrimSpace(repl.ReplaceKnown(p.URL, ""))
		p.Upstream = strings.TrimSpace(repl.ReplaceKnown(p.Upstream, ""))
	}
	for _, list := range []*[]string{&h.AuthorizedParties, &h.CSRFTrustedOrigins} {
		kept := (*list)[:0:0]
		for _, o := range *list {
			if o = strings.TrimSpace(repl.ReplaceKnown(o, "")); o != "" {
				kept = append(kept, strings.TrimRight(o, "/"))
			}
		}
		*list = kept
	}
	return nil
}

// provisionSettings runs every setting's check (config.go) and fills in
// defaults.
func (h *Handler) provisionSettings(ctx caddy.Context) error {
	if err := h.checkSettings(); err != nil {
		return fmt.Errorf("clerk: %w", err)
	}
	h.FrontendAPIURL = strings.TrimRight(h.FrontendAPIURL, "/")
	if h.AfterSignOutURL == "" {
		h.AfterSignOutURL = "/"
	}
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("clerk: metrics: %v", err)
	}
	return nil
}

func (h *Handler) provisionInstance(caddy.Context) error {
	if h.PublishableKey == "" {
		return nil
	}
	inst, err := verifier.ParsePublishableKey(h.PublishableKey)
	if err != nil {
		return fmt.Errorf("clerk: publishable_key: %v", err)
	}
	h.instance = inst
	if h.SignInURL == "" {
		h.SignInURL = inst.SignInURL()
	}
	return nil
}

// provisionSatellite: a production satellite's Frontend API is
// clerk.<domain> (its tokens' issuer and its handshake), unless proxied or
// set.
func (h *Handler) provisionSatellite(caddy.Context) error {
	if h.Satellite != "" && h.instance != nil && h.instance.Production && h.FrontendAPIURL == "" {
		h.FrontendAPIURL = "https://clerk." + h.Satellite
	}
	return nil
}

func (h *Handler) provisionBackendAPI(caddy.Context) error {
	if h.SecretKey == "" {
		return nil
	}
	opts := []bapi.Option{bapi.WithLogger(h.logger.Named("api"))}
	if h.APIURL != "" {
		opts = append(opts, bapi.WithBaseURL(h.APIURL))
	}
	if h.MachineSecretKey != "" {
		opts = append(opts, bapi.WithMachineSecretKey(h.MachineSecretKey))
	}
	client, err := bapi.New(h.SecretKey, opts...)
	if err != nil {
		return fmt.Errorf("clerk: secret_key: %v", err)
	}
	h.bapi = client
	return nil
}

// provisionVerifiers sets up the shared key cache and the verifiers.
func (h *Handler) provisionVerifiers(caddy.Context) error {
	spec := h.keySpec()
	issuer := spec.issuer()
	if issuer == "" {
		return errors.New("clerk: cannot tell which issuer to expect: set publishable_key (or issuer)")
	}
	keys, err := h.sharedKeys(spec)
	if err != nil {
		return fmt.Errorf("clerk: %w", err)
	}
	cfg := verifier.Config{
		Keys:              keys,
		Issuer:            issuer,
		AuthorizedParties: h.AuthorizedParties,
		// authn decides on pending sessions: it answers a page load with
		// the tasks page, and a cached token keeps its status.
		AllowPending: true,
	}
	size := verifier.DefaultTokenCacheSize
	if h.TokenCache != nil {
		size = *h.TokenCache
	}
	if size > 0 {
		cfg.TokenCache = verifier.NewTokenCache(size)
		cfg.OnCacheLookup = countCacheLookup
	}
	if h.ClockSkew != nil {
		cfg.ClockSkew = time.Duration(*h.ClockSkew)
		if cfg.ClockSkew == 0 {
			cfg.ClockSkew = -1 // explicitly none
		}
	}
	if h.verifier, err = verifier.New(cfg); err != nil {
		return err
	}
	if h.SignOutPath != "" {
		lenient := cfg
		lenient.TokenCache, lenient.OnCacheLookup, lenient.AllowPending, lenient.ClockSkew = nil, nil, true, signOutSkew
		if h.lenient, err = verifier.New(lenient); err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) keySpec() keySpec {
	return keySpec{JWTKey: h.JWTKey, JWKSURL: h.JWKSURL, BAPI: h.bapi, SecretKey: h.SecretKey,
		FrontendAPIURL: h.FrontendAPIURL, Instance: h.instance, Issuer: h.Issuer}
}

// keyCaches shares one key-set cache per key source across sites and config
// reloads, so a reload keeps warm keys and two sites fetch once.
var keyCaches = caddy.NewUsagePool()

type keyCacheEntry struct{ cache *verifier.KeyCache }

func (e keyCacheEntry) Destruct() error {
	e.cache.Close()
	return nil
}

// cacheOptions are the key caches' settings: the defaults (1 h refresh,
// 30 s unknown-kid limit, 1-30 s backoff). Tests shorten them.
var cacheOptions verifier.CacheOptions

// sharedKeys returns static keys as they are, and a source's key cache
// from keyCaches.
func (h *Handler) sharedKeys(spec keySpec) (verifier.Keys, error) {
	static, src, id, err := spec.keys()
	if err != nil || static != nil {
		return static, err
	}
	opts := cacheOptions
	opts.Logger = h.logger.Named("keys")
	if test := opts.OnFetch; test != nil {
		opts.OnFetch = func(r verifier.FetchResult) { countKeyFetch(r); test(r) }
	} else {
		opts.OnFetch = countKeyFetch
	}
	val, loaded, err := keyCaches.LoadOrNew(id, func() (caddy.Destructor, error) {
		return keyCacheEntry{cache: verifier.NewKeyCache(src, opts)}, nil
	})
	if err != nil {
		return nil, err
	}
	if loaded {
		val.(keyCacheEntry).cache.SetLogger(opts.Logger) // the newest config's logs
	}
	h.pool = id
	return val.(keyCacheEntry).cache, nil
}

func (h *Handler) provisionExclude(ctx caddy.Context) error {
	h.excluded = caddyhttp.MatchPath(h.Exclude)
	if len(h.excluded) > 0 {
		if err := h.excluded.Provision(ctx); err != nil {
			return fmt.Errorf("clerk: exclude: %v", err)
		}
	}
	return nil
}

func (h *Handler) provisionAuthn(caddy.Context) error {
	cfg := authn.Config{
		Verifier:       h.verifier,
		Instance:       h.instance,
		SessionCookie:  h.SessionCookie == nil || *h.SessionCookie,
		SignInURL:      h.SignInURL,
		CSRF:           h.CSRF == nil || *h.CSRF,
		AllowPending:   h.AllowPending,
		TrustedOrigins: append(slices.Clip(h.AuthorizedParties), h.CSRFTrustedOrigins...),
		Satellite:      h.Satellite != "",
	}
	if h.bapi != nil {
		cfg.Redeemer = h.bapi
	}
	cfg.Accept, cfg.MachineJWT = h.accept, h.verifier
	if h.opaque != nil {
		cfg.Opaque = h.opaque
	}
	if h.instance != nil && cfg.SessionCookie && (h.Handshake == nil || *h.Handshake) {
		cfg.FrontendAPI = h.instance.FrontendAPIURL()
		if h.FrontendAPIURL != "" {
			cfg.FrontendAPI = h.FrontendAPIURL
		}
	}
	if o := h.OrganizationSync; o != nil {
		var err error
		if cfg.OrgSync, err = authn.NewOrgSync(o.Organization, o.PersonalAccount); err != nil {
			return fmt.Errorf("clerk: organization_sync: %v", err) // checkSettings already refused it
		}
	}
	cfg.RequireOrg = h.RequireOrg
	h.authn = authn.New(cfg)
	h.handshake = cfg.FrontendAPI != ""
	h.untrustedWarned = new(atomic.Bool)
	h.notPrivateWarned = new(atomic.Bool)
	if h.UserinfoPath != "" {
		var api UserFetcher
		if h.bapi != nil {
			api = h.bapi
		}
		h.profiles = newProfileCache(api, h.logger.Named("userinfo"))
	}
	return nil
}

// Validate checks what only the provisioned handler can tell.
func (h *Handler) Validate() error {
	if h.verifier == nil || h.authn == nil {
		return errors.New("clerk: not provisioned")
	}
	if h.Handshake != nil && *h.Handshake && !h.handshake {
		return errors.New("clerk: handshake needs publishable_key (it names the Frontend API) and session_cookie on")
	}
	return nil
}

// Cleanup releases this handler's use of the shared key cache; the last
// user stops its background refresh.
func (h *Handler) Cleanup() error {
	err := h.cleanupFrontendAPIProxy()
	if h.pool != "" {
		_, perr := keyCaches.Delete(h.pool)
		h.pool = ""
		err = errors.Join(err, perr)
	}
	return err
}

// ServeHTTP is authenticate → authorize → respond (serve), then next for a
// request that goes on, with the writer respond chose. next is called from
// here, once serve has returned: the frames that held the request's state
// are gone, and only ServeHTTP's small one is under the handlers
// downstream. Each byte there is stack that every request needs, and past
// the goroutine's stack size the stack is copied again each time GC has
// shrunk it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	down, err := h.serve(w, r)
	if down == nil {
		return err
	}
	if h.StripCredentials {
		authn.StripCredentials(r)
	}
	return next.ServeHTTP(down, r)
}

// serve decides on r and answers it, or returns the writer it goes on
// downstream with.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (down http.ResponseWriter, err error) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	vars := requestVars(r)
	holder := setAnonymous(vars, repl)
	if h.fapi != nil && h.fapi.matches(r) {
		// The browser talks to the Frontend API before it is signed in.
		return nil, h.serveFrontendAPI(w, r, holder)
	}
	// Authenticate is called from here, not from a helper, and the state
	// goes to respond by pointer: each byte of the frames between Caddy's
	// and the verifier's is stack that every request needs.
	var st authn.State
	req, err := h.request(r, vars)
	if err != nil {
		st = authn.InvalidForwarded(err)
		return h.respond(w, r, req.HTTP, holder, &st)
	}
	if h.SignOutPath != "" && req.HTTP.URL.Path == h.SignOutPath {
		return h.signOut(w, r, req, holder)
	}
	if h.skipped(req.HTTP) {
		st.Status = authn.Skipped
	} else {
		h.authn.Authenticate(req.HTTP.Context(), req, &st)
	}
	h.authorize(&st)
	return h.respond(w, r, req.HTTP, holder, &st)
}

// skipped: a CORS preflight or an excluded path of about, the request
// decided on (r, or the one a front proxy describes), is not authenticated.
func (h *Handler) skipped(about *http.Request) bool {
	return authn.IsPreflight(about) || (len(h.excluded) > 0 && plainPath(about) && h.excluded.Match(about) && !h.isUserinfo(about))
}

// request is r for authn, with whether it came from Caddy's trusted_proxies
// (in vars, the request's caddyhttp vars).
// With forwarded_request, a trusted proxy's request stands for the one it
// describes (a copy of r with that method, URL, host and scheme); err says
// why its description is refused, and req is then r itself. Tokens are
// judged at the time Caddy received r (its start_time var).
func (h *Handler) request(r *http.Request, vars map[string]any) (req authn.Request, err error) {
	trusted, _ := vars[caddyhttp.TrustedProxyVarKey].(bool)
	req = authn.Request{HTTP: r, TrustedProxy: trusted}
	req.At, _ = vars[startTimeVar].(time.Time)
	if h.ForwardedRequest {
		if trusted {
			d, ok, ferr := authn.Forwarded(r)
			if ok && ferr == nil {
				d.At = req.At
				req = d
			}
			return req, ferr
		} else if authn.HasForwarded(r) && h.untrustedWarned.CompareAndSwap(false, true) {
			h.logger.Warn("forwarded_request: a request describing another one (X-Forwarded-Uri, X-Original-URI or "+
				"X-Original-URL) came from a peer outside this server's trusted_proxies; its headers are ignored and the "+
				"request itself is decided on. If it is your front proxy, add its address to trusted_proxies "+
				"(logged once)", zap.String("remote_addr", r.RemoteAddr))
		}
	}
	return req, nil
}

// startTimeVar is the caddyhttp var in which Caddy's server keeps the time
// it received the request.
const startTimeVar = "start_time"

// authorize applies the require_* rules to a signed-in request.
func (h *Handler) authorize(st *authn.State) {
	if st.Status != authn.SignedIn {
		return
	}
	var reason authn.Reason
	if st.Machine != nil {
		reason = h.machineRequirementFails(st.Machine)
	} else {
		reason = h.requirementFails(st.Claims)
	}
	if reason != "" {
		st.Status, st.Reason = authn.Forbidden, reason
		if reason == authn.ReasonReverification {
			r := h.RequireReverification.check()
			st.Reverification = &r
		}
	}
}

// machineRequirementFails: roles, permissions, plans, features and
// reverification never hold for a machine (Clerk's has() is false for
// them); claims read the token's claims.
func (h *Handler) machineRequirementFails(m *verifier.Machine) authn.Reason {
	switch {
	case len(h.RequireRoles) > 0:
		return authn.ReasonMissingRole
	case len(h.RequirePermissions) > 0:
		return authn.ReasonMissingPermission
	case len(h.RequirePlans) > 0:
		return authn.ReasonMissingPlan
	case len(h.RequireFeatures) > 0:
		return authn.ReasonMissingFeature
	case h.RequireReverification != nil:
		return authn.ReasonReverification
	}
	for _, req := range h.RequireClaims {
		v, ok := m.Custom(req.Path)
		if !ok || !anyHolds(req.Values, func(want string) bool { return claimEquals(v, want) }) {
			return authn.ReasonClaimMismatch
		}
	}
	for _, any := range h.RequireScopes {
		if !anyHolds(any, m.HasScope) {
			return authn.ReasonMissingScope
		}
	}
	return ""
}

func (h *Handler) requirementFails(c *verifier.Claims) authn.Reason {
	if len(h.RequireScopes) > 0 {
		return authn.ReasonMissingScope // a session has no scopes
	}
	for _, any := range h.RequireRoles {
		if !anyHolds(any, func(role string) bool { return c.Has(verifier.Check{Role: role}) }) {
			return authn.ReasonMissingRole
		}
	}
	for _, any := range h.RequirePermissions {
		if !anyHolds(any, func(p string) bool { return c.Has(verifier.Check{Permission: p}) }) {
			return authn.ReasonMissingPermission
		}
	}
	for _, req := range h.RequireClaims {
		v, ok := c.Custom(req.Path)
		if !ok || !anyHolds(req.Values, func(want string) bool { return claimEquals(v, want) }) {
			return authn.ReasonClaimMismatch
		}
	}
	return h.billingFails(c)
}

// billingFails checks plans, then features, then reverification, last of
// all: a user is asked to verify again only when that is all it takes,
// never to be refused for a missing plan afterwards.
func (h *Handler) billingFails(c *verifier.Claims) authn.Reason {
	for _, any := range h.RequirePlans {
		if !anyHolds(any, func(p string) bool { return c.Has(verifier.Check{Plan: p}) }) {
			return authn.ReasonMissingPlan
		}
	}
	for _, any := range h.RequireFeatures {
		if !anyHolds(any, func(f string) bool { return c.Has(verifier.Check{Feature: f}) }) {
			return authn.ReasonMissingFeature
		}
	}
	if r := h.RequireReverification; r != nil && !c.Has(verifier.Check{Reverification: r.check()}) {
		return authn.ReasonReverification
	}
	return ""
}

func anyHolds(list []string, f func(string) bool) bool {
	for _, x := range list {
		if f(x) {
			return true
		}
	}
	return false
}

// plainPath is false for paths that some upstreams read differently from
// Caddy's matcher (Tomcat drops ";…" from segments, IIS reads "\\" as "/",
// some frameworks decode twice): such requests never skip verification.
func plainPath(r *http.Request) bool {
	return !strings.ContainsAny(r.URL.Path, ";\\%") // % after decoding: encoded twice
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
