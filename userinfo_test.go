package caddyclerk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-clerk/caddy-clerk/bapi"
	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

// userinfoConfig: {{info}} with secret_key (profiles from the emulator's
// Backend API), {{nokey}} without, {{opt}} optional, {{pend}}
// allow_pending and machine tokens; all answer userinfo_path /.clerk/me,
// which {{info}} also excludes (it is answered all the same).
func userinfoConfig(clerk *clerktest.Server) string {
	site := func(port, lines string) string {
		return fmt.Sprintf(`http://127.0.0.1:{{%s}} {
	clerk {
		publishable_key %s
		frontend_api_url %s
		sign_in_url %s/sign-in
		userinfo_path /.clerk/me
		%s
	}
	respond "page"
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, port, clerk.PublishableKey(), clerk.FrontendAPIURL(), clerk.AccountsURL(), lines)
	}
	key := fmt.Sprintf("secret_key %s\n\t\tapi_url %s", clerk.SecretKey(), clerk.URL())
	return site("info", key+"\n\t\texclude /.clerk/*") + site("nokey", "") + site("opt", key+"\n\t\toptional") +
		site("pend", key+"\n\t\tallow_pending\n\t\taccept session_token m2m_token")
}

// TestUserinfo: every answer of userinfo_path through Caddy.
func TestUserinfo(t *testing.T) {
	clerk := clerktest.NewT(t)
	run := startCaddy(t, "", userinfoConfig(clerk))
	f := &fixture{t: t, clerk: clerk, client: testClient(true), caddy: run}
	ada, bob := clerk.AdminUser(), clerk.MemberUser()
	adaTok := f.mint(clerktest.TokenOptions{User: &ada, Lifetime: time.Hour, Plan: "u:pro", Features: []string{"u:ai"}})
	get := func(site, method string, header map[string]string) (*http.Response, map[string]any, string) {
		t.Helper()
		resp, body := f.do(method, run.url(site)+"/.clerk/me", header)
		var v map[string]any
		if resp.StatusCode == 200 && method == "GET" {
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", resp.Header)
			}
		}
		return resp, v, body
	}
	wantJSON := func(v map[string]any, want string) {
		t.Helper()
		got, _ := json.Marshal(v)
		var w map[string]any
		_ = json.Unmarshal([]byte(want), &w)
		wantB, _ := json.Marshal(w)
		if string(got) != string(wantB) {
			t.Fatalf("got  %s\nwant %s", got, wantB)
		}
	}
	org := fmt.Sprintf(`{"id":%q,"slug":"acme","role":"org:admin","permissions":["org:invoices:read","org:invoices:manage"]}`, ada.Org.ID)

	t.Run("signed in, with the profile, once from the Backend API", func(t *testing.T) {
		clerk.ResetCounts()
		for range 3 {
			resp, v, body := get("info", "GET", bearer(adaTok))
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			sid := v["session_id"].(string)
			wantJSON(v, fmt.Sprintf(`{"token_type":"session_token","user_id":%q,"session_id":%q,"session_status":"active",
				"organization":%s,"plans":["u:pro"],"features":["o:invoices","u:ai"],"actor":null,
				"user":{"first_name":"Ada","last_name":"Lovelace","username":"ada","primary_email_address":"ada@example.com",
				"image_url":"https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9"}}`, ada.ID, sid, org))
		}
		if n := clerk.Requests(clerktest.BAPIUsers); n != 1 {
			t.Fatalf("%d Backend API calls for three answers", n)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		resp, _, body := get("info", "HEAD", bearer(adaTok))
		if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") == "0" {
			t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("other methods", func(t *testing.T) {
		for _, m := range []string{"POST", "DELETE"} {
			resp, _, body := get("info", m, bearer(adaTok))
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || body != "405 " {
				t.Fatalf("%s: %d %q %v", m, resp.StatusCode, body, resp.Header)
			}
		}
	})
	t.Run("not signed in: 401, never a redirect", func(t *testing.T) {
		for _, site := range []string{"info", "opt"} {
			for _, h := range []map[string]string{nil, page("__clerk_db_jwt=dvb_1"), page("__clerk_db_jwt=dvb_1", "__client_uat=1"),
				page("__clerk_db_jwt=dvb_1", "__session="+f.mint(clerktest.TokenOptions{User: &ada, Lifetime: -time.Minute}), "__client_uat=1")} {
				resp, _, body := get(site, "GET", h)
				if resp.StatusCode != 401 || resp.Header.Get("Location") != "" || !strings.HasPrefix(body, "401 ") || body == "401 " {
					t.Fatalf("%s %v: %d %q %v", site, h, resp.StatusCode, body, resp.Header)
				}
			}
		}
		// The rest of the site still redirects page loads.
		if resp, _ := f.do("GET", run.url("info")+"/", page("__clerk_db_jwt=dvb_1")); resp.StatusCode != 307 {
			t.Fatalf("page: %d", resp.StatusCode)
		}
	})
	t.Run("pending", func(t *testing.T) {
		tok := f.mint(clerktest.TokenOptions{User: &bob, Pending: true, NoOrg: true})
		if resp, _, body := get("info", "GET", bearer(tok)); resp.StatusCode != 401 || body != "401 session-pending" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		resp, v, _ := get("pend", "GET", bearer(tok))
		if resp.StatusCode != 200 || v["session_status"] != "pending" || v["organization"] != nil {
			t.Fatalf("allow_pending: %d %v", resp.StatusCode, v)
		}
	})
	t.Run("impersonated", func(t *testing.T) {
		tok := f.mint(clerktest.TokenOptions{User: &bob, Actor: &clerktest.Actor{Subject: "user_support", Issuer: "https://dashboard.clerk.com", SessionID: "sess_support"}})
		_, v, _ := get("info", "GET", bearer(tok))
		act, _ := json.Marshal(v["actor"])
		if string(act) != `{"iss":"https://dashboard.clerk.com","sid":"sess_support","sub":"user_support"}` {
			t.Fatalf("actor %s", act)
		}
	})
	t.Run("without secret_key, and with Clerk down: null profile", func(t *testing.T) {
		_, v, _ := get("nokey", "GET", bearer(adaTok))
		nulls := `{"first_name":null,"image_url":null,"last_name":null,"primary_email_address":null,"username":null}` // sorted, as a map marshals
		if u, _ := json.Marshal(v["user"]); string(u) != nulls || v["user_id"] != ada.ID {
			t.Fatalf("no secret_key: %s", u)
		}
		clerk.SetFault(clerktest.BAPIUsers, clerktest.Status(503))
		defer clerk.SetFault(clerktest.BAPIUsers, clerktest.NoFault)
		carol := clerk.AddUser(clerktest.User{FirstName: "Carol", Email: "carol@example.com"}) // never fetched
		resp, v, body := get("info", "GET", bearer(f.mint(clerktest.TokenOptions{User: &carol})))
		if u, _ := json.Marshal(v["user"]); resp.StatusCode != 200 || string(u) != nulls || v["user_id"] != carol.ID {
			t.Fatalf("Clerk down: %d %s", resp.StatusCode, body)
		}
		// Ada's profile, fetched before, is served from the cache.
		if _, v, _ = get("info", "GET", bearer(adaTok)); v["user"].(map[string]any)["first_name"] != "Ada" {
			t.Fatalf("Clerk down, cached: %v", v["user"])
		}
	})
	t.Run("machine token", func(t *testing.T) {
		machine := clerk.CreateMachine()
		tok := clerk.MustMintM2MJWT(clerktest.M2MJWTOptions{Subject: machine.ID, Scopes: "mch_other"})
		resp, v, body := get("pend", "GET", bearer(tok))
		if resp.StatusCode != 200 || v["token_type"] != "m2m_token" || v["subject"] != machine.ID || v["machine_id"] != machine.ID || v["user"] != nil {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if s, _ := json.Marshal(v["scopes"]); string(s) != `["mch_other"]` {
			t.Fatalf("scopes %s", s)
		}
	})
}

// fakeUsers answers User from a map, counting calls; block holds every
// call until closed.
type fakeUsers struct {
	mu    sync.Mutex
	users map[string]*bapi.User
	err   error
	calls atomic.Int32
	block chan struct{}
}

func (f *fakeUsers) User(ctx context.Context, id string) (*bapi.User, error) {
	f.calls.Add(1)
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if u := f.users[id]; u != nil {
		return u, nil
	}
	return nil, errors.New("not found")
}

// TestProfileCache: fresh for profileTTL, a failure retried after
// profileRetry with the last profile served meanwhile (up to
// profileStale), concurrent misses share one call, the size is bounded.
func TestProfileCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	api := &fakeUsers{users: map[string]*bapi.User{"user_1": {ID: "user_1", FirstName: "Ada",
		PrimaryEmailAddressID: "idn_2", EmailAddresses: []bapi.EmailAddress{{ID: "idn_1", EmailAddress: "old@example.com"}, {ID: "idn_2", EmailAddress: "ada@example.com"}}}}}
	pc := newProfileCache(api, zap.NewNop())
	pc.now = func() time.Time { return now }
	ctx := context.Background()
	name := func(p profile) string {
		if p.FirstName == nil {
			return "null"
		}
		return *p.FirstName + " " + *p.PrimaryEmailAddress
	}
	step := func(what string, advance time.Duration, want string, calls int32) {
		t.Helper()
		now = now.Add(advance)
		if got := name(pc.get(ctx, "user_1")); got != want || api.calls.Load() != calls {
			t.Fatalf("%s: %q after %d calls, want %q after %d", what, got, api.calls.Load(), want, calls)
		}
	}
	step("first", 0, "Ada ada@example.com", 1)
	step("fresh", profileTTL-time.Second, "Ada ada@example.com", 1)
	api.err = &bapi.Error{Status: 503}
	step("stale, Clerk down", 2*time.Second, "Ada ada@example.com", 2)
	step("no call before the retry", profileRetry-time.Second, "Ada ada@example.com", 2)
	step("too old to show", profileStale, "null", 3)
	api.err = nil
	step("Clerk back", profileRetry, "Ada ada@example.com", 4)

	// Concurrent misses: one call.
	api.block = make(chan struct{})
	now = now.Add(profileTTL + time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); pc.get(ctx, "user_1") }()
	}
	for api.calls.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the others join the flight
	close(api.block)
	wg.Wait()
	if n := api.calls.Load(); n != 5 {
		t.Fatalf("%d calls for 8 concurrent misses", n-4)
	}
	api.block = nil

	// Bounded.
	for i := range profileEntries + 10 {
		pc.get(ctx, fmt.Sprintf("user_x%d", i))
	}
	if n := pc.entries.Len(); n > profileEntries {
		t.Fatalf("%d entries", n)
	}
	var nilCache *profileCache
	if p := nilCache.get(ctx, "user_1"); p.FirstName != nil {
		t.Fatal("a nil cache has profiles")
	}
}

// TestUserinfoSetting: the Caddyfile names the line, JSON configs get the
// same checks from Provision.
func TestUserinfoSetting(t *testing.T) {
	const pk = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"
	for _, tc := range []struct{ input, want string }{
		{"userinfo_path me", `userinfo_path "me" must be a path starting with /`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfileDispenser("clerk {\n publishable_key " + pk + "\n " + tc.input + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "Testfile:3") {
			t.Fatalf("%s: %v", tc.input, err)
		}
	}
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{PublishableKey: pk, UserinfoPath: "me"}, `userinfo_path "me" must be a path`},
		{Handler{PublishableKey: pk, SecretKey: "sk_test_x", UserinfoPath: "/me", SignOutPath: "/me"}, "give each its own path"},
		{Handler{PublishableKey: pk, UserinfoPath: "/me", ForwardedRequest: true}, "userinfo_path does not work with forwarded_request"},
	} {
		if err := provisionErr(tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%+v: %v", tc.h, err)
		}
	}
}
