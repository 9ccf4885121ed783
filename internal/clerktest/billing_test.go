package clerktest

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestBillingInTokens(t *testing.T) {
	s := newServer(t, WithClock(func() time.Time { return fixedNow }))
	admin := s.AdminUser() // org acme with org:invoices:read and manage
	s.SetBilling(admin.ID, Billing{Plans: []string{"u:pro", "o:team"}, Features: []string{"u:export", "o:sso", "uo:support"}})

	_, c := segments(t, s.MustMint(TokenOptions{User: &admin}))
	if c["fea"] != "o:invoices,u:export,o:sso,uo:support" || c["pla"] != "u:pro,o:team" {
		t.Fatalf("fea %v pla %v", c["fea"], c["pla"])
	}
	// The permissions still decode: the billing features come after the
	// masked ones.
	o := c["o"].(map[string]any)
	perms, err := DecodeOrgPermissions(c["fea"].(string), o["per"].(string), o["fpm"].(string))
	if err != nil || len(perms) != 2 {
		t.Fatalf("permissions %v, %v", perms, err)
	}

	// Without an active organization, only the user's entries.
	_, c = segments(t, s.MustMint(TokenOptions{User: &admin, NoOrg: true}))
	if c["fea"] != "u:export" || c["pla"] != "u:pro" {
		t.Fatalf("no org: fea %v pla %v", c["fea"], c["pla"])
	}
	// Plan from the options comes first.
	_, c = segments(t, s.MustMint(TokenOptions{User: &admin, NoOrg: true, Plan: "u:free"}))
	if c["pla"] != "u:free,u:pro" {
		t.Fatalf("pla %v", c["pla"])
	}
	// v1 tokens predate Billing.
	_, c = segments(t, s.MustMint(TokenOptions{User: &admin, Version: 1}))
	if _, ok := c["fea"]; ok {
		t.Fatalf("v1 fea %v", c["fea"])
	}
	if _, ok := c["pla"]; ok {
		t.Fatalf("v1 pla %v", c["pla"])
	}
	// The zero Billing removes them; other users never had any.
	s.SetBilling(admin.ID, Billing{})
	_, c = segments(t, s.MustMint(TokenOptions{User: &admin, NoOrg: true}))
	if _, ok := c["pla"]; ok || c["fea"] != nil {
		t.Fatalf("after reset: fea %v pla %v", c["fea"], c["pla"])
	}
}

func TestFactorAgeGrowsWithTheClock(t *testing.T) {
	var now atomic.Int64
	now.Store(fixedNow.Unix())
	s := newServer(t, WithClock(func() time.Time { return time.Unix(now.Load(), 0) }))
	u := s.MemberUser()
	fva := func() []any {
		_, c := segments(t, s.MustMint(TokenOptions{User: &u}))
		return c["fva"].([]any)
	}
	if got := fva(); got[0] != 0.0 || got[1] != -1.0 {
		t.Fatalf("default fva %v", got)
	}
	s.SetFactorAge(u.ID, 30, 9)
	if got := fva(); got[0] != 30.0 || got[1] != 9.0 {
		t.Fatalf("fva %v", got)
	}
	now.Add(61) // a minute and a second later
	if got := fva(); got[0] != 31.0 || got[1] != 10.0 {
		t.Fatalf("a minute later: fva %v", got)
	}
	s.SetFactorAge(u.ID, 2, -1)
	if got := fva(); got[0] != 2.0 || got[1] != -1.0 {
		t.Fatalf("no second factor: fva %v", got)
	}
	// Another user keeps the default.
	admin := s.AdminUser()
	if _, c := segments(t, s.MustMint(TokenOptions{User: &admin})); c["fva"].([]any)[0] != 0.0 {
		t.Fatalf("admin fva %v", c["fva"])
	}
}
