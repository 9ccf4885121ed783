package clerktest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The machine token types, as Clerk names them.
const (
	TokenTypeM2M    = "m2m_token"
	TokenTypeAPIKey = "api_key"
	TokenTypeOAuth  = "oauth_token"
)

// Machine is a machine of the instance, the party of M2M tokens.
type Machine struct {
	ID string // mch_…
	// SecretKey (ak_…) authenticates POST /m2m_tokens/verify as this
	// machine: only tokens granted to it then verify.
	SecretKey string
}

// MachineToken is an opaque machine credential the emulator issued.
type MachineToken struct {
	Type string // TokenTypeM2M, TokenTypeAPIKey or TokenTypeOAuth
	// Secret is what a client presents: mt_…, ak_… or oat_….
	Secret      string
	ID          string // mt_, ak_ or oat_ + 32 hex digits
	Subject     string
	Name        string // API keys
	Description string // API keys
	ClientID    string // OAuth
	Scopes      []string
	Claims      map[string]any // API keys and M2M; nil is null
	// GrantedTo lists the machines whose secret key verifies an M2M token.
	GrantedTo        []string
	Expiration       time.Time // zero: never expires
	Revoked          bool
	RevocationReason string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	LastUsedAt       time.Time // zero: never verified
}

// APIKeyOptions describes an API key for CreateAPIKey.
type APIKeyOptions struct {
	Subject     string // user_…, org_… or mch_…; default a fresh user id
	Name        string // default "test-api-key"
	Description string
	Scopes      []string
	Claims      map[string]any
	Expiration  time.Time // zero: never expires
}

// M2MOptions describes an opaque M2M token for CreateM2MToken.
type M2MOptions struct {
	Subject string   // the issuing machine, mch_…; default a fresh machine id
	Scopes  []string // the mch_ ids the token is for
	Claims  map[string]any
	// Expiration is when it expires; zero: never.
	Expiration time.Time
	// GrantedTo lists the machines whose secret key can verify it; nil
	// means Scopes, as Clerk grants a token to the machines it is for.
	GrantedTo []string
}

// OAuthOptions describes an opaque OAuth access token for
// CreateOAuthToken.
type OAuthOptions struct {
	Subject    string // user_…; default a fresh user id
	ClientID   string // the OAuth application's; default a fresh one
	Scopes     []string
	Expiration time.Time // zero: never expires
}

// MachineAnswer is how a machine verify endpoint answers a token it would
// verify, so callers can test their checks of a 200.
type MachineAnswer int

const (
	// AnswerClerk is Clerk's 200 JSON.
	AnswerClerk MachineAnswer = iota
	// AnswerInactive is 200 {"active":false}.
	AnswerInactive
	// AnswerWrongObject is Clerk's JSON naming another type's object.
	AnswerWrongObject
	// AnswerWrongID is Clerk's JSON with an id lacking the type's prefix.
	AnswerWrongID
	// AnswerEmpty is 200 {}.
	AnswerEmpty
	// AnswerNotJSON is a 200 whose body is not JSON.
	AnswerNotJSON
)

type machineKind struct {
	typ, endpointPath, field, object, prefix, notFound string
	machineKeys                                        bool // machine secret keys may authenticate
}

var machineKinds = map[Endpoint]machineKind{
	BAPIM2MVerify: {
		typ: TokenTypeM2M, endpointPath: "/m2m_tokens/verify", field: "token",
		object: "machine_to_machine_token", prefix: "mt_", notFound: "Machine token not found", machineKeys: true,
	},
	BAPIAPIKeyVerify: {
		typ: TokenTypeAPIKey, endpointPath: "/api_keys/verify", field: "secret",
		object: "api_key", prefix: "ak_", notFound: "API key not found",
	},
	BAPIOAuthVerify: {
		typ: TokenTypeOAuth, endpointPath: "/oauth_applications/access_tokens/verify", field: "access_token",
		object: "clerk_idp_oauth_access_token", prefix: "oat_", notFound: "OAuth token not found",
	},
}

// newAKSecret is ak_ + base64 of 32 random bytes: 44 characters ending in
// "=" and mostly holding "/" or "+", like Clerk's.
func newAKSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("clerktest: random source failed: " + err.Error())
	}
	return "ak_" + base64.StdEncoding.EncodeToString(b)
}

// NewMachineID returns a fresh Clerk-like machine id (mch_…).
func NewMachineID() string { return newID("mch_") }

// CreateMachine registers a machine and its secret key.
func (s *Server) CreateMachine() Machine {
	m := Machine{ID: NewMachineID(), SecretKey: newAKSecret()}
	s.mu.Lock()
	s.machines[m.SecretKey] = m.ID
	s.mu.Unlock()
	return m
}

// CreateAPIKey issues an API key.
func (s *Server) CreateAPIKey(o APIKeyOptions) MachineToken {
	t := MachineToken{
		Type: TokenTypeAPIKey, Secret: newAKSecret(), ID: "ak_" + randHex(16),
		Subject: o.Subject, Name: o.Name, Description: o.Description,
		Scopes: o.Scopes, Claims: o.Claims, Expiration: o.Expiration,
	}
	if t.Subject == "" {
		t.Subject = NewUserID()
	}
	if t.Name == "" {
		t.Name = "test-api-key"
	}
	return s.issue(t)
}

