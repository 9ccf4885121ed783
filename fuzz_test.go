package caddyclerk

// Fuzz target for the Caddyfile (what the handler reads from the network is
// fuzzed in internal/authn). Its seeds run as a normal test under
// `go test ./...`; fuzz it with
//
//	go test -run '^$' -fuzz '^FuzzCaddyfile$' -fuzztime 10m .

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var fuzzLineRE = regexp.MustCompile(`, at Caddyfile:(\d+)`)

// FuzzCaddyfile: arbitrary text as the body of a clerk block through
// Handler.UnmarshalCaddyfile: never a panic; every error names a line of the
// input (", at Caddyfile:N"); an accepted block has a key source; the value
// given to secret_key never appears in an error.
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"publishable_key " + pk,
		"publishable_key " + pk + "\nsecret_key sk_test_SECRETVALUE123\napi_url https://api.example.com",
		"jwks_url https://x/jwks\nissuer https://x\nauthorized_parties https://a https://b\nclock_skew 10s\nsession_cookie off",
		"jwt_key /etc/clerk.pem\nallow_pending\noptional\nexclude /health /assets/*\nrequire_role admin\nrequire_permission org:x:read",
		"publishable_key " + pk + "\nrequire_claim metadata.plan pro\ncsrf off\ncsrf_trusted_origins https://a.example\nstrip_credentials",
		"publishable_key " + pk + "\ntoken_cache off\nhandshake on\nsign_out_path /sign-out\nafter_sign_out_url /",
		"publishable_key " + pk + "\nforwarded_request", "forwarded_request on", "forwarded_request\nforwarded_request",
		"publishable_key " + pk + "\nsecret_key sk_test_SECRETVALUE123 sk_test_SECRETVALUE123",
		"secret_key pk_test_SECRETVALUE123", "secret_key sk_x\nsecret_key sk_y", "publishable_key {env.PK}\nsecret_key {env.SK}",
		"publishable_key " + pk + " {\n}", "publishable_key " + pk + "\n}\n}\nfoo", "{\n}", "}", "{", "optional {\nx\n}",
		"clock_skew -1s", "clock_skew 1y", "token_cache 0", "token_cache 99999999999", "token_cache -1",
		"publishable_key <<EOF\npk_x\nEOF", "publishable_key \"pk_x\ny\"", "import foo", "exclude health", "exclude",
		"require_claim a", "csrf_trusted_origins https://a/x", "sign_out_path x", "publishable_key `pk_x`", "\x00\r\n\t",
		"publishable_key " + pk + "\norganization_sync {\norganization /orgs/:slug /orgs/:slug/(.*)\npersonal_account /me\n}\nrequire_org acme org_1",
		"organization_sync {\norganization /orgs/*\n}", "organization_sync {\n}\norganization_sync", "require_org",
		"publishable_key " + pk + "\nfrontend_api_proxy https://a.example/__clerk https://frontend-api.clerk.dev",
		"frontend_api_proxy http://a/../__clerk", "frontend_api_proxy", "satellite docs.other.org\nsign_in_url https://a.example/sign-in",
		"satellite https://x/y", "satellite a.org\nsatellite b.org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		input := "clerk {\n" + body + "\n}\n"
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return // the lexer's error, before our code
		}
		var h Handler
		err = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
		if err == nil {
			if h.PublishableKey == "" && h.SecretKey == "" && h.JWKSURL == "" && h.JWTKey == "" {
				t.Fatalf("accepted without a key source: %q", body)
			}
			return
		}
		msg := err.Error()
		m := fuzzLineRE.FindStringSubmatch(msg)
		if m == nil {
			t.Fatalf("error names no line: %q", msg)
		}
		lines := strings.Count(input, "\n") + 1
		if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
			t.Fatalf("error names line %s of %d: %q", m[1], lines, msg)
		}
		uses := map[string]int{}
		for _, tok := range tokens {
			uses[tok.Text]++
		}
		for i, tok := range tokens {
			if tok.Text != "secret_key" || i+1 >= len(tokens) {
				continue
			}
			// A value that appears only as the secret key (not also as
			// another directive's value, which errors may quote).
			if v := tokens[i+1].Text; strings.HasPrefix(v, "sk_") && len(v) >= 12 && uses[v] == 1 && strings.Contains(msg, v) {
				t.Fatalf("the secret key's value is in the error: %q", msg)
			}
		}
	})
}
