package verifier

import "strings"

// Check is one has() query. Every non-empty field must hold.
type Check struct {
	Role       string // "admin" and "org:admin" are the same role
	Permission string // "invoices:read" and "org:invoices:read" are the same
	Feature    string // "dashboard", "o:dashboard", "org:dashboard", "u:ai", "user:ai"
	Plan       string // same scoping as Feature
}

// Has answers Clerk's has(): fail closed, roles and permissions need an
// active organization, features and plans are looked up by scope.
func (c *Claims) Has(q Check) bool {
	if c == nil || c.Shared == nil || c.Subject == "" {
		return false
	}
	if q == (Check{}) {
		return false
	}
	if q.Role != "" {
		if c.OrgID == "" || c.OrgRole == "" || normalizeOrg(c.OrgRole) != normalizeOrg(q.Role) {
			return false
		}
	}
	if q.Permission != "" {
		if c.OrgID == "" || !containsOrg(c.OrgPermissions, q.Permission) {
			return false
		}
	}
	if q.Feature != "" && !hasScoped(c.Features, q.Feature) {
		return false
	}
	if q.Plan != "" && !hasScoped(c.Plans, q.Plan) {
		return false
	}
	return true
}

// normalizeOrg strips every leading org: so admin, org:admin and
// org:org:admin compare equal, as @clerk/backend's prefixing makes them.
func normalizeOrg(s string) string {
	for strings.HasPrefix(s, "org:") {
		s = s[len("org:"):]
	}
	return s
}

func containsOrg(list []string, want string) bool {
	want = normalizeOrg(want)
	if want == "" {
		return false
	}
	for _, p := range list {
		if normalizeOrg(p) == want {
			return true
		}
	}
	return false
}

// hasScoped looks a feature or plan up: "o:x"/"org:x"/"organization:x" in
// the org list, "u:x"/"user:x" in the user list, bare "x" in either. Token
// entries scoped "ou:"/"uo:" belong to both.
func hasScoped(entries []string, query string) bool {
	wantOrg, wantUser := true, true
	name := query
	if scope, rest, ok := strings.Cut(query, ":"); ok {
		switch scope {
		case "o", "org", "organization":
			wantUser = false
			name = rest
		case "u", "user":
			wantOrg = false
			name = rest
		}
	}
	if name == "" {
		return false
	}
	for _, e := range entries {
		scope, n, ok := strings.Cut(e, ":")
		if !ok || n != name {
			continue
		}
		isOrg := scope == "o" || scope == "ou" || scope == "uo"
		isUser := scope == "u" || scope == "ou" || scope == "uo"
		if (wantOrg && isOrg) || (wantUser && isUser) {
			return true
		}
	}
	return false
}
