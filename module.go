package caddyclerk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-clerk/caddy-clerk/bapi"
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
	// AllowPending accepts sessions that still have pending tasks.
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

	verifier *verifier.Verifier
	// lenient verifies tokens for sign-out, where an expired session token
	// still names the session to revoke.
	lenient  *verifier.Verifier
	bapi     *bapi.Client
	fapi     string // Frontend API origin for the handshake, "" if off
	pool     string // key into keyCaches, "" for a static key
	instance *verifier.Instance
	excluded caddyhttp.MatchPath
	logger   *zap.Logger
}

// ClaimRequirement requires the claim at Path to equal one of Values.
type ClaimRequirement struct {
	// Path is a dotted path into the token's claims, e.g. metadata.plan.
	Path string `json:"path"`
	// Values are the accepted values; numbers and booleans compare by their
	// JSON text, arrays match when any element matches.
	Values []string `json:"values"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.clerk",
		New: func() caddy.Module { return new(Handler) },
	}
}

// keyCaches shares one key-set cache per key source across sites and config
// reloads, so a reload keeps warm keys and two sites fetch once.
var keyCaches = caddy.NewUsagePool()

type keyCacheEntry struct{ cache *verifier.KeyCache }

// cacheOptions are the key caches' settings: the defaults (1 h refresh,
// 30 s unknown-kid limit, 1-30 s backoff). Tests shorten them.
var cacheOptions verifier.CacheOptions

func (e keyCacheEntry) Destruct() error {
	e.cache.Close()
	return nil
}

// Provision resolves placeholders, derives the instance's URLs and sets up
// the shared key cache. It never waits on Clerk.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	for _, s := range []*string{&h.PublishableKey, &h.SecretKey, &h.JWKSURL, &h.JWTKey, &h.Issuer,
		&h.APIURL, &h.FrontendAPIURL, &h.SignInURL, &h.AfterSignOutURL} {
		*s = strings.TrimSpace(repl.ReplaceKnown(*s, ""))
	}
	parties := h.AuthorizedParties[:0:0]
	for _, p := range h.AuthorizedParties {
		if p = strings.TrimSpace(repl.ReplaceKnown(p, "")); p != "" {
			parties = append(parties, strings.TrimRight(p, "/"))
		}
	}
	h.AuthorizedParties = parties
	trusted := h.CSRFTrustedOrigins[:0:0]
	for _, o := range h.CSRFTrustedOrigins {
		if o = strings.TrimSpace(repl.ReplaceKnown(o, "")); o != "" {
			trusted = append(trusted, strings.TrimRight(o, "/"))
		}
	}
	h.CSRFTrustedOrigins = trusted

	if h.PublishableKey != "" {
		inst, err := verifier.ParsePublishableKey(h.PublishableKey)
		if err != nil {
			return fmt.Errorf("clerk: publishable_key: %v", err)
		}
		h.instance = inst
	}
	if h.FrontendAPIURL != "" {
		if err := checkURL(h.FrontendAPIURL); err != nil {
			return fmt.Errorf("clerk: frontend_api_url: %v", err)
		}
		h.FrontendAPIURL = strings.TrimRight(h.FrontendAPIURL, "/")
	}

	issuer := h.Issuer
	switch {
	case issuer != "":
	case h.FrontendAPIURL != "":
		issuer = h.FrontendAPIURL
	case h.instance != nil:
		issuer = h.instance.Issuer()
	}
	if issuer == "" {
		return errors.New("clerk: cannot tell which issuer to expect: set publishable_key (or issuer)")
	}

	size := verifier.DefaultTokenCacheSize
	if h.TokenCache != nil {
		size = *h.TokenCache
	}
	if size < 0 {
		return errors.New("clerk: token_cache must be a number of entries, or 0 (off)")
	}
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("clerk: metrics: %v", err)
	}
	if h.SecretKey != "" {
		opts := []bapi.Option{bapi.WithLogger(h.logger.Named("api"))}
		if h.APIURL != "" {
			if err := checkURL(h.APIURL); err != nil {
				return fmt.Errorf("clerk: api_url: %v", err)
			}
			opts = append(opts, bapi.WithBaseURL(h.APIURL))
		}
		client, err := bapi.New(h.SecretKey, opts...)
		if err != nil {
			return fmt.Errorf("clerk: secret_key: %v", err)
		}
		h.bapi = client
	}
	if h.SignOutPath != "" && h.bapi == nil {
		return errors.New("clerk: sign_out_path needs secret_key: signing out revokes the session at Clerk's Backend API; " +
			"without that, the Account Portal would sign the browser straight back in")
	}
	if h.AfterSignOutURL == "" {
		h.AfterSignOutURL = "/"
	}
	keys, err := h.provisionKeys()
	if err != nil {
		return err
	}
	cfg := verifier.Config{
		Keys:              keys,
		Issuer:            issuer,
		AuthorizedParties: h.AuthorizedParties,
		AllowPending:      h.AllowPending,
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
		_ = h.Cleanup() // Caddy does not clean up a module that failed to provision
		return err
	}
	if h.SignOutPath != "" {
		lenient := cfg
		lenient.TokenCache, lenient.OnCacheLookup, lenient.AllowPending, lenient.ClockSkew = nil, nil, true, signOutSkew
		if h.lenient, err = verifier.New(lenient); err != nil {
			_ = h.Cleanup()
			return err
		}
	}
	if h.instance != nil && h.sessionCookie() && (h.Handshake == nil || *h.Handshake) {
		h.fapi = h.instance.FrontendAPIURL()
		if h.FrontendAPIURL != "" {
			h.fapi = h.FrontendAPIURL
		}
	}
	h.excluded = caddyhttp.MatchPath(h.Exclude)
	if len(h.excluded) > 0 {
		if err := h.excluded.Provision(ctx); err != nil {
			return fmt.Errorf("clerk: exclude: %v", err)
		}
	}
	if h.SignInURL == "" && h.instance != nil {
		h.SignInURL = h.instance.SignInURL()
	}
	return nil
}

// provisionKeys picks the key source: jwt_key (no network) over jwks_url
// over the Backend API (secret_key) over the Frontend API JWKS.
func (h *Handler) provisionKeys() (verifier.Keys, error) {
	if h.JWTKey != "" {
		text := h.JWTKey
		if !strings.HasPrefix(text, "-----BEGIN") && !strings.HasPrefix(text, "MII") {
			b, err := os.ReadFile(text)
			if err != nil {
				return nil, fmt.Errorf("clerk: jwt_key is neither a PEM public key nor a readable file: %v", err)
			}
			text = string(b)
		}
		keys, err := verifier.StaticPEM(text)
		if err != nil {
			return nil, fmt.Errorf("clerk: jwt_key: %v", err)
		}
		return keys, nil
	}

	var src verifier.Source
	var id string
	switch {
	case h.JWKSURL != "":
		if err := checkURL(h.JWKSURL); err != nil {
			return nil, fmt.Errorf("clerk: jwks_url: %v", err)
		}
		src, id = verifier.URLSource(h.JWKSURL, nil), "url:"+h.JWKSURL
	case h.bapi != nil:
		client := h.bapi
		sum := sha256.Sum256([]byte(h.SecretKey))
		src = verifier.FuncSource(client.BaseURL()+"/v1/jwks", func(ctx context.Context) ([]byte, time.Duration, error) {
			body, maxAge, err := client.JWKSWithMaxAge(ctx)
			var apiErr *bapi.Error
			if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
				err = verifier.WithRetryAfter(err, apiErr.RetryAfter)
			}
			return body, maxAge, err
		})
		id = "bapi:" + client.BaseURL() + ":" + hex.EncodeToString(sum[:8])
	case h.FrontendAPIURL != "":
		u := h.FrontendAPIURL + "/.well-known/jwks.json"
		src, id = verifier.URLSource(u, nil), "url:"+u
	case h.instance != nil:
		src, id = verifier.URLSource(h.instance.JWKSURL(), nil), "url:"+h.instance.JWKSURL()
	default:
		return nil, errors.New("clerk: no key source: set publishable_key, secret_key, jwks_url or jwt_key")
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

// Validate checks the configuration once provisioned.
func (h *Handler) Validate() error {
	if h.verifier == nil {
		return errors.New("clerk: not provisioned")
	}
	if h.Handshake != nil && *h.Handshake && h.fapi == "" {
		return errors.New("clerk: handshake needs publishable_key (it names the Frontend API) and session_cookie on")
	}
	if h.SignInURL != "" {
		if err := checkURL(h.SignInURL); err != nil {
			return fmt.Errorf("clerk: sign_in_url: %v", err)
		}
	}
	for _, c := range h.RequireClaims {
		if c.Path == "" || len(c.Values) == 0 {
			return errors.New("clerk: require_claim needs a claim path and at least one value")
		}
	}
	return nil
}

// Cleanup releases this handler's use of the shared key cache; the last
// user stops its background refresh.
func (h *Handler) Cleanup() error {
	if h.pool != "" {
		_, err := keyCaches.Delete(h.pool)
		h.pool = ""
		return err
	}
	return nil
}

func (h *Handler) sessionCookie() bool { return h.SessionCookie == nil || *h.SessionCookie }

func (h *Handler) csrf() bool { return h.CSRF == nil || *h.CSRF }

// ServeHTTP decides: pass, pass anonymously, handshake, redirect, 401, 403
// or 503.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	holder := setAnonymous(repl)

	if h.SignOutPath != "" && r.URL.Path == h.SignOutPath {
		return h.signOut(w, r, next, repl)
	}
	if isPreflight(r) || (len(h.excluded) > 0 && plainPath(r) && h.excluded.Match(r)) {
		countRequest(outcomeSkipped, "")
		return h.pass(w, r, next)
	}

	// A header token wins; cookies are not consulted then.
	token := headerToken(r)
	var st cookieState
	if token == "" && h.sessionCookie() {
		st = h.readCookies(r)
		if h.fapi != "" {
			return h.serveCookies(w, r, next, repl, holder, &st)
		}
		token = st.session
	}
	if token == "" {
		reason := verifier.ReasonSessionTokenMissing
		if h.sessionCookie() && st.clientUAT == 0 {
			reason = verifier.ReasonSessionTokenAndUATMissing
		}
		return h.refuse(w, r, next, repl, reason, nil, &st)
	}
	claims, err := h.verifier.Verify(r.Context(), token)
	if err != nil {
		if verifier.IsKeysUnavailable(err) {
			return h.keysUnavailable(w, r, next, repl, err)
		}
		return h.refuse(w, r, next, repl, verifier.ReasonOf(err), err, &st)
	}
	return h.signedIn(w, r, next, repl, holder, claims, st.session != "")
}

// signedIn applies the CSRF check and the require_* rules to a verified
// session, then passes the request on with its identity.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	repl *caddy.Replacer, holder *claimsHolder, claims *verifier.Claims, fromCookie bool) error {
	id := identityOf(claims)
	if fromCookie && h.csrf() && !safeMethod(r.Method) && !h.sameOriginRequest(r) {
		id.reason = reasonCSRF
	} else {
		id.reason = h.authorize(claims)
	}
	holder.id = id
	if id.reason != "" {
		h.log(zapcore.DebugLevel, r, "request refused: authenticated but not allowed", verifier.Reason(id.reason), nil)
		countRequest(outcomeForbidden, verifier.Reason(id.reason))
		return caddyhttp.Error(http.StatusForbidden, errors.New("clerk: "+id.reason))
	}
	holder.claims = claims
	countRequest(outcomeAuthenticated, "")
	return h.pass(w, r, next)
}

// keysUnavailable answers 503 while no key set has ever loaded: the token
// may well be valid, so 401 would be a lie.
func (h *Handler) keysUnavailable(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	repl *caddy.Replacer, err error) error {
	h.log(zapcore.WarnLevel, r, "Clerk signing keys not loaded yet", verifier.ReasonOf(err), err)
	repl.Set("clerk.reason", string(verifier.ReasonOf(err)))
	if h.Optional {
		countRequest(outcomeAnonymous, verifier.ReasonOf(err))
		return h.pass(w, r, next)
	}
	countRequest(outcomeUnavailable, verifier.ReasonOf(err))
	w.Header().Set("Retry-After", "5")
	return caddyhttp.Error(http.StatusServiceUnavailable, err)
}

// pass hands the request downstream, without Clerk credentials if asked.
func (h *Handler) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.StripCredentials {
		stripCredentials(r)
	}
	return next.ServeHTTP(w, r)
}

// refuse handles a request without a valid token. The anonymous identity
// is already in place; only the reason is new.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer,
	reason verifier.Reason, err error, st *cookieState) error {
	repl.Set("clerk.reason", string(reason))
	h.log(zapcore.DebugLevel, r, "request not authenticated", reason, err)
	if h.Optional {
		countRequest(outcomeAnonymous, reason)
		return h.pass(w, r, next)
	}
	if h.SignInURL != "" && isPageLoad(r) {
		countRequest(outcomeSignIn, reason)
		target := h.SignInURL + sep(h.SignInURL) + "redirect_url=" + url.QueryEscape(pageURL(r))
		if h.instance != nil && !h.instance.Production && st.devBrowser != "" {
			// A development Account Portal is another site: it learns the
			// browser from the dev-browser token, as @clerk/backend sends it.
			target += "&" + queryDevBrowser + "=" + url.QueryEscape(st.devBrowser)
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		return nil
	}
	challenge := `Bearer`
	if err != nil {
		challenge = `Bearer error="invalid_token", error_description="` + string(reason) + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	countRequest(outcomeUnauthorized, reason)
	if err == nil {
		err = errors.New("clerk: " + string(reason))
	}
	return caddyhttp.Error(http.StatusUnauthorized, err)
}

