package clerktest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

var fixedNow = time.Unix(1_760_000_000, 0)

func verifyWithJWKS(t *testing.T, s *Server, tok string) error {
	t.Helper()
	set, err := jwk.Parse(get(t, s.JWKSURL(), "").body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true)))
	return err
}

func TestMintV2(t *testing.T) {
	s := newServer(t, WithClock(func() time.Time { return fixedNow }))
	admin := s.AdminUser()
	tok := s.MustMint(TokenOptions{User: &admin})

	set, err := jwk.Parse(get(t, s.JWKSURL(), "").body)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := set.LookupKeyID(s.CurrentKeyID())
	if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.RS256, key)); err != nil {
		t.Fatalf("jwx verify: %v", err)
	}

	h, c := segments(t, tok)
	if keysOf(h) != "alg,cat,kid,typ" || h["alg"] != "RS256" || h["typ"] != "JWT" || h["cat"] != "cl_B7d4PD111AAA" || h["kid"] != s.CurrentKeyID() {
		t.Fatalf("header %v", h)
	}
	if got := keysOf(c); got != "azp,exp,fea,fva,iat,iss,jti,nbf,o,sid,sub,v" {
		t.Fatalf("claim keys %s", got)
	}
	iat := c["iat"].(float64)
	if iat != float64(fixedNow.Unix()) || c["nbf"] != iat-10 || c["exp"] != iat+60 {
		t.Fatalf("times iat %v nbf %v exp %v", c["iat"], c["nbf"], c["exp"])
	}
	if c["v"] != 2.0 || c["iss"] != s.URL() || c["azp"] != s.URL() || c["sub"] != admin.ID {
		t.Fatalf("claims %v", c)
	}
	if fva := c["fva"].([]any); len(fva) != 2 || fva[0] != 0.0 || fva[1] != -1.0 {
		t.Fatalf("fva %v", fva)
	}
	if !regexp.MustCompile(`^[0-9a-f]{20}$`).MatchString(c["jti"].(string)) {
		t.Fatalf("jti %v", c["jti"])
	}
	if !regexp.MustCompile(`^sess_[0-9A-Za-z]{27}$`).MatchString(c["sid"].(string)) ||
		!regexp.MustCompile(`^user_[0-9A-Za-z]{27}$`).MatchString(c["sub"].(string)) {
		t.Fatalf("ids sid %v sub %v", c["sid"], c["sub"])
	}
	o := c["o"].(map[string]any)
	if keysOf(o) != "fpm,id,per,rol,slg" || o["id"] != admin.Org.ID || o["slg"] != "acme" || o["rol"] != "admin" {
		t.Fatalf("o %v", o)
	}
	if c["fea"] != "o:invoices" || o["per"] != "read,manage" || o["fpm"] != "3" {
		t.Fatalf("fea %v per %v fpm %v", c["fea"], o["per"], o["fpm"])
	}
	perms, err := DecodeOrgPermissions(c["fea"].(string), o["per"].(string), o["fpm"].(string))
	if err != nil || !slices.Equal(perms, admin.Org.Permissions) {
		t.Fatalf("round trip %v %v, want %v", perms, err, admin.Org.Permissions)
	}

	member := s.MemberUser()
	_, c = segments(t, s.MustMint(TokenOptions{User: &member}))
	o = c["o"].(map[string]any)
	if o["rol"] != "member" || o["per"] != "read" || o["fpm"] != "1" || c["fea"] != "o:invoices" || o["id"] != member.Org.ID || o["slg"] != "beta" {
		t.Fatalf("member o %v fea %v", o, c["fea"])
	}
}

func TestMintV1(t *testing.T) {
	s := newServer(t)
	admin := s.AdminUser()
	tok := s.MustMint(TokenOptions{User: &admin, Version: 1})
	if err := verifyWithJWKS(t, s, tok); err != nil {
		t.Fatal(err)
	}
	_, c := segments(t, tok)
	if got := keysOf(c); got != "azp,exp,fva,iat,iss,jti,nbf,org_id,org_permissions,org_role,org_slug,sid,sub" {
		t.Fatalf("v1 claim keys %s", got)
	}
	if c["org_role"] != "org:admin" || c["org_slug"] != "acme" || c["org_id"] != admin.Org.ID {
		t.Fatalf("v1 org %v", c)
	}
	if p := c["org_permissions"].([]any); len(p) != 2 || p[0] != "org:invoices:read" || p[1] != "org:invoices:manage" {
		t.Fatalf("org_permissions %v", p)
	}
	// No org: only the base claims.
	_, c = segments(t, s.MustMint(TokenOptions{User: &admin, Version: 1, NoOrg: true}))
	if got := keysOf(c); got != "azp,exp,fva,iat,iss,jti,nbf,sid,sub" {
		t.Fatalf("v1 no-org keys %s", got)
	}
	if _, err := s.Mint(TokenOptions{Version: 3}); err == nil {
		t.Fatal("version 3 minted")
	}
}

