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
}

func cmdVerify(fl caddycmd.Flags) (int, error) {
	o := verifyOptions{
		PublishableKey:    fl.String("publishable-key"),
		JWKS:              fl.String("jwks"),
		JWTKey:            fl.String("jwt-key"),
		Issuer:            fl.String("issuer"),
		AuthorizedParties: fl.String("authorized-parties"),
		ClockSkew:         fl.String("clock-skew"),
		At:                fl.String("at"),
	}
	var in io.Reader = os.Stdin
	if arg := fl.Arg(0); arg != "" && arg != "-" {
		in = strings.NewReader(arg)
	}
	code, err := runVerify(context.Background(), o, in, os.Stdout)
	if code == 1 && err == nil {
		// Caddy's command wrapper exits 1 only with an error to report.
		err = errors.New("not every token is valid")
	}
	return code, err
}

// runVerify verifies each line of in and writes one JSON line per token.
func runVerify(ctx context.Context, o verifyOptions, in io.Reader, out io.Writer) (int, error) {
	v, closeKeys, err := o.verifier()
	if err != nil {
		return 2, err
	}
	defer closeKeys()
	enc := json.NewEncoder(out)
	code := 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		tok := strings.TrimSpace(sc.Text())
		if tok == "" {
			continue
		}
		n++
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		claims, err := v.Verify(vctx, tok)
		cancel()
		if err != nil {
			code = 1
			_ = enc.Encode(map[string]any{"valid": false, "reason": verifier.ReasonOf(err),
				"check": verifier.KindOf(err), "error": err.Error()})
			continue
		}
		_ = enc.Encode(map[string]any{"valid": true, "claims": claims.Raw})
	}
	if err := sc.Err(); err != nil {
		return 2, err
	}
	if n == 0 {
		return 2, errors.New("no token given: pass one as an argument or on standard input")
	}
	return code, nil
}

func (o verifyOptions) verifier() (*verifier.Verifier, func(), error) {
	cfg := verifier.Config{Issuer: o.Issuer}
	closeKeys := func() {}
	var inst *verifier.Instance
	if o.PublishableKey != "" {
		var err error
		if inst, err = verifier.ParsePublishableKey(o.PublishableKey); err != nil {
			return nil, nil, err
		}
		if cfg.Issuer == "" {
			cfg.Issuer = inst.Issuer()
		}
	}
	switch {
	case o.JWTKey != "":
		b, err := os.ReadFile(o.JWTKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--jwt-key: %v", err)
		}
		if cfg.Keys, err = verifier.StaticPEM(string(b)); err != nil {
			return nil, nil, fmt.Errorf("--jwt-key: %v", err)
		}
	case o.JWKS != "" || inst != nil:
		var src verifier.Source
		switch {
		case strings.HasPrefix(o.JWKS, "https://") || strings.HasPrefix(o.JWKS, "http://"):
			src = verifier.URLSource(o.JWKS, nil)
		case o.JWKS != "":
			b, err := os.ReadFile(o.JWKS)
			if err != nil {
				return nil, nil, fmt.Errorf("--jwks: %v", err)
			}
			if _, err := verifier.ParseJWKS(b); err != nil {
				return nil, nil, fmt.Errorf("--jwks: %v", err)
			}
			src = verifier.FuncSource(o.JWKS, func(context.Context) ([]byte, time.Duration, error) { return b, 0, nil })
		default:
			src = verifier.URLSource(inst.JWKSURL(), nil)
		}
		kc := verifier.NewKeyCache(src, verifier.CacheOptions{})
		cfg.Keys, closeKeys = kc, kc.Close
	default:
		return nil, nil, errors.New("no key source: use --publishable-key, --jwks or --jwt-key")
	}
	if o.AuthorizedParties != "" {
		for _, p := range strings.Split(o.AuthorizedParties, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.AuthorizedParties = append(cfg.AuthorizedParties, p)
			}
		}
	}
	if o.ClockSkew != "" {
		d, err := time.ParseDuration(o.ClockSkew)
		if err != nil || d < 0 {
			closeKeys()
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
			closeKeys()
			return nil, nil, err
		}
		cfg.Now = func() time.Time { return at }
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
