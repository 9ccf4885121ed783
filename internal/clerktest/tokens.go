package clerktest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// SessionCat is the cat header Clerk puts on session tokens.
const SessionCat = "cl_B7d4PD111AAA"

// DefaultLifetime is the lifetime of a Clerk session token.
const DefaultLifetime = 60 * time.Second

// TokenOptions describes a token for Mint. The zero value mints a v2
// session token for a fresh user id with no organization.
type TokenOptions struct {
	// User supplies sub and, unless NoOrg, the active organization.
	User *User
	// Subject overrides sub (default User.ID, else a fresh user_ id).
	Subject string
	// SessionID is sid (default a fresh sess_ id).
	SessionID string
	// Lifetime sets exp = iat + Lifetime (default 60 s).
	Lifetime time.Duration
	// IssuedAt is iat (default the emulator clock); nbf is iat - 10 s.
	IssuedAt time.Time
	// Version is 2 (default) or 1 (org_id/org_role/org_slug/org_permissions,
	// no v claim).
	Version int
	// Org overrides the user's active organization; NoOrg mints none.
	Org   *Membership
	NoOrg bool
	// Features are further fea entries with their scope ("u:premium"),
	// placed after the org features (v2 only).
	Features []string
	// Plan sets pla ("u:free", "o:pro").
	Plan string
	// AuthorizedParty is azp (default the server's, URL() unless
	// WithAuthorizedParty).
	AuthorizedParty string
	// Issuer overrides iss (default Issuer()).
	Issuer string
	// Pending sets sts: "pending" (a session with pending tasks).
	Pending bool
	// Actor sets act, for impersonation.
	Actor *Actor
	// Claims are merged last: they add or override claims, and a nil
	// value deletes the claim.
	Claims map[string]any
	// Header shapes the JOSE header.
	Header HeaderOptions
	// SigningKey signs instead of the current key: a rotated key (see
	// PrivateKey) or a foreign one. The kid defaults to the key's own if
	// the server knows it, else the current kid.
	SigningKey *rsa.PrivateKey
}

// HeaderOptions overrides the JOSE header {"alg","cat","kid","typ"}.
type HeaderOptions struct {
	// Alg is written as given; the signature is RS256 regardless.
	Alg     string
	KeyID   string
	OmitKID bool
	Typ     string
	OmitTyp bool
	Cat     string
	OmitCat bool
	// Extra adds or overrides header members; a nil value deletes one.
	Extra map[string]any
}

// Actor is the act claim of an impersonated session.
type Actor struct {
	Issuer    string // iss, e.g. https://dashboard.clerk.com
	SessionID string // sid
	Subject   string // sub, the impersonator
}

// MustMint is Mint that panics on error.
func (s *Server) MustMint(o TokenOptions) string {
	tok, err := s.Mint(o)
	if err != nil {
		panic(err)
	}
	return tok
}

// Mint signs a session token shaped like Clerk's.
func (s *Server) Mint(o TokenOptions) (string, error) {
	header, err := s.header(o)
	if err != nil {
		return "", err
	}
	claims, err := s.Claims(o)
	if err != nil {
		return "", err
	}
	return Sign(header, claims, s.signingKey(o.SigningKey))
}

