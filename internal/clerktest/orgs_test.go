package clerktest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestHandshakeOrganization: the handshake's organization_id activates one
// of the user's organizations by id or slug, "" the personal account; a
// non-member's request leaves the active one unchanged, as Clerk's FAPI
// does. The session keeps what was activated.
func TestHandshakeOrganization(t *testing.T) {
	s := newServer(t, Production())
	ada, bob := s.AdminUser(), s.MemberUser()
	beta, ok := ada.Membership("beta")
	if !ok || bob.Org == nil || bob.Org.ID != beta.ID || bob.Org.Slug != "beta" || ada.Org.Slug != "acme" {
		t.Fatalf("demo users: Ada %+v %+v, Bob %+v", ada.Org, ada.Memberships, bob.Org)
	}
	if _, ok := bob.Membership("acme"); ok {
		t.Fatal("Bob is a member of acme")
	}
	// activeOrg runs a legacy handshake as user's browser, with
	// organization_id when set, and returns the new token's o claim.
	browsers := map[string]*browser{}
	activeOrg := func(user User, orgID *string) map[string]any {
		t.Helper()
		b := browsers[user.ID]
		if b == nil {
			b = newBrowser(t, s)
			ck, _, err := s.SignInClient(user.ID)
			if err != nil {
				t.Fatal(err)
			}
			emu, _ := url.Parse(s.URL())
			b.c.Jar.SetCookies(emu, []*http.Cookie{ck})
			browsers[user.ID] = b
		}
		var extra []string
		if orgID != nil {
			extra = []string{"organization_id", *orgID}
		}
		wantRedirect(t, b.get(handshakeURL(s, hsQuery(appURL, "", false, extra...))), 307)
		for _, d := range legacyDirectives(t, s, b.cookies(appURL)["__clerk_handshake"]) {
			if v, ok := strings.CutPrefix(d, "__session="); ok {
				tok, _, _ := strings.Cut(v, ";")
				if err := verifyWithJWKS(t, s, tok); err != nil {
					t.Fatal(err)
				}
				_, c := segments(t, tok)
				o, _ := c["o"].(map[string]any)
				return o
			}
		}
		t.Fatal("no session directive")
		return nil
	}
	str := func(s string) *string { return &s }
	for _, step := range []struct {
		name   string
		user   User
		orgID  *string
		wantID string // "" for none
		role   string
	}{
		{"a new session has the user's Org", ada, nil, ada.Org.ID, "admin"},
		{"by slug", ada, str("beta"), beta.ID, "member"},
		{"kept without organization_id", ada, nil, beta.ID, "member"},
		{"by id", ada, str(ada.Org.ID), ada.Org.ID, "admin"},
		{"not a member: unchanged", ada, str("nope"), ada.Org.ID, "admin"},
		{"an unknown id: unchanged", ada, str("org_unknown"), ada.Org.ID, "admin"},
		{"personal account", ada, str(""), "", ""},
		{"back from the personal account", ada, str("acme"), ada.Org.ID, "admin"},
		{"Bob starts in beta", bob, nil, beta.ID, "member"},
		{"Bob is no member of acme", bob, str("acme"), beta.ID, "member"},
		{"nor by acme's id", bob, str(ada.Org.ID), beta.ID, "member"},
	} {
		o := activeOrg(step.user, step.orgID)
		switch {
		case step.wantID == "" && o != nil:
			t.Fatalf("%s: o %v, want none", step.name, o)
		case step.wantID != "" && (o == nil || o["id"] != step.wantID || o["rol"] != step.role):
			t.Fatalf("%s: o %v, want id %s role %s", step.name, o, step.wantID, step.role)
		}
	}
}
