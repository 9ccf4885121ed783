package caddyclerk

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// machineHeaders hand every machine placeholder to the upstream.
const machineHeaders = `
			header_up X-Token-Type {clerk.token_type}
			header_up X-Subject {clerk.subject}
			header_up X-Token-Id {clerk.token_id}
			header_up X-Machine-Id {clerk.machine_id}
			header_up X-Client-Id {clerk.client_id}
			header_up X-Scopes {clerk.scopes}
			header_up X-Key-Name {clerk.api_key_name}
			header_up X-User-Id {clerk.user_id}
			header_up X-Org-Id {clerk.org_id}
			header_up X-Auth-User {http.auth.user.id}
			header_up X-Tier {clerk.claims.tier}`

// machineSite is one Caddy site with a route per accept setting, every
// route handing the machine placeholders upstream.
func machineSite(t *testing.T, clerk *clerktest.Server, upstream string) *caddyRun {
	keys := fmt.Sprintf(`publishable_key %s
			secret_key %s
			api_url %s
			frontend_api_url %s`, clerk.PublishableKey(), clerk.SecretKey(), clerk.URL(), clerk.FrontendAPIURL())
	route := func(path, lines string) string {
		return fmt.Sprintf(`
	route %s {
		clerk {
			%s
			%s
		}
		reverse_proxy %s {%s
		}
	}`, path, keys, lines, upstream, machineHeaders)
	}
	return startCaddy(t, "", `http://127.0.0.1:{{api}} {
	bind 127.0.0.1`+
		route("/any/*", "accept any")+
		route("/keys/*", "accept api_key\n\t\t\trequire_scope read")+
		route("/sessions/*", "")+
		route("/ttl/*", "accept api_key\n\t\t\tmachine_cache_ttl 300ms\n\t\t\tmachine_stale_if_error 2s")+
		route("/limited/*", "accept api_key\n\t\t\tmachine_verify_rate 5")+
		route("/claims/*", "accept api_key m2m_token\n\t\t\trequire_claim tier gold")+
		route("/roles/*", "accept any\n\t\t\trequire_role admin")+`
	handle_errors {
		header Retry-After {http.response.header.Retry-After}
		header X-Who {http.auth.user.id}
		header X-Claim {clerk.claims.tier}
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}`)
}

type machineResp struct {
	status int
	body   string
	header http.Header
}

