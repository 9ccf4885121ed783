package bapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testM2MToken = "mt_8XOIucKvqHVr5tYP123456789abcdefghij"
	testAPIKey   = "ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9="
	testOAuth    = "oat_8XOIucKvqHVr5tYP123456789abcdefghij"
)

// Answers shaped like the Backend API's (2026-05-12).
const (
	m2mJSON = `{"object":"machine_to_machine_token","id":"mt_0123456789abcdef0123456789abcdef",
"subject":"mch_2vYVtestTESTtestTESTtestTE","scopes":["mch_1xxxxxxxxxxxxxxxxxxxxxxxxxx","mch_2xxxxxxxxxxxxxxxxxxxxxxxxxx"],
"claims":{"foo":"bar","n":1},"revoked":false,"revocation_reason":null,"expired":false,"expiration":1790000000123,
"last_used_at":null,"created_at":1745185445567,"updated_at":1745185445567}`
	apiKeyJSON = `{"object":"api_key","id":"ak_0123456789abcdef0123456789abcdef","type":"api_key","name":"my-api-key",
"subject":"org_2vYVtestTESTtestTESTtestTE","description":null,"claims":null,"scopes":["read:foo","write:bar"],
"revoked":false,"revocation_reason":null,"expired":false,"expiration":null,"created_by":null,"last_used_at":null,
"created_at":1745354860746,"updated_at":1745354860746}`
	oauthJSON = `{"object":"clerk_idp_oauth_access_token","id":"oat_0123456789abcdef0123456789abcdef",
"client_id":"client_2VTWUzvGC5UhdJCNx6xG1D98edc","subject":"user_2vYVtestTESTtestTESTtestTE",
"scopes":["read:foo","write:bar"],"revoked":false,"revocation_reason":null,"expired":false,"expiration":1790000000000,
"created_at":1744928754551,"updated_at":1744928754551}`
)

type verifyCase struct {
	name, path, field, token, answer, object, idPrefix string
	call                                               func(c *Client, ctx context.Context, tok string) (*MachineToken, error)
}

var verifyCases = []verifyCase{
	{"m2m", "/m2m_tokens/verify", "token", testM2MToken, m2mJSON, "machine_to_machine_token", "mt_", (*Client).VerifyM2MToken},
	{"api_key", "/api_keys/verify", "secret", testAPIKey, apiKeyJSON, "api_key", "ak_", (*Client).VerifyAPIKey},
	{"oauth", "/oauth_applications/access_tokens/verify", "access_token", testOAuth, oauthJSON, "clerk_idp_oauth_access_token", "oat_", (*Client).VerifyOAuthToken},
}

type seen struct {
	method, path string
	header       http.Header
	body         []byte
}

// recorder answers body to every request and keeps what it saw.
func recorder(body string) (http.HandlerFunc, func() []seen) {
	var mu sync.Mutex
	var got []seen
	h := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.EscapedPath(), r.Header.Clone(), b})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
	return h, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), got...) }
}

