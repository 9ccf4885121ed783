package verifier

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// claimsOf decodes a payload as Verify does (without the signature), with
// extra claims merged into a valid v2 session payload; a nil value deletes.
func claimsOf(t *testing.T, extra map[string]any) *Claims {
	t.Helper()
	cl := claimsAt(time.Now())
	for k, v := range extra {
		if v == nil {
			delete(cl, k)
		} else {
			cl[k] = v
		}
	}
	b, err := json.Marshal(cl)
	if err != nil {
		t.Fatal(err)
	}
	return mapClaims(t, b)
}

// The example of @clerk/shared's tests (reference §8.1).
func TestHasBillingReferenceExample(t *testing.T) {
	c := claimsOf(t, map[string]any{
		"fea": "o:reservations,u:dashboard,uo:support-chat,o:impersonation",
		"o":   map[string]any{"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "2,3"},
	})
	if got := strings.Join(c.OrgPermissions, ","); got != "org:reservations:manage,org:support-chat:read,org:support-chat:manage" {
		t.Fatalf("permissions %q", got)
	}
	for _, tc := range []struct {
		q    Check
		want bool
	}{
		{Check{Feature: "reservations"}, true},
		{Check{Feature: "o:reservations"}, true},
		{Check{Feature: "org:reservations"}, true},
		{Check{Feature: "organization:reservations"}, true},
		{Check{Feature: "u:reservations"}, false},
		{Check{Feature: "user:reservations"}, false},
		{Check{Feature: "dashboard"}, true},
		{Check{Feature: "u:dashboard"}, true},
		{Check{Feature: "user:dashboard"}, true},
		{Check{Feature: "o:dashboard"}, false},
		{Check{Feature: "support-chat"}, true}, // uo: both scopes
		{Check{Feature: "u:support-chat"}, true},
		{Check{Feature: "o:support-chat"}, true},
		{Check{Feature: "o:impersonation"}, true},
		{Check{Feature: "u:impersonation"}, false},
		{Check{Feature: "billing"}, false},
		{Check{Feature: "x:reservations"}, false},    // unknown scope in the query fails
		{Check{Feature: "reservations:read"}, false}, // "reservations" read as a scope
		{Check{Feature: ":reservations"}, false},     // empty scope
		{Check{Feature: "o:reservations:x"}, true},   // Clerk reads up to the second colon
		{Check{Feature: "o:"}, false},                // Clerk looks up "o" itself
		{Check{Permission: "org:reservations:manage"}, true},
		{Check{Permission: "reservations:read"}, false},
		{Check{Permission: "org:support-chat:read"}, true},
		{Check{Permission: "support-chat:manage"}, true},
		{Check{Permission: "org:impersonation:read"}, false}, // beyond fpm: no permissions
		{Check{Permission: "org:dashboard:read"}, false},     // user feature: no mask
		{Check{Feature: "dashboard", Permission: "org:reservations:manage"}, true},
		{Check{Feature: "dashboard", Plan: "pro"}, false}, // no pla claim
		{Check{Plan: "pro"}, false},
	} {
		if got := c.Has(tc.q); got != tc.want {
			t.Errorf("Has(%+v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestHasPlansAndFeatures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
		q     Check
		want  bool
	}{
		{"user plan bare", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "pro"}, true},
		{"user plan u:", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "u:pro"}, true},
		{"user plan as org", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "o:pro"}, false},
		{"org plan bare", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "team"}, true},
		{"org plan org:", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "org:team"}, true},
		{"org plan as user", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "user:team"}, false},
		{"other plan", map[string]any{"pla": "u:pro,o:team"}, Check{Plan: "enterprise"}, false},
		{"spaces trimmed", map[string]any{"pla": " u:pro , o:team "}, Check{Plan: "o:team"}, true},
		{"ou entry", map[string]any{"pla": "ou:pro"}, Check{Plan: "u:pro"}, true},
		{"unknown token scope ignored", map[string]any{"fea": "x:a,u:b"}, Check{Feature: "a"}, false},
		{"unknown token scope, other entry", map[string]any{"fea": "x:a,u:b"}, Check{Feature: "b"}, true},
		{"entry without colon fails all", map[string]any{"fea": "u:a,bogus"}, Check{Feature: "a"}, false},
		{"empty entry fails all", map[string]any{"fea": "u:a,"}, Check{Feature: "u:a"}, false},
		{"malformed fea, plan still works", map[string]any{"fea": "bogus", "pla": "u:pro"}, Check{Plan: "pro"}, true},
		{"malformed pla, feature still works", map[string]any{"fea": "u:a", "pla": "pro"}, Check{Feature: "a"}, true},
		{"malformed pla", map[string]any{"pla": "pro"}, Check{Plan: "pro"}, false},
		{"empty claim", map[string]any{"fea": ""}, Check{Feature: "a"}, false},
		{"missing claim", nil, Check{Feature: "a"}, false},
		{"plan and feature both hold", map[string]any{"fea": "u:a", "pla": "u:pro"}, Check{Feature: "a", Plan: "pro"}, true},
		{"plan and feature, one fails", map[string]any{"fea": "u:a", "pla": "u:pro"}, Check{Feature: "b", Plan: "pro"}, false},
		{"v1 token reads fea too", map[string]any{"v": nil, "fea": "u:a", "pla": "o:team", "org_id": "org_1"}, Check{Feature: "a"}, true},
		{"v1 token plan", map[string]any{"v": nil, "pla": "o:team", "org_id": "org_1"}, Check{Plan: "org:team"}, true},
		{"no user", map[string]any{"sub": nil, "pla": "u:pro"}, Check{Plan: "pro"}, false},
	} {
		c := claimsOf(t, tc.extra)
		if got := c.Has(tc.q); got != tc.want {
			t.Errorf("%s: Has(%+v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestPlansAndFeaturesKeepTheirScopes(t *testing.T) {
	c := claimsOf(t, map[string]any{"fea": "o:a, u:b", "pla": "u:pro"})
	if !slices.Equal(c.Features, []string{"o:a", "u:b"}) || !slices.Equal(c.Plans, []string{"u:pro"}) {
		t.Fatalf("features %q plans %q", c.Features, c.Plans)
	}
}

func TestHasReverification(t *testing.T) {
	strict := Reverification{Preset: "strict"}
	mfa := Reverification{Preset: "strict_mfa"}
	moderate := Reverification{Preset: "moderate"}
	lax := Reverification{Preset: "lax"}
	first30 := Reverification{Level: LevelFirstFactor, AfterMinutes: 30}
	second5 := Reverification{Level: LevelSecondFactor, AfterMinutes: 5}
	multi15 := Reverification{Level: LevelMultiFactor, AfterMinutes: 15}
	for _, tc := range []struct {
		fva  any // nil: no fva claim
		r    Reverification
		want bool
	}{
		// Each preset at its boundary: fresh is strictly younger.
		{[]int{0, 9}, strict, true},
		{[]int{0, 10}, strict, false},
		{[]int{9, -1}, strict, true}, // no second factor: the first decides
		{[]int{10, -1}, strict, false},
		{[]int{-1, 9}, strict, true},
		{[]int{100, 9}, strict, true}, // second_factor looks at the second only
		{[]int{0, 59}, moderate, true},
		{[]int{0, 60}, moderate, false},
		{[]int{0, 1439}, lax, true},
		{[]int{0, 1440}, lax, false},
		{[]int{1439, -1}, lax, true},
		{[]int{9, 9}, mfa, true},
		{[]int{10, 9}, mfa, false},
		{[]int{9, 10}, mfa, false},
		{[]int{9, -1}, mfa, true},  // no second factor: the first decides
		{[]int{-1, 0}, mfa, false}, // no first factor fails multi_factor
		// Custom levels.
		{[]int{29, -1}, first30, true},
		{[]int{30, -1}, first30, false},
		{[]int{0, 100}, first30, true},
		{[]int{-1, 0}, first30, false},
		{[]int{100, 4}, second5, true},
		{[]int{0, 5}, second5, false},
		{[]int{4, -1}, second5, true},
		{[]int{-1, 4}, second5, true},
		{[]int{14, 14}, multi15, true},
		{[]int{15, 0}, multi15, false},
		{[]int{0, 15}, multi15, false},
		// Both factors -1 fail every level.
		{[]int{-1, -1}, first30, false},
		{[]int{-1, -1}, second5, false},
		{[]int{-1, -1}, multi15, false},
		{[]int{-1, -1}, lax, false},
		// Absent or malformed fva fails.
		{nil, lax, false},
		{[]int{1}, lax, false},
		{[]int{1, 2, 3}, lax, false},
		{[]int{}, lax, false},
		{[]any{"1", 2}, lax, false},
		{[]any{nil, 2}, lax, false},
		{[]int{-2, 0}, lax, false},
		{"0,0", lax, false},
		{map[string]any{"0": 0}, lax, false},
		{json.RawMessage("null"), lax, false},
		{[]float64{1.5, -1}, first30, true}, // a number, as Clerk reads it
		// Invalid configs fail.
		{[]int{0, 0}, Reverification{Preset: "paranoid"}, false},
		{[]int{0, 0}, Reverification{Level: "third_factor", AfterMinutes: 5}, false},
		{[]int{0, 0}, Reverification{Level: LevelFirstFactor}, false},
		{[]int{0, 0}, Reverification{Level: LevelFirstFactor, AfterMinutes: -5}, false},
		{[]int{0, 0}, Reverification{Preset: "strict", AfterMinutes: 10}, false},
		{[]int{0, 0}, Reverification{Preset: "strict", Level: LevelFirstFactor}, false},
	} {
		extra := map[string]any{"fva": tc.fva}
		if tc.fva == nil {
			extra = map[string]any{"fva": nil}
		}
		c := claimsOf(t, extra)
		if got := c.Has(Check{Reverification: tc.r}); got != tc.want {
			t.Errorf("fva %v, %+v: Has = %v, want %v", tc.fva, tc.r, got, tc.want)
		}
	}
}

// A malformed fva fails reverification only: the token stays valid.
func TestMalformedFactorAgeKeepsTheToken(t *testing.T) {
	v, k := staticVerifier(t, nil)
	cl := claimsAt(time.Now())
	cl["fva"] = "soon"
	cl["pla"] = "u:pro"
	c, err := v.Verify(t.Context(), mint(t, k, cl))
	if err != nil {
		t.Fatal(err)
	}
	if c.FactorVerificationAge != nil || c.Has(Check{Reverification: Reverification{Preset: "lax"}}) {
		t.Fatalf("fva %v passes reverification", c.FactorVerificationAge)
	}
	if !c.Has(Check{Plan: "pro"}) {
		t.Fatal("the rest of the token no longer counts")
	}
}

func TestReverificationResolve(t *testing.T) {
	for r, want := range map[Reverification]string{
		{Preset: "strict_mfa"}: "multi_factor 10", {Preset: "strict"}: "second_factor 10",
		{Preset: "moderate"}: "second_factor 60", {Preset: "lax"}: "second_factor 1440",
		{Level: "first_factor", AfterMinutes: 1}: "first_factor 1", {Level: "bogus", AfterMinutes: 1}: "invalid",
		{Preset: "lax", AfterMinutes: 1}: "invalid", {}: "invalid",
	} {
		level, after, ok := r.Resolve()
		got := "invalid"
		if ok {
			got = level + " " + strconv.Itoa(after)
		}
		if got != want {
			t.Errorf("%+v: %s, want %s", r, got, want)
		}
	}
}
