package verifier

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// testKey is an RSA key with a kid, generated once per test binary.
type testKey struct {
	kid  string
	priv *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keyPool  []*testKey
)

func testKeys(t testing.TB) []*testKey {
	keysOnce.Do(func() {
		for i := 0; i < 3; i++ {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keyPool = append(keyPool, &testKey{kid: fmt.Sprintf("ins_test%d", i), priv: k})
		}
	})
	return keyPool
}

func (k *testKey) jwk(t testing.TB) []byte {
	pk, err := jwk.FromRaw(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pk.Set(jwk.KeyIDKey, k.kid)
	_ = pk.Set(jwk.AlgorithmKey, jwa.RS256)
	_ = pk.Set(jwk.KeyUsageKey, "sig")
	b, err := json.Marshal(pk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwksDoc(t testing.TB, keys ...*testKey) []byte {
	out := []byte(`{"keys":[`)
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, k.jwk(t)...)
	}
	return append(out, "]}"...)
}

func pemOf(t testing.TB, k *testKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

const testIssuer = "https://clerk.example.com"

// claimsAt is a valid v2 session payload issued at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"azp": "https://app.example.com", "exp": now.Unix() + 60, "iat": now.Unix(), "nbf": now.Unix() - 10,
		"iss": testIssuer, "jti": "abcdef0123456789abcd", "sid": "sess_123", "sub": "user_123", "v": 2,
		"fva": []int{0, -1},
	}
}

// sign makes a compact JWS with header and payload exactly as given.
func sign(t testing.TB, k *testKey, header map[string]any, payload []byte) string {
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, k, hb, payload)
}

func signRaw(t testing.TB, k *testKey, header, payload []byte) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	signer, err := jws.NewSigner(jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign([]byte(input), k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

func mint(t testing.TB, k *testKey, claims map[string]any) string {
	pb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, k, map[string]any{"alg": "RS256", "kid": k.kid, "typ": "JWT", "cat": CategorySession}, pb)
}

// fakeSource is a JWKS source whose document, failures and hangs the test
// controls; it counts fetches.
type fakeSource struct {
	mu     sync.Mutex
	doc    []byte
	err    error
	hang   bool
	maxAge time.Duration
	count  atomic.Int64
}

func (s *fakeSource) set(doc []byte, err error) {
	s.mu.Lock()
	s.doc, s.err = doc, err
	s.mu.Unlock()
}

func (s *fakeSource) Fetch(ctx context.Context) ([]byte, time.Duration, error) {
	s.count.Add(1)
	s.mu.Lock()
	doc, err, hang, maxAge := s.doc, s.err, s.hang, s.maxAge
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, 0, err
	}
	return doc, maxAge, nil
}

func (s *fakeSource) String() string { return "fake" }

var errDown = errors.New("HTTP 500")

// fakeClock is a settable clock for the rate limits.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type runtimeMem struct{ heap uint64 }

func (m *runtimeMem) read() {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.heap = s.HeapAlloc
}
