package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func staticVerifier(t *testing.T, mut func(*Config)) (*Verifier, *testKey) {
	t.Helper()
	k := testKeys(t)[0]
	kc := NewKeyCache(&fakeSource{doc: jwksDoc(t, k)}, CacheOptions{})
	t.Cleanup(kc.Close)
	cfg := Config{Keys: kc, Issuer: testIssuer}
	if mut != nil {
		mut(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, k
}

func expectKind(t *testing.T, v *Verifier, token string, want Kind) {
	t.Helper()
	_, err := v.Verify(context.Background(), token)
	if KindOf(err) != want {
		t.Fatalf("want %s, got %v", want, err)
	}
	if err != nil && len(token) > 16 && strings.Contains(err.Error(), token) {
		t.Fatal("error contains the token")
	}
}

func TestVerifyValidToken(t *testing.T) {
	v, k := staticVerifier(t, func(c *Config) { c.AuthorizedParties = []string{"https://app.example.com"} })
	now := time.Now()
	cl := claimsAt(now)
	cl["o"] = map[string]any{"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3"}
	cl["fea"] = "o:invoices,u:ai"
	cl["pla"] = "o:pro"
	cl["act"] = map[string]any{"iss": "https://dashboard.clerk.com", "sid": "sess_imp", "sub": "user_admin"}
	cl["metadata"] = map[string]any{"plan": "gold", "seats": 3}
	c, err := v.Verify(context.Background(), mint(t, k, cl))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user_123" || c.SessionID != "sess_123" || c.Version != 2 || c.OrgRole != "org:admin" || c.OrgSlug != "acme" {
		t.Fatalf("claims: %+v", c)
	}
	if got := strings.Join(c.OrgPermissions, ","); got != "org:invoices:read,org:invoices:manage" {
		t.Fatalf("permissions %q", got)
	}
	if c.Actor == nil || c.Actor.Subject != "user_admin" {
		t.Fatalf("actor %+v", c.Actor)
	}
	if plan, ok := c.Custom("metadata.plan"); !ok || plan != "gold" {
		t.Fatalf("custom claim: %v %v", plan, ok)
	}
	if c.Expiry.Unix() != now.Unix()+60 || c.NotBefore.Unix() != now.Unix()-10 {
		t.Fatal("time claims")
	}
	for q, want := range map[Check]bool{
		{Role: "admin"}: true, {Role: "org:admin"}: true, {Role: "org:org:admin"}: true, {Role: "member"}: false,
		{Permission: "invoices:read"}: true, {Permission: "org:invoices:manage"}: true, {Permission: "org:billing:read"}: false,
		{Feature: "invoices"}: true, {Feature: "o:invoices"}: true, {Feature: "u:invoices"}: false, {Feature: "user:ai"}: true,
		{Feature: "org:ai"}: false, {Plan: "pro"}: true, {Plan: "organization:pro"}: true, {Plan: "u:pro"}: false,
		{Role: "admin", Permission: "invoices:read"}: true, {Role: "admin", Permission: "nope"}: false, {}: false,
	} {
		if got := c.Has(q); got != want {
			t.Errorf("Has(%+v) = %v, want %v", q, got, want)
		}
	}
}

func TestHasFailsClosedWithoutOrg(t *testing.T) {
	c := &Claims{Subject: "user_1", Shared: &Shared{OrgRole: "org:admin", OrgPermissions: []string{"org:x:read"}}}
	if c.Has(Check{Role: "admin"}) || c.Has(Check{Permission: "x:read"}) {
		t.Fatal("role or permission without an active organization")
	}
	var nilClaims *Claims
	if nilClaims.Has(Check{Feature: "x"}) || (&Claims{}).Has(Check{Feature: "x"}) {
		t.Fatal("has() without a user")
	}
}

func TestIssuerIsPinnedExactly(t *testing.T) {
	v, k := staticVerifier(t, nil)
	for _, iss := range []string{
		"https://evil.example/.clerk.accounts", "https://clerk.example.com.evil.example", "https://clerk.example.com/",
		"http://clerk.example.com", "https://CLERK.example.com", "", "https://clerk.other.com",
	} {
		cl := claimsAt(time.Now())
		cl["iss"] = iss
		expectKind(t, v, mint(t, k, cl), KindBadIssuer)
	}
	cl := claimsAt(time.Now())
	cl["iss"] = 42
	expectKind(t, v, mint(t, k, cl), KindBadIssuer)
	delete(cl, "iss")
	expectKind(t, v, mint(t, k, cl), KindBadIssuer)
}

func TestClaimChecks(t *testing.T) {
	v, k := staticVerifier(t, func(c *Config) {
		c.AuthorizedParties = []string{"https://app.example.com"}
		c.Audience = []string{"api"}
	})
	now := time.Now()
	cases := []struct {
		name string
		mut  func(map[string]any)
		want Kind
	}{
		{"ok", func(m map[string]any) { m["aud"] = []string{"x", "api"} }, ""},
		{"aud string", func(m map[string]any) { m["aud"] = "api" }, ""},
		{"aud missing", func(m map[string]any) {}, KindBadAudience},
		{"aud wrong", func(m map[string]any) { m["aud"] = "apix" }, KindBadAudience},
		{"aud number", func(m map[string]any) { m["aud"] = 1 }, KindInvalidClaim},
		{"azp other", func(m map[string]any) { m["aud"] = "api"; m["azp"] = "https://evil.example" }, KindBadAZP},
		{"azp missing", func(m map[string]any) { m["aud"] = "api"; delete(m, "azp") }, KindBadAZP},
		{"expired", func(m map[string]any) { m["aud"] = "api"; m["exp"] = now.Unix() - 6 }, KindExpired},
		{"within skew", func(m map[string]any) { m["aud"] = "api"; m["exp"] = now.Unix() - 3 }, ""},
		{"nbf future", func(m map[string]any) { m["aud"] = "api"; m["nbf"] = now.Unix() + 30 }, KindNotYetValid},
		{"iat future", func(m map[string]any) { m["aud"] = "api"; m["iat"] = now.Unix() + 30 }, KindIATInFuture},
		{"exp string", func(m map[string]any) { m["aud"] = "api"; m["exp"] = "99999999999" }, KindInvalidClaim},
		{"exp null", func(m map[string]any) { m["aud"] = "api"; m["exp"] = nil }, KindInvalidClaim},
		{"exp bool", func(m map[string]any) { m["aud"] = "api"; m["exp"] = true }, KindInvalidClaim},
		{"exp overflow", func(m map[string]any) { m["aud"] = "api"; m["exp"] = 1e300 }, KindInvalidClaim},
		{"nbf null", func(m map[string]any) { m["aud"] = "api"; m["nbf"] = nil }, KindInvalidClaim},
		{"exp missing", func(m map[string]any) { m["aud"] = "api"; delete(m, "exp") }, KindInvalidClaim},
		{"sub missing", func(m map[string]any) { m["aud"] = "api"; delete(m, "sub") }, KindMissingClaim},
		{"sub empty", func(m map[string]any) { m["aud"] = "api"; m["sub"] = "" }, KindInvalidClaim},
		{"sid missing", func(m map[string]any) { m["aud"] = "api"; delete(m, "sid") }, KindNotSession},
		{"machine", func(m map[string]any) { m["aud"] = "api"; m["sub"] = "mch_1" }, KindNotSession},
		{"pending", func(m map[string]any) { m["aud"] = "api"; m["sts"] = "pending" }, KindPending},
		{"o not object", func(m map[string]any) { m["aud"] = "api"; m["o"] = "org_1" }, KindInvalidClaim},
		{"v1 perms wrong", func(m map[string]any) {
			m["aud"] = "api"
			delete(m, "v")
			m["org_id"] = "org_1"
			m["org_permissions"] = "org:x:read"
		}, KindInvalidClaim},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := claimsAt(now)
			tc.mut(cl)
			expectKind(t, v, mint(t, k, cl), tc.want)
		})
	}
}

