package caddyclerk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "clerk",
		Usage: "verify [--publishable-key pk] [--jwks FILE|URL] [--jwt-key FILE] [--issuer URL] [--authorized-parties a,b] [--clock-skew 5s] [--at UNIX|RFC3339] [TOKEN | -]",
		Short: "Clerk tools: verify session tokens",
		CobraFunc: func(cmd *cobra.Command) {
			verify := &cobra.Command{
				Use:   "verify [TOKEN | -]",
				Short: "Verify Clerk session tokens and print one JSON line per token",
				Long: `Verifies Clerk session tokens as the clerk handler does and prints one JSON line per
token: {"valid":true,"claims":{…}} or {"valid":false,"reason":"token-expired","error":"…"}.
With - (or no token) it reads one token per line from standard input.
Exit status: 0 if all tokens are valid, 1 if any is invalid, 2 on usage errors.`,
				Args: cobra.MaximumNArgs(1),
			}
			f := verify.Flags()
			f.String("publishable-key", "", "publishable key: derives the JWKS URL and the issuer")
			f.String("jwks", "", "JWKS file or URL")
			f.String("jwt-key", "", "PEM public key file (networkless)")
			f.String("issuer", "", "expected issuer (default: from the publishable key)")
			f.String("authorized-parties", "", "comma-separated allowed azp origins")
			f.String("clock-skew", "5s", "tolerance for exp, nbf and iat")
			f.String("at", "", "verify as of this time (unix seconds or RFC 3339)")
			verify.RunE = caddycmd.WrapCommandFuncForCobra(cmdVerify)
			cmd.AddCommand(verify)
		},
	})
}

// verifyOptions are the flags of caddy clerk verify.
type verifyOptions struct {
	PublishableKey, JWKS, JWTKey, Issuer, AuthorizedParties, ClockSkew, At string
	// PartiesSet: --authorized-parties was given (an empty value is then a
	// mistake, not "no check").
	PartiesSet bool
	// Token is the one token given as an argument; with HasToken it is
	// verified even when empty. Without, tokens come one per line from in.
	Token    string
	HasToken bool
}

func cmdVerify(fl caddycmd.Flags) (int, error) {
	o := verifyOptions{
		PublishableKey:    fl.String("publishable-key"),
		JWKS:              fl.String("jwks"),
		JWTKey:            fl.String("jwt-key"),
		Issuer:            fl.String("issuer"),
		AuthorizedParties: fl.String("authorized-parties"),
		PartiesSet:        fl.Changed("authorized-parties"),
		ClockSkew:         fl.String("clock-skew"),
		At:                fl.String("at"),
	}
	if fl.NArg() > 0 && fl.Arg(0) != "-" {
		o.Token, o.HasToken = fl.Arg(0), true
	}
	code, err := runVerify(context.Background(), o, os.Stdin, os.Stdout)
	if code == 1 && err == nil {
		// Caddy's command wrapper exits 1 only with an error to report.
		err = errors.New("not every token is valid")
	}
	return code, err
}

// runVerify verifies the token argument, or each line of in, and writes
// one JSON line per token.
func runVerify(ctx context.Context, o verifyOptions, in io.Reader, out io.Writer) (int, error) {
	v, closeKeys, err := o.verifier()
	if err != nil {
		return 2, err
	}
	defer closeKeys()
	enc := json.NewEncoder(out)
	code := 0
	check := func(tok string) {
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		claims, err := v.Verify(vctx, tok)
		cancel()
		if err != nil {
			code = 1
			_ = enc.Encode(map[string]any{"valid": false, "reason": verifier.ReasonOf(err),
				"check": verifier.KindOf(err), "error": err.Error()})
			return
		}
		_ = enc.Encode(map[string]any{"valid": true, "claims": claims.Payload()})
	}
	if o.HasToken {
		check(strings.TrimSpace(o.Token))
		return code, nil
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		tok := strings.TrimSpace(sc.Text())
		if tok == "" {
			continue
		}
		n++
		check(tok)
	}
	if err := sc.Err(); err != nil {
		return 2, err
	}
	if n == 0 {
		return 2, errors.New("no token given: pass one as an argument or on standard input")
	}
	return code, nil
}

// cliNames are the flags that stand for the handler's settings.
var cliNames = map[string]string{"publishable_key": "--publishable-key", "jwks_url": "--jwks", "jwks_file": "--jwks",
	"jwt_key": "--jwt-key", "secret_key": "--jwks"}

// verifier builds the verifier as the handler does (keySpec): the same
// key sources, and an issuer always pinned.
func (o verifyOptions) verifier() (*verifier.Verifier, func(), error) {
	spec := keySpec{JWTKey: o.JWTKey, Issuer: o.Issuer, names: cliNames}
	if strings.HasPrefix(o.JWKS, "https://") || strings.HasPrefix(o.JWKS, "http://") {
		spec.JWKSURL = o.JWKS
	} else {
		spec.JWKSFile = o.JWKS
	}
	if o.PublishableKey != "" {
		inst, err := verifier.ParsePublishableKey(o.PublishableKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--publishable-key: %v", err)
		}
		spec.Instance = inst
	}
	if o.JWTKey == "" && o.JWKS == "" && spec.Instance == nil {
		return nil, nil, errors.New("no key source: use --publishable-key, --jwks or --jwt-key")
	}
	cfg := verifier.Config{Issuer: spec.issuer()}
	if cfg.Issuer == "" {
		return nil, nil, errors.New("no issuer to pin: add --issuer <Frontend API URL, e.g. https://clerk.example.com> " +
			"or --publishable-key <pk_…>; without one a token from any Clerk instance would pass")
	}
	if o.PartiesSet {
		for _, p := range strings.Split(o.AuthorizedParties, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.AuthorizedParties = append(cfg.AuthorizedParties, p)
			}
		}
		if len(cfg.AuthorizedParties) == 0 {
			return nil, nil, errors.New("--authorized-parties is empty: give the allowed origins, e.g. https://app.example.com, or leave the flag out")
		}
	}
	if o.ClockSkew != "" {
		d, err := time.ParseDuration(o.ClockSkew)
		if err != nil || d < 0 {
			return nil, nil, fmt.Errorf("--clock-skew %q is not a duration", o.ClockSkew)
		}
		cfg.ClockSkew = d
		if d == 0 {
			cfg.ClockSkew = -1
		}
	}
	if o.At != "" {
		at, err := parseAt(o.At)
		if err != nil {
			return nil, nil, err
		}
		cfg.Now = func() time.Time { return at }
	}
	static, src, _, err := spec.keys()
	if err != nil {
		return nil, nil, err
	}
	closeKeys := func() {}
	cfg.Keys = static
	if src != nil {
		kc := verifier.NewKeyCache(src, verifier.CacheOptions{})
		cfg.Keys, closeKeys = kc, kc.Close
	}
	v, err := verifier.New(cfg)
	if err != nil {
		closeKeys()
		return nil, nil, err
	}
	return v, closeKeys, nil
}

func parseAt(s string) (time.Time, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.UnixMilli(int64(n * 1000)), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q is neither unix seconds nor RFC 3339", s)
	}
	return t, nil
}
