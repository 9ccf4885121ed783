package caddyclerk

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-clerk/caddy-clerk/verifier"
)

// identity is what the placeholders say about a request.
type identity struct {
	authenticated                                      bool
	reason                                             string
	userID, sessionID, orgID, orgRole, orgSlug, orgPer string
	actorID                                            string
}

// setAnonymous sets every placeholder, empty, before anything else: in
// header_up an unknown placeholder is forwarded literally while a known
// empty one clears the header, so a client can never smuggle in an identity.
func setAnonymous(repl *caddy.Replacer) *claimsHolder {
	identity{}.apply(repl)
	h := &claimsHolder{}
	repl.Map(h.lookup)
	return h
}

func identityOf(c *verifier.Claims) identity {
	id := identity{
		authenticated: true,
		userID:        c.Subject,
		sessionID:     c.SessionID,
		orgID:         c.OrgID,
		orgRole:       c.OrgRole,
		orgSlug:       c.OrgSlug,
		orgPer:        strings.Join(c.OrgPermissions, ","),
	}
	if c.Actor != nil {
		id.actorID = c.Actor.Subject
	}
	return id
}

func (id identity) apply(repl *caddy.Replacer) {
	repl.Set("http.auth.user.id", clean(id.userID))
	repl.Set("http.auth.user.session_id", clean(id.sessionID))
	repl.Set("http.auth.user.org_id", clean(id.orgID))
	repl.Set("http.auth.user.org_role", clean(id.orgRole))
	repl.Set("http.auth.user.org_slug", clean(id.orgSlug))
	repl.Set("clerk.authenticated", strconv.FormatBool(id.authenticated))
	repl.Set("clerk.reason", id.reason)
	repl.Set("clerk.user_id", clean(id.userID))
	repl.Set("clerk.session_id", clean(id.sessionID))
	repl.Set("clerk.org_id", clean(id.orgID))
	repl.Set("clerk.org_role", clean(id.orgRole))
	repl.Set("clerk.org_slug", clean(id.orgSlug))
	repl.Set("clerk.org_permissions", clean(id.orgPer))
	repl.Set("clerk.actor_id", clean(id.actorID))
}

const claimsPrefix = "clerk.claims."

// claimsHolder serves {clerk.claims.<dotted.path>}: strings as they are,
// numbers and booleans formatted, arrays comma-joined, objects as JSON.
// It is registered before verification (the replacer asks providers oldest
// first) and answers empty, but known, until claims are set.
type claimsHolder struct{ claims *verifier.Claims }

func (h *claimsHolder) lookup(key string) (any, bool) {
	path, ok := strings.CutPrefix(key, claimsPrefix)
	if !ok {
		return nil, false
	}
	if h.claims == nil {
		return "", true
	}
	v, found := h.claims.Custom(path)
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
