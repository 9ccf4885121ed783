package verifier

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Source fetches a JWKS document.
type Source interface {
	// Fetch returns the JWKS body and, if the response said so, how long it
	// may be cached (zero if unknown).
	Fetch(ctx context.Context) (body []byte, maxAge time.Duration, err error)
	// String names the source for logs. It must not contain secrets.
	String() string
}

// CacheOptions tune a KeyCache. Zero values take the defaults.
type CacheOptions struct {
	// RefreshInterval is how often the key set is refetched, on a fixed
	// schedule that hits do not move. A shorter Cache-Control max-age wins.
	// Default 1 h.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches caused by
	// tokens naming a kid we do not have. Default 30 s.
	UnknownKIDInterval time.Duration
	// ColdRetryInterval is the least time between two fetches caused by
	// requests while no key set has ever loaded. Default 1 s.
	ColdRetryInterval time.Duration
	// FetchTimeout bounds one fetch. Default 5 s.
	FetchTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a failed fetch.
	// Defaults 1 s and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives fetch results (never keys or secrets). Default: none.
	Logger *zap.Logger
	// OnFetch, if set, is called after every fetch (for metrics).
	OnFetch func(FetchResult)
	// Now is the clock used for the rate limits; nil means time.Now.
	Now func() time.Time
}

// FetchResult describes one fetch of the key set.
type FetchResult struct {
	Cause    string // "start", "schedule", "retry", "unknown-kid", "cold"
	Err      error
	Keys     int
	Duration time.Duration
}

// KeyCache is the key set of one source: fetched in the background, never
// on construction; refreshed on a fixed schedule; refetched for an unknown
// kid at most once per UnknownKIDInterval, with concurrent misses sharing
// one fetch; and kept when a refresh fails (stale-if-error), with backoff.
// One KeyCache can serve any number of Verifiers.
type KeyCache struct {
	src  Source
	opt  CacheOptions
	log  atomic.Pointer[zap.Logger]
	set  atomic.Pointer[KeySet]
	sf   singleflight.Group
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}

	mu          sync.Mutex
	lastAttempt time.Time // start and end of the last fetch
	notBefore   time.Time // Clerk asked us to wait (Retry-After)
	inflight    bool
	lastErr     error
	failures    int
	maxAge      time.Duration // from the last good response's Cache-Control
}

var _ Keys = (*KeyCache)(nil)

// NewKeyCache starts a cache for src. It returns at once; the first fetch
// runs in the background. Close it when done.
func NewKeyCache(src Source, opt CacheOptions) *KeyCache {
	if opt.RefreshInterval <= 0 {
		opt.RefreshInterval = time.Hour
	}
	if opt.UnknownKIDInterval <= 0 {
		opt.UnknownKIDInterval = 30 * time.Second
	}
	if opt.ColdRetryInterval <= 0 {
		opt.ColdRetryInterval = time.Second
	}
	if opt.FetchTimeout <= 0 {
		opt.FetchTimeout = 5 * time.Second
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = time.Second
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(30*time.Second, opt.MinBackoff)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	c := &KeyCache{src: src, opt: opt, done: make(chan struct{})}
	c.SetLogger(opt.Logger)
	c.ctx, c.stop = context.WithCancel(context.Background())
	go c.run()
	return c
}

// SetLogger replaces the logger: a cache shared across config reloads
// logs where the newest config says. nil discards.
func (c *KeyCache) SetLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	c.log.Store(l)
}

// Close stops background refreshes and waits for them to end.
func (c *KeyCache) Close() {
	c.stop()
	<-c.done
}

// RequiresKID is true: a key set is searched by kid.
func (c *KeyCache) RequiresKID() bool { return true }

// Loaded reports whether a key set has ever loaded.
func (c *KeyCache) Loaded() bool { return c.set.Load() != nil }

func (c *KeyCache) String() string { return "keycache(" + c.src.String() + ")" }

// Key returns the key for kid, refetching the set (rate limited, shared) when
// the kid is unknown or nothing has loaded yet.
func (c *KeyCache) Key(ctx context.Context, kid string) (*Key, error) {
	set := c.set.Load()
	if set != nil {
		if k, err := set.lookup(kid); k != nil {
			return k, nil
		} else if err != nil {
			return nil, err
		}
	}
	return c.fetchKey(ctx, kid, set)
}

// fetchKey is Key for a kid the key set set (nil if none has loaded) does
// not hold. Its own function: every cache hit asks Key, and this part's
// frame would be on each one's stack.
func (c *KeyCache) fetchKey(ctx context.Context, kid string, set *KeySet) (*Key, error) {
	cause := "unknown-kid"
	if set == nil {
		cause = "cold"
	}
	if ch := c.demand(cause, set == nil); ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, wrapError(KindKeysUnavailable, "gave up waiting for the key set", ctx.Err())
		}
	}
	set = c.set.Load() // a fetch may also have finished since the first look
	if set == nil {
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last == nil {
			last = errors.New("the first fetch has not finished")
		}
		return nil, wrapError(KindKeysUnavailable, "the signing keys have not loaded yet", last)
	}
	if k, err := set.lookup(kid); k != nil {
		return k, nil
	} else if err != nil {
		return nil, err
	}
	// Do not list the kids we have: that helps nobody but an attacker.
	return nil, errorf(KindUnknownKID, "no signing key in the JWKS matches the token's kid %s", clip(strconv.Quote(kid)))
}

