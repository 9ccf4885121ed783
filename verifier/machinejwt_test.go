package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// machineNow is the verifiers' clock in these tests: a whole second, so
// that the exp boundaries below are exact.
var machineNow = time.Unix(1_760_000_000, 0)

func machineVerifier(t *testing.T, mut func(*Config)) (*Verifier, *testKey) {
	t.Helper()
	return staticVerifier(t, func(c *Config) {
		c.Now = func() time.Time { return machineNow }
		if mut != nil {
			mut(c)
		}
	})
}

func expectMachineKind(t *testing.T, v *Verifier, token string, want Kind) *Machine {
	t.Helper()
	m, err := v.VerifyMachineJWT(context.Background(), token)
	if KindOf(err) != want {
		t.Fatalf("want %q, got %v", want, err)
	}
	if err != nil {
		if m != nil {
			t.Fatal("a machine with an error")
		}
		var e *Error
		if !errors.As(err, &e) || e.Reason != want.Reason() {
			t.Fatalf("not an *Error with reason %s: %#v", want.Reason(), err)
		}
		if len(token) > 16 && strings.Contains(err.Error(), token) {
			t.Fatal("error contains the token")
		}
	}
	return m
}

func TestVerifyMachineJWTValid(t *testing.T) {
	v, k := machineVerifier(t, func(c *Config) { c.AuthorizedParties = []string{"https://app.example.com"} })
	now := machineNow
	oauthHdr := map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}
	cases := []struct {
		name   string
		token  string
		want   machineView
		custom map[string]any // Custom lookups that must hold
	}{
		{"M2M", signJSON(t, k, m2mHeader(k), m2mClaimsAt(now)), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{"mch_1xxxxx", "mch_2xxxxx"}, Expiry: now.Add(time.Hour),
			Claims: `{"aud":["mch_1xxxxx","mch_2xxxxx"],"scopes":"mch_1xxxxx mch_2xxxxx"}`,
		}, map[string]any{"scopes": "mch_1xxxxx mch_2xxxxx"}},
		{"M2M without cat and typ", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid}, with(m2mClaimsAt(now), "aud", nil)), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{"mch_1xxxxx", "mch_2xxxxx"}, Expiry: now.Add(time.Hour),
			Claims: `{"scopes":"mch_1xxxxx mch_2xxxxx"}`,
		}, nil},
		{"M2M scopes from aud", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "scopes", nil)), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{"mch_1xxxxx", "mch_2xxxxx"}, Expiry: now.Add(time.Hour),
			Claims: `{"aud":["mch_1xxxxx","mch_2xxxxx"]}`,
		}, nil},
		{"M2M scopes from an aud string", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "scopes", nil, "aud", "mch_one")), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{"mch_one"}, Expiry: now.Add(time.Hour), Claims: `{"aud":"mch_one"}`,
		}, nil},
		{"M2M without scopes, aud or jti", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "scopes", nil, "aud", nil, "jti", nil)), machineView{
			Type: TokenM2M, Subject: "mch_2vYVtestTESTtestTESTtestTESTtest", Scopes: []string{}, Expiry: now.Add(time.Hour),
		}, nil},
		{"M2M scopes claim wins over aud, empty parts left out", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "scopes", "  a  b\tc ")), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{"a", "b\tc"}, Expiry: now.Add(time.Hour),
			Claims: `{"aud":["mch_1xxxxx","mch_2xxxxx"],"scopes":"  a  b\tc "}`,
		}, nil},
		{"M2M empty scopes claim", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "scopes", "", "aud", nil)), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{}, Expiry: now.Add(time.Hour), Claims: `{"scopes":""}`,
		}, nil},
		{"M2M custom claims", signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "scopes", nil, "aud", nil,
			"tenant", map[string]any{"region": "eu", "seats": 3}, "azp", "https://evil.example", "sid", "sess_1")), machineView{
			Type: TokenM2M, ID: "mt_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "mch_2vYVtestTESTtestTESTtestTESTtest",
			Scopes: []string{}, Expiry: now.Add(time.Hour),
			Claims: `{"azp":"https://evil.example","sid":"sess_1","tenant":{"region":"eu","seats":3}}`,
		}, map[string]any{"tenant.region": "eu", "tenant.seats": json.Number("3"), "sid": "sess_1"}},
		{"M2M escaped member names", signRaw(t, k, []byte(`{"alg":"RS256","kid":"`+k.kid+`"}`),
			[]byte(`{"\u0073ub":"mch_1","exp":`+jsonNum(now.Unix()+60)+`,"\u006a\u0074\u0069":"mt_1","x\"y":1,"\u00e9":"é"}`)), machineView{
			Type: TokenM2M, ID: "mt_1", Subject: "mch_1", Scopes: []string{}, Expiry: now.Add(time.Minute),
			Claims: `{"x\"y":1,"é":"é"}`,
		}, map[string]any{"x\"y": json.Number("1"), "é": "é"}},
		{"OAuth scope", signJSON(t, k, oauthHdr, oauthClaimsAt(now)), machineView{
			Type: TokenOAuth, ID: "oat_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "user_2vYVtestTESTtestTESTtestTESTtest",
			ClientID: "client_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU", Scopes: []string{"read:foo", "write:bar"}, Expiry: now.Add(15 * time.Minute),
		}, nil},
		{"OAuth scp wins over scope", signJSON(t, k, with(oauthHdr, "typ", "application/at+jwt"), with(oauthClaimsAt(now), "scp", []string{"a", "", "b"})), machineView{
			Type: TokenOAuth, ID: "oat_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU1vHjE", Subject: "user_2vYVtestTESTtestTESTtestTESTtest",
			ClientID: "client_2xKa9Bgv7NxMRDFyQw8LpZ3cTmU", Scopes: []string{"a", "b"}, Expiry: now.Add(15 * time.Minute),
		}, nil},
		{"OAuth without scopes, client_id or jti", signJSON(t, k, oauthHdr, with(oauthClaimsAt(now), "scope", nil, "client_id", nil, "jti", nil)), machineView{
			Type: TokenOAuth, Subject: "user_2vYVtestTESTtestTESTtestTESTtest", Scopes: []string{}, Expiry: now.Add(15 * time.Minute),
		}, nil},
		{"OAuth with session claims", signJSON(t, k, oauthHdr, with(claimsAt(now), "scope", "x")), machineView{
			Type: TokenOAuth, ID: "abcdef0123456789abcd", Subject: "user_123", Scopes: []string{"x"}, Expiry: now.Add(time.Minute),
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := expectMachineKind(t, v, tc.token, "")
			if got := viewOf(m); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if m.Claims != nil && !json.Valid(m.Claims) {
				t.Errorf("claims are not JSON: %s", m.Claims)
			}
			for path, want := range tc.custom {
				if v, ok := m.Custom(path); !ok || !reflect.DeepEqual(v, want) {
					t.Errorf("Custom(%q) = %#v, %v; want %#v", path, v, ok, want)
				}
			}
			for _, path := range []string{"sub", "iss", "exp", "nbf", "iat", "jti"} {
				if v, ok := m.Custom(path); ok {
					t.Errorf("Custom(%q) = %v: not a custom claim", path, v)
				}
			}
		})
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

