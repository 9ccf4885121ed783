package clerktest

import (
	"strings"
	"time"
)

// User is a user registered in the emulator.
type User struct {
	ID              string // user_…; generated when empty
	FirstName       string
	LastName        string
	Username        string
	Email           string // the primary, verified email address
	ImageURL        string
	PublicMetadata  map[string]any
	PrivateMetadata map[string]any
	UnsafeMetadata  map[string]any
	Banned          bool
	Locked          bool
	CreatedAt       time.Time // zero: the emulator clock at AddUser
	// Org is the organization made active in the user's tokens (and in
	// each new session); nil for none.
	Org *Membership
	// Memberships are the user's further organizations: the handshake's
	// organization_id can make one of them (or Org) active in a session.
	Memberships []Membership
}

// Membership is the user's membership of the organization with this id
// or slug, among Org and Memberships.
func (u User) Membership(idOrSlug string) (Membership, bool) {
	if idOrSlug == "" {
		return Membership{}, false
	}
	if u.Org != nil && (u.Org.ID == idOrSlug || u.Org.Slug == idOrSlug) {
		return *u.Org, true
	}
	for _, m := range u.Memberships {
		if m.ID == idOrSlug || m.Slug == idOrSlug {
			return m, true
		}
	}
	return Membership{}, false
}

// Membership is a user's role in an organization.
type Membership struct {
	ID   string // org_…; generated when empty
	Slug string
	// Role is Clerk's role key, "org:admin"; v2 tokens carry it without
	// the org: prefix.
	Role string
	// Permissions are "org:<feature>:<permission>" keys.
	Permissions []string
	// Features are further org-scoped features (bare names, "invoices")
	// the organization has without any permission granted.
	Features []string
}

// clone is m with its own slices and an id.
func (m Membership) clone() Membership {
	m.Permissions = append([]string(nil), m.Permissions...)
	m.Features = append([]string(nil), m.Features...)
	if m.ID == "" {
		m.ID = NewOrgID()
	}
	return m
}

type userRecord struct {
	User
	emailID string
}

// AddUser registers u (replacing any user with its ID) and returns it with
// generated fields filled in.
func (s *Server) AddUser(u User) User {
	if u.ID == "" {
		u.ID = NewUserID()
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now()
	}
	if u.Org != nil {
		m := u.Org.clone()
		u.Org = &m
	}
	ms := make([]Membership, len(u.Memberships))
	for i, m := range u.Memberships {
		ms[i] = m.clone()
	}
	u.Memberships = ms
	rec := &userRecord{User: u, emailID: newID("idn_")}
	s.mu.Lock()
	if _, ok := s.users[u.ID]; !ok {
		s.userOrder = append(s.userOrder, u.ID)
	}
	s.users[u.ID] = rec
	s.mu.Unlock()
	return u
}

// userList returns the registered users in registration order.
func (s *Server) userList() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.userOrder))
	for _, id := range s.userOrder {
		out = append(out, s.users[id].User)
	}
	return out
}

// LookupUser returns the registered user with this id.
func (s *Server) LookupUser(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return rec.User, true
}

// AdminUser is the demo organization admin (ada@example.com, role
// org:admin in org "acme", active in her new sessions, with
// org:invoices:read and org:invoices:manage; and org:member of "beta").
// It is the zero User with WithoutDemoUsers.
func (s *Server) AdminUser() User {
	u, _ := s.LookupUser(s.admin)
	return u
}

// MemberUser is the demo plain member (bob@example.com, role org:member in
// org "beta", org:invoices:read); he is not a member of "acme".
func (s *Server) MemberUser() User {
	u, _ := s.LookupUser(s.member)
	return u
}

func (s *Server) addDemoUsers() {
	betaMember := Membership{ID: NewOrgID(), Slug: "beta", Role: "org:member", Permissions: []string{"org:invoices:read"}}
	s.admin = s.AddUser(User{
		FirstName: "Ada", LastName: "Lovelace", Username: "ada", Email: "ada@example.com",
		PublicMetadata: map[string]any{"plan": "pro"},
		Org: &Membership{
			ID: NewOrgID(), Slug: "acme", Role: "org:admin",
			Permissions: []string{"org:invoices:read", "org:invoices:manage"},
		},
		Memberships: []Membership{betaMember},
	}).ID
	s.member = s.AddUser(User{
		FirstName: "Bob", LastName: "Builder", Username: "bob", Email: "bob@example.com",
		Org: &betaMember,
	}).ID
}

