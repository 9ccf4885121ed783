package caddyclerk

import (
	"errors"
	"sync"

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
	requests   *prometheus.CounterVec
	passed     prometheus.Counter // the hot path, resolved once
	keyFetches *prometheus.CounterVec
	cacheHit   prometheus.Counter
	cacheMiss  prometheus.Counter
	handshakes *prometheus.CounterVec
	machines   *prometheus.CounterVec
	all        []prometheus.Collector
}

func initMetrics(reg *prometheus.Registry) error {
	metrics.once.Do(func() {
		const ns, sub = "caddy", "clerk"
		metrics.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "Requests seen by the clerk handler, by outcome and Clerk reason."},
			[]string{"outcome", "reason"})
		metrics.passed = metrics.requests.WithLabelValues(outcomeAuthenticated, "")
		metrics.keyFetches = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "key_fetches_total", Help: "Fetches of the Clerk key set, by cause and result."},
			[]string{"cause", "result"})
		cache := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "token_cache_lookups_total", Help: "Verified-token cache lookups, by result."},
			[]string{"result"})
		metrics.cacheHit, metrics.cacheMiss = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
		metrics.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handshakes_total", Help: "Clerk handshakes: started (redirected to Clerk), resolved, failed."},
			[]string{"result"})
		metrics.machines = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "machine_verifications_total", Help: "Machine token verifications, by token type and result " +
				"(ok, cached, invalid, rate_limited, unavailable)."}, []string{"type", "result"})
		metrics.all = []prometheus.Collector{metrics.requests, metrics.keyFetches, cache, metrics.handshakes, metrics.machines}
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

func countRequest(outcome string, reason verifier.Reason) {
	if outcome == outcomeAuthenticated {
		metrics.passed.Inc()
		return
	}
	counterOf(&requestCounters, metrics.requests, outcome, string(reason)).Inc()
}

// countMachine counts a machine verification: both labels are fixed words
// (the token type is detected, never copied from input).
func countMachine(typ verifier.TokenType, result machine.Result) {
	counterOf(&machineCounters, metrics.machines, string(typ), string(result)).Inc()
}

// The counters of each label pair, resolved once: WithLabelValues hashes
// and locks on every call, and refusals (a spray of bad tokens, 401s to a
// crawler) are as hot as passes. Labels are fixed words and reason codes,
// so the maps stay small.
var requestCounters, machineCounters sync.Map // labelPair → prometheus.Counter

type labelPair struct{ a, b string }

func counterOf(m *sync.Map, vec *prometheus.CounterVec, a, b string) prometheus.Counter {
	if c, ok := m.Load(labelPair{a, b}); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.LoadOrStore(labelPair{a, b}, vec.WithLabelValues(a, b))
	return c.(prometheus.Counter)
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
