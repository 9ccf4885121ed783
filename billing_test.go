package caddyclerk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

func TestCaddyfileBilling(t *testing.T) {
	block := func(lines string) string { return "clerk {\n publishable_key " + pk + "\n" + lines + "\n}" }
	for _, tc := range []struct {
		name, lines string
		want        Handler
		wantErr     string
	}{
		{name: "plans, features, a preset", lines: " require_plan pro u:team\n require_plan o:enterprise\n require_feature export\n require_reverification strict",
			want: Handler{PublishableKey: pk, RequirePlans: [][]string{{"pro", "u:team"}, {"o:enterprise"}},
				RequireFeatures: [][]string{{"export"}}, RequireReverification: &ReverificationRequirement{Preset: "strict"}}},
		{name: "every scope word", lines: " require_feature user:a org:b organization:c u:d o:e",
			want: Handler{PublishableKey: pk, RequireFeatures: [][]string{{"user:a", "org:b", "organization:c", "u:d", "o:e"}}}},
		{name: "a level with minutes", lines: " require_reverification multi_factor 30",
			want: Handler{PublishableKey: pk, RequireReverification: &ReverificationRequirement{Level: "multi_factor", AfterMinutes: 30}}},
		{name: "preset with minutes", lines: " require_reverification strict 10", wantErr: "require_reverification strict: a preset takes no minutes"},
		{name: "preset with a word", lines: " require_reverification lax soon", wantErr: "a preset takes no minutes"},
		{name: "unknown preset", lines: " require_reverification paranoid", wantErr: `require_reverification "paranoid" is neither a preset nor a level`},
		{name: "level without minutes", lines: " require_reverification second_factor", wantErr: "require_reverification second_factor needs minutes, a whole number above 0 (not 0)"},
		{name: "zero minutes", lines: " require_reverification first_factor 0", wantErr: "needs minutes, a whole number above 0 (not 0)"},
		{name: "negative minutes", lines: " require_reverification first_factor -5", wantErr: "needs minutes, a whole number above 0 (not -5)"},
		{name: "minutes not a number", lines: " require_reverification first_factor 1.5", wantErr: `minutes "1.5" must be a whole number above 0`},
		{name: "no value", lines: " require_reverification", wantErr: "require_reverification needs a preset or a level"},
		{name: "too many values", lines: " require_reverification second_factor 10 strict", wantErr: "takes a preset, or a level and minutes"},
		{name: "twice", lines: " require_reverification strict\n require_reverification lax", wantErr: "require_reverification is set twice"},
		{name: "plan empty", lines: " require_plan", wantErr: "require_plan: an empty plan; write require_plan pro"},
		{name: "feature empty", lines: " require_feature", wantErr: "require_feature: an empty feature; write require_feature export"},
		{name: "nothing after the colon", lines: " require_plan x:", wantErr: `require_plan "x:": nothing after the colon`},
		{name: "nothing before the colon", lines: " require_plan :y", wantErr: `require_plan ":y": nothing before the colon`},
		{name: "unknown scope", lines: " require_feature pro a:b", wantErr: `require_feature "a:b": unknown scope "a"`},
		{name: "two colons", lines: " require_plan o:a:b", wantErr: `require_plan "o:a:b": a plan key has no colon`},
		{name: "comma-joined", lines: " require_plan pro,team", wantErr: `require_plan "pro,team": give each plan as its own value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An error names the line of the mistake: the last one.
			checkParse(t, block(tc.lines), tc.want, tc.wantErr, 2+strings.Count(tc.lines, "\n")+1)
		})
	}
	if !strings.Contains(subdirectives, "require_plan, require_feature, require_reverification") {
		t.Fatal("the new subdirectives are not listed for error messages")
	}
}

// TestJSONBillingChecks: a JSON config gets the same checks at Provision.
func TestJSONBillingChecks(t *testing.T) {
	clerk := clerktest.NewT(t)
	base := `"publishable_key":"` + clerk.PublishableKey() + `"`
	for _, tc := range []struct{ json, want string }{
		{`{` + base + `,"require_reverification":{"preset":"strict","after_minutes":10}}`, "require_reverification strict: a preset takes no minutes"},
		{`{` + base + `,"require_reverification":{"preset":"strict","level":"first_factor"}}`, "give a preset or a level, not both"},
		{`{` + base + `,"require_reverification":{"level":"second_factor"}}`, "require_reverification second_factor needs minutes"},
		{`{` + base + `,"require_reverification":{"level":"second_factor","after_minutes":-1}}`, "a whole number above 0 (not -1)"},
		{`{` + base + `,"require_reverification":{"level":"third_factor","after_minutes":5}}`, `"third_factor" is neither a preset nor a level`},
		{`{` + base + `,"require_reverification":{}}`, "require_reverification needs a preset or a level"},
		{`{` + base + `,"require_plans":[[]]}`, "require_plan: an empty plan"},
		{`{` + base + `,"require_plans":[["pro",""]]}`, "require_plan: an empty plan"},
		{`{` + base + `,"require_plans":[["x:"]]}`, `require_plan "x:": nothing after the colon`},
		{`{` + base + `,"require_features":[[":y"]]}`, `require_feature ":y": nothing before the colon`},
		{`{` + base + `,"require_features":[["team:y"]]}`, `unknown scope "team"`},
		{`{` + base + `,"secret_key":"` + clerk.SecretKey() + `","accept":["api_key"],"require_plans":[["pro"]]}`,
			"require_plan, require_feature and require_reverification ask about a user's session, and this route accepts none"},
	} {
		var h Handler
		if err := json.Unmarshal([]byte(tc.json), &h); err != nil {
			t.Fatal(err)
		}
		err := provision(t, &h)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "clerk: ") {
			t.Errorf("%s: want an error with %q, got %v", tc.json, tc.want, err)
		}
	}
	var h Handler
	ok := `{` + base + `,"require_plans":[["pro","o:team"]],"require_features":[["user:export"]],` +
		`"require_reverification":{"level":"multi_factor","after_minutes":15}}`
	if err := json.Unmarshal([]byte(ok), &h); err != nil {
		t.Fatal(err)
	}
	if err := provision(t, &h); err != nil {
		t.Fatal(err)
	}
}

func TestBillingPlaceholders(t *testing.T) {
	repl := caddy.NewReplacer()
	h := setAnonymous(requestVars(newRequest(repl)), repl)
	for _, k := range []string{"clerk.plans", "clerk.features"} {
		if v, ok := repl.GetString(k); !ok || v != "" {
			t.Errorf("anonymous {%s} = %q, %v: want known and empty", k, v, ok)
		}
	}
	h.machine = &verifier.Machine{Subject: "mch_1"}
	if v, ok := repl.GetString("clerk.plans"); !ok || v != "" {
		t.Errorf("machine {clerk.plans} = %q, %v", v, ok)
	}
	h.machine, h.claims = nil, &verifier.Claims{Subject: "user_1", Shared: &verifier.Shared{Plans: []string{"u:pro", "o:team"}, Features: []string{"u:export", "o:sso\r\nX: 1"}}}
	if v, _ := repl.GetString("clerk.plans"); v != "u:pro,o:team" {
		t.Errorf("{clerk.plans} = %q", v)
	}
	if v, _ := repl.GetString("clerk.features"); v != "u:export,o:ssoX: 1" {
		t.Errorf("{clerk.features} = %q", v)
	}
}

// billingSite is one Caddy site with a route per Billing and
// reverification rule. What the handler writes itself carries
// {clerk.reason} in X-Reason; handle_errors writes it in the body.
func billingSite(t *testing.T, clerk *clerktest.Server, upstream string) *caddyRun {
	keys := fmt.Sprintf(`publishable_key %s
			frontend_api_url %s
			sign_in_url %s/sign-in`, clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL())
	route := func(path, lines string) string {
		return fmt.Sprintf(`
	route %s {
		clerk {
			%s
			%s
		}
		reverse_proxy %s {
			header_up X-Clerk-Plans {clerk.plans}
			header_up X-Clerk-Features {clerk.features}
			header_up X-Clerk-User-Id {clerk.user_id}
		}
	}`, path, keys, lines, upstream)
	}
	return startCaddy(t, "", `http://localhost:{{site}} {
	bind 127.0.0.1
	header >X-Reason {clerk.reason}`+
		route("/paid/*", "require_plan pro enterprise")+
		route("/team/*", "require_plan o:team")+
		route("/userteam/*", "require_plan u:team")+
		route("/export/*", "require_feature export\n\t\t\trequire_feature o:sso u:sso")+
		route("/mixed/*", "require_role admin\n\t\t\trequire_reverification strict\n\t\t\trequire_plan enterprise")+
		route("/settings/*", "require_reverification strict")+
		route("/custom/*", "require_reverification second_factor 5")+
		route("/machines/*", fmt.Sprintf("secret_key %s\n\t\t\tapi_url %s\n\t\t\taccept any\n\t\t\trequire_feature export", clerk.SecretKey(), clerk.URL()))+
		route("/machines-rv/*", fmt.Sprintf("secret_key %s\n\t\t\tapi_url %s\n\t\t\taccept any\n\t\t\trequire_reverification lax", clerk.SecretKey(), clerk.URL()))+
		route("/open/*", "optional")+`
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}`)
}

type billingResp struct {
	status int
	body   string
	header http.Header
}

func billingGet(t *testing.T, url string, hdr map[string]string) billingResp {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := testClient(true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return billingResp{resp.StatusCode, string(b), resp.Header}
}

// reverificationHint reads a body as clerk-js's useReverification does
// (@clerk/shared isReverificationHint, then validateReverificationConfig
// on metadata.reverification): only the parsed JSON counts, never the
// status or the headers. level is "" when the metadata is not a valid
// config (the modal then opens at its default level).
func reverificationHint(body string) (hint bool, level string) {
	var result any
	if json.Unmarshal([]byte(body), &result) != nil {
		return false, ""
	}
	obj, _ := result.(map[string]any)
	ce, _ := obj["clerk_error"].(map[string]any)
	if ce == nil || ce["type"] != "forbidden" || ce["reason"] != "reverification-error" {
		return false, ""
	}
	meta, _ := ce["metadata"].(map[string]any)
	switch cfg := meta["reverification"].(type) {
	case string:
		if p, ok := verifier.ReverificationPresets[cfg]; ok {
			return true, p.Level
		}
	case map[string]any:
		lvl, _ := cfg["level"].(string)
		after, isNum := cfg["afterMinutes"].(float64)
		if _, _, ok := (verifier.Reverification{Level: lvl, AfterMinutes: 1}).Resolve(); ok && isNum && after > 0 {
			return true, lvl
		}
	}
	return true, ""
}

func TestBillingThroughCaddy(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := echoUpstream(t)
	run := billingSite(t, clerk, up.URL)
	site := "http://localhost:" + run.port("site")
	admin, member := clerk.AdminUser(), clerk.MemberUser()
	clerk.SetBilling(admin.ID, clerktest.Billing{Plans: []string{"u:pro", "o:team"}, Features: []string{"u:export", "o:sso"}})
	f := &fixture{t: t, clerk: clerk}
	adminTok := f.mint(clerktest.TokenOptions{User: &admin})
	adminNoOrg := f.mint(clerktest.TokenOptions{User: &admin, NoOrg: true})
	memberTok := f.mint(clerktest.TokenOptions{User: &member})

	upstreamSaw := func(t *testing.T, r billingResp) map[string]string {
		t.Helper()
		var h map[string]string
		if r.status != 200 || json.Unmarshal([]byte(r.body), &h) != nil {
			t.Fatalf("not an upstream answer: %d %q", r.status, r.body)
		}
		return h
	}
	refused := func(t *testing.T, r billingResp, status int, reason string) {
		t.Helper()
		// handle_errors writes these, with {clerk.reason} in the body.
		if want := fmt.Sprintf("%d %s", status, reason); r.status != status || r.body != want {
			t.Fatalf("want %s, got %d %q", want, r.status, r.body)
		}
	}

	t.Run("plans", func(t *testing.T) {
		h := upstreamSaw(t, billingGet(t, site+"/paid/x", bearer(adminTok)))
		if h["X-Clerk-Plans"] != "u:pro,o:team" || h["X-Clerk-Features"] != "o:invoices,u:export,o:sso" || h["X-Clerk-User-Id"] != admin.ID {
			t.Fatalf("placeholders %v", h)
		}
		refused(t, billingGet(t, site+"/paid/x", bearer(memberTok)), 403, "missing-plan")
		// o:team is the organization's plan: only with it active, and
		// never as the user's.
		upstreamSaw(t, billingGet(t, site+"/team/x", bearer(adminTok)))
		refused(t, billingGet(t, site+"/team/x", bearer(adminNoOrg)), 403, "missing-plan")
		refused(t, billingGet(t, site+"/userteam/x", bearer(adminTok)), 403, "missing-plan")
	})

	t.Run("features: every line must hold", func(t *testing.T) {
		upstreamSaw(t, billingGet(t, site+"/export/x", bearer(adminTok)))
		refused(t, billingGet(t, site+"/export/x", bearer(adminNoOrg)), 403, "missing-feature") // no o:sso without the org
		refused(t, billingGet(t, site+"/export/x", bearer(memberTok)), 403, "missing-feature")
	})

	t.Run("reverification", func(t *testing.T) {
		// Signed in a minute ago without a second factor: fresh.
		upstreamSaw(t, billingGet(t, site+"/settings/x", bearer(memberTok)))

		clerk.SetFactorAge(member.ID, 0, 9)
		upstreamSaw(t, billingGet(t, site+"/settings/x", bearer(f.mint(clerktest.TokenOptions{User: &member}))))

		before := scraped(t, "caddy_clerk_requests_total", "outcome", outcomeForbidden, "reason", "reverification-error")
		clerk.SetFactorAge(member.ID, 0, 10)
		stale := f.mint(clerktest.TokenOptions{User: &member})
		r := billingGet(t, site+"/settings/x", bearer(stale))
		const want = `{"clerk_error":{"type":"forbidden","reason":"reverification-error","metadata":{"reverification":"strict"}}}`
		if r.status != 403 || r.body != want || r.header.Get("Content-Type") != "application/json" ||
			r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Reason") != "reverification-error" {
			t.Fatalf("%d %q %v", r.status, r.body, r.header)
		}
		if hint, level := reverificationHint(r.body); !hint || level != "second_factor" {
			t.Fatalf("clerk-js reads hint %v, level %q", hint, level)
		}
		if d := scraped(t, "caddy_clerk_requests_total", "outcome", outcomeForbidden, "reason", "reverification-error") - before; d != 1 {
			t.Fatalf("counted %v times", d)
		}

		// A custom level names itself in the metadata.
		r = billingGet(t, site+"/custom/x", bearer(stale))
		if r.status != 403 || !strings.Contains(r.body, `"metadata":{"reverification":{"level":"second_factor","afterMinutes":5}}`) {
			t.Fatalf("%d %q", r.status, r.body)
		}
		if hint, level := reverificationHint(r.body); !hint || level != "second_factor" {
			t.Fatalf("clerk-js reads hint %v, level %q", hint, level)
		}
		// The other refusals are no hint to clerk-js.
		if hint, _ := reverificationHint(billingGet(t, site+"/paid/x", bearer(stale)).body); hint {
			t.Fatal("missing-plan reads as a reverification hint")
		}
	})

	t.Run("plan, then reverification: the user is not asked to verify for nothing", func(t *testing.T) {
		clerk.SetFactorAge(admin.ID, 120, 120)
		stale := f.mint(clerktest.TokenOptions{User: &admin})
		refused(t, billingGet(t, site+"/mixed/x", bearer(stale)), 403, "missing-plan")
		refused(t, billingGet(t, site+"/mixed/x", bearer(memberTok)), 403, "missing-role")
	})

	t.Run("machines never hold them", func(t *testing.T) {
		machine := clerk.CreateMachine()
		m2m := clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: machine.ID, Claims: map[string]any{"fea": "u:export", "fva": []int{0, 0}}})
		key := clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: admin.ID, Scopes: []string{"read"}})
		for _, tok := range []string{m2m, key.Secret} {
			refused(t, billingGet(t, site+"/machines/x", bearer(tok)), 403, "missing-feature")
			r := billingGet(t, site+"/machines-rv/x", bearer(tok))
			if r.status != 403 || r.header.Get("X-Reason") != "reverification-error" {
				t.Fatalf("%d %q", r.status, r.body)
			}
		}
		// The same routes take the session that holds them.
		upstreamSaw(t, billingGet(t, site+"/machines/x", bearer(adminTok)))
	})

	t.Run("anonymous: sign in or 401 as ever", func(t *testing.T) {
		for _, path := range []string{"/paid/x", "/settings/x", "/export/x"} {
			r := billingGet(t, site+path, map[string]string{"Sec-Fetch-Dest": "document", "Cookie": devBrowser})
			if r.status != 307 || !strings.HasPrefix(r.header.Get("Location"), clerk.AccountsURL()+"/sign-in") {
				t.Fatalf("%s page load: %d %v", path, r.status, r.header.Get("Location"))
			}
			refused(t, billingGet(t, site+path, nil), 401, "session-token-and-uat-missing")
		}
		// A client cannot pose as a paying user: the placeholders are known
		// and empty, so header_up clears what it sent.
		h := upstreamSaw(t, billingGet(t, site+"/open/x", map[string]string{"X-Clerk-Plans": "u:pro", "X-Clerk-Features": "u:export"}))
		if h["X-Clerk-Plans"] != "" || h["X-Clerk-Features"] != "" {
			t.Fatalf("anonymous placeholders %v", h)
		}
	})
}
