package authn

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/machine"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// Accept is the set of credentials a route takes. The zero value takes
// session tokens only, as before machine tokens existed.
type Accept uint8

// Credentials a route can accept.
const (
	AcceptSession Accept = 1 << iota
	AcceptM2M
	AcceptAPIKey
	AcceptOAuth
	AcceptAny = AcceptSession | AcceptM2M | AcceptAPIKey | AcceptOAuth
)

// AcceptFor is the Accept bit of a token type; 0 for an unknown name. A
// switch, not a map: every request asks, and a map hashes the name.
func AcceptFor(t verifier.TokenType) Accept {
	switch t {
	case verifier.TokenSession:
		return AcceptSession
	case verifier.TokenM2M:
		return AcceptM2M
	case verifier.TokenAPIKey:
		return AcceptAPIKey
	case verifier.TokenOAuth:
		return AcceptOAuth
	}
	return 0
}

// Has reports whether a takes tokens of type t.
func (a Accept) Has(t verifier.TokenType) bool {
	if a == 0 {
		a = AcceptSession
	}
	return a&AcceptFor(t) != 0
}

// Machines reports whether a takes any machine token.
func (a Accept) Machines() bool { return a&(AcceptM2M|AcceptAPIKey|AcceptOAuth) != 0 }

// MachineJWTVerifier verifies JWT-format M2M and OAuth tokens locally;
// *verifier.Verifier is one.
type MachineJWTVerifier interface {
	VerifyMachineJWTAt(ctx context.Context, token string, at time.Time) (*verifier.Machine, error)
	// CachedMachine is a machine JWT's credential if a verification still
	// holds at at.
	CachedMachine(ctx context.Context, token string, at time.Time) (*verifier.Machine, bool)
}

// OpaqueVerifier verifies opaque machine tokens at the Backend API through
// a cache; *machine.Verifier[*verifier.Machine] is one.
type OpaqueVerifier interface {
	Verify(ctx context.Context, kind, token string, at time.Time) (*verifier.Machine, machine.Result, error)
}

// opaquePrefix: a Clerk machine token that is verified at the Backend API
// (JWT-format machine tokens never start like this: a JWT starts "eyJ").
func opaquePrefix(token string) bool {
	return strings.HasPrefix(token, "mt_") || strings.HasPrefix(token, "ak_") || strings.HasPrefix(token, "oat_")
}

// notSession decides on an Authorization token that did not verify as a
// session (Authenticate tries that first; sessionErr says why, nil where
// sessions are not accepted or the token is opaque): a machine token, or
// a session token refused.
func (a *Authenticator) notSession(ctx context.Context, req Request, token string, sessionErr error) State {
	acc := a.cfg.Accept
	if !acc.Has(verifier.TokenSession) && !opaquePrefix(token) {
		// A machine route: a machine JWT verified before needs no type
		// detection (which decodes it).
		if m, ok := a.cfg.MachineJWT.CachedMachine(ctx, token, a.at(req)); ok && acc.Has(m.Type) {
			return State{Status: SignedIn, Machine: m, TokenType: m.Type, MachineResult: machine.ResultCached}
		}
	}
	if err := sessionErr; err != nil {
		switch {
		case verifier.IsKeysUnavailable(err):
			return unavailableKeys(err)
		case verifier.KindOf(err) == verifier.KindPending:
			return a.pending(req, nil, nil, false)
		}
		if verifier.DetectType(token) == verifier.TokenSession {
			return a.signedOut(req, verifier.ReasonOf(err), err, nil)
		}
	}
	typ := verifier.DetectType(token)
	if !acc.Has(typ) {
		st := a.signedOut(req, ReasonTokenTypeMismatch, errMismatch(typ), nil)
		st.TokenType = typ
		return st
	}
	if verifier.Opaque(token) {
		return a.opaque(ctx, req, typ, token)
	}
	return a.machineJWT(ctx, req, typ, token)
}

func (a *Authenticator) machineJWT(ctx context.Context, req Request, typ verifier.TokenType, token string) State {
	m, err := a.cfg.MachineJWT.VerifyMachineJWTAt(ctx, token, a.at(req))
	switch {
	case err == nil && m.Type != typ:
		err = errors.New("the machine token is not of the detected type")
		fallthrough
	case err != nil:
		if verifier.IsKeysUnavailable(err) {
			return unavailableKeys(err)
		}
		st := a.signedOut(req, verifier.ReasonOf(err), err, nil)
		st.TokenType, st.MachineResult = typ, machine.ResultInvalid
		return st
	}
	return State{Status: SignedIn, Machine: m, TokenType: typ, MachineResult: machine.ResultOK}
}

func (a *Authenticator) opaque(ctx context.Context, req Request, typ verifier.TokenType, token string) State {
	if a.cfg.Opaque == nil {
		st := a.signedOut(req, ReasonTokenInvalid, errors.New("opaque machine tokens need secret_key"), nil)
		st.TokenType = typ
		return st
	}
	m, res, err := a.cfg.Opaque.Verify(ctx, string(typ), token, a.at(req))
	st := State{TokenType: typ, MachineResult: res, Err: err}
	switch res {
	case machine.ResultOK, machine.ResultCached:
		st.Status, st.Machine = SignedIn, m
		return st
	case machine.ResultRateLimited:
		st.Status, st.Reason, st.RetryAfter = Unavailable, ReasonMachineVerifyRateLimited, 1
		return st
	case machine.ResultUnavailable:
		st.Status, st.Reason, st.RetryAfter = Unavailable, ReasonMachineVerifyUnavailable, 5
		st.KeyRefused = errors.Is(err, machine.ErrKeyInvalid)
		return st
	}
	out := a.signedOut(req, ReasonTokenInvalid, err, nil)
	out.TokenType, out.MachineResult = typ, res
	return out
}

// errMismatch: a token was sent, so the answer says invalid_token.
func errMismatch(typ verifier.TokenType) error {
	return errors.New("the token is a " + string(typ) + ", which this route does not accept")
}

func unavailableKeys(err error) State {
	return State{Status: Unavailable, Reason: verifier.ReasonOf(err), Err: err, RetryAfter: 5}
}
