package bapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// The machine token types, as Clerk names them.
const (
	TokenTypeM2M    = "m2m_token"
	TokenTypeAPIKey = "api_key"
	TokenTypeOAuth  = "oauth_token"
)

// MachineToken is a machine credential the Backend API verified.
type MachineToken struct {
	Type       string          // "m2m_token", "api_key" or "oauth_token"
	Object     string          // Clerk's object name as sent
	ID         string          // mt_…, ak_…, oat_…
	Subject    string          // mch_… (M2M), user_… (OAuth), user_/org_/mch_ (API key)
	Name       string          // API key name
	ClientID   string          // OAuth client_id
	Scopes     []string        // M2M: the mch_ ids the token is granted to
	Claims     json.RawMessage // custom claims object; nil when null/absent
	Revoked    bool
	Expired    bool
	Expiration int64 // milliseconds since epoch; 0 when null/absent
}

// machineKind is what differs between the three verify calls.
type machineKind struct {
	tokenType  string
	path       string // no /v1: these endpoints are unversioned
	field      string // the body member carrying the token
	object     string // the object a valid answer names
	prefix     string // of both the token and the id
	machineKey bool   // authenticate with the machine secret key if set
}

var (
	m2mKind = machineKind{
		tokenType: TokenTypeM2M, path: "/m2m_tokens/verify", field: "token",
		object: "machine_to_machine_token", prefix: "mt_", machineKey: true,
	}
	apiKeyKind = machineKind{
		tokenType: TokenTypeAPIKey, path: "/api_keys/verify", field: "secret",
		object: "api_key", prefix: "ak_",
	}
	oauthKind = machineKind{
		tokenType: TokenTypeOAuth, path: "/oauth_applications/access_tokens/verify", field: "access_token",
		object: "clerk_idp_oauth_access_token", prefix: "oat_",
	}
)

func isMachinePath(p string) bool {
	return p == m2mKind.path || p == apiKeyKind.path || p == oauthKind.path
}

// VerifyM2MToken verifies an opaque M2M token (mt_…) with
// POST /m2m_tokens/verify, authenticating with the machine secret key if
// one is set (then only tokens granted to that machine verify), else with
// the secret key.
//
// Like VerifyAPIKey and VerifyOAuthToken, it returns the token only if
// Clerk's answer names the type's object and id prefix and the token is
// neither revoked nor expired; otherwise, and for a 404, an error for
// which IsTokenInvalid is true. Comparing Expiration with the clock is the
// caller's job. A 401 gives IsKeyInvalid; a network error, 5xx or 429
// gives IsUnavailable. At most MachineMaxAttempts tries are made. The
// token never appears in an error or a log line.
func (c *Client) VerifyM2MToken(ctx context.Context, token string) (*MachineToken, error) {
	return c.verifyMachine(ctx, m2mKind, token)
}

// VerifyAPIKey verifies an API key secret (ak_…) with POST /api_keys/verify,
// authenticating with the secret key. See VerifyM2MToken for the result.
func (c *Client) VerifyAPIKey(ctx context.Context, secret string) (*MachineToken, error) {
	return c.verifyMachine(ctx, apiKeyKind, secret)
}

// VerifyOAuthToken verifies an opaque OAuth access token (oat_…) with
// POST /oauth_applications/access_tokens/verify, authenticating with the
// secret key. See VerifyM2MToken for the result.
func (c *Client) VerifyOAuthToken(ctx context.Context, token string) (*MachineToken, error) {
	return c.verifyMachine(ctx, oauthKind, token)
}

