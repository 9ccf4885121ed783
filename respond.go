package caddyclerk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// respond turns a request state into HTTP. It and what it calls here
// (effects, refuse) are the only place (with sign-out) that sets the
// identity placeholders and {clerk.reason}, counts, logs the decision and
// writes. A request that goes on downstream (r) is not written to: down is
// the writer ServeHTTP hands it on with (w, or w keeping the answer out of
// shared caches). about is the request decided on, for the logs: r, or the
// one a front proxy describes.
func (h *Handler) respond(w http.ResponseWriter, r, about *http.Request,
	holder *claimsHolder, st *authn.State) (down http.ResponseWriter, err error) {
	info := h.isUserinfo(r)
	if info {
		userinfoState(st)
	}
	hdr := w.Header()
	h.effects(hdr, about, holder, st)

	if info && st.Status != authn.Skipped && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, h.wrongMethod(hdr)
	}

	switch st.Status {
	case authn.Skipped:
		countRequest(outcomeSkipped, "")
		return w, nil
	case authn.SignedIn:
		holder.setIdentity(st)
		countRequest(outcomeAuthenticated, "")
		if info {
			return nil, h.serveUserinfo(w, r, st)
		}
		return h.private(w, holder), nil
	}
	return h.refuse(w, r, about, holder, st, info)
}

// refuse is respond for every state but Skipped and SignedIn. Its own
// function: the frame of its logs and errors would otherwise be on the
// stack of every request that passes.
func (h *Handler) refuse(w http.ResponseWriter, r, about *http.Request,
	holder *claimsHolder, st *authn.State, info bool) (down http.ResponseWriter, err error) {
	hdr := w.Header()
	switch st.Status {
	case authn.Forbidden:
		// Who it was shows (access logs, handle_errors); its claims do not.
		holder.setIdentity(st)
		holder.hideClaims = true
		h.log(zapcore.DebugLevel, about, "request refused: authenticated but not allowed", st.Reason, nil)
		countRequest(outcomeForbidden, st.Reason)
		if st.Reverification != nil {
			return nil, writeReverificationHint(w, *st.Reverification)
		}
		return nil, caddyhttp.Error(http.StatusForbidden, errors.New("clerk: "+string(st.Reason)))

	case authn.Handshake:
		h.log(zapcore.DebugLevel, about, "handshake with Clerk", st.Reason, st.Err)
		countRequest(outcomeHandshake, st.Reason)
		metrics.handshakes.WithLabelValues("started").Inc()
		hdr.Set("Location", st.Location)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil, nil

	case authn.Reload:
		countRequest(outcomeHandshake, "")
		hdr.Set("Location", st.Location)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil, nil

	case authn.Unavailable:
		// No key set has ever loaded, or Clerk cannot be asked about a
		// machine token: it may well be valid, so 401 would be a lie.
		level := zapcore.WarnLevel
		if st.Reason == authn.ReasonMachineVerifyRateLimited {
			level = zapcore.DebugLevel // a spray must not fill the log; the metric counts it
		}
		h.log(level, about, "the credential cannot be checked now", st.Reason, st.Err)
		if h.Optional && !info {
			countRequest(outcomeAnonymous, st.Reason)
			return w, nil
		}
		countRequest(outcomeUnavailable, st.Reason)
		hdr.Set("Retry-After", strconv.Itoa(max(st.RetryAfter, 1)))
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("clerk: %s: %w", st.Reason, st.Err))
	}

	// Signed out.
	h.log(zapcore.DebugLevel, about, "request not authenticated", st.Reason, st.Err)
	switch {
	case h.Optional && !info: // userinfo_path answers 401 even then
		countRequest(outcomeAnonymous, st.Reason)
		return w, nil
	case st.Location != "":
		countRequest(outcomeSignIn, st.Reason)
		http.Redirect(w, r, st.Location, http.StatusTemporaryRedirect)
		return nil, nil
	}
	challenge := `Bearer`
	err = st.Err
	switch {
	case st.Reason == authn.ReasonForwardedRequestInvalid:
		// No token was judged, the front proxy's headers were: the error
		// (for Caddy's logs) names the header, the challenge blames no token.
		err = fmt.Errorf("clerk: %s: %w", st.Reason, err)
	case err != nil:
		challenge = `Bearer error="invalid_token", error_description="` + string(st.Reason) + `"`
	default:
		err = errors.New("clerk: " + string(st.Reason))
	}
	hdr.Set("WWW-Authenticate", challenge)
	countRequest(outcomeUnauthorized, st.Reason)
	return nil, caddyhttp.Error(http.StatusUnauthorized, err)
}

