package bapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

func TestJWKS(t *testing.T) {
	const body = `{"keys":[{"use":"sig","kty":"RSA","kid":"ins_1","alg":"RS256","n":"xyz","e":"AQAB"}]}`
	for cc, want := range map[string]time.Duration{
		"":                          0,
		"public, max-age=3600":      time.Hour,
		"max-age=60, public":        time.Minute,
		`max-age="120"`:             2 * time.Minute,
		"no-store":                  0,
		"no-cache, max-age=600":     0,
		"max-age=0":                 0,
		"max-age=-5":                0,
		"max-age=bogus":             0,
		"public, s-maxage=99999999": 0,
	} {
		e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.URL.Path != "/v1/jwks" || r.URL.RawQuery != "" {
				t.Errorf("request %s %s", r.Method, r.URL)
			}
			if cc != "" {
				w.Header().Set("Cache-Control", cc)
			}
			_, _ = w.Write([]byte(body))
		})
		got, maxAge, err := e.c.JWKSWithMaxAge(context.Background())
		if err != nil || string(got) != body || maxAge != want {
			t.Errorf("Cache-Control %q: body %s max-age %v err %v, want max-age %v", cc, got, maxAge, err, want)
		}
		plain, err := e.c.JWKS(context.Background())
		if err != nil || string(plain) != body {
			t.Errorf("JWKS: %s %v", plain, err)
		}
		e.wantHits(2)
		e.wantWaits()
	}
}

func TestHandshakePayload(t *testing.T) {
	nonce := "n0nce/with+plus&amp=eq?q space%"
	dirs := []string{"__session=abc; Path=/; SameSite=Lax", "__client_uat=1; Path=/"}
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/clients/handshake_payload" {
			t.Errorf("path %s", r.URL.Path)
		}
		if r.URL.RawQuery != "nonce="+url.QueryEscape(nonce) || r.URL.Query().Get("nonce") != nonce {
			t.Errorf("query %s", r.URL.RawQuery)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"directives": dirs})
	})
	e.sensitive = append(e.sensitive, nonce, url.QueryEscape(nonce))
	got, err := e.c.HandshakePayload(context.Background(), nonce)
	if err != nil || len(got) != 2 || got[0] != dirs[0] || got[1] != dirs[1] {
		t.Fatalf("got %q, %v", got, err)
	}

	_, err = e.c.HandshakePayload(context.Background(), "")
	if err == nil {
		t.Fatal("empty nonce accepted")
	}
	e.wantHits(1)
}