func TestVerifyRequests(t *testing.T) {
	for _, tc := range verifyCases {
		for _, machineKey := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/machine key %v", tc.name, machineKey), func(t *testing.T) {
				h, got := recorder(tc.answer)
				opts := []Option{WithAPIVersion("2024-10-01")} // must not reach these calls
				if machineKey {
					opts = append(opts, WithMachineSecretKey(testMachineKey))
				}
				e := newEnv(t, h, opts...)
				// A base spelled with /v1 still reaches the unversioned path.
				c, err := New(testKey, append(opts, WithBaseURL(e.srv.URL+"/v1"))...)
				if err != nil {
					t.Fatal(err)
				}
				e.sensitive = append(e.sensitive, tc.token)
				if _, err := tc.call(c, context.Background(), tc.token); err != nil {
					t.Fatal(err)
				}
				r := got()
				if len(r) != 1 {
					t.Fatalf("%d requests", len(r))
				}
				if r[0].method != http.MethodPost || r[0].path != tc.path {
					t.Fatalf("request %s %s", r[0].method, r[0].path)
				}
				var body map[string]any
				if err := json.Unmarshal(r[0].body, &body); err != nil || len(body) != 1 || body[tc.field] != tc.token {
					t.Fatalf("body %s", r[0].body)
				}
				bearer := testKey
				if machineKey && tc.name == "m2m" {
					bearer = testMachineKey
				}
				for name, want := range map[string]string{
					"Authorization":     "Bearer " + bearer,
					"Clerk-Api-Version": MachineAPIVersion,
					"Content-Type":      "application/json",
					"Accept":            "application/json",
					"User-Agent":        "caddy-clerk/" + Version,
				} {
					if r[0].header.Get(name) != want {
						t.Errorf("%s: got %q, want %q", name, r[0].header.Get(name), want)
					}
				}
			})
		}
	}
	if MachineAPIVersion != "2026-05-12" {
		t.Fatal(MachineAPIVersion)
	}

	// The other calls keep their version and send no body.
	h, got := recorder(`{"keys":[]}`)
	e := newEnv(t, h, WithMachineSecretKey(testMachineKey))
	if _, err := e.c.JWKS(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := got()[0]
	if r.header.Get("Clerk-API-Version") != DefaultAPIVersion || r.header.Get("Content-Type") != "" || len(r.body) != 0 ||
		r.header.Get("Authorization") != "Bearer "+testKey {
		t.Fatalf("jwks request %v %q", r.header, r.body)
	}
}

