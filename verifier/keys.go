package verifier

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// MinRSABits is the smallest modulus we trust. Clerk's keys are 2048-bit.
const MinRSABits = 2048

// Key is one usable verification key.
type Key struct {
	ID     string
	Alg    string // from the JWK; empty means RS256 for an RSA key
	Public *rsa.PublicKey
}

// Keys resolves the key for a token's kid. A key set (KeyCache) looks the kid
// up; a single configured key (PEM or JWK) ignores it, as Clerk's networkless
// verification does.
type Keys interface {
	Key(ctx context.Context, kid string) (*Key, error)
	// RequiresKID reports whether tokens must name their key.
	RequiresKID() bool
}

// KeySet is an immutable parsed JWKS: usable keys by kid, plus the kids of
// entries we refused (wrong type, wrong use, too small, duplicated) so a
// token naming one gets a precise error rather than "unknown kid".
type KeySet struct {
	keys     map[string]*Key
	rejected map[string]error
}

// Len is the number of usable keys.
func (s *KeySet) Len() int { return len(s.keys) }

// keepSame reuses old's *Key for unchanged keys, so a refresh that changes
// nothing does not invalidate tokens cached against those keys.
func (s *KeySet) keepSame(old *KeySet) {
	for kid, k := range s.keys {
		if o, ok := old.keys[kid]; ok && o.Alg == k.Alg && o.Public.Equal(k.Public) {
			s.keys[kid] = o
		}
	}
}

func (s *KeySet) lookup(kid string) (*Key, *Error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	if err, ok := s.rejected[kid]; ok {
		return nil, wrapError(KindKeyRejected, fmt.Sprintf("the key %q in the JWKS is not usable", kid), err)
	}
	return nil, nil
}

// ParseJWKS parses a JWKS document. Entries that are not RS256 signing keys
// are kept aside as rejected. A document with no keys at all is an error, as
// Clerk says: "The JWKS endpoint did not contain any signing keys".
func ParseJWKS(data []byte) (*KeySet, error) {
	if err := checkJSONObject(data); err != nil {
		return nil, fmt.Errorf("JWKS is not a JSON object: %w", err)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	set := &KeySet{keys: map[string]*Key{}, rejected: map[string]error{}}
	for _, raw := range doc.Keys {
		var id struct {
			Kid string `json:"kid"`
		}
		_ = json.Unmarshal(raw, &id)
		k, err := parseJWK(raw)
		if err != nil {
			set.rejected[id.Kid] = err
			continue
		}
		if k.ID == "" {
			// A JWKS key without a kid can never be selected safely.
			set.rejected[""] = errors.New("JWKS entry has no kid")
			continue
		}
		if _, dup := set.keys[k.ID]; dup {
			// Two keys under one kid: we cannot know which one is meant.
			delete(set.keys, k.ID)
			set.rejected[k.ID] = errors.New("two JWKS entries share this kid")
			continue
		}
		if _, dup := set.rejected[k.ID]; dup {
			continue
		}
		set.keys[k.ID] = k
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("the JWKS did not contain any signing keys")
	}
	return set, nil
}

// parseJWK vets one JWK: RSA public, for signatures, RS256 (or no alg),
// key_ops allowing verify, a sane modulus and exponent.
func parseJWK(raw []byte) (*Key, error) {
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid JWK: %w", err)
	}
	return vetKey(key)
}

func vetKey(key jwk.Key) (*Key, error) {
	if key.KeyType() != "RSA" {
		return nil, fmt.Errorf("key type %q is not RSA", key.KeyType())
	}
	if u := key.KeyUsage(); u != "" && u != "sig" {
		return nil, fmt.Errorf("key use %q is not sig", u)
	}
	if ops := key.KeyOps(); len(ops) > 0 {
		ok := false
		for _, op := range ops {
			if op == jwk.KeyOpVerify {
				ok = true
			}
		}
		if !ok {
			return nil, errors.New("key_ops does not allow verify")
		}
	}
	alg := ""
	if a := key.Algorithm(); a != nil {
		alg = a.String()
	}
	if alg != "" && !strings.HasPrefix(alg, "RS") {
		return nil, fmt.Errorf("key algorithm %q is not an RSA PKCS#1 signature algorithm", alg)
	}
	var pub rsa.PublicKey
	if pk, err := key.PublicKey(); err != nil {
		return nil, err
	} else if err := pk.Raw(&pub); err != nil {
		return nil, fmt.Errorf("not an RSA public key: %w", err)
	}
	if err := checkRSA(&pub); err != nil {
		return nil, err
	}
	return &Key{ID: key.KeyID(), Alg: alg, Public: &pub}, nil
}

func checkRSA(pub *rsa.PublicKey) error {
	if pub.N == nil || pub.N.BitLen() < MinRSABits {
		return fmt.Errorf("RSA key is smaller than %d bits", MinRSABits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return fmt.Errorf("RSA public exponent %d is not acceptable", pub.E)
	}
	return nil
}

// staticKey is a single configured key: tokens are not matched by kid.
type staticKey struct{ key *Key }

func (s staticKey) Key(context.Context, string) (*Key, error) { return s.key, nil }
func (s staticKey) RequiresKID() bool                         { return false }

// StaticJWK returns Keys for one JWK given directly.
func StaticJWK(data []byte) (Keys, error) {
	k, err := parseJWK(data)
	if err != nil {
		return nil, wrapError(KindKeyRejected, "the configured JWK is not usable", err)
	}
	return staticKey{k}, nil
}

// StaticPEM returns Keys for Clerk's "JWT public key": an armored PEM or
// just its one-line base64 body, as the dashboard shows it.
func StaticPEM(text string) (Keys, error) {
	k, err := ParsePEM(text)
	if err != nil {
		return nil, err
	}
	return staticKey{k}, nil
}

// ParsePEM parses a PEM public key, armored or bare base64 (spaces and line
// breaks tolerated; Caddyfiles and env vars mangle them).
func ParsePEM(text string) (*Key, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("the PEM key is empty")
	}
	if !strings.HasPrefix(text, "-----BEGIN") {
		body := strings.Join(strings.Fields(text), "")
		var b strings.Builder
		b.WriteString("-----BEGIN PUBLIC KEY-----\n")
		for len(body) > 64 {
			b.WriteString(body[:64] + "\n")
			body = body[64:]
		}
		b.WriteString(body + "\n-----END PUBLIC KEY-----\n")
		text = b.String()
	}
	key, err := jwk.ParseKey([]byte(text), jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("not a PEM public key: %w", err)
	}
	if _, isPrivate := key.(jwk.RSAPrivateKey); isPrivate {
		return nil, errors.New("the PEM is a private key; configure the public key")
	}
	k, err := vetKey(key)
	if err != nil {
		return nil, err
	}
	k.Alg = "RS256"
	return k, nil
}

// verifySignature checks sig over input with jwx's primitive for alg.
// The policy (RS256 only) lives in Verify; this stays generic so the
// signature-layer conformance vectors can exercise it.
func verifySignature(alg string, pub *rsa.PublicKey, input string, sig []byte) error {
	v := rs256
	if alg != "RS256" {
		var err error
		if v, err = jws.NewVerifier(jwa.SignatureAlgorithm(alg)); err != nil {
			return err
		}
	}
	return v.Verify([]byte(input), sig, pub)
}

var rs256 = func() jws.Verifier {
	v, err := jws.NewVerifier(jwa.RS256)
	if err != nil {
		panic(err)
	}
	return v
}()
