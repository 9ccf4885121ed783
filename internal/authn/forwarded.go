package authn

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// The headers in which a front proxy that asks us whether to let a request
// through (forwarded_request) describes that request. Caddy's forward_auth
// and Traefik's ForwardAuth send X-Forwarded-Method and X-Forwarded-Uri
// (with X-Forwarded-Host and X-Forwarded-Proto); nginx auth_request sends
// what its configuration sets, by convention X-Original-URI and
// X-Original-Method; ingress-nginx sends X-Original-URL (absolute) and
// X-Original-Method.
const (
	headerForwardedMethod = "X-Forwarded-Method"
	headerForwardedURI    = "X-Forwarded-Uri"
	headerForwardedHost   = "X-Forwarded-Host"
	headerForwardedProto  = "X-Forwarded-Proto"
	headerOriginalMethod  = "X-Original-Method"
	headerOriginalURI     = "X-Original-URI"
	headerOriginalURL     = "X-Original-URL"
)

// Forwarded reads the request a front proxy asks about from r's headers,
// for a request that came from a trusted proxy. ok is false when r
// describes no other request (none of X-Forwarded-Uri, X-Original-URI,
// X-Original-URL): r is then taken as it is. err names the header that is
// malformed, or the two that disagree; it never quotes a value.
//
// The described request is a shallow copy of r (same headers, context and
// body) with the described method, URL, request target and host; its
// scheme is in the returned Request, which CurrentURL then uses as final.
//
//   - Request target: X-Forwarded-Uri, X-Original-URI or the path and query
//     of X-Original-URL, each an origin-form target ("/path?query"). Every
//     one of them that is present must be the same target: front proxies
//     pass the client's own headers on to the auth request, so a client
//     behind nginx could add X-Forwarded-Uri, and one behind Caddy or
//     Traefik X-Original-URI, to have another path decided on.
//   - Method: X-Forwarded-Method or X-Original-Method (equal when both are
//     sent), else r's own (nginx's auth subrequest keeps the method).
//   - Host and scheme: X-Forwarded-Host and X-Forwarded-Proto (their first
//     value, as proxies append), else X-Original-URL's, else r's own. They
//     make only the URLs the browser is sent back to (and the origin the
//     CSRF check compares with), never what is allowed; a navigation cannot
//     carry a header its page chose.
func Forwarded(r *http.Request) (req Request, ok bool, err error) {
	h := r.Header
	var target, targetFrom string
	var scheme, host string // from X-Original-URL
	for _, name := range []string{headerForwardedURI, headerOriginalURI, headerOriginalURL} {
		v, present, err := single(h, name)
		if err != nil {
			return Request{}, false, err
		}
		if !present {
			continue
		}
		t := v
		if name == headerOriginalURL {
			if scheme, host, t, err = splitAbsolute(v); err != nil {
				return Request{}, false, err
			}
		} else if err := checkTarget(name, t); err != nil {
			return Request{}, false, err
		}
		if targetFrom != "" && t != target {
			return Request{}, false, fmt.Errorf("%s and %s describe different requests", targetFrom, name)
		}
		target, targetFrom = t, name
	}
	if targetFrom == "" {
		return Request{}, false, nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return Request{}, false, fmt.Errorf("%s is not a request target", targetFrom)
	}

	method, methodFrom := r.Method, ""
	for _, name := range []string{headerForwardedMethod, headerOriginalMethod} {
		v, present, err := single(h, name)
		if err != nil {
			return Request{}, false, err
		}
		if !present {
			continue
		}
		if !isToken(v) {
			return Request{}, false, fmt.Errorf("%s is not a method", name)
		}
		if methodFrom != "" && v != method {
			return Request{}, false, fmt.Errorf("%s and %s differ", methodFrom, name)
		}
		method, methodFrom = v, name
	}

	if p := firstValue(h.Get(headerForwardedProto)); p != "" {
		if !strings.EqualFold(p, "http") && !strings.EqualFold(p, "https") {
			return Request{}, false, errors.New(headerForwardedProto + " is neither http nor https")
		}
		scheme = strings.ToLower(p)
	} else if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	if fh := firstValue(h.Get(headerForwardedHost)); fh != "" {
		if !validAuthority(fh) {
			return Request{}, false, errors.New(headerForwardedHost + " is not a host")
		}
		host = fh
	} else if host == "" {
		host = r.Host
	}

	d := new(http.Request)
	*d = *r
	d.Method, d.URL, d.RequestURI, d.Host = method, u, target, host
	return Request{HTTP: d, TrustedProxy: true, Scheme: scheme, Forwarded: true}, true, nil
}

// InvalidForwarded is the state of a request whose trusted front proxy
// described it in malformed or conflicting headers (err says which): signed
// out, as nothing can be decided about a request that is not known.
func InvalidForwarded(err error) State {
	return State{Status: SignedOut, Reason: ReasonForwardedRequestInvalid, Err: err}
}

// HasForwarded reports whether r carries any header that describes another
// request (it is ignored unless r comes from a trusted proxy).
func HasForwarded(r *http.Request) bool {
	for _, name := range []string{headerForwardedURI, headerOriginalURI, headerOriginalURL} {
		if len(r.Header.Values(name)) > 0 {
			return true
		}
	}
	return false
}

// single is the one value of header name; sent twice, it is ambiguous.
func single(h http.Header, name string) (v string, present bool, err error) {
	switch vs := h.Values(name); len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	}
	return "", false, fmt.Errorf("%s is sent more than once", name)
}

// checkTarget: an origin-form request target, as a browser's request line
// has: a path from "/" (not "//", which names another host), an optional
// query, no spaces or control characters.
func checkTarget(name, t string) error {
	switch {
	case t == "" || t[0] != '/':
		return fmt.Errorf("%s is not a path starting with /", name)
	case strings.HasPrefix(t, "//"):
		return fmt.Errorf("%s starts with //", name)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("%s holds a space or a control character", name)
		}
	}
	if _, err := url.ParseRequestURI(t); err != nil {
		return fmt.Errorf("%s is not a request target", name)
	}
	return nil
}

// splitAbsolute splits X-Original-URL (scheme://host/target) without
// re-encoding the target, so that it compares with the other headers.
func splitAbsolute(v string) (scheme, host, target string, err error) {
	s, rest, found := strings.Cut(v, "://")
	scheme = strings.ToLower(s)
	if !found || (scheme != "http" && scheme != "https") {
		return "", "", "", errors.New(headerOriginalURL + " is not an absolute http(s) URL")
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", "", "", errors.New(headerOriginalURL + " has no path")
	}
	host, target = rest[:i], rest[i:]
	if !validAuthority(host) {
		return "", "", "", errors.New(headerOriginalURL + " has no valid host")
	}
	if err := checkTarget(headerOriginalURL, target); err != nil {
		return "", "", "", err
	}
	return scheme, host, target, nil
}

// validAuthority: validHost, and an authority a URL parser reads back as
// itself (no stray %, brackets or ports that are not numbers).
func validAuthority(h string) bool {
	if !validHost(h) {
		return false
	}
	u, err := url.Parse("http://" + h + "/")
	return err == nil && u.Host == h && u.User == nil
}

// isToken: an HTTP method is a token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