// signingKey is key, or the current key when nil.
func (s *Server) signingKey(key *rsa.PrivateKey) *rsa.PrivateKey {
	if key != nil {
		return key
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[s.current]
}

// Sign encodes header and claims as a compact JWS signed RS256 with key,
// whatever header["alg"] says. Members are written in sorted order, as
// Clerk's tokens are.
func Sign(header, claims map[string]any, key *rsa.PrivateKey) (string, error) {
	h, err := marshal(header)
	if err != nil {
		return "", fmt.Errorf("clerktest: header: %w", err)
	}
	c, err := marshal(claims)
	if err != nil {
		return "", fmt.Errorf("clerktest: claims: %w", err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("clerktest: signing: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func (s *Server) header(o TokenOptions) (map[string]any, error) {
	ho := o.Header
	h := map[string]any{"alg": "RS256", "typ": "JWT", "cat": SessionCat}
	if ho.Alg != "" {
		h["alg"] = ho.Alg
	}
	if ho.Typ != "" {
		h["typ"] = ho.Typ
	}
	if ho.Cat != "" {
		h["cat"] = ho.Cat
	}
	kid := ho.KeyID
	if kid == "" {
		if o.SigningKey != nil {
			kid, _ = s.kidOf(o.SigningKey)
		}
		if kid == "" {
			kid = s.CurrentKeyID()
		}
	}
	h["kid"] = kid
	if ho.OmitKID {
		delete(h, "kid")
	}
	if ho.OmitTyp {
		delete(h, "typ")
	}
	if ho.OmitCat {
		delete(h, "cat")
	}
	merge(h, ho.Extra)
	return h, nil
}

// Claims returns the payload Mint would sign for o (with fresh sid and jti
// where o leaves them empty).
func (s *Server) Claims(o TokenOptions) (map[string]any, error) {
	if o.Version != 0 && o.Version != 1 && o.Version != 2 {
		return nil, fmt.Errorf("clerktest: token version %d: want 1 or 2", o.Version)
	}
	iat := o.IssuedAt
	if iat.IsZero() {
		iat = s.now()
	}
	life := o.Lifetime
	if life == 0 {
		life = DefaultLifetime
	}
	sub := o.Subject
	if sub == "" && o.User != nil {
		sub = o.User.ID
	}
	if sub == "" {
		sub = NewUserID()
	}
	sid := o.SessionID
	if sid == "" {
		sid = NewSessionID()
	}
	iss := o.Issuer
	if iss == "" {
		iss = s.Issuer()
	}
	azp := o.AuthorizedParty
	if azp == "" {
		s.mu.Lock()
		azp = s.azp
		s.mu.Unlock()
	}
	c := map[string]any{
		"azp": azp,
		"exp": iat.Add(life).Unix(),
		"fva": s.factorAges(sub, iat),
		"iat": iat.Unix(),
		"iss": iss,
		"jti": randHex(10),
		"nbf": iat.Unix() - 10,
		"sid": sid,
		"sub": sub,
	}
	org := o.Org
	if org == nil && o.User != nil {
		org = o.User.Org
	}
	if o.NoOrg {
		org = nil
	}
	if o.Version == 1 {
		if org != nil {
			c["org_id"] = org.ID
			c["org_slug"] = org.Slug
			c["org_role"] = withOrgPrefix(org.Role)
			c["org_permissions"] = append([]string{}, org.Permissions...)
		}
		if o.Plan != "" {
			c["pla"] = o.Plan
		}
	} else {
		c["v"] = 2
		fea := []string{}
		if org != nil {
			f, per, fpm := EncodeOrgPermissions(org.Permissions, org.Features...)
			oc := map[string]any{"id": org.ID, "slg": org.Slug, "rol": strings.TrimPrefix(org.Role, "org:")}
			if per != "" {
				oc["per"] = per
				oc["fpm"] = fpm
			}
			c["o"] = oc
			if f != "" {
				fea = append(fea, strings.Split(f, ",")...)
			}
		}
		fea = append(fea, o.Features...)
		var pla string
		fea, pla = s.billingClaims(sub, org != nil, fea, o.Plan)
		if len(fea) > 0 {
			c["fea"] = strings.Join(fea, ",")
		}
		if pla != "" {
			c["pla"] = pla
		}
	}
	if o.Pending {
		c["sts"] = "pending"
	}
	if a := o.Actor; a != nil {
		act := map[string]any{}
		for k, v := range map[string]string{"iss": a.Issuer, "sid": a.SessionID, "sub": a.Subject} {
			if v != "" {
				act[k] = v
			}
		}
		c["act"] = act
	}
	merge(c, o.Claims)
	return c, nil
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

func withOrgPrefix(role string) string {
	if role == "" || strings.HasPrefix(role, "org:") {
		return role
	}
	return "org:" + role
}

// EncodeOrgPermissions packs "org:<feature>:<permission>" keys into the v2
// claims: fea lists the org features ("o:invoices,o:reports"), per the
// distinct permission names ("read,manage"), and fpm one decimal bitmask
// per feature in fea order, where bit j grants per[j]. extraFeatures (bare
// names) are listed with an empty mask. Keys of any other form are skipped.
// Only org features are returned, so fpm's index matches both the
// position in fea and the org-scoped position, whichever a decoder uses.
func EncodeOrgPermissions(permissions []string, extraFeatures ...string) (fea, per, fpm string) {
	var feats, perms []string
	featIdx, permIdx := map[string]int{}, map[string]int{}
	var grants [][2]int
	addFeat := func(f string) int {
		i, ok := featIdx[f]
		if !ok {
			i = len(feats)
			featIdx[f] = i
			feats = append(feats, f)
		}
		return i
	}
	for _, p := range permissions {
		parts := strings.Split(p, ":")
		if len(parts) != 3 || parts[0] != "org" || parts[1] == "" || parts[2] == "" {
			continue
		}
		fi := addFeat(parts[1])
		pi, ok := permIdx[parts[2]]
		if !ok {
			pi = len(perms)
			permIdx[parts[2]] = pi
			perms = append(perms, parts[2])
		}
		grants = append(grants, [2]int{fi, pi})
	}
	for _, f := range extraFeatures {
		if f = strings.TrimPrefix(f, "o:"); f != "" {
			addFeat(f)
		}
	}
	masks := make([]*big.Int, len(feats))
	for i := range masks {
		masks[i] = new(big.Int)
	}
	for _, g := range grants {
		masks[g[0]].SetBit(masks[g[0]], g[1], 1)
	}
	fs := make([]string, len(feats))
	ms := make([]string, len(feats))
	for i, f := range feats {
		fs[i] = "o:" + f
		ms[i] = masks[i].String()
	}
	if len(perms) == 0 {
		return strings.Join(fs, ","), "", ""
	}
	return strings.Join(fs, ","), strings.Join(perms, ","), strings.Join(ms, ",")
}

// DecodeOrgPermissions expands v2 fea/per/fpm back into
// "org:<feature>:<permission>" keys as @clerk/backend does: the i-th mask
// belongs to the i-th org-scoped fea entry.
func DecodeOrgPermissions(fea, per, fpm string) ([]string, error) {
	out := []string{}
	if fpm == "" || per == "" {
		return out, nil
	}
	perms := strings.Split(per, ",")
	masks := strings.Split(fpm, ",")
	i := 0
	for _, f := range strings.Split(fea, ",") {
		scope, name, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok || !strings.Contains(scope, "o") {
			continue
		}
		if i >= len(masks) {
			break
		}
		m, ok := new(big.Int).SetString(strings.TrimSpace(masks[i]), 10)
		i++
		if !ok || m.Sign() < 0 {
			return nil, errors.New("clerktest: malformed fpm mask")
		}
		if m.BitLen() > len(perms) {
			return nil, errors.New("clerktest: fpm mask has more bits than per has permissions")
		}
		for j, p := range perms {
			if m.Bit(j) == 1 {
				out = append(out, "org:"+name+":"+strings.TrimSpace(p))
			}
		}
	}
	return out, nil
}
