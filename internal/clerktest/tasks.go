package clerktest

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// Session tasks (@clerk/shared's SessionTask keys): while its user has one,
// a session is pending, its tokens carry sts "pending", and the Account
// Portal's /sign-in/tasks page finishes it.
const (
	TaskChooseOrganization = "choose-organization"
	TaskResetPassword      = "reset-password"
	TaskSetupMFA           = "setup-mfa"
)

// AccountsTasks is the Account Portal's tasks page: GET and POST
// /accounts/sign-in/tasks[/<key>].
const AccountsTasks Endpoint = "accounts-tasks"

var taskTitles = map[string]string{
	TaskChooseOrganization: "Choose an organization",
	TaskResetPassword:      "Reset your password",
	TaskSetupMFA:           "Set up two-step verification",
}

// SetUserTask gives the user a task to finish (one of the Task* keys), or
// none with "": every session of the user is pending until it is done.
func (s *Server) SetUserTask(userID, task string) error {
	if _, ok := taskTitles[task]; !ok && task != "" {
		return fmt.Errorf("clerktest: unknown session task %q (choose-organization, reset-password or setup-mfa)", task)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[userID] == nil {
		return fmt.Errorf("clerktest: no user %q", userID)
	}
	if s.tasks == nil {
		s.tasks = map[string]string{}
	}
	if task == "" {
		delete(s.tasks, userID)
	} else {
		s.tasks[userID] = task
	}
	return nil
}

// UserTask is the user's unfinished task, "" if none.
func (s *Server) UserTask(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tasks[userID]
}

var _ = template.Must(portalPages.Parse(`
{{define "task"}}{{template "head" .Title}}
<h1>{{.Title}}</h1>
<p>{{.Name}}, one more step before you continue (session task <code>{{.Key}}</code>).
This local Clerk emulator finishes it when you press the button.</p>
<form method="post" action="/accounts/sign-in/tasks/{{.Key}}">
<input type="hidden" name="redirect_url" value="{{.RedirectURL}}">
<input type="hidden" name="__clerk_db_jwt" value="{{.DevBrowser}}">
<button type="submit" id="task-{{.Key}}">{{.Title}} and continue</button>
</form></body></html>
{{end}}`))

func (s *Server) taskRoutes() {
	s.handle(AccountsTasks, "GET /accounts/sign-in/tasks", http.HandlerFunc(s.serveTasksPage))
	s.handle(AccountsTasks, "GET /accounts/sign-in/tasks/{key}", http.HandlerFunc(s.serveTasksPage))
	s.handle(AccountsTasks, "POST /accounts/sign-in/tasks/{key}", http.HandlerFunc(s.serveFinishTask))
}

// pendingTaskLocked is the browser's signed-in user and their task.
func (s *Server) pendingTaskLocked(r *http.Request, devBrowser string) (c *clientRecord, u User, task string, ok bool) {
	c, _ = s.clientLocked(r, devBrowser, false)
	sess := s.activeLocked(c)
	if sess == nil || s.users[sess.userID] == nil {
		return nil, User{}, "", false
	}
	return c, s.users[sess.userID].User, s.tasks[sess.userID], true
}

// serveTasksPage is the Account Portal's tasks page: the signed-in user's
// task, or straight back to redirect_url when there is none left (as
// clerk-js does for an active session). A browser that is not signed in
// goes to sign in first.
func (s *Server) serveTasksPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dvb := q.Get("__clerk_db_jwt")
	s.mu.Lock()
	_, u, task, ok := s.pendingTaskLocked(r, dvb)
	s.mu.Unlock()
	switch {
	case !ok:
		w.Header().Set("Location", s.AccountsURL()+"/sign-in?"+r.URL.RawQuery)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusSeeOther)
	case task == "":
		s.backTo(w, q.Get("redirect_url"), dvb, "No tasks", "Nothing is left to do: the session is active.")
	default:
		writePage(w, http.StatusOK, "task", struct{ Title, Name, Key, RedirectURL, DevBrowser string }{
			taskTitles[task], displayName(u), task, q.Get("redirect_url"), dvb})
	}
}

// serveFinishTask finishes the task: the session becomes active, and the
// client's sign-in time moves on, so an app holding a pending token renews
// it (its iat is now before __client_uat) instead of sending the browser
// back here.
func (s *Server) serveFinishTask(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeMessage(w, http.StatusBadRequest, "Task failed", "The form could not be read.")
		return
	}
	dvb := r.FormValue("__clerk_db_jwt")
	now := s.now()
	s.mu.Lock()
	c, u, task, ok := s.pendingTaskLocked(r, dvb)
	if ok && task == r.PathValue("key") {
		delete(s.tasks, u.ID)
		c.uat = now.Unix()
	}
	uat := int64(0)
	if c != nil {
		uat = c.uat
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeMessage(w, http.StatusBadRequest, "Task failed", "This browser is not signed in.")
		return
	case task != r.PathValue("key"):
		writeMessage(w, http.StatusBadRequest, "Task failed", "That task is not pending for "+label(u)+".")
		return
	}
	if s.prod {
		for _, d := range s.suffixedCookie(true, "__client_uat", strconv.FormatInt(uat, 10), attrUAT) {
			w.Header().Add("Set-Cookie", d)
		}
	}
	s.backTo(w, r.FormValue("redirect_url"), dvb, "Task done", taskTitles[task]+": done.")
}

// backTo sends the browser to an absolute http(s) redirect_url (with the
// dev-browser token on development instances, as the sign-in page does),
// or shows a message when there is none.
func (s *Server) backTo(w http.ResponseWriter, raw, devBrowser, title, text string) {
	back, ok := redirectURL(raw)
	if !ok {
		writeMessage(w, http.StatusOK, title, text)
		return
	}
	loc := back.String()
	if !s.prod && devBrowser != "" {
		loc = withParam(back, "__clerk_db_jwt", devBrowser)
	}
	w.Header().Set("Location", loc)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// displayName is "Ada Lovelace", else the username or id.
func displayName(u User) string {
	if n := strings.TrimSpace(u.FirstName + " " + u.LastName); n != "" {
		return n
	}
	if u.Username != "" {
		return u.Username
	}
	return u.ID
}