func TestVerifyParsesAnswers(t *testing.T) {
	h, _ := recorder(m2mJSON)
	e := newEnv(t, h)
	mt, err := e.c.VerifyM2MToken(context.Background(), testM2MToken)
	if err != nil {
		t.Fatal(err)
	}
	if mt.Type != "m2m_token" || mt.Object != "machine_to_machine_token" || mt.ID != "mt_0123456789abcdef0123456789abcdef" ||
		mt.Subject != "mch_2vYVtestTESTtestTESTtestTE" || strings.Join(mt.Scopes, " ") != "mch_1xxxxxxxxxxxxxxxxxxxxxxxxxx mch_2xxxxxxxxxxxxxxxxxxxxxxxxxx" ||
		string(mt.Claims) != `{"foo":"bar","n":1}` || mt.Revoked || mt.Expired || mt.Expiration != 1790000000123 ||
		mt.Name != "" || mt.ClientID != "" {
		t.Fatalf("%+v", mt)
	}

	h, _ = recorder(apiKeyJSON)
	e = newEnv(t, h)
	mt, err = e.c.VerifyAPIKey(context.Background(), testAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	if mt.Type != "api_key" || mt.Object != "api_key" || mt.ID != "ak_0123456789abcdef0123456789abcdef" || mt.Name != "my-api-key" ||
		mt.Subject != "org_2vYVtestTESTtestTESTtestTE" || mt.Claims != nil || mt.Expiration != 0 || len(mt.Scopes) != 2 {
		t.Fatalf("%+v", mt)
	}

	h, _ = recorder(oauthJSON)
	e = newEnv(t, h)
	mt, err = e.c.VerifyOAuthToken(context.Background(), testOAuth)
	if err != nil {
		t.Fatal(err)
	}
	if mt.Type != "oauth_token" || mt.Object != "clerk_idp_oauth_access_token" || mt.ClientID != "client_2VTWUzvGC5UhdJCNx6xG1D98edc" ||
		mt.Subject != "user_2vYVtestTESTtestTESTtestTE" || mt.Claims != nil || mt.Expiration != 1790000000000 {
		t.Fatalf("%+v", mt)
	}

	// Members absent, null or in other spellings Clerk may use.
	for body, want := range map[string]int64{
		`{"object":"api_key","id":"ak_1"}`:                                        0,
		`{"object":"api_key","id":"ak_1","expiration":null,"claims":null}`:        0,
		`{"object":"api_key","id":"ak_1","expiration":1.79e12,"active":true}`:     1790000000000,
		`{"object":"api_key","id":"ak_1","expiration":1790000000001,"name":null}`: 1790000000001,
	} {
		h, _ := recorder(body)
		e := newEnv(t, h)
		mt, err := e.c.VerifyAPIKey(context.Background(), testAPIKey)
		if err != nil || mt.Expiration != want || mt.Claims != nil {
			t.Errorf("%s: %+v %v", body, mt, err)
		}
	}
}

// Every 200 that §11.2 refuses is IsTokenInvalid, and nothing else.
func TestVerifyRejectsAnswers(t *testing.T) {
	swap := func(s, from, to string) string {
		if !strings.Contains(s, from) {
			panic(from)
		}
		return strings.Replace(s, from, to, 1)
	}
	// set returns answer with member name set to the raw JSON value.
	set := func(answer, name, value string) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(answer), &m); err != nil {
			panic(err)
		}
		m[name] = json.RawMessage(value)
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	for _, tc := range verifyCases {
		for reason, bodies := range map[string][]string{
			"inactive": {`{"active":false}`, `{"active":false,"object":"` + tc.object + `","id":"` + tc.idPrefix + `1"}`},
			"malformed response": {`{}`, `null`, `[]`, `"x"`, ``, `<html>`, `{"object":"` + tc.object + `"}`,
				`{"id":"` + tc.idPrefix + `1"}`, set(tc.answer, "revoked", `"no"`),
				set(tc.answer, "scopes", `[1]`), set(tc.answer, "expiration", `1e400`), `{"active":"false"}`,
				set(tc.answer, "expiration", `"soon"`),
				set(tc.answer, "expiration", `0`),
				set(tc.answer, "expiration", `-5`),
				set(tc.answer, "expiration", `1.5`),
				set(tc.answer, "claims", `["a"]`),
				set(tc.answer, "claims", `"a"`),
				tc.answer[:len(tc.answer)-1]},
			"unexpected object": {swap(tc.answer, `"`+tc.object+`"`, `"user"`), swap(tc.answer, `"`+tc.object+`"`, `""`),
				swap(tc.answer, `"`+tc.object+`"`, `"`+strings.ToUpper(tc.object)+`"`)},
			"unexpected id": {swap(tc.answer, `"id":"`+tc.idPrefix, `"id":"x`+tc.idPrefix), swap(tc.answer, `"id":"`+tc.idPrefix, `"id":"user_`),
				`{"object":"` + tc.object + `","id":"` + tc.idPrefix + `"}`, `{"object":"` + tc.object + `","id":"` + tc.idPrefix + `a b"}`,
				`{"object":"` + tc.object + `","id":"` + tc.idPrefix + strings.Repeat("a", 200) + `"}`},
			"revoked": {swap(tc.answer, `"revoked":false`, `"revoked":true`)},
			"expired": {swap(tc.answer, `"expired":false`, `"expired":true`)},
		} {
			for _, body := range bodies {
				h, _ := recorder(body)
				e := newEnv(t, h)
				e.sensitive = append(e.sensitive, tc.token)
				mt, err := tc.call(e.c, context.Background(), tc.token)
				var ti *TokenInvalidError
				if mt != nil || !IsTokenInvalid(err) || !errors.As(err, &ti) || ti.Reason != reason ||
					IsUnavailable(err) || IsKeyInvalid(err) || IsRateLimited(err) {
					t.Errorf("%s %s: got %+v, %v; want reason %s", tc.name, body, mt, err, reason)
					continue
				}
				if ti.TokenType == "" || ti.Path != tc.path || ti.Method != "POST" ||
					!strings.HasPrefix(err.Error(), "clerk api: POST "+tc.path+": "+ti.TokenType+" invalid: "+reason) {
					t.Errorf("%s %s: %q", tc.name, body, err)
				}
				e.clean(err)
				e.wantHits(1) // a verdict is never retried
			}
		}
	}
	// The other calls' answers are not each other's.
	h, _ := recorder(apiKeyJSON)
	e := newEnv(t, h)
	if _, err := e.c.VerifyM2MToken(context.Background(), testM2MToken); !IsTokenInvalid(err) {
		t.Fatalf("api key answer for an M2M token: %v", err)
	}
}

