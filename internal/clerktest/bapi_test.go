package clerktest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestUsersEndpoint(t *testing.T) {
	s := newServer(t)
	admin := s.AdminUser()
	r := get(t, s.BackendAPIURL()+"/users/"+admin.ID, s.SecretKey())
	if r.status != 200 || r.header.Get("Clerk-Trace-Id") == "" {
		t.Fatalf("status %d trace %q: %s", r.status, r.header.Get("Clerk-Trace-Id"), r.body)
	}
	m := decodeObject(t, r.body)
	for _, k := range []string{"id", "object", "first_name", "last_name", "username", "image_url",
		"primary_email_address_id", "email_addresses", "public_metadata", "private_metadata",
		"unsafe_metadata", "created_at", "updated_at", "banned", "locked"} {
		if _, ok := m[k]; !ok {
			t.Errorf("user lacks %s", k)
		}
	}
	if m["object"] != "user" || m["id"] != admin.ID || m["first_name"] != "Ada" || m["username"] != "ada" ||
		m["banned"] != false || m["created_at"] != float64(admin.CreatedAt.UnixMilli()) {
		t.Fatalf("user %s", r.body)
	}
	emails := m["email_addresses"].([]any)
	e := emails[0].(map[string]any)
	if len(emails) != 1 || e["object"] != "email_address" || e["email_address"] != "ada@example.com" ||
		e["id"] != m["primary_email_address_id"] || !strings.HasPrefix(e["id"].(string), "idn_") {
		t.Fatalf("emails %v", emails)
	}
	if v := e["verification"].(map[string]any); v["status"] != "verified" || v["strategy"] == "" {
		t.Fatalf("verification %v", v)
	}
	if pm := m["public_metadata"].(map[string]any); pm["plan"] != "pro" {
		t.Fatalf("public_metadata %v", pm)
	}

	u := s.AddUser(User{FirstName: "Cy", PrivateMetadata: map[string]any{"tier": 3}})
	m = decodeObject(t, get(t, s.BackendAPIURL()+"/users/"+u.ID, s.SecretKey()).body)
	if m["username"] != nil || m["primary_email_address_id"] != nil || len(m["email_addresses"].([]any)) != 0 ||
		m["private_metadata"].(map[string]any)["tier"] != 3.0 {
		t.Fatalf("added user %v", m)
	}

	wantClerkError(t, get(t, s.BackendAPIURL()+"/users/user_nobody", s.SecretKey()), 404, "resource_not_found")
	wantClerkError(t, get(t, s.BackendAPIURL()+"/users/"+admin.ID, ""), 401, "clerk_key_invalid")
}

func TestHandshakePayload(t *testing.T) {
	s := newServer(t)
	dirs := []string{"__session=abc; Path=/; SameSite=Lax", "__client_uat=1; Path=/"}
	s.StoreHandshakePayload("n1", dirs)
	base := s.BackendAPIURL() + "/clients/handshake_payload?nonce="
	r := get(t, base+"n1", s.SecretKey())
	var got struct {
		Directives []string `json:"directives"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 || strings.Join(got.Directives, "|") != strings.Join(dirs, "|") {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	if keysOf(decodeObject(t, r.body)) != "directives" {
		t.Fatalf("body %s", r.body)
	}
	wantClerkError(t, get(t, base+"nope", s.SecretKey()), 404, "resource_not_found")
	wantClerkError(t, get(t, base, s.SecretKey()), 404, "resource_not_found")
	wantClerkError(t, get(t, base+"n1", ""), 401, "clerk_key_invalid")
}

func TestUnknownPath(t *testing.T) {
	s := newServer(t)
	wantClerkError(t, get(t, s.URL()+"/v1/nothing", s.SecretKey()), 404, "resource_not_found")
	wantClerkError(t, get(t, s.URL()+"/", ""), 404, "resource_not_found")
	if s.Requests(Unknown) != 2 {
		t.Fatalf("unknown count %d", s.Requests(Unknown))
	}
}

func TestHandle(t *testing.T) {
	s := newServer(t)
	e := s.Handle("GET /v1/environment", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	u := s.URL() + "/v1/environment"
	if r := get(t, u, ""); r.status != http.StatusTeapot || r.header.Get("Clerk-Trace-Id") == "" {
		t.Fatalf("status %d", r.status)
	}
	s.Down()
	wantClerkError(t, get(t, u, ""), 503, "service_unavailable")
	s.Up()
	if get(t, u, "").status != http.StatusTeapot || s.Requests(e) != 3 {
		t.Fatalf("after Up: count %d", s.Requests(e))
	}
}
