// Package clerktest is a local emulator of Clerk for tests and demos: it
// serves Clerk's Frontend API (JWKS, the handshake), Backend API (JWKS,
// users, sessions, handshake payloads, machine token verification) and
// Account Portal (sign-in and sign-out pages) on one loopback HTTP server
// and mints session tokens, machine JWTs and opaque machine tokens shaped
// exactly like Clerk's, with switches to inject faults.
//
// The emulator acts as if the Frontend API were proxied at URL(): tokens
// carry iss = URL() and the publishable key encodes the listen address.
// Cookies ignore ports, so the cookies it sets (without a Domain) reach an
// app on another port of 127.0.0.1, as Clerk's parent-domain cookies reach
// the app in production.
package clerktest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running Clerk emulator. All methods are safe for concurrent
// use.
type Server struct {
	srv     *httptest.Server
	mux     *http.ServeMux
	url     string
	pk      string
	sk      string
	suffix  string
	prod    bool
	tls     bool
	now     func() time.Time
	closing chan struct{}
	once    sync.Once

	mu        sync.Mutex
	keys      map[string]*rsa.PrivateKey // every key ever used, by kid
	published []string                   // kids served in the JWKS, in order
	current   string                     // kid that signs new tokens
	rawJWKS   []byte                     // replaces the JWKS body when set
	maxAge    time.Duration              // Cache-Control max-age; <0: none
	azp       string
	users     map[string]*userRecord
	userOrder []string          // user ids in registration order
	tasks     map[string]string // unfinished session task by user id (tasks.go)
	admin     string
	member    string
	handshake map[string]payload // by nonce
	endpoints []Endpoint
	faults    map[Endpoint]*faultState
	counts    map[Endpoint]int

	lifetime     time.Duration // of tokens minted by the handshake
	byDevBrowser map[string]*clientRecord
	byCookie     map[string]*clientRecord
	sessions     map[string]*sessionRecord
	sessionOrder []string
	handshakes   []url.Values

	machines        map[string]string        // machine id by secret key
	machineTokens   map[string]*MachineToken // by secret
	machineTokenIDs map[string]string        // secret by id
	machineAnswers  map[Endpoint]MachineAnswer

	billing    map[string]Billing     // by user id; see SetBilling
	factors    map[string]factorTimes // by user id; see SetFactorAge
	proxied    []ProxiedRequest       // requests through a Frontend API proxy
	satellites map[string]bool        // satellite domains' hosts
	syncTokens map[string]string      // __client cookie by one-time sync token
}

type config struct {
	key        *rsa.PrivateKey
	production bool
	now        func() time.Time
	maxAge     time.Duration
	noDemo     bool
	secret     string
	azp        string
	tls        bool
	lifetime   time.Duration
}

// Option configures New.
type Option func(*config)

// WithKey makes key the initial signing key instead of generating one, so
// a test suite can pay for RSA key generation once.
func WithKey(key *rsa.PrivateKey) Option { return func(c *config) { c.key = key } }

// Production makes the instance a production one: pk_live_/sk_live_ keys.
func Production() Option { return func(c *config) { c.production = true } }

// WithClock sets the clock used for minting and timestamps (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithJWKSMaxAge makes both JWKS endpoints send
// "Cache-Control: public, max-age=<seconds>". By default none is sent.
func WithJWKSMaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// WithoutDemoUsers skips registering the two demo users.
func WithoutDemoUsers() Option { return func(c *config) { c.noDemo = true } }

// WithSecretKey fixes the secret key instead of generating one.
func WithSecretKey(sk string) Option { return func(c *config) { c.secret = sk } }

// WithAuthorizedParty sets the default azp of minted tokens (default URL()).
func WithAuthorizedParty(azp string) Option { return func(c *config) { c.azp = azp } }

// WithTLS serves HTTPS with httptest's self-signed certificate; use
// Client() to talk to it.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithSessionLifetime sets the lifetime of the session tokens the handshake
// mints (default DefaultLifetime).
func WithSessionLifetime(d time.Duration) Option { return func(c *config) { c.lifetime = d } }

// New starts an emulator on 127.0.0.1. Call Close when done.
func New(opts ...Option) *Server {
	cfg := config{now: time.Now, maxAge: -1, lifetime: DefaultLifetime}
	for _, o := range opts {
		o(&cfg)
	}
	key := cfg.key
	if key == nil {
		key = GenerateKey()
	}
	s := &Server{
		mux:          http.NewServeMux(),
		prod:         cfg.production,
		tls:          cfg.tls,
		now:          cfg.now,
		closing:      make(chan struct{}),
		keys:         map[string]*rsa.PrivateKey{},
		maxAge:       cfg.maxAge,
		users:        map[string]*userRecord{},
		handshake:    map[string]payload{},
		faults:       map[Endpoint]*faultState{},
		counts:       map[Endpoint]int{},
		byDevBrowser: map[string]*clientRecord{},
		byCookie:     map[string]*clientRecord{},
		sessions:     map[string]*sessionRecord{},

		machines:        map[string]string{},
		machineTokens:   map[string]*MachineToken{},
		machineTokenIDs: map[string]string{},
		machineAnswers:  map[Endpoint]MachineAnswer{},
	}
	s.SetSessionLifetime(cfg.lifetime)
	kid := newKeyID()
	s.keys[kid] = key
	s.published = []string{kid}
	s.current = kid
	env := "test"
	if cfg.production {
		env = "live"
	}
	s.sk = cfg.secret
	if s.sk == "" {
		s.sk = "sk_" + env + "_" + randBase62(40)
	}
	s.routes()

	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if cfg.tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.url = s.srv.URL
	host := s.srv.Listener.Addr().String()
	s.pk = "pk_" + env + "_" + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(host+"$")), "=")
	sum := sha1.Sum([]byte(s.pk))
	s.suffix = base64.RawURLEncoding.EncodeToString(sum[:])[:8]
	s.azp = cfg.azp
	if s.azp == "" {
		s.azp = s.url
	}
	if !cfg.noDemo {
		s.addDemoUsers()
	}
	return s
}