func TestHandshakePayloadErrorsHideNonce(t *testing.T) {
	nonce := "nonce_Xy7Pq2Lm9Rt4"
	e := newEnv(t, sequence(
		func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"directives":"not a list"}`)) },
		status(404),
	))
	e.sensitive = append(e.sensitive, nonce)
	_, err := e.c.HandshakePayload(context.Background(), nonce)
	if err == nil {
		t.Fatal("bad payload accepted")
	}
	e.clean(err)
	_, err = e.c.HandshakePayload(context.Background(), nonce)
	if !IsNotFound(err) {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Path != "/v1/clients/handshake_payload" {
		t.Fatalf("path %q", apiErr.Path)
	}
	e.wantHits(2) // neither a decode failure nor a 404 is retried
}

const userJSON = `{"id":"user_2abc","object":"user","first_name":"Ada","last_name":"Lovelace","username":null,
"image_url":"https://img.clerk.com/x","primary_email_address_id":"idn_2",
"email_addresses":[{"id":"idn_1","object":"email_address","email_address":"old@example.com"},
{"id":"idn_2","object":"email_address","email_address":"ada@example.com","verification":{"status":"verified"}}],
"public_metadata":{"plan":"pro","seats":3},"private_metadata":{},"unsafe_metadata":{"theme":"dark"},
"created_at":1700000000123,"updated_at":1700000999000,"banned":false,"locked":true,"totp_enabled":false}`

func TestUser(t *testing.T) {
	var escaped atomic.Value
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		escaped.Store(r.URL.EscapedPath())
		_, _ = w.Write([]byte(userJSON))
	})
	u, err := e.c.User(context.Background(), "user_2abc")
	if err != nil {
		t.Fatal(err)
	}
	if escaped.Load() != "/v1/users/user_2abc" {
		t.Fatalf("path %v", escaped.Load())
	}
	if u.ID != "user_2abc" || u.FirstName != "Ada" || u.LastName != "Lovelace" || u.Username != "" ||
		u.ImageURL != "https://img.clerk.com/x" || u.PrimaryEmailAddressID != "idn_2" || len(u.EmailAddresses) != 2 ||
		u.PublicMetadata["plan"] != "pro" || u.PublicMetadata["seats"] != 3.0 || len(u.PrivateMetadata) != 0 ||
		u.UnsafeMetadata["theme"] != "dark" || u.CreatedAt != 1700000000123 || u.UpdatedAt != 1700000999000 ||
		u.Banned || !u.Locked || string(u.Raw) != userJSON {
		t.Fatalf("user %+v", u)
	}
	if u.PrimaryEmail() != "ada@example.com" {
		t.Fatalf("primary email %q", u.PrimaryEmail())
	}
	if (&User{EmailAddresses: u.EmailAddresses}).PrimaryEmail() != "" || (*User)(nil).PrimaryEmail() != "" {
		t.Fatal("primary email without an id")
	}

	if _, err := e.c.User(context.Background(), "user_a/../b c?d"); err != nil {
		t.Fatal(err)
	}
	if escaped.Load() != "/v1/users/user_a%2F..%2Fb%20c%3Fd" {
		t.Fatalf("path %v", escaped.Load())
	}
	for _, bad := range []string{"", ".", ".."} {
		if _, err := e.c.User(context.Background(), bad); err == nil {
			t.Fatalf("id %q accepted", bad)
		}
	}
	e.wantHits(2)
}

func TestUserNotFound(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		writeClerkError(w, 404, "resource_not_found", "not found", "Resource not found")
	})
	_, err := e.c.User(context.Background(), "user_nobody")
	if !IsNotFound(err) || IsKeyInvalid(err) || IsRateLimited(err) {
		t.Fatalf("got %v", err)
	}
	if err.Error() != "clerk api: GET /v1/users/user_nobody: 404 resource_not_found: Resource not found (trace trace-body)" {
		t.Fatalf("got %q", err.Error())
	}
	e.wantHits(1)
	e.wantWaits()
}

func TestRevokeSession(t *testing.T) {
	var method, path atomic.Value
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		method.Store(r.Method)
		path.Store(r.URL.EscapedPath())
		if r.URL.EscapedPath() == "/v1/sessions/sess_gone/revoke" {
			writeClerkError(w, 404, "resource_not_found", "not found", "Resource not found")
			return
		}
		_, _ = w.Write([]byte(`{"object":"session","id":"sess_1","client_id":"client_1","user_id":"user_1","status":"revoked","created_at":1}`))
	})
	s, err := e.c.RevokeSession(context.Background(), "sess_1")
	if err != nil {
		t.Fatal(err)
	}
	if method.Load() != http.MethodPost || path.Load() != "/v1/sessions/sess_1/revoke" {
		t.Fatalf("request %v %v", method.Load(), path.Load())
	}
	if s.ID != "sess_1" || s.ClientID != "client_1" || s.UserID != "user_1" || s.Status != "revoked" {
		t.Fatalf("session %+v", s)
	}
	if _, err := e.c.RevokeSession(context.Background(), "sess_gone"); !IsNotFound(err) {
		t.Fatalf("unknown session: %v", err)
	}
	for _, bad := range []string{"", ".", ".."} {
		if _, err := e.c.RevokeSession(context.Background(), bad); err == nil {
			t.Fatalf("id %q accepted", bad)
		}
	}
	e.wantHits(2)
}
