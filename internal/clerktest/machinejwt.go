package clerktest

import (
	"crypto/rsa"
	"time"
)

// M2MCat is the cat header Clerk puts on M2M JWTs.
const M2MCat = "cl_B7d4PD333AAA"

// DefaultMachineJWTLifetime is the lifetime of minted machine JWTs unless
// an option says otherwise.
const DefaultMachineJWTLifetime = time.Hour

// M2MJWTOptions describes an M2M JWT for MintM2MJWT.
type M2MJWTOptions struct {
	// Subject is sub, the issuing machine (default a fresh mch_ id).
	Subject string
	// Scopes is the scopes claim: space-separated mch_ ids ("" omits it).
	Scopes string
	// Aud is the aud claim, which Clerk reads when scopes is absent (nil
	// omits it).
	Aud []string
	// ID is jti (default mt_ + 32 hex digits).
	ID string
	// Lifetime sets exp = iat + Lifetime (default 1 h).
	Lifetime time.Duration
	// IssuedAt is iat (default the emulator clock); nbf is iat - 10 s.
	IssuedAt time.Time
	// Issuer is iss (default Issuer()).
	Issuer string
	// Claims are merged last; a nil value deletes a claim.
	Claims map[string]any
	// Header shapes the JOSE header. Defaults: typ "JWT", cat M2MCat;
	// OmitCat/OmitTyp drop them, Cat/Typ replace them.
	Header HeaderOptions
	// SigningKey signs instead of the current key.
	SigningKey *rsa.PrivateKey
}

// OAuthJWTOptions describes an OAuth access token JWT for MintOAuthJWT.
type OAuthJWTOptions struct {
	// Subject is sub, the user (default a fresh user_ id).
	Subject string
	// ClientID is client_id, the OAuth application's (default a fresh one).
	ClientID string
	// Scope is the space-separated scope claim ("read:foo write:bar"; ""
	// omits it).
	Scope string
	// Scp is the scp array, which Clerk prefers to scope (nil omits it).
	Scp []string
	// SessionID is sid (default a fresh sess_ id; Clerk's carry one).
	SessionID string
	// AuthorizedParty is azp (default the server's).
	AuthorizedParty string
	// ID is jti (default oat_ + 32 hex digits).
	ID string
	// Lifetime sets exp = iat + Lifetime (default 1 h).
	Lifetime time.Duration
	// IssuedAt is iat (default the emulator clock); nbf is iat - 10 s.
	IssuedAt time.Time
	// Issuer is iss (default Issuer()).
	Issuer string
	// Claims are merged last; a nil value deletes a claim.
	Claims map[string]any
	// Header shapes the JOSE header. Defaults: typ "at+jwt", no cat
	// (Clerk has no category for OAuth tokens); Cat adds one.
	Header HeaderOptions
	// SigningKey signs instead of the current key.
	SigningKey *rsa.PrivateKey
}

// MintM2MJWT signs an M2M JWT shaped like Clerk's with the instance key,
// so it verifies against the same JWKS as session tokens.
func (s *Server) MintM2MJWT(o M2MJWTOptions) (string, error) {
	ho := o.Header
	if ho.Cat == "" {
		ho.Cat = M2MCat
	}
	c := s.machineClaims(o.IssuedAt, o.Lifetime, o.Issuer, o.ID, "mt_")
	c["sub"] = o.Subject
	if o.Subject == "" {
		c["sub"] = NewMachineID()
	}
	if o.Scopes != "" {
		c["scopes"] = o.Scopes
	}
	if o.Aud != nil {
		c["aud"] = append([]string{}, o.Aud...)
	}
	merge(c, o.Claims)
	return s.signMachine(ho, o.SigningKey, c)
}

// MintOAuthJWT signs an OAuth access token JWT shaped like Clerk's with
// the instance key.
func (s *Server) MintOAuthJWT(o OAuthJWTOptions) (string, error) {
	ho := o.Header
	if ho.Cat == "" {
		ho.OmitCat = true
	}
	if ho.Typ == "" {
		ho.Typ = "at+jwt"
	}
	c := s.machineClaims(o.IssuedAt, o.Lifetime, o.Issuer, o.ID, "oat_")
	c["sub"] = o.Subject
	if o.Subject == "" {
		c["sub"] = NewUserID()
	}
	c["client_id"] = o.ClientID
	if o.ClientID == "" {
		c["client_id"] = randBase62(16)
	}
	c["sid"] = o.SessionID
	if o.SessionID == "" {
		c["sid"] = NewSessionID()
	}
	c["azp"] = o.AuthorizedParty
	if o.AuthorizedParty == "" {
		s.mu.Lock()
		c["azp"] = s.azp
		s.mu.Unlock()
	}
	if o.Scope != "" {
		c["scope"] = o.Scope
	}
	if o.Scp != nil {
		c["scp"] = append([]string{}, o.Scp...)
	}
	merge(c, o.Claims)
	return s.signMachine(ho, o.SigningKey, c)
}

// MustMintM2MJWT is MintM2MJWT that panics on error.
func (s *Server) MustMintM2MJWT(o M2MJWTOptions) string {
	tok, err := s.MintM2MJWT(o)
	if err != nil {
		panic(err)
	}
	return tok
}

// MustMintOAuthJWT is MintOAuthJWT that panics on error.
func (s *Server) MustMintOAuthJWT(o OAuthJWTOptions) string {
	tok, err := s.MintOAuthJWT(o)
	if err != nil {
		panic(err)
	}
	return tok
}

// machineClaims are the claims both machine JWTs share.
func (s *Server) machineClaims(iat time.Time, life time.Duration, iss, jti, prefix string) map[string]any {
	if iat.IsZero() {
		iat = s.now()
	}
	if life == 0 {
		life = DefaultMachineJWTLifetime
	}
	if iss == "" {
		iss = s.Issuer()
	}
	if jti == "" {
		jti = prefix + randHex(16)
	}
	return map[string]any{
		"exp": iat.Add(life).Unix(),
		"iat": iat.Unix(),
		"iss": iss,
		"jti": jti,
		"nbf": iat.Unix() - 10,
	}
}

func (s *Server) signMachine(ho HeaderOptions, key *rsa.PrivateKey, claims map[string]any) (string, error) {
	header, err := s.header(TokenOptions{Header: ho, SigningKey: key})
	if err != nil {
		return "", err
	}
	return Sign(header, claims, s.signingKey(key))
}