// NewT is New with Close registered as t's cleanup.
func NewT(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := New(opts...)
	t.Cleanup(s.Close)
	return s
}

// Close releases hanging handlers, then shuts the server down. It is
// idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// URL is the base URL, e.g. http://127.0.0.1:43567 (no trailing slash).
func (s *Server) URL() string { return s.url }

// FrontendAPIURL is the Frontend API's URL; the same as URL().
func (s *Server) FrontendAPIURL() string { return s.url }

// Issuer is the iss of minted tokens; the same as URL().
func (s *Server) Issuer() string { return s.url }

// AccountsURL is the Account Portal's URL.
func (s *Server) AccountsURL() string { return s.url + "/accounts" }

// JWKSURL is the Frontend API's public JWKS URL.
func (s *Server) JWKSURL() string { return s.url + "/.well-known/jwks.json" }

// BackendAPIURL is the Backend API base URL including the version,
// e.g. http://127.0.0.1:43567/v1. The machine verify endpoints are
// unversioned, as Clerk's: they are under URL().
func (s *Server) BackendAPIURL() string { return s.url + "/v1" }

// PublishableKey is pk_test_ (or pk_live_) + base64("<host:port>$").
func (s *Server) PublishableKey() string { return s.pk }

// CookieSuffix is what @clerk/shared appends to cookie names
// (__session_<suffix>, __client_uat_<suffix>, __clerk_db_jwt_<suffix>):
// the first 8 characters of base64url(SHA-1(publishable key)).
func (s *Server) CookieSuffix() string { return s.suffix }

// SecretKey is the Backend API secret the emulator accepts.
func (s *Server) SecretKey() string { return s.sk }

// Client returns an HTTP client that trusts the server (needed with
// WithTLS).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Now is the emulator's clock.
func (s *Server) Now() time.Time { return s.now() }

// SetJWKSMaxAge changes the Cache-Control max-age of the JWKS endpoints;
// a negative d sends no Cache-Control.
func (s *Server) SetJWKSMaxAge(d time.Duration) {
	s.mu.Lock()
	s.maxAge = d
	s.mu.Unlock()
}

// SetRawJWKS makes both JWKS endpoints serve body verbatim (e.g. a hostile
// or malformed key set); nil restores the real set.
func (s *Server) SetRawJWKS(body []byte) {
	s.mu.Lock()
	s.rawJWKS = append([]byte(nil), body...)
	if body == nil {
		s.rawJWKS = nil
	}
	s.mu.Unlock()
}

// GenerateKey returns a new RSA 2048 key. It panics only if the system's
// random source fails.
func GenerateKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("clerktest: generating RSA key: %v", err))
	}
	return k
}

// CurrentKeyID is the kid that signs new tokens.
func (s *Server) CurrentKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// KeyIDs lists the kids served in the JWKS, oldest first.
func (s *Server) KeyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.published...)
}

// PrivateKey returns the key with this kid, including rotated and removed
// ones (to mint tokens an old key signed), or nil.
func (s *Server) PrivateKey(kid string) *rsa.PrivateKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[kid]
}

// PublicKeyPEM is the current public key as a PKIX PEM block, the form
// Clerk's dashboard shows for networkless verification.
func (s *Server) PublicKeyPEM() string {
	s.mu.Lock()
	k := s.keys[s.current]
	s.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err) // cannot happen for an RSA key
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// RotateKey generates a new key and makes it current; older keys stay in
// the JWKS until removed. It returns the new kid.
func (s *Server) RotateKey() string { return s.RotateKeyTo(GenerateKey()) }

// RotateKeyTo is RotateKey with a pre-generated key.
func (s *Server) RotateKeyTo(key *rsa.PrivateKey) string {
	kid := newKeyID()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kid] = key
	s.published = append(s.published, kid)
	s.current = kid
	return kid
}

// RemoveKey takes kid out of the JWKS (it may be the current key, to serve
// a set lacking the signing key). It reports whether kid was served.
func (s *Server) RemoveKey(kid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range s.published {
		if k == kid {
			s.published = append(s.published[:i:i], s.published[i+1:]...)
			return true
		}
	}
	return false
}

// DropOldKeys leaves only the current key in the JWKS.
func (s *Server) DropOldKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = []string{s.current}
}

func (s *Server) kidOf(key *rsa.PrivateKey) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[s.current].Equal(key) {
		return s.current, true
	}
	for kid, k := range s.keys {
		if k.Equal(key) {
			return kid, true
		}
	}
	return "", false
}
