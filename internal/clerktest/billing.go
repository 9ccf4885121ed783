package clerktest

import (
	"slices"
	"strings"
	"time"
)

// Billing is what Clerk Billing puts in a user's session tokens.
type Billing struct {
	// Plans are pla entries with their scope: "u:pro" is the user's plan,
	// "o:team" the active organization's (only in tokens with one).
	Plans []string
	// Features are fea entries with their scope, after the organization's
	// permission features: "u:export", "o:sso" (only with an active
	// organization), "uo:support" (both).
	Features []string
}

// factorTimes are when a user last verified each factor group; zero: the
// group is not enabled (-1 in fva).
type factorTimes struct{ first, second time.Time }

// SetBilling gives the user plans and features in the v2 session tokens
// minted from now on (the handshake's, and Mint's for that user); the zero
// Billing removes them.
func (s *Server) SetBilling(userID string, b Billing) {
	b.Plans, b.Features = slices.Clone(b.Plans), slices.Clone(b.Features)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.billing == nil {
		s.billing = map[string]Billing{}
	}
	s.billing[userID] = b
}

// SetFactorAge records that the user verified the first factor first
// minutes ago and the second factor second minutes ago (on the emulator
// clock); -1 means the factor group is not enabled. Tokens minted later
// carry fva with the ages at their iat, in whole minutes, so the ages grow
// with the clock as Clerk's do. Without it, tokens carry fva [0,-1]: just
// signed in with a first factor, no second factor enabled.
func (s *Server) SetFactorAge(userID string, first, second int) {
	now := s.now()
	at := func(age int) time.Time {
		if age < 0 {
			return time.Time{}
		}
		return now.Add(-time.Duration(age) * time.Minute)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.factors == nil {
		s.factors = map[string]factorTimes{}
	}
	s.factors[userID] = factorTimes{first: at(first), second: at(second)}
}

// factorAges is the fva claim for sub at iat.
func (s *Server) factorAges(sub string, iat time.Time) []int {
	s.mu.Lock()
	ft, ok := s.factors[sub]
	s.mu.Unlock()
	if !ok {
		return []int{0, -1}
	}
	age := func(t time.Time) int {
		if t.IsZero() {
			return -1
		}
		return max(int(iat.Sub(t)/time.Minute), 0)
	}
	return []int{age(ft.first), age(ft.second)}
}

// billingClaims adds the user's plans and features to fea (after what is
// already there) and pla; organization entries only with an active
// organization.
func (s *Server) billingClaims(sub string, withOrg bool, fea []string, pla string) ([]string, string) {
	s.mu.Lock()
	b := s.billing[sub]
	s.mu.Unlock()
	applies := func(entry string) bool {
		scope, _, _ := strings.Cut(entry, ":")
		return withOrg || scope == "u"
	}
	for _, f := range b.Features {
		if applies(f) && !slices.Contains(fea, f) {
			fea = append(fea, f)
		}
	}
	plans := []string{}
	if pla != "" {
		plans = append(plans, pla)
	}
	for _, p := range b.Plans {
		if applies(p) {
			plans = append(plans, p)
		}
	}
	return fea, strings.Join(plans, ",")
}
