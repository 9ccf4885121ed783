// Package bapi is a small client for the Clerk Backend API: the JWKS, the
// handshake payload, users and sessions, and the verification of opaque
// machine tokens. It retries rate limits and server errors within tight
// bounds and never lets the secret keys or a token reach an error, a log
// line or a formatted value.
package bapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Defaults.
const (
	// DefaultBaseURL is Clerk's Backend API, without the /v1 version prefix.
	DefaultBaseURL = "https://api.clerk.com"
	// DefaultAPIVersion is sent as Clerk-API-Version so response shapes stay
	// fixed whatever Clerk's current default is.
	DefaultAPIVersion = "2025-04-10"
	// DefaultTimeout bounds one attempt (request, headers and body).
	DefaultTimeout = 5 * time.Second
	// DefaultMaxAttempts is the total number of tries, first one included.
	DefaultMaxAttempts = 3
	// DefaultMaxRetryAfter is the longest Retry-After the client sleeps for;
	// beyond it the 429 is returned at once.
	DefaultMaxRetryAfter = 10 * time.Second
	// MaxResponseBytes bounds every response body read, except the machine
	// verify calls' (MaxMachineResponseBytes).
	MaxResponseBytes = 1 << 20
)

// Defaults of the machine-token verify calls. A verify sits on a request's
// path and the caller has its own outage handling (stale-if-error), so they
// fail fast: Clerk itself does not retry them at all; we allow one retry
// for a blip, with a short attempt timeout and a short Retry-After bound.
const (
	// MachineAPIVersion is the Clerk-API-Version of the machine verify
	// calls (@clerk/backend's SUPPORTED_BAPI_VERSION); their response
	// shapes are parsed as of this version, so WithAPIVersion does not
	// change it.
	MachineAPIVersion = "2026-05-12"
	// DefaultMachineTimeout bounds one attempt of a verify call.
	DefaultMachineTimeout = 2 * time.Second
	// MachineMaxAttempts caps the tries of a verify call (WithMaxAttempts
	// can only lower it).
	MachineMaxAttempts = 2
	// MachineMaxRetryAfter is the longest Retry-After a verify call waits;
	// a longer one returns the 429 at once (WithMaxRetryAfter can only
	// lower it).
	MachineMaxRetryAfter = time.Second
	// MaxMachineResponseBytes bounds a verify call's response body: the
	// caller caches results, so a huge claims object must not get in.
	MaxMachineResponseBytes = 64 << 10
	// MaxMachineTokenBytes bounds the token a verify call sends; a longer
	// one is refused without a request.
	MaxMachineTokenBytes = 4096
)

// Version is this module's version, sent in the User-Agent
// (caddy-clerk/<Version>). Set it before calling New, e.g. with -ldflags -X.
var Version = "dev"

const (
	backoffBase = 200 * time.Millisecond
	backoffCap  = 2 * time.Second
	minKeyBody  = 16 // characters after sk_test_/sk_live_; Clerk's are longer

	machineKeyPrefix  = "ak_"
	minMachineKeyBody = 16 // characters after ak_; Clerk's are longer
	maxMachineKeyBody = 512
)