// wrongMethod answers a userinfo_path request that is not GET or HEAD.
func (h *Handler) wrongMethod(hdr http.Header) error {
	hdr.Set("Allow", "GET, HEAD")
	return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("clerk: userinfo_path answers GET and HEAD"))
}

// effects applies what every answer to st carries (cookies, no-store,
// {clerk.reason}, metrics and the warnings of a loop or a refused key).
// Its own function, so that respond reads as the switch it is.
func (h *Handler) effects(hdr http.Header, about *http.Request, holder *claimsHolder, st *authn.State) {
	for _, c := range st.SetCookies {
		hdr.Add("Set-Cookie", c)
	}
	if st.NoStore && !(st.Status == authn.SignedOut && h.Optional) {
		// Chrome caches redirects of inactive tabs; a cached one would loop.
		// (optional passes a signed-out page load on instead of redirecting.)
		hdr.Set("Cache-Control", "no-store")
	}
	if st.HandshakeResult != "" {
		metrics.handshakes.WithLabelValues(st.HandshakeResult).Inc()
	}
	if st.HandshakeErr != nil {
		h.log(zapcore.WarnLevel, about, "Clerk handshake could not be resolved", verifier.ReasonOf(st.HandshakeErr), st.HandshakeErr)
	}
	if st.LoopStopped {
		msg := "Clerk handshake redirect loop: treating the request as signed out; " +
			"the keys probably do not match the Clerk instance (publishable_key, secret_key, jwt_key)"
		if st.Reason == authn.ReasonSatelliteNeedsSyncing || st.Reason == authn.ReasonPrimaryRespondsToSyncing {
			msg = "Clerk satellite sync redirect loop: treating the request as signed out; check that the domain is " +
				"added as a satellite of the instance in the Clerk dashboard and that sign_in_url is the primary domain's sign-in page"
		}
		h.logger.Warn(msg, zap.String("reason", string(st.Reason)), zap.String("uri", about.URL.Path))
	}
	if st.OrgLoopStopped {
		// A user's condition, not the operator's: not a warning.
		h.logger.Info("Clerk organization activation handshake loop: the user is probably not a member of the "+
			"organization the URL names; answering 403", zap.String("reason", string(st.Reason)), zap.String("uri", about.URL.Path))
	}
	holder.reason = string(st.Reason)
	if st.MachineResult != "" {
		countMachine(st.TokenType, st.MachineResult)
	}
	if st.KeyRefused && h.opaque != nil && h.opaque.LogKeyRefused() {
		h.logger.Error("Clerk's Backend API refused the key used to verify machine tokens: check secret_key "+
			"(and machine_secret_key for M2M tokens); machine tokens get 503 until it is fixed",
			zap.String("token_type", string(st.TokenType)))
	}
}

func (h *Handler) log(level zapcore.Level, r *http.Request, msg string, reason authn.Reason, err error) {
	if ce := h.logger.Check(level, msg); ce != nil {
		fields := []zap.Field{zap.String("reason", string(reason)), zap.String("method", r.Method),
			zap.String("uri", r.URL.Path)}
		if k := verifier.KindOf(err); k != "" {
			fields = append(fields, zap.String("check", string(k)), zap.String("detail", err.Error()))
		}
		ce.Write(fields...)
	}
}

// writeReverificationHint answers a stale session with Clerk's 403 body
// (@clerk/shared reverificationError), which clerk-js's useReverification
// reads to open its verification modal and retry. It is written here, not
// through handle_errors, so that body is what the page gets. no-store: once
// the user verifies again, a cached refusal must not answer the retry.
func writeReverificationHint(w http.ResponseWriter, r verifier.Reverification) error {
	type clerkError struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		Metadata struct {
			Reverification any `json:"reverification"`
		} `json:"metadata"`
	}
	var body struct {
		ClerkError clerkError `json:"clerk_error"`
	}
	body.ClerkError.Type, body.ClerkError.Reason = "forbidden", string(authn.ReasonReverification)
	if r.Preset != "" {
		body.ClerkError.Metadata.Reverification = r.Preset
	} else {
		body.ClerkError.Metadata.Reverification = struct {
			Level        string `json:"level"`
			AfterMinutes int    `json:"afterMinutes"`
		}{r.Level, r.AfterMinutes}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(b)
	return nil
}