// demand returns a fetch for a request to wait on: the one under way, or a
// new one if the rate limit allows (every fetch counts, scheduled ones too,
// so a flood of unknown kids cannot hammer Clerk); nil otherwise. Deciding
// and joining under one lock matters: fetch clears inflight under it before
// singleflight forgets the call, so a join never starts a second fetch.
func (c *KeyCache) demand(cause string, cold bool) <-chan singleflight.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inflight {
		gap := c.opt.UnknownKIDInterval
		if cold {
			gap = c.opt.ColdRetryInterval
		}
		now := c.opt.Now()
		if (!c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < gap) || now.Before(c.notBefore) {
			return nil
		}
		c.lastAttempt = now
		c.inflight = true
	}
	return c.sf.DoChan("fetch", func() (any, error) { return nil, c.fetch(cause) })
}

// start begins (or joins) a fetch regardless of the rate limit: the
// background schedule.
func (c *KeyCache) start(cause string) <-chan singleflight.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inflight {
		c.lastAttempt = c.opt.Now()
		c.inflight = true
	}
	return c.sf.DoChan("fetch", func() (any, error) { return nil, c.fetch(cause) })
}

// fetch loads the set once; callers share it through singleflight.
func (c *KeyCache) fetch(cause string) error {
	start := time.Now()

	ctx, cancel := context.WithTimeout(c.ctx, c.opt.FetchTimeout)
	defer cancel()
	body, maxAge, err := c.src.Fetch(ctx)
	var set *KeySet
	if err == nil {
		set, err = ParseJWKS(body)
	}
	if old := c.set.Load(); err == nil && old != nil {
		set.keepSame(old)
	}
	if err == nil && set.Len() == 0 && c.set.Load() != nil {
		// Never trade working keys for a set we cannot use.
		set, err = nil, errors.New("the JWKS has no usable RS256 signing key")
	}

	c.mu.Lock()
	c.inflight = false
	// Rate limits count from the end too: a slow fetch (retries, a hang)
	// must not use up the interval it was meant to space out.
	c.lastAttempt = c.opt.Now()
	if err != nil {
		c.failures++
		c.lastErr = err
		if d := retryAfterOf(err); d > 0 {
			c.notBefore = c.lastAttempt.Add(min(d, maxRetryAfter))
		}
	} else {
		c.failures = 0
		c.lastErr = nil
		c.maxAge = maxAge
		c.set.Store(set)
	}
	c.mu.Unlock()

	res := FetchResult{Cause: cause, Err: err, Duration: time.Since(start)}
	if set != nil {
		res.Keys = set.Len()
		c.log.Load().Debug("loaded the Clerk signing keys", zap.String("source", c.src.String()),
			zap.String("cause", cause), zap.Int("keys", set.Len()), zap.Duration("max_age", maxAge))
	} else if c.set.Load() != nil {
		c.log.Load().Warn("refreshing the Clerk signing keys failed; using the cached keys",
			zap.String("source", c.src.String()), zap.String("cause", cause), zap.Error(err))
	} else {
		c.log.Load().Error("loading the Clerk signing keys failed", zap.String("source", c.src.String()),
			zap.String("cause", cause), zap.String("reason", string(ReasonJWKRemoteFailedToLoad)), zap.Error(err))
	}
	if c.opt.OnFetch != nil {
		c.opt.OnFetch(res)
	}
	return err
}

// run is the background schedule: first fetch at once, then every
// RefreshInterval (or max-age if shorter), with jittered exponential backoff
// after failures.
func (c *KeyCache) run() {
	defer close(c.done)
	delay := time.Duration(0)
	cause := "start"
	for {
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if cause == "start" && c.set.Load() != nil {
			// A request's fetch got there first.
			delay, cause = c.opt.RefreshInterval, "schedule"
			continue
		}
		var err error
		select {
		case r := <-c.start(cause):
			err = r.Err
		case <-c.ctx.Done():
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.mu.Lock()
			n, wait := c.failures, c.notBefore.Sub(c.opt.Now())
			c.mu.Unlock()
			delay = max(c.backoff(n), wait)
			cause = "retry"
			continue
		}
		delay = c.opt.RefreshInterval
		c.mu.Lock()
		if c.maxAge > 0 && c.maxAge < delay {
			delay = max(c.maxAge, c.opt.MinBackoff)
		}
		c.mu.Unlock()
		cause = "schedule"
	}
}

// backoff is MinBackoff·2^(n-1) capped at MaxBackoff, with jitter in
// [½d, d] so many Caddy instances do not retry in lockstep.
func (c *KeyCache) backoff(failures int) time.Duration {
	d := c.opt.MinBackoff
	for i := 1; i < failures && d < c.opt.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opt.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// maxRetryAfter bounds how long a Retry-After can hold back fetches.
const maxRetryAfter = time.Minute

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// WithRetryAfter marks a Source's error with the wait Clerk asked for
// (Retry-After on a 429 or 503): the cache then fetches no sooner, from
// the background or for requests (bounded at one minute).
func WithRetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfterError{err: err, after: d}
}

func retryAfterOf(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.after
	}
	return 0
}
