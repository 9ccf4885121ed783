package caddyclerk

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-clerk/caddy-clerk/internal/machine"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// Outcomes of a request, the outcome label of caddy_clerk_requests_total.
const (
	outcomeAuthenticated = "authenticated" // verified and allowed, passed on
	outcomeAnonymous     = "anonymous"     // not authenticated, passed on (optional)
	outcomeSkipped       = "skipped"       // excluded path or CORS preflight
	outcomeHandshake     = "handshake"     // sent to or back from Clerk's handshake
	outcomeSignIn        = "sign_in"       // redirected to sign in
	outcomeUnauthorized  = "unauthorized"  // 401
	outcomeForbidden     = "forbidden"     // 403
	outcomeUnavailable   = "unavailable"   // 503, keys never loaded
	outcomeSignOut       = "sign_out"
	outcomeProxied       = "proxied" // frontend_api_proxy: handed to the Frontend API, or refused (400)
)

// metrics are process-wide, like Caddy's own: they survive config reloads
// and are registered with each config's registry. Labels take only Clerk's
// reason codes and fixed words, never user input.
var metrics struct {
	once       sync.Once
	requests   *prometheus.CounterVec // all but passed and skipped
	passed     *localCounter          // requests{outcome="authenticated"}
	skipped    *localCounter          // requests{outcome="skipped"}: excluded assets, as many as passes
	keyFetches *prometheus.CounterVec
	cacheHit   *localCounter
	cacheMiss  prometheus.Counter
	handshakes *prometheus.CounterVec
	machines   *prometheus.CounterVec
	all        []prometheus.Collector
}

func initMetrics(reg *prometheus.Registry) error {
	metrics.once.Do(func() {
		const ns, sub = "caddy", "clerk"
		requests := newHotVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "Requests seen by the clerk handler, by outcome and Clerk reason."},
			[]string{"outcome", "reason"})
		metrics.requests = requests.vec
		metrics.passed = requests.hot(&requestCounters, outcomeAuthenticated, "")
		metrics.skipped = requests.hot(&requestCounters, outcomeSkipped, "")
		metrics.keyFetches = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "key_fetches_total", Help: "Fetches of the Clerk key set, by cause and result."},
			[]string{"cause", "result"})
		cache := newHotVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "token_cache_lookups_total", Help: "Verified-token cache lookups, by result."},
			[]string{"result"})
		metrics.cacheHit, metrics.cacheMiss = cache.hot(nil, "hit"), cache.vec.WithLabelValues("miss")
		metrics.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handshakes_total", Help: "Clerk handshakes: started (redirected to Clerk), resolved, failed."},
			[]string{"result"})
		machines := newHotVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "machine_verifications_total", Help: "Machine token verifications, by token type and result " +
				"(ok, cached, invalid, rate_limited, unavailable)."}, []string{"type", "result"})
		metrics.machines = machines.vec
		// Machine tokens answered from a cache or verified: every request
		// of a script that sends one.
		for _, typ := range []verifier.TokenType{verifier.TokenAPIKey, verifier.TokenM2M, verifier.TokenOAuth} {
			for _, res := range []machine.Result{machine.ResultCached, machine.ResultOK} {
				machines.hot(&machineCounters, string(typ), string(res))
			}
		}
		metrics.all = []prometheus.Collector{requests, metrics.keyFetches, cache, metrics.handshakes, machines}
	})
	if reg == nil {
		return nil
	}
	for _, c := range metrics.all {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}

// countRequest counts a decision; the two busiest outcomes skip
// counterOf's lookup.
func countRequest(outcome string, reason verifier.Reason) {
	switch {
	case reason != "":
	case outcome == outcomeAuthenticated:
		metrics.passed.Inc()
		return
	case outcome == outcomeSkipped:
		metrics.skipped.Inc()
		return
	}
	counterOf(&requestCounters, metrics.requests, outcome, string(reason)).Inc()
}

// countMachine counts a machine verification: both labels are fixed words
// (the token type is detected, never copied from input).
func countMachine(typ verifier.TokenType, result machine.Result) {
	counterOf(&machineCounters, metrics.machines, string(typ), string(result)).Inc()
}