// machineView is a Machine's exported fields, comparable with DeepEqual
// (a Machine must not be copied).
type machineView struct {
	Type                        TokenType
	ID, Subject, Name, ClientID string
	Scopes                      []string
	Claims                      string
	Expiry                      time.Time
}

func viewOf(m *Machine) machineView {
	return machineView{Type: m.Type, ID: m.ID, Subject: m.Subject, Name: m.Name, ClientID: m.ClientID,
		Scopes: m.Scopes, Claims: string(m.Claims), Expiry: m.Expiry}
}

func TestVerifyMachineJWTRejects(t *testing.T) {
	v, k := machineVerifier(t, nil)
	other := testKeys(t)[1]
	now := machineNow
	enc := base64.RawURLEncoding.EncodeToString
	m2mHdr, m2m := m2mHeader(k), m2mClaimsAt(now)
	oauthHdr, oauth := map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}, oauthClaimsAt(now)
	good := signJSON(t, k, m2mHdr, m2m)
	parts := strings.Split(good, ".")
	pb, _ := json.Marshal(m2m)
	hsInput := enc([]byte(`{"alg":"HS256","kid":"`+k.kid+`","typ":"JWT"}`)) + "." + enc(pb)
	mac := hmac.New(sha256.New, []byte(pemOf(t, k)))
	mac.Write([]byte(hsInput))
	m2mRaw := func(header string) string { return signRaw(t, k, []byte(header), pb) }
	kid := `"kid":"` + k.kid + `"`

	cases := []struct {
		name, token string
		want        Kind
	}{
		{"M2M ok", good, ""},
		{"OAuth ok", signJSON(t, k, oauthHdr, oauth), ""},

		// Neither an M2M JWT nor an OAuth access token.
		{"session token", mint(t, k, claimsAt(now)), KindNotMachine},
		{"JWT template", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "cat": "cl_B7d4PD222AAA"}, with(claimsAt(now), "sid", nil)), KindNotMachine},
		{"M2M cat with a user subject", signJSON(t, k, m2mHdr, with(m2m, "sub", "user_1")), KindNotMachine},
		{"typ AT+JWT", signJSON(t, k, with(oauthHdr, "typ", "AT+JWT"), oauth), KindNotMachine},
		{"sub MCH_", signJSON(t, k, m2mHdr, with(m2m, "sub", "MCH_1")), KindNotMachine},
		{"sub missing, typ JWT", signJSON(t, k, m2mHdr, with(m2m, "sub", nil)), KindNotMachine},

		// Structure, as for sessions.
		{"empty", "", KindMalformed},
		{"opaque M2M token", "mt_0123456789abcdef0123456789abcdef", KindMalformed},
		{"opaque API key", "ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=", KindMalformed},
		{"mt_ with dots", "mt_a.b.c", KindMalformed},
		{"padded", good + "=", KindMalformed},
		{"four segments", good + ".x", KindMalformed},
		{"oversized", signJSON(t, k, m2mHdr, with(m2m, "x", strings.Repeat("x", MaxTokenSize))), KindOversized},
		{"payload duplicate sub", signRaw(t, k, []byte(`{"alg":"RS256",`+kid+`}`), []byte(`{"sub":"mch_1","sub":"user_1","exp":1}`)), KindMalformed},
		{"payload not an object", signRaw(t, k, []byte(`{"alg":"RS256",`+kid+`,"typ":"at+jwt"}`), []byte(`["mch_1"]`)), KindMalformed},
		{"header duplicate typ", signRaw(t, k, []byte(`{"alg":"RS256",`+kid+`,"typ":"JWT","typ":"at+jwt"}`), pb), KindMalformed},
		{"zip", m2mRaw(`{"alg":"RS256",` + kid + `,"zip":"DEF"}`), KindMalformed},

		// Header.
		{"alg none", enc([]byte(`{"alg":"none",`+kid+`}`)) + "." + parts[1] + ".e30", KindAlgNotAllowed},
		{"alg none OAuth", signRaw(t, k, []byte(`{"alg":"none",`+kid+`,"typ":"at+jwt"}`), []byte(`{"sub":"user_1","exp":1}`)), KindAlgNotAllowed},
		{"alg HS256 with the public key", hsInput + "." + enc(mac.Sum(nil)), KindAlgNotAllowed},
		{"alg RS384", m2mRaw(`{"alg":"RS384",` + kid + `}`), KindAlgNotAllowed},
		{"alg RS512", m2mRaw(`{"alg":"RS512",` + kid + `}`), KindAlgNotAllowed},
		{"alg PS256", m2mRaw(`{"alg":"PS256",` + kid + `}`), KindAlgNotAllowed},
		{"alg missing", m2mRaw(`{` + kid + `}`), KindAlgNotAllowed},
		{"crit", m2mRaw(`{"alg":"RS256",` + kid + `,"crit":["exp"],"exp":1}`), KindUnsupportedCrit},
		{"M2M with typ at+jwt is M2M, and M2M typ must be JWT", signJSON(t, k, oauthHdr, m2m), KindBadTyp},
		{"M2M with typ application/at+jwt", signJSON(t, k, with(oauthHdr, "typ", "application/at+jwt"), m2m), KindBadTyp},
		{"M2M with typ jwt", signJSON(t, k, with(m2mHdr, "typ", "jwt"), m2m), KindBadTyp},
		{"M2M with session cat", signJSON(t, k, with(m2mHdr, "cat", CategorySession), m2m), KindBadCategory},
		{"M2M with ignore cat", signJSON(t, k, with(m2mHdr, "cat", CategoryIgnore), m2m), KindBadCategory},
		{"M2M with template cat", signJSON(t, k, with(m2mHdr, "cat", "cl_B7d4PD222AAA"), m2m), KindBadCategory},
		{"M2M with empty cat", signJSON(t, k, with(m2mHdr, "cat", ""), m2m), KindBadCategory},
		{"M2M bad cat refused before the key", signJSON(t, other, with(m2mHdr, "cat", CategoryIgnore, "kid", "ins_nope"), m2m), KindBadCategory},
		{"OAuth cat is not checked", signJSON(t, k, with(oauthHdr, "cat", CategorySession), oauth), ""},
		{"OAuth with template cat", signJSON(t, k, with(oauthHdr, "cat", "cl_B7d4PD222AAA"), oauth), ""},

		// Key and signature, before any claim.
		{"kid missing", signJSON(t, k, with(m2mHdr, "kid", nil), m2m), KindMissingKID},
		{"kid unknown", signJSON(t, k, with(m2mHdr, "kid", "ins_nope"), m2m), KindUnknownKID},
		{"signed by another key", signJSON(t, other, m2mHdr, m2m), KindBadSignature},
		{"tampered payload", parts[0] + "." + enc([]byte(strings.Replace(string(pb), "mch_2vYV", "mch_evil", 1))) + "." + parts[2], KindBadSignature},
		{"expired and forged", signJSON(t, other, m2mHdr, with(m2m, "exp", now.Unix()-3600)), KindBadSignature},
		{"embedded jwk", signJSON(t, other, with(m2mHdr, "jwk", json.RawMessage(other.jwk(t))), m2m), KindBadSignature},

		// Claims.
		{"expired", signJSON(t, k, m2mHdr, with(m2m, "exp", now.Unix()-6)), KindExpired},
		{"expired at exactly now - skew", signJSON(t, k, m2mHdr, with(m2m, "exp", now.Unix()-5)), KindExpired},
		{"within the skew", signJSON(t, k, m2mHdr, with(m2m, "exp", now.Unix()-4)), ""},
		{"within the skew by a millisecond", signJSON(t, k, m2mHdr, with(m2m, "exp", float64(now.Unix())-4.99)), ""},
		{"OAuth expired", signJSON(t, k, oauthHdr, with(oauth, "exp", now.Unix()-60)), KindExpired},
		{"nbf in the future", signJSON(t, k, m2mHdr, with(m2m, "nbf", now.Unix()+30)), KindNotYetValid},
		{"nbf within the skew", signJSON(t, k, m2mHdr, with(m2m, "nbf", now.Unix()+5)), ""},
		{"iat in the future", signJSON(t, k, m2mHdr, with(m2m, "iat", now.Unix()+30)), KindIATInFuture},
		{"OAuth iat in the future", signJSON(t, k, oauthHdr, with(oauth, "iat", now.Unix()+30)), KindIATInFuture},
		{"exp missing", signJSON(t, k, m2mHdr, with(m2m, "exp", nil)), KindInvalidClaim},
		{"OAuth exp missing", signJSON(t, k, oauthHdr, with(oauth, "exp", nil)), KindInvalidClaim},
		{"exp a string", signJSON(t, k, m2mHdr, with(m2m, "exp", "99999999999")), KindInvalidClaim},
		{"exp null", signRaw(t, k, []byte(`{"alg":"RS256",`+kid+`}`), []byte(`{"sub":"mch_1","exp":null}`)), KindInvalidClaim},
		{"exp overflow", signJSON(t, k, m2mHdr, with(m2m, "exp", 1e300)), KindInvalidClaim},
		{"nbf a string", signJSON(t, k, m2mHdr, with(m2m, "nbf", "0")), KindInvalidClaim},
		{"OAuth sub a number", signJSON(t, k, oauthHdr, with(oauth, "sub", 42)), KindMissingClaim},
		{"OAuth sub missing", signJSON(t, k, oauthHdr, with(oauth, "sub", nil)), KindMissingClaim},
		{"OAuth sub empty", signJSON(t, k, oauthHdr, with(oauth, "sub", "")), KindInvalidClaim},
		{"jti a number", signJSON(t, k, m2mHdr, with(m2m, "jti", 7)), KindInvalidClaim},
		{"scopes an array", signJSON(t, k, m2mHdr, with(m2m, "scopes", []string{"mch_1"})), KindInvalidClaim},
		{"scopes null", signRaw(t, k, []byte(`{"alg":"RS256",`+kid+`}`), []byte(`{"sub":"mch_1","exp":`+jsonNum(now.Unix()+60)+`,"scopes":null}`)), KindInvalidClaim},
		{"aud a number", signJSON(t, k, m2mHdr, with(m2m, "aud", 1)), KindInvalidClaim},
		{"OAuth aud a number", signJSON(t, k, oauthHdr, with(oauth, "aud", 1)), KindInvalidClaim},
		{"OAuth client_id a number", signJSON(t, k, oauthHdr, with(oauth, "client_id", 1)), KindInvalidClaim},
		{"OAuth scp a string", signJSON(t, k, oauthHdr, with(oauth, "scp", "read")), KindInvalidClaim},
		{"OAuth scp of numbers", signJSON(t, k, oauthHdr, with(oauth, "scp", []int{1})), KindInvalidClaim},
		{"OAuth scp null", signRaw(t, k, []byte(`{"alg":"RS256",`+kid+`,"typ":"at+jwt"}`), []byte(`{"sub":"user_1","exp":`+jsonNum(now.Unix()+60)+`,"scp":null}`)), KindInvalidClaim},
		{"OAuth scope an array", signJSON(t, k, oauthHdr, with(oauth, "scope", []string{"read"})), KindInvalidClaim},

		// Not pinned, not applicable (§11.3).
		{"iss anything", signJSON(t, k, m2mHdr, with(m2m, "iss", "https://evil.example")), ""},
		{"iss a number", signJSON(t, k, m2mHdr, with(m2m, "iss", 42)), ""},
		{"iss missing", signJSON(t, k, m2mHdr, with(m2m, "iss", nil)), ""},
		{"OAuth iss anything", signJSON(t, k, oauthHdr, with(oauth, "iss", "https://evil.example")), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			expectMachineKind(t, v, tc.token, tc.want)
		})
	}
}

