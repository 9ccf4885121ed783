package clerktest

import (
	"fmt"
	"net/http"
	"time"
)

const (
	statusActive  = "active"
	statusRevoked = "revoked"
	statusEnded   = "ended"
)

// Clerk's session expiry and abandonment periods.
const (
	sessionExpiry  = 7 * 24 * time.Hour
	sessionAbandon = 30 * 24 * time.Hour
)

// clientRecord is a browser's Clerk client. Development clients are found
// by their dev-browser token (__clerk_db_jwt), production ones by their
// __client cookie.
type clientRecord struct {
	id         string
	devBrowser string
	cookie     string
	session    string // its latest session; active or not
	uat        int64  // unix seconds of the last sign-in or sign-out
}

type sessionRecord struct {
	id, clientID, userID, status string
	created, updated             time.Time
	// orgID is the session's active organization once the handshake's
	// organization_id chose one (orgChosen), "" for the personal account;
	// until then it is the user's Org.
	orgID     string
	orgChosen bool
}

// Session is a session of the emulator's clients.
type Session struct {
	ID        string
	ClientID  string
	UserID    string
	Status    string // "active", "revoked" or "ended"
	CreatedAt time.Time
}

// SetSessionLifetime sets the lifetime of the session tokens the handshake
// mints; d <= 0 restores DefaultLifetime.
func (s *Server) SetSessionLifetime(d time.Duration) {
	if d <= 0 {
		d = DefaultLifetime
	}
	s.mu.Lock()
	s.lifetime = d
	s.mu.Unlock()
}

// SignInClient creates a client with an active session for the user, as
// signing in through the Account Portal in a new browser does. It returns
// the credential that identifies the client to the handshake (production:
// the __client cookie of the emulator's origin; development: a
// __clerk_db_jwt cookie holding the dev-browser token) and the session id.
func (s *Server) SignInClient(userID string) (*http.Cookie, string, error) {
	if _, ok := s.LookupUser(userID); !ok {
		return nil, "", fmt.Errorf("clerktest: no user %q", userID)
	}
	now := s.now()
	s.mu.Lock()
	c := s.newClientLocked()
	sid := s.signInLocked(c, userID, now)
	s.mu.Unlock()
	ck := &http.Cookie{Name: "__clerk_db_jwt", Value: c.devBrowser, Path: "/", SameSite: http.SameSiteLaxMode, Secure: s.tls}
	if s.prod {
		ck = &http.Cookie{Name: "__client", Value: c.cookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.tls}
	}
	return ck, sid, nil
}

// Sessions lists every session, oldest first.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessionOrder))
	for _, id := range s.sessionOrder {
		r := s.sessions[id]
		out = append(out, Session{ID: r.id, ClientID: r.clientID, UserID: r.userID, Status: r.status, CreatedAt: r.created})
	}
	return out
}

// SessionStatus is the status of the session with this id, "" if unknown.
func (s *Server) SessionStatus(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.sessions[id]; r != nil {
		return r.status
	}
	return ""
}

// RevokeSessionID revokes an active session, as the Backend API's revoke
// does; later handshakes of its client sign out. It reports whether the
// session exists.
func (s *Server) RevokeSessionID(id string) bool {
	_, ok := s.revoke(id)
	return ok
}

func (s *Server) revoke(id string) (sessionRecord, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.sessions[id]
	if r == nil {
		return sessionRecord{}, false
	}
	if r.status == statusActive {
		r.status = statusRevoked
		r.updated = now
	}
	return *r, true
}

// clientLocked finds the browser's client: by its __client cookie in
// production, by its dev-browser token in development. With create, a
// missing one is made and created reports it.
func (s *Server) clientLocked(r *http.Request, devBrowser string, create bool) (c *clientRecord, created bool) {
	if s.prod {
		if ck, err := r.Cookie("__client"); err == nil {
			c = s.byCookie[ck.Value]
		}
	} else {
		c = s.byDevBrowser[devBrowser]
	}
	if c == nil && create {
		return s.newClientLocked(), true
	}
	return c, false
}

func (s *Server) newClientLocked() *clientRecord {
	c := &clientRecord{id: newID("client_")}
	if s.prod {
		c.cookie = randBase62(48)
		s.byCookie[c.cookie] = c
	} else {
		c.devBrowser = newID("dvb_")
		s.byDevBrowser[c.devBrowser] = c
	}
	return c
}

// signInLocked ends the client's active session, if any, and gives it a
// new one for the user; a Clerk client has one session at a time here.
func (s *Server) signInLocked(c *clientRecord, userID string, now time.Time) string {
	s.endLocked(c, now)
	r := &sessionRecord{id: NewSessionID(), clientID: c.id, userID: userID, status: statusActive, created: now, updated: now}
	s.sessions[r.id] = r
	s.sessionOrder = append(s.sessionOrder, r.id)
	c.session = r.id
	c.uat = now.Unix()
	return r.id
}

// endLocked ends the client's active session (signing out).
func (s *Server) endLocked(c *clientRecord, now time.Time) {
	if r := s.activeLocked(c); r != nil {
		r.status = statusEnded
		r.updated = now
	}
}

// activeLocked is the client's active session, or nil.
func (s *Server) activeLocked(c *clientRecord) *sessionRecord {
	if c == nil {
		return nil
	}
	if r := s.sessions[c.session]; r != nil && r.status == statusActive {
		return r
	}
	return nil
}

// The Backend API's session object, in Clerk's member order; times are
// unix milliseconds.
type sessionJSON struct {
	Object       string `json:"object"`
	ID           string `json:"id"`
	ClientID     string `json:"client_id"`
	UserID       string `json:"user_id"`
	Status       string `json:"status"`
	LastActiveAt int64  `json:"last_active_at"`
	ExpireAt     int64  `json:"expire_at"`
	AbandonAt    int64  `json:"abandon_at"`
	CreatedAt    int64  `json:"created_at"`
	UpdatedAt    int64  `json:"updated_at"`
}

func (r sessionRecord) json() sessionJSON {
	return sessionJSON{
		Object: "session", ID: r.id, ClientID: r.clientID, UserID: r.userID, Status: r.status,
		LastActiveAt: r.updated.UnixMilli(),
		ExpireAt:     r.created.Add(sessionExpiry).UnixMilli(),
		AbandonAt:    r.created.Add(sessionAbandon).UnixMilli(),
		CreatedAt:    r.created.UnixMilli(),
		UpdatedAt:    r.updated.UnixMilli(),
	}
}

func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rec := s.sessions[r.PathValue("id")]
	var snap sessionRecord
	if rec != nil {
		snap = *rec
		if snap.status == statusActive && s.tasks[snap.userID] != "" {
			snap.status = "pending" // Clerk's status for a session with a task left
		}
	}
	s.mu.Unlock()
	if rec == nil {
		writeStatusError(w, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, snap.json())
}

func (s *Server) serveRevokeSession(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.revoke(r.PathValue("id"))
	if !ok {
		writeStatusError(w, http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, rec.json())
}
