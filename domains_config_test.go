package caddyclerk

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// frontend_api_proxy and satellite in the Caddyfile: the syntax, and each
// check naming its line.
func TestDomainsCaddyfile(t *testing.T) {
	pre := "clerk {\n publishable_key " + pk + "\n secret_key sk_live_x\n"
	for _, tc := range []struct {
		name, input string
		want        Handler
		wantErr     string
		line        int
	}{
		{name: "proxy", input: pre + " frontend_api_proxy https://app.example.com/__clerk\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x", FrontendAPIProxy: &FrontendAPIProxy{URL: "https://app.example.com/__clerk"}}},
		{name: "proxy with upstream", input: pre + " frontend_api_proxy https://app.example.com/__clerk https://frontend-api.clerkstage.dev\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x",
				FrontendAPIProxy: &FrontendAPIProxy{URL: "https://app.example.com/__clerk", Upstream: "https://frontend-api.clerkstage.dev"}}},
		{name: "proxy placeholders", input: pre + " frontend_api_proxy {env.CLERK_PROXY_URL}\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x", FrontendAPIProxy: &FrontendAPIProxy{URL: "{env.CLERK_PROXY_URL}"}}},
		{name: "proxy without value", input: pre + " frontend_api_proxy\n}", wantErr: "frontend_api_proxy takes the public URL", line: 4},
		{name: "proxy three values", input: pre + " frontend_api_proxy https://a.example/__clerk https://b.example x\n}", wantErr: "takes the public URL", line: 4},
		{name: "proxy twice", input: pre + " frontend_api_proxy https://a.example/__clerk\n frontend_api_proxy https://a.example/__clerk\n}", wantErr: "set twice", line: 5},
		{name: "proxy over http", input: pre + " frontend_api_proxy http://app.example.com/__clerk\n}", wantErr: "must be https (plain http only on localhost", line: 4},
		{name: "proxy on loopback http", input: pre + " frontend_api_proxy http://127.0.0.1:8080/__clerk http://localhost:9000\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x", FrontendAPIProxy: &FrontendAPIProxy{URL: "http://127.0.0.1:8080/__clerk", Upstream: "http://localhost:9000"}}},
		{name: "proxy without path", input: pre + " frontend_api_proxy https://app.example.com\n}", wantErr: "needs a path", line: 4},
		{name: "proxy with dot segment", input: pre + " frontend_api_proxy https://app.example.com/a/../__clerk\n}", wantErr: "no '.' or '..' segments", line: 4},
		{name: "proxy relative", input: pre + " frontend_api_proxy /__clerk\n}", wantErr: "is not an absolute URL", line: 4},
		{name: "proxy upstream with path", input: pre + " frontend_api_proxy https://a.example/__clerk https://frontend-api.clerk.dev/v1\n}", wantErr: "must be an origin", line: 4},
		{name: "satellite", input: pre + " satellite docs.other.org\n sign_in_url https://app.example.com/sign-in\n}",
			want: Handler{PublishableKey: pk, SecretKey: "sk_live_x", Satellite: "docs.other.org", SignInURL: "https://app.example.com/sign-in"}},
		{name: "satellite with scheme", input: pre + " satellite https://docs.other.org\n}", wantErr: "takes this site's domain only", line: 4},
		{name: "satellite twice", input: pre + " satellite a.org\n satellite b.org\n}", wantErr: "satellite is set twice", line: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantErr != "" && tc.line == 0 {
				t.Fatal("an error case names its line")
			}
			checkParse(t, tc.input, tc.want, tc.wantErr, tc.line)
		})
	}
}

// The same checks for JSON configs, plus those that need the other
// settings: keys, sign_in_url.
func TestDomainsConfigChecks(t *testing.T) {
	dev := clerktest.NewT(t)
	prod := clerktest.NewT(t, clerktest.Production())
	ppk, psk := prod.PublishableKey(), prod.SecretKey()
	for _, tc := range []struct{ json, want string }{
		{`{"publishable_key":"` + ppk + `","frontend_api_proxy":{"url":"https://app.example.com/__clerk"}}`, "frontend_api_proxy needs secret_key"},
		{`{"publishable_key":"` + dev.PublishableKey() + `","secret_key":"` + dev.SecretKey() + `","frontend_api_proxy":{"url":"https://app.example.com/__clerk"}}`,
			"frontend_api_proxy works with production instances only"},
		{`{"publishable_key":"` + ppk + `","secret_key":"` + psk + `","frontend_api_proxy":{"url":"http://app.example.com/__clerk"}}`, "must be https"},
		{`{"publishable_key":"` + ppk + `","secret_key":"` + psk + `","frontend_api_proxy":{"url":"https://app.example.com/__clerk","upstream":"ftp://x"}}`, "must be https"},
		{`{"publishable_key":"` + ppk + `","secret_key":"` + psk + `","frontend_api_url":"https://clerk.example.com","frontend_api_proxy":{"url":"https://app.example.com/__clerk"}}`,
			"name two Frontend APIs"},
		{`{"publishable_key":"` + ppk + `","satellite":"docs.other.org"}`, "satellite needs sign_in_url"},
		{`{"publishable_key":"` + ppk + `","satellite":"docs.other.org","sign_in_url":"https://docs.other.org/sign-in"}`, "is on the satellite docs.other.org itself"},
		{`{"publishable_key":"` + ppk + `","satellite":"docs/other"}`, "takes this site's domain only"},
		{`{"secret_key":"` + psk + `","satellite":"docs.other.org","sign_in_url":"https://app.example.com/sign-in"}`, "satellite needs publishable_key"},
		{`{"publishable_key":"` + ppk + `","satellite":"docs.other.org","sign_in_url":"https://app.example.com/sign-in","handshake":false}`, "satellite needs the handshake"},
	} {
		var h Handler
		if err := json.Unmarshal([]byte(tc.json), &h); err != nil {
			t.Fatal(err)
		}
		err := provision(t, &h)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "clerk: ") {
			t.Errorf("%s: want an error with %q, got %v", tc.json, tc.want, err)
		}
		if err != nil && (strings.Contains(err.Error(), psk) || strings.Contains(err.Error(), dev.SecretKey())) {
			t.Errorf("%s: the secret key appears in the error", tc.json)
		}
	}
	// A production satellite's Frontend API and issuer are clerk.<domain>.
	h := Handler{PublishableKey: ppk, SecretKey: psk, APIURL: prod.URL(), Satellite: "docs.other.org", SignInURL: "https://app.example.com/sign-in"}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
	if h.FrontendAPIURL != "https://clerk.docs.other.org" || h.keySpec().issuer() != "https://clerk.docs.other.org" {
		t.Fatalf("satellite Frontend API %q, issuer %q", h.FrontendAPIURL, h.keySpec().issuer())
	}
}