// hotVec is a CounterVec whose busiest series, those nearly every request
// adds to, are localCounters. A prometheus.Counter is one word: on a
// server with several cores, its cache line moves to the core of each
// request that counts. A localCounter has a line per core. Collect
// reports them as series of the vec, once counted, as the vec does its
// own; the vec never gets a child with their labels (counterOf finds them
// first).
type hotVec struct {
	vec    *prometheus.CounterVec
	desc   *prometheus.Desc // the vec's: same name, help and labels
	series []hotSeries
}

type hotSeries struct {
	labels []string
	n      *localCounter
}

func newHotVec(opts prometheus.CounterOpts, labels []string) *hotVec {
	return &hotVec{vec: prometheus.NewCounterVec(opts, labels),
		desc: prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name), opts.Help, labels, nil)}
}

// hot is the series with these label values, counted apart from the vec.
// With counters (counterOf's map for a vec of two labels), counterOf
// returns it for its pair.
func (v *hotVec) hot(counters *sync.Map, labels ...string) *localCounter {
	s := hotSeries{labels: labels, n: new(localCounter)}
	v.series = append(v.series, s)
	if counters != nil {
		counters.Store(labelPair{labels[0], labels[1]}, s.n)
	}
	return s.n
}

func (v *hotVec) Describe(ch chan<- *prometheus.Desc) { v.vec.Describe(ch) }

func (v *hotVec) Collect(ch chan<- prometheus.Metric) {
	v.vec.Collect(ch)
	for _, s := range v.series {
		if n := s.n.Value(); n > 0 {
			ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(n), s.labels...)
		}
	}
}

// The counters of each label pair, resolved once: WithLabelValues hashes
// and locks on every call, and refusals (a spray of bad tokens, 401s to a
// crawler) are as hot as passes. Labels are fixed words and reason codes,
// so the maps stay small.
// The hot series (hotVec) are in them from the start.
var requestCounters, machineCounters sync.Map // labelPair → counter

type labelPair struct{ a, b string }

// counter is a prometheus.Counter or a localCounter.
type counter interface{ Inc() }

func counterOf(m *sync.Map, vec *prometheus.CounterVec, a, b string) counter {
	if c, ok := m.Load(labelPair{a, b}); ok {
		return c.(counter)
	}
	c, _ := m.LoadOrStore(labelPair{a, b}, vec.WithLabelValues(a, b))
	return c.(counter)
}

func countCacheLookup(hit bool) {
	if hit {
		metrics.cacheHit.Inc()
	} else {
		metrics.cacheMiss.Inc()
	}
}

func countKeyFetch(r verifier.FetchResult) {
	result := "ok"
	if r.Err != nil {
		result = "error"
	}
	metrics.keyFetches.WithLabelValues(r.Cause, result).Inc()
}

// localCounter is a counter with a cache line per core, or nearly: the
// core's P (sync.Pool keeps a token per P) picks the stripe, and tokens
// take stripes in turn, so two cores share one only past
// counterStripes cores. (xsync.Counter picks its stripes at random among
// GOMAXPROCS of them: on two cores, both share one half the time.)
type localCounter struct {
	stripes [counterStripes]struct {
		n atomic.Uint64
		_ [120]byte // a line and the one the CPU prefetches with it
	}
}

const counterStripes = 16

type stripeToken struct{ i uint32 }

var (
	stripeTokens = sync.Pool{New: func() any { return &stripeToken{i: nextStripe.Add(1) % counterStripes} }}
	nextStripe   atomic.Uint32
)

func (c *localCounter) Inc() {
	t := stripeTokens.Get().(*stripeToken)
	c.stripes[t.i].n.Add(1)
	stripeTokens.Put(t)
}

// Value is the sum of the stripes: a scrape during counting may miss the
// latest few, as with any counter read while it is written.
func (c *localCounter) Value() uint64 {
	var n uint64
	for i := range c.stripes {
		n += c.stripes[i].n.Load()
	}
	return n
}