func TestVerifyRefusesMalformedTokens(t *testing.T) {
	e := newEnv(t, okJWKS)
	for _, tc := range verifyCases {
		for _, tok := range []string{"", tc.idPrefix, "x" + tc.token, strings.ToUpper(tc.token[:3]) + tc.token[3:],
			tc.token + " x", tc.token + "\n", tc.token + "\x00", tc.token + "é", "eyJhbGciOi.eyJzdWIi.c2ln",
			tc.token + strings.Repeat("a", MaxMachineTokenBytes)} {
			if tail := tok[min(len(tok), len(tc.idPrefix)):]; tail != "" {
				e.mu.Lock()
				e.sensitive = append(e.sensitive, tail)
				e.mu.Unlock()
			}
			_, err := tc.call(e.c, context.Background(), tok)
			var ti *TokenInvalidError
			if !errors.As(err, &ti) || ti.Reason != "malformed token" {
				t.Errorf("%s %q: %v", tc.name, tok, err)
			}
			e.clean(err)
		}
	}
	e.wantHits(0)
	// The longest allowed token is sent.
	h, _ := recorder(apiKeyJSON)
	e2 := newEnv(t, h)
	if _, err := e2.c.VerifyAPIKey(context.Background(), "ak_"+strings.Repeat("a", MaxMachineTokenBytes-3)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyStatusMapping(t *testing.T) {
	for _, tc := range verifyCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			check := func(h http.HandlerFunc, hits int64, pred func(error) bool, opts ...Option) error {
				t.Helper()
				e := newEnv(t, h, opts...)
				e.sensitive = append(e.sensitive, tc.token)
				mt, err := tc.call(e.c, ctx, tc.token)
				if mt != nil || !pred(err) {
					t.Fatalf("got %+v %v", mt, err)
				}
				e.clean(err)
				e.wantHits(hits)
				return err
			}
			// 401, Clerk's code or another: the key, never the token.
			for _, code := range []string{"clerk_key_invalid", "authentication_invalid"} {
				err := check(func(w http.ResponseWriter, r *http.Request) {
					writeClerkError(w, 401, code, "Invalid key", "The provided key is invalid")
				}, 1, func(err error) bool {
					return IsKeyInvalid(err) && !IsTokenInvalid(err) && !IsUnavailable(err)
				}, WithMachineSecretKey(testMachineKey))
				if !strings.HasPrefix(err.Error(), "clerk api: POST "+tc.path+": 401 ") {
					t.Fatalf("%q", err)
				}
			}
			// 404: the token.
			err := check(func(w http.ResponseWriter, r *http.Request) {
				writeClerkError(w, 404, "resource_not_found", "not found", "Machine token not found")
			}, 1, func(err error) bool {
				return IsTokenInvalid(err) && IsNotFound(err) && !IsUnavailable(err) && !IsKeyInvalid(err)
			})
			var ti *TokenInvalidError
			var apiErr *Error
			if !errors.As(err, &ti) || ti.Reason != "not found" || !errors.As(err, &apiErr) || apiErr.Status != 404 ||
				err.Error() != "clerk api: POST "+tc.path+": "+ti.TokenType+" invalid: not found: 404 resource_not_found: Machine token not found (trace trace-body)" {
				t.Fatalf("%q", err)
			}
			// 400 and other 4xx: neither the token's fault nor an outage.
			for _, code := range []int{400, 403, 409, 422} {
				check(status(code), 1, func(err error) bool {
					return !IsTokenInvalid(err) && !IsUnavailable(err) && !IsKeyInvalid(err)
				})
			}
			// 5xx, 429, network: unavailable, one retry at most.
			for _, code := range []int{500, 502, 503, 504} {
				check(status(code), MachineMaxAttempts, func(err error) bool { return IsUnavailable(err) && !IsTokenInvalid(err) })
			}
			check(rateLimited("1"), MachineMaxAttempts, func(err error) bool { return IsUnavailable(err) && IsRateLimited(err) })
			check(hangUp, MachineMaxAttempts, func(err error) bool { return IsUnavailable(err) && !IsTokenInvalid(err) })
			// A Retry-After over MachineMaxRetryAfter is not waited for,
			// whatever WithMaxRetryAfter says.
			check(rateLimited("2"), 1, IsRateLimited, WithMaxRetryAfter(time.Minute))
			// WithMaxAttempts can lower the cap, not raise it.
			check(status(503), 1, IsUnavailable, WithMaxAttempts(1))
			check(status(503), MachineMaxAttempts, IsUnavailable, WithMaxAttempts(10))
			// A blip is retried through.
			h, _ := recorder(tc.answer)
			e := newEnv(t, sequence(status(502), h))
			if _, err := tc.call(e.c, ctx, tc.token); err != nil {
				t.Fatal(err)
			}
			e.wantWaits(200 * time.Millisecond)
			e = newEnv(t, sequence(rateLimited("1"), h))
			if _, err := tc.call(e.c, ctx, tc.token); err != nil {
				t.Fatal(err)
			}
			e.wantWaits(time.Second)
		})
	}
}

func TestVerifyAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, hang(release), WithTimeout(time.Minute), WithMachineTimeout(100*time.Millisecond))
	t.Cleanup(func() { close(release) })
	start := time.Now()
	_, err := e.c.VerifyAPIKey(context.Background(), testAPIKey)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 100ms") || !IsUnavailable(err) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
	e.wantHits(MachineMaxAttempts)

	// The caller giving up is not Clerk being unavailable.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = e.c.VerifyAPIKey(ctx, testAPIKey)
	if !errors.Is(err, context.Canceled) || IsUnavailable(err) || IsTokenInvalid(err) {
		t.Fatalf("got %v", err)
	}

	c, err := New(testKey)
	if err != nil || c.machTimeout != DefaultMachineTimeout || DefaultMachineTimeout > c.timeout {
		t.Fatalf("default machine timeout %v", c.machTimeout)
	}
}

func TestVerifyBodyBounds(t *testing.T) {
	big := `{"object":"api_key","id":"ak_1","claims":{"x":"` + strings.Repeat("y", MaxMachineResponseBytes) + `"}}`
	h, _ := recorder(big)
	e := newEnv(t, h)
	_, err := e.c.VerifyAPIKey(context.Background(), testAPIKey)
	var ti *TokenInvalidError
	if !errors.As(err, &ti) || ti.Reason != "malformed response" || !strings.Contains(err.Error(), "exceeds 65536 bytes") {
		t.Fatalf("got %v", err)
	}
	e.wantHits(1)

	// Just under the bound is read whole.
	fits := `{"object":"api_key","id":"ak_1","claims":{"x":"`
	fits += strings.Repeat("y", MaxMachineResponseBytes-len(fits)-3) + `"}}`
	h, _ = recorder(fits)
	e = newEnv(t, h)
	mt, err := e.c.VerifyAPIKey(context.Background(), testAPIKey)
	if err != nil || len(mt.Claims) != MaxMachineResponseBytes-len(`{"object":"api_key","id":"ak_1","claims":}`) {
		t.Fatalf("%v", err)
	}

	// An oversized error body is cut, not an invalid token.
	e = newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		_, _ = w.Write([]byte(strings.Repeat("z", 3<<20)))
	})
	_, err = e.c.VerifyAPIKey(context.Background(), testAPIKey)
	var apiErr *Error
	if !IsTokenInvalid(err) || !errors.As(err, &apiErr) || len(apiErr.Message) != maxSnippet {
		t.Fatalf("got %v", err)
	}
}

