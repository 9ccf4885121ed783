package clerktest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	machineIDRE = regexp.MustCompile(`^mch_\w{27}$`)
	akSecretRE  = regexp.MustCompile(`^ak_[A-Za-z0-9+/]{43}=$`)
)

type verifyEndpoint struct {
	e      Endpoint
	path   string
	field  string
	object string
	keys   string // the 200's members, sorted
	create func(s *Server) MachineToken
}

var verifyEndpoints = []verifyEndpoint{
	{BAPIM2MVerify, "/m2m_tokens/verify", "token", "machine_to_machine_token",
		"claims,created_at,expiration,expired,id,last_used_at,object,revocation_reason,revoked,scopes,subject,updated_at",
		func(s *Server) MachineToken { return s.CreateM2MToken(M2MOptions{}) }},
	{BAPIAPIKeyVerify, "/api_keys/verify", "secret", "api_key",
		"claims,created_at,created_by,description,expiration,expired,id,last_used_at,name,object,revocation_reason,revoked,scopes,subject,type,updated_at",
		func(s *Server) MachineToken { return s.CreateAPIKey(APIKeyOptions{}) }},
	{BAPIOAuthVerify, "/oauth_applications/access_tokens/verify", "access_token", "clerk_idp_oauth_access_token",
		"client_id,created_at,expiration,expired,id,object,revocation_reason,revoked,scopes,subject,updated_at",
		func(s *Server) MachineToken { return s.CreateOAuthToken(OAuthOptions{}) }},
}

func verifyBody(field, secret string) string { return fmt.Sprintf(`{%q:%q}`, field, secret) }

func TestCreateMachineTokens(t *testing.T) {
	s := newServer(t, WithClock(func() time.Time { return fixedNow }))
	m := s.CreateMachine()
	if !machineIDRE.MatchString(m.ID) || !akSecretRE.MatchString(m.SecretKey) {
		t.Fatalf("machine %+v", m)
	}

	slashes := 0
	for range 50 {
		k := s.CreateAPIKey(APIKeyOptions{})
		if !akSecretRE.MatchString(k.Secret) || !regexp.MustCompile(`^ak_[0-9a-f]{32}$`).MatchString(k.ID) {
			t.Fatalf("api key %q id %q", k.Secret, k.ID)
		}
		if strings.ContainsAny(k.Secret, "/+") {
			slashes++
		}
		if k.Type != "api_key" || !regexp.MustCompile(`^user_\w{27}$`).MatchString(k.Subject) || k.Name == "" ||
			k.Scopes == nil || k.Claims != nil || !k.Expiration.IsZero() || !k.CreatedAt.Equal(fixedNow) {
			t.Fatalf("defaults %+v", k)
		}
	}
	if slashes < 10 {
		t.Fatalf("only %d of 50 API keys hold / or +", slashes)
	}

	mt := s.CreateM2MToken(M2MOptions{})
	if !regexp.MustCompile(`^mt_[0-9A-Za-z]{35}$`).MatchString(mt.Secret) || !regexp.MustCompile(`^mt_[0-9a-f]{32}$`).MatchString(mt.ID) ||
		!machineIDRE.MatchString(mt.Subject) || mt.Type != "m2m_token" || len(mt.GrantedTo) != 0 {
		t.Fatalf("m2m %+v", mt)
	}
	ot := s.CreateOAuthToken(OAuthOptions{})
	if !regexp.MustCompile(`^oat_[0-9A-Za-z]{35}$`).MatchString(ot.Secret) || !regexp.MustCompile(`^oat_[0-9a-f]{32}$`).MatchString(ot.ID) ||
		!regexp.MustCompile(`^user_\w{27}$`).MatchString(ot.Subject) || ot.ClientID == "" || ot.Type != "oauth_token" {
		t.Fatalf("oauth %+v", ot)
	}
	for _, tok := range []string{mt.Secret, ot.Secret, m.SecretKey} {
		if strings.Contains(tok, ".") {
			t.Fatalf("%q would look like a JWT", tok)
		}
	}

	// Options are copied; GrantedTo defaults to Scopes.
	scopes := []string{"mch_a"}
	claims := map[string]any{"k": "v"}
	mt = s.CreateM2MToken(M2MOptions{Subject: m.ID, Scopes: scopes, Claims: claims, Expiration: fixedNow.Add(time.Hour)})
	scopes[0], claims["k"] = "mch_b", "w"
	got, ok := s.LookupMachineToken(mt.ID)
	if !ok || got.Subject != m.ID || got.Scopes[0] != "mch_a" || got.GrantedTo[0] != "mch_a" || got.Claims["k"] != "v" ||
		!got.Expiration.Equal(fixedNow.Add(time.Hour)) || got.Secret != mt.Secret {
		t.Fatalf("record %+v", got)
	}
	got.Scopes[0] = "mch_c"
	if again, _ := s.LookupMachineToken(mt.Secret); again.Scopes[0] != "mch_a" {
		t.Fatal("lookup hands out the record")
	}
	if _, ok := s.LookupMachineToken("mt_nope"); ok {
		t.Fatal("unknown token found")
	}
}

