package verifier

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// m2mHeader is the header Clerk puts on M2M JWTs.
func m2mHeader(k *testKey) map[string]any {
	return map[string]any{"alg": "RS256", "kid": k.kid, "typ": "JWT", "cat": CategoryM2M}
}

// m2mClaimsAt is a valid M2M JWT payload issued at now (fixtures/machine.ts's
// shape: scopes are the machines it may call, space-separated).
func m2mClaimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss": "https://clerk.m2m.example.test", "sub": "mch_2vYVtestTESTtestTESTtestTESTtest",
		"aud": []string{"mch_1xxxxx", "mch_2xxxxx"}, "scopes": "mch_1xxxxx mch_2xxxxx",
		"exp": now.Unix() + 3600, "iat": now.Unix(), "nbf": now.Unix() - 10, "jti": "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE",
	}
}

// oauthClaimsAt is a valid OAuth access token payload issued at now.
func oauthClaimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss": "https://clerk.oauth.example.test", "sub": "user_2vYVtestTESTtestTESTtestTESTtest",
		"client_id": "client_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU", "jti": "oat_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE",
		"scope": "read:foo write:bar", "exp": now.Unix() + 900, "iat": now.Unix(), "nbf": now.Unix() - 10,
	}
}

func signJSON(t testing.TB, k *testKey, header map[string]any, claims map[string]any) string {
	pb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, k, header, pb)
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestDetectType(t *testing.T) {
	k := testKeys(t)[0]
	now := time.Now()
	enc := base64.RawURLEncoding.EncodeToString
	session := mint(t, k, claimsAt(now))
	m2m := signJSON(t, k, m2mHeader(k), m2mClaimsAt(now))
	oauthHdr := map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}
	oauth := signJSON(t, k, oauthHdr, oauthClaimsAt(now))
	raw := func(header, payload string) string { return signRaw(t, k, []byte(header), []byte(payload)) }
	seg := strings.Split(m2m, ".")
	big := strings.Repeat("x", MaxTokenSize)

	cases := []struct {
		name, token string
		want        TokenType
	}{
		{"session", session, TokenSession},
		{"session without cat", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid}, claimsAt(now)), TokenSession},
		{"empty", "", TokenSession},
		{"one word", "hello", TokenSession},

		// Opaque tokens by prefix, whatever follows.
		{"mt_", "mt_0123456789abcdef0123456789abcdef", TokenM2M},
		{"mt_ bare", "mt_", TokenM2M},
		{"mt_ with dots", "mt_a.b.c", TokenM2M},
		{"mt_ with NUL", "mt_\x00", TokenM2M},
		{"mt_ oversized", "mt_" + big, TokenM2M},
		{"oat_", "oat_0123456789abcdef0123456789abcdef", TokenOAuth},
		{"oat_ with dots", "oat_a.b.c", TokenOAuth},
		{"ak_", "ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=", TokenAPIKey},
		{"ak_ bare", "ak_", TokenAPIKey},
		{"ak_ oversized", "ak_" + big, TokenAPIKey},
		{"prefix is case-sensitive", "MT_0123", TokenSession},
		{"prefix without underscore", "mt0123", TokenSession},
		{"prefix not at the start", " mt_0123", TokenSession},
		{"AK_", "AK_x", TokenSession},
		{"Oat_", "Oat_x", TokenSession},

		// JWTs by content.
		{"M2M JWT", m2m, TokenM2M},
		{"M2M JWT without cat or typ", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid}, m2mClaimsAt(now)), TokenM2M},
		{"M2M JWT with session cat", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "cat": CategorySession}, m2mClaimsAt(now)), TokenM2M},
		{"sub mch_ and typ at+jwt is M2M", signJSON(t, k, oauthHdr, m2mClaimsAt(now)), TokenM2M},
		{"sub exactly mch_", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "sub", "mch_")), TokenM2M},
		{"sub escaped mch_", raw(`{"alg":"RS256"}`, `{"sub":"\u006dch_1","exp":1}`), TokenM2M},
		{"sub MCH_", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "sub", "MCH_1")), TokenSession},
		{"sub mch without underscore", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "sub", "mch1")), TokenSession},
		{"sub a number", raw(`{"alg":"RS256"}`, `{"sub":1}`), TokenSession},
		{"sub an array", raw(`{"alg":"RS256"}`, `{"sub":["mch_1"]}`), TokenSession},
		{"sub mch_ nested only", raw(`{"alg":"RS256"}`, `{"sub":"user_1","act":{"sub":"mch_1"}}`), TokenSession},
		{"OAuth JWT", oauth, TokenOAuth},
		{"application/at+jwt", signJSON(t, k, with(oauthHdr, "typ", "application/at+jwt"), oauthClaimsAt(now)), TokenOAuth},
		{"application\\/at+jwt escaped", raw(`{"alg":"RS256","typ":"application\/at+jwt"}`, `{"sub":"user_1"}`), TokenOAuth},
		{"OAuth with session claims", signJSON(t, k, oauthHdr, claimsAt(now)), TokenOAuth},
		{"typ AT+JWT", signJSON(t, k, with(oauthHdr, "typ", "AT+JWT"), oauthClaimsAt(now)), TokenSession},
		{"typ at+JWT", signJSON(t, k, with(oauthHdr, "typ", "at+JWT"), oauthClaimsAt(now)), TokenSession},
		{"typ with space", signJSON(t, k, with(oauthHdr, "typ", "at+jwt "), oauthClaimsAt(now)), TokenSession},
		{"typ jwt", signJSON(t, k, with(oauthHdr, "typ", "jwt"), oauthClaimsAt(now)), TokenSession},
		{"typ a list", raw(`{"alg":"RS256","typ":["at+jwt"]}`, `{"sub":"user_1"}`), TokenSession},
		{"typ in the payload only", raw(`{"alg":"RS256"}`, `{"sub":"user_1","typ":"at+jwt"}`), TokenSession},

		// Not JWT format, or not decodable: a session token (which Verify
		// then refuses).
		{"M2M padded", m2m + "=", TokenSession},
		{"a.b.c=", "a.b.c=", TokenSession},
		{"M2M padded header", seg[0] + "=." + seg[1] + "." + seg[2], TokenSession},
		{"M2M standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(m2m), TokenSession},
		{"M2M with a space", " " + m2m, TokenSession},
		{"M2M with a space inside", seg[0] + ". " + seg[1] + "." + seg[2], TokenSession},
		{"M2M with NUL", m2m + "\x00", TokenSession},
		{"M2M with newline", seg[0] + "." + seg[1][:4] + "\n" + seg[1][4:] + "." + seg[2], TokenSession},
		{"M2M four segments", m2m + ".x", TokenSession},
		{"M2M two segments", seg[0] + "." + seg[1], TokenSession},
		{"M2M empty signature", seg[0] + "." + seg[1] + ".", TokenSession},
		{"M2M empty header", "." + seg[1] + "." + seg[2], TokenSession},
		{"M2M oversized", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "x", big)), TokenSession},
		{"M2M non-canonical bits", seg[0] + "." + seg[1][:len(seg[1])-1] + nonCanonical(seg[1]) + "." + seg[2], TokenSession},
		{"M2M header not JSON", enc([]byte("{")) + "." + seg[1] + "." + seg[2], TokenSession},
		{"M2M header null", enc([]byte("null")) + "." + seg[1] + "." + seg[2], TokenSession},
		{"M2M payload duplicate sub", raw(`{"alg":"RS256"}`, `{"sub":"mch_1","sub":"user_1"}`), TokenSession},
		{"M2M payload escaped duplicate", raw(`{"alg":"RS256"}`, `{"sub":"mch_1","\u0073ub":"mch_2"}`), TokenSession},
		{"M2M payload bad UTF-8", raw(`{"alg":"RS256"}`, "{\"sub\":\"mch_\xff\"}"), TokenSession},
		{"M2M payload trailing data", raw(`{"alg":"RS256"}`, `{"sub":"mch_1"}{}`), TokenSession},
		{"OAuth header duplicate typ", raw(`{"alg":"RS256","typ":"JWT","typ":"at+jwt"}`, `{"sub":"user_1"}`), TokenSession},
		{"OAuth payload not JSON", raw(`{"alg":"RS256","typ":"at+jwt"}`, `sub=user_1`), TokenSession},
		{"dots only", "..", TokenSession},
		{"NUL", "\x00", TokenSession},
		{"spaces", "   ", TokenSession},
		{"8 KiB of dots and letters", strings.Repeat("a.", MaxTokenSize/2+1), TokenSession},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := DetectType(tc.token); got != tc.want {
				t.Fatalf("DetectType = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestOpaque(t *testing.T) {
	k := testKeys(t)[0]
	now := time.Now()
	oauthHdr := map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}
	for token, want := range map[string]bool{
		"mt_0123456789abcdef0123456789abcdef":             true,
		"oat_0123456789abcdef0123456789abcdef":            true,
		"ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=": true,
		"ak_a.b.c": true,                      // API keys have no JWT format
		"mt_a.b.c": false, "oat_a.b.c": false, // JWT format: refused locally
		"mt_" + strings.Repeat("x", MaxTokenSize):      false, // oversized: refused locally
		signJSON(t, k, m2mHeader(k), m2mClaimsAt(now)): false,
		signJSON(t, k, oauthHdr, oauthClaimsAt(now)):   false,
		mint(t, k, claimsAt(now)):                      false,
		"":                                             false,
		"hello":                                        false,
	} {
		if got := Opaque(token); got != want {
			t.Errorf("Opaque(%.40q) = %v, want %v", token, got, want)
		}
	}
}

