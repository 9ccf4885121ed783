package caddyclerk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/bapi"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// keySpec is where verification keys come from and which issuer to pin,
// for the handler and for caddy clerk verify alike.
type keySpec struct {
	JWTKey         string // PEM text, bare base64 body, or a path to a file holding it
	JWKSURL        string
	JWKSFile       string // caddy clerk verify only: a JWKS document on disk
	BAPI           *bapi.Client
	SecretKey      string // only hashed, to tell key caches of two secret keys apart
	FrontendAPIURL string
	Instance       *verifier.Instance
	Issuer         string
	// names maps a setting to what the user wrote (a CLI flag); nil for
	// the handler's settings.
	names map[string]string
}

func (s keySpec) name(setting string) string {
	if n, ok := s.names[setting]; ok {
		return n
	}
	return setting
}

// issuer is the exact iss to pin: the configured one, else the proxied
// Frontend API, else the publishable key's instance; "" if none is known.
func (s keySpec) issuer() string {
	switch {
	case s.Issuer != "":
		return s.Issuer
	case s.FrontendAPIURL != "":
		return strings.TrimRight(s.FrontendAPIURL, "/")
	case s.Instance != nil:
		return s.Instance.Issuer()
	}
	return ""
}

// keys picks jwt_key (no network) over jwks_url over the Backend API
// (secret_key) over the Frontend API's JWKS. It returns static keys, or a
// source to cache and the id under which caches of it are shared.
func (s keySpec) keys() (static verifier.Keys, src verifier.Source, id string, err error) {
	switch {
	case s.JWTKey != "":
		text := s.JWTKey
		if !strings.HasPrefix(text, "-----BEGIN") && !strings.HasPrefix(text, "MII") {
			b, err := os.ReadFile(text)
			if err != nil {
				return nil, nil, "", fmt.Errorf("%s is neither a PEM public key nor a readable file: %v", s.name("jwt_key"), err)
			}
			text = string(b)
		}
		keys, err := verifier.StaticPEM(text)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: %v", s.name("jwt_key"), err)
		}
		return keys, nil, "", nil
	case s.JWKSFile != "":
		b, err := os.ReadFile(s.JWKSFile)
		if err == nil {
			_, err = verifier.ParseJWKS(b)
		}
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: %v", s.name("jwks_file"), err)
		}
		src := verifier.FuncSource(s.JWKSFile, func(context.Context) ([]byte, time.Duration, error) { return b, 0, nil })
		return nil, src, "file:" + s.JWKSFile, nil
	case s.JWKSURL != "":
		if err := checkURL(s.name("jwks_url"), s.JWKSURL); err != nil {
			return nil, nil, "", err
		}
		return nil, verifier.URLSource(s.JWKSURL, nil), "url:" + s.JWKSURL, nil
	case s.BAPI != nil:
		client := s.BAPI
		sum := sha256.Sum256([]byte(s.SecretKey))
		src := verifier.FuncSource(client.BaseURL()+"/v1/jwks", func(ctx context.Context) ([]byte, time.Duration, error) {
			body, maxAge, err := client.JWKSWithMaxAge(ctx)
			var apiErr *bapi.Error
			if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
				err = verifier.WithRetryAfter(err, apiErr.RetryAfter)
			}
			return body, maxAge, err
		})
		return nil, src, "bapi:" + client.BaseURL() + ":" + hex.EncodeToString(sum[:8]), nil
	case s.FrontendAPIURL != "":
		u := strings.TrimRight(s.FrontendAPIURL, "/") + "/.well-known/jwks.json"
		return nil, verifier.URLSource(u, nil), "url:" + u, nil
	case s.Instance != nil:
		return nil, verifier.URLSource(s.Instance.JWKSURL(), nil), "url:" + s.Instance.JWKSURL(), nil
	}
	return nil, nil, "", fmt.Errorf("no key source: set %s, %s, %s or %s", s.name("publishable_key"),
		s.name("secret_key"), s.name("jwks_url"), s.name("jwt_key"))
}
