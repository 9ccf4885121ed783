package verifier

// Fuzz targets for the verifier. Each runs its seed corpus as a normal test
// under `go test ./...`; fuzz one with, e.g.,
//
//	go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 10m ./verifier
//
// The seeds are handcrafted tokens signed by fzKey (valid, and broken in
// the ways the attack classes of the Clerk reference name) plus every token
// of the peer fixtures in testdata/peers.
//
// A random fuzzer cannot forge an RSA signature, so FuzzPeek,
// FuzzVerifyHandshake and FuzzClaims re-sign what they are given with fzKey:
// that is how fuzzed headers and payloads reach the checks that run after
// the signature.

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	fzKID    = "ins_fuzz"
	fzIssuer = "https://clerk.fuzz.example"
)

// fzNow is the verifiers' clock: seeds minted at fzNow stay valid forever.
var fzNow = time.Unix(1_750_000_000, 0)

// fzKey is the fuzz targets' signing key: an RSA key whose modulus is the
// product of 33 fixed 64-bit primes. Anyone can factor it, so it is good for
// nothing but tests; but the verifier sees only n (2,100 bits) and e, as for
// any RSA public key, while signing with it is a handful of 64-bit modular
// exponentiations. A 2048-bit two-prime key costs about a millisecond per
// signature, tens of milliseconds under fuzzing instrumentation, which
// would leave the targets that sign every input at a few dozen executions
// per second. The primes come from a fixed seed: a corpus entry signed
// today verifies on every later run.
type fzSigningKey struct {
	pub    rsa.PublicKey
	primes []*big.Int
	exps   []*big.Int // e⁻¹ mod (p-1), per prime
	coeffs []*big.Int // CRT: (n/p)·((n/p)⁻¹ mod p) mod n, per prime
}

var (
	fzKeyOnce sync.Once
	fzKey     *fzSigningKey
)

func fzKeyOf() *fzSigningKey {
	fzKeyOnce.Do(func() {
		rng := mrand.New(mrand.NewChaCha8([32]byte([]byte("caddy-clerk fuzz key, tests only"))))
		e := big.NewInt(65537)
		k := &fzSigningKey{}
		n := big.NewInt(1)
		seen := map[uint64]bool{}
		for len(k.primes) < 33 {
			c := rng.Uint64() | 1<<63 | 1
			p := new(big.Int).SetUint64(c)
			if seen[c] || !p.ProbablyPrime(20) || c%65537 == 1 {
				continue
			}
			seen[c] = true
			k.primes = append(k.primes, p)
			n.Mul(n, p)
		}
		for _, p := range k.primes {
			pm1 := new(big.Int).Sub(p, big.NewInt(1))
			k.exps = append(k.exps, new(big.Int).ModInverse(e, pm1))
			m := new(big.Int).Div(n, p)
			inv := new(big.Int).ModInverse(new(big.Int).Mod(m, p), p)
			k.coeffs = append(k.coeffs, new(big.Int).Mod(new(big.Int).Mul(m, inv), n))
		}
		k.pub = rsa.PublicKey{N: n, E: 65537}
		fzKey = k
	})
	return fzKey
}

// sign makes an RSASSA-PKCS1-v1_5 SHA-256 signature (RFC 8017 §8.2.1).
func (k *fzSigningKey) sign(msg []byte) []byte {
	sum := sha256.Sum256(msg)
	size := (k.pub.N.BitLen() + 7) / 8
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	em := make([]byte, size)
	em[1] = 1
	for i := 2; i < size-len(prefix)-len(sum)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(prefix)-len(sum):], prefix)
	copy(em[size-len(sum):], sum[:])
	m := new(big.Int).SetBytes(em)
	s := new(big.Int)
	for i, p := range k.primes {
		si := new(big.Int).Exp(new(big.Int).Mod(m, p), k.exps[i], p)
		s.Add(s, si.Mul(si, k.coeffs[i]))
	}
	return s.Mod(s, k.pub.N).FillBytes(make([]byte, size))
}

// fzEnv is one target's verifiers, all with fzKey: a single static key
// (no kid needed, as the module's jwt_key), a key set (kid required), and
// the static key with a token cache.
type fzEnv struct {
	static, set, cached *Verifier
}

func fzSetup(tb testing.TB) *fzEnv {
	tb.Helper()
	k := fzKeyOf()
	der, err := x509.MarshalPKIXPublicKey(&k.pub)
	if err != nil {
		tb.Fatal(err)
	}
	static, err := StaticPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		tb.Fatal(err)
	}
	now := func() time.Time { return fzNow }
	env := &fzEnv{}
	env.static, _ = New(Config{Keys: static, Issuer: fzIssuer, Now: now})
	env.cached, _ = New(Config{Keys: static, Issuer: fzIssuer, Now: now, TokenCache: NewTokenCache(256)})
	jwks := `{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"` + fzKID + `","n":"` +
		base64.RawURLEncoding.EncodeToString(k.pub.N.Bytes()) + `","e":"AQAB"}]}`
	keys := NewKeyCache(fzJWKS(jwks), CacheOptions{})
	tb.Cleanup(keys.Close)
	env.set, _ = New(Config{Keys: keys, Issuer: fzIssuer, Now: now})
	deadline := time.Now().Add(10 * time.Second)
	for !keys.Loaded() {
		if time.Now().After(deadline) {
			tb.Fatal("the fuzz key set never loaded")
		}
		time.Sleep(time.Millisecond)
	}

	// The targets' properties hold vacuously if nothing verifies: make sure
	// the handcrafted valid seeds do, and that crypto/rsa agrees with fzKey.
	sum := sha256.Sum256([]byte("x"))
	if err := rsa.VerifyPKCS1v15(&k.pub, crypto.SHA256, sum[:], k.sign([]byte("x"))); err != nil {
		tb.Fatalf("crypto/rsa refuses fzKey's signature: %v", err)
	}
	good := fzSign(fzHeader, fzJSON(fzClaims()))
	for _, v := range []*Verifier{env.static, env.set, env.cached} {
		if _, err := v.Verify(context.Background(), good); err != nil {
			tb.Fatalf("the valid seed does not verify: %v", err)
		}
	}
	if _, err := env.set.VerifyHandshake(context.Background(), fzHandshakeTokens()[0]); err != nil {
		tb.Fatalf("the valid handshake seed does not verify: %v", err)
	}
	return env
}