func TestMintOptions(t *testing.T) {
	s := newServer(t, WithAuthorizedParty("https://app.example.com"))
	iat := time.Unix(1_700_000_000, 0)
	tok := s.MustMint(TokenOptions{
		Subject: "user_x", SessionID: "sess_x", IssuedAt: iat, Lifetime: time.Hour,
		NoOrg: true, Pending: true, Plan: "u:free", Features: []string{"u:premium"},
		Actor:  &Actor{Issuer: "https://dashboard.clerk.com", SessionID: "sess_a", Subject: "user_a"},
		Claims: map[string]any{"fva": nil, "email": "x@example.com"},
	})
	_, c := segments(t, tok)
	if got := keysOf(c); got != "act,azp,email,exp,fea,iat,iss,jti,nbf,pla,sid,sts,sub,v" {
		t.Fatalf("keys %s", got)
	}
	if c["sub"] != "user_x" || c["sid"] != "sess_x" || c["exp"] != float64(iat.Unix()+3600) ||
		c["azp"] != "https://app.example.com" || c["sts"] != "pending" || c["pla"] != "u:free" || c["fea"] != "u:premium" {
		t.Fatalf("claims %v", c)
	}
	if act := c["act"].(map[string]any); keysOf(act) != "iss,sid,sub" || act["sub"] != "user_a" {
		t.Fatalf("act %v", act)
	}

	_, c = segments(t, s.MustMint(TokenOptions{Issuer: "https://evil.example", AuthorizedParty: "https://other.example"}))
	if c["iss"] != "https://evil.example" || c["azp"] != "https://other.example" {
		t.Fatalf("overrides %v", c)
	}
}

func TestMintHeaderOverrides(t *testing.T) {
	s := newServer(t)
	h, _ := segments(t, s.MustMint(TokenOptions{Header: HeaderOptions{OmitTyp: true, OmitCat: true}}))
	if keysOf(h) != "alg,kid" {
		t.Fatalf("header %v", h)
	}
	tok := s.MustMint(TokenOptions{Header: HeaderOptions{Alg: "none", KeyID: "ins_other", Cat: "cl_B7d4PD222AAA",
		Extra: map[string]any{"jku": "https://evil.example/jwks", "typ": nil}}})
	h, _ = segments(t, tok)
	if keysOf(h) != "alg,cat,jku,kid" || h["alg"] != "none" || h["kid"] != "ins_other" || h["cat"] != "cl_B7d4PD222AAA" {
		t.Fatalf("header %v", h)
	}
	// The signature is still RS256 by the current key.
	parts := strings.Split(tok, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testKey(0).PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("relabelled token not RS256-signed: %v", err)
	}
	h, _ = segments(t, s.MustMint(TokenOptions{Header: HeaderOptions{OmitKID: true}}))
	if _, ok := h["kid"]; ok {
		t.Fatal("kid not omitted")
	}

	// A foreign key keeps the current kid, so the signature check fails.
	foreign := s.MustMint(TokenOptions{SigningKey: testKey(2)})
	if h, _ := segments(t, foreign); h["kid"] != s.CurrentKeyID() {
		t.Fatalf("foreign kid %v", h["kid"])
	}
	if err := verifyWithJWKS(t, s, foreign); err == nil {
		t.Fatal("foreign-key token verified")
	}
	if err := verifyWithJWKS(t, s, s.MustMint(TokenOptions{})); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeOrgPermissions(t *testing.T) {
	for _, tc := range []struct {
		perms, extra  []string
		fea, per, fpm string
		roundTrip     []string
	}{
		{[]string{"org:invoices:read", "org:invoices:manage"}, nil, "o:invoices", "read,manage", "3", nil},
		{[]string{"org:invoices:read"}, nil, "o:invoices", "read", "1", nil},
		{[]string{
			"org:repositories:read", "org:repositories:create", "org:repositories:update",
			"org:projects:read", "org:projects:update", "org:projects:revoke",
		}, nil, "o:repositories,o:projects", "read,create,update,revoke", "7,13", nil},
		{nil, []string{"impersonation"}, "o:impersonation", "", "", []string{}},
		{[]string{"org:a:x", "badperm", "org:b:y", "org:a:y"}, []string{"c"}, "o:a,o:b,o:c", "x,y", "3,2,0",
			[]string{"org:a:x", "org:a:y", "org:b:y"}},
	} {
		fea, per, fpm := EncodeOrgPermissions(tc.perms, tc.extra...)
		if fea != tc.fea || per != tc.per || fpm != tc.fpm {
			t.Errorf("%v: got %q %q %q, want %q %q %q", tc.perms, fea, per, fpm, tc.fea, tc.per, tc.fpm)
		}
		got, err := DecodeOrgPermissions(fea, per, fpm)
		want := tc.roundTrip
		if want == nil {
			want = tc.perms
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%v: round trip %v %v, want %v", tc.perms, got, err, want)
		}
	}
	// Decoding matches @clerk/backend's mapping with user features mixed in.
	got, _ := DecodeOrgPermissions("u:x,o:repositories,o:projects", "read,create,update,delete,revoke", "7,21")
	want := "org:repositories:read,org:repositories:create,org:repositories:update,org:projects:read,org:projects:update,org:projects:revoke"
	if strings.Join(got, ",") != want {
		t.Fatalf("decode %v", got)
	}
}
