// Package authn decides what state a request is in for Clerk, without
// Caddy: which credential it carries, whether a browser needs Clerk's
// handshake, whether the handshake it brings back resolves. It is
// @clerk/backend's authenticateRequest → RequestState. Every side effect is
// data in the State (Location, Set-Cookie, Cache-Control); the caller
// writes the response.
package authn

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/machine"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// Status is what a request is, for Clerk.
type Status int

const (
	// SignedOut: no valid session. Location is set for page loads when a
	// sign-in page is configured.
	SignedOut Status = iota
	// SignedIn: Claims hold a verified session.
	SignedIn
	// Forbidden: a verified session that may not do this (Reason says why).
	Forbidden
	// Handshake: send the browser to Clerk's Frontend API (Location).
	Handshake
	// Reload: a handshake came back; send the browser to the same page
	// without Clerk's query parameters (Location).
	Reload
	// Unavailable: the credential cannot be checked now (no key set has
	// ever loaded, Clerk unreachable for an unseen machine token, the
	// verification bound reached); it may be fine, so 503, not 401.
	Unavailable
	// Skipped: not subject to authentication (excluded path, preflight).
	Skipped
)

var statusNames = [...]string{"signed-out", "signed-in", "forbidden", "handshake", "reload", "unavailable", "skipped"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Results of a handshake a request comes back from, for metrics.
const (
	HandshakeResolved = "resolved"
	HandshakeFailed   = "failed"
)

// State is the decision for one request.
type State struct {
	Status Status
	Reason Reason
	// Err is the verification error behind Reason, if any.
	Err    error
	Claims *verifier.Claims
	// Machine holds a verified machine credential (then Claims is nil).
	Machine *verifier.Machine
	// TokenType is the credential's type when it is known.
	TokenType verifier.TokenType
	// MachineResult is what became of a machine token's verification, for
	// metrics ("" for sessions).
	MachineResult machine.Result
	// RetryAfter is the Retry-After of Unavailable, in seconds.
	RetryAfter int
	// KeyRefused: Clerk refused our secret key (an operator's problem).
	KeyRefused bool
	// FromCookie: the session came from a cookie, not the Authorization
	// header (the CSRF check applies).
	FromCookie bool
	// Reverification is the config a Forbidden session failed for want of
	// a recent factor verification: the answer is Clerk's JSON hint.
	Reverification *verifier.Reverification

	// Location is the redirect target of Handshake, Reload and a signed-out
	// page load.
	Location string
	// SetCookies are Set-Cookie values to send whatever the status.
	SetCookies []string
	// NoStore: the response must carry Cache-Control: no-store (redirects
	// that a cache would replay into a loop).
	NoStore bool

	// HandshakeResult is what became of a handshake this request came back
	// from (HandshakeResolved, HandshakeFailed), "" if none. A request can
	// come back from a failed one and start the next.
	HandshakeResult string
	// HandshakeErr is why a returning handshake did not resolve.
	HandshakeErr error
	// LoopStopped: the loop guard ended a handshake loop; the request is
	// treated as signed out (the keys probably do not match the instance).
	LoopStopped bool
	// OrgLoopStopped: the loop guard ended organization activation
	// handshakes (the user is probably not a member); the request is
	// refused.
	OrgLoopStopped bool
}

// Verifier verifies session tokens and legacy handshake tokens;
// *verifier.Verifier is one.
type Verifier interface {
	Verify(ctx context.Context, token string) (*verifier.Claims, error)
	// VerifyAt is Verify at the instant at (Request.At), writing into dst
	// when not nil (authn passes nil: a cache hit then allocates nothing).
	VerifyAt(ctx context.Context, token string, at time.Time, dst *verifier.Claims) (*verifier.Claims, error)
	// Cached is a token's verified session if a Verify still holds at at.
	Cached(ctx context.Context, token string, at time.Time) (verifier.Hit, bool)
	VerifyHandshake(ctx context.Context, token string) ([]string, error)
}

// Redeemer trades a handshake nonce for Clerk's Set-Cookie directives;
// *bapi.Client is one.
type Redeemer interface {
	HandshakePayload(ctx context.Context, nonce string) ([]string, error)
}

// Config is how a site authenticates.
type Config struct {
	Verifier Verifier
	// Accept is which credentials the route takes (zero: sessions).
	Accept Accept
	// MachineJWT verifies JWT-format machine tokens; needed when Accept
	// takes machines.
	MachineJWT MachineJWTVerifier
	// Opaque verifies opaque machine tokens; nil without a secret key.
	Opaque OpaqueVerifier
	// Instance is the Clerk instance of the publishable key; nil without one
	// (no suffixed cookies, no handshake).
	Instance *verifier.Instance
	// FrontendAPI is the origin handshakes go to; "" turns the handshake off.
	FrontendAPI string
	// Redeemer redeems nonces; nil without a secret key, when Clerk is asked
	// for its signed handshake token instead.
	Redeemer Redeemer
	// SessionCookie reads __session when there is no Authorization header.
	SessionCookie bool
	// SignInURL is where signed-out page loads go; "" answers them 401.
	// Page loads with a pending session go to its /tasks page.
	SignInURL string
	// AllowPending treats a pending session (sts "pending", a task left to
	// finish) as signed in; otherwise it is signed out with reason
	// session-pending. The Verifier should let pending tokens through
	// (verifier.Config.AllowPending) so this decides; one that refuses them
	// gets the same answer, without the claims.
	AllowPending bool
	// CSRF guards cookie-authenticated unsafe requests.
	CSRF bool
	// TrustedOrigins may send unsafe cookie-authenticated requests besides
	// the request's own origin (authorized parties, csrf_trusted_origins).
	TrustedOrigins []string
	// Satellite: the site is a satellite domain of the instance; page loads
	// sync with the primary (§9.1) and SignInURL is the primary's.
	Satellite bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OrgSync tells which tenant a URL names (organization_sync); nil for
	// none.
	OrgSync *OrgSync
	// RequireOrg: the active organization must be one of these (org_… ids,
	// else slugs); the first is activated on page loads.
	RequireOrg []string
}

// Authenticator decides request states. It is safe for concurrent use.
type Authenticator struct {
	cfg    Config
	suffix string // "_<cookie suffix>", "" without an instance
	now    func() time.Time
}

// New returns an Authenticator for cfg.
func New(cfg Config) *Authenticator {
	a := &Authenticator{cfg: cfg, now: cfg.Now}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.Instance != nil {
		a.suffix = "_" + cfg.Instance.CookieSuffix
	}
	if cfg.Instance == nil {
		a.cfg.FrontendAPI = ""
	}
	return a
}

// Request is one request to decide on.
type Request struct {
	HTTP *http.Request
	// TrustedProxy: it came from a trusted proxy, so X-Forwarded-Proto and
	// X-Forwarded-Host say what the browser asked for.
	TrustedProxy bool
	// Scheme, when set, is the scheme of the request HTTP describes, and
	// HTTP.Host its host: CurrentURL reads no X-Forwarded-* header then.
	// Forwarded sets it.
	Scheme string
	// Forwarded: HTTP is the request a front proxy asks about
	// (forwarded_request), and the answer goes back to that proxy, which
	// passes a 2xx answer's headers (Set-Cookie) on to no browser.
	Forwarded bool
	// At, when set, is when the request arrived (Caddy's start_time), the
	// instant its tokens are judged at: the clock is not read again.
	At time.Time
}

// at is the instant req's tokens are judged at.
func (a *Authenticator) at(req Request) time.Time {
	if req.At.IsZero() {
		return a.now()
	}
	return req.At
}

// Authenticate puts in st what state req is in, then whether its
// credential acts in the tenant its URL names (organization_sync,
// require_org). st is overwritten; a pointer, not a result, so that the
// caller's frame holds one State, not two.
//
// An Authorization token wins; cookies are not consulted then. A session
// JWT is verified first where sessions are accepted: a cached session then
// costs no type detection, and a machine JWT always fails session
// verification, after which its type decides (§1.2).
//
// The session is verified here, not in a helper: each frame between
// Caddy's and the token cache's is stack that every request needs, and
// past the goroutine's stack size the stack is copied, each time GC has
// shrunk it.
func (a *Authenticator) Authenticate(ctx context.Context, req Request, st *State) {
	if token := HeaderToken(req.HTTP); token == "" {
		*st = a.fromCookies(ctx, req)
	} else if !a.cfg.Accept.Has(verifier.TokenSession) || opaquePrefix(token) {
		*st = a.notSession(ctx, req, token, nil)
	} else if claims, err := a.cfg.Verifier.VerifyAt(ctx, token, a.at(req), nil); err == nil {
		*st = a.signedIn(req, claims, nil, false)
	} else {
		*st = a.notSession(ctx, req, token, err)
	}
	a.organizations(req, st)
}

// fromCookies decides on a request without an Authorization token. Its own
// function: the cookies it reads would otherwise be in every request's
// stack frame, Bearer ones too.
func (a *Authenticator) fromCookies(ctx context.Context, req Request) State {
	if !a.cfg.Accept.Has(verifier.TokenSession) {
		// Machine tokens come only from Authorization, never from cookies.
		return State{Status: SignedOut, Reason: ReasonMachineTokenMissing}
	}
	if !a.cfg.SessionCookie {
		return a.signedOut(req, ReasonSessionTokenMissing, nil, nil)
	}
	var c cookies
	a.readCookies(req.HTTP, a.at(req), &c)
	if a.cfg.FrontendAPI != "" {
		return a.cookieSession(ctx, req, &c)
	}
	if c.session == "" {
		reason := ReasonSessionTokenMissing
		if c.clientUAT == 0 {
			reason = ReasonSessionTokenAndUATMissing
		}
		return a.signedOut(req, reason, nil, &c)
	}
	return a.verify(ctx, req, c.session, true, &c)
}

// verify decides on a session token without the handshake's rules: signed
// in, keys unavailable or signed out with the token's own reason.
func (a *Authenticator) verify(ctx context.Context, req Request, token string, fromCookie bool, c *cookies) State {
	claims, err := a.cfg.Verifier.VerifyAt(ctx, token, a.at(req), nil)
	if err != nil {
		if verifier.IsKeysUnavailable(err) {
			return unavailableKeys(err)
		}
		if verifier.KindOf(err) == verifier.KindPending {
			return a.pending(req, c, nil, fromCookie)
		}
		return a.signedOut(req, verifier.ReasonOf(err), err, c)
	}
	return a.signedIn(req, claims, c, fromCookie)
}

// signedIn applies the pending rule and the CSRF check to a verified
// session. c is nil for a header token.
func (a *Authenticator) signedIn(req Request, claims *verifier.Claims, c *cookies, fromCookie bool) State {
	if claims.Status == statusPending && !a.cfg.AllowPending {
		return a.pending(req, c, claims, fromCookie)
	}
	st := State{Status: SignedIn, Claims: claims, FromCookie: fromCookie}
	if fromCookie && a.cfg.CSRF && !SafeMethod(req.HTTP.Method) && !a.SameOrigin(req) {
		st.Status, st.Reason = Forbidden, ReasonCSRF
	}
	return st
}

// signedOut is a request without a valid session; a page load is sent to
// sign in when a sign-in page is configured.
func (a *Authenticator) signedOut(req Request, reason Reason, err error, c *cookies) State {
	st := State{Status: SignedOut, Reason: reason, Err: err}
	if a.cfg.SignInURL != "" && a.cfg.Accept.Has(verifier.TokenSession) && IsPageLoad(req.HTTP) {
		st.Location = a.signInURL(req, c)
		st.NoStore = true
	}
	return st
}

// statusPending is the sts of a session whose user has a task left
// (choose-organization, reset-password, setup-mfa).
const statusPending = "pending"

// errPending is why a pending session is not signed in; shared, as it
// carries nothing of the request.
var errPending error = &verifier.Error{Kind: verifier.KindPending, Reason: verifier.ReasonSessionPending,
	Message: "the session is pending: its user has a task to finish (allow_pending lets it in)"}

// pending is a session whose user has a task to finish: not signed in for
// authorization (Clerk's treatPendingAsSignedOut). A page load that came
// with the session cookie goes to the Account Portal's tasks page, which
// finishes the task and sends the browser back (createRedirect's
// redirectToTasks); a header token, or anything else, gets 401. It is
// never a handshake: the token is valid, a fresh one would be pending too.
//
// One exception: a browser that comes back from the tasks page with the
// very token it was sent there with (a task finished within the second of
// __client_uat, which the iat check cannot tell) goes through the
// handshake for a fresh token, which the loop guard bounds.
func (a *Authenticator) pending(req Request, c *cookies, claims *verifier.Claims, fromCookie bool) State {
	st := State{Status: SignedOut, Reason: ReasonSessionPending, Err: errPending, FromCookie: fromCookie}
	if !fromCookie || a.cfg.SignInURL == "" || !IsPageLoad(req.HTTP) {
		return st
	}
	mark := tasksMark(claims)
	if a.cfg.FrontendAPI != "" && mark != "" && c.tasksSent == mark {
		return a.handshake(req, c, ReasonSessionPending, nil)
	}
	st.Location = a.redirectTo(req, c, TasksURL(a.cfg.SignInURL))
	st.NoStore = true
	if mark != "" {
		st.SetCookies = []string{cookieTasksSent + "=" + mark + "; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"}
	}
	return st
}

// tasksMark names a pending token for cookieTasksSent: its jti (random,
// no credential), "" when unknown.
func tasksMark(claims *verifier.Claims) string {
	if claims == nil || !validNonce(claims.ID) {
		return ""
	}
	return claims.ID
}

// TasksURL is the Account Portal page that finishes a pending session's
// tasks: "/tasks" appended to the sign-in page's path, as @clerk/backend's
// createRedirect appends it to signInUrl (which would also append it to a
// query; we keep the query after the path).
func TasksURL(signIn string) string {
	base, rest := signIn, ""
	if i := strings.IndexAny(signIn, "?#"); i >= 0 {
		base, rest = signIn[:i], signIn[i:]
	}
	return strings.TrimRight(base, "/") + "/tasks" + rest
}

func (a *Authenticator) signInURL(req Request, c *cookies) string {
	return a.redirectTo(req, c, a.cfg.SignInURL)
}

// redirectTo is an Account Portal page with redirect_url back to this
// page.
func (a *Authenticator) redirectTo(req Request, c *cookies, page string) string {
	back := PageURL(req)
	if a.cfg.Satellite {
		back = satelliteReturn(back) // sync on the way back from the primary
	}
	target := page + sep(page) + "redirect_url=" + queryEscape(back)
	if a.development() && c != nil && c.devBrowser != "" {
		// A development Account Portal is another site: it learns the
		// browser from the dev-browser token, as @clerk/backend sends it.
		target += "&" + queryDevBrowser + "=" + queryEscape(c.devBrowser)
	}
	return target
}

func (a *Authenticator) development() bool {
	return a.cfg.Instance != nil && !a.cfg.Instance.Production
}
