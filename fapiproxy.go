package caddyclerk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
)

// FrontendAPIProxy serves Clerk's Frontend API under a path of this site
// (Clerk's "proxy" setup): requests to that path, or under it, go to the
// Frontend API before any authentication and never downstream.
type FrontendAPIProxy struct {
	// URL is the public URL the Frontend API is served at, e.g.
	// https://app.example.com/__clerk: https, or http on localhost or
	// 127.0.0.1 only. Its path is the proxied prefix; clerk-js (proxyUrl),
	// the handshake and the tokens' issuer use the whole URL.
	URL string `json:"url"`
	// Upstream is the Frontend API origin the requests go to. Default
	// https://frontend-api.clerk.dev.
	Upstream string `json:"upstream,omitempty"`
}

// fapiProxy is the provisioned proxy: Caddy's reverse_proxy, set up by
// the handler.
type fapiProxy struct {
	prefix string // the public URL's path, e.g. /__clerk
	rp     *reverseproxy.Handler
}

// provisionFrontendAPIProxy builds the reverse_proxy configuration and
// provisions it. The module is built and provisioned here rather than with
// ctx.LoadModuleByID, which would also register it for Caddy's own cleanup:
// its Cleanup releases the upstream from Caddy's shared host pool, and
// twice would release another config's use of it during a reload.
func (h *Handler) provisionFrontendAPIProxy(ctx caddy.Context) error {
	p := h.FrontendAPIProxy
	if p == nil {
		return nil
	}
	public, err := proxyURL("frontend_api_proxy", p.URL, true)
	if err != nil {
		return fmt.Errorf("clerk: %w", err)
	}
	if p.Upstream == "" {
		p.Upstream = defaultFAPIUpstream
	}
	up, err := proxyURL("frontend_api_proxy upstream", p.Upstream, false)
	if err != nil {
		return fmt.Errorf("clerk: %w", err)
	}
	// The handshake, the issuer and clerk-js all use the public URL.
	h.FrontendAPIURL = public.String()
	raw, err := json.Marshal(fapiProxyConfig(public, up))
	if err != nil {
		return fmt.Errorf("clerk: frontend_api_proxy: %v", err)
	}
	rp := new(reverseproxy.Handler)
	if err := caddy.StrictUnmarshalJSON(raw, rp); err != nil {
		return fmt.Errorf("clerk: frontend_api_proxy: %v", err)
	}
	if err := rp.Provision(ctx); err != nil {
		_ = rp.Cleanup()
		return fmt.Errorf("clerk: frontend_api_proxy: %v", err)
	}
	// The secret key is added by the transport, on a copy of the request:
	// reverse_proxy's debug log of the upstream request then never holds it,
	// and neither does any configuration.
	rp.Transport = secretTransport{RoundTripper: rp.Transport, key: h.SecretKey}
	h.fapi = &fapiProxy{prefix: public.Path, rp: rp}
	return nil
}

// fapiProxyConfig is reverse_proxy's JSON for §9.2's rules: the path less
// the prefix (query kept), Host the upstream's, Clerk-Proxy-Url, no
// compression (a Location or cookie rewrite needs plain bodies and Clerk's
// proxy asks the same), and a Location at the Frontend API (absolute, or a
// path on it) turned into the public URL. X-Forwarded-For/-Proto/-Host,
// hop-by-hop headers and every Set-Cookie are reverse_proxy's own doing.
func fapiProxyConfig(public, up *url.URL) map[string]any {
	transport := map[string]any{"protocol": "http"}
	port := up.Port()
	if up.Scheme == "https" {
		transport["tls"] = map[string]any{}
		if port == "" {
			port = "443"
		}
	} else if port == "" {
		port = "80"
	}
	upOrigin := regexp.QuoteMeta(up.Scheme + "://" + up.Host)
	if up.Port() == "" {
		upOrigin += "(?::" + port + ")?"
	}
	return map[string]any{
		"upstreams": []map[string]any{{"dial": net.JoinHostPort(up.Hostname(), port)}},
		"transport": transport,
		"rewrite":   map[string]any{"strip_path_prefix": public.Path},
		"headers": map[string]any{
			"request": map[string]any{
				"set": map[string][]string{
					"Host":            {up.Host},
					"Clerk-Proxy-Url": {public.String()},
					"Accept-Encoding": {"identity"},
				},
				"delete": []string{"Clerk-Secret-Key"},
			},
			"response": map[string]any{
				"replace": map[string][]map[string]string{
					"Location": {{
						"search_regexp": `^(?:` + upOrigin + `(/.*)?|(/|/[^/\\].*))$`,
						"replace":       public.String() + "${1}${2}",
					}},
				},
			},
		},
	}
}

