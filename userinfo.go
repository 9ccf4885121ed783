package caddyclerk

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-clerk/caddy-clerk/bapi"
	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/internal/fifo"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// userinfo_path: who is signed in, as JSON, for pages without clerk-js.
// Names are snake_case as Clerk's Backend API and tokens spell them
// (first_name, image_url; plans and features as the token's scoped
// entries, "u:pro").

// Profile cache bounds: a page load costs a Backend API call at most once
// per user every profileTTL; a failure is retried after profileRetry, and
// the last profile keeps being served meanwhile (up to profileStale).
const (
	profileTTL     = 5 * time.Minute
	profileRetry   = 30 * time.Second
	profileStale   = time.Hour
	profileTimeout = 3 * time.Second
	profileEntries = 10_000
)

// sessionInfo is the answer for a session.
type sessionInfo struct {
	TokenType     string          `json:"token_type"`
	UserID        string          `json:"user_id"`
	SessionID     string          `json:"session_id"`
	SessionStatus string          `json:"session_status"`
	Organization  *organization   `json:"organization"`
	Plans         []string        `json:"plans"`
	Features      []string        `json:"features"`
	Actor         *verifier.Actor `json:"actor"`
	User          profile         `json:"user"`
}

type organization struct {
	ID          string   `json:"id"`
	Slug        string   `json:"slug"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
}

// profile is the user's Backend API profile; every field is null when it
// is not known (no secret_key, Clerk unreachable, not set).
type profile struct {
	FirstName           *string `json:"first_name"`
	LastName            *string `json:"last_name"`
	Username            *string `json:"username"`
	PrimaryEmailAddress *string `json:"primary_email_address"`
	ImageURL            *string `json:"image_url"`
}

// machineInfo is the answer for a machine token: its identity, no profile.
type machineInfo struct {
	TokenType      string   `json:"token_type"`
	Subject        string   `json:"subject"`
	TokenID        string   `json:"token_id,omitempty"`
	MachineID      string   `json:"machine_id,omitempty"`
	ClientID       string   `json:"client_id,omitempty"`
	UserID         string   `json:"user_id,omitempty"`
	OrganizationID string   `json:"organization_id,omitempty"`
	Name           string   `json:"name,omitempty"`
	Scopes         []string `json:"scopes"`
}

// isUserinfo: r asks who is signed in.
func (h *Handler) isUserinfo(r *http.Request) bool {
	return h.UserinfoPath != "" && r.URL.Path == h.UserinfoPath
}

// userinfoState adapts a state to the userinfo path, which is answered,
// never redirected: a stale session gets the 401 a fetch would get.
func userinfoState(st *authn.State) {
	switch st.Status {
	case authn.Handshake:
		st.Status, st.Location = authn.SignedOut, ""
	case authn.SignedOut:
		st.Location = ""
	}
}

// serveUserinfo writes the identity of a signed-in request.
func (h *Handler) serveUserinfo(w http.ResponseWriter, r *http.Request, st *authn.State) error {
	var v any
	if m := st.Machine; m != nil {
		v = machineInfo{TokenType: string(m.Type), Subject: m.Subject, TokenID: m.ID, MachineID: m.MachineID(),
			ClientID: m.ClientID, UserID: m.UserID(), OrganizationID: m.OrgID(), Name: m.Name, Scopes: orEmpty(m.Scopes)}
	} else {
		c := st.Claims
		info := sessionInfo{TokenType: string(verifier.TokenSession), UserID: c.Subject, SessionID: c.SessionID,
			SessionStatus: "active", Plans: orEmpty(c.Plans), Features: orEmpty(c.Features), Actor: c.Actor}
		if c.Status != "" {
			info.SessionStatus = c.Status
		}
		if c.OrgID != "" {
			info.Organization = &organization{ID: c.OrgID, Slug: c.OrgSlug, Role: c.OrgRole, Permissions: orEmpty(c.OrgPermissions)}
		}
		info.User = h.profiles.get(r.Context(), c.Subject)
		v = info
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err // our own types always marshal
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// UserFetcher fetches a user from the Backend API; *bapi.Client is one.
type UserFetcher interface {
	User(ctx context.Context, id string) (*bapi.User, error)
}

// profileCache remembers users' profiles, bounded, and shares one Backend
// API call among concurrent requests for the same user.
type profileCache struct {
	api    UserFetcher // nil without secret_key: every profile is null
	now    func() time.Time
	logger *zap.Logger

	entries *fifo.Cache[string, *profileEntry]
	flight  singleflight.Group
}

type profileEntry struct {
	p       profile
	fetched time.Time // of p; zero when no fetch ever succeeded
	retry   time.Time // no call before this
}

func newProfileCache(api UserFetcher, logger *zap.Logger) *profileCache {
	seed := maphash.MakeSeed()
	shardOf := func(id string) uint64 { return maphash.String(seed, id) }
	return &profileCache{api: api, now: time.Now, logger: logger, entries: fifo.New[string, *profileEntry](profileEntries, shardOf)}
}

// get is the user's profile: cached, else fetched (at most one call per
// user at a time); nulls when it cannot be had, never an error.
func (pc *profileCache) get(ctx context.Context, userID string) profile {
	if pc == nil || pc.api == nil {
		return profile{}
	}
	now := pc.now()
	if e, ok := pc.entries.Get(userID); ok && now.Before(e.retry) {
		return e.usable(now)
	}
	v, _, _ := pc.flight.Do(userID, func() (any, error) {
		// The first caller going away must not fail the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), profileTimeout)
		defer cancel()
		u, err := pc.api.User(ctx, userID)
		now := pc.now()
		old, _ := pc.entries.Get(userID)
		if err != nil {
			pc.logger.Debug("the user's profile could not be fetched from Clerk's Backend API; userinfo answers without it",
				zap.String("cause", profileFailure(err)), zap.String("user_id", userID), zap.Error(err))
			ne := &profileEntry{retry: now.Add(profileRetry)}
			if old != nil {
				ne.p, ne.fetched = old.p, old.fetched
			}
			pc.entries.Put(userID, ne)
			return ne.usable(now), nil
		}
		ne := &profileEntry{p: profileOf(u), fetched: now, retry: now.Add(profileTTL)}
		pc.entries.Put(userID, ne)
		return ne.p, nil
	})
	return v.(profile)
}

// usable is the profile unless it is too old to show.
func (e *profileEntry) usable(now time.Time) profile {
	if e.fetched.IsZero() || now.Sub(e.fetched) > profileStale {
		return profile{}
	}
	return e.p
}

func profileFailure(err error) string {
	switch {
	case bapi.IsNotFound(err):
		return "user-not-found"
	case bapi.IsKeyInvalid(err):
		return string(authn.ReasonSecretKeyInvalid)
	case bapi.IsUnavailable(err), errors.Is(err, context.DeadlineExceeded):
		return "backend-api-unavailable"
	}
	return "backend-api-error"
}

func profileOf(u *bapi.User) profile {
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return profile{FirstName: str(u.FirstName), LastName: str(u.LastName), Username: str(u.Username),
		PrimaryEmailAddress: str(u.PrimaryEmail()), ImageURL: str(u.ImageURL)}
}