// Client calls the Clerk Backend API. It is safe for concurrent use. Create
// it with New; the zero value is not usable.
type Client struct {
	base          string        // normalised, without /v1
	secret        func() string // a closure: fmt and reflective dumpers cannot look inside
	env           string        // "sk_test_" or "sk_live_", safe to show
	machineSecret func() string // nil without a machine secret key
	apiVersion    string
	userAgent     string
	timeout       time.Duration
	machTimeout   time.Duration
	maxAttempts   int
	maxRetryAfter time.Duration
	maxBody       int64
	hc            *http.Client
	log           *zap.Logger

	// Injectable for tests.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(ceiling time.Duration) time.Duration // uniform in [0, ceiling]
	now    func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets the Backend API base URL ("" means DefaultBaseURL). A
// trailing slash or /v1 is accepted and dropped.
func WithBaseURL(base string) Option { return func(c *Client) { c.base = base } }

// WithHTTPClient sets the HTTP client. The default is a dedicated client that
// does not follow redirects (they would carry the secret key elsewhere).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithLogger sets the logger; retries are logged at debug level. Default: no
// logging.
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// WithAPIVersion overrides the Clerk-API-Version header (default
// DefaultAPIVersion).
func WithAPIVersion(v string) Option { return func(c *Client) { c.apiVersion = v } }

// WithTimeout bounds each attempt; the caller's context bounds the whole call.
// Zero or less means DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxAttempts sets the total number of tries (1 disables retries). Zero
// or less means DefaultMaxAttempts.
func WithMaxAttempts(n int) Option { return func(c *Client) { c.maxAttempts = n } }

// WithMaxRetryAfter bounds how long a 429's Retry-After may make the client
// wait. Zero or less means DefaultMaxRetryAfter.
func WithMaxRetryAfter(d time.Duration) Option { return func(c *Client) { c.maxRetryAfter = d } }

// WithMachineSecretKey sets a machine secret key (ak_…; surrounding
// whitespace is ignored, "" means none). VerifyM2MToken authenticates with
// it instead of the secret key, so only tokens granted to that machine
// verify; nothing else uses it. New rejects a malformed key without
// echoing it.
func WithMachineSecretKey(key string) Option {
	return func(c *Client) {
		key := strings.TrimSpace(key)
		c.machineSecret = func() string { return key }
	}
}

// WithMachineTimeout bounds each attempt of the machine verify calls. Zero
// or less means DefaultMachineTimeout.
func WithMachineTimeout(d time.Duration) Option { return func(c *Client) { c.machTimeout = d } }

// New returns a client authenticating with secretKey (sk_live_… or
// sk_test_…; surrounding whitespace is ignored). Errors never echo the key.
func New(secretKey string, opts ...Option) (*Client, error) {
	key := strings.TrimSpace(secretKey)
	env, err := checkSecretKey(key)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:   DefaultBaseURL,
		secret: func() string { return key },
		env:    env,
	}
	for _, o := range opts {
		o(c)
	}
	if c.machineSecret != nil {
		if c.machineSecret() == "" {
			c.machineSecret = nil
		} else if err := checkMachineSecretKey(c.machineSecret()); err != nil {
			return nil, err
		}
	}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.base, err = normaliseBaseURL(c.base); err != nil {
		return nil, err
	}
	if c.apiVersion == "" {
		c.apiVersion = DefaultAPIVersion
	}
	if strings.ContainsAny(c.apiVersion, "\r\n") {
		return nil, errors.New("bapi: invalid API version")
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.machTimeout <= 0 {
		c.machTimeout = DefaultMachineTimeout
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.maxRetryAfter <= 0 {
		c.maxRetryAfter = DefaultMaxRetryAfter
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.userAgent = "caddy-clerk/" + Version
	c.maxBody = MaxResponseBytes
	c.sleep = sleepCtx
	c.jitter = fullJitter
	c.now = time.Now
	return c, nil
}

func checkSecretKey(key string) (env string, err error) {
	switch {
	case strings.HasPrefix(key, "sk_test_"):
		env = "sk_test_"
	case strings.HasPrefix(key, "sk_live_"):
		env = "sk_live_"
	default:
		return "", errors.New("bapi: secret key must start with sk_live_ or sk_test_")
	}
	if len(key)-len(env) < minKeyBody {
		return "", errors.New("bapi: secret key is too short to be a Clerk secret key")
	}
	// Also keeps the key safe to put in a header and to redact verbatim.
	for i := 0; i < len(key); i++ {
		b := key[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return "", errors.New("bapi: secret key contains characters a Clerk secret key does not have")
		}
	}
	return env, nil
}

func checkMachineSecretKey(key string) error {
	if !strings.HasPrefix(key, machineKeyPrefix) {
		return errors.New("bapi: machine secret key must start with ak_")
	}
	if n := len(key) - len(machineKeyPrefix); n < minMachineKeyBody || n > maxMachineKeyBody {
		return errors.New("bapi: machine secret key has the wrong length for a Clerk machine secret key")
	}
	// Base64 (standard or URL-safe): Clerk's ak_ values may hold / + =.
	// Also keeps the key safe to put in a header and to redact verbatim.
	for i := 0; i < len(key); i++ {
		b := key[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			b == '_' || b == '-' || b == '+' || b == '/' || b == '=') {
			return errors.New("bapi: machine secret key contains characters a Clerk machine secret key does not have")
		}
	}
	return nil
}

func normaliseBaseURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, "/")
	s = strings.TrimSuffix(s, "/v1")
	s = strings.TrimRight(s, "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("bapi: base URL must be an absolute http(s) URL, such as " + DefaultBaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", errors.New("bapi: base URL must not have credentials, a query or a fragment")
	}
	return s, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    5 * time.Second,
			MaxIdleConns:           16,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// BaseURL is the normalised base URL, without /v1 or a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// HasMachineSecretKey reports whether VerifyM2MToken authenticates with a
// machine secret key (so a 401 from it names that key, not the secret key).
func (c *Client) HasMachineSecretKey() bool { return c.machineSecret != nil }

// String describes the client without its keys.
func (c Client) String() string {
	mk := ""
	if c.machineSecret != nil {
		mk = ", machine_key: " + machineKeyPrefix + "[redacted]"
	}
	return fmt.Sprintf("bapi.Client{base: %s, key: %s[redacted]%s, api_version: %s}", c.base, c.env, mk, c.apiVersion)
}

// GoString is String: %#v must not print the keys either.
func (c Client) GoString() string { return c.String() }

// Format makes every verb (%v, %+v, %#v, %s, %q, %x…) print String, so the
// struct's fields are never dumped.
func (c Client) Format(f fmt.State, verb rune) {
	s := c.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = io.WriteString(f, s)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func fullJitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// backoffCeiling is base·2^(attempt-1), capped.
func backoffCeiling(attempt int) time.Duration {
	d := backoffBase
	for i := 1; i < attempt && d < backoffCap; i++ {
		d *= 2
	}
	return min(d, backoffCap)
}

// request is one logical call. sensitive lists strings (such as the
// handshake nonce or a machine token) that must not appear in errors or
// logs, besides the keys.
type request struct {
	method    string
	path      string // under the base, e.g. /v1/jwks; escaped
	query     url.Values
	body      []byte // sent as application/json when non-nil
	sensitive []string
	// machine marks the machine verify calls: their own API version,
	// attempt cap, timeout, Retry-After bound and body bound.
	machine bool
	// machineKey authenticates with the machine secret key, if set.
	machineKey bool
}

// limits are the retry and size bounds of one call.
type limits struct {
	attempts      int
	timeout       time.Duration
	maxRetryAfter time.Duration
	maxBody       int64
	apiVersion    string
}

func (c *Client) limitsFor(req request) limits {
	if !req.machine {
		return limits{c.maxAttempts, c.timeout, c.maxRetryAfter, c.maxBody, c.apiVersion}
	}
	return limits{
		attempts:      min(c.maxAttempts, MachineMaxAttempts),
		timeout:       c.machTimeout,
		maxRetryAfter: min(c.maxRetryAfter, MachineMaxRetryAfter),
		maxBody:       min(c.maxBody, MaxMachineResponseBytes),
		apiVersion:    MachineAPIVersion,
	}
}

func (c *Client) bearer(req request) string {
	if req.machineKey && c.machineSecret != nil {
		return c.machineSecret()
	}
	return c.secret()
}

type response struct {
	header http.Header
	body   []byte
}

// do runs req with retries and returns a 2xx response or an error.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	lim := c.limitsFor(req)
	var lastErr error
	for attempt := 1; ; attempt++ {
		resp, status, err := c.attempt(ctx, req, lim)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err // the caller gave up; err already wraps ctx.Err()
		}

		var apiErr *Error
		var fatal *fatalError
		errors.As(err, &apiErr)
		switch {
		case apiErr != nil && status == http.StatusTooManyRequests:
			if apiErr.RetryAfter > lim.maxRetryAfter {
				return nil, err // not worth holding the caller that long
			}
		case apiErr != nil && status >= 500:
		case apiErr != nil:
			return nil, err // 3xx and 4xx: retrying cannot help
		case errors.As(err, &fatal):
			return nil, err
		}
		// Here: a 429, a 5xx, a network error or an attempt timeout.
		lastErr = err
		if attempt >= lim.attempts {
			return nil, lastErr
		}
		var wait time.Duration
		if apiErr != nil && status == http.StatusTooManyRequests {
			wait = apiErr.RetryAfter
		}
		if wait <= 0 {
			wait = c.jitter(backoffCeiling(attempt))
		}
		// Sleeping past the caller's deadline would only delay the failure.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, lastErr
		}

		trace := ""
		if apiErr != nil {
			trace = apiErr.TraceID
		}
		c.log.Debug("clerk api: retrying",
			zap.String("method", req.method),
			zap.String("path", req.path),
			zap.Int("status", status),
			zap.Int("attempt", attempt),
			zap.Int("max_attempts", lim.attempts),
			zap.Duration("wait", wait),
			zap.String("trace_id", trace),
			zap.String("error", err.Error()),
		)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w; retry abandoned: %w", lastErr, err)
		}
	}
}