type fzJWKS string

func (s fzJWKS) Fetch(context.Context) ([]byte, time.Duration, error) { return []byte(s), 0, nil }
func (s fzJWKS) String() string                                       { return "fuzz" }

var fzB64 = base64.RawURLEncoding

// fzSignInput signs "header64.payload64" with fzKey.
func fzSignInput(input string) string {
	return input + "." + fzB64.EncodeToString(fzKeyOf().sign([]byte(input)))
}

func fzSign(header string, payload []byte) string {
	return fzSignInput(fzB64.EncodeToString([]byte(header)) + "." + fzB64.EncodeToString(payload))
}

const fzHeader = `{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"` + fzKID + `","typ":"JWT"}`

// fzClaims is a valid v2 session payload at fzNow.
func fzClaims() map[string]any {
	now := fzNow.Unix()
	return map[string]any{
		"azp": "https://app.fuzz.example", "exp": now + 60, "iat": now, "nbf": now - 10, "iss": fzIssuer,
		"jti": "0123456789abcdef0123", "sid": "sess_fuzz", "sub": "user_fuzz", "v": 2, "fva": []int{0, -1},
		"o":   map[string]any{"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "3,1"},
		"fea": "o:invoices,o:reports,u:ai", "pla": "o:pro",
		"act":      map[string]any{"iss": "https://dashboard.clerk.com", "sid": "sess_imp", "sub": "user_admin"},
		"metadata": map[string]any{"plan": "gold", "seats": 3, "tags": []any{"a", "b"}},
	}
}

func fzJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fzPayloads are handcrafted payloads: valid ones in Clerk's shapes, and the
// hostile claim values of the attack classes.
func fzPayloads() [][]byte {
	var out [][]byte
	add := func(mut func(m map[string]any)) {
		m := fzClaims()
		mut(m)
		out = append(out, fzJSON(m))
	}
	add(func(map[string]any) {})
	add(func(m map[string]any) { // v1 shape
		delete(m, "v")
		delete(m, "o")
		m["org_id"], m["org_role"], m["org_slug"], m["org_permissions"] = "org_1", "org:admin", "acme", []string{"org:x:read"}
	})
	add(func(m map[string]any) { delete(m, "o"); delete(m, "act") })
	add(func(m map[string]any) { m["sts"] = "pending" })
	add(func(m map[string]any) { m["sub"] = "mch_1" })
	add(func(m map[string]any) { delete(m, "sid") })
	add(func(m map[string]any) { m["aud"] = []string{"a", "b"} })
	add(func(m map[string]any) { m["note"] = "line1\r\nX-Evil: 1\x00" })
	for _, name := range []string{"exp", "nbf", "iat"} {
		for _, v := range []string{`null`, `"1750000060"`, `1e300`, `1e400`, `-1`, `-0.5`, `0`, `253402300800`,
			`1750000000.999`, `9007199254740993`, `true`, `[]`, `{}`} {
			add(func(m map[string]any) { m[name] = json.RawMessage(v) })
		}
	}
	raw := func(s string) { out = append(out, []byte(s)) }
	valid := string(fzJSON(fzClaims()))
	raw(`{}`)
	raw(`[]`)
	raw(`null`)
	raw(valid[:len(valid)-1] + `,"sub":"user_other"}`)      // duplicate
	raw(valid[:len(valid)-1] + `,"\u0073ub":"user_other"}`) // escaped duplicate
	raw(valid[:len(valid)-1] + `,"x":{"a":1,"a":2}}`)       // nested duplicate
	raw(valid[:len(valid)-1] + ",\"x\":\"\xff\"}")          // invalid UTF-8
	raw(valid[:len(valid)-1] + `,"x":"\ud800"}`)            // lone surrogate
	raw(valid[:len(valid)-1] + `,"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`)
	raw(valid[:len(valid)-1] + `,"x":` + strings.Repeat(`{"a":`, 31) + `1` + strings.Repeat("}", 31) + `}`)
	raw(" \n" + valid + "\t ")
	raw(valid + `{}`)
	return out
}

// fzTokens are handcrafted tokens: valid, and each attack class of the
// Clerk reference.
func fzTokens() []string {
	enc := func(s string) string { return fzB64.EncodeToString([]byte(s)) }
	payload := fzJSON(fzClaims())
	good := fzSign(fzHeader, payload)
	parts := strings.Split(good, ".")
	hdr := func(h string) string { return fzSign(h, payload) }
	toks := []string{
		good,
		fzSign(`{"alg":"RS256"}`, payload),
		hdr(`{"alg":"none","kid":"` + fzKID + `"}`),
		enc(`{"alg":"none"}`) + "." + parts[1] + ".",
		hdr(`{"alg":"None"}`), hdr(`{"alg":"NONE"}`), hdr(`{"alg":"HS256"}`), hdr(`{"alg":"RS512"}`),
		hdr(`{"alg":"RS256","crit":["exp"],"exp":1}`),
		hdr(`{"alg":"RS256","alg":"RS256"}`),
		hdr(`{"alg":"RS256","kid":"` + fzKID + `","jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x"}`),
		hdr(`{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`),
		hdr(`{"alg":"RS256","kid":["` + fzKID + `"]}`),
		hdr(`{"alg":"RS256","typ":"at+jwt"}`),
		hdr(`{"alg":"RS256","zip":"DEF"}`),
		hdr(`{"alg":"RS256","cat":"cl_B7d4PD222AAA"}`),
		hdr(`null`),
		parts[0] + "=." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + nonCanonical(parts[2]),
		parts[0] + " ." + parts[1] + "." + parts[2],
		parts[0] + "\r\n." + parts[1] + "." + parts[2],
		parts[0], parts[0] + "." + parts[1], good + ".x", good + ".x.y", "..", "a..c", ".", "",
		strings.Repeat("a", MaxTokenSize+1),
		fzSign(fzHeader, []byte(`{"a":`+strings.Repeat("[", 2600)+strings.Repeat("]", 2600)+`}`)),
		parts[0] + "." + enc(strings.Replace(string(payload), "user_fuzz", "user_evil", 1)) + "." + parts[2],
	}
	for _, p := range fzPayloads() {
		toks = append(toks, fzSign(fzHeader, p))
	}
	return toks
}

// fzHandshakeTokens are legacy handshake tokens signed by fzKey, and broken
// ones.
func fzHandshakeTokens() []string {
	dirs := fzJSON(map[string]any{"handshake": []string{
		"__session=" + fzSign(fzHeader, fzJSON(fzClaims())) + "; Path=/; SameSite=Lax",
		"__client_uat=1750000000; Path=/; Max-Age=315360000", "__clerk_db_jwt=dvb_x; Path=/",
	}})
	return []string{
		fzSign(`{"alg":"RS256","kid":"`+fzKID+`","typ":"JWT"}`, dirs),
		fzSign(`{"alg":"RS256"}`, []byte(`{"handshake":[]}`)),
		fzSign(`{"alg":"RS256"}`, []byte(`{"handshake":null}`)),
		fzSign(`{"alg":"RS256"}`, []byte(`{"handshake":["a=b\r\nX-Evil: 1","\u000d\u000a"]}`)),
		fzSign(`{"alg":"RS256"}`, []byte(`{"handshake":"x"}`)),
		fzSign(`{"alg":"RS256"}`, []byte(`{"handshake":[1,{},null]}`)),
		fzSign(`{"alg":"RS256"}`, []byte(`{"handshake":[],"handshake":["evil=1"]}`)),
		fzSign(`{"alg":"none"}`, dirs),
		fzSign(`{"alg":"RS256","typ":"at+jwt"}`, dirs),
		fzSign(`{"alg":"RS256","crit":["b64"],"b64":false}`, dirs),
	}
}

// fzFixtureTokens returns every token of the peer fixtures in
// testdata/peers; missing fixtures fail the target.
func fzFixtureTokens(f testing.TB) (tokens []string, payloads [][]byte) {
	f.Helper()
	dir := fixturesDir(f)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		var doc struct {
			Cases              []struct{ Token any } `json:"cases"`
			Keysets            []struct{ Token any } `json:"jwk_keyset_cases"`
			ClaimsMappingCases []struct {
				Claims json.RawMessage `json:"claims"`
			} `json:"claims_mapping_cases"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		for _, c := range append(doc.Cases, doc.Keysets...) {
			if s, ok := c.Token.(string); ok {
				tokens = append(tokens, s)
			}
		}
		for _, c := range doc.ClaimsMappingCases {
			if len(c.Claims) > 0 {
				payloads = append(payloads, c.Claims)
			}
		}
	}
	// The payloads of the fixture tokens as they were signed, and the same
	// claims re-dated and re-issued so that they pass at fzNow.
	for _, tok := range tokens {
		parts := strings.Split(tok, ".")
		if len(parts) < 2 {
			continue
		}
		if p, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "=")); err == nil {
			payloads = append(payloads, p)
		}
	}
	n := len(payloads)
	for _, p := range payloads[:n] {
		var m map[string]any
		if json.Unmarshal(p, &m) != nil || m == nil {
			continue
		}
		now := fzNow.Unix()
		m["iss"], m["iat"], m["nbf"], m["exp"] = fzIssuer, now, now-10, now+60
		if _, ok := m["sid"]; !ok {
			m["sid"] = "sess_fixture"
		}
		payloads = append(payloads, fzJSON(m))
	}
	return tokens, payloads
}

// fzCheckSigned re-checks, independently of the verifier, that an accepted
// session token is a canonical compact JWS, RS256, signed by fzKey over
// exactly its bytes, with typ JWT or none, and returns its decoded header
// and payload.
func fzCheckSigned(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	header, payload = fzCheckJWS(t, token)
	if typ, ok := header["typ"]; ok && typ != "JWT" {
		t.Fatalf("accepted typ %v", typ)
	}
	return header, payload
}

// fzCheckJWS is fzCheckSigned for any token type: whatever the typ.
func fzCheckJWS(t *testing.T, token string) (header, payload map[string]any) {
	t.Helper()
	if len(token) > MaxTokenSize {
		t.Fatalf("accepted a token of %d bytes", len(token))
	}
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		t.Fatalf("accepted a token with %d segments", len(segs))
	}
	var raw [3][]byte
	for i, s := range segs {
		for j := 0; j < len(s); j++ {
			if c := s[j]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("accepted segment %d with byte %q", i, c)
			}
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil || len(b) == 0 || base64.RawURLEncoding.EncodeToString(b) != s {
			t.Fatalf("accepted a non-canonical segment %d (%v)", i, err)
		}
		raw[i] = b
	}
	sum := sha256.Sum256([]byte(segs[0] + "." + segs[1]))
	if err := rsa.VerifyPKCS1v15(&fzKeyOf().pub, crypto.SHA256, sum[:], raw[2]); err != nil {
		t.Fatalf("accepted a token fzKey did not sign: %v", err)
	}
	if header = fzObject(raw[0]); header == nil {
		t.Fatal("accepted a header encoding/json does not read as an object")
	}
	if header["alg"] != "RS256" {
		t.Fatalf("accepted alg %v", header["alg"])
	}
	if _, crit := header["crit"]; crit {
		t.Fatal("accepted crit")
	}
	if payload = fzObject(raw[1]); payload == nil {
		t.Fatal("accepted a payload encoding/json does not read as an object")
	}
	return header, payload
}

// fzObject decodes one JSON object as encoding/json does (numbers as
// json.Number, so 1e400 is a number, as it is to the scanner), or nil.
func fzObject(b []byte) map[string]any {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil || dec.InputOffset() != int64(len(strings.TrimRight(string(b), " \t\r\n"))) {
		return nil
	}
	return m
}

// fzCheckError: a rejection carries a kind and Clerk's reason, and never
// the token.
func fzCheckError(t *testing.T, token string, err error) {
	t.Helper()
	if KindOf(err) == "" || ReasonOf(err) == "" {
		t.Fatalf("rejection without a kind or reason: %#v", err)
	}
	if len(token) >= 100 && strings.Contains(err.Error(), token) {
		t.Fatal("the error message contains the token")
	}
}

func fzAddTokens(f *testing.F, extra ...[]string) {
	fixtures, _ := fzFixtureTokens(f)
	for _, list := range append(extra, fzTokens(), fixtures) {
		for _, tok := range list {
			f.Add(tok)
		}
	}
}

// FuzzVerify: Verify never panics on any string; every rejection has a
// reason; an accepted token is one fzKey really signed (re-checked with
// crypto/rsa and encoding/json), whose claims are what encoding/json reads;
// the kid-less static key, the key set and the token cache agree.
// fzAgree checks the three verifiers' answers on one token: each error is
// well-formed, the token cache never changes the decision, and the key set
// differs from the static key only over the kid.
func fzAgree(t *testing.T, token string, err, errSet, errCached error) {
	t.Helper()
	for _, e := range []error{err, errSet, errCached} {
		if e != nil {
			fzCheckError(t, token, e)
		}
	}
	if (err == nil) != (errCached == nil) || KindOf(err) != KindOf(errCached) {
		t.Fatalf("token cache changed the decision: %v vs %v", err, errCached)
	}
	if errSet == nil && err != nil {
		t.Fatalf("the key set accepted what the static key refused: %v", err)
	}
	if errSet != nil && err == nil && KindOf(errSet) != KindMissingKID && KindOf(errSet) != KindUnknownKID {
		t.Fatalf("the key set refused a token the static key accepted, not for its kid: %v", errSet)
	}
}

func FuzzVerify(f *testing.F) {
	env := fzSetup(f)
	fzAddTokens(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, token string) {
		c, err := env.static.Verify(ctx, token)
		cs, errSet := env.set.Verify(ctx, token)
		cc, errCached := env.cached.Verify(ctx, token)
		fzAgree(t, token, err, errSet, errCached)
		if err != nil {
			return
		}
		hdr, payload := fzCheckSigned(t, token)
		if errSet == nil && hdr["kid"] != fzKID {
			t.Fatalf("the key set accepted kid %v", hdr["kid"])
		}
		if payload["sub"] != c.Subject || c.Subject == "" || payload["sid"] != c.SessionID || c.SessionID == "" ||
			payload["iss"] != fzIssuer || c.Issuer != fzIssuer {
			t.Fatalf("claims differ from encoding/json: %+v vs %v", c, payload)
		}
		if strings.HasPrefix(c.Subject, "mch_") || c.Status == "pending" {
			t.Fatalf("accepted a non-session: %+v", c)
		}
		if !c.Expiry.After(fzNow.Add(-DefaultClockSkew)) {
			t.Fatalf("accepted an expired token: %v", c.Expiry)
		}
		for _, other := range []*Claims{cs, cc} {
			if other != nil && (other.Subject != c.Subject || other.SessionID != c.SessionID) {
				t.Fatalf("verifiers disagree: %+v vs %+v", other, c)
			}
		}
	})
}

// fzResign replaces a token's signature with fzKey's over its first two
// segments, so fuzzed headers and payloads get past the signature check.
// It returns "" for tokens that do not have three segments or would be
// oversized.
func fzResign(token string) string {
	segs := strings.Split(token, ".")
	if len(segs) != 3 || len(segs[0])+len(segs[1]) > MaxTokenSize-350 {
		return ""
	}
	return fzSignInput(segs[0] + "." + segs[1])
}

// fzPeekAgrees: when Verify accepts a token, Peek (used before verification
// to choose between cookies) reads the same iss, iat and exp.
func fzPeekAgrees(t *testing.T, token string, c *Claims, payload map[string]any) {
	t.Helper()
	u, err := Peek(token)
	if err != nil {
		t.Fatalf("Verify accepted what Peek refused: %v", err)
	}
	if u.Issuer != c.Issuer {
		t.Fatalf("iss: Peek %q, Verify %q", u.Issuer, c.Issuer)
	}
	want := func(name string, at time.Time) int64 {
		if _, ok := payload[name]; !ok {
			return 0
		}
		return at.Unix()
	}
	// Peek truncates milliseconds toward zero where time.Unix floors:
	// they differ by one second for a negative fractional iat (before
	// 1970), which no cookie decision can tell apart (__client_uat > 0).
	if iat := want("iat", c.IssuedAt); u.IssuedAt != iat && !(iat < 0 && u.IssuedAt-iat == 1) {
		t.Fatalf("iat: Peek %d, Verify %d", u.IssuedAt, iat)
	}
	if exp := want("exp", c.Expiry); u.Expiry != exp {
		t.Fatalf("exp: Peek %d, Verify %d", u.Expiry, exp)
	}
}

// FuzzPeek: Peek never panics; what it accepts has a strict base64url JSON
// object payload; it agrees with Verify's iss, iat and exp on the token as
// given and, re-signed, on whatever header and payload the fuzzer made.
func FuzzPeek(f *testing.F) {
	env := fzSetup(f)
	fzAddTokens(f, fzHandshakeTokens())
	f.Add("a." + fzB64.EncodeToString([]byte(`{"iss":7,"iat":"1","exp":null}`)) + ".c")
	f.Add("a." + fzB64.EncodeToString([]byte(`{"iat":-0.5,"exp":1e3}`)) + ".c")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, token string) {
		u, err := Peek(token)
		if err != nil {
			if KindOf(err) == "" {
				t.Fatalf("Peek error without a kind: %v", err)
			}
			if _, verr := env.static.Verify(ctx, token); verr == nil {
				t.Fatalf("Verify accepted what Peek refused: %v", err)
			}
			return
		}
		segs := strings.Split(token, ".")
		if len(segs) != 3 {
			t.Fatalf("Peek accepted %d segments", len(segs))
		}
		pb, derr := base64.RawURLEncoding.Strict().DecodeString(segs[1])
		m := fzObject(pb)
		if derr != nil || m == nil {
			t.Fatalf("Peek accepted a payload that is not a JSON object (%v)", derr)
		}
		if iss, ok := m["iss"].(string); ok && iss != u.Issuer || !ok && u.Issuer != "" {
			t.Fatalf("Peek iss %q, encoding/json %v", u.Issuer, m["iss"])
		}
		for _, tok := range []string{token, fzResign(token)} {
			if tok == "" {
				continue
			}
			c, err := env.static.Verify(ctx, tok)
			if err != nil {
				continue
			}
			_, payload := fzCheckSigned(t, tok)
			fzPeekAgrees(t, tok, c, payload)
		}
	})
}

// FuzzClaims: any payload, signed by fzKey, goes through Verify, Claims,
// Custom and Has without a panic; an accepted one is a session whose ids are
// what encoding/json reads (no parser differential between the strict
// scanner and encoding/json); Custom follows encoding/json; Has fails closed;
// the token cache and Peek agree.
func FuzzClaims(f *testing.F) {
	env := fzSetup(f)
	_, fixtures := fzFixtureTokens(f)
	for i, p := range append(fzPayloads(), fixtures...) {
		paths := []string{"metadata.plan", "sub", "o.id", "metadata.tags", "", ".", "a..b"}
		checks := [][4]string{{"admin", "invoices:read", "o:invoices", "pro"}, {"org:admin", "org:reports:manage", "u:ai", "u:free"},
			{"member", "", "", ""}, {"", "x", "org:", "user:"}}
		ch := checks[i%len(checks)]
		f.Add(p, paths[i%len(paths)], ch[0], ch[1], ch[2], ch[3])
	}
	ctx := context.Background()
	allowed := map[Kind]bool{KindMalformed: true, KindOversized: true, KindInvalidClaim: true, KindMissingClaim: true,
		KindBadIssuer: true, KindExpired: true, KindNotYetValid: true, KindIATInFuture: true, KindNotSession: true, KindPending: true}
	f.Fuzz(func(t *testing.T, payload []byte, path, role, permission, feature, plan string) {
		if len(payload) > MaxTokenSize {
			return // refused as oversized before anything is decoded
		}
		token := fzSign(fzHeader, payload)
		c, err := env.static.Verify(ctx, token)
		cc, errCached := env.cached.Verify(ctx, token)
		if (err == nil) != (errCached == nil) {
			t.Fatalf("token cache changed the decision: %v vs %v", err, errCached)
		}
		if err != nil {
			fzCheckError(t, token, err)
			if !allowed[KindOf(err)] {
				t.Fatalf("a payload signed by the key was refused as %s: %v", KindOf(err), err)
			}
			return
		}
		_, m := fzCheckSigned(t, token)
		if m["sub"] != c.Subject || m["sid"] != c.SessionID || m["iss"] != c.Issuer || c.Issuer != fzIssuer {
			t.Fatalf("claims differ from encoding/json: %+v vs %v", c, m)
		}
		if c.Subject == "" || c.SessionID == "" || strings.HasPrefix(c.Subject, "mch_") || c.Status == "pending" {
			t.Fatalf("accepted a non-session: %+v", c)
		}
		if cc.Subject != c.Subject || cc.OrgRole != c.OrgRole || !reflect.DeepEqual(cc.OrgPermissions, c.OrgPermissions) {
			t.Fatalf("cached claims differ: %+v vs %+v", cc, c)
		}
		if azp, ok := m["azp"]; ok && azp != c.AuthorizedParty {
			t.Fatalf("azp %v vs %q", azp, c.AuthorizedParty)
		}
		fzPeekAgrees(t, token, c, m)

		// Payload is the payload, member for member, whether the Claims
		// came from a first verification or from a cache hit (members Raw
		// leaves out are written back from the typed fields).
		hit, err := env.cached.Verify(ctx, token)
		if err != nil {
			t.Fatalf("cache hit: %v", err)
		}
		for _, x := range []*Claims{c, cc, hit} {
			if p := fzObject(x.Payload()); !reflect.DeepEqual(p, m) {
				t.Fatalf("Payload %s\nis not the payload %s", x.Payload(), payload)
			}
		}

		// Custom follows the payload as encoding/json reads it.
		v, found := c.Custom(path)
		var cur any = m
		ok := path != ""
		for _, part := range strings.Split(path, ".") {
			obj, isObj := cur.(map[string]any)
			if !ok || !isObj {
				ok = false
				break
			}
			cur, ok = obj[part]
		}
		if found != ok || (ok && !reflect.DeepEqual(v, cur)) {
			t.Fatalf("Custom(%q) = %v, %v; encoding/json: %v, %v", path, v, found, cur, ok)
		}
		if hv, hfound := hit.Custom(path); hfound != found || !reflect.DeepEqual(hv, v) {
			t.Fatalf("Custom(%q) on a cache hit = %v, %v; first: %v, %v", path, hv, hfound, v, found)
		}
		if s, _ := c.Custom("sub"); s != c.Subject {
			t.Fatalf("Custom(sub) = %v", s)
		}

		// Has: never a role or permission without an active organization,
		// never anything for an empty query.
		q := Check{Role: role, Permission: permission, Feature: feature, Plan: plan}
		got := c.Has(q)
		if q == (Check{}) && got {
			t.Fatal("Has(Check{}) is true")
		}
		if got && (role != "" || permission != "") && c.OrgID == "" {
			t.Fatalf("Has(%+v) without an active organization", q)
		}
		if got && role != "" && normalizeOrg(c.OrgRole) != normalizeOrg(role) {
			t.Fatalf("Has(role %q) with org role %q", role, c.OrgRole)
		}
		if got && permission != "" && !containsOrg(c.OrgPermissions, permission) {
			t.Fatalf("Has(permission %q) with %v", permission, c.OrgPermissions)
		}
		if c.Version < 1 {
			t.Fatalf("version %d", c.Version)
		}
	})
}

// FuzzVerifyHandshake: VerifyHandshake never panics; what it accepts fzKey
// signed (re-checked independently), and its directives are exactly the
// strings encoding/json reads from the payload's handshake member; a
// re-signed payload is never refused for its signature.
func FuzzVerifyHandshake(f *testing.F) {
	env := fzSetup(f)
	fzAddTokens(f, fzHandshakeTokens())
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, token string) {
		check := func(tok string, resigned bool) {
			dirs, err := env.static.VerifyHandshake(ctx, tok)
			setDirs, setErr := env.set.VerifyHandshake(ctx, tok)
			if setErr == nil && (err != nil || !reflect.DeepEqual(dirs, setDirs)) {
				t.Fatalf("the key set accepted (%q) what the static key did not (%v, %q)", setDirs, err, dirs)
			}
			if err != nil {
				fzCheckError(t, tok, err)
				if resigned && KindOf(err) == KindBadSignature {
					t.Fatalf("a re-signed handshake token refused for its signature: %v", err)
				}
				return
			}
			_, payload := fzCheckSigned(t, tok)
			raw, _ := json.Marshal(payload["handshake"])
			var want []string
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("accepted directives encoding/json does not read as strings: %s", raw)
			}
			if !reflect.DeepEqual(dirs, want) {
				t.Fatalf("directives %q, encoding/json %q", dirs, want)
			}
		}
		check(token, false)
		segs := strings.Split(token, ".")
		if len(segs) == 3 && json.Valid(fzDecode(segs[1])) {
			if tok := fzResign(token); tok != "" {
				check(tok, true)
			}
		}
	})
}

func fzDecode(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

// fzMachineTokens are machine JWTs signed by fzKey, valid at fzNow, and
// broken ones, plus opaque machine tokens.
func fzMachineTokens() []string {
	now := fzNow.Unix()
	m2m := map[string]any{"sub": "mch_fuzz", "aud": []string{"mch_a", "mch_b"}, "scopes": "mch_a mch_b",
		"exp": now + 3600, "iat": now, "nbf": now - 10, "jti": "mt_fuzz", "iss": "https://anything.example",
		"tenant": map[string]any{"region": "eu", "tier": 2}}
	oauth := map[string]any{"sub": "user_fuzz", "client_id": "client_fuzz", "scope": "read write", "scp": []string{"read"},
		"exp": now + 900, "iat": now, "jti": "oat_fuzz"}
	m2mHdr := `{"alg":"RS256","cat":"` + CategoryM2M + `","kid":"` + fzKID + `","typ":"JWT"}`
	oauthHdr := `{"alg":"RS256","kid":"` + fzKID + `","typ":"at+jwt"}`
	mut := func(m map[string]any, kv ...any) []byte {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return fzJSON(out)
	}
	return []string{
		fzSign(m2mHdr, fzJSON(m2m)),
		fzSign(`{"alg":"RS256","kid":"`+fzKID+`"}`, fzJSON(m2m)),
		fzSign(oauthHdr, fzJSON(m2m)),
		fzSign(`{"alg":"RS256","cat":"`+CategoryIgnore+`","kid":"`+fzKID+`"}`, fzJSON(m2m)),
		fzSign(`{"alg":"RS256","cat":"cl_B7d4PD222AAA","kid":"`+fzKID+`"}`, fzJSON(m2m)),
		fzSign(m2mHdr, mut(m2m, "scopes", nil)),
		fzSign(m2mHdr, mut(m2m, "scopes", nil, "aud", "mch_one")),
		fzSign(m2mHdr, mut(m2m, "exp", nil)),
		fzSign(m2mHdr, mut(m2m, "exp", now-60)),
		fzSign(m2mHdr, mut(m2m, "scopes", []string{"x"})),
		fzSign(m2mHdr, []byte(`{"sub":"\u006dch_fuzz","exp":1750000060}`)),
		fzSign(oauthHdr, fzJSON(oauth)),
		fzSign(`{"alg":"RS256","kid":"`+fzKID+`","typ":"application/at+jwt"}`, mut(oauth, "scp", nil)),
		fzSign(`{"alg":"RS256","kid":"`+fzKID+`","typ":"application\/at+jwt"}`, mut(oauth, "scp", nil, "scope", nil)),
		fzSign(`{"alg":"RS256","kid":"`+fzKID+`","typ":"AT+JWT"}`, fzJSON(oauth)),
		fzSign(oauthHdr, mut(oauth, "sub", 42)),
		fzSign(oauthHdr, mut(oauth, "scp", "read")),
		fzSign(`{"alg":"HS256","kid":"`+fzKID+`","typ":"at+jwt"}`, fzJSON(oauth)),
		fzSign(`{"alg":"RS256","crit":["exp"],"kid":"`+fzKID+`","typ":"at+jwt"}`, fzJSON(oauth)),
		"mt_0123456789abcdef0123456789abcdef", "oat_0123456789abcdef0123456789abcdef",
		"ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=", "mt_a.b.c", "ak_", "oat_", "mt_",
	}
}

// FuzzDetectType: DetectType, Opaque and NonSessionCategory never panic;
// the prefixes decide as §1.2 says; the filter on encoded segments never
// changes the answer of the full decode; and a machine answer for a token
// without the prefix is one encoding/json agrees with (sub "mch_…", typ
// at+jwt), for a token in JWT format.
func FuzzDetectType(f *testing.F) {
	fzAddTokens(f, fzMachineTokens())
	f.Fuzz(func(t *testing.T, token string) {
		got := DetectType(token)
		opaque, nonSession := Opaque(token), NonSessionCategory(token)
		switch {
		case strings.HasPrefix(token, "mt_"):
			if got != TokenM2M {
				t.Fatalf("mt_ token detected as %s", got)
			}
			return
		case strings.HasPrefix(token, "oat_") && got != TokenOAuth && got != TokenM2M,
			strings.HasPrefix(token, "ak_") && got == TokenSession:
			t.Fatalf("prefixed token detected as %s", got)
		}
		if opaque && got == TokenSession {
			t.Fatal("a session token is opaque")
		}
		_, _, format := jwtSegments(token)
		format = format && len(token) <= MaxTokenSize
		if opaque && got != TokenAPIKey && format {
			t.Fatal("a machine token in JWT format is opaque")
		}
		var m2m, oauth bool
		if format {
			first, second, _ := splitDots(token)
			m2m, oauth = decodeMachineJWT(token, first, second)
		}
		if fm, fo := inspectJWT(token); fm != m2m || fo != oauth {
			t.Fatalf("the filter says m2m=%v oauth=%v, the full decode m2m=%v oauth=%v", fm, fo, m2m, oauth)
		}
		if !format {
			if got != TokenSession && !strings.HasPrefix(token, "oat_") && !strings.HasPrefix(token, "ak_") {
				t.Fatalf("a token not in JWT format detected as %s", got)
			}
			if nonSession {
				t.Fatal("a token not in JWT format has a non-session category")
			}
			return
		}
		segs := strings.Split(token, ".")
		hdr, payload := fzObject(fzDecode(segs[0])), fzObject(fzDecode(segs[1]))
		if m2m {
			if sub, _ := payload["sub"].(string); got != TokenM2M || !strings.HasPrefix(sub, "mch_") {
				t.Fatalf("M2M by sub %v, detected as %s", payload["sub"], got)
			}
		}
		if oauth && !m2m {
			if typ, _ := hdr["typ"].(string); got != TokenOAuth || (typ != "at+jwt" && typ != "application/at+jwt") {
				t.Fatalf("OAuth by typ %v, detected as %s", hdr["typ"], got)
			}
		}
		if nonSession {
			if cat, ok := hdr["cat"].(string); !ok || cat == CategorySession || cat == CategoryIgnore {
				t.Fatalf("non-session category %v", hdr["cat"])
			}
		}
	})
}

// FuzzVerifyMachineJWT: VerifyMachineJWT never panics; every rejection has
// a kind and a reason; the static key, the key set and the token cache
// agree; an accepted token is one fzKey really signed (re-checked with
// crypto/rsa), of the type DetectType says, M2M with typ JWT or none and
// cat M2M or none, OAuth with an OAuth typ, with exp in the future at fzNow
// and the subject encoding/json reads; and no token is both a machine and a
// session. Fuzzed tokens are also re-signed, to reach the claim checks.
func FuzzVerifyMachineJWT(f *testing.F) {
	env := fzSetup(f)
	seeds := fzMachineTokens()
	fzAddTokens(f, seeds)
	ctx := context.Background()
	// The properties hold vacuously if nothing verifies.
	for _, i := range []int{0, 1, 6, 11, 12, 13} {
		if _, err := env.set.VerifyMachineJWT(ctx, seeds[i]); err != nil {
			f.Fatalf("the valid machine seed %d does not verify: %v", i, err)
		}
	}
	f.Fuzz(func(t *testing.T, token string) {
		check := func(tok string, resigned bool) {
			m, err := env.static.VerifyMachineJWT(ctx, tok)
			ms, errSet := env.set.VerifyMachineJWT(ctx, tok)
			mc, errCached := env.cached.VerifyMachineJWT(ctx, tok)
			fzAgree(t, tok, err, errSet, errCached)
			if err != nil {
				if resigned && KindOf(err) == KindBadSignature {
					t.Fatalf("a re-signed token refused for its signature: %v", err)
				}
				return
			}
			hdr, payload := fzCheckJWS(t, tok)
			if d := DetectType(tok); d != m.Type {
				t.Fatalf("verified as %s, detected as %s", m.Type, d)
			}
			switch m.Type {
			case TokenM2M:
				if typ, ok := hdr["typ"]; ok && typ != "JWT" {
					t.Fatalf("M2M with typ %v", typ)
				}
				if cat, ok := hdr["cat"]; ok && cat != CategoryM2M {
					t.Fatalf("M2M with cat %v", cat)
				}
				if !strings.HasPrefix(m.Subject, "mch_") || m.MachineID() != m.Subject {
					t.Fatalf("M2M subject %q", m.Subject)
				}
			case TokenOAuth:
				if typ := hdr["typ"]; typ != "at+jwt" && typ != "application/at+jwt" {
					t.Fatalf("OAuth with typ %v", typ)
				}
				if m.Claims != nil || m.UserID() != m.Subject {
					t.Fatalf("OAuth mapping %+v", viewOf(m))
				}
			default:
				t.Fatalf("verified as %s", m.Type)
			}
			if payload["sub"] != m.Subject || m.Subject == "" || m.Expiry.Unix() < fzNow.Unix()-5 {
				t.Fatalf("claims differ from encoding/json: %+v vs %v", viewOf(m), payload)
			}
			if _, ok := payload["exp"].(json.Number); !ok {
				t.Fatalf("accepted exp %v", payload["exp"])
			}
			if m.Scopes == nil || slices.Contains(m.Scopes, "") {
				t.Fatalf("scopes %q", m.Scopes)
			}
			if m.Claims != nil {
				claims := fzObject(m.Claims)
				if claims == nil {
					t.Fatalf("claims are not one JSON object: %s", m.Claims)
				}
				for name, v := range payload {
					if _, kept := claims[name]; kept == notClaims(name) || (kept && !reflect.DeepEqual(claims[name], v)) {
						t.Fatalf("claim %q: %v in the payload, %v in the claims", name, v, claims[name])
					}
				}
			}
			if !reflect.DeepEqual(viewOf(mc), viewOf(m)) || (errSet == nil && !reflect.DeepEqual(viewOf(ms), viewOf(m))) {
				t.Fatalf("verifiers disagree: %+v, %+v, %v", viewOf(m), viewOf(mc), errSet)
			}
			if _, serr := env.static.Verify(ctx, tok); serr == nil {
				t.Fatal("verified both as a session and as a machine")
			}
		}
		check(token, false)
		segs := strings.Split(token, ".")
		if len(segs) == 3 && json.Valid(fzDecode(segs[1])) {
			if tok := fzResign(token); tok != "" {
				check(tok, true)
			}
		}
	})
}
