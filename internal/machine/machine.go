// Package machine verifies opaque machine tokens (mt_, ak_, oat_) through
// the Backend API without letting them cost Clerk a call per request: a
// per-node result cache keyed by a keyed hash (never the token), a negative
// cache for tokens Clerk does not know, one call for concurrent requests
// with one token, a bound on new-token verifications per second, and
// stale-if-error when Clerk is unreachable. It knows no Caddy and no HTTP.
package machine

import (
	"context"
	"errors"
	"hash/maphash"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/caddy-clerk/caddy-clerk/internal/fifo"
)

// Errors a Backend returns, wrapped around its own error; and the ones
// Verify returns.
var (
	// ErrInvalid: Clerk does not know the token, or it is revoked, expired
	// or answered in a shape we do not accept. Cached for NegativeTTL.
	ErrInvalid = errors.New("machine token invalid")
	// ErrUnavailable: Clerk could not be asked (network, 5xx, 429). Never
	// cached; a recently verified token keeps passing.
	ErrUnavailable = errors.New("Clerk's Backend API unavailable")
	// ErrKeyInvalid: Clerk refused our key (401): our configuration's
	// fault, answered as unavailable.
	ErrKeyInvalid = errors.New("the secret key was refused")
	// ErrRateLimited: the node's bound on new-token verifications is
	// reached.
	ErrRateLimited = errors.New("machine token verification rate limit reached")
)

// Result is what became of one verification, for metrics.
type Result string

// Results.
const (
	ResultOK          Result = "ok"           // verified at Clerk now
	ResultCached      Result = "cached"       // answered from the cache (fresh, or stale during an outage)
	ResultInvalid     Result = "invalid"      // Clerk said no (now, or in the negative cache)
	ResultRateLimited Result = "rate_limited" // 503: too many new tokens this second
	ResultUnavailable Result = "unavailable"  // 503: Clerk unreachable, or our key refused
)

// Backend asks Clerk about one token of kind (the caller's token type).
// expiry is when the token itself expires, zero if never.
type Backend[T any] func(ctx context.Context, kind, token string) (v T, expiry time.Time, err error)