func TestMachineVerifyAnswers(t *testing.T) {
	s := newServer(t, WithClock(func() time.Time { return fixedNow }))
	exp := fixedNow.Add(time.Hour)
	mch := NewMachineID()
	created := []MachineToken{
		s.CreateM2MToken(M2MOptions{Subject: mch, Scopes: []string{"mch_1", "mch_2"}, Claims: map[string]any{"foo": "bar"}, Expiration: exp}),
		s.CreateAPIKey(APIKeyOptions{Subject: "org_x", Name: "ci", Description: "for CI", Scopes: []string{"read:foo"}, Claims: map[string]any{"n": 1}}),
		s.CreateOAuthToken(OAuthOptions{Subject: "user_x", ClientID: "cid", Scopes: []string{"read:foo", "write:bar"}, Expiration: exp}),
	}
	for i, v := range verifyEndpoints {
		tok := created[i]
		r := post(t, s.URL()+v.path, s.SecretKey(), verifyBody(v.field, tok.Secret))
		if r.status != 200 || r.header.Get("Clerk-Trace-Id") == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %d %s", v.path, r.status, r.body)
		}
		if !strings.HasPrefix(string(r.body), `{"object":"`+v.object+`","id":"`+tok.ID+`",`) {
			t.Fatalf("%s: member order %s", v.path, r.body)
		}
		m := decodeObject(t, r.body)
		if got := keysOf(m); got != v.keys {
			t.Fatalf("%s: keys %s", v.path, got)
		}
		ms := float64(fixedNow.UnixMilli())
		if m["subject"] != tok.Subject || m["revoked"] != false || m["revocation_reason"] != nil || m["expired"] != false ||
			m["created_at"] != ms || m["updated_at"] != ms || fmt.Sprint(m["scopes"]) != fmt.Sprint(tok.Scopes) {
			t.Fatalf("%s: %s", v.path, r.body)
		}
		if s.Requests(v.e) != 1 {
			t.Fatalf("%s: count %d", v.e, s.Requests(v.e))
		}
	}
	m := decodeObject(t, post(t, s.URL()+"/m2m_tokens/verify", s.SecretKey(), verifyBody("token", created[0].Secret)).body)
	if m["expiration"] != float64(exp.UnixMilli()) || m["claims"].(map[string]any)["foo"] != "bar" || m["last_used_at"] != float64(fixedNow.UnixMilli()) {
		t.Fatalf("m2m %v", m)
	}
	m = decodeObject(t, post(t, s.URL()+"/api_keys/verify", s.SecretKey(), verifyBody("secret", created[1].Secret)).body)
	if m["type"] != "api_key" || m["name"] != "ci" || m["description"] != "for CI" || m["expiration"] != nil ||
		m["created_by"] != nil || m["claims"].(map[string]any)["n"] != 1.0 {
		t.Fatalf("api key %v", m)
	}
	m = decodeObject(t, post(t, s.URL()+"/oauth_applications/access_tokens/verify", s.SecretKey(), verifyBody("access_token", created[2].Secret)).body)
	if m["client_id"] != "cid" || m["expiration"] != float64(exp.UnixMilli()) {
		t.Fatalf("oauth %v", m)
	}
	// Absent scopes and claims: [] and null.
	m = decodeObject(t, post(t, s.URL()+"/api_keys/verify", s.SecretKey(), verifyBody("secret", s.CreateAPIKey(APIKeyOptions{}).Secret)).body)
	if m["claims"] != nil || fmt.Sprint(m["scopes"]) != "[]" || m["description"] != nil || m["last_used_at"] == nil {
		t.Fatalf("defaults %v", m)
	}
}

