package caddyclerk

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-clerk/caddy-clerk/bapi"
	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// signOut ends the Clerk session: revoke it at the Backend API (else the
// Account Portal, which still knows the client, would sign the browser
// straight back in), expire the session cookies, go to AfterSignOutURL.
// req is the sign-out request (r, or the request a front proxy describes).
// Where it needs the browser's session first (FetchSession), it answers
// as respond does, down included.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, req authn.Request, holder *claimsHolder) (down http.ResponseWriter, err error) {
	about := req.HTTP
	if about.Method != http.MethodGet && about.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return nil, caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("clerk: sign-out takes GET or POST"))
	}
	if about.Method == http.MethodPost && (h.CSRF == nil || *h.CSRF) && !h.authn.SameOrigin(req) {
		holder.reason = string(authn.ReasonCSRF)
		return nil, caddyhttp.Error(http.StatusForbidden, errors.New("clerk: "+string(authn.ReasonCSRF)))
	}
	ctx, cancel := context.WithTimeout(r.Context(), authn.RedeemTimeout)
	defer cancel()
	so := h.authn.PrepareSignOut(ctx, req)
	hdr := w.Header()
	for _, c := range so.SetCookies {
		hdr.Add("Set-Cookie", c)
	}
	if so.HandshakeErr != nil {
		h.log(zapcore.WarnLevel, about, "sign-out: the handshake could not be resolved", verifier.ReasonOf(so.HandshakeErr), so.HandshakeErr)
	}
	revoked := 0
	seen := map[string]bool{}
	for _, t := range so.Tokens {
		c, err := h.lenient.Verify(ctx, t)
		if err != nil {
			h.log(zapcore.WarnLevel, about, "sign-out: a session token does not verify; it names no session to revoke",
				verifier.ReasonOf(err), err)
			continue
		}
		if c.SessionID == "" || seen[c.SessionID] {
			continue
		}
		seen[c.SessionID] = true
		if _, err := h.bapi.RevokeSession(ctx, c.SessionID); err != nil && !bapi.IsNotFound(err) {
			h.logger.Warn("sign-out: could not revoke the Clerk session; it stays signed in at Clerk",
				zap.String("session_id", c.SessionID), zap.Error(err))
			continue
		}
		revoked++
		h.logger.Info("signed out", zap.String("session_id", c.SessionID), zap.String("user_id", c.Subject))
	}
	if revoked == 0 && len(seen) == 0 {
		if st, ok := h.authn.FetchSession(req, &so); ok {
			return h.respond(w, r, about, holder, &st)
		}
	}
	for _, c := range h.authn.SignedOutCookies() {
		hdr.Add("Set-Cookie", c)
	}
	countRequest(outcomeSignOut, "")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Location", h.AfterSignOutURL)
	w.WriteHeader(http.StatusSeeOther)
	return nil, nil
}
