package authn

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"
)

// OrgPattern is one organization_sync pattern: Clerk's path-to-regexp v6
// syntax as Clerk's docs use it (literal text, :slug or :id, (.*)),
// compiled with v6's default options: case-insensitive, anchored, an
// optional trailing delimiter, parameters matching [^/#?]+? and left
// URL-encoded.
type OrgPattern struct {
	src  string
	re   *regexp.Regexp
	id   int // submatch index of :id, 0 if none
	slug int // submatch index of :slug, 0 if none
}

// ParseOrgPattern compiles p. personal is a personal_account pattern,
// which names no organization and so takes no parameter; an organization
// pattern needs :slug or :id. Anything else of path-to-regexp (other
// groups, modifiers, braces, custom parameter patterns) is refused with
// the fix: a pattern that silently matched differently from Clerk would
// put one tenant's request under another's identity.
func ParseOrgPattern(p string, personal bool) (*OrgPattern, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("pattern %q must start with / (it is matched against the URL path), e.g. /orgs/:slug", p)
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("pattern %q is not valid UTF-8", p)
	}
	var re strings.Builder
	re.WriteString("(?i)^")
	op := &OrgPattern{src: p}
	group := 0
	lastParam := false
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == ':':
			j := i + 1
			for j < len(p) && isNameChar(p[j]) {
				j++
			}
			name := p[i+1 : j]
			switch {
			case name == "":
				return nil, fmt.Errorf("pattern %q: ':' must start a parameter, :slug or :id", p)
			case personal:
				return nil, fmt.Errorf("pattern %q: a personal_account pattern names no organization, so it takes no parameter (:%s); use (.*) for any text, e.g. /me/(.*)", p, name)
			case name != "slug" && name != "id":
				return nil, fmt.Errorf("pattern %q: parameter :%s names nothing Clerk knows; use :slug (the organization's slug) or :id (its org_… id)", p, name)
			case lastParam:
				return nil, fmt.Errorf("pattern %q: two parameters in a row cannot be told apart; put a literal between them, e.g. /orgs/:slug/", p)
			case j < len(p) && p[j] == '(':
				return nil, fmt.Errorf("pattern %q: a custom parameter pattern (:%s(…)) is not supported; use :%s for one path segment, and (.*) after a / for the rest", p, name, name)
			}
			group++
			if name == "id" {
				if op.id != 0 {
					return nil, fmt.Errorf("pattern %q names :id twice; keep one", p)
				}
				op.id = group
			} else {
				if op.slug != 0 {
					return nil, fmt.Errorf("pattern %q names :slug twice; keep one", p)
				}
				op.slug = group
			}
			re.WriteString(`([^/#?]+?)`)
			i, lastParam = j, true
			continue
		case c == '(':
			if !strings.HasPrefix(p[i:], "(.*)") {
				return nil, fmt.Errorf("pattern %q: the only group supported is (.*), for any text; other regular expressions are refused", p)
			}
			group++
			re.WriteString(`(.*)`)
			i += len("(.*)")
			lastParam = true
			continue
		case strings.IndexByte(")*?+{}\\", c) >= 0:
			return nil, fmt.Errorf("pattern %q: %q is path-to-regexp syntax caddy-clerk does not take (modifiers, wildcards and optional parts behave differently across its versions); write one pattern per form, with (.*) for any text, e.g. /orgs/:slug /orgs/:slug/(.*)", p, string(c))
		}
		re.WriteString(regexp.QuoteMeta(p[i : i+1])) // a byte: string(c) would be the rune c
		i++
		lastParam = false
	}
	if !personal && op.id == 0 && op.slug == 0 {
		return nil, fmt.Errorf("pattern %q names no organization: add :slug or :id, e.g. /orgs/:slug/(.*)", p)
	}
	re.WriteString(`[/#?]?$`)
	var err error
	if op.re, err = regexp.Compile(re.String()); err != nil {
		return nil, fmt.Errorf("pattern %q: %v", p, err)
	}
	return op, nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// String is the pattern as written.
func (p *OrgPattern) String() string { return p.src }

// TargetKind is what a URL names.
type TargetKind uint8

// What a URL can name.
const (
	TargetNone TargetKind = iota
	TargetOrg
	TargetPersonal
)

// OrgTarget is what a URL path names: an organization by id or by slug,
// or the personal account.
type OrgTarget struct {
	Kind TargetKind
	// ID or Slug of an organization (one of them), as it appears in the
	// escaped path.
	ID, Slug string
}

// Param is the handshake's organization_id value: the id, else the slug,
// "" for the personal account.
func (t OrgTarget) Param() string {
	if t.ID != "" {
		return t.ID
	}
	return t.Slug
}

// OrgSync is a site's organization_sync: which URLs name which tenant.
type OrgSync struct {
	org, personal []*OrgPattern
}

// NewOrgSync compiles both pattern lists.
func NewOrgSync(organization, personal []string) (*OrgSync, error) {
	s := &OrgSync{}
	var errs []error
	for _, list := range []struct {
		src      []string
		dst      *[]*OrgPattern
		personal bool
	}{{organization, &s.org, false}, {personal, &s.personal, true}} {
		for _, p := range list.src {
			op, err := ParseOrgPattern(p, list.personal)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			*list.dst = append(*list.dst, op)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Find is @clerk/backend's findTarget on an escaped path: organization
// patterns first (the first that matches; :id wins over :slug), then
// personal-account patterns.
func (s *OrgSync) Find(escapedPath string) OrgTarget {
	for _, p := range s.org {
		if m := p.re.FindStringSubmatch(escapedPath); m != nil {
			if p.id != 0 {
				return OrgTarget{Kind: TargetOrg, ID: m[p.id]}
			}
			return OrgTarget{Kind: TargetOrg, Slug: m[p.slug]}
		}
	}
	for _, p := range s.personal {
		if p.re.MatchString(escapedPath) {
			return OrgTarget{Kind: TargetPersonal}
		}
	}
	return OrgTarget{}
}

// Target is what the request's URL names, as Clerk reads it (the escaped
// path). ambiguous: read as an upstream may read it (decoded, dot segments
// resolved, ";" parameters dropped, "\" as "/", slashes collapsed) it
// names another tenant, or one where Clerk's reading names none, as in
// /orgs/acme/../beta or /x/..%2Forgs/beta: no tenant can be trusted then.
func (s *OrgSync) Target(u *url.URL) (t OrgTarget, ambiguous bool) {
	raw := u.EscapedPath()
	t = s.Find(raw)
	if plain(raw) {
		return t, false // every reading is this one: the common case costs nothing more
	}
	if norm := normalizePath(raw); norm != raw && s.Find(norm) != t {
		return t, true
	}
	return t, false
}

// plain: normalizePath would return p unchanged.
func plain(p string) bool {
	return !strings.ContainsAny(p, `%\;`) && !strings.Contains(p, "/.") && !strings.Contains(p, "//")
}

// normalizePath is the path as the most lenient upstream reads it.
func normalizePath(p string) string {
	for range 3 { // some frameworks decode twice
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, `\`, "/")
	if strings.Contains(p, ";") {
		segs := strings.Split(p, "/")
		for i, seg := range segs {
			if j := strings.IndexByte(seg, ';'); j >= 0 {
				segs[i] = seg[:j]
			}
		}
		p = strings.Join(segs, "/")
	}
	trailing := strings.HasSuffix(p, "/")
	p = path.Clean("/" + p)
	if trailing && p != "/" {
		p += "/"
	}
	return p
}
