package verifier

import "strings"

// Check is one has() query. Every non-empty field must hold.
type Check struct {
	Role       string // "admin" and "org:admin" are the same role
	Permission string // "invoices:read" and "org:invoices:read" are the same
	Feature    string // "dashboard", "o:dashboard", "org:dashboard", "u:ai", "user:ai"
	Plan       string // same scoping as Feature
	// Reverification asks for a recent enough factor verification (fva).
	Reverification Reverification
}

// Reverification is has()'s reverification config: a Preset, or a Level
// with AfterMinutes. The zero value asks nothing.
type Reverification struct {
	Preset       string // strict_mfa, strict, moderate or lax
	Level        string // first_factor, second_factor or multi_factor
	AfterMinutes int    // with Level: a factor is fresh below this age
}

// The reverification presets and levels of @clerk/shared.
const (
	LevelFirstFactor  = "first_factor"
	LevelSecondFactor = "second_factor"
	LevelMultiFactor  = "multi_factor"
)

// ReverificationPresets are Clerk's named configs.
var ReverificationPresets = map[string]Reverification{
	"strict_mfa": {Level: LevelMultiFactor, AfterMinutes: 10},
	"strict":     {Level: LevelSecondFactor, AfterMinutes: 10},
	"moderate":   {Level: LevelSecondFactor, AfterMinutes: 60},
	"lax":        {Level: LevelSecondFactor, AfterMinutes: 1440},
}

// Resolve is the level and minutes r stands for; ok is false for an
// invalid config (an unknown preset or level, minutes ≤ 0, or a preset
// with a level or minutes), which fails every check.
func (r Reverification) Resolve() (level string, afterMinutes int, ok bool) {
	if r.Preset != "" {
		p, known := ReverificationPresets[r.Preset]
		if !known || r.Level != "" || r.AfterMinutes != 0 {
			return "", 0, false
		}
		return p.Level, p.AfterMinutes, true
	}
	switch r.Level {
	case LevelFirstFactor, LevelSecondFactor, LevelMultiFactor:
		if r.AfterMinutes > 0 {
			return r.Level, r.AfterMinutes, true
		}
	}
	return "", 0, false
}

// Has answers Clerk's has(): fail closed, roles and permissions need an
// active organization, features and plans are looked up by scope,
// reverification reads fva.
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
	if q.Feature != "" && (c.featuresMalformed || !hasScoped(c.Features, q.Feature)) {
		return false
	}
	if q.Plan != "" && (c.plansMalformed || !hasScoped(c.Plans, q.Plan)) {
		return false
	}
	if q.Reverification != (Reverification{}) && !c.reverified(q.Reverification) {
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

// hasScoped looks a feature or plan up as @clerk/shared does: the query's
// scope (before its first colon) "o"/"org"/"organization" checks the org
// entries, "u"/"user" the user entries, none both; any other scope fails.
// The name is the part after the first colon, up to a second one. Token
// entries scoped "ou"/"uo" belong to both; other scopes are ignored. An
// entry without a colon fails every lookup (Clerk throws on it).
func hasScoped(entries []string, query string) bool {
	if len(entries) == 0 {
		return false // a missing claim fails
	}
	parts := strings.Split(query, ":")
	scope, name := parts[0], parts[0]
	wantOrg, wantUser := true, true
	if len(parts) > 1 {
		if parts[1] != "" {
			name = parts[1]
		}
		switch scope {
		case "o", "org", "organization":
			wantUser = false
		case "u", "user":
			wantOrg = false
		default:
			return false
		}
	}
	found := false
	for _, e := range entries {
		scope, n, ok := strings.Cut(e, ":")
		if !ok {
			return false
		}
		if n != name {
			continue
		}
		isOrg := scope == "o" || scope == "ou" || scope == "uo"
		isUser := scope == "u" || scope == "ou" || scope == "uo"
		if (wantOrg && isOrg) || (wantUser && isUser) {
			found = true
		}
	}
	return found
}

// reverified is §8.2: a factor is fresh when its age is known (not -1) and
// below the config's minutes; both factors -1, a missing or malformed fva,
// or an invalid config fail.
func (c *Claims) reverified(r Reverification) bool {
	level, after, ok := r.Resolve()
	if !ok || len(c.FactorVerificationAge) != 2 {
		return false
	}
	f1, f2 := c.FactorVerificationAge[0], c.FactorVerificationAge[1]
	if !validFactorAge(f1) || !validFactorAge(f2) || (f1 == -1 && f2 == -1) {
		return false
	}
	limit := float64(after)
	fresh1 := f1 != -1 && limit > f1
	fresh2 := f2 != -1 && limit > f2
	switch level {
	case LevelFirstFactor:
		return fresh1
	case LevelSecondFactor:
		if f2 == -1 {
			return fresh1
		}
		return fresh2
	case LevelMultiFactor:
		if f2 == -1 {
			return fresh1
		}
		if f1 == -1 {
			return false
		}
		return fresh1 && fresh2
	}
	return false
}

// validFactorAge: -1 (factor group not enabled) or a non-negative age.
func validFactorAge(x float64) bool { return x == -1 || x >= 0 }
