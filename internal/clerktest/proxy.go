package clerktest

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The Frontend API reached through a proxy (Clerk's proxy setup): the proxy
// sends Clerk-Proxy-Url (its public URL) and Clerk-Secret-Key (the
// instance's secret key). Clerk accepts a proxy for production instances
// only; it then mints tokens whose iss is the proxy URL.

// ProxiedRequest is a request that reached the emulator through a Frontend
// API proxy.
type ProxiedRequest struct {
	Method   string
	Path     string // as received, the proxy's prefix already stripped
	RawQuery string
	Host     string
	ProxyURL string // Clerk-Proxy-Url
	// SecretKeyOK: Clerk-Secret-Key was the instance's secret key.
	SecretKeyOK bool
	// Header is what the proxy sent, without Clerk-Secret-Key.
	Header http.Header
}

type proxyURLKey struct{}

// ProxiedRequests lists the requests that came through a proxy, oldest
// first.
func (s *Server) ProxiedRequests() []ProxiedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ProxiedRequest(nil), s.proxied...)
}

// admitProxied checks a proxied request and, if it may pass, returns it
// with the proxy URL in its context; a direct request passes as it is.
func (s *Server) admitProxied(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	pu := r.Header.Get("Clerk-Proxy-Url")
	if pu == "" {
		return r, true
	}
	keyOK := subtle.ConstantTimeCompare([]byte(r.Header.Get("Clerk-Secret-Key")), []byte(s.sk)) == 1
	h := r.Header.Clone()
	h.Del("Clerk-Secret-Key")
	s.mu.Lock()
	s.proxied = append(s.proxied, ProxiedRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Host: r.Host, ProxyURL: pu, SecretKeyOK: keyOK, Header: h})
	s.mu.Unlock()
	u, ok := redirectURL(pu)
	switch {
	case !ok || u.RawQuery != "" || u.Fragment != "":
		writeError(w, http.StatusBadRequest, "proxy_url_invalid", "Clerk-Proxy-Url is invalid",
			"The Clerk-Proxy-Url header must be the absolute URL the Frontend API is proxied at.")
		return nil, false
	case !keyOK:
		writeError(w, http.StatusUnauthorized, "proxy_secret_key_invalid", "Clerk-Secret-Key is invalid",
			"A proxied request must carry the instance's secret key in Clerk-Secret-Key.")
		return nil, false
	case !s.prod:
		writeError(w, http.StatusBadRequest, "proxy_not_allowed", "Development instances cannot be proxied",
			"The Frontend API proxy is available for production instances only.")
		return nil, false
	}
	return r.WithContext(context.WithValue(r.Context(), proxyURLKey{}, strings.TrimRight(pu, "/"))), true
}

// issuerFor is the iss of tokens minted for r: the proxy URL, a
// satellite's own Frontend API, or "" for the default.
func (s *Server) issuerFor(r *http.Request) string {
	if pu, _ := r.Context().Value(proxyURLKey{}).(string); pu != "" {
		return pu
	}
	if s.satelliteRequest(r) {
		return s.scheme() + "://" + r.Host
	}
	return ""
}

func (s *Server) scheme() string {
	if s.tls {
		return "https"
	}
	return "http"
}

// AddSatellite makes host (a name other than 127.0.0.1 that reaches the
// emulator, e.g. localhost) a satellite domain of the instance: requests
// with that Host are the satellite's Frontend API (clerk.<domain>), which
// knows no browser until it syncs with the primary's.
func (s *Server) AddSatellite(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.satellites == nil {
		s.satellites = map[string]bool{}
	}
	s.satellites[strings.ToLower(host)] = true
}

// satelliteRequest: r came to a satellite domain's Frontend API.
func (s *Server) satelliteRequest(r *http.Request) bool {
	if r.Context().Value(proxyURLKey{}) != nil {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.satellites[strings.ToLower(host)]
}

const querySyncToken = "__clerk_sync_token"

// syncSatellite runs before a production satellite's handshake: a
// satellite domain has no __client cookie of its own until the primary's
// Frontend API hands its client over (GET /v1/client/sync on the primary,
// back with a one-time token). It reports false when it has answered
// (the redirect to the primary, or an error).
func (s *Server) syncSatellite(w http.ResponseWriter, r *http.Request) bool {
	if _, err := r.Cookie("__client"); err == nil {
		return true
	}
	q := r.URL.Query()
	if tok := q.Get(querySyncToken); tok != "" {
		s.mu.Lock()
		cookie, ok := s.syncTokens[tok]
		delete(s.syncTokens, tok)
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusBadRequest, "sync_token_invalid", "sync token is invalid", "The sync token is unknown or used.")
			return false
		}
		if cookie != "" {
			// The satellite domain's own client cookie, for the same client.
			w.Header().Add("Set-Cookie", s.cookie("__client", cookie, "; Path=/; Max-Age=315360000; HttpOnly; SameSite=Lax"))
			r.Header.Add("Cookie", "__client="+cookie)
		}
		return true
	}
	here := s.scheme() + "://" + r.Host + r.URL.RequestURI()
	w.Header().Set("Location", s.url+"/v1/client/sync?redirect_url="+url.QueryEscape(here))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTemporaryRedirect)
	return false
}

// serveClientSync is the primary Frontend API's side of a satellite's
// sync: it hands the browser's client to a satellite domain of the
// instance (never elsewhere) through a one-time token.
func (s *Server) serveClientSync(w http.ResponseWriter, r *http.Request) {
	back, ok := redirectURL(r.URL.Query().Get("redirect_url"))
	if ok {
		s.mu.Lock()
		ok = s.satellites[strings.ToLower(back.Hostname())]
		s.mu.Unlock()
	}
	if !ok {
		writeError(w, http.StatusBadRequest, "form_param_value_invalid", "redirect_url is invalid",
			"redirect_url must be on a satellite domain of this instance.")
		return
	}
	cookie := ""
	s.mu.Lock()
	if c, _ := s.clientLocked(r, "", false); c != nil {
		cookie = c.cookie
	}
	tok := randBase62(32)
	if s.syncTokens == nil {
		s.syncTokens = map[string]string{}
	}
	s.syncTokens[tok] = cookie
	s.mu.Unlock()
	w.Header().Set("Location", withParam(back, querySyncToken, tok))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTemporaryRedirect)
}