func TestAllowPending(t *testing.T) {
	v, k := staticVerifier(t, func(c *Config) { c.AllowPending = true })
	cl := claimsAt(time.Now())
	cl["sts"] = "pending"
	c, err := v.Verify(context.Background(), mint(t, k, cl))
	if err != nil || c.Status != "pending" {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestHostileTokens(t *testing.T) {
	v, k := staticVerifier(t, nil)
	other := testKeys(t)[1]
	now := time.Now()
	payload, _ := json.Marshal(claimsAt(now))
	good := mint(t, k, claimsAt(now))
	enc := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(good, ".")
	hdr := func(h string) string { return signRaw(t, k, []byte(h), payload) }

	// jku/x5u pointing at a server we watch: it must never be contacted.
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	otherJWK := string(other.jwk(t))

	// HMAC "signed" with the public key's bytes (the classic confusion).
	der, _ := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsInput := enc([]byte(`{"alg":"HS256","kid":"`+k.kid+`","typ":"JWT"}`)) + "." + enc(payload)
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + enc(mac.Sum(nil))

	cases := []struct {
		name, token string
		want        Kind
	}{
		{"good", good, ""},
		{"empty", "", KindMalformed},
		{"two segments", parts[0] + "." + parts[1], KindMalformed},
		{"four segments", good + ".x", KindMalformed},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], KindMalformed},
		{"space", " " + good, KindMalformed},
		{"newline inside", parts[0] + "\n." + parts[1] + "." + parts[2], KindMalformed},
		{"CRLF inside", parts[0][:5] + "\r\n" + parts[0][5:] + "." + parts[1] + "." + parts[2], KindMalformed},
		{"std base64", strings.NewReplacer("-", "+", "_", "/").Replace(good), KindMalformed},
		{"non canonical bits", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + nonCanonical(parts[2]), KindMalformed},
		{"oversized", hdr(`{"alg":"RS256","kid":"` + k.kid + `","x":"` + strings.Repeat("a", 9000) + `"}`), KindOversized},
		{"alg none", enc([]byte(`{"alg":"none","kid":"`+k.kid+`"}`)) + "." + parts[1] + ".e30", KindAlgNotAllowed},
		{"alg None", hdr(`{"alg":"None","kid":"` + k.kid + `"}`), KindAlgNotAllowed},
		{"alg NONE", hdr(`{"alg":"NONE","kid":"` + k.kid + `"}`), KindAlgNotAllowed},
		{"alg missing", hdr(`{"kid":"` + k.kid + `"}`), KindAlgNotAllowed},
		{"alg number", hdr(`{"alg":256,"kid":"` + k.kid + `"}`), KindMalformed},
		{"HS256 with public key", hsToken, KindAlgNotAllowed},
		{"RS384", hdr(`{"alg":"RS384","kid":"` + k.kid + `"}`), KindAlgNotAllowed},
		{"PS256", hdr(`{"alg":"PS256","kid":"` + k.kid + `"}`), KindAlgNotAllowed},
		{"crit", hdr(`{"alg":"RS256","kid":"` + k.kid + `","crit":["exp"],"exp":1}`), KindUnsupportedCrit},
		{"zip", hdr(`{"alg":"RS256","kid":"` + k.kid + `","zip":"DEF"}`), KindMalformed},
		{"duplicate alg", hdr(`{"alg":"none","alg":"RS256","kid":"` + k.kid + `"}`), KindMalformed},
		{"duplicate kid", hdr(`{"alg":"RS256","kid":"x","kid":"` + k.kid + `"}`), KindMalformed},
		{"escaped duplicate", hdr(`{"alg":"RS256","kid":"` + k.kid + `","\u0061lg":"none"}`), KindMalformed},
		{"kid array", hdr(`{"alg":"RS256","kid":["` + k.kid + `"]}`), KindMalformed},
		{"kid missing", hdr(`{"alg":"RS256"}`), KindMissingKID},
		{"header null", signRaw(t, k, []byte("null"), payload), KindMalformed},
		{"header array", signRaw(t, k, []byte("[]"), payload), KindMalformed},
		{"header trailing", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}{}`), payload), KindMalformed},
		{"header bad utf8", signRaw(t, k, []byte("{\"alg\":\"RS256\",\"kid\":\""+k.kid+"\",\"x\":\"\xff\"}"), payload), KindMalformed},
		{"typ jwt lowercase", hdr(`{"alg":"RS256","kid":"` + k.kid + `","typ":"jwt"}`), KindBadTyp},
		{"cat template", hdr(`{"alg":"RS256","kid":"` + k.kid + `","cat":"cl_B7d4PD222AAA"}`), KindNotSession},
		{"embedded jwk of attacker", sign(t, other, map[string]any{"alg": "RS256", "kid": k.kid, "jwk": json.RawMessage(otherJWK)}, payload), KindBadSignature},
		{"jku to attacker", sign(t, other, map[string]any{"alg": "RS256", "kid": "attacker", "jku": srv.URL + "/jwks"}, payload), KindUnknownKID},
		{"x5u to attacker", sign(t, other, map[string]any{"alg": "RS256", "kid": k.kid, "x5u": srv.URL + "/cert"}, payload), KindBadSignature},
		{"signed by another key", mint(t, other, claimsAt(now))[:0] + sign(t, other, map[string]any{"alg": "RS256", "kid": k.kid}, payload), KindBadSignature},
		{"payload duplicate sub", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}`), []byte(`{"sub":"user_a","sub":"user_b"}`)), KindMalformed},
		{"payload nested duplicate", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}`), append(payload[:len(payload)-1:len(payload)-1], []byte(`,"o":{"id":"a","id":"b"}}`)...)), KindMalformed},
		{"payload array", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}`), []byte(`[1]`)), KindMalformed},
		{"payload bad utf8", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}`), []byte("{\"sub\":\"\xc3\x28\"}")), KindMalformed},
		{"deeply nested", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}`), []byte(`{"a":`+strings.Repeat("[", 3000)+strings.Repeat("]", 3000)+`}`)), KindOversized},
		{"tampered payload", parts[0] + "." + enc([]byte(strings.Replace(string(payload), "user_123", "user_999", 1))) + "." + parts[2], KindBadSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", KindMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			expectKind(t, v, tc.token, tc.want)
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("a URL named in a token was fetched %d times", hits.Load())
	}
}