// secretTransport adds Clerk-Secret-Key to a copy of each upstream request.
type secretTransport struct {
	http.RoundTripper
	key string
}

func (t secretTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	out := *r
	out.Header = r.Header.Clone()
	out.Header.Set("Clerk-Secret-Key", t.key)
	return t.RoundTripper.RoundTrip(&out)
}

// under reports whether a request path is the prefix or below it.
func (p *fapiProxy) under(s string) bool {
	return s == p.prefix || strings.HasPrefix(s, p.prefix+"/")
}

// matches: the request is for the proxy, by its path as sent or as any
// upstream would read it after cleaning; a path that only the cleaned form
// puts under the prefix, or the other way round, is refused by plainPath.
func (p *fapiProxy) matches(r *http.Request) bool {
	return p.under(r.URL.Path) || p.under(path.Clean("/"+r.URL.Path))
}

// plainProxyPath refuses what could reach another path upstream than the
// one the prefix was stripped from: dot segments, empty segments,
// backslashes, control characters, and encoded slashes, backslashes, dots
// or percent signs (decoded once more by someone). clerk-js never sends
// any of them.
func plainProxyPath(r *http.Request) bool {
	dec := r.URL.Path
	if strings.ContainsAny(dec, "\\\x00") || strings.Contains(dec, "//") {
		return false
	}
	for _, seg := range strings.Split(dec, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for _, c := range dec {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	esc := strings.ToLower(r.URL.EscapedPath())
	for _, bad := range []string{"%2f", "%5c", "%2e", "%25"} {
		if strings.Contains(esc, bad) {
			return false
		}
	}
	return true
}

// serveFrontendAPI hands a request under the proxy path to reverse_proxy;
// nothing after this handler ever sees it.
func (h *Handler) serveFrontendAPI(w http.ResponseWriter, r *http.Request, holder *claimsHolder) error {
	if !plainProxyPath(r) {
		holder.reason = string(authn.ReasonProxyPathInvalid)
		countRequest(outcomeProxied, authn.ReasonProxyPathInvalid)
		h.logger.Debug("frontend_api_proxy: refused a path that could leave the proxy prefix",
			zap.String("reason", string(authn.ReasonProxyPathInvalid)), zap.String("uri", r.URL.EscapedPath()))
		return caddyhttp.Error(http.StatusBadRequest, errors.New("clerk: "+string(authn.ReasonProxyPathInvalid)))
	}
	countRequest(outcomeProxied, "")
	return h.fapi.rp.ServeHTTP(w, r, notDownstream{})
}

// notDownstream is the "next" handed to reverse_proxy, which calls it only
// from handle_response routes (none here): a proxied request never goes on.
type notDownstream struct{}

func (notDownstream) ServeHTTP(http.ResponseWriter, *http.Request) error {
	return caddyhttp.Error(http.StatusBadGateway, errors.New("clerk: frontend_api_proxy requests never go downstream"))
}

// cleanupFrontendAPIProxy releases the proxy's upstream; idempotent.
func (h *Handler) cleanupFrontendAPIProxy() error {
	if h.fapi == nil {
		return nil
	}
	err := h.fapi.rp.Cleanup()
	h.fapi = nil
	return err
}