func (h *Handler) log(level zapcore.Level, r *http.Request, msg string, reason verifier.Reason, err error) {
	if ce := h.logger.Check(level, msg); ce != nil {
		fields := []zap.Field{zap.String("reason", string(reason)), zap.String("method", r.Method),
			zap.String("uri", r.URL.Path)}
		if k := verifier.KindOf(err); k != "" {
			fields = append(fields, zap.String("check", string(k)), zap.String("detail", err.Error()))
		}
		ce.Write(fields...)
	}
}

// headerToken finds a token in the Authorization header as @clerk/backend
// does: Bearer, or a bare token.
func headerToken(r *http.Request) string {
	if auth := strings.TrimSpace(r.Header.Get("Authorization")); auth != "" {
		scheme, rest, found := strings.Cut(auth, " ")
		switch {
		case !found:
			return auth
		case strings.EqualFold(scheme, "Bearer"):
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// authorize applies the require_* rules, returning a refusal reason or "".
func (h *Handler) authorize(c *verifier.Claims) string {
	for _, any := range h.RequireRoles {
		if !anyHolds(any, func(role string) bool { return c.Has(verifier.Check{Role: role}) }) {
			return "missing-role"
		}
	}
	for _, any := range h.RequirePermissions {
		if !anyHolds(any, func(p string) bool { return c.Has(verifier.Check{Permission: p}) }) {
			return "missing-permission"
		}
	}
	for _, req := range h.RequireClaims {
		v, ok := c.Custom(req.Path)
		if !ok || !anyHolds(req.Values, func(want string) bool { return claimEquals(v, want) }) {
			return "claim-mismatch"
		}
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

// isPreflight is a CORS preflight: it carries no credentials.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// isPageLoad is Clerk's test for a browser navigation.
func isPageLoad(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" {
		return dest == "document" || dest == "iframe"
	}
	return strings.HasPrefix(r.Header.Get("Accept"), "text/html")
}

// currentURL rebuilds the absolute URL the browser asked for, trusting
// X-Forwarded-Proto/Host only from Caddy's trusted_proxies.
func currentURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if fh := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(fh) {
			host = fh
		}
	}
	return scheme + "://" + host + r.URL.RequestURI()
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost refuses anything that could turn a host into a path or a
// different authority (open redirects through redirect_url).
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "/\\@?# \t\r\n")
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