func TestNonSessionCategory(t *testing.T) {
	k := testKeys(t)[0]
	now := time.Now()
	pb, _ := json.Marshal(claimsAt(now))
	hdr := func(h string) string { return signRaw(t, k, []byte(h), pb) }
	session := mint(t, k, claimsAt(now))
	cases := []struct {
		name, token string
		want        bool
	}{
		{"session", session, false},
		{"ignore", hdr(`{"alg":"RS256","cat":"cl_I7d4PD111III"}`), false},
		{"absent", hdr(`{"alg":"RS256"}`), false},
		{"escaped session", hdr(`{"alg":"RS256","cat":"cl_B7d4PD111\u0041AA"}`), false},
		{"JWT template", hdr(`{"alg":"RS256","cat":"cl_B7d4PD222AAA"}`), true},
		{"M2M", hdr(`{"alg":"RS256","cat":"cl_B7d4PD333AAA"}`), true},
		{"unknown", hdr(`{"alg":"RS256","cat":"cl_B7d4PD444AAA"}`), true},
		{"session in another case", hdr(`{"alg":"RS256","cat":"cl_b7d4pd111aaa"}`), true},
		{"empty string", hdr(`{"alg":"RS256","cat":""}`), true},
		{"number: the header does not decode", hdr(`{"alg":"RS256","cat":333}`), false},
		{"null: the header does not decode", hdr(`{"alg":"RS256","cat":null}`), false},
		{"duplicate cat", hdr(`{"alg":"RS256","cat":"cl_B7d4PD111AAA","cat":"cl_B7d4PD222AAA"}`), false},
		{"cat in the payload only", signRaw(t, k, []byte(`{"alg":"RS256"}`), []byte(`{"cat":"cl_B7d4PD222AAA"}`)), false},
		{"padded", hdr(`{"alg":"RS256","cat":"cl_B7d4PD222AAA"}`) + "=", false},
		{"not a JWT", "cl_B7d4PD222AAA", false},
		{"opaque", "mt_0123", false},
		{"empty", "", false},
		{"oversized", signRaw(t, k, []byte(`{"alg":"RS256","cat":"cl_B7d4PD222AAA"}`), []byte(`{"x":"`+strings.Repeat("x", MaxTokenSize)+`"}`)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NonSessionCategory(tc.token); got != tc.want {
				t.Fatalf("NonSessionCategory = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDetectTypeEveryOffset moves the decisive bytes (sub "mch_…" and typ
// "at+jwt", literal and escaped) through every offset and segment length,
// so that each alignment of the encoded-segment filter and its tail are
// exercised: DetectType must agree with the full decode every time.
func TestDetectTypeEveryOffset(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	token := func(header, payload string) string { return enc([]byte(header)) + "." + enc([]byte(payload)) + ".c2ln" }
	subs := map[string]bool{`mch_1`: true, `mch_`: true, `\u006dch_1`: true, `m\u0063h_1`: true, `mch\u005f1`: true,
		`mch\u005F`: true, `user_1`: false, `mch`: false, `xmch_1`: false, `\\mch_1`: false}
	typs := map[string]bool{`at+jwt`: true, `application/at+jwt`: true, `application\/at+jwt`: true, `at\u002bjwt`: true,
		`\u0061t+jwt`: true, `at+jw\u0074`: true, `JWT`: false, `at+jw`: false, `xat+jwt`: false, `at+jwt\u0020`: false}
	n := 0
	for pad := 0; pad < 12; pad++ {
		fill := strings.Repeat("a", pad)
		for sub, m2m := range subs {
			for _, payload := range []string{
				`{"sub":"` + sub + `","x":"` + fill + `"}`,
				`{"x":"` + fill + `","sub":"` + sub + `"}`,
				`{"x":"` + fill + `", "sub" :"` + sub + `"}`,
			} {
				want := TokenSession
				if m2m {
					want = TokenM2M
				}
				tok := token(`{"alg":"RS256"}`, payload)
				if got := DetectType(tok); got != want {
					t.Errorf("payload %s: %s, want %s", payload, got, want)
				}
				if a, b := inspectJWT(tok); a != m2m || b {
					t.Errorf("payload %s: inspectJWT %v %v", payload, a, b)
				}
				n++
			}
		}
		for typ, oauth := range typs {
			for _, header := range []string{
				`{"typ":"` + typ + `","x":"` + fill + `"}`,
				`{"x":"` + fill + `","typ":"` + typ + `"}`,
			} {
				want := TokenSession
				if oauth {
					want = TokenOAuth
				}
				tok := token(header, `{"sub":"user_1"}`)
				if got := DetectType(tok); got != want {
					t.Errorf("header %s: %s, want %s", header, got, want)
				}
				n++
			}
		}
	}
	if n < 500 {
		t.Fatalf("only %d cases", n)
	}
}

// TestMachineFilterAgrees: on many shapes the filter never hides a machine
// JWT that the full decode finds.
func TestMachineFilterAgrees(t *testing.T) {
	for _, s := range []string{m2mSubjectPrefix, "at+jwt", `\u00`} {
		w := wordsOf(s)
		for k, start := range wordStart {
			// The word really is what encoding the string at offset k gives.
			buf := append(make([]byte, k), s...)
			enc := base64.RawURLEncoding.EncodeToString(append(buf, 0, 0))
			if got := enc[start : start+4]; le32(got, 0) != w[k] {
				t.Fatalf("%q at %d: word %q", s, k, got)
			}
		}
		// Found at every offset, up to the very end of a segment.
		for pad := 0; pad < 10; pad++ {
			for tail := 0; tail < 4; tail++ {
				b := strings.Repeat("x", pad) + s + strings.Repeat("y", tail)
				if seg := base64.RawURLEncoding.EncodeToString([]byte(b)); !mayHold(seg, &w, &w) {
					t.Fatalf("%q not found in %q (%s)", s, b, seg)
				}
			}
		}
	}
	k := testKeys(t)[0]
	now := time.Now()
	for i, tok := range []string{
		mint(t, k, claimsAt(now)),
		signJSON(t, k, m2mHeader(k), m2mClaimsAt(now)),
		signJSON(t, k, map[string]any{"alg": "RS256", "typ": "at+jwt"}, oauthClaimsAt(now)),
		signJSON(t, k, map[string]any{"alg": "RS256", "typ": "application/at+jwt"}, m2mClaimsAt(now)),
	} {
		first, second, _ := splitDots(tok)
		a, b := inspectJWT(tok)
		c, d := decodeMachineJWT(tok, first, second)
		if a != c || b != d {
			t.Fatalf("token %d: filtered %v %v, decoded %v %v", i, a, b, c, d)
		}
	}
}

func TestMachineIdentity(t *testing.T) {
	cases := []struct {
		m                       *Machine
		user, org, machine, why string
	}{
		{&Machine{Type: TokenOAuth, Subject: "user_1"}, "user_1", "", "", "OAuth acts for its subject"},
		{&Machine{Type: TokenOAuth, Subject: "other_1"}, "other_1", "", "", "OAuth: the subject, whatever it is (§3)"},
		{&Machine{Type: TokenAPIKey, Subject: "user_1"}, "user_1", "", "", "a user's API key"},
		{&Machine{Type: TokenAPIKey, Subject: "org_1"}, "", "org_1", "", "an organization's API key"},
		{&Machine{Type: TokenAPIKey, Subject: "mch_1"}, "", "", "", "a machine's API key: neither"},
		{&Machine{Type: TokenAPIKey, Subject: "users_1"}, "", "", "", "prefixes are exact"},
		{&Machine{Type: TokenM2M, Subject: "mch_1"}, "", "", "mch_1", "M2M: the machine"},
		{&Machine{Type: TokenM2M, Subject: "user_1"}, "", "", "user_1", "M2M: machineId is the subject (§3)"},
		{&Machine{Type: TokenSession, Subject: "user_1"}, "", "", "", "not a machine type"},
		{nil, "", "", "", "nil"},
	}
	for _, tc := range cases {
		if u, o, m := tc.m.UserID(), tc.m.OrgID(), tc.m.MachineID(); u != tc.user || o != tc.org || m != tc.machine {
			t.Errorf("%s: user %q org %q machine %q", tc.why, u, o, m)
		}
	}
}

func TestMachineScopesAndCustom(t *testing.T) {
	m := &Machine{Type: TokenM2M, Scopes: []string{"mch_a", "read:foo"},
		Claims: json.RawMessage(`{"tenant":{"region":"eu","seats":3},"aud":["mch_a"],"flag":true}`)}
	for s, want := range map[string]bool{"mch_a": true, "read:foo": true, "read": false, "MCH_A": false, "": false, "mch_a ": false} {
		if m.HasScope(s) != want {
			t.Errorf("HasScope(%q) = %v", s, !want)
		}
	}
	if v, ok := m.Custom("tenant.region"); !ok || v != "eu" {
		t.Errorf("tenant.region: %v %v", v, ok)
	}
	if v, ok := m.Custom("tenant.seats"); !ok || v != json.Number("3") {
		t.Errorf("numbers are json.Number: %#v %v", v, ok)
	}
	if v, ok := m.Custom("flag"); !ok || v != true {
		t.Errorf("flag: %v %v", v, ok)
	}
	for _, p := range []string{"", "tenant.region.x", "missing", "tenant.", ".tenant", "aud.0"} {
		if v, ok := m.Custom(p); ok {
			t.Errorf("Custom(%q) = %v", p, v)
		}
	}
	var none *Machine
	if none.HasScope("x") || (&Machine{}).HasScope("") {
		t.Error("scopes of nothing")
	}
	if _, ok := none.Custom("a"); ok {
		t.Error("claims of nil")
	}
	if _, ok := (&Machine{Claims: json.RawMessage(`[1]`)}).Custom("a"); ok {
		t.Error("claims that are not an object")
	}
	// Claims.Custom and Machine.Custom are the same lookup.
	r, perr := decodePayload(m.Claims)
	if perr != nil {
		t.Fatal(perr)
	}
	c := &Claims{Shared: &Shared{}}
	if _, err := c.seal(r); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tenant.region", "tenant.seats", "aud", "nope", ""} {
		a, okA := c.Custom(p)
		b, okB := m.Custom(p)
		if okA != okB || !reflect.DeepEqual(a, b) {
			t.Errorf("%q: Claims %v %v, Machine %v %v", p, a, okA, b, okB)
		}
	}
}
