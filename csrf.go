package caddyclerk

import (
	"net/http"
	"net/url"
	"strings"
)

// reasonCSRF is {clerk.reason} for a refused cross-site unsafe request.
const reasonCSRF = "csrf-origin-mismatch"

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// sameOriginRequest decides whether an unsafe request carrying the session
// cookie came from a page we trust. Sec-Fetch-Site is set by the browser and
// cannot be forged by a page; older clients fall back to Origin, then
// Referer. No signal at all fails closed.
func (h *Handler) sameOriginRequest(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		origin = originOf(r.Header.Get("Referer"))
	}
	if origin == "" {
		return false
	}
	if strings.EqualFold(origin, originOf(currentURL(r))) {
		return true
	}
	for _, list := range [][]string{h.AuthorizedParties, h.CSRFTrustedOrigins} {
		for _, o := range list {
			if strings.EqualFold(origin, o) {
				return true
			}
		}
	}
	return false
}

// originOf reduces a URL to scheme://host[:port], or "" if it has none.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// clerkCookie reports whether a cookie is one of Clerk's credentials.
func clerkCookie(name string) bool {
	for _, p := range []string{cookieSession, cookieClientUAT, cookieDevBrowser, cookieHandshake, cookieRedirectCount, "__refresh"} {
		if name == p || strings.HasPrefix(name, p+"_") {
			return true
		}
	}
	return false
}

// stripCredentials removes the Authorization header and Clerk's cookies,
// leaving every other cookie exactly as the client sent it.
func stripCredentials(r *http.Request) {
	r.Header.Del("Authorization")
	lines := r.Header.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, pair := range strings.Split(line, ";") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			name, _, _ := strings.Cut(pair, "=")
			if !clerkCookie(strings.TrimSpace(name)) {
				kept = append(kept, pair)
			}
		}
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
}
