package caddyclerk

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// BenchmarkServeHTTP is the handler's cost per request with a valid
// Bearer token (token cache on and off), a browser's cookies (through
// the handshake state machine) or no credential at all (refused with 401),
// excluding Caddy's own work. "baseline"
// does only what every case does besides the handler (a replacer, vars and
// a request copy, as Caddy makes them): the handler's own cost is a case
// minus baseline.
func BenchmarkServeHTTP(b *testing.B) {
	clerk := clerktest.NewT(b)
	admin := clerk.AdminUser()
	tok := clerk.MustMint(clerktest.TokenOptions{User: &admin, Lifetime: 3600e9})
	// next answers as respond does: a status line and a body, so the
	// handler's response writer (Cache-Control: private) is measured too.
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(okBody)
		return err
	})
	for _, bc := range []struct {
		name        string
		size        int
		cookie, bad bool
	}{{"baseline", -1, false, false}, {"cached", 10000, false, false}, {"uncached", 0, false, false},
		{"cookie", 10000, true, false}, {"refused", 10000, false, true}} {
		b.Run(bc.name, func(b *testing.B) {
			size := max(bc.size, 0)
			h := &Handler{PublishableKey: clerk.PublishableKey(), FrontendAPIURL: clerk.FrontendAPIURL(), TokenCache: &size}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := h.Provision(ctx); err != nil {
				b.Fatal(err)
			}
			defer h.Cleanup()
			// Caddy's default log level: the debug lines of a refusal are
			// checked, not written.
			h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
				zapcore.AddSync(io.Discard), zapcore.InfoLevel))
			req := httptest.NewRequest("GET", "/api", nil)
			switch {
			case bc.bad: // no credential: 401, the cheapest refusal
			case bc.cookie:
				req.Header.Set("Cookie", "theme=dark; __session="+tok+"; __client_uat=1; __clerk_db_jwt=dvb_x")
				req.Header.Set("Sec-Fetch-Dest", "document")
			default:
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			w := &benchWriter{h: http.Header{}}
			serve := func() {
				clear(w.h) // a new response's header, without allocating one
				repl := caddy.NewReplacer()
				ctx := context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl)
				vars := map[string]any{caddyhttp.TrustedProxyVarKey: false, caddyhttp.ClientIPVarKey: "192.0.2.1"} // as Caddy's server makes them
				r := req.WithContext(context.WithValue(ctx, caddyhttp.VarsCtxKey, vars))
				var err error
				if bc.size < 0 {
					err = next.ServeHTTP(w, r)
				} else {
					err = h.ServeHTTP(w, r, next)
				}
				if (err != nil) != bc.bad {
					b.Fatal(err)
				}
			}
			serve()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				serve()
			}
		})
	}
}

// BenchmarkCountRequest is the metric of a refusal: every 401 of a spray
// or a crawler pays it.
func BenchmarkCountRequest(b *testing.B) {
	if err := initMetrics(nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		countRequest(outcomeUnauthorized, authn.ReasonSessionTokenAndUATMissing)
	}
}

var okBody = []byte("ok")

// benchWriter is a response writer that keeps nothing but the header.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(int)             {}
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
