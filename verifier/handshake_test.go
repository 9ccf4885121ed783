package verifier_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

func TestVerifyHandshake(t *testing.T) {
	clerk := clerktest.NewT(t)
	keys, err := verifier.StaticPEM(clerk.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := verifier.New(verifier.Config{Keys: keys, Issuer: clerk.Issuer()})
	key := clerk.PrivateKey(clerk.CurrentKeyID())
	header := map[string]any{"alg": "RS256", "kid": clerk.CurrentKeyID(), "typ": "JWT"}
	sign := func(h, p map[string]any, k any) string {
		t.Helper()
		pk := key
		if k != nil {
			pk = clerktest.GenerateKey()
		}
		tok, err := clerktest.Sign(h, p, pk)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	dirs := []any{"__session=x; Path=/", "__client_uat=1; Path=/"}
	got, err := v.VerifyHandshake(context.Background(), sign(header, map[string]any{"handshake": dirs}, nil))
	if err != nil || len(got) != 2 || got[0] != "__session=x; Path=/" {
		t.Fatalf("%q %v", got, err)
	}
	for name, tc := range map[string]struct {
		tok  string
		kind verifier.Kind
	}{
		"foreign key":    {sign(header, map[string]any{"handshake": dirs}, true), verifier.KindBadSignature},
		"no directives":  {sign(header, map[string]any{"other": 1}, nil), verifier.KindMissingClaim},
		"not a list":     {sign(header, map[string]any{"handshake": "x"}, nil), verifier.KindMissingClaim},
		"not strings":    {sign(header, map[string]any{"handshake": []any{1}}, nil), verifier.KindMissingClaim},
		"another alg":    {sign(map[string]any{"alg": "HS256", "kid": clerk.CurrentKeyID()}, map[string]any{"handshake": dirs}, nil), verifier.KindAlgNotAllowed},
		"another typ":    {sign(map[string]any{"alg": "RS256", "typ": "at+jwt"}, map[string]any{"handshake": dirs}, nil), verifier.KindBadTyp},
		"not a token":    {"a.b", verifier.KindMalformed},
		"critical exts.": {sign(map[string]any{"alg": "RS256", "crit": []any{"b64"}}, map[string]any{"handshake": dirs}, nil), verifier.KindUnsupportedCrit},
	} {
		if _, err := v.VerifyHandshake(context.Background(), tc.tok); verifier.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, want %s", name, err, tc.kind)
		}
	}
}

func TestPeek(t *testing.T) {
	clerk := clerktest.NewT(t)
	at := time.Unix(1_700_000_000, 0)
	tok := clerk.MustMint(clerktest.TokenOptions{IssuedAt: at, Lifetime: time.Minute})
	u, err := verifier.Peek(tok)
	if err != nil || u.Issuer != clerk.Issuer() || u.IssuedAt != at.Unix() || u.Expiry != at.Unix()+60 {
		t.Fatalf("%+v %v", u, err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	for name, bad := range map[string]string{
		"two segments":      "a.b",
		"four segments":     "a.b.c.d",
		"bad base64":        "a.b*c.d",
		"padded":            "a." + b64([]byte(`{"iss":"x"}`)) + "=.c",
		"not an object":     "a." + b64([]byte(`[1]`)) + ".c",
		"duplicate members": "a." + b64([]byte(`{"iat":1,"iat":2}`)) + ".c",
	} {
		if _, err := verifier.Peek(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Times that are not numbers read as absent, never as garbage.
	u, err = verifier.Peek("a." + b64([]byte(`{"iss":7,"iat":"1","exp":null}`)) + ".c")
	if err != nil || u != (verifier.Unverified{}) {
		t.Fatalf("%+v %v", u, err)
	}
}
