package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
)

// TestEntryRoundTrip: the Claims a cache entry gives (on the first
// verification and on every hit) say exactly what the payload said. Payload
// has every member with its text, Custom finds every member as
// encoding/json decodes it, and a member left out of Raw is one whose text
// Payload writes back byte for byte.
func TestEntryRoundTrip(t *testing.T) {
	k := testKeys(t)[0]
	clock := newFakeClock()
	now := clock.Now().Unix()
	kc := NewKeyCache(&fakeSource{doc: jwksDoc(t, k)}, CacheOptions{Now: clock.Now})
	defer kc.Close()
	v, err := New(Config{Keys: kc, Issuer: testIssuer, TokenCache: NewTokenCache(64), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	base := `"iss":"` + testIssuer + `","azp":"https://app.example.com","v":2`
	exp, iat, nbf := itoa(now+60), itoa(now), itoa(now-10)
	cases := []struct {
		name    string
		members string
		inRaw   []string // own members that must stay in Raw
		raw     string   // Raw, when it matters
	}{
		{"realistic", `"sub":"user_1","sid":"sess_1","jti":"j1","exp":` + exp + `,"iat":` + iat + `,"nbf":` + nbf +
			`,"fva":[0,-1],"email":"a@example.com","metadata":{"plan":"pro","seats":25},"o":{"id":"org_1","slg":"acme","rol":"admin","per":"read","fpm":"1"},"fea":"o:read","pla":"u:pro"`, nil,
			`{"email":"a@example.com","metadata":{"plan":"pro","seats":25}}`},
		{"no optional members", `"sub":"user_1","sid":"sess_1","exp":` + exp, nil, ""},
		{"escaped strings", `"sub":"user_\u0031","sid":"sess_\"x\"","jti":"é","exp":` + exp, []string{"sub", "sid"}, ""},
		{"times not in whole seconds or as exponents", `"sub":"u","sid":"s","exp":` + exp + `.5,"iat":` + iat[:1] + "." + iat[1:] + `e9,"nbf":` + nbf + `.000`,
			[]string{"exp", "iat", "nbf"}, ""},
		{"fva not canonical", `"sub":"u","sid":"s","exp":` + exp + `,"fva":[0.0,-1]`, []string{"fva"}, ""},
		{"fva malformed", `"sub":"u","sid":"s","exp":` + exp + `,"fva":"x"`, []string{"fva"}, ""},
		{"fva fractional", `"sub":"u","sid":"s","exp":` + exp + `,"fva":[1.5,12]`, nil, ""},
		{"actor", `"sub":"u","sid":"s","exp":` + exp + `,"act":{"sub":"user_admin","iss":"https://dashboard.clerk.com","sid":"sess_a"}`, nil, ""},
		{"iat far from exp", `"sub":"u","sid":"s","exp":` + itoa(now+90*86400) + `,"iat":` + itoa(now-90*86400) + `,"nbf":` + itoa(now-90*86400), nil, ""},
		{"empty strings", `"sub":"u","sid":"s","jti":"","exp":` + exp, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte("{" + tc.members + "," + base + "}")
			tok := sign(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "typ": "JWT"}, payload)
			first, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			var hitInto Claims
			hit, err := v.VerifyTo(context.Background(), tok, &hitInto)
			if err != nil || hit != &hitInto || !sameEntry(first, hit) {
				t.Fatalf("second verification: %v, a hit into dst: %v", err, hit == &hitInto)
			}
			for _, c := range []*Claims{first, hit} {
				if got, want := decodeNumbers(t, c.Payload()), decodeNumbers(t, payload); !reflect.DeepEqual(got, want) {
					t.Errorf("Payload = %s\nwant the members of %s", c.Payload(), payload)
				}
				for name, raw := range membersOf(t, payload) {
					got, ok := c.Custom(name)
					if want := decodeNumbers(t, raw); !ok || !reflect.DeepEqual(got, want) {
						t.Errorf("Custom(%q) = %#v, %v; want %#v", name, got, ok, want)
					}
					if _, ok := c.Custom(name + ".x"); ok && !bytes.HasPrefix(raw, []byte("{")) {
						t.Errorf("Custom(%q.x) found a member of a non-object", name)
					}
				}
				if tc.raw != "" && string(c.Raw) != tc.raw {
					t.Errorf("Raw = %s, want %s", c.Raw, tc.raw)
				}
				for _, name := range tc.inRaw {
					if !bytes.Contains(c.Raw, []byte(`"`+name+`":`)) {
						t.Errorf("Raw %s lacks %s, whose text Payload cannot write back", c.Raw, name)
					}
				}
			}
			if !reflect.DeepEqual(comparable(first), comparable(hit)) {
				t.Errorf("a hit differs from the first verification:\n%+v\n%+v", *first, *hit)
			}
		})
	}
}

// comparable is c without its pointer to the entry's decoded tree.
func comparable(c *Claims) Claims {
	out := *c
	out.custom = nil
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

func membersOf(t *testing.T, payload []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
