package clerktest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Cookie attributes of the handshake's directives, as Clerk's FAPI writes
// them.
const (
	attrSession = "; Path=/; SameSite=Lax"
	attrUAT     = "; Path=/; Max-Age=315360000; SameSite=Lax"
	attrDevJWT  = "; Path=/; Max-Age=31536000; SameSite=Lax"
	attrClear   = "; Path=/; Max-Age=0"
)

// Handshakes returns the query of every request that reached
// GET /v1/client/handshake, oldest first (requests a fault consumed are
// counted by Requests but not recorded).
func (s *Server) Handshakes() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.handshakes))
	for i, q := range s.handshakes {
		out[i] = cloneValues(q)
	}
	return out
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// cookie is a Set-Cookie value: name=value plus attrs, and Secure when the
// emulator serves HTTPS.
func (s *Server) cookie(name, value, attrs string) string {
	c := name + "=" + value + attrs
	if s.tls {
		c += "; Secure"
	}
	return c
}

// suffixedCookie is cookie preceded, when suffixed, by its
// __name_<suffix> twin, the order in which Clerk's FAPI writes them.
func (s *Server) suffixedCookie(suffixed bool, name, value, attrs string) []string {
	if !suffixed {
		return []string{s.cookie(name, value, attrs)}
	}
	return []string{s.cookie(name+"_"+s.suffix, value, attrs), s.cookie(name, value, attrs)}
}

// redirectURL parses an absolute http(s) URL with a host.
func redirectURL(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, false
	}
	return u, true
}

// withParam returns u with name=value in its query, replacing any
// previous name parameter and keeping the others as they were written.
func withParam(u *url.URL, name, value string) string {
	v := *u
	var kept []string
	if v.RawQuery != "" {
		for _, p := range strings.Split(v.RawQuery, "&") {
			k, _, _ := strings.Cut(p, "=")
			if k, err := url.QueryUnescape(k); err == nil && k == name {
				continue
			}
			kept = append(kept, p)
		}
	}
	v.RawQuery = strings.Join(append(kept, url.QueryEscape(name)+"="+url.QueryEscape(value)), "&")
	return v.String()
}

// serveClientHandshake is FAPI's GET /v1/client/handshake: it answers a
// browser the app sent here with the client's cookies, packed as a nonce
// or a signed token, and sends it back to redirect_url.
func (s *Server) serveClientHandshake(w http.ResponseWriter, r *http.Request) {
	satellite := s.satelliteRequest(r)
	if satellite && s.prod && !s.syncSatellite(w, r) {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	s.handshakes = append(s.handshakes, cloneValues(q))
	s.mu.Unlock()
	back, ok := redirectURL(q.Get("redirect_url"))
	if !ok {
		writeError(w, http.StatusBadRequest, "form_param_value_invalid", "redirect_url is invalid",
			"redirect_url must be an absolute http or https URL.")
		return
	}
	nonceFormat := q.Get("format") == "nonce"
	suffixed := q.Get("suffixed_cookies") == "true"

	var (
		user     User
		sid, dvb string
		uat      int64
		pending  bool // the user has a task to finish
	)
	s.mu.Lock()
	// A development handshake without a known dev browser creates one:
	// that is how Clerk bootstraps a dev browser.
	c, _ := s.clientLocked(r, q.Get("__clerk_db_jwt"), !s.prod)
	if c != nil {
		dvb = c.devBrowser
	}
	var org *Membership
	if sess := s.activeLocked(c); sess != nil {
		if rec := s.users[sess.userID]; rec != nil {
			user, sid, uat, pending = rec.User, sess.id, c.uat, s.tasks[sess.userID] != ""
			org = activateLocked(sess, rec.User, q)
		}
	}
	life := s.lifetime
	s.mu.Unlock()

	var dirs []string
	if sid != "" {
		tok, err := s.Mint(TokenOptions{User: &user, SessionID: sid, Lifetime: life, Org: org, NoOrg: org == nil, Issuer: s.issuerFor(r), Pending: pending})
		if err != nil {
			writeStatusError(w, http.StatusInternalServerError)
			return
		}
		dirs = append(dirs, s.suffixedCookie(suffixed, "__session", tok, attrSession)...)
		dirs = append(dirs, s.suffixedCookie(suffixed, "__client_uat", strconv.FormatInt(uat, 10), attrUAT)...)
	} else {
		dirs = append(dirs, s.suffixedCookie(suffixed, "__session", "", attrClear)...)
		dirs = append(dirs, s.suffixedCookie(suffixed, "__client_uat", "0", attrUAT)...)
	}
	if !s.prod {
		dirs = append(dirs, s.suffixedCookie(suffixed, "__clerk_db_jwt", dvb, attrDevJWT)...)
	}
	// The carrier cookie is never suffixed: @clerk/backend reads it by its
	// plain name.
	carrier := "__clerk_handshake"
	if nonceFormat {
		carrier = "__clerk_handshake_nonce"
	}
	if s.prod {
		dirs = append(dirs, s.cookie(carrier, "", attrClear))
	}

	var value string
	if nonceFormat {
		value = randBase62(32)
		s.storePayload(value, dirs, s.now().Add(handshakeNonceTTL))
	} else {
		s.mu.Lock()
		kid := s.current
		key := s.keys[kid]
		s.mu.Unlock()
		tok, err := Sign(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}, map[string]any{"handshake": dirs}, key)
		if err != nil {
			writeStatusError(w, http.StatusInternalServerError)
			return
		}
		value = tok
	}
	loc := q.Get("redirect_url")
	if satellite && back.Query().Has("__clerk_synced") {
		loc = withParam(back, "__clerk_synced", "true") // this domain is synced now
		back, _ = redirectURL(loc)
	}
	if s.prod {
		attrs := "; Path=/; Max-Age=60; SameSite=Lax"
		if nonceFormat {
			attrs = "; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
		}
		w.Header().Add("Set-Cookie", s.cookie(carrier, value, attrs))
	} else {
		loc = withParam(back, carrier, value)
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// activateLocked applies the handshake's organization_id (an id or a slug;
// "" for the personal account) to the session, as Clerk's FAPI does: only
// an organization the user is a member of is activated, anything else
// leaves the active one as it was. It returns the session's active
// membership, nil for none.
func activateLocked(sess *sessionRecord, u User, q url.Values) *Membership {
	if want, ok := q["organization_id"]; ok && len(want) > 0 {
		if want[0] == "" {
			sess.orgID, sess.orgChosen = "", true
		} else if m, ok := u.Membership(want[0]); ok {
			sess.orgID, sess.orgChosen = m.ID, true
		}
	}
	if !sess.orgChosen {
		return u.Org
	}
	if m, ok := u.Membership(sess.orgID); ok {
		return &m
	}
	return nil
}
