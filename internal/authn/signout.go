package authn

import (
	"context"
	"net/http"
)

// SignOut is what signing a browser out needs from its request.
type SignOut struct {
	// Tokens are every session token the request carries (header, plain
	// and suffixed cookies, and a fresh one from a handshake that came
	// back): each names a session to revoke.
	Tokens []string
	// SetCookies clear a handshake carrier cookie.
	SetCookies []string
	// HandshakeErr: a handshake came back but could not be resolved.
	HandshakeErr error

	c    cookies
	back bool // a handshake came back
}

// PrepareSignOut reads the session tokens of a sign-out request.
func (a *Authenticator) PrepareSignOut(ctx context.Context, req Request) SignOut {
	r := req.HTTP
	var c cookies
	a.readCookies(r, a.at(req), &c)
	so := SignOut{c: c}
	for _, s := range []string{c.sfxSession, c.plainSession} {
		if s != "" {
			so.Tokens = append(so.Tokens, s)
		}
	}
	if t := HeaderToken(r); t != "" {
		so.Tokens = append(so.Tokens, t)
	}
	so.back = c.nonce != "" || c.handshakeToken != ""
	if so.back && a.cfg.FrontendAPI != "" {
		// Back from the handshake below, with a fresh session token.
		if _, s, err := a.redeem(ctx, &c); err != nil {
			so.HandshakeErr = err
		} else if s != "" {
			so.Tokens = append(so.Tokens, s)
		}
		so.SetCookies = clearCarrier(&c, nil)
	}
	return so
}

// FetchSession is the handshake that fetches a session token first when
// no token named a session but the browser is signed in at Clerk (it holds
// no session cookie here). ok is false when that does not apply.
func (a *Authenticator) FetchSession(req Request, so *SignOut) (st State, ok bool) {
	if so.c.clientUAT > 0 && a.cfg.FrontendAPI != "" && req.HTTP.Method == http.MethodGet && !so.back {
		return a.handshake(req, &so.c, ReasonClientUATWithoutSession, nil), true
	}
	return State{}, false
}
