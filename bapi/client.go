// Package bapi is a small client for the Clerk Backend API: the JWKS, the
// handshake payload and users. It retries rate limits and server errors
// within tight bounds and never lets the secret key reach an error, a log
// line or a formatted value.
package bapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
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
	// MaxResponseBytes bounds every response body read.
	MaxResponseBytes = 1 << 20
)

// Version is this module's version, sent in the User-Agent
// (caddy-clerk/<Version>). Set it before calling New, e.g. with -ldflags -X.
var Version = "dev"

const (
	backoffBase = 200 * time.Millisecond
	backoffCap  = 2 * time.Second
	minKeyBody  = 16 // characters after sk_test_/sk_live_; Clerk's are longer
)

// Client calls the Clerk Backend API. It is safe for concurrent use. Create
// it with New; the zero value is not usable.
type Client struct {
	base          string        // normalised, without /v1
	secret        func() string // a closure: fmt and reflective dumpers cannot look inside
	env           string        // "sk_test_" or "sk_live_", safe to show
	apiVersion    string
	userAgent     string
	timeout       time.Duration
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

// String describes the client without its secret key.
func (c Client) String() string {
	return fmt.Sprintf("bapi.Client{base: %s, key: %s[redacted], api_version: %s}", c.base, c.env, c.apiVersion)
}

// GoString is String: %#v must not print the secret key either.
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
// handshake nonce) that must not appear in errors or logs, besides the key.
type request struct {
	method    string
	path      string // under the base, e.g. /v1/jwks; escaped
	query     url.Values
	sensitive []string
}

type response struct {
	header http.Header
	body   []byte
}

// do runs req with retries and returns a 2xx response or an error.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		resp, status, err := c.attempt(ctx, req)
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
			if apiErr.RetryAfter > c.maxRetryAfter {
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
		if attempt >= c.maxAttempts {
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
			zap.Int("max_attempts", c.maxAttempts),
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
func (c *Client) attempt(ctx context.Context, req request) (*response, int, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hreq, err := http.NewRequestWithContext(actx, req.method, u, nil)
	if err != nil {
		return nil, 0, c.netError(req, err, &fatalError{})
	}
	hreq.Header.Set("Authorization", "Bearer "+c.secret())
	hreq.Header.Set("User-Agent", c.userAgent)
	hreq.Header.Set("Clerk-API-Version", c.apiVersion)
	hreq.Header.Set("Accept", "application/json")

	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, 0, c.attemptError(ctx, actx, req, err)
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, c.maxBody+1))
	if err != nil {
		return nil, hresp.StatusCode, c.attemptError(ctx, actx, req, err)
	}
	tooLarge := int64(len(body)) > c.maxBody
	if tooLarge {
		body = body[:c.maxBody]
	}
	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		return nil, hresp.StatusCode, c.decodeError(req, hresp, body)
	}
	if tooLarge {
		err := fmt.Errorf("response body exceeds %d bytes", c.maxBody)
		return nil, hresp.StatusCode, c.netError(req, err, &fatalError{})
	}
	return &response{header: hresp.Header, body: body}, hresp.StatusCode, nil
}

// attemptError names a per-attempt timeout as such; a cancelled caller
// context is reported as it is.
func (c *Client) attemptError(ctx, actx context.Context, req request, err error) error {
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("attempt timed out after %s: %w", c.timeout, context.DeadlineExceeded)
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
	for _, v := range req.sensitive {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
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
