package caddyclerk

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

func TestVerifyCommand(t *testing.T) {
	clerk := clerktest.NewT(t)
	admin := clerk.AdminUser()
	good := clerk.MustMint(clerktest.TokenOptions{User: &admin})
	expired := clerk.MustMint(clerktest.TokenOptions{User: &admin, IssuedAt: time.Now().Add(-time.Hour)})

	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	pemFile := filepath.Join(dir, "key.pem")
	_ = os.WriteFile(jwks, clerk.JWKS(), 0o600)
	_ = os.WriteFile(pemFile, []byte(clerk.PublicKeyPEM()), 0o600)

	run := func(o verifyOptions, input string) (int, []map[string]any, error) {
		var out bytes.Buffer
		code, err := runVerify(context.Background(), o, strings.NewReader(input), &out)
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			lines = append(lines, m)
		}
		return code, lines, err
	}

	for name, o := range map[string]verifyOptions{
		"jwks file": {JWKS: jwks, Issuer: clerk.Issuer()},
		"jwks url":  {JWKS: clerk.JWKSURL(), Issuer: clerk.Issuer()},
		"pem":       {JWTKey: pemFile, Issuer: clerk.Issuer()},
	} {
		code, lines, err := run(o, good+"\n\n"+expired+"\nnot-a-token\n")
		if err != nil || code != 1 || len(lines) != 3 {
			t.Fatalf("%s: code %d, %d lines, %v", name, code, len(lines), err)
		}
		claims, _ := lines[0]["claims"].(map[string]any)
		if lines[0]["valid"] != true || claims["sub"] != admin.ID {
			t.Fatalf("%s: %v", name, lines[0])
		}
		if lines[1]["valid"] != false || lines[1]["reason"] != "token-expired" || lines[2]["reason"] != "token-invalid" {
			t.Fatalf("%s: %v %v", name, lines[1], lines[2])
		}
		if strings.Contains(lines[1]["error"].(string), expired) {
			t.Fatal("the error echoes the token")
		}
	}
	// All valid → 0; --at in the past makes it not yet valid.
	if code, _, _ := run(verifyOptions{JWKS: jwks, Issuer: clerk.Issuer()}, good); code != 0 {
		t.Fatalf("all valid: code %d", code)
	}
	code, lines, _ := run(verifyOptions{JWKS: jwks, Issuer: clerk.Issuer(), At: "2020-01-01T00:00:00Z"}, good)
	if code != 1 || lines[0]["reason"] != "token-not-active-yet" {
		t.Fatalf("--at: %d %v", code, lines)
	}
	code, lines, _ = run(verifyOptions{JWKS: jwks, Issuer: "https://other.example"}, good)
	if code != 1 || lines[0]["reason"] != "token-invalid-issuer" {
		t.Fatalf("issuer: %v", lines)
	}
	// Usage errors → 2.
	for _, o := range []verifyOptions{{}, {JWKS: filepath.Join(dir, "missing")}, {JWKS: jwks, ClockSkew: "soon"}, {JWKS: jwks, At: "yesterday"}} {
		if code, _, err := run(o, good); code != 2 || err == nil {
			t.Fatalf("%+v: code %d err %v", o, code, err)
		}
	}
	if code, _, err := run(verifyOptions{JWKS: jwks}, "\n"); code != 2 || err == nil {
		t.Fatalf("no token: %d %v", code, err)
	}
	// An issuer is always pinned: without --issuer or --publishable-key a
	// token from any instance would pass, so that is a usage error naming
	// the flags to add.
	for _, o := range []verifyOptions{{JWKS: jwks}, {JWTKey: pemFile}, {JWKS: clerk.JWKSURL()}} {
		code, lines, err := run(o, good)
		if code != 2 || err == nil || !strings.Contains(err.Error(), "--issuer") || !strings.Contains(err.Error(), "--publishable-key") || len(lines) != 0 {
			t.Fatalf("%+v without an issuer: code %d, %v, %v", o, code, err, lines)
		}
	}
	// The publishable key pins its instance's issuer, https://<Frontend API
	// host>: the emulator's tokens say http://, so they do not pass.
	if code, lines, err := run(verifyOptions{PublishableKey: clerk.PublishableKey(), JWKS: jwks}, good); code != 1 || err != nil || lines[0]["reason"] != "token-invalid-issuer" {
		t.Fatalf("publishable key: %d %v %v", code, err, lines)
	}
	// An empty token argument is an invalid token, not a usage error.
	code, lines, err := run(verifyOptions{JWKS: jwks, Issuer: clerk.Issuer(), HasToken: true}, "")
	if code != 1 || err != nil || len(lines) != 1 || lines[0]["valid"] != false || lines[0]["reason"] != "token-invalid" {
		t.Fatalf("empty token: %d %v %v", code, err, lines)
	}
	// A token argument wins over standard input.
	if code, lines, _ := run(verifyOptions{JWKS: jwks, Issuer: clerk.Issuer(), HasToken: true, Token: good}, expired); code != 0 || len(lines) != 1 {
		t.Fatalf("argument: %d %v", code, lines)
	}
	// --authorized-parties "" is a usage error, not "no check".
	if code, _, err := run(verifyOptions{JWKS: jwks, Issuer: clerk.Issuer(), PartiesSet: true, AuthorizedParties: " , "}, good); code != 2 || err == nil {
		t.Fatalf("empty parties: %d %v", code, err)
	}
	code, lines, _ = run(verifyOptions{JWKS: jwks, Issuer: clerk.Issuer(), PartiesSet: true, AuthorizedParties: "https://other.example"}, good)
	if code != 1 || lines[0]["reason"] != "token-invalid-authorized-parties" {
		t.Fatalf("parties: %d %v", code, lines)
	}
}
