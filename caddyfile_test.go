package caddyclerk

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

const pk = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k" // clerk.example.com$

func TestUnmarshalCaddyfile(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name, input string
		want        Handler
		wantErr     string
		line        int // the line the error must name
	}{
		{name: "minimal", input: "clerk {\n publishable_key " + pk + "\n}", want: Handler{PublishableKey: pk}},
		{name: "everything", input: `clerk {
			publishable_key {env.CLERK_PUBLISHABLE_KEY}
			secret_key {env.CLERK_SECRET_KEY}
			jwks_url https://clerk.example.com/.well-known/jwks.json
			jwt_key /etc/clerk.pem
			issuer https://clerk.example.com
			api_url https://api.clerk.com
			frontend_api_url https://clerk.example.com
			sign_in_url https://accounts.example.com/sign-in
			authorized_parties https://a.example.com https://b.example.com
			clock_skew 10s
			session_cookie off
			allow_pending
			exclude /health /assets/*
			exclude /favicon.ico
			require_role admin billing
			require_role org:owner
			require_permission org:invoices:read
			require_claim metadata.plan pro enterprise
			optional
		}`, want: Handler{
			PublishableKey: "{env.CLERK_PUBLISHABLE_KEY}", SecretKey: "{env.CLERK_SECRET_KEY}",
			JWKSURL: "https://clerk.example.com/.well-known/jwks.json", JWTKey: "/etc/clerk.pem",
			Issuer: "https://clerk.example.com", APIURL: "https://api.clerk.com", FrontendAPIURL: "https://clerk.example.com",
			SignInURL: "https://accounts.example.com/sign-in", AuthorizedParties: []string{"https://a.example.com", "https://b.example.com"},
			ClockSkew: durPtr(10), SessionCookie: &no, AllowPending: true, Exclude: []string{"/health", "/assets/*", "/favicon.ico"},
			RequireRoles: [][]string{{"admin", "billing"}, {"org:owner"}}, RequirePermissions: [][]string{{"org:invoices:read"}},
			RequireClaims: []ClaimRequirement{{Path: "metadata.plan", Values: []string{"pro", "enterprise"}}}, Optional: true,
		}},
		{name: "cookie on", input: "clerk {\n publishable_key " + pk + "\n session_cookie on\n}", want: Handler{PublishableKey: pk, SessionCookie: &yes}},
		{name: "no key source", input: "clerk {\n optional\n}", wantErr: "needs a key source"},
		{name: "empty", input: `clerk`, wantErr: "needs a key source"},
		{name: "argument", input: `clerk ` + pk, wantErr: "takes no arguments"},
		{name: "unknown", input: "clerk {\n publishable_key " + pk + "\n publishable " + pk + "\n}", wantErr: `unrecognized subdirective "publishable"`, line: 3},
		{name: "twice", input: "clerk {\n publishable_key " + pk + "\n publishable_key " + pk + "\n}", wantErr: "publishable_key is set twice", line: 3},
		{name: "missing value", input: "clerk {\n publishable_key\n}", wantErr: "publishable_key needs a value", line: 2},
		{name: "two values", input: "clerk {\n issuer a b\n publishable_key " + pk + "\n}", wantErr: "issuer takes one value"},
		{name: "bad pk", input: "clerk {\n publishable_key sk_live_abc\n}", wantErr: "publishable_key must start with pk_live_ or pk_test_"},
		{name: "bad sk", input: "clerk {\n secret_key pk_live_abc\n}", wantErr: "secret_key must start with sk_live_ or sk_test_"},
		{name: "bad skew", input: "clerk {\n publishable_key " + pk + "\n clock_skew soon\n}", wantErr: `clock_skew "soon" is not a duration`, line: 3},
		{name: "bad cookie", input: "clerk {\n publishable_key " + pk + "\n session_cookie yes\n}", wantErr: `session_cookie takes on or off, not "yes"`},
		{name: "flag with value", input: "clerk {\n publishable_key " + pk + "\n optional true\n}", wantErr: "optional takes no value"},
		{name: "exclude without slash", input: "clerk {\n publishable_key " + pk + "\n exclude health\n}", wantErr: `exclude pattern "health" must start with /`},
		{name: "exclude empty", input: "clerk {\n publishable_key " + pk + "\n exclude\n}", wantErr: "exclude needs at least one path pattern"},
		{name: "role empty", input: "clerk {\n publishable_key " + pk + "\n require_role\n}", wantErr: "require_role needs at least one role"},
		{name: "claim no value", input: "clerk {\n publishable_key " + pk + "\n require_claim metadata.plan\n}", wantErr: "require_claim needs a claim path and at least one value"},
		{name: "parties empty", input: "clerk {\n publishable_key " + pk + "\n authorized_parties\n}", wantErr: "authorized_parties needs at least one origin"},
		{name: "csrf and stripping", input: "clerk {\n publishable_key " + pk + "\n csrf off\n csrf_trusted_origins https://app.example.com http://localhost:3000\n strip_credentials\n}",
			want: Handler{PublishableKey: pk, CSRF: &no, CSRFTrustedOrigins: []string{"https://app.example.com", "http://localhost:3000"}, StripCredentials: true}},
		{name: "csrf bad value", input: "clerk {\n publishable_key " + pk + "\n csrf maybe\n}", wantErr: `csrf takes on or off, not "maybe"`, line: 3},
		{name: "csrf origin with path", input: "clerk {\n publishable_key " + pk + "\n csrf_trusted_origins https://app.example.com/x\n}", wantErr: "is not an origin", line: 3},
		{name: "token cache size", input: "clerk {\n publishable_key " + pk + "\n token_cache 50000\n}", want: Handler{PublishableKey: pk, TokenCache: intPtr(50000)}},
		{name: "token cache off", input: "clerk {\n publishable_key " + pk + "\n token_cache off\n}", want: Handler{PublishableKey: pk, TokenCache: intPtr(0)}},
		{name: "token cache bad", input: "clerk {\n publishable_key " + pk + "\n token_cache lots\n}", wantErr: `token_cache takes a number of entries`, line: 3},
		{name: "handshake and sign-out", input: "clerk {\n publishable_key " + pk + "\n secret_key sk_live_x\n handshake off\n sign_out_path /sign-out\n after_sign_out_url https://example.com/bye\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x", Handshake: &no, SignOutPath: "/sign-out", AfterSignOutURL: "https://example.com/bye"}},
		{name: "handshake bad value", input: "clerk {\n publishable_key " + pk + "\n handshake always\n}", wantErr: `handshake takes on or off, not "always"`, line: 3},
		{name: "sign-out path relative", input: "clerk {\n publishable_key " + pk + "\n sign_out_path sign-out\n}", wantErr: `sign_out_path "sign-out" must be a path starting with /`, line: 3},
		{name: "machine tokens", input: "clerk {\n publishable_key " + pk + "\n secret_key sk_live_x\n accept session_token api_key m2m_token\n machine_secret_key ak_0123456789\n require_scope read write\n require_scope admin\n machine_cache_ttl 0\n machine_verify_rate 5.5\n machine_stale_if_error 10m\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x", Accept: []string{"session_token", "api_key", "m2m_token"}, MachineSecretKey: "ak_0123456789",
				RequireScopes: [][]string{{"read", "write"}, {"admin"}}, MachineCacheTTL: durPtr(0), MachineVerifyRate: floatPtr(5.5), MachineStaleIfError: durPtr(600)}},
		{name: "accept any", input: "clerk {\n publishable_key " + pk + "\n accept any\n}", want: Handler{PublishableKey: pk, Accept: []string{"any"}}},
		{name: "accept unknown", input: "clerk {\n publishable_key " + pk + "\n accept api_keys\n}", wantErr: `accept: "api_keys" is not a token type`, line: 3},
		{name: "accept any and more", input: "clerk {\n publishable_key " + pk + "\n accept any api_key\n}", wantErr: "accept any already takes every token type", line: 3},
		{name: "accept empty", input: "clerk {\n publishable_key " + pk + "\n accept\n}", wantErr: "accept needs token types", line: 3},
		{name: "accept twice", input: "clerk {\n publishable_key " + pk + "\n accept api_key\n accept m2m_token\n}", wantErr: "accept is set twice", line: 4},
		{name: "bad machine key", input: "clerk {\n publishable_key " + pk + "\n machine_secret_key sk_live_x\n}", wantErr: "machine_secret_key must start with ak_", line: 3},
		{name: "scope empty", input: "clerk {\n publishable_key " + pk + "\n require_scope\n}", wantErr: "require_scope needs at least one scope", line: 3},
		{name: "bad machine ttl", input: "clerk {\n publishable_key " + pk + "\n machine_cache_ttl soon\n}", wantErr: `machine_cache_ttl "soon" is not a duration`, line: 3},
		{name: "bad rate", input: "clerk {\n publishable_key " + pk + "\n machine_verify_rate 0\n}", wantErr: "machine_verify_rate takes verifications per second", line: 3},
		{name: "forwarded request", input: "clerk {\n publishable_key " + pk + "\n forwarded_request\n}", want: Handler{PublishableKey: pk, ForwardedRequest: true}},
		{name: "forwarded request with a value", input: "clerk {\n publishable_key " + pk + "\n forwarded_request on\n}", wantErr: "forwarded_request takes no value", line: 3},
		{name: "forwarded request twice", input: "clerk {\n publishable_key " + pk + "\n forwarded_request\n forwarded_request\n}", wantErr: "forwarded_request is set twice", line: 4},
		{name: "organization sync", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /orgs/:slug /orgs/:slug/(.*)\n  personal_account /me /me/(.*)\n }\n require_org org_123 acme\n optional\n}",
			want: Handler{PublishableKey: pk, OrganizationSync: &OrganizationSync{Organization: []string{"/orgs/:slug", "/orgs/:slug/(.*)"},
				PersonalAccount: []string{"/me", "/me/(.*)"}}, RequireOrg: []string{"org_123", "acme"}, Optional: true}},
		{name: "organization sync, one list", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /o/:id/(.*)\n }\n}",
			want: Handler{PublishableKey: pk, OrganizationSync: &OrganizationSync{Organization: []string{"/o/:id/(.*)"}}}},
		{name: "organization pattern with *", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /orgs/:slug\n  personal_account /me/*\n }\n}",
			wantErr: `organization_sync: personal_account pattern "/me/*": "*" is path-to-regexp syntax`, line: 5},
		{name: "organization pattern with another param", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /orgs/:org\n }\n}",
			wantErr: "use :slug (the organization's slug) or :id", line: 4},
		{name: "organization pattern with a regexp", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /orgs/:slug/([a-z]+)\n }\n}",
			wantErr: "the only group supported is (.*)", line: 4},
		{name: "organization sync empty", input: "clerk {\n publishable_key " + pk + "\n organization_sync\n}", wantErr: "organization_sync needs organization or personal_account patterns", line: 3},
		{name: "organization sync with an argument", input: "clerk {\n publishable_key " + pk + "\n organization_sync /orgs/:slug\n}", wantErr: "organization_sync takes a block", line: 3},
		{name: "organization sync unknown list", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  orgs /orgs/:slug\n }\n}", wantErr: `unrecognized "orgs" in organization_sync`, line: 4},
		{name: "organization list empty", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization\n }\n}", wantErr: "organization needs at least one pattern", line: 4},
		{name: "organization list twice", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /a/:slug\n  organization /b/:slug\n }\n}", wantErr: "organization is set twice", line: 5},
		{name: "organization sync twice", input: "clerk {\n publishable_key " + pk + "\n organization_sync {\n  organization /a/:slug\n }\n organization_sync {\n  organization /b/:slug\n }\n}", wantErr: "organization_sync is set twice", line: 6},
		{name: "require_org empty", input: "clerk {\n publishable_key " + pk + "\n require_org\n}", wantErr: "require_org needs at least one organization", line: 3},
		{name: "require_org twice", input: "clerk {\n publishable_key " + pk + "\n require_org a\n require_org b\n}", wantErr: "require_org is set twice", line: 4},
		{name: "require_org bad", input: "clerk {\n publishable_key " + pk + "\n require_org acme/x\n}", wantErr: `require_org "acme/x" is neither`, line: 3},
		{name: "sub block", input: "clerk {\n publishable_key " + pk + " {\n x\n }\n}", wantErr: "publishable_key does not take a block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkParse(t, tc.input, tc.want, tc.wantErr, tc.line)
		})
	}
}

// checkParse parses input as a clerk block and checks the result: an error
// containing wantErr that names line (when line > 0), or the handler want.
func checkParse(t *testing.T, input string, want Handler, wantErr string, line int) {
	t.Helper()
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("want error containing %q, got %v", wantErr, err)
		}
		if line > 0 && !strings.HasSuffix(err.Error(), fmt.Sprintf("at Testfile:%d", line)) {
			t.Fatalf("error does not name line %d: %v", line, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, want) {
		got, _ := json.Marshal(h)
		wantJSON, _ := json.Marshal(want)
		t.Fatalf("got  %s\nwant %s", got, wantJSON)
	}
}

func intPtr(n int) *int { return &n }

func floatPtr(f float64) *float64 { return &f }

func durPtr(sec int) *caddy.Duration {
	d := caddy.Duration(time.Duration(sec) * time.Second)
	return &d
}

// TestAdaptGolden adapts example.Caddyfile and compares the JSON with the
// committed golden file (UPDATE_GOLDEN=1 rewrites it).
func TestAdaptGolden(t *testing.T) {
	src, err := os.ReadFile("example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt(src, map[string]any{"filename": "example.Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
	}
	var pretty map[string]any
	if err := json.Unmarshal(out, &pretty); err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(pretty, "", "\t")
	got = append(got, '\n')
	const golden = "testdata/example.golden.json"
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("adapted JSON differs from %s (UPDATE_GOLDEN=1 to accept):\n%s", golden, got)
	}
	if !strings.Contains(string(got), `"handler": "clerk"`) {
		t.Fatal("the clerk handler is not in the adapted config")
	}
}