// CreateM2MToken issues an opaque M2M token.
func (s *Server) CreateM2MToken(o M2MOptions) MachineToken {
	t := MachineToken{
		Type: TokenTypeM2M, Secret: "mt_" + randBase62(35), ID: "mt_" + randHex(16),
		Subject: o.Subject, Scopes: o.Scopes, Claims: o.Claims, Expiration: o.Expiration, GrantedTo: o.GrantedTo,
	}
	if t.Subject == "" {
		t.Subject = NewMachineID()
	}
	if t.GrantedTo == nil {
		t.GrantedTo = o.Scopes
	}
	return s.issue(t)
}

// CreateOAuthToken issues an opaque OAuth access token.
func (s *Server) CreateOAuthToken(o OAuthOptions) MachineToken {
	t := MachineToken{
		Type: TokenTypeOAuth, Secret: "oat_" + randBase62(35), ID: "oat_" + randHex(16),
		Subject: o.Subject, ClientID: o.ClientID, Scopes: o.Scopes, Expiration: o.Expiration,
	}
	if t.Subject == "" {
		t.Subject = NewUserID()
	}
	if t.ClientID == "" {
		t.ClientID = randBase62(16)
	}
	return s.issue(t)
}

func (s *Server) issue(t MachineToken) MachineToken {
	t.Scopes = append([]string{}, t.Scopes...)
	t.GrantedTo = append([]string(nil), t.GrantedTo...)
	t.Claims = cloneMap(t.Claims)
	t.CreatedAt = s.now()
	t.UpdatedAt = t.CreatedAt
	rec := t
	s.mu.Lock()
	s.machineTokens[t.Secret] = &rec
	s.machineTokenIDs[t.ID] = t.Secret
	s.mu.Unlock()
	return t.clone()
}

func (t MachineToken) clone() MachineToken {
	t.Scopes = append([]string{}, t.Scopes...)
	t.GrantedTo = append([]string(nil), t.GrantedTo...)
	t.Claims = cloneMap(t.Claims)
	return t
}

// cloneMap copies the top level, enough that the caller's later edits do
// not reach the record.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// LookupMachineToken returns the token with this secret or id as the
// emulator holds it now (revoked, last used…).
func (s *Server) LookupMachineToken(secretOrID string) (MachineToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.machineTokenLocked(secretOrID)
	if rec == nil {
		return MachineToken{}, false
	}
	return rec.clone(), true
}

func (s *Server) machineTokenLocked(secretOrID string) *MachineToken {
	if rec := s.machineTokens[secretOrID]; rec != nil {
		return rec
	}
	return s.machineTokens[s.machineTokenIDs[secretOrID]]
}

// RevokeMachineToken revokes the token with this secret or id; its
// verification then answers revoked: true. It reports whether the token
// exists.
func (s *Server) RevokeMachineToken(secretOrID string) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.machineTokenLocked(secretOrID)
	if rec == nil {
		return false
	}
	if !rec.Revoked {
		rec.Revoked = true
		rec.RevocationReason = "Revoked by clerktest"
		rec.UpdatedAt = now
	}
	return true
}

// SetMachineAnswer makes endpoint e (BAPIM2MVerify, BAPIAPIKeyVerify or
// BAPIOAuthVerify) answer a as its 200 for the tokens it would verify;
// AnswerClerk restores Clerk's answer. Unknown tokens still get 404.
func (s *Server) SetMachineAnswer(e Endpoint, a MachineAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a == AnswerClerk {
		delete(s.machineAnswers, e)
		return
	}
	s.machineAnswers[e] = a
}

// maxVerifyBody bounds a verify request's body.
const maxVerifyBody = 64 << 10

// serveMachineVerify answers one of the three verify endpoints: the key
// first (401), then the body (400), then the token (404 or 200).
func (s *Server) serveMachineVerify(e Endpoint) http.HandlerFunc {
	k := machineKinds[e]
	want := []byte("Bearer " + s.sk)
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		machine := "" // the authenticating machine; "" for the instance key
		if subtle.ConstantTimeCompare([]byte(auth), want) != 1 {
			key, ok := strings.CutPrefix(auth, "Bearer ")
			s.mu.Lock()
			machine = s.machines[key]
			s.mu.Unlock()
			if !ok || !k.machineKeys || machine == "" {
				const msg = "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct."
				writeError(w, http.StatusUnauthorized, "clerk_key_invalid", msg, msg)
				return
			}
		}

		var body map[string]any
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxVerifyBody))
		if err := dec.Decode(&body); err != nil || body == nil || dec.More() {
			writeError(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid",
				"The request body is invalid. Please consult the API documentation for more information.")
			return
		}
		// Only the field our client sends: the spec's deprecated "secret"
		// for OAuth is not taken, so a client sending it shows up.
		secret, _ := body[k.field].(string)
		if secret == "" {
			writeErrorMeta(w, http.StatusBadRequest, "form_param_missing", "is missing",
				k.field+" must be included.", map[string]any{"param_name": k.field})
			return
		}

		now := s.now()
		s.mu.Lock()
		rec := s.machineTokens[secret]
		if rec == nil || rec.Type != k.typ || (machine != "" && !slices.Contains(rec.GrantedTo, machine)) {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "resource_not_found", "not found", k.notFound)
			return
		}
		answer := s.machineAnswers[e]
		if k.typ != TokenTypeOAuth {
			rec.LastUsedAt = now
		}
		snap := rec.clone()
		s.mu.Unlock()

		switch answer {
		case AnswerInactive:
			writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		case AnswerEmpty:
			writeJSON(w, http.StatusOK, struct{}{})
		case AnswerNotJSON:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte("<html><body>OK</body></html>"))
		default:
			writeJSON(w, http.StatusOK, snap.verifyJSON(k, answer, now))
		}
	}
}

