package caddyclerk

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// identity is what the placeholders say about a request.
type identity struct {
	authenticated                                      bool
	reason                                             string
	userID, sessionID, orgID, orgRole, orgSlug, orgPer string
	actorID                                            string
	// for every credential; the rest apply to machine tokens
	tokenType, subject                               string
	tokenID, machineID, clientID, scopes, apiKeyName string
}

// setAnonymous makes every placeholder known, empty, before anything else:
// in header_up an unknown placeholder is forwarded literally while a known
// empty one clears the header, so a client can never smuggle in an
// identity. One provider answers them all from the holder, which costs a
// request nothing until a placeholder is used (Set would box 14 values).
func setAnonymous(repl *caddy.Replacer) *claimsHolder {
	// A second clerk handler on the same request (a site-wide one and one
	// for /admin) takes over the first one's holder: providers are asked
	// oldest first, so a second holder would never be heard.
	if v, ok := repl.Get(holderKey); ok {
		if h, ok := v.(*claimsHolder); ok {
			*h = claimsHolder{}
			return h
		}
	}
	h := &claimsHolder{}
	repl.Map(h.lookup)
	return h
}

// holderKey finds this request's holder; a NUL cannot appear in a
// placeholder written in a config.
const holderKey = "\x00clerk.holder"

// identityOf is what the placeholders say about a verified session, with
// control characters removed (values end up in headers and logs).
func identityOf(c *verifier.Claims) identity {
	id := identity{
		authenticated: true,
		userID:        clean(c.Subject),
		sessionID:     clean(c.SessionID),
		orgID:         clean(c.OrgID),
		orgRole:       clean(c.OrgRole),
		orgSlug:       clean(c.OrgSlug),
		orgPer:        clean(strings.Join(c.OrgPermissions, ",")),
		tokenType:     string(verifier.TokenSession),
		subject:       clean(c.Subject),
	}
	if c.Actor != nil {
		id.actorID = clean(c.Actor.Subject)
	}
	return id
}

const claimsPrefix = "clerk.claims."

// claimsHolder serves the identity placeholders and {clerk.claims.<path>}:
// strings as they are, numbers and booleans formatted, arrays
// comma-joined, objects as JSON. It is registered before verification
// (the replacer asks providers oldest first) and answers empty, but known,
// until the identity is set. It is {clerk.reason}'s only channel: nothing
// calls repl.Set for clerk.* names.
type claimsHolder struct {
	id      identity
	claims  *verifier.Claims
	machine *verifier.Machine
}

// setIdentity is what a verified credential says, its claims included.
func (h *claimsHolder) setIdentity(st authn.State) {
	if st.Machine != nil {
		h.id, h.machine = identityOfMachine(st.Machine), st.Machine
		return
	}
	h.id, h.claims = identityOf(st.Claims), st.Claims
}

// identityOfMachine is what the placeholders say about a machine token:
// {http.auth.user.id} is its subject, so access logs show who called;
// user and organization only where Clerk's auth object has them.
func identityOfMachine(m *verifier.Machine) identity {
	return identity{
		authenticated: true,
		tokenType:     string(m.Type),
		subject:       clean(m.Subject),
		userID:        clean(m.UserID()),
		orgID:         clean(m.OrgID()),
		tokenID:       clean(m.ID),
		machineID:     clean(m.MachineID()),
		clientID:      clean(m.ClientID),
		scopes:        clean(strings.Join(m.Scopes, ",")),
		apiKeyName:    clean(m.Name),
	}
}

func (h *claimsHolder) lookup(key string) (any, bool) {
	switch key {
	case holderKey:
		return h, true
	case "http.auth.user.id":
		if h.id.subject != "" {
			return h.id.subject, true
		}
		return h.id.userID, true
	case "clerk.user_id":
		return h.id.userID, true
	case "clerk.token_type":
		return h.id.tokenType, true
	case "clerk.subject":
		return h.id.subject, true
	case "clerk.token_id":
		return h.id.tokenID, true
	case "clerk.machine_id":
		return h.id.machineID, true
	case "clerk.client_id":
		return h.id.clientID, true
	case "clerk.scopes":
		return h.id.scopes, true
	case "clerk.api_key_name":
		return h.id.apiKeyName, true
	case "http.auth.user.session_id", "clerk.session_id":
		return h.id.sessionID, true
	case "http.auth.user.org_id", "clerk.org_id":
		return h.id.orgID, true
	case "http.auth.user.org_role", "clerk.org_role":
		return h.id.orgRole, true
	case "http.auth.user.org_slug", "clerk.org_slug":
		return h.id.orgSlug, true
	case "clerk.org_permissions":
		return h.id.orgPer, true
	case "clerk.actor_id":
		return h.id.actorID, true
	case "clerk.reason":
		return h.id.reason, true
	case "clerk.authenticated":
		if h.id.authenticated {
			return "true", true
		}
		return "false", true
	}
	path, ok := strings.CutPrefix(key, claimsPrefix)
	if !ok {
		return nil, false
	}
	var v any
	var found bool
	switch {
	case h.claims != nil:
		v, found = h.claims.Custom(path)
	case h.machine != nil:
		v, found = h.machine.Custom(path)
	}
	if !found {
		return "", true
	}
	return clean(formatClaim(v)), true
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