func TestVerifyMachineJWTConfig(t *testing.T) {
	now := machineNow
	t.Run("authorized parties do not apply", func(t *testing.T) {
		v, k := machineVerifier(t, func(c *Config) { c.AuthorizedParties = []string{"https://app.example.com"} })
		for _, azp := range []any{"https://evil.example", 42, nil} {
			expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "azp", azp)), "")
			expectMachineKind(t, v, signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}, with(oauthClaimsAt(now), "azp", azp)), "")
		}
	})
	t.Run("audience when configured", func(t *testing.T) {
		v, k := machineVerifier(t, func(c *Config) { c.Audience = []string{"mch_2xxxxx"} })
		for aud, want := range map[any]Kind{"mch_2xxxxx": "", "mch_1xxxxx": KindBadAudience, "": KindBadAudience} {
			expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "aud", aud)), want)
		}
		expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), m2mClaimsAt(now)), "")
		expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "aud", nil)), KindBadAudience)
		expectMachineKind(t, v, signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}, oauthClaimsAt(now)), KindBadAudience)
	})
	t.Run("clock skew", func(t *testing.T) {
		v, k := machineVerifier(t, func(c *Config) { c.ClockSkew = time.Minute })
		expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "exp", now.Unix()-59)), "")
		expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "exp", now.Unix()-60)), KindExpired)
		v, _ = machineVerifier(t, func(c *Config) { c.ClockSkew = -1 })
		expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "exp", now.Unix())), KindExpired)
		expectMachineKind(t, v, signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(now), "exp", now.Unix()+1)), "")
	})
	t.Run("session options do not apply", func(t *testing.T) {
		v, k := machineVerifier(t, func(c *Config) { c.HeaderTypes = []string{"JWT"}; c.AllowNonSessionTokens = true })
		expectMachineKind(t, v, signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}, oauthClaimsAt(now)), "")
		expectMachineKind(t, v, signJSON(t, k, with(m2mHeader(k), "cat", "cl_B7d4PD222AAA"), m2mClaimsAt(now)), KindBadCategory)
		expectMachineKind(t, v, mint(t, k, claimsAt(now)), KindNotMachine)
	})
	t.Run("a single configured key", func(t *testing.T) {
		k := testKeys(t)[0]
		keys, err := StaticPEM(pemOf(t, k))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := New(Config{Keys: keys, Now: func() time.Time { return now }})
		expectMachineKind(t, v, signJSON(t, k, with(m2mHeader(k), "kid", nil), m2mClaimsAt(now)), "")
		expectMachineKind(t, v, signJSON(t, testKeys(t)[2], m2mHeader(k), m2mClaimsAt(now)), KindBadSignature)
	})
	t.Run("keys not loaded stay unavailable", func(t *testing.T) {
		k := testKeys(t)[0]
		v, _ := New(Config{Keys: failingKeys{newError(KindKeysUnavailable, "not yet")}, Now: func() time.Time { return now }})
		_, err := v.VerifyMachineJWT(context.Background(), signJSON(t, k, m2mHeader(k), m2mClaimsAt(now)))
		if !IsKeysUnavailable(err) || ReasonOf(err) != ReasonJWKRemoteFailedToLoad {
			t.Fatalf("want keys unavailable, got %v", err)
		}
		kc := NewKeyCache(&fakeSource{err: errDown}, CacheOptions{})
		defer kc.Close()
		v, _ = New(Config{Keys: kc, Now: func() time.Time { return now }})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := v.VerifyMachineJWT(ctx, signJSON(t, k, m2mHeader(k), m2mClaimsAt(now))); !IsKeysUnavailable(err) {
			t.Fatalf("want keys unavailable, got %v", err)
		}
	})
}

