package clerktest

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

var portalPages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}
button{display:block;width:100%;margin:.5rem 0;padding:.8rem;font-size:1rem;cursor:pointer}</style>
</head><body>{{end}}

{{define "sign-in"}}{{template "head" "Sign in (Clerk emulator)"}}
<h1>Sign in</h1>
<p>This is a local Clerk emulator: pick a demo user to sign in as.</p>
{{range .Users}}<form method="post" action="/accounts/sign-in">
<input type="hidden" name="user_id" value="{{.ID}}">
<input type="hidden" name="redirect_url" value="{{$.RedirectURL}}">
<input type="hidden" name="__clerk_db_jwt" value="{{$.DevBrowser}}">
<button type="submit" id="sign-in-{{.Key}}">{{.Label}}</button>
</form>
{{else}}<p>No users are registered.</p>
{{end}}</body></html>
{{end}}

{{define "message"}}{{template "head" .Title}}
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
</body></html>
{{end}}`))

type portalUser struct{ ID, Key, Label string }

// label is how the sign-in page names a user:
// "Ada Lovelace — ada@example.com (org:admin)".
func label(u User) string {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if name == "" {
		name = u.Username
	}
	if name == "" {
		name = u.ID
	}
	if u.Email != "" {
		name += " — " + u.Email
	}
	role := "no organization"
	if u.Org != nil {
		role = u.Org.Role
	}
	return name + " (" + role + ")"
}

func writePage(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := portalPages.ExecuteTemplate(&buf, name, data); err != nil {
		panic(err) // our own templates and data always execute
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeMessage(w http.ResponseWriter, status int, title, text string) {
	writePage(w, status, "message", struct{ Title, Text string }{title, text})
}

// serveSignInPage is the Account Portal's sign-in page: one button per
// registered user.
func (s *Server) serveSignInPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var users []portalUser
	for _, u := range s.userList() {
		key := u.Username
		if key == "" {
			key = u.ID
		}
		users = append(users, portalUser{ID: u.ID, Key: key, Label: label(u)})
	}
	writePage(w, http.StatusOK, "sign-in", struct {
		Users                   []portalUser
		RedirectURL, DevBrowser string
	}{users, q.Get("redirect_url"), q.Get("__clerk_db_jwt")})
}

// serveSignIn signs the browser's client in as the chosen user and sends
// it back to redirect_url.
func (s *Server) serveSignIn(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeMessage(w, http.StatusBadRequest, "Sign-in failed", "The form could not be read.")
		return
	}
	u, ok := s.LookupUser(r.FormValue("user_id"))
	if !ok {
		writeMessage(w, http.StatusBadRequest, "Sign-in failed", "Unknown user.")
		return
	}
	now := s.now()
	s.mu.Lock()
	c, created := s.clientLocked(r, r.FormValue("__clerk_db_jwt"), true)
	s.signInLocked(c, u.ID, now)
	uat, dvb, cookie := c.uat, c.devBrowser, c.cookie
	s.mu.Unlock()

	if s.prod {
		if created {
			w.Header().Add("Set-Cookie", s.cookie("__client", cookie, "; Path=/; Max-Age=315360000; HttpOnly; SameSite=Lax"))
		}
		// FAPI sets __client_uat on the app's parent domain.
		for _, d := range s.suffixedCookie(true, "__client_uat", strconv.FormatInt(uat, 10), attrUAT) {
			w.Header().Add("Set-Cookie", d)
		}
	}
	back, ok := redirectURL(r.FormValue("redirect_url"))
	if !ok {
		writeMessage(w, http.StatusOK, "Signed in", "Signed in as "+label(u)+".")
		return
	}
	loc := r.FormValue("redirect_url")
	if !s.prod {
		// Clerk's cross-origin dev-browser sync.
		loc = withParam(back, "__clerk_db_jwt", dvb)
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// serveSignOut ends the browser's client's session.
func (s *Server) serveSignOut(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := s.now()
	s.mu.Lock()
	if c, _ := s.clientLocked(r, q.Get("__clerk_db_jwt"), false); c != nil {
		s.endLocked(c, now)
		c.uat = now.Unix()
	}
	s.mu.Unlock()
	if s.prod {
		for _, d := range s.suffixedCookie(true, "__client_uat", "0", attrUAT) {
			w.Header().Add("Set-Cookie", d)
		}
	}
	if _, ok := redirectURL(q.Get("redirect_url")); !ok {
		writeMessage(w, http.StatusOK, "Signed out", "You are signed out.")
		return
	}
	w.Header().Set("Location", q.Get("redirect_url"))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}
