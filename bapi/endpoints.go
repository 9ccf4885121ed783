package bapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// JWKS returns the instance's JSON Web Key Set, the raw body of
// GET /v1/jwks.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	body, _, err := c.JWKSWithMaxAge(ctx)
	return body, err
}

// JWKSWithMaxAge is JWKS plus the response's Cache-Control max-age (zero if
// absent, or if no-store/no-cache forbid reuse). Its signature fits
// verifier.FuncSource.
func (c *Client) JWKSWithMaxAge(ctx context.Context) ([]byte, time.Duration, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/jwks"})
	if err != nil {
		return nil, 0, err
	}
	return resp.body, maxAge(resp.header.Values("Cache-Control")), nil
}

func maxAge(values []string) time.Duration {
	var d time.Duration
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err == nil && n > 0 && n < int64(365*24*time.Hour/time.Second) {
					d = time.Duration(n) * time.Second
				}
			}
		}
	}
	return d
}

// HandshakePayload redeems a handshake nonce for the directives (Set-Cookie
// values) of GET /v1/clients/handshake_payload. The nonce is a credential:
// it is sent only in the query and never appears in errors or logs.
func (c *Client) HandshakePayload(ctx context.Context, nonce string) ([]string, error) {
	const path = "/v1/clients/handshake_payload"
	if nonce == "" {
		return nil, errors.New("clerk api: GET " + path + ": empty nonce")
	}
	req := request{
		method:    http.MethodGet,
		path:      path,
		query:     url.Values{"nonce": {nonce}},
		sensitive: secretForms(nonce),
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	var out struct {
		Directives []string `json:"directives"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return nil, c.decodeFailure(req, err)
	}
	return out.Directives, nil
}

// User is a Clerk user, with the fields this module uses; Raw holds the
// whole response for anything else.
type User struct {
	ID                    string         `json:"id"`
	FirstName             string         `json:"first_name"`
	LastName              string         `json:"last_name"`
	Username              string         `json:"username"`
	ImageURL              string         `json:"image_url"`
	PrimaryEmailAddressID string         `json:"primary_email_address_id"`
	EmailAddresses        []EmailAddress `json:"email_addresses"`
	PublicMetadata        map[string]any `json:"public_metadata"`
	PrivateMetadata       map[string]any `json:"private_metadata"`
	UnsafeMetadata        map[string]any `json:"unsafe_metadata"`
	// CreatedAt and UpdatedAt are Unix milliseconds.
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
	Banned    bool  `json:"banned"`
	Locked    bool  `json:"locked"`

	// Raw is the response body as received.
	Raw json.RawMessage `json:"-"`
}

// EmailAddress is one of a user's email addresses.
type EmailAddress struct {
	ID           string `json:"id"`
	EmailAddress string `json:"email_address"`
}

// PrimaryEmail is the primary email address, or "" if the user has none.
func (u *User) PrimaryEmail() string {
	if u == nil || u.PrimaryEmailAddressID == "" {
		return ""
	}
	for _, e := range u.EmailAddresses {
		if e.ID == u.PrimaryEmailAddressID {
			return e.EmailAddress
		}
	}
	return ""
}

// User fetches GET /v1/users/{id}. An unknown id gives an error for which
// IsNotFound is true.
func (c *Client) User(ctx context.Context, id string) (*User, error) {
	// "", "." and ".." would name another resource once the path is resolved.
	if id == "" || id == "." || id == ".." {
		return nil, errors.New("clerk api: GET /v1/users/{id}: invalid user id")
	}
	req := request{method: http.MethodGet, path: "/v1/users/" + url.PathEscape(id)}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	u := &User{}
	if err := json.Unmarshal(resp.body, u); err != nil {
		return nil, c.decodeFailure(req, err)
	}
	u.Raw = json.RawMessage(resp.body)
	return u, nil
}

func (c *Client) decodeFailure(req request, err error) error {
	return c.netError(req, fmt.Errorf("decoding response: %w", err), &fatalError{})
}

// Session is a Clerk session, with the fields this module uses.
type Session struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	UserID   string `json:"user_id"`
	// Status is active, revoked, ended, expired, removed, abandoned or
	// pending.
	Status string `json:"status"`
}

// RevokeSession ends a session at Clerk (POST /v1/sessions/{id}/revoke):
// its client can no longer mint tokens for it. Revoking is idempotent, so
// the call is retried like a read.
func (c *Client) RevokeSession(ctx context.Context, id string) (*Session, error) {
	if id == "" || id == "." || id == ".." {
		return nil, errors.New("clerk api: POST /v1/sessions/{id}/revoke: invalid session id")
	}
	req := request{method: http.MethodPost, path: "/v1/sessions/" + url.PathEscape(id) + "/revoke"}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	s := &Session{}
	if err := json.Unmarshal(resp.body, s); err != nil {
		return nil, c.decodeFailure(req, err)
	}
	return s, nil
}