// attempt makes one request. status is the HTTP status, or 0 if none came.
func (c *Client) attempt(ctx context.Context, req request, lim limits) (*response, int, error) {
	actx, cancel := context.WithTimeout(ctx, lim.timeout)
	defer cancel()

	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body) // a fresh reader per attempt
	}
	hreq, err := http.NewRequestWithContext(actx, req.method, u, body)
	if err != nil {
		return nil, 0, c.netError(req, err, &fatalError{})
	}
	hreq.Header.Set("Authorization", "Bearer "+c.bearer(req))
	hreq.Header.Set("User-Agent", c.userAgent)
	hreq.Header.Set("Clerk-API-Version", lim.apiVersion)
	hreq.Header.Set("Accept", "application/json")
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}

	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, 0, c.attemptError(ctx, actx, req, lim, err)
	}
	defer hresp.Body.Close()
	rbody, err := io.ReadAll(io.LimitReader(hresp.Body, lim.maxBody+1))
	if err != nil {
		return nil, hresp.StatusCode, c.attemptError(ctx, actx, req, lim, err)
	}
	tooLarge := int64(len(rbody)) > lim.maxBody
	if tooLarge {
		rbody = rbody[:lim.maxBody]
	}
	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		return nil, hresp.StatusCode, c.decodeError(req, hresp, rbody)
	}
	if tooLarge {
		return nil, hresp.StatusCode, c.netError(req, &bodyTooLargeError{lim.maxBody}, &fatalError{})
	}
	return &response{header: hresp.Header, body: rbody}, hresp.StatusCode, nil
}