// nonCanonical returns the last base64url character of s with its unused
// low bits set, which strict decoding must refuse.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	switch len(s) % 4 {
	case 2:
		return string(alphabet[last|0x0f])
	case 3:
		return string(alphabet[last|0x03])
	}
	return s[len(s)-1:]
}

func TestStaticPEMIgnoresKID(t *testing.T) {
	k := testKeys(t)[0]
	der, _ := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	armored := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	bare := base64.StdEncoding.EncodeToString(der)
	for name, text := range map[string]string{"armored": armored, "bare": bare, "bare wrapped": bare[:100] + "\n  " + bare[100:]} {
		keys, err := StaticPEM(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v, _ := New(Config{Keys: keys, Issuer: testIssuer})
		cl := claimsAt(time.Now())
		pb, _ := json.Marshal(cl)
		if _, err := v.Verify(context.Background(), sign(t, k, map[string]any{"alg": "RS256"}, pb)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, bad := range []string{"", "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"} {
		if _, err := StaticPEM(bad); err == nil {
			t.Fatalf("StaticPEM(%q) accepted", bad)
		}
	}
}

func TestKeyLoadingFixtures(t *testing.T) {
	f := loadFixtures(t)["clerk_js_backend"]
	n := 0
	for _, raw := range f.KeyLoadingCases {
		var c struct {
			Name      string          `json:"name"`
			Input     *string         `json:"input"`
			ExpectJWK json.RawMessage `json:"expect_jwk"`
			ExpectN   string          `json:"expect_jwk_n"`
		}
		_ = json.Unmarshal(raw, &c)
		if c.Input == nil {
			continue
		}
		n++
		key, err := ParsePEM(*c.Input)
		switch {
		case present(c.ExpectJWK):
			var want struct {
				N string `json:"n"`
			}
			_ = json.Unmarshal(c.ExpectJWK, &want)
			if err != nil || base64.RawURLEncoding.EncodeToString(key.Public.N.Bytes()) != want.N {
				t.Errorf("%s: %v", c.Name, err)
			}
		case c.ExpectN != "":
			// Upstream string-strips the SPKI; we parse it, and refuse
			// text that is not a key rather than serve a wrong one.
			if err == nil && base64.RawURLEncoding.EncodeToString(key.Public.N.Bytes()) == c.ExpectN {
				t.Errorf("%s: parsed a non-key", c.Name)
			}
		}
	}
	if n < 2 {
		t.Fatalf("only %d key loading cases", n)
	}
}

// TestWycheproofKeysets: a JWKS holding anything unsafe (symmetric keys,
// duplicate kids, small or e=1 RSA keys, encryption keys) never verifies a
// token; a proper RS256 key does.
func TestWycheproofKeysets(t *testing.T) {
	f := loadFixtures(t)["wycheproof_jws"]
	if len(f.JWKKeysetCases) == 0 {
		t.Fatal("no keyset cases")
	}
	for _, raw := range f.JWKKeysetCases {
		var c struct {
			Name     string          `json:"name"`
			Keyset   json.RawMessage `json:"keyset"`
			Token    string          `json:"token"`
			Expect   string          `json:"expect"`
			Relevant bool            `json:"relevant_to_rs256_jwks"`
		}
		_ = json.Unmarshal(raw, &c)
		t.Run(c.Name, func(t *testing.T) {
			set, perr := ParseJWKS(c.Keyset)
			var err error = perr
			if perr == nil {
				kc := NewKeyCache(staticSource(c.Keyset), CacheOptions{})
				defer kc.Close()
				v, _ := New(Config{Keys: kc})
				_, err = v.Verify(context.Background(), c.Token)
			}
			switch {
			case c.Expect == "reject_keyset_or_token":
				if err == nil {
					t.Fatal("accepted")
				}
			case c.Relevant: // an RS256 signature over "foo": signature passes, payload is no claim set
				if KindOf(err) != KindMalformed {
					t.Fatalf("want the signature to verify and the payload refused, got %v (set %v)", err, set)
				}
			default: // HMAC keysets: we never accept HMAC
				if err == nil {
					t.Fatal("accepted an HMAC token")
				}
			}
		})
	}
}

func TestPublishableKey(t *testing.T) {
	enc := func(s string) string { return strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(s)), "=") }
	cases := []struct {
		pk, host, accounts string
		prod               bool
	}{
		{"pk_live_" + enc("clerk.example.com$"), "clerk.example.com", "https://accounts.example.com", true},
		{"pk_test_" + enc("foo-13.clerk.accounts.dev$"), "foo-13.clerk.accounts.dev", "https://foo-13.accounts.dev", false},
		{"pk_test_" + enc("127.0.0.1:4000$"), "127.0.0.1:4000", "", false},
	}
	for _, c := range cases {
		in, err := ParsePublishableKey(c.pk)
		if err != nil {
			t.Fatalf("%s: %v", c.pk, err)
		}
		if in.FrontendAPI != c.host || in.Production != c.prod || in.AccountsURL() != c.accounts {
			t.Fatalf("%+v accounts=%s", in, in.AccountsURL())
		}
		if in.Issuer() != "https://"+c.host || in.JWKSURL() != "https://"+c.host+"/.well-known/jwks.json" {
			t.Fatal(in.Issuer(), in.JWKSURL())
		}
		if len(in.CookieSuffix) != 8 || strings.ContainsAny(in.CookieSuffix, "+/=") {
			t.Fatalf("suffix %q", in.CookieSuffix)
		}
	}
	for _, bad := range []string{"", "sk_test_abc", "pk_test_", "pk_test_!!!!", "pk_live_" + enc("clerk.example.com"), "pk_live_" + enc("localhost$"), "pk_live_" + enc("a.b$$"), "pk_live_" + enc("evil.com/x$")} {
		if _, err := ParsePublishableKey(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
