package clerktest

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Endpoint names one route of the emulator, for faults and counters.
// Routes added with Handle are named by their pattern.
type Endpoint string

// The built-in endpoints.
const (
	FAPIJWKS             Endpoint = "fapi-jwks"              // GET /.well-known/jwks.json
	BAPIJWKS             Endpoint = "bapi-jwks"              // GET /v1/jwks
	BAPIUsers            Endpoint = "bapi-users"             // GET /v1/users/{id}
	BAPIHandshakePayload Endpoint = "bapi-handshake-payload" // GET /v1/clients/handshake_payload
	BAPISessions         Endpoint = "bapi-sessions"          // GET /v1/sessions/{id}, POST /v1/sessions/{id}/revoke
	BAPIM2MVerify        Endpoint = "bapi-m2m-verify"        // POST /m2m_tokens/verify (no /v1, as Clerk's)
	BAPIAPIKeyVerify     Endpoint = "bapi-api-key-verify"    // POST /api_keys/verify
	BAPIOAuthVerify      Endpoint = "bapi-oauth-verify"      // POST /oauth_applications/access_tokens/verify
	FAPIHandshake        Endpoint = "fapi-handshake"         // GET /v1/client/handshake
	AccountsSignIn       Endpoint = "accounts-sign-in"       // GET and POST /accounts/sign-in
	AccountsSignOut      Endpoint = "accounts-sign-out"      // GET /accounts/sign-out
	Unknown              Endpoint = "unknown"                // any other path (404)
)

type faultKind int

const (
	faultNone faultKind = iota
	faultStatus
	faultHang
	faultRateLimit
	faultDrop
)

// Fault is what an endpoint does instead of answering. The zero value
// (NoFault) answers normally.
type Fault struct {
	kind       faultKind
	status     int
	retryAfter time.Duration
	times      int // >0: only for the next times requests
}

var (
	// NoFault answers normally.
	NoFault = Fault{}
	// Hang blocks until the client gives up or the server closes, then
	// drops the connection.
	Hang = Fault{kind: faultHang}
	// ConnectionReset hijacks the connection and resets it without a
	// response.
	ConnectionReset = Fault{kind: faultDrop}
)

// Status answers with code and Clerk's error body for it.
func Status(code int) Fault { return Fault{kind: faultStatus, status: code} }

// RateLimit answers 429 with Retry-After (whole seconds, rounded up) and
// Clerk's too_many_requests body.
func RateLimit(retryAfter time.Duration) Fault {
	return Fault{kind: faultRateLimit, status: http.StatusTooManyRequests, retryAfter: retryAfter}
}

// FailTimes applies f to the next n requests, then recovers.
func FailTimes(n int, f Fault) Fault {
	f.times = n
	return f
}

// String describes the fault, for test messages.
func (f Fault) String() string {
	var s string
	switch f.kind {
	case faultNone:
		return "none"
	case faultStatus:
		s = fmt.Sprintf("status %d", f.status)
	case faultHang:
		s = "hang"
	case faultRateLimit:
		s = fmt.Sprintf("rate limit (retry after %s)", f.retryAfter)
	case faultDrop:
		s = "connection reset"
	}
	if f.times > 0 {
		s += fmt.Sprintf(" x%d", f.times)
	}
	return s
}

type faultState struct {
	f         Fault
	remaining int // <0: until cleared
}

// SetFault makes e misbehave as f; NoFault clears it.
func (s *Server) SetFault(e Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaultLocked(e, f)
}

func (s *Server) setFaultLocked(e Endpoint, f Fault) {
	if f.kind == faultNone || f.times < 0 {
		delete(s.faults, e)
		return
	}
	st := &faultState{f: f, remaining: -1}
	if f.times > 0 {
		st.remaining = f.times
	}
	s.faults[e] = st
}

// SetFaultAll applies f to every endpoint, including ones added by Handle.
func (s *Server) SetFaultAll(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.endpoints {
		s.setFaultLocked(e, f)
	}
}

// Down makes every endpoint answer 503, as during an outage.
func (s *Server) Down() { s.SetFaultAll(Status(http.StatusServiceUnavailable)) }

// Up clears every fault.
func (s *Server) Up() { s.SetFaultAll(NoFault) }

// Requests counts the requests e received, faulted ones included.
func (s *Server) Requests(e Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[e]
}

// ResetCounts zeroes every request counter.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// admit counts a request to e and returns the fault it must suffer.
func (s *Server) admit(e Endpoint) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[e]++
	st := s.faults[e]
	if st == nil {
		return NoFault
	}
	if st.remaining > 0 {
		st.remaining--
		if st.remaining == 0 {
			delete(s.faults, e)
		}
	}
	return st.f
}

// apply performs fault f; it reports false when the request was consumed.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.kind {
	case faultStatus:
		writeStatusError(w, f.status)
	case faultRateLimit:
		secs := int64((f.retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeStatusError(w, http.StatusTooManyRequests)
	case faultHang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		panic(http.ErrAbortHandler) // closes the connection, no response
	case faultDrop:
		drop(w)
	default:
		return true
	}
	return false
}

// drop closes the connection without a response, with a TCP RST where the
// connection allows it.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
