package caddyclerk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-clerk/caddy-clerk/bapi"
	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/internal/machine"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// parseAccept turns the accept setting into a set; "any" stands alone.
func parseAccept(list []string) (authn.Accept, error) {
	var acc authn.Accept
	for _, name := range list {
		if name == "any" {
			if len(list) > 1 {
				return 0, errors.New(`accept any already takes every token type: list types, or any alone`)
			}
			return authn.AcceptAny, nil
		}
		bit := authn.AcceptFor(verifier.TokenType(name))
		if bit == 0 {
			return 0, fmt.Errorf("accept: %q is not a token type: use session_token, m2m_token, api_key, oauth_token or any", name)
		}
		acc |= bit
	}
	return acc, nil
}

// checkMachineSettings are the machine-token checks of checkSettings.
func (h *Handler) checkMachineSettings() error {
	acc, err := parseAccept(h.Accept)
	if err != nil {
		return err
	}
	var errs []error
	if h.MachineSecretKey != "" && !hasPlaceholder(h.MachineSecretKey) {
		if err := checkMachineSecretKey(h.MachineSecretKey); err != nil {
			errs = append(errs, err)
		}
	}
	for _, need := range []struct {
		t   verifier.TokenType
		why string
	}{{verifier.TokenAPIKey, "API keys"}, {verifier.TokenOAuth, "opaque OAuth access tokens (oat_…)"}} {
		if acc.Has(need.t) && h.SecretKey == "" {
			errs = append(errs, fmt.Errorf("accept %s needs secret_key: %s are verified at Clerk's Backend API; add secret_key {env.CLERK_SECRET_KEY}", need.t, need.why))
		}
	}
	if acc.Has(verifier.TokenM2M) && h.SecretKey == "" {
		errs = append(errs, errors.New("accept m2m_token needs secret_key (any M2M token of the instance) or machine_secret_key with secret_key: "+
			"opaque M2M tokens (mt_…) are verified at Clerk's Backend API"))
	}
	if h.MachineSecretKey != "" && !acc.Has(verifier.TokenM2M) {
		errs = append(errs, errors.New("machine_secret_key verifies M2M tokens: add accept m2m_token (or remove it)"))
	}
	for _, list := range h.RequireScopes {
		if len(list) == 0 {
			errs = append(errs, errors.New("require_scope needs at least one scope, e.g. read:invoices"))
		}
	}
	if len(h.RequireScopes) > 0 && !acc.Machines() {
		errs = append(errs, errors.New("require_scope applies to machine tokens, and this route takes none: add accept m2m_token, api_key or oauth_token"))
	}
	for _, d := range []struct {
		name string
		v    *caddy.Duration
	}{{"machine_cache_ttl", h.MachineCacheTTL}, {"machine_stale_if_error", h.MachineStaleIfError}} {
		if d.v != nil && *d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative: use a duration such as 30s (0 turns it off)", d.name, time.Duration(*d.v)))
		}
	}
	if r := h.MachineVerifyRate; r != nil && !(*r > 0 && *r <= 100_000) {
		errs = append(errs, fmt.Errorf("machine_verify_rate %v: give verifications per second, e.g. 20 (more than 0)", *r))
	}
	return errors.Join(errs...)
}

func checkMachineSecretKey(v string) error {
	if len(v) < 8 || v[:3] != "ak_" {
		return errors.New("machine_secret_key must start with ak_ (the machine's secret key in the Clerk dashboard); prefer {env.CLERK_MACHINE_SECRET_KEY}")
	}
	return nil
}

// provisionMachines sets up what machine tokens need: the accepted types
// and the cached Backend API verifier for opaque ones.
func (h *Handler) provisionMachines(caddy.Context) error {
	var err error
	if h.accept, err = parseAccept(h.Accept); err != nil {
		return fmt.Errorf("clerk: %w", err)
	}
	if h.accept == 0 {
		h.accept = authn.AcceptSession
	}
	if !h.accept.Machines() || h.bapi == nil {
		return nil
	}
	cfg := machine.Config{TTL: machine.DefaultTTL, NegativeTTL: machine.DefaultNegativeTTL,
		StaleIfError: machine.DefaultStaleIfError, Rate: machine.DefaultRate}
	if h.MachineCacheTTL != nil {
		cfg.TTL = time.Duration(*h.MachineCacheTTL)
	}
	if h.MachineStaleIfError != nil {
		cfg.StaleIfError = time.Duration(*h.MachineStaleIfError)
	}
	if h.MachineVerifyRate != nil {
		cfg.Rate = *h.MachineVerifyRate
	}
	h.opaque = machine.New(h.verifyOpaque, cfg)
	return nil
}

// verifyOpaque asks the Backend API about an opaque machine token and sorts
// its answer for the cache.
func (h *Handler) verifyOpaque(ctx context.Context, kind, token string) (*verifier.Machine, time.Time, error) {
	var mt *bapi.MachineToken
	var err error
	typ := verifier.TokenType(kind)
	switch typ {
	case verifier.TokenM2M:
		mt, err = h.bapi.VerifyM2MToken(ctx, token)
	case verifier.TokenAPIKey:
		mt, err = h.bapi.VerifyAPIKey(ctx, token)
	case verifier.TokenOAuth:
		mt, err = h.bapi.VerifyOAuthToken(ctx, token)
	default:
		return nil, time.Time{}, fmt.Errorf("%w: not a machine token type", machine.ErrInvalid)
	}
	switch {
	case err == nil:
	case bapi.IsTokenInvalid(err):
		return nil, time.Time{}, fmt.Errorf("%w: %v", machine.ErrInvalid, err)
	case bapi.IsKeyInvalid(err):
		return nil, time.Time{}, fmt.Errorf("%w: %v", machine.ErrKeyInvalid, err)
	default:
		return nil, time.Time{}, fmt.Errorf("%w: %v", machine.ErrUnavailable, err)
	}
	var exp time.Time
	if mt.Expiration > 0 {
		exp = time.UnixMilli(mt.Expiration)
		if !exp.After(time.Now().Add(-h.skew())) {
			return nil, time.Time{}, fmt.Errorf("%w: the %s expired", machine.ErrInvalid, typ)
		}
	}
	return &verifier.Machine{Type: typ, ID: mt.ID, Subject: mt.Subject, Name: mt.Name, ClientID: mt.ClientID,
		Scopes: mt.Scopes, Claims: mt.Claims, Expiry: exp}, exp, nil
}

// skew is the configured clock skew, verifier.DefaultClockSkew by default.
func (h *Handler) skew() time.Duration {
	if h.ClockSkew != nil {
		return time.Duration(*h.ClockSkew)
	}
	return verifier.DefaultClockSkew
}