// The Backend API's user object, in Clerk's member order.
type userJSON struct {
	ID                            string         `json:"id"`
	Object                        string         `json:"object"`
	Username                      *string        `json:"username"`
	FirstName                     *string        `json:"first_name"`
	LastName                      *string        `json:"last_name"`
	ImageURL                      string         `json:"image_url"`
	HasImage                      bool           `json:"has_image"`
	PrimaryEmailAddressID         *string        `json:"primary_email_address_id"`
	PrimaryPhoneNumberID          *string        `json:"primary_phone_number_id"`
	PrimaryWeb3WalletID           *string        `json:"primary_web3_wallet_id"`
	PasswordEnabled               bool           `json:"password_enabled"`
	TwoFactorEnabled              bool           `json:"two_factor_enabled"`
	TOTPEnabled                   bool           `json:"totp_enabled"`
	BackupCodeEnabled             bool           `json:"backup_code_enabled"`
	EmailAddresses                []emailJSON    `json:"email_addresses"`
	PhoneNumbers                  []any          `json:"phone_numbers"`
	Web3Wallets                   []any          `json:"web3_wallets"`
	Passkeys                      []any          `json:"passkeys"`
	ExternalAccounts              []any          `json:"external_accounts"`
	SAMLAccounts                  []any          `json:"saml_accounts"`
	EnterpriseAccounts            []any          `json:"enterprise_accounts"`
	PublicMetadata                map[string]any `json:"public_metadata"`
	PrivateMetadata               map[string]any `json:"private_metadata"`
	UnsafeMetadata                map[string]any `json:"unsafe_metadata"`
	ExternalID                    *string        `json:"external_id"`
	LastSignInAt                  *int64         `json:"last_sign_in_at"`
	Banned                        bool           `json:"banned"`
	Locked                        bool           `json:"locked"`
	LockoutExpiresInSeconds       *int64         `json:"lockout_expires_in_seconds"`
	VerificationAttemptsRemaining int            `json:"verification_attempts_remaining"`
	CreatedAt                     int64          `json:"created_at"`
	UpdatedAt                     int64          `json:"updated_at"`
	DeleteSelfEnabled             bool           `json:"delete_self_enabled"`
	CreateOrganizationEnabled     bool           `json:"create_organization_enabled"`
	LastActiveAt                  *int64         `json:"last_active_at"`
	MFAEnabledAt                  *int64         `json:"mfa_enabled_at"`
	MFADisabledAt                 *int64         `json:"mfa_disabled_at"`
	LegalAcceptedAt               *int64         `json:"legal_accepted_at"`
	ProfileImageURL               string         `json:"profile_image_url"`
}

type emailJSON struct {
	ID                   string           `json:"id"`
	Object               string           `json:"object"`
	EmailAddress         string           `json:"email_address"`
	Reserved             bool             `json:"reserved"`
	Verification         verificationJSON `json:"verification"`
	LinkedTo             []any            `json:"linked_to"`
	MatchesSSOConnection bool             `json:"matches_sso_connection"`
	CreatedAt            int64            `json:"created_at"`
	UpdatedAt            int64            `json:"updated_at"`
}

type verificationJSON struct {
	Status   string `json:"status"`
	Strategy string `json:"strategy"`
	Attempts *int   `json:"attempts"`
	ExpireAt *int64 `json:"expire_at"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func (r *userRecord) json() userJSON {
	ms := r.CreatedAt.UnixMilli()
	image := r.ImageURL
	if image == "" {
		// Clerk always answers with an image URL; this is its default avatar.
		image = "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9"
	}
	u := userJSON{
		ID:                            r.ID,
		Object:                        "user",
		Username:                      nullable(r.Username),
		FirstName:                     nullable(r.FirstName),
		LastName:                      nullable(r.LastName),
		ImageURL:                      image,
		HasImage:                      r.ImageURL != "",
		PasswordEnabled:               true,
		EmailAddresses:                []emailJSON{},
		PhoneNumbers:                  []any{},
		Web3Wallets:                   []any{},
		Passkeys:                      []any{},
		ExternalAccounts:              []any{},
		SAMLAccounts:                  []any{},
		EnterpriseAccounts:            []any{},
		PublicMetadata:                orEmpty(r.PublicMetadata),
		PrivateMetadata:               orEmpty(r.PrivateMetadata),
		UnsafeMetadata:                orEmpty(r.UnsafeMetadata),
		Banned:                        r.Banned,
		Locked:                        r.Locked,
		VerificationAttemptsRemaining: 100,
		CreatedAt:                     ms,
		UpdatedAt:                     ms,
		DeleteSelfEnabled:             true,
		CreateOrganizationEnabled:     true,
		ProfileImageURL:               image,
	}
	if r.Email != "" {
		u.PrimaryEmailAddressID = &r.emailID
		u.EmailAddresses = append(u.EmailAddresses, emailJSON{
			ID:           r.emailID,
			Object:       "email_address",
			EmailAddress: strings.ToLower(r.Email),
			Verification: verificationJSON{Status: "verified", Strategy: "email_code"},
			LinkedTo:     []any{},
			CreatedAt:    ms,
			UpdatedAt:    ms,
		})
	}
	return u
}