func (c *Client) verifyMachine(ctx context.Context, k machineKind, token string) (*MachineToken, error) {
	invalid := func(reason string, err error) *TokenInvalidError {
		return &TokenInvalidError{TokenType: k.tokenType, Reason: reason, Method: http.MethodPost, Path: k.path, Err: err}
	}
	// Not Clerk's: the caller routes by prefix, and anything else would
	// only cost a call (and an attacker-sized body).
	if !wellFormedToken(token, k.prefix) {
		return nil, invalid("malformed token", nil)
	}
	body, err := json.Marshal(map[string]string{k.field: token})
	if err != nil {
		return nil, invalid("malformed token", nil)
	}
	req := request{
		method:     http.MethodPost,
		path:       k.path,
		body:       body,
		sensitive:  secretForms(token),
		machine:    true,
		machineKey: k.machineKey,
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		var apiErr *Error
		var large *bodyTooLargeError
		switch {
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
			return nil, invalid("not found", apiErr)
		case errors.As(err, &large):
			return nil, invalid("malformed response", large)
		}
		return nil, err
	}
	mt, reason, derr := parseMachineToken(k, resp.body)
	if reason != "" {
		if derr != nil {
			// Decoder messages quote bits of the body; keep them clean.
			derr = errors.New(sanitize(c.redact(req, derr.Error()), maxText))
		}
		return nil, invalid(reason, derr)
	}
	return mt, nil
}

func wellFormedToken(tok, prefix string) bool {
	if len(tok) <= len(prefix) || len(tok) > MaxMachineTokenBytes || !strings.HasPrefix(tok, prefix) {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return false
		}
	}
	return true
}

// machineTokenJSON is the union of the three answers' members we read.
// Pointers tell absent from zero where that matters.
type machineTokenJSON struct {
	Object     *string         `json:"object"`
	ID         *string         `json:"id"`
	Active     *bool           `json:"active"`
	Subject    string          `json:"subject"`
	Name       string          `json:"name"`
	ClientID   string          `json:"client_id"`
	Scopes     []string        `json:"scopes"`
	Claims     json.RawMessage `json:"claims"`
	Revoked    bool            `json:"revoked"`
	Expired    bool            `json:"expired"`
	Expiration json.Number     `json:"expiration"`
}

// parseMachineToken applies §11.2 to a 200: it returns the token, or the
// reason it is invalid (and the decoding error, if any).
func parseMachineToken(k machineKind, body []byte) (*MachineToken, string, error) {
	const malformed = "malformed response"
	var j machineTokenJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, malformed, err
	}
	// {"active": false} is the spec's second 200 shape; Clerk's SDK would
	// take it (or any 200) as valid.
	if j.Active != nil && !*j.Active {
		return nil, "inactive", nil
	}
	if j.Object == nil || j.ID == nil {
		return nil, malformed, errors.New("no object or id")
	}
	if *j.Object != k.object {
		return nil, "unexpected object", nil
	}
	if !wellFormedID(*j.ID, k.prefix) {
		return nil, "unexpected id", nil
	}
	if j.Revoked {
		return nil, "revoked", nil
	}
	if j.Expired {
		return nil, "expired", nil
	}
	exp, err := parseMillis(j.Expiration)
	if err != nil {
		return nil, malformed, err
	}
	claims := bytes.TrimSpace(j.Claims)
	switch {
	case len(claims) == 0 || string(claims) == "null":
		claims = nil
	case claims[0] != '{':
		return nil, malformed, errors.New("claims is not an object")
	}
	return &MachineToken{
		Type:       k.tokenType,
		Object:     *j.Object,
		ID:         *j.ID,
		Subject:    j.Subject,
		Name:       j.Name,
		ClientID:   j.ClientID,
		Scopes:     j.Scopes,
		Claims:     json.RawMessage(claims),
		Revoked:    j.Revoked,
		Expired:    j.Expired,
		Expiration: exp,
	}, "", nil
}

// wellFormedID: the type's prefix, then a Clerk id's characters. The
// spec's regexes say 32 hex digits, but Clerk's own fixtures are not hex,
// so only the alphabet is held to.
func wellFormedID(id, prefix string) bool {
	if len(id) <= len(prefix) || len(id) > 128 || !strings.HasPrefix(id, prefix) {
		return false
	}
	for i := len(prefix); i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// parseMillis reads expiration: absent or null is 0. A present value must
// be a positive whole number of milliseconds: 0 would read as "never
// expires" to the caller.
func parseMillis(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if v <= 0 {
			return 0, errors.New("expiration is not positive")
		}
		return v, nil
	}
	// 1.7e12 is still a whole number of milliseconds.
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f <= 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, errors.New("expiration is not a whole number of milliseconds")
	}
	return int64(f), nil
}