// Config is how a Verifier caches and bounds.
type Config struct {
	// TTL is how long a verified token is believed without asking Clerk
	// again (never past its own expiry); 0 asks on every request.
	TTL time.Duration
	// NegativeTTL is how long a token Clerk does not know is refused
	// without asking again.
	NegativeTTL time.Duration
	// StaleIfError is how long after its last verification a token keeps
	// passing while Clerk is unreachable.
	StaleIfError time.Duration
	// Size bounds the positive and the negative cache, each.
	Size int
	// Rate is the number of Backend API verifications of tokens not in the
	// cache per second; Burst the bucket. Rate 0 means no bound.
	Rate  float64
	Burst int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults (our decisions, §11.2 of the reference).
const (
	DefaultTTL          = 30 * time.Second
	DefaultNegativeTTL  = 30 * time.Second
	DefaultStaleIfError = 5 * time.Minute
	DefaultSize         = 10_000
	DefaultRate         = 20
)

// Verifier verifies tokens through a Backend with a cache. Safe for
// concurrent use.
type Verifier[T any] struct {
	cfg     Config
	backend Backend[T]
	now     func() time.Time
	seeds   [2]maphash.Seed
	good    *fifo.Cache[cacheID, entry[T]]
	bad     *fifo.Cache[cacheID, time.Time] // refused until
	flight  singleflight.Group
	limit   *rate.Limiter
	// keyRefusedLog rate-limits the caller's log of ErrKeyInvalid.
	keyRefusedLog atomic.Int64
}

type entry[T any] struct {
	v          T
	freshUntil time.Time // believed without asking
	staleUntil time.Time // believed while Clerk is unreachable
}

// New returns a Verifier asking backend.
func New[T any](backend Backend[T], cfg Config) *Verifier[T] {
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	v := &Verifier[T]{cfg: cfg, backend: backend, now: cfg.Now,
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		good:  fifo.New[cacheID, entry[T]](cfg.Size, cacheID.shard), bad: fifo.New[cacheID, time.Time](cfg.Size, cacheID.shard)}
	if v.now == nil {
		v.now = time.Now
	}
	if cfg.Rate > 0 {
		burst := cfg.Burst
		if burst <= 0 {
			burst = max(int(2*cfg.Rate), 1)
		}
		v.limit = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	return v
}

// Verify answers for token at the instant at (the request's arrival; zero
// is the clock's now). A cached answer never waits on Clerk or the
// limiter; a new token is verified once however many requests carry it.
func (v *Verifier[T]) Verify(ctx context.Context, kind, token string, at time.Time) (T, Result, error) {
	id := v.id(kind, token)
	now := at
	if now.IsZero() {
		now = v.now()
	}
	if e, ok := v.good.Get(id); ok && now.Before(e.freshUntil) {
		return e.v, ResultCached, nil
	}
	if until, ok := v.bad.Get(id); ok && now.Before(until) {
		var zero T
		return zero, ResultInvalid, ErrInvalid
	}
	type answer struct {
		v   T
		res Result
		err error
	}
	// One client going away must not fail the others waiting on the call;
	// the Backend bounds its own time.
	ctx = context.WithoutCancel(ctx)
	a, _, _ := v.flight.Do(string(id[:]), func() (any, error) {
		val, res, err := v.ask(ctx, id, kind, token)
		return answer{val, res, err}, nil
	})
	ans := a.(answer)
	return ans.v, ans.res, ans.err
}

func (v *Verifier[T]) ask(ctx context.Context, id cacheID, kind, token string) (T, Result, error) {
	var zero T
	stale, hasStale := v.good.Get(id)
	hasStale = hasStale && v.now().Before(stale.staleUntil)
	if v.limit != nil && !v.limit.Allow() {
		if hasStale {
			return stale.v, ResultCached, nil // known good: no reason to refuse it
		}
		return zero, ResultRateLimited, ErrRateLimited
	}
	val, expiry, err := v.backend(ctx, kind, token)
	now := v.now()
	switch {
	case err == nil:
		e := entry[T]{v: val, freshUntil: now.Add(v.cfg.TTL), staleUntil: now.Add(v.cfg.StaleIfError)}
		if !expiry.IsZero() {
			e.freshUntil, e.staleUntil = earliest(e.freshUntil, expiry), earliest(e.staleUntil, expiry)
		}
		v.good.Put(id, e)
		v.bad.Delete(id)
		return val, ResultOK, nil
	case errors.Is(err, ErrInvalid):
		v.good.Delete(id) // revoked within the TTL: gone now
		if v.cfg.NegativeTTL > 0 {
			v.bad.Put(id, now.Add(v.cfg.NegativeTTL))
		}
		return zero, ResultInvalid, err
	}
	// Unreachable, refused key or anything else: not the client's fault.
	if hasStale && now.Before(stale.staleUntil) {
		return stale.v, ResultCached, nil
	}
	if !errors.Is(err, ErrKeyInvalid) && !errors.Is(err, ErrUnavailable) {
		err = errors.Join(ErrUnavailable, err)
	}
	return zero, ResultUnavailable, err
}

// LogKeyRefused reports whether the caller should log a refused key now:
// at most once a minute.
func (v *Verifier[T]) LogKeyRefused() bool {
	now := v.now().UnixNano()
	last := v.keyRefusedLog.Load()
	return now-last >= int64(time.Minute) && v.keyRefusedLog.CompareAndSwap(last, now)
}

// Len is the number of remembered good and refused tokens.
func (v *Verifier[T]) Len() (good, bad int) { return v.good.Len(), v.bad.Len() }

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// cacheID is a 128-bit keyed hash of kind and token: the cache never holds
// a token, and the seeds are secret, so no one can aim for a collision.
type cacheID [16]byte

func (id cacheID) shard() uint64 { return uint64(id[0]) }

func (v *Verifier[T]) id(kind, token string) cacheID {
	var id cacheID
	for i, seed := range v.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(kind)
		h.WriteByte(0)
		h.WriteString(token)
		x := h.Sum64()
		for j := 0; j < 8; j++ {
			id[i*8+j] = byte(x >> (8 * j))
		}
	}
	return id
}
