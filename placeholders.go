package caddyclerk

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// setAnonymous makes every placeholder known, empty, before anything else:
// in header_up an unknown placeholder is forwarded literally while a known
// empty one clears the header, so a client can never smuggle in an
// identity. One provider answers them all from the holder, which costs a
// request nothing until a placeholder is used: values are worked out when
// asked for, not per request. vars is the request's (requestVars).
//
// Not inlined: its locals would be in serve's frame, which is on the way
// to the token cache.
//
//go:noinline
func setAnonymous(vars map[string]any, repl *caddy.Replacer) *claimsHolder {
	// A second clerk handler on the same request (a site-wide one and one
	// for /admin) takes over the first one's holder: providers are asked
	// oldest first, so a second holder would never be heard. The request's
	// vars find it without asking every replacer provider for a name.
	if h, ok := vars[holderVar].(*claimsHolder); ok {
		pw := h.private // an outer clerk handler's writer, in use downstream
		*h = claimsHolder{}
		h.private = pw
		return h
	}
	h := &claimsHolder{}
	repl.Map(h.lookup)
	if vars != nil {
		vars[holderVar] = h
	}
	return h
}

// requestVars is the request's caddyhttp vars (nil outside Caddy), looked
// up once per request: each lookup walks the request's whole context chain.
func requestVars(r *http.Request) map[string]any {
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	return vars
}

// holderVar names the holder in the request's vars; a NUL cannot appear
// in a name written in a config.
const holderVar = "\x00clerk.holder"

const claimsPrefix = "clerk.claims."

// claimsHolder serves the identity placeholders and {clerk.claims.<path>}:
// strings as they are, numbers and booleans formatted, arrays
// comma-joined, objects as JSON, control characters removed (values end up
// in headers and logs). It is registered before verification (the replacer
// asks providers oldest first) and answers empty, but known, until a
// credential is set. It is {clerk.reason}'s only channel: nothing calls
// repl.Set for clerk.* names.
type claimsHolder struct {
	reason  string
	claims  *verifier.Claims
	machine *verifier.Machine
	// hideClaims: a refused request shows who it was, not its claims.
	hideClaims bool
	// private is the response writer of a request that passed on a
	// credential (private.go): here, it costs no allocation of its own.
	private privateWriter
}

// setIdentity is what a verified credential says.
func (h *claimsHolder) setIdentity(st *authn.State) {
	h.claims, h.machine = st.Claims, st.Machine
}

func (h *claimsHolder) lookup(key string) (any, bool) {
	c, m := h.claims, h.machine
	switch key {
	case "clerk.reason":
		return h.reason, true
	case "clerk.authenticated":
		return strconv.FormatBool(c != nil || m != nil), true
	case "http.auth.user.id", "clerk.subject":
		switch {
		case c != nil:
			return clean(c.Subject), true
		case m != nil:
			return clean(m.Subject), true
		}
		return "", true
	case "clerk.user_id":
		switch {
		case c != nil:
			return clean(c.Subject), true
		case m != nil:
			return clean(m.UserID()), true
		}
		return "", true
	case "http.auth.user.org_id", "clerk.org_id":
		switch {
		case c != nil:
			return clean(c.OrgID), true
		case m != nil:
			return clean(m.OrgID()), true
		}
		return "", true
	case "clerk.token_type":
		switch {
		case c != nil:
			return string(verifier.TokenSession), true
		case m != nil:
			return string(m.Type), true
		}
		return "", true
	}
	if c != nil {
		switch key {
		case "http.auth.user.session_id", "clerk.session_id":
			return clean(c.SessionID), true
		case "http.auth.user.org_role", "clerk.org_role":
			return clean(c.OrgRole), true
		case "http.auth.user.org_slug", "clerk.org_slug":
			return clean(c.OrgSlug), true
		case "clerk.org_permissions":
			return clean(strings.Join(c.OrgPermissions, ",")), true
		case "clerk.plans": // pla entries with their scopes: "u:pro,o:team"
			return clean(strings.Join(c.Plans, ",")), true
		case "clerk.features":
			return clean(strings.Join(c.Features, ",")), true
		case "clerk.actor_id":
			if c.Actor != nil {
				return clean(c.Actor.Subject), true
			}
			return "", true
		}
	}
	if m != nil {
		switch key {
		case "clerk.token_id":
			return clean(m.ID), true
		case "clerk.machine_id":
			return clean(m.MachineID()), true
		case "clerk.client_id":
			return clean(m.ClientID), true
		case "clerk.scopes":
			return clean(strings.Join(m.Scopes, ",")), true
		case "clerk.api_key_name":
			return clean(m.Name), true
		}
	}
	if knownEmpty[key] {
		return "", true
	}
	path, ok := strings.CutPrefix(key, claimsPrefix)
	if !ok {
		return nil, false
	}
	var v any
	var found bool
	switch {
	case h.hideClaims:
	case c != nil:
		v, found = c.Custom(path)
	case m != nil:
		v, found = m.Custom(path)
	}
	if !found {
		return "", true
	}
	return clean(formatClaim(v)), true
}

// knownEmpty are the placeholders that do not apply to the request's
// credential (or to an anonymous one): known, and empty.
var knownEmpty = map[string]bool{
	"http.auth.user.session_id": true, "clerk.session_id": true, "http.auth.user.org_role": true,
	"clerk.org_role": true, "http.auth.user.org_slug": true, "clerk.org_slug": true, "clerk.org_permissions": true,
	"clerk.actor_id": true, "clerk.token_id": true, "clerk.machine_id": true, "clerk.client_id": true,
	"clerk.scopes": true, "clerk.api_key_name": true,
	"clerk.plans": true, "clerk.features": true,
}

func formatClaim(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if _, isObj := e.(map[string]any); isObj {
				b, _ := json.Marshal(e)
				parts[i] = string(b)
			} else {
				parts[i] = formatClaim(e)
			}
		}
		return strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// claimEquals compares a claim value with a configured string.
func claimEquals(v any, want string) bool {
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if claimEquals(e, want) {
				return true
			}
		}
		return false
	}
	if _, isObj := v.(map[string]any); isObj {
		return false
	}
	return formatClaim(v) == want
}

// clean removes control characters: claim values end up in request headers
// and logs, where CR/LF would split a header.
func clean(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return -1
				}
				return r
			}, s)
		}
	}
	return s
}
