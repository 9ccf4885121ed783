package caddyclerk

import (
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// sharedCacheAllow is shared_cache's one value.
const sharedCacheAllow = "allow"

// privateWriter makes a response to a request that passed on a credential
// private (§11.10): whatever the upstream or a header directive inside this
// route set, when the status line is written, Cache-Control gets private
// and loses public and s-maxage, and the CDN-only controls that override
// it go. RFC 9111 keeps shared caches from Authorization requests only, not
// from cookie ones.
//
// It lives in the request's claimsHolder, which is allocated per request
// anyway, so wrapping costs no allocation. Flushes and ReadFrom fix the
// header first; Hijack (websockets) and Push reach the writer beneath
// through Unwrap and the embedded wrapper.
type privateWriter struct {
	caddyhttp.ResponseWriterWrapper
	h    *Handler
	done bool // the final status line is written
	// value backs the Cache-Control of a response that had none, so that
	// the per-request holder, not a new slice, carries it.
	value [1]string
}

// private wraps w for a request that passed on a credential, unless the
// route allows shared caches or an outer clerk handler of this request
// already wrapped it.
func (h *Handler) private(w http.ResponseWriter, holder *claimsHolder) http.ResponseWriter {
	if h.SharedCache == sharedCacheAllow || holder.private.ResponseWriter != nil {
		return w
	}
	holder.private = privateWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, h: h}
	return &holder.private
}

func (pw *privateWriter) WriteHeader(status int) {
	if pw.done {
		pw.ResponseWriterWrapper.WriteHeader(status)
		return
	}
	// 1xx are interim; the final status carries the cache headers.
	final := status >= 200 || status < 100
	if final {
		pw.done = true
		makePrivate(pw.Header(), &pw.value)
	}
	pw.ResponseWriterWrapper.WriteHeader(status)
	if final && !isPrivate(pw.Header()) {
		pw.h.warnNotPrivate(pw.Header().Values("Cache-Control"))
	}
}

func (pw *privateWriter) Write(b []byte) (int, error) {
	if !pw.done {
		pw.WriteHeader(http.StatusOK)
	}
	return pw.ResponseWriterWrapper.Write(b)
}

// ReadFrom is the embedded one (sendfile) after the header is fixed.
func (pw *privateWriter) ReadFrom(r io.Reader) (int64, error) {
	if !pw.done {
		pw.WriteHeader(http.StatusOK)
	}
	return pw.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError (http.ResponseController's first choice) and Flush: a flush
// before any write sends the header, so it is fixed first.
func (pw *privateWriter) FlushError() error {
	if !pw.done {
		pw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(pw.ResponseWriter).Flush()
}

func (pw *privateWriter) Flush() { _ = pw.FlushError() }

// warnNotPrivate: something wrapping the writer outside this handler (a
// header directive with deferred operations before clerk in the route:
// >Cache-Control, defer, a deletion) changed Cache-Control after it was
// made private. Logged once per handler: the fix is in the config.
func (h *Handler) warnNotPrivate(got []string) {
	if h.notPrivateWarned.CompareAndSwap(false, true) {
		h.logger.Warn("a response to an authenticated request left with a Cache-Control that lets shared caches "+
			"store it: a header directive with deferred operations (>Cache-Control, defer, or a deletion) that runs "+
			"before clerk changed it after clerk made it private. Move that header directive after clerk inside a "+
			"route block, or drop its Cache-Control operation (logged once)",
			zap.Strings("cache_control", got))
	}
}

// makePrivate puts private first in Cache-Control, keeps every other
// directive but public, s-maxage and a qualified private="…" (which lets a
// shared cache store the rest), and drops the CDN-targeted fields (RFC
// 9213 CDN-Cache-Control, Surrogate-Control) that a CDN obeys instead.
// store holds the value of a response that had none.
func makePrivate(hdr http.Header, store *[1]string) {
	delete(hdr, "Cdn-Cache-Control")
	delete(hdr, "Surrogate-Control")
	vals := hdr["Cache-Control"]
	if len(vals) == 0 {
		store[0] = "private"
		hdr["Cache-Control"] = store[:]
		return
	}
	if len(vals) == 1 && vals[0] == "private" {
		return
	}
	var b strings.Builder
	b.WriteString("private")
	b.Grow(len("private") + len(vals[0]))
	for _, v := range vals {
		for i := 0; i <= len(v); {
			var d string
			d, i = nextDirective(v, i)
			switch directiveName(d) {
			case "public", "s-maxage", "private", "":
				continue
			}
			b.WriteString(", ")
			b.WriteString(d)
		}
	}
	hdr["Cache-Control"] = []string{b.String()}
}

// isPrivate: Cache-Control has an unqualified private and neither public
// nor s-maxage, and no CDN-targeted field overrides it.
func isPrivate(hdr http.Header) bool {
	if len(hdr["Cdn-Cache-Control"]) > 0 || len(hdr["Surrogate-Control"]) > 0 {
		return false
	}
	if v := hdr["Cache-Control"]; len(v) == 1 && v[0] == "private" {
		return true // as makePrivate leaves most responses: nothing to split
	}
	private := false
	for _, v := range hdr["Cache-Control"] {
		for i := 0; i <= len(v); {
			var d string
			d, i = nextDirective(v, i)
			switch directiveName(d) {
			case "public", "s-maxage":
				return false
			case "private":
				private = private || !strings.Contains(d, "=")
			}
		}
	}
	return private
}

// nextDirective returns the directive of a Cache-Control value that starts
// at i and where the next one starts; commas inside quoted strings
// (private="a, b") do not split. It allocates nothing.
func nextDirective(v string, i int) (d string, next int) {
	quoted := false
	for j := i; j < len(v); j++ {
		switch v[j] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				return strings.TrimSpace(v[i:j]), j + 1
			}
		}
	}
	return strings.TrimSpace(v[i:]), len(v) + 1
}

// directiveName is a directive's name, lower case (names are
// case-insensitive).
func directiveName(d string) string {
	name, _, _ := strings.Cut(d, "=")
	return strings.ToLower(strings.TrimSpace(name))
}

var (
	_ http.ResponseWriter = (*privateWriter)(nil)
	_ http.Flusher        = (*privateWriter)(nil)
	_ io.ReaderFrom       = (*privateWriter)(nil)
)
