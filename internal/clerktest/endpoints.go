package clerktest

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"time"
)

const traceHeader = "Clerk-Trace-Id"

func (s *Server) routes() {
	s.handle(FAPIJWKS, "GET /.well-known/jwks.json", http.HandlerFunc(s.serveJWKS))
	s.handle(BAPIJWKS, "GET /v1/jwks", s.bapi(http.HandlerFunc(s.serveJWKS)))
	s.handle(BAPIUsers, "GET /v1/users/{id}", s.bapi(http.HandlerFunc(s.serveUser)))
	s.handle(BAPIHandshakePayload, "GET /v1/clients/handshake_payload", s.bapi(http.HandlerFunc(s.serveHandshakePayload)))
	s.handle(BAPISessions, "GET /v1/sessions/{id}", s.bapi(http.HandlerFunc(s.serveSession)))
	s.handle(BAPISessions, "POST /v1/sessions/{id}/revoke", s.bapi(http.HandlerFunc(s.serveRevokeSession)))
	for _, e := range []Endpoint{BAPIM2MVerify, BAPIAPIKeyVerify, BAPIOAuthVerify} {
		// Each checks its own key: M2M also takes machine secret keys.
		s.handle(e, "POST "+machineKinds[e].endpointPath, s.serveMachineVerify(e))
	}
	s.handle(FAPIHandshake, "GET /v1/client/handshake", http.HandlerFunc(s.serveClientHandshake))
	s.handle(FAPIHandshake, "GET /v1/client/sync", http.HandlerFunc(s.serveClientSync))
	s.handle(AccountsSignIn, "GET /accounts/sign-in", http.HandlerFunc(s.serveSignInPage))
	s.handle(AccountsSignIn, "POST /accounts/sign-in", http.HandlerFunc(s.serveSignIn))
	s.handle(AccountsSignOut, "GET /accounts/sign-out", http.HandlerFunc(s.serveSignOut))
	s.taskRoutes()
	s.handle(Unknown, "/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "resource_not_found", "not found", "Resource not found")
	}))
}

// Handle adds a route (a net/http ServeMux pattern such as
// "GET /v1/client/handshake") with the same faults, counters and
// Clerk-Trace-Id header as the built-in ones. It returns the route's
// Endpoint, which is the pattern itself. Like http.ServeMux.Handle, it
// panics if the pattern conflicts with an existing one.
func (s *Server) Handle(pattern string, h http.Handler) Endpoint {
	e := Endpoint(pattern)
	s.handle(e, pattern, h)
	return e
}

func (s *Server) handle(e Endpoint, pattern string, h http.Handler) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.apply(w, r, s.admit(e)) {
			h.ServeHTTP(w, r)
		}
	}))
	s.mu.Lock()
	s.endpoints = append(s.endpoints, e)
	s.mu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// Clerk sends a trace id on every response; error bodies repeat it.
	w.Header().Set(traceHeader, newTraceID())
	r, ok := s.admitProxied(w, r)
	if ok {
		s.mux.ServeHTTP(w, r)
	}
}

// bapi requires the secret key as a bearer token.
func (s *Server) bapi(h http.Handler) http.Handler {
	want := []byte("Bearer " + s.sk)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			const msg = "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct."
			writeError(w, http.StatusUnauthorized, "clerk_key_invalid", msg, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type clerkError struct {
	Code        string         `json:"code"`
	Message     string         `json:"message"`
	LongMessage string         `json:"long_message"`
	Meta        map[string]any `json:"meta"`
}

type clerkErrors struct {
	Errors  []clerkError `json:"errors"`
	TraceID string       `json:"clerk_trace_id"`
}

func writeError(w http.ResponseWriter, status int, code, msg, long string) {
	writeErrorMeta(w, status, code, msg, long, map[string]any{})
}

func writeErrorMeta(w http.ResponseWriter, status int, code, msg, long string, meta map[string]any) {
	writeJSON(w, status, clerkErrors{
		Errors:  []clerkError{{Code: code, Message: msg, LongMessage: long, Meta: meta}},
		TraceID: w.Header().Get(traceHeader),
	})
}

// writeStatusError answers status with the error Clerk gives for it.
func writeStatusError(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		writeError(w, status, "too_many_requests", "Too many requests", "Too many requests, please try again later.")
	case status == http.StatusNotFound:
		writeError(w, status, "resource_not_found", "not found", "Resource not found")
	case status == http.StatusUnauthorized:
		writeError(w, status, "authentication_invalid", "Unauthorized request", "You are not authorized to perform this request")
	case status == http.StatusServiceUnavailable:
		writeError(w, status, "service_unavailable", "Service unavailable", "The service is temporarily unavailable. Please try again later.")
	case status >= 500:
		writeError(w, status, "internal_clerk_error", "Oops, an unexpected error occurred",
			"There was an internal error on our servers. We've been notified and are working on fixing it.")
	default:
		writeError(w, status, "request_failed", http.StatusText(status), http.StatusText(status))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := marshal(v)
	if err != nil {
		panic(err) // our own types always marshal
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// marshal is json.Marshal without HTML escaping, as Clerk's servers emit.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// jwkJSON has Clerk's member order.
type jwkJSON struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

type jwksJSON struct {
	Keys []jwkJSON `json:"keys"`
}

// JWKS returns the key set as the JWKS endpoints serve it.
func (s *Server) JWKS() []byte {
	body, _ := s.jwks()
	return body
}

func (s *Server) jwks() ([]byte, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rawJWKS != nil {
		return s.rawJWKS, s.maxAge
	}
	set := jwksJSON{Keys: []jwkJSON{}}
	for _, kid := range s.published {
		pub := s.keys[kid].PublicKey
		set.Keys = append(set.Keys, jwkJSON{
			Use: "sig", Kty: "RSA", Kid: kid, Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	body, _ := marshal(set)
	return body, s.maxAge
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	body, maxAge := s.jwks()
	if maxAge >= 0 {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(maxAge/time.Second), 10))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (s *Server) serveUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rec := s.users[r.PathValue("id")]
	s.mu.Unlock()
	if rec == nil {
		writeStatusError(w, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, rec.json())
}

// handshakeNonceTTL is how long a nonce minted by the handshake can be
// redeemed.
const handshakeNonceTTL = 5 * time.Minute

type payload struct {
	directives []string
	expires    time.Time // zero: never
}

// StoreHandshakePayload records the directives (Set-Cookie values) that
// GET /v1/clients/handshake_payload?nonce=<nonce> returns. Nonces stored
// here stay valid until overwritten; those the handshake mints expire
// after 5 minutes of the emulator clock.
func (s *Server) StoreHandshakePayload(nonce string, directives []string) {
	s.storePayload(nonce, directives, time.Time{})
}

func (s *Server) storePayload(nonce string, directives []string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handshake[nonce] = payload{append([]string{}, directives...), expires}
}

func (s *Server) serveHandshakePayload(w http.ResponseWriter, r *http.Request) {
	nonce := r.URL.Query().Get("nonce")
	s.mu.Lock()
	p, ok := s.handshake[nonce]
	s.mu.Unlock()
	if !ok || nonce == "" || (!p.expires.IsZero() && !s.now().Before(p.expires)) {
		writeStatusError(w, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Directives []string `json:"directives"`
	}{p.directives})
}