// TestSessionPathRefusesMachineJWTs: Verify stays as it was; the caller
// tells token-type-mismatch from DetectType and NonSessionCategory.
func TestSessionPathRefusesMachineJWTs(t *testing.T) {
	v, k := machineVerifier(t, nil)
	now := machineNow
	oauthHdr := map[string]any{"alg": "RS256", "kid": k.kid, "typ": "at+jwt"}
	for _, tc := range []struct {
		name, token string
		want        Kind
		detect      TokenType
		nonSession  bool
	}{
		{"M2M JWT", signJSON(t, k, m2mHeader(k), m2mClaimsAt(now)), KindNotSession, TokenM2M, true},
		{"M2M JWT without cat", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid}, with(m2mClaimsAt(now), "iss", testIssuer, "sid", "sess_1")), KindNotSession, TokenM2M, false},
		{"OAuth JWT", signJSON(t, k, oauthHdr, with(claimsAt(now), "exp", now.Unix()+60)), KindBadTyp, TokenOAuth, false},
		{"application/at+jwt", signJSON(t, k, with(oauthHdr, "typ", "application/at+jwt"), claimsAt(now)), KindBadTyp, TokenOAuth, false},
		{"JWT template", signJSON(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "cat": "cl_B7d4PD222AAA"}, claimsAt(now)), KindNotSession, TokenSession, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectKind(t, v, tc.token, tc.want)
			if tc.want == KindNotSession && tc.want.Reason() != ReasonTokenTypeMismatch {
				t.Fatal("not a type mismatch")
			}
			if got := DetectType(tc.token); got != tc.detect {
				t.Fatalf("DetectType = %s, want %s", got, tc.detect)
			}
			if got := NonSessionCategory(tc.token); got != tc.nonSession {
				t.Fatalf("NonSessionCategory = %v", got)
			}
		})
	}
	expectKind(t, v, mint(t, k, claimsAt(now)), "")
}

