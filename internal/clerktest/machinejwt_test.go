package clerktest

import (
	"regexp"
	"testing"
	"time"
)

// jwtFormatRE is @clerk/backend's test for "looks like a JWT".
var jwtFormatRE = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

func TestMintM2MJWT(t *testing.T) {
	s := newServer(t, WithClock(func() time.Time { return fixedNow }))
	tok := s.MustMintM2MJWT(M2MJWTOptions{})
	if !jwtFormatRE.MatchString(tok) {
		t.Fatalf("not JWT-format: %s", tok)
	}
	if err := verifyWithJWKS(t, s, tok); err != nil {
		t.Fatal(err)
	}
	h, c := segments(t, tok)
	if keysOf(h) != "alg,cat,kid,typ" || h["alg"] != "RS256" || h["typ"] != "JWT" || h["cat"] != "cl_B7d4PD333AAA" || h["kid"] != s.CurrentKeyID() {
		t.Fatalf("header %v", h)
	}
	if keysOf(c) != "exp,iat,iss,jti,nbf,sub" {
		t.Fatalf("claims %v", c)
	}
	iat := float64(fixedNow.Unix())
	if c["iat"] != iat || c["nbf"] != iat-10 || c["exp"] != iat+3600 || c["iss"] != s.Issuer() ||
		!machineIDRE.MatchString(c["sub"].(string)) || !regexp.MustCompile(`^mt_[0-9a-f]{32}$`).MatchString(c["jti"].(string)) {
		t.Fatalf("claims %v", c)
	}

	m := s.CreateMachine()
	issued := fixedNow.Add(-time.Hour)
	tok = s.MustMintM2MJWT(M2MJWTOptions{
		Subject: m.ID, Scopes: "mch_a mch_b", Aud: []string{"mch_c"}, ID: "mt_x", Lifetime: 5 * time.Minute,
		IssuedAt: issued, Issuer: "https://other.example", Claims: map[string]any{"env": "ci", "nbf": nil},
	})
	_, c = segments(t, tok)
	if keysOf(c) != "aud,env,exp,iat,iss,jti,scopes,sub" || c["sub"] != m.ID || c["scopes"] != "mch_a mch_b" ||
		c["aud"].([]any)[0] != "mch_c" || c["jti"] != "mt_x" || c["iat"] != float64(issued.Unix()) ||
		c["exp"] != float64(issued.Unix()+300) || c["iss"] != "https://other.example" || c["env"] != "ci" {
		t.Fatalf("claims %v", c)
	}

	// Header variants for the category and typ rules.
	for _, tc := range []struct {
		ho   HeaderOptions
		keys string
		cat  any
		typ  any
	}{
		{HeaderOptions{OmitCat: true}, "alg,kid,typ", nil, "JWT"},
		{HeaderOptions{Cat: "cl_I7d4PD111III"}, "alg,cat,kid,typ", "cl_I7d4PD111III", "JWT"},
		{HeaderOptions{Cat: SessionCat, OmitTyp: true}, "alg,cat,kid", SessionCat, nil},
		{HeaderOptions{Typ: "at+jwt"}, "alg,cat,kid,typ", M2MCat, "at+jwt"},
	} {
		tok := s.MustMintM2MJWT(M2MJWTOptions{Header: tc.ho})
		h, _ := segments(t, tok)
		if keysOf(h) != tc.keys || h["cat"] != tc.cat || h["typ"] != tc.typ {
			t.Errorf("%+v: header %v", tc.ho, h)
		}
		if err := verifyWithJWKS(t, s, tok); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMintOAuthJWT(t *testing.T) {
	s := newServer(t, WithClock(func() time.Time { return fixedNow }))
	tok := s.MustMintOAuthJWT(OAuthJWTOptions{})
	if !jwtFormatRE.MatchString(tok) {
		t.Fatalf("not JWT-format: %s", tok)
	}
	if err := verifyWithJWKS(t, s, tok); err != nil {
		t.Fatal(err)
	}
	h, c := segments(t, tok)
	if keysOf(h) != "alg,kid,typ" || h["typ"] != "at+jwt" || h["alg"] != "RS256" {
		t.Fatalf("header %v", h)
	}
	if keysOf(c) != "azp,client_id,exp,iat,iss,jti,nbf,sid,sub" {
		t.Fatalf("claims %v", c)
	}
	iat := float64(fixedNow.Unix())
	if c["iat"] != iat || c["nbf"] != iat-10 || c["exp"] != iat+3600 || c["iss"] != s.Issuer() || c["azp"] != s.URL() ||
		!regexp.MustCompile(`^user_\w{27}$`).MatchString(c["sub"].(string)) ||
		!regexp.MustCompile(`^sess_\w{27}$`).MatchString(c["sid"].(string)) || c["client_id"] == "" ||
		!regexp.MustCompile(`^oat_[0-9a-f]{32}$`).MatchString(c["jti"].(string)) {
		t.Fatalf("claims %v", c)
	}

	tok = s.MustMintOAuthJWT(OAuthJWTOptions{
		Subject: "user_x", ClientID: "client_x", Scope: "read:foo write:bar", Scp: []string{"read:foo"},
		SessionID: "sess_x", AuthorizedParty: "https://app.example", ID: "oat_x", Lifetime: time.Minute,
		Claims: map[string]any{"sid": nil}, Header: HeaderOptions{Typ: "application/at+jwt"},
	})
	h, c = segments(t, tok)
	if h["typ"] != "application/at+jwt" || h["cat"] != nil {
		t.Fatalf("header %v", h)
	}
	if keysOf(c) != "azp,client_id,exp,iat,iss,jti,nbf,scope,scp,sub" || c["sub"] != "user_x" || c["client_id"] != "client_x" ||
		c["scope"] != "read:foo write:bar" || c["scp"].([]any)[0] != "read:foo" || c["azp"] != "https://app.example" ||
		c["jti"] != "oat_x" || c["exp"] != iat+60 {
		t.Fatalf("claims %v", c)
	}
	h, _ = segments(t, s.MustMintOAuthJWT(OAuthJWTOptions{Header: HeaderOptions{Cat: M2MCat}}))
	if h["cat"] != M2MCat || h["typ"] != "at+jwt" {
		t.Fatalf("header %v", h)
	}
}

// Machine JWTs follow the instance's keys like session tokens.
func TestMachineJWTKeys(t *testing.T) {
	s := newServer(t)
	old := s.CurrentKeyID()
	s.RotateKeyTo(testKey(1))
	for _, tok := range []string{s.MustMintM2MJWT(M2MJWTOptions{}), s.MustMintOAuthJWT(OAuthJWTOptions{})} {
		if h, _ := segments(t, tok); h["kid"] != s.CurrentKeyID() {
			t.Fatalf("kid %v", h["kid"])
		}
		if err := verifyWithJWKS(t, s, tok); err != nil {
			t.Fatal(err)
		}
	}
	tok := s.MustMintM2MJWT(M2MJWTOptions{SigningKey: s.PrivateKey(old)})
	if h, _ := segments(t, tok); h["kid"] != old {
		t.Fatalf("kid %v", h["kid"])
	}
	if err := verifyWithJWKS(t, s, tok); err != nil {
		t.Fatal(err)
	}
	tok = s.MustMintOAuthJWT(OAuthJWTOptions{SigningKey: testKey(2)})
	if err := verifyWithJWKS(t, s, tok); err == nil {
		t.Fatal("a foreign key's token verified")
	}
}
