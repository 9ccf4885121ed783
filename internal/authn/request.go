package authn

import (
	"net/http"
	"net/url"
	"strings"
)

// HeaderToken finds a token in the Authorization header as @clerk/backend
// does: Bearer, or a bare token.
func HeaderToken(r *http.Request) string {
	if auth := strings.TrimSpace(field(r, "Authorization")); auth != "" {
		scheme, rest, found := strings.Cut(auth, " ")
		switch {
		case !found:
			return auth
		case strings.EqualFold(scheme, "Bearer"):
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// field is r.Header.Get(name) for a name in canonical form. Servers
// canonicalize the names they read, and each request of a page asks for a
// few: Get would canonicalize the name first, each time.
func field(r *http.Request, name string) string {
	if v := r.Header[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// IsPreflight is a CORS preflight: it carries no credentials.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && field(r, "Origin") != "" &&
		field(r, "Access-Control-Request-Method") != ""
}

// IsPageLoad is Clerk's test for a browser navigation.
func IsPageLoad(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if dest := field(r, "Sec-Fetch-Dest"); dest != "" {
		return dest == "document" || dest == "iframe"
	}
	return strings.HasPrefix(field(r, "Accept"), "text/html")
}

// CurrentURL rebuilds the absolute URL the browser asked for, trusting
// X-Forwarded-Proto/Host only from trusted proxies; a request a front proxy
// describes (Forwarded) has its scheme and host already.
func CurrentURL(req Request) string {
	r := req.HTTP
	if req.Scheme != "" {
		return req.Scheme + "://" + r.Host + r.URL.RequestURI()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if req.TrustedProxy {
		if p := firstValue(field(r, "X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if fh := firstValue(field(r, "X-Forwarded-Host")); validHost(fh) {
			host = fh
		}
	}
	return scheme + "://" + host + r.URL.RequestURI()
}

// PageURL is the absolute URL of the request without Clerk's handshake and
// dev-browser query parameters: where the browser should land.
func PageURL(req Request) string {
	u := CurrentURL(req)
	path, query, found := strings.Cut(u, "?")
	if !found {
		return u
	}
	var kept []string
	for _, part := range strings.Split(query, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			switch k {
			case queryDevBrowser, queryLegacyDevBrowser, queryHandshake, queryHandshakeNonce, queryHandshakeHelp:
				continue
			}
		}
		kept = append(kept, part)
	}
	if len(kept) == 0 {
		return path
	}
	return path + "?" + strings.Join(kept, "&")
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost refuses anything that could turn a host into a path or a
// different authority (open redirects through redirect_url).
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "/\\@?# \t\r\n")
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

func queryEscape(s string) string { return url.QueryEscape(s) }

// SafeMethod: GET, HEAD, OPTIONS and TRACE change nothing, so no CSRF check.
func SafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// SameOrigin decides whether an unsafe request carrying the session cookie
// came from a page we trust. Sec-Fetch-Site is set by the browser and
// cannot be forged by a page; older clients fall back to Origin, then
// Referer. No signal at all fails closed.
func (a *Authenticator) SameOrigin(req Request) bool {
	r := req.HTTP
	if site := field(r, "Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := field(r, "Origin")
	if origin == "" || origin == "null" {
		origin = OriginOf(field(r, "Referer"))
	}
	if origin == "" {
		return false
	}
	if strings.EqualFold(origin, OriginOf(CurrentURL(req))) {
		return true
	}
	for _, o := range a.cfg.TrustedOrigins {
		if strings.EqualFold(origin, o) {
			return true
		}
	}
	return false
}

// OriginOf reduces a URL to scheme://host[:port], or "" if it has none.
func OriginOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