// bodyTooLargeError is a 2xx body over the call's bound.
type bodyTooLargeError struct{ limit int64 }

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("response body exceeds %d bytes", e.limit)
}

// attemptError names a per-attempt timeout as such; a cancelled caller
// context is reported as it is.
func (c *Client) attemptError(ctx, actx context.Context, req request, lim limits, err error) error {
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("attempt timed out after %s: %w", lim.timeout, context.DeadlineExceeded)
	}
	return c.netError(req, err, nil)
}

// fatalError marks a failure that retrying cannot fix.
type fatalError struct{}

func (*fatalError) Error() string { return "not retryable" }

// netError is a failure without an HTTP status: network, timeout, an
// oversized body. Its text is computed once, with the request URL dropped
// and the key and sensitive values redacted; Unwrap keeps errors.Is working.
type netError struct {
	msg   string
	err   error
	fatal *fatalError
}

func (e *netError) Error() string { return e.msg }

func (e *netError) Unwrap() []error {
	if e.fatal != nil {
		return []error{e.err, e.fatal}
	}
	return []error{e.err}
}

func (c *Client) netError(req request, err error, fatal *fatalError) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text holds the URL, and so the nonce
	}
	msg := "clerk api: " + req.method + " " + req.path + ": " + c.redact(req, err.Error())
	return &netError{msg: msg, err: err, fatal: fatal}
}

func (c *Client) redact(req request, s string) string {
	s = strings.ReplaceAll(s, c.secret(), "[redacted]")
	if c.machineSecret != nil {
		for _, v := range secretForms(c.machineSecret()) {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	for _, v := range req.sensitive {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// secretForms are the spellings of a secret that a server echoing it may
// produce: as is, JSON-escaped (with and without HTML escaping, and with
// "\/" for "/"), and URL-escaped. Longest first, so no form is left half
// replaced by a shorter one.
func secretForms(v string) []string {
	if v == "" {
		return nil
	}
	forms := []string{v, url.QueryEscape(v), url.PathEscape(v)}
	if b, err := json.Marshal(v); err == nil {
		j := string(b[1 : len(b)-1])
		forms = append(forms, j, strings.ReplaceAll(j, "/", `\/`))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) == nil {
		j := strings.TrimSuffix(buf.String(), "\n")
		forms = append(forms, j[1:len(j)-1])
	}
	slices.SortFunc(forms, func(a, b string) int {
		if d := len(b) - len(a); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(forms)
}

// parseRetryAfter reads delay-seconds or an HTTP-date; zero if absent or
// unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second) // avoid overflow; far beyond any bound anyway
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