func millis(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

// verifyJSON is the 200 body in Clerk's shape for the token's type.
func (t MachineToken) verifyJSON(k machineKind, answer MachineAnswer, now time.Time) any {
	object, id := k.object, t.ID
	switch answer {
	case AnswerWrongObject:
		object = "api_key"
		if k.typ == TokenTypeAPIKey {
			object = "machine_to_machine_token"
		}
	case AnswerWrongID:
		id = "tok_" + strings.TrimPrefix(t.ID, k.prefix)
	}
	expired := !t.Expiration.IsZero() && !now.Before(t.Expiration)
	created, updated := t.CreatedAt.UnixMilli(), t.UpdatedAt.UnixMilli()
	switch k.typ {
	case TokenTypeM2M:
		return m2mTokenJSON{
			Object: object, ID: id, Subject: t.Subject, Scopes: t.Scopes, Claims: t.Claims,
			Revoked: t.Revoked, RevocationReason: nullable(t.RevocationReason),
			Expired: expired, Expiration: millis(t.Expiration), LastUsedAt: millis(t.LastUsedAt),
			CreatedAt: created, UpdatedAt: updated,
		}
	case TokenTypeAPIKey:
		return apiKeyJSON{
			Object: object, ID: id, Type: TokenTypeAPIKey, Name: t.Name, Subject: t.Subject,
			Description: nullable(t.Description), Claims: t.Claims, Scopes: t.Scopes,
			Revoked: t.Revoked, RevocationReason: nullable(t.RevocationReason),
			Expired: expired, Expiration: millis(t.Expiration), LastUsedAt: millis(t.LastUsedAt),
			CreatedAt: created, UpdatedAt: updated,
		}
	default:
		return oauthTokenJSON{
			Object: object, ID: id, ClientID: t.ClientID, Subject: t.Subject, Scopes: t.Scopes,
			Revoked: t.Revoked, RevocationReason: nullable(t.RevocationReason),
			Expired: expired, Expiration: millis(t.Expiration),
			CreatedAt: created, UpdatedAt: updated,
		}
	}
}

// The Backend API's answers (2026-05-12), in the spec's member order;
// times are unix milliseconds.
type m2mTokenJSON struct {
	Object           string         `json:"object"`
	ID               string         `json:"id"`
	Subject          string         `json:"subject"`
	Scopes           []string       `json:"scopes"`
	Claims           map[string]any `json:"claims"`
	Revoked          bool           `json:"revoked"`
	RevocationReason *string        `json:"revocation_reason"`
	Expired          bool           `json:"expired"`
	Expiration       *int64         `json:"expiration"`
	LastUsedAt       *int64         `json:"last_used_at"`
	CreatedAt        int64          `json:"created_at"`
	UpdatedAt        int64          `json:"updated_at"`
}

type apiKeyJSON struct {
	Object           string         `json:"object"`
	ID               string         `json:"id"`
	Type             string         `json:"type"`
	Name             string         `json:"name"`
	Subject          string         `json:"subject"`
	Description      *string        `json:"description"`
	Claims           map[string]any `json:"claims"`
	Scopes           []string       `json:"scopes"`
	Revoked          bool           `json:"revoked"`
	RevocationReason *string        `json:"revocation_reason"`
	Expired          bool           `json:"expired"`
	Expiration       *int64         `json:"expiration"`
	CreatedBy        *string        `json:"created_by"`
	LastUsedAt       *int64         `json:"last_used_at"`
	CreatedAt        int64          `json:"created_at"`
	UpdatedAt        int64          `json:"updated_at"`
}

type oauthTokenJSON struct {
	Object           string   `json:"object"`
	ID               string   `json:"id"`
	ClientID         string   `json:"client_id"`
	Subject          string   `json:"subject"`
	Scopes           []string `json:"scopes"`
	Revoked          bool     `json:"revoked"`
	RevocationReason *string  `json:"revocation_reason"`
	Expired          bool     `json:"expired"`
	Expiration       *int64   `json:"expiration"`
	CreatedAt        int64    `json:"created_at"`
	UpdatedAt        int64    `json:"updated_at"`
}