func TestMachineVerifyErrors(t *testing.T) {
	s := newServer(t)
	mach := s.CreateMachine()
	tokens := map[Endpoint]MachineToken{}
	for _, v := range verifyEndpoints {
		tokens[v.e] = v.create(s)
	}
	for _, v := range verifyEndpoints {
		u := s.URL() + v.path
		good := verifyBody(v.field, tokens[v.e].Secret)
		// The key is checked first.
		for _, bearer := range []string{"", "sk_test_wrong", s.SecretKey() + "x", "ak_" + strings.Repeat("x", 44)} {
			wantClerkError(t, post(t, u, bearer, good), 401, "clerk_key_invalid")
			wantClerkError(t, post(t, u, bearer, "not json"), 401, "clerk_key_invalid")
		}
		if v.e != BAPIM2MVerify {
			wantClerkError(t, post(t, u, mach.SecretKey, good), 401, "clerk_key_invalid")
		}
		// Then the body.
		for _, body := range []string{"", "not json", "[]", "null", `{"x":1} {}`, `{"` + v.field + `":"a"`} {
			wantClerkError(t, post(t, u, s.SecretKey(), body), 400, "request_body_invalid")
		}
		for _, body := range []string{"{}", `{"` + v.field + `":""}`, `{"` + v.field + `":1}`, `{"` + v.field + `":null}`,
			verifyBody("x"+v.field, tokens[v.e].Secret)} {
			r := post(t, u, s.SecretKey(), body)
			wantClerkError(t, r, 400, "form_param_missing")
			e := decodeObject(t, r.body)["errors"].([]any)[0].(map[string]any)
			if e["meta"].(map[string]any)["param_name"] != v.field {
				t.Fatalf("meta %v", e["meta"])
			}
		}
		wantClerkError(t, post(t, u, s.SecretKey(), `{"`+v.field+`":"`+strings.Repeat("a", maxVerifyBody)+`"}`), 400, "request_body_invalid")
		// Then the token: unknown, or another type's.
		for _, secret := range []string{"ak_nope", "mt_nope", "oat_nope", "x"} {
			r := post(t, u, s.SecretKey(), verifyBody(v.field, secret))
			wantClerkError(t, r, 404, "resource_not_found")
		}
		for _, other := range verifyEndpoints {
			if other.e != v.e {
				wantClerkError(t, post(t, u, s.SecretKey(), verifyBody(v.field, tokens[other.e].Secret)), 404, "resource_not_found")
			}
		}
		// GET is not a route.
		if r := get(t, u, s.SecretKey()); r.status != 404 {
			t.Fatalf("GET %s: %d", v.path, r.status)
		}
	}
	// OAuth's deprecated "secret" field is not taken: our client must send
	// access_token.
	wantClerkError(t, post(t, s.URL()+"/oauth_applications/access_tokens/verify", s.SecretKey(),
		verifyBody("secret", tokens[BAPIOAuthVerify].Secret)), 400, "form_param_missing")
	// The 404 says which kind was not found, as Clerk's SDK reports it.
	e := decodeObject(t, post(t, s.URL()+"/api_keys/verify", s.SecretKey(), verifyBody("secret", "ak_nope")).body)["errors"].([]any)[0].(map[string]any)
	if e["long_message"] != "API key not found" {
		t.Fatalf("%v", e)
	}
	// Nothing under /v1.
	if r := post(t, s.BackendAPIURL()+"/api_keys/verify", s.SecretKey(), verifyBody("secret", tokens[BAPIAPIKeyVerify].Secret)); r.status != 404 {
		t.Fatalf("/v1: %d", r.status)
	}
}