// A server echoing the request (token, keys) in every place an error can
// carry it must not get any of them into an error or a log line.
func TestVerifyEchoRedacted(t *testing.T) {
	tokens := map[string]string{
		"m2m":     `mt_a/b+c=d"e\f<g>&h%ik`,
		"api_key": testAPIKey,
		"oauth":   "oat_Zx1/Cv3=Bn6+Qw8Er5Ty<2&Ui9",
	}
	echo := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		var tok string
		for _, v := range m {
			tok = v
		}
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Clerk-Trace-Id", auth+tok)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(503)
		// Hand-written JSON escaping "/" as "\/", as some encoders do.
		esc := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(tok, `\`, `\\`), `"`, `\"`), "/", `\/`)
		fmt.Fprintf(w, `{"errors":[{"code":"echo_%s","message":%q,"long_message":"%s","meta":{"body":%q,"esc":"%s","url":%q}}],"clerk_trace_id":%q}`,
			esc, auth+" "+tok, esc, string(b), esc, url.QueryEscape(tok), tok)
	}
	plain := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(502)
		fmt.Fprintf(w, "%s %s %s", strings.Repeat("p", 150), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), b)
	}
	for _, tc := range verifyCases {
		tok := tokens[tc.name]
		for _, h := range []http.HandlerFunc{echo, plain} {
			e := newEnv(t, h, WithMachineSecretKey(testMachineKey), WithMaxAttempts(2))
			e.sensitive = append(e.sensitive, secretForms(tok)...)
			_, err := tc.call(e.c, context.Background(), tok)
			var apiErr *Error
			if !errors.As(err, &apiErr) || !IsUnavailable(err) {
				t.Fatalf("%s: %v", tc.name, err)
			}
			e.clean(err)
			dump := fmt.Sprintf("%+v %s", *apiErr, apiErr.Errors)
			for _, d := range apiErr.Errors {
				dump += string(d.Meta)
			}
			for _, bad := range e.forbidden() {
				if strings.Contains(dump, bad) {
					t.Fatalf("%s: %q in %s", tc.name, bad, dump)
				}
			}
			if len(e.logs.All()) != 1 {
				t.Fatalf("%d retry logs", len(e.logs.All()))
			}
			// checkLogs (at cleanup) scans the retry log.
		}
	}
}

func TestSecretForms(t *testing.T) {
	v := `ak_a/b+c="d\e<f>&g h%`
	forms := secretForms(v)
	enc, _ := json.Marshal(v)
	for _, want := range []string{v, string(enc[1 : len(enc)-1]), `ak_a\/b+c=\"d\\e\u003cf\u003e\u0026g h%`,
		`ak_a/b+c=\"d\\e<f>&g h%`, url.QueryEscape(v), url.PathEscape(v)} {
		found := false
		for _, f := range forms {
			found = found || f == want
		}
		if !found {
			t.Errorf("%q not among %q", want, forms)
		}
	}
	for i := 1; i < len(forms); i++ {
		if len(forms[i]) > len(forms[i-1]) || forms[i] == forms[i-1] {
			t.Fatalf("not longest first, or repeated: %q", forms)
		}
	}
	if secretForms("") != nil || len(secretForms("ak_abc")) != 1 {
		t.Fatal(secretForms("ak_abc"))
	}
}

func TestIsUnavailable(t *testing.T) {
	for err, want := range map[error]bool{
		nil:                                      false,
		errors.New("x"):                          false,
		&Error{Status: 500}:                      true,
		&Error{Status: 429}:                      true,
		&Error{Status: 404}:                      false,
		&Error{Status: 401}:                      false,
		&netError{err: errors.New("reset")}:      true,
		&netError{err: context.DeadlineExceeded}: true,
		&netError{err: context.Canceled}:         false,
		&netError{err: errors.New("decoding"), fatal: &fatalError{}}: false,
		fmt.Errorf("wrapped: %w", &Error{Status: 503}):               true,
		&TokenInvalidError{Reason: "revoked"}:                        false,
	} {
		if IsUnavailable(err) != want {
			t.Errorf("%#v: got %v", err, !want)
		}
	}
	if IsTokenInvalid(nil) || IsTokenInvalid(&Error{Status: 404}) || !IsTokenInvalid(fmt.Errorf("x: %w", &TokenInvalidError{})) {
		t.Fatal("IsTokenInvalid")
	}
	// Only the machine calls make any 401 a key error.
	if IsKeyInvalid(&Error{Status: 401, Path: "/v1/jwks", Code: "authentication_invalid"}) ||
		!IsKeyInvalid(&Error{Status: 401, Path: "/api_keys/verify"}) {
		t.Fatal("IsKeyInvalid")
	}
}
