package caddyclerk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// TestMetrics: each decision is counted under its outcome and Clerk reason,
// cache lookups and key fetches too, in the config's registry.
func TestMetrics(t *testing.T) {
	clerk := clerktest.NewT(t)
	admin := clerk.AdminUser()
	tok := clerk.MustMint(clerktest.TokenOptions{User: &admin})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{PublishableKey: clerk.PublishableKey(), FrontendAPIURL: clerk.FrontendAPIURL(),
		SignInURL: clerk.AccountsURL() + "/sign-in", Exclude: []string{"/health"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()

	serve := func(path string, hdr map[string]string) int {
		req := httptest.NewRequest("GET", path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		err := h.ServeHTTP(w, req, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		if he, ok := err.(caddyhttp.HandlerError); ok {
			return he.StatusCode
		}
		return w.Code
	}
	count := func(outcome, reason string) float64 {
		return scraped(t, "caddy_clerk_requests_total", "outcome", outcome, "reason", reason)
	}
	type snap struct{ passed, missing, sign, hs, skipped, hit, miss float64 }
	take := func() snap {
		return snap{count(outcomeAuthenticated, ""), count(outcomeUnauthorized, "session-token-and-uat-missing"),
			count(outcomeSignIn, "session-token-and-uat-missing"), count(outcomeHandshake, "client-uat-but-no-session-token"),
			count(outcomeSkipped, ""), scraped(t, "caddy_clerk_token_cache_lookups_total", "result", "hit"),
			scraped(t, "caddy_clerk_token_cache_lookups_total", "result", "miss")}
	}
	before := take()
	deadline := time.Now().Add(5 * time.Second)
	for serve("/api", map[string]string{"Authorization": "Bearer " + tok}) != 200 { // first: keys load
		if time.Now().After(deadline) {
			t.Fatal("keys never loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	serve("/api", map[string]string{"Authorization": "Bearer " + tok})
	serve("/api", nil)
	serve("/page", map[string]string{"Sec-Fetch-Dest": "document", "Cookie": "__clerk_db_jwt=dvb"})
	serve("/page", map[string]string{"Sec-Fetch-Dest": "document", "Cookie": "__clerk_db_jwt=dvb; __client_uat=9"})
	serve("/health", nil)
	after := take()
	d := snap{after.passed - before.passed, after.missing - before.missing, after.sign - before.sign, after.hs - before.hs,
		after.skipped - before.skipped, after.hit - before.hit, after.miss - before.miss}
	if d != (snap{passed: 2, missing: 1, sign: 1, hs: 1, skipped: 1, hit: 1, miss: 1}) {
		t.Fatalf("deltas %+v", d)
	}
	if testutil.ToFloat64(metrics.keyFetches.WithLabelValues("start", "ok"))+
		testutil.ToFloat64(metrics.keyFetches.WithLabelValues("cold", "ok")) < 1 {
		t.Fatal("no successful key fetch counted")
	}
	n, err := testutil.GatherAndCount(ctx.GetMetricsRegistry(), "caddy_clerk_requests_total", "caddy_clerk_key_fetches_total",
		"caddy_clerk_token_cache_lookups_total", "caddy_clerk_handshakes_total")
	if err != nil || n == 0 {
		t.Fatalf("not in the config's registry: %d %v", n, err)
	}
	// A second handler (a reload) registers the same collectors again.
	h2 := &Handler{PublishableKey: clerk.PublishableKey(), FrontendAPIURL: clerk.FrontendAPIURL()}
	if err := h2.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h2.Cleanup()
	var out strings.Builder
	mfs, _ := ctx.GetMetricsRegistry().Gather()
	for _, mf := range mfs {
		out.WriteString(mf.GetName() + "\n")
	}
	if !strings.Contains(out.String(), "caddy_clerk_handshakes_total") {
		t.Fatalf("registry: %s", out.String())
	}
}

// scraped is the value of the series of name with these label names and
// values (pairs; a label not given must be empty), as a scrape of the
// process's clerk metrics reports it: the busiest series are counted
// apart from their CounterVec (hotVec), so a test reads what Prometheus
// would, never a vec's child.
func scraped(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := initMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err) // a series reported twice, a hot one in its vec too, fails here
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0 // not counted yet
}
