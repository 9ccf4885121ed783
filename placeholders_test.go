package caddyclerk

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// identityKeys are every fixed placeholder the holder answers.
var identityKeys = []string{"http.auth.user.id", "clerk.user_id", "http.auth.user.session_id", "clerk.session_id",
	"http.auth.user.org_id", "clerk.org_id", "http.auth.user.org_role", "clerk.org_role", "http.auth.user.org_slug",
	"clerk.org_slug", "clerk.org_permissions", "clerk.actor_id", "clerk.reason", "clerk.authenticated", "clerk.token_type",
	"clerk.subject", "clerk.token_id", "clerk.machine_id", "clerk.client_id", "clerk.scopes", "clerk.api_key_name"}

func TestPlaceholdersAnonymous(t *testing.T) {
	repl := caddy.NewReplacer()
	setAnonymous(requestVars(newRequest(repl)), repl)
	for _, k := range identityKeys {
		v, ok := repl.GetString(k)
		want := ""
		if k == "clerk.authenticated" {
			want = "false"
		}
		if !ok || v != want {
			t.Errorf("{%s} = %q, %v: want known and %q (header_up would forward an unknown one literally)", k, v, ok, want)
		}
	}
	if v, ok := repl.GetString("clerk.claims.metadata.plan"); !ok || v != "" {
		t.Errorf("{clerk.claims.*} = %q, %v: want known and empty", v, ok)
	}
	if _, ok := repl.Get("clerk.unknown"); ok {
		t.Error("an unknown clerk.* name answers")
	}
	// What header_up does: a known empty placeholder becomes "", an unknown
	// one stays as written.
	if got := repl.ReplaceKnown("{clerk.user_id}|{http.auth.user.id}|{clerk.nope}", ""); got != "||{clerk.nope}" {
		t.Errorf("ReplaceKnown = %q", got)
	}
}

func TestPlaceholdersSignedIn(t *testing.T) {
	payload := `{"sub":"user_1","sid":"sess_1","metadata":{"plan":"pro","seats":3,"beta":true,"tags":["a","b"],"obj":{"k":"v"}},` +
		`"list":[{"x":1},"y"],"evil":"a\r\nX-Injected: 1"}`
	c := &verifier.Claims{Subject: "user_1", SessionID: "sess_1", Shared: &verifier.Shared{OrgID: "org_1", OrgRole: "org:admin",
		OrgSlug: "acme", OrgPermissions: []string{"org:a:read", "org:a:write"}}, Actor: &verifier.Actor{Subject: "user_admin"},
		Raw: json.RawMessage(payload)}
	repl := caddy.NewReplacer()
	h := setAnonymous(requestVars(newRequest(repl)), repl)
	h.claims = c
	for k, want := range map[string]string{
		"http.auth.user.id": "user_1", "clerk.user_id": "user_1", "clerk.session_id": "sess_1", "http.auth.user.org_id": "org_1",
		"clerk.org_role": "org:admin", "clerk.org_slug": "acme", "clerk.org_permissions": "org:a:read,org:a:write",
		"clerk.actor_id": "user_admin", "clerk.authenticated": "true", "clerk.reason": "",
		"clerk.claims.metadata.plan": "pro", "clerk.claims.metadata.seats": "3", "clerk.claims.metadata.beta": "true",
		"clerk.claims.metadata.tags": "a,b", "clerk.claims.metadata.obj": `{"k":"v"}`, "clerk.claims.list": `{"x":1},y`,
		"clerk.claims.missing": "", "clerk.claims.evil": "aX-Injected: 1",
	} {
		if v, ok := repl.GetString(k); !ok || v != want {
			t.Errorf("{%s} = %q, %v; want %q", k, v, ok, want)
		}
	}
}

// TestPlaceholdersSecondHandler: a second clerk handler on the same
// request (site-wide, then /admin) takes over the first one's holder and
// starts from anonymous: providers are asked oldest first, so a second
// holder would never be heard.
func TestPlaceholdersSecondHandler(t *testing.T) {
	repl := caddy.NewReplacer()
	r := newRequest(repl)
	first := setAnonymous(requestVars(r), repl)
	first.claims, first.reason = &verifier.Claims{Subject: "user_1", Shared: &verifier.Shared{}}, "x"
	second := setAnonymous(requestVars(r), repl)
	if first != second {
		t.Fatal("a second holder")
	}
	if v, _ := repl.GetString("clerk.user_id"); v != "" {
		t.Fatalf("the first handler's user survives: %q", v)
	}
	second.reason = "missing-role"
	if v, _ := repl.GetString("clerk.reason"); v != "missing-role" {
		t.Fatalf("{clerk.reason} = %q", v)
	}
}

// newRequest is a request as Caddy hands it to a handler: with a replacer
// and vars.
func newRequest(repl *caddy.Replacer) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	return r.WithContext(ctx)
}

// TestPlaceholdersMachine: a machine token's placeholders, and a refused
// request shows who it was but not its claims.
func TestPlaceholdersMachine(t *testing.T) {
	repl := caddy.NewReplacer()
	h := setAnonymous(requestVars(newRequest(repl)), repl)
	h.machine = &verifier.Machine{Type: verifier.TokenAPIKey, ID: "ak_1", Subject: "org_1", Name: "ci", Scopes: []string{"a", "b"},
		Claims: json.RawMessage(`{"tier":"gold"}`)}
	for k, want := range map[string]string{"clerk.token_type": "api_key", "clerk.subject": "org_1", "http.auth.user.id": "org_1",
		"clerk.user_id": "", "clerk.org_id": "org_1", "clerk.token_id": "ak_1", "clerk.api_key_name": "ci", "clerk.scopes": "a,b",
		"clerk.machine_id": "", "clerk.session_id": "", "clerk.org_role": "", "clerk.claims.tier": "gold", "clerk.authenticated": "true"} {
		if v, ok := repl.GetString(k); !ok || v != want {
			t.Errorf("{%s} = %q, %v; want %q", k, v, ok, want)
		}
	}
	h.hideClaims = true
	if v, _ := repl.GetString("clerk.claims.tier"); v != "" {
		t.Errorf("a refused request's claims: %q", v)
	}
}

func TestClaimEquals(t *testing.T) {
	var v any
	_ = json.Unmarshal([]byte(`{"s":"pro","n":3,"b":false,"l":["a",2],"o":{"k":"v"}}`), &v)
	m := v.(map[string]any)
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{{"s", "pro", true}, {"s", "Pro", false}, {"n", "3", true}, {"b", "false", true}, {"l", "a", true}, {"l", "2", true},
		{"l", "a,2", false}, {"o", `{"k":"v"}`, false}} {
		if got := claimEquals(m[tc.key], tc.want); got != tc.ok {
			t.Errorf("claimEquals(%v, %q) = %v", m[tc.key], tc.want, got)
		}
	}
}