func TestM2MMachineKeys(t *testing.T) {
	s := newServer(t)
	a, b, c := s.CreateMachine(), s.CreateMachine(), s.CreateMachine()
	u := s.URL() + "/m2m_tokens/verify"
	tok := s.CreateM2MToken(M2MOptions{Subject: a.ID, Scopes: []string{b.ID}})
	body := verifyBody("token", tok.Secret)
	for key, want := range map[string]int{s.SecretKey(): 200, b.SecretKey: 200, c.SecretKey: 404, a.SecretKey: 404} {
		if r := post(t, u, key, body); r.status != want {
			t.Errorf("status %d, want %d: %s", r.status, want, r.body)
		}
	}
	wantClerkError(t, post(t, u, c.SecretKey, body), 404, "resource_not_found")

	// GrantedTo overrides Scopes.
	tok = s.CreateM2MToken(M2MOptions{Subject: a.ID, Scopes: []string{b.ID}, GrantedTo: []string{c.ID}})
	body = verifyBody("token", tok.Secret)
	for key, want := range map[string]int{s.SecretKey(): 200, b.SecretKey: 404, c.SecretKey: 200} {
		if r := post(t, u, key, body); r.status != want {
			t.Errorf("granted: status %d, want %d", r.status, want)
		}
	}
	if m := decodeObject(t, post(t, u, c.SecretKey, body).body); fmt.Sprint(m["scopes"]) != "["+b.ID+"]" {
		t.Fatalf("scopes %v", m["scopes"])
	}
	// The key must come as a Bearer token.
	r := post(t, u, "", body)
	if r.status != 401 {
		t.Fatal(r.status)
	}
}

func TestMachineRevokeAndExpiry(t *testing.T) {
	clk := &clock{t: fixedNow}
	s := newServer(t, WithClock(clk.now))
	for _, v := range verifyEndpoints {
		u := s.URL() + v.path
		for _, byID := range []bool{false, true} {
			tok := v.create(s)
			clk.add(time.Second)
			key := tok.Secret
			if byID {
				key = tok.ID
			}
			if !s.RevokeMachineToken(key) || !s.RevokeMachineToken(key) {
				t.Fatal("revoke")
			}
			m := decodeObject(t, post(t, u, s.SecretKey(), verifyBody(v.field, tok.Secret)).body)
			if m["revoked"] != true || m["revocation_reason"] != "Revoked by clerktest" || m["expired"] != false ||
				m["updated_at"] != float64(clk.now().UnixMilli()) || m["created_at"] != float64(clk.now().Add(-time.Second).UnixMilli()) {
				t.Fatalf("%s revoked: %v", v.path, m)
			}
			if got, _ := s.LookupMachineToken(tok.ID); !got.Revoked {
				t.Fatal("lookup after revoke")
			}
		}
		if s.RevokeMachineToken("mt_nope") || s.RevokeMachineToken("") {
			t.Fatal("revoked an unknown token")
		}

		var tok2 MachineToken
		exp := clk.now().Add(time.Minute)
		switch v.e {
		case BAPIM2MVerify:
			tok2 = s.CreateM2MToken(M2MOptions{Expiration: exp})
		case BAPIAPIKeyVerify:
			tok2 = s.CreateAPIKey(APIKeyOptions{Expiration: exp})
		default:
			tok2 = s.CreateOAuthToken(OAuthOptions{Expiration: exp})
		}
		for _, step := range []struct {
			d       time.Duration
			expired bool
		}{{0, false}, {time.Minute - time.Millisecond, false}, {time.Millisecond, true}, {time.Hour, true}} {
			clk.add(step.d)
			m := decodeObject(t, post(t, u, s.SecretKey(), verifyBody(v.field, tok2.Secret)).body)
			if m["expired"] != step.expired || m["expiration"] != float64(exp.UnixMilli()) || m["revoked"] != false {
				t.Fatalf("%s at %v: %v", v.path, clk.now().Sub(exp), m)
			}
		}
	}
	// Verification records last use (not for OAuth, whose answer has none).
	k := s.CreateAPIKey(APIKeyOptions{})
	clk.add(time.Minute)
	post(t, s.URL()+"/api_keys/verify", s.SecretKey(), verifyBody("secret", k.Secret))
	if got, _ := s.LookupMachineToken(k.Secret); !got.LastUsedAt.Equal(clk.now()) {
		t.Fatalf("last used %v", got.LastUsedAt)
	}
}