func TestMachineJWTTokenCache(t *testing.T) {
	var hits, misses atomic.Int64
	clock := newFakeClock()
	clock.now = machineNow
	tc := NewTokenCache(64)
	v, k := staticVerifier(t, func(c *Config) {
		c.Now = clock.Now
		c.TokenCache = tc
		c.OnCacheLookup = func(hit bool) {
			if hit {
				hits.Add(1)
			} else {
				misses.Add(1)
			}
		}
	})
	ctx := context.Background()
	m2m := signJSON(t, k, m2mHeader(k), with(m2mClaimsAt(machineNow), "exp", machineNow.Unix()+60))
	session := mint(t, k, claimsAt(machineNow))
	first, err := v.VerifyMachineJWT(ctx, m2m)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.VerifyMachineJWT(ctx, m2m)
	if err != nil || second != first || hits.Load() != 1 || misses.Load() != 1 {
		t.Fatalf("second lookup: %v, same %v, hits %d misses %d", err, second == first, hits.Load(), misses.Load())
	}
	// A cached machine is never a session, nor a cached session a machine.
	expectKind(t, v, m2m, KindNotSession)
	if _, err := v.Verify(ctx, session); err != nil {
		t.Fatal(err)
	}
	expectMachineKind(t, v, session, KindNotMachine)
	if _, err := v.Verify(ctx, session); err != nil {
		t.Fatal("the session left the cache")
	}
	if tc.Len() != 2 {
		t.Fatalf("%d cached", tc.Len())
	}
	// The entry lives no longer than exp.
	clock.Add(66 * time.Second)
	expectMachineKind(t, v, m2m, KindExpired)
}

