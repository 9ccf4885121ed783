package clerktest

import (
	"net/http"
	"strings"
	"testing"
)

// TestTasks: a user with a task gets pending sessions (sts in the
// handshake's token, status at the Backend API) until the tasks page
// finishes it; the page validates redirect_url as sign-in does.
func TestTasks(t *testing.T) {
	for _, prod := range []bool{false, true} {
		name := "development"
		if prod {
			name = "production"
		}
		t.Run(name, func(t *testing.T) {
			opts := []Option{}
			if prod {
				opts = append(opts, Production())
			}
			s := newServer(t, opts...)
			ada := s.AdminUser()
			if err := s.SetUserTask(ada.ID, "paint-the-fence"); err == nil {
				t.Fatal("an unknown task was accepted")
			}
			if err := s.SetUserTask("user_nobody", TaskResetPassword); err == nil {
				t.Fatal("a task for an unknown user was accepted")
			}
			if err := s.SetUserTask(ada.ID, TaskChooseOrganization); err != nil || s.UserTask(ada.ID) != TaskChooseOrganization {
				t.Fatal(err)
			}
			b := newBrowser(t, s)
			dvb := ""
			if !prod {
				r := b.get(handshakeURL(s, hsQuery(appURL, "nonce", false)))
				dirs := redeem(t, s, wantRedirect(t, r, 307).Query().Get("__clerk_handshake_nonce"))
				dvb, _, _ = strings.Cut(strings.TrimPrefix(dirs[2], "__clerk_db_jwt="), ";")
			}
			tasks := s.AccountsURL() + "/sign-in/tasks?redirect_url=" + appURL + "&__clerk_db_jwt=" + dvb

			// Not signed in: sign in first, with the same parameters.
			if loc := wantRedirect(t, b.get(tasks), http.StatusSeeOther); loc.Path != "/accounts/sign-in" || loc.Query().Get("redirect_url") != appURL {
				t.Fatalf("tasks page while signed out: %s", loc)
			}
			wantRedirect(t, b.post(s.AccountsURL()+"/sign-in", signInForm(ada.ID, appURL, dvb)), http.StatusSeeOther)
			sid := s.Sessions()[0].ID
			claims := handshakeClaims(t, s, b, dvb)
			if claims["sts"] != "pending" || claims["sid"] != sid {
				t.Fatalf("claims of a user with a task: %v", claims)
			}
			if st := bapiSessionStatus(t, s, sid); st != "pending" {
				t.Fatalf("Backend API session status %q", st)
			}

			for _, u := range []string{tasks, strings.Replace(tasks, "/tasks?", "/tasks/"+TaskChooseOrganization+"?", 1)} {
				r := b.get(u)
				if r.status != 200 || !strings.Contains(string(r.body), `id="task-choose-organization"`) ||
					!strings.Contains(string(r.body), "Ada Lovelace") {
					t.Fatalf("tasks page %s: %d %s", u, r.status, r.body)
				}
			}
			form := signInForm("", appURL, dvb)
			form.Del("user_id")
			if r := b.post(s.AccountsURL()+"/sign-in/tasks/"+TaskResetPassword, form); r.status != 400 {
				t.Fatalf("finishing a task that is not pending: %d", r.status)
			}
			r := b.post(s.AccountsURL()+"/sign-in/tasks/"+TaskChooseOrganization, form)
			want := appURL
			if !prod {
				want += "&__clerk_db_jwt=" + dvb
			}
			if loc := wantRedirect(t, r, http.StatusSeeOther); loc.String() != want {
				t.Fatalf("after the task: %s, want %s", loc, want)
			}
			if prod && !strings.HasPrefix(strings.Join(r.header.Values("Set-Cookie"), "\n"), "__client_uat_"+s.CookieSuffix()+"=") {
				t.Fatalf("production Set-Cookie %q", r.header.Values("Set-Cookie"))
			}
			claims = handshakeClaims(t, s, b, dvb)
			if _, ok := claims["sts"]; ok || s.UserTask(ada.ID) != "" || bapiSessionStatus(t, s, sid) != "active" {
				t.Fatalf("after the task: claims %v, task %q", claims, s.UserTask(ada.ID))
			}
			// Nothing left: straight back; an invalid redirect_url is a page.
			if loc := wantRedirect(t, b.get(tasks), http.StatusSeeOther); !strings.HasPrefix(loc.String(), appURL) {
				t.Fatalf("tasks page with none left: %s", loc)
			}
			if r := b.get(s.AccountsURL() + "/sign-in/tasks?redirect_url=javascript:alert(1)&__clerk_db_jwt=" + dvb); r.status != 200 ||
				r.header.Get("Location") != "" || !strings.Contains(string(r.body), "No tasks") {
				t.Fatalf("invalid redirect_url: %d %q", r.status, r.header.Get("Location"))
			}
		})
	}
}

// handshakeClaims runs a handshake for the browser and returns the claims
// of the session token it hands back.
func handshakeClaims(t *testing.T, s *Server, b *browser, dvb string) map[string]any {
	t.Helper()
	extra := []string{}
	if dvb != "" {
		extra = []string{"__clerk_db_jwt", dvb}
	}
	r := b.get(handshakeURL(s, hsQuery(appURL, "nonce", false, extra...)))
	nonce := wantRedirect(t, r, 307).Query().Get("__clerk_handshake_nonce")
	if nonce == "" { // production: the nonce comes as a cookie
		for _, c := range r.header.Values("Set-Cookie") {
			if v, ok := strings.CutPrefix(c, "__clerk_handshake_nonce="); ok {
				nonce, _, _ = strings.Cut(v, ";")
			}
		}
	}
	for _, d := range redeem(t, s, nonce) {
		if v, ok := strings.CutPrefix(d, "__session="); ok {
			tok, _, _ := strings.Cut(v, ";")
			if err := verifyWithJWKS(t, s, tok); err != nil {
				t.Fatal(err)
			}
			_, c := segments(t, tok)
			return c
		}
	}
	t.Fatal("no session token in the handshake")
	return nil
}

func bapiSessionStatus(t *testing.T, s *Server, sid string) string {
	t.Helper()
	r := get(t, s.BackendAPIURL()+"/sessions/"+sid, s.SecretKey())
	st, _ := decodeObject(t, r.body)["status"].(string)
	return st
}
