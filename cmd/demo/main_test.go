package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-clerk/caddy-clerk/internal/demo"
)

// startDemo runs the demo on a free loopback port.
func startDemo(t *testing.T, lifetime time.Duration) *demo.Demo {
	t.Helper()
	d, err := demo.StartLoopback(lifetime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// TestDemo walks the demo with a plain HTTP client behaving like a browser
// (cookies, page-load headers, following redirects): sign in through the
// emulator's Account Portal, the page and the API see Ada, the admin area,
// sign-out. e2e/browser_test.go does the same in Chromium.
func TestDemo(t *testing.T) {
	d := startDemo(t, time.Minute)
	if !strings.Contains(d.Banner(), d.Site) {
		t.Fatal("banner without the URL")
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	do := func(method, u string, form url.Values, dest string, bearer string) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Sec-Fetch-Dest", dest)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req) // redirects are followed as GETs, as a browser does
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	ada := d.Clerk.AdminUser()

	resp, body := do("GET", d.Site+"/", nil, "document", "")
	if resp.Request.URL.Path != "/accounts/sign-in" || !strings.Contains(body, `id="sign-in-ada"`) {
		t.Fatalf("not sent to sign-in: %s %s", resp.Request.URL, body)
	}
	q := resp.Request.URL.Query()
	resp, body = do("POST", d.Clerk.AccountsURL()+"/sign-in", url.Values{"user_id": {ada.ID},
		"redirect_url": {q.Get("redirect_url")}, "__clerk_db_jwt": {q.Get("__clerk_db_jwt")}}, "document", "")
	if resp.StatusCode != 200 || resp.Request.URL.String() != d.Site+"/" || !strings.Contains(body, "A static page behind Clerk") {
		t.Fatalf("after sign-in: %d %s %s", resp.StatusCode, resp.Request.URL, body)
	}

	resp, body = do("GET", d.Site+"/api/whoami", nil, "empty", "")
	var who map[string]string
	if err := json.Unmarshal([]byte(body), &who); err != nil || who["X-Clerk-User-Id"] != ada.ID || who["X-Clerk-Org-Role"] != "org:admin" {
		t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	}
	if resp, body := do("GET", d.Site+"/admin/", nil, "document", ""); resp.StatusCode != 200 || !strings.Contains(body, "Admin area") {
		t.Fatalf("admin as Ada: %d", resp.StatusCode)
	}
	if resp, body := do("GET", d.Site+"/admin/", nil, "empty", d.MemberToken); resp.StatusCode != 403 || !strings.Contains(body, "missing-role") {
		t.Fatalf("admin as Bob (printed token): %d %s", resp.StatusCode, body)
	}
	// The URL names the organization: Ada's session switches to beta and
	// back; Bob is no member of acme.
	for _, slug := range []string{"beta", "acme"} {
		resp, body := do("GET", d.Site+"/orgs/"+slug+"/", nil, "document", "")
		var org map[string]string
		if err := json.Unmarshal([]byte(body), &org); err != nil || resp.Request.URL.String() != d.Site+"/orgs/"+slug+"/" ||
			org["X-Clerk-Org-Slug"] != slug || org["X-Clerk-User-Id"] != ada.ID {
			t.Fatalf("/orgs/%s/ as Ada: %d %s %s", slug, resp.StatusCode, resp.Request.URL, body)
		}
	}
	if resp, body := do("GET", d.Site+"/orgs/acme/", nil, "empty", d.MemberToken); resp.StatusCode != 403 || !strings.Contains(body, "active-organization-mismatch") {
		t.Fatalf("/orgs/acme/ as Bob: %d %s", resp.StatusCode, body)
	}

	sessions := d.Clerk.Sessions()
	resp, _ = do("GET", d.Site+"/sign-out", nil, "document", "")
	if resp.Request.URL.Path != "/accounts/sign-in" {
		t.Fatalf("sign-out ended at %s", resp.Request.URL)
	}
	if len(sessions) != 1 || d.Clerk.SessionStatus(sessions[0].ID) != "revoked" {
		t.Fatalf("sessions %+v, status %s", sessions, d.Clerk.SessionStatus(sessions[0].ID))
	}
	if resp, _ := do("GET", d.Site+"/api/whoami", nil, "empty", ""); resp.StatusCode != 401 {
		t.Fatalf("API after sign-out: %d", resp.StatusCode)
	}
}

// TestDemoPendingUser: Grace has a task: after sign-in she is on the
// Account Portal's tasks page, and once it is done back on the page, which
// learns her name from userinfo_path.
func TestDemoPendingUser(t *testing.T) {
	d := startDemo(t, time.Minute)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	do := func(method, u string, form url.Values, dest string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Sec-Fetch-Dest", dest)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	grace := d.PendingUser
	resp, body := do("GET", d.Site+"/", nil, "document")
	if !strings.Contains(body, `id="sign-in-grace"`) {
		t.Fatalf("Grace is not on the sign-in page: %s", body)
	}
	q := resp.Request.URL.Query()
	resp, body = do("POST", d.Clerk.AccountsURL()+"/sign-in", url.Values{"user_id": {grace.ID},
		"redirect_url": {q.Get("redirect_url")}, "__clerk_db_jwt": {q.Get("__clerk_db_jwt")}}, "document")
	if resp.Request.URL.Path != "/accounts/sign-in/tasks" || !strings.Contains(body, `id="task-reset-password"`) {
		t.Fatalf("after sign-in: %s %s", resp.Request.URL, body)
	}
	if resp, _ := do("GET", d.Site+"/.clerk/me", nil, "empty"); resp.StatusCode != 401 {
		t.Fatalf("userinfo while pending: %d", resp.StatusCode)
	}
	q = resp.Request.URL.Query()
	resp, body = do("POST", d.Clerk.AccountsURL()+"/sign-in/tasks/reset-password", url.Values{
		"redirect_url": {q.Get("redirect_url")}, "__clerk_db_jwt": {q.Get("__clerk_db_jwt")}}, "document")
	if resp.StatusCode != 200 || resp.Request.URL.String() != d.Site+"/" || !strings.Contains(body, `id="signed-in"`) {
		t.Fatalf("after the task: %d %s %s", resp.StatusCode, resp.Request.URL, body)
	}
	resp, body = do("GET", d.Site+"/.clerk/me", nil, "empty")
	var me struct {
		UserID string `json:"user_id"`
		User   struct {
			FirstName *string `json:"first_name"`
			LastName  *string `json:"last_name"`
		} `json:"user"`
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil || me.UserID != grace.ID || me.User.FirstName == nil ||
		*me.User.FirstName+" "+*me.User.LastName != "Grace Hopper" {
		t.Fatalf("userinfo: %d %s", resp.StatusCode, body)
	}
}