// TestMachineJWTPeerFixtures runs the machine tokens of the clerk/javascript
// fixtures (and every other fixture token) through VerifyMachineJWT at the
// case's clock, with the case's keys and audience.
func TestMachineJWTPeerFixtures(t *testing.T) {
	files := loadFixtures(t)
	want := map[string]struct {
		kind   Kind
		typ    TokenType
		scopes []string
	}{
		"oauth_at_jwt_to_session_verifier":             {"", TokenOAuth, []string{"read:foo", "write:bar"}},
		"oauth_application_at_jwt_to_session_verifier": {"", TokenOAuth, []string{"read:foo", "write:bar"}},
		"oauth_at_jwt_with_oauth_header_types":         {"", TokenOAuth, []string{"read:foo", "write:bar"}},
		"recipe_m2m_jwt_as_session_token":              {"", TokenM2M, []string{"mch_1xxxxx", "mch_2xxxxx"}},
		"recipe_aud_array_contains_audience":           {"", TokenM2M, []string{"mch_1xxxxx", "mch_2xxxxx"}},
		"sub_machine_prefix_with_sid":                  {"", TokenM2M, []string{}},
		"recipe_aud_array_missing_audience":            {KindBadAudience, "", nil},
		"recipe_alg_none_oauth_shape":                  {KindAlgNotAllowed, "", nil},
		// Tokens of Clerk's M2M branch of 2024 carry the JWT-template
		// category, which an M2M JWT must not (§1.2; @clerk/backend too).
		"real_clerk_machine_token_cat_222":         {KindBadCategory, "", nil},
		"real_clerk_machine_token_expired":         {KindBadCategory, "", nil},
		"recipe_m2m_category_header_with_user_sub": {KindNotMachine, "", nil},
		"cat_m2m_header":                           {KindNotMachine, "", nil},
	}
	seen := 0
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	}) {
		f := files[name]
		for i := range f.Cases {
			c := &f.Cases[i]
			if c.Token == "" {
				continue
			}
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				cfg := configFor(t, name, f, c)
				v, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				m, err := v.VerifyMachineJWT(context.Background(), c.Token)
				if err != nil && len(c.Token) > 16 && strings.Contains(err.Error(), c.Token) {
					t.Fatal("error contains the token")
				}
				if w, ok := want[c.Name]; ok && name == "clerk_js_backend" {
					seen++
					if KindOf(err) != w.kind {
						t.Fatalf("want %q, got %v", w.kind, err)
					}
					if err == nil && (m.Type != w.typ || !reflect.DeepEqual(m.Scopes, w.scopes) || m.Expiry.IsZero()) {
						t.Fatalf("machine %+v", m)
					}
					return
				}
				// Any other fixture token: a machine only if DetectType says so.
				if err == nil {
					if d := DetectType(c.Token); d != m.Type {
						t.Fatalf("verified as %s, detected as %s", m.Type, d)
					}
					if cfg.HeaderTypes == nil && !cfg.AllowNonSessionTokens {
						if _, serr := v.Verify(context.Background(), c.Token); serr == nil {
							t.Fatal("verified both as a session and as a machine")
						}
					}
				} else if KindOf(err) == "" {
					t.Fatalf("rejection without a kind: %v", err)
				}
			})
		}
	}
	if seen != len(want) {
		t.Fatalf("saw %d of the %d machine cases", seen, len(want))
	}
}
