package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// TestDemo walks the demo as a browser would: redirected to sign in, back
// with a session, identity at the API, the admin area, sign-out.
func TestDemo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d, err := start(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !strings.Contains(d.banner(), d.site) {
		t.Fatal("banner without the URL")
	}

	newBrowser := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar}
	}
	get := func(c *http.Client, u string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Sec-Fetch-Dest", "document")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	signIn := func(c *http.Client, userID string) {
		t.Helper()
		resp, body := get(c, d.site+"/")
		if resp.Request.URL.Path != "/accounts/sign-in" || !strings.Contains(body, userID) {
			t.Fatalf("not sent to sign-in: %s %s", resp.Request.URL, body)
		}
		resp, err := c.PostForm(resp.Request.URL.String(), url.Values{"user": {userID}, "redirect_url": {d.site + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Request.URL.String() != d.site+"/" {
			t.Fatalf("after sign-in: %d at %s", resp.StatusCode, resp.Request.URL)
		}
	}

	ada, bob := d.clerk.AdminUser(), d.clerk.MemberUser()
	b := newBrowser()
	signIn(b, ada.ID)
	resp, body := get(b, d.site+"/api/whoami")
	var who map[string]string
	if err := json.Unmarshal([]byte(body), &who); err != nil || who["X-Clerk-User-Id"] != ada.ID || who["X-Clerk-Org-Role"] != "org:admin" {
		t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(b, d.site+"/admin/"); resp.StatusCode != 200 || !strings.Contains(body, "Admin area") {
		t.Fatalf("admin as Ada: %d", resp.StatusCode)
	}
	// Sign out: back to the site, which sends us to sign in again.
	resp, _ = get(b, d.clerk.AccountsURL()+"/sign-out?redirect_url="+url.QueryEscape(d.site+"/"))
	if resp.Request.URL.Path != "/accounts/sign-in" {
		t.Fatalf("after sign-out: %s", resp.Request.URL)
	}

	b = newBrowser()
	signIn(b, bob.ID)
	if resp, body := get(b, d.site+"/admin/"); resp.StatusCode != 403 || !strings.Contains(body, "missing-role") {
		t.Fatalf("admin as Bob: %d %s", resp.StatusCode, body)
	}
	// The printed curl tokens work too.
	req, _ := http.NewRequest("GET", d.site+"/api/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+d.memberTk)
	r2, err := http.DefaultClient.Do(req)
	if err != nil || r2.StatusCode != 200 {
		t.Fatalf("member token: %v %v", err, r2)
	}
	r2.Body.Close()
	if r3, _ := http.Get(d.site + "/api/whoami"); r3.StatusCode != 401 {
		t.Fatalf("anonymous API: %d", r3.StatusCode)
	}
	// Open redirects are refused.
	if got := d.safeRedirect("https://evil.example/"); got != d.site+"/" {
		t.Fatal(got)
	}
}