func machineGet(t *testing.T, url, auth string, hdr ...string) machineResp {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testClient(true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return machineResp{resp.StatusCode, string(b), resp.Header}
}

func TestMachineTokens(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := echoUpstream(t)
	run := machineSite(t, clerk, up.URL)
	base := run.url("api")
	f := &fixture{t: t, clerk: clerk}

	machine := clerk.CreateMachine()
	other := clerk.CreateMachine()
	userKey := clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: "user_2abcdefghijklmnopqrstuvwxyz", Name: "ci deploy",
		Scopes: []string{"read", "write"}, Claims: map[string]any{"tier": "gold"}})
	orgKey := clerk.CreateAPIKey(clerktest.APIKeyOptions{Subject: "org_2abcdefghijklmnopqrstuvwxyz", Scopes: []string{"write"}})
	m2m := clerk.CreateM2MToken(clerktest.M2MOptions{Subject: machine.ID, Scopes: []string{other.ID}, Claims: map[string]any{"tier": "gold"}})
	oat := clerk.CreateOAuthToken(clerktest.OAuthOptions{Subject: "user_2oauthuserxxxxxxxxxxxxxxx", ClientID: "client_abc", Scopes: []string{"read", "profile"}})
	m2mJWT := clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: machine.ID, Scopes: other.ID + " " + machine.ID, Claims: map[string]any{"tier": "gold"}})
	oauthJWT := clerk.MustMintOAuthJWT(clerktest.OAuthJWTOptions{Subject: "user_2jwtuser", ClientID: "client_jwt", Scope: "read write"})
	admin := clerk.AdminUser()
	session := f.mint(clerktest.TokenOptions{User: &admin})

	t.Run("placeholders per type", func(t *testing.T) {
		for _, tc := range []struct {
			name, token string
			want        map[string]string
		}{
			{"api key of a user", userKey.Secret, map[string]string{"X-Token-Type": "api_key", "X-Subject": userKey.Subject,
				"X-Token-Id": userKey.ID, "X-Scopes": "read,write", "X-Key-Name": "ci deploy", "X-User-Id": userKey.Subject,
				"X-Org-Id": "", "X-Machine-Id": "", "X-Client-Id": "", "X-Auth-User": userKey.Subject, "X-Tier": "gold"}},
			{"api key of an organization", orgKey.Secret, map[string]string{"X-Token-Type": "api_key", "X-User-Id": "",
				"X-Org-Id": orgKey.Subject, "X-Auth-User": orgKey.Subject, "X-Tier": ""}},
			{"opaque M2M", m2m.Secret, map[string]string{"X-Token-Type": "m2m_token", "X-Subject": machine.ID, "X-Machine-Id": machine.ID,
				"X-Token-Id": m2m.ID, "X-Scopes": other.ID, "X-User-Id": "", "X-Auth-User": machine.ID, "X-Tier": "gold"}},
			{"opaque OAuth", oat.Secret, map[string]string{"X-Token-Type": "oauth_token", "X-Subject": oat.Subject, "X-User-Id": oat.Subject,
				"X-Client-Id": "client_abc", "X-Token-Id": oat.ID, "X-Scopes": "read,profile", "X-Machine-Id": ""}},
			{"M2M JWT", m2mJWT, map[string]string{"X-Token-Type": "m2m_token", "X-Machine-Id": machine.ID,
				"X-Scopes": other.ID + "," + machine.ID, "X-Tier": "gold"}},
			{"OAuth JWT", oauthJWT, map[string]string{"X-Token-Type": "oauth_token", "X-User-Id": "user_2jwtuser", "X-Client-Id": "client_jwt",
				"X-Scopes": "read,write"}},
			{"session", session, map[string]string{"X-Token-Type": "session_token", "X-Subject": admin.ID, "X-User-Id": admin.ID,
				"X-Auth-User": admin.ID, "X-Machine-Id": "", "X-Scopes": ""}},
		} {
			r := machineGet(t, base+"/any/x", "Bearer "+tc.token, "X-Token-Type", "spoofed", "X-Machine-Id", "mch_spoofed")
			if r.status != 200 {
				t.Fatalf("%s: %d %s", tc.name, r.status, r.body)
			}
			saw := f.upstreamSaw(r.body)
			for k, v := range tc.want {
				if saw[k] != v {
					t.Errorf("%s: %s = %q, want %q", tc.name, k, saw[k], v)
				}
			}
		}
	})

	t.Run("answers", func(t *testing.T) {
		for _, tc := range []struct {
			path, auth string
			hdr        []string
			want       string
		}{
			{"/sessions/x", "Bearer " + userKey.Secret, nil, "401 token-type-mismatch"},
			{"/sessions/x", "Bearer " + m2mJWT, nil, "401 token-type-mismatch"},
			{"/sessions/x", "Bearer " + oauthJWT, nil, "401 token-type-mismatch"},
			{"/keys/x", "", nil, "401 machine-token-missing"},
			{"/keys/x", "", []string{"Sec-Fetch-Dest", "document", "Cookie", "__session=" + session + "; __client_uat=1"}, "401 machine-token-missing"},
			{"/keys/x", "Bearer " + session, nil, "401 token-type-mismatch"},
			{"/keys/x", "Bearer " + m2m.Secret, nil, "401 token-type-mismatch"},
			{"/keys/x", "Bearer " + orgKey.Secret, nil, "403 missing-scope"},
			{"/keys/x", userKey.Secret, nil, "200"}, // a bare token, as Clerk reads it
			{"/keys/x", "Bearer ak_" + strings.Repeat("0", 40), nil, "401 token-invalid"},
			{"/any/x", "Bearer mt_" + strings.Repeat("f", 32), nil, "401 token-invalid"},
			{"/claims/x", "Bearer " + userKey.Secret, nil, "200"},
			{"/claims/x", "Bearer " + orgKey.Secret, nil, "403 claim-mismatch"},
			{"/claims/x", "Bearer " + m2m.Secret, nil, "200"},
			{"/roles/x", "Bearer " + userKey.Secret, nil, "403 missing-role"},
			{"/roles/x", "Bearer " + session, nil, "200"},
		} {
			r := machineGet(t, base+tc.path, tc.auth, tc.hdr...)
			got := fmt.Sprint(r.status)
			if r.status != 200 {
				got = r.body
			}
			if got != tc.want {
				t.Errorf("%s %.20q: %s, want %s", tc.path, tc.auth, got, tc.want)
			}
			if r.status == 401 && r.header.Get("Location") != "" {
				t.Errorf("%s: a machine route redirected", tc.path)
			}
		}
	})

	t.Run("a refusal shows who it was, not the claims", func(t *testing.T) {
		r := machineGet(t, base+"/roles/x", "Bearer "+userKey.Secret)
		if r.body != "403 missing-role" || r.header.Get("X-Who") != userKey.Subject || r.header.Get("X-Claim") != "" {
			t.Fatalf("%s, X-Who %q, X-Claim %q", r.body, r.header.Get("X-Who"), r.header.Get("X-Claim"))
		}
	})

	t.Run("one Backend API call per token", func(t *testing.T) {
		key := clerk.CreateAPIKey(clerktest.APIKeyOptions{Scopes: []string{"read"}})
		count := func(result string) float64 {
			return scraped(t, "caddy_clerk_machine_verifications_total", "type", "api_key", "result", result)
		}
		okBefore, cachedBefore, invalidBefore := count("ok"), count("cached"), count("invalid")
		before := clerk.Requests(clerktest.BAPIAPIKeyVerify)
		var wg sync.WaitGroup
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := machineGet(t, base+"/keys/x", "Bearer "+key.Secret); r.status != 200 {
					t.Errorf("%d %s", r.status, r.body)
				}
			}()
		}
		wg.Wait()
		if n := clerk.Requests(clerktest.BAPIAPIKeyVerify) - before; n != 1 {
			t.Fatalf("%d Backend API calls for one key used 40 times", n)
		}
		// An unknown key is remembered as unknown.
		before = clerk.Requests(clerktest.BAPIAPIKeyVerify)
		for i := 0; i < 10; i++ {
			machineGet(t, base+"/keys/x", "Bearer ak_unknownunknownunknown")
		}
		if n := clerk.Requests(clerktest.BAPIAPIKeyVerify) - before; n != 1 {
			t.Fatalf("%d Backend API calls for one unknown key", n)
		}
		if ok, cached, invalid := count("ok")-okBefore, count("cached")-cachedBefore, count("invalid")-invalidBefore; ok+cached != 40 || ok < 1 || invalid != 10 {
			t.Fatalf("caddy_clerk_machine_verifications_total: ok %v, cached %v, invalid %v", ok, cached, invalid)
		}
	})

	t.Run("revocation within the TTL", func(t *testing.T) {
		key := clerk.CreateAPIKey(clerktest.APIKeyOptions{})
		if r := machineGet(t, base+"/ttl/x", "Bearer "+key.Secret); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		clerk.RevokeMachineToken(key.Secret)
		if r := machineGet(t, base+"/ttl/x", "Bearer "+key.Secret); r.status != 200 {
			t.Fatalf("within the TTL: %d %s", r.status, r.body)
		}
		time.Sleep(400 * time.Millisecond)
		if r := machineGet(t, base+"/ttl/x", "Bearer "+key.Secret); r.body != "401 token-invalid" {
			t.Fatalf("after the TTL: %d %s", r.status, r.body)
		}
	})

	t.Run("outage", func(t *testing.T) {
		known := clerk.CreateAPIKey(clerktest.APIKeyOptions{})
		unseen := clerk.CreateAPIKey(clerktest.APIKeyOptions{})
		if r := machineGet(t, base+"/ttl/x", "Bearer "+known.Secret); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		clerk.Down()
		defer clerk.Up()
		time.Sleep(400 * time.Millisecond) // past the TTL: Clerk is asked, and fails
		if r := machineGet(t, base+"/ttl/x", "Bearer "+known.Secret); r.status != 200 {
			t.Fatalf("a key verified 0.4 s ago during an outage: %d %s", r.status, r.body)
		}
		r := machineGet(t, base+"/ttl/x", "Bearer "+unseen.Secret)
		if r.body != "503 machine-verify-unavailable" || r.header.Get("Retry-After") == "" {
			t.Fatalf("an unseen key during an outage: %d %q Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
		}
		time.Sleep(2 * time.Second) // past machine_stale_if_error
		if r := machineGet(t, base+"/ttl/x", "Bearer "+known.Secret); r.body != "503 machine-verify-unavailable" {
			t.Fatalf("past stale-if-error: %d %s", r.status, r.body)
		}
		clerk.Up()
		if r := machineGet(t, base+"/ttl/x", "Bearer "+unseen.Secret); r.status != 200 {
			t.Fatalf("after the outage: %d %s", r.status, r.body)
		}
	})

	t.Run("random-key spray is bounded", func(t *testing.T) {
		known := clerk.CreateAPIKey(clerktest.APIKeyOptions{})
		if r := machineGet(t, base+"/limited/x", "Bearer "+known.Secret); r.status != 200 {
			t.Fatal(r.body)
		}
		before := clerk.Requests(clerktest.BAPIAPIKeyVerify)
		start := time.Now()
		limited := 0
		for i := 0; i < 200; i++ {
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			r := machineGet(t, base+"/limited/x", "Bearer ak_"+hex.EncodeToString(b))
			switch r.body {
			case "503 machine-verify-rate-limited":
				limited++
				if r.header.Get("Retry-After") != "1" {
					t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
				}
			case "401 token-invalid":
			default:
				t.Fatalf("spray: %d %s", r.status, r.body)
			}
		}
		elapsed := time.Since(start).Seconds()
		calls := clerk.Requests(clerktest.BAPIAPIKeyVerify) - before
		if max := 10 + int(5*elapsed) + 1; calls > max || limited == 0 {
			t.Fatalf("%d Backend API calls in %.1f s (bound %d), %d limited", calls, elapsed, max, limited)
		}
		if r := machineGet(t, base+"/limited/x", "Bearer "+known.Secret); r.status != 200 {
			t.Fatalf("a cached key during the spray: %d %s", r.status, r.body)
		}
	})
}