func TestSetMachineAnswer(t *testing.T) {
	s := newServer(t)
	for _, v := range verifyEndpoints {
		u := s.URL() + v.path
		tok := v.create(s)
		body := verifyBody(v.field, tok.Secret)
		for a, check := range map[MachineAnswer]func(r resp) bool{
			AnswerInactive: func(r resp) bool { return string(r.body) == `{"active":false}` },
			AnswerEmpty:    func(r resp) bool { return string(r.body) == `{}` },
			AnswerNotJSON:  func(r resp) bool { return strings.HasPrefix(string(r.body), "<html>") },
			AnswerWrongObject: func(r resp) bool {
				m := decodeObject(t, r.body)
				return m["object"] != v.object && (m["object"] == "api_key" || m["object"] == "machine_to_machine_token") && m["id"] == tok.ID
			},
			AnswerWrongID: func(r resp) bool {
				m := decodeObject(t, r.body)
				return m["object"] == v.object && m["id"] == "tok_"+tok.ID[strings.Index(tok.ID, "_")+1:]
			},
		} {
			s.SetMachineAnswer(v.e, a)
			if r := post(t, u, s.SecretKey(), body); r.status != 200 || !check(r) {
				t.Fatalf("%s answer %d: %d %s", v.path, a, r.status, r.body)
			}
			// Unknown tokens and bad keys are not affected.
			wantClerkError(t, post(t, u, s.SecretKey(), verifyBody(v.field, "x_nope")), 404, "resource_not_found")
			wantClerkError(t, post(t, u, "", body), 401, "clerk_key_invalid")
			// Nor are the other endpoints.
			for _, other := range verifyEndpoints {
				if other.e != v.e {
					r := post(t, s.URL()+other.path, s.SecretKey(), verifyBody(other.field, other.create(s).Secret))
					if !strings.HasPrefix(string(r.body), `{"object":"`+other.object+`"`) {
						t.Fatalf("%s leaked to %s: %s", v.e, other.e, r.body)
					}
				}
			}
		}
		s.SetMachineAnswer(v.e, AnswerClerk)
		if m := decodeObject(t, post(t, u, s.SecretKey(), body).body); m["object"] != v.object || m["id"] != tok.ID {
			t.Fatalf("restored: %v", m)
		}
	}
}

func TestMachineVerifyFaults(t *testing.T) {
	s := newServer(t)
	k := s.CreateAPIKey(APIKeyOptions{})
	u := s.URL() + "/api_keys/verify"
	body := verifyBody("secret", k.Secret)

	s.SetFault(BAPIAPIKeyVerify, FailTimes(1, Status(500)))
	wantClerkError(t, post(t, u, s.SecretKey(), body), 500, "internal_clerk_error")
	if post(t, u, s.SecretKey(), body).status != 200 || s.Requests(BAPIAPIKeyVerify) != 2 {
		t.Fatalf("count %d", s.Requests(BAPIAPIKeyVerify))
	}
	s.SetFault(BAPIAPIKeyVerify, RateLimit(3*time.Second))
	r := post(t, u, s.SecretKey(), body)
	wantClerkError(t, r, 429, "too_many_requests")
	if r.header.Get("Retry-After") != "3" {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	s.SetFault(BAPIAPIKeyVerify, NoFault)

	s.Down()
	for _, v := range verifyEndpoints {
		wantClerkError(t, post(t, s.URL()+v.path, s.SecretKey(), verifyBody(v.field, v.create(s).Secret)), 503, "service_unavailable")
	}
	s.Up()
	for _, v := range verifyEndpoints {
		if r := post(t, s.URL()+v.path, s.SecretKey(), verifyBody(v.field, v.create(s).Secret)); r.status != 200 {
			t.Fatalf("%s after Up: %d", v.path, r.status)
		}
	}

	s.SetFault(BAPIM2MVerify, ConnectionReset)
	req, _ := http.NewRequest("POST", s.URL()+"/m2m_tokens/verify", strings.NewReader(verifyBody("token", "mt_x")))
	if res, err := noKeepAlive().Do(req); err == nil {
		res.Body.Close()
		t.Fatal("reset answered")
	}
	s.ResetCounts()
	if s.Requests(BAPIM2MVerify) != 0 {
		t.Fatal("counts")
	}
}