// TestMachineHostile: odd machine-token shapes and races never produce a
// 5xx other than the documented 503s, never a panic, never a pass.
func TestMachineHostile(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := echoUpstream(t)
	run := machineSite(t, clerk, up.URL)
	base := run.url("api")
	machine := clerk.CreateMachine()
	admin := clerk.AdminUser()
	odd := []string{
		"ak_", "mt_", "oat_", "ak_ spaced token", "ak_a.b.c", "mt_x.y.z", "oat_" + strings.Repeat("A", 8<<10),
		"ak_" + strings.Repeat("z", 5000), "ak_nul\x00byte", "ak_%00", "ak_\u00e9\u00e9", "mt_" + strings.Repeat(".", 40),
		"ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=",
		// typ at+jwt and sub mch_: M2M by Clerk's order, then its typ is wrong.
		clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: machine.ID, Header: clerktest.HeaderOptions{Typ: "at+jwt"}}),
		// machine JWTs wearing a session category, or the ignore one.
		clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: machine.ID, Header: clerktest.HeaderOptions{Cat: "cl_B7d4PD111AAA"}}),
		clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: machine.ID, Header: clerktest.HeaderOptions{Cat: "cl_I7d4PD111III"}}),
		// a session with an M2M category; an OAuth JWT signed by another key.
		clerk.MustMint(clerktest.TokenOptions{User: &admin, Header: clerktest.HeaderOptions{Cat: "cl_B7d4PD333AAA"}}),
		clerk.MustMintOAuthJWT(clerktest.OAuthJWTOptions{Subject: "user_x", SigningKey: clerktest.GenerateKey()}),
	}
	for _, path := range []string{"/any/x", "/keys/x", "/sessions/x"} {
		for _, tok := range odd {
			for _, auth := range []string{"Bearer " + tok, tok} {
				if strings.ContainsAny(auth, "\x00") {
					continue // not a valid header value: Go's client refuses to send it
				}
				r := machineGet(t, base+path, auth)
				if r.status == 200 || (r.status >= 500 && !strings.HasPrefix(r.body, "503 machine-verify")) || r.status == 0 {
					t.Errorf("%s %.40q: %d %s", path, auth, r.status, r.body)
				}
			}
		}
	}
	// Raw bytes a Go client will not send: a NUL in the token.
	raw := hostileSend(t, run.addr("api"), hostileReq("GET", "/any/x", run.addr("api"), "Authorization", "Bearer ak_nul\x00byte"))
	if raw.status == 200 || raw.status >= 500 {
		t.Errorf("NUL in a machine token: %d", raw.status)
	}

	// A key revoked while requests race its cache entry: each answer is a
	// pass (cached) or token-invalid, and after the TTL only token-invalid.
	key := clerk.CreateAPIKey(clerktest.APIKeyOptions{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				if i == 0 && j == 10 {
					clerk.RevokeMachineToken(key.Secret)
				}
				if r := machineGet(t, base+"/ttl/x", "Bearer "+key.Secret); r.status != 200 && r.body != "401 token-invalid" {
					t.Errorf("racing a revocation: %d %s", r.status, r.body)
				}
			}
		}(i)
	}
	wg.Wait()
	time.Sleep(400 * time.Millisecond)
	if r := machineGet(t, base+"/ttl/x", "Bearer "+key.Secret); r.body != "401 token-invalid" {
		t.Fatalf("after the TTL: %d %s", r.status, r.body)
	}
}
