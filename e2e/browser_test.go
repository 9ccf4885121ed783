package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/caddy-clerk/caddy-clerk/internal/demo"
)

// startDemo runs the demo (what `go run ./cmd/demo` runs) on a free
// loopback port.
func startDemo(t *testing.T, lifetime time.Duration) *demo.Demo {
	t.Helper()
	d, err := demo.StartLoopback(lifetime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// chromium finds a Chromium to drive. Locally a missing browser skips the
// test; under CI (which installs Debian's chromium) it fails.
// allocator starts headless Chromium for one test (each chromedp context
// of it a browser of its own), stopped when the test ends.
func allocator(t *testing.T) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1000, 800))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	return actx
}

// browser is one browser of a test, with a deadline.
func browser(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancelCtx := chromedp.NewContext(allocator(t))
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx() })
	return ctx
}

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium not found (CI installs Debian's chromium package; set CHROMIUM to its path)")
	}
	t.Skip("Chromium not found: install Debian's chromium package (or set CHROMIUM) to run the browser test")
	return ""
}

// TestBrowserEndToEnd drives headless Chromium through the demo: sign in
// through the emulator's Account Portal, outlive the 5-second token, load
// a page again without seeing sign-in (the handshake renewed the session),
// call the API with fetch from the page, sign out. Screenshots of each step
// are kept in a temporary directory named in the log.
func TestBrowserEndToEnd(t *testing.T) {
	const lifetime = 5 * time.Second
	d := startDemo(t, lifetime)
	ada := d.Clerk.AdminUser()

	shots, err := os.MkdirTemp("", "caddy-clerk-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	ctx := browser(t, 90*time.Second)

	step := 0
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var png []byte
			if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
				return err
			}
			step++
			return os.WriteFile(filepath.Join(shots, fmt.Sprintf("%d-%s.png", step, name)), png, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	var loc, text string

	// 1. A protected page sends us to the Account Portal.
	run("open the site",
		chromedp.Navigate(d.Site+"/"),
		chromedp.WaitVisible("#sign-in-ada", chromedp.ByQuery),
		chromedp.Location(&loc),
		shot("sign-in"))
	if !strings.HasPrefix(loc, d.Clerk.AccountsURL()+"/sign-in?") {
		t.Fatalf("sign-in page at %s", loc)
	}

	// 2. Pick Ada: back on the page, whose fetch shows her identity.
	run("sign in as Ada",
		chromedp.Click("#sign-in-ada", chromedp.ByQuery),
		chromedp.WaitVisible("#sign-out", chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('who').textContent.includes('`+ada.ID+`')`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Location(&loc),
		chromedp.Text("#who", &text, chromedp.ByQuery),
		shot("signed-in"))
	if loc != d.Site+"/" || !strings.Contains(text, "org:admin") {
		t.Fatalf("after sign-in at %s: %s", loc, text)
	}

	// 3. Outlive the token (lifetime plus the 5 s clock skew), navigate
	// again: the page loads with no visible sign-in, through a handshake.
	before := len(d.Clerk.Handshakes())
	time.Sleep(lifetime + 6*time.Second)
	run("load the admin page after the token expired",
		chromedp.Navigate(d.Site+"/admin/"),
		chromedp.WaitVisible("#sign-out", chromedp.ByQuery),
		chromedp.Location(&loc),
		chromedp.Text("h1", &text, chromedp.ByQuery),
		shot("renewed"))
	if loc != d.Site+"/admin/" || text != "Admin area" {
		t.Fatalf("after expiry at %s: %q", loc, text)
	}
	hs := d.Clerk.Handshakes()
	if len(hs) <= before || hs[len(hs)-1].Get("__clerk_hs_reason") != "session-token-expired-refresh-non-eligible-no-refresh-cookie" {
		t.Fatalf("no handshake renewed the session: %v", hs[before:])
	}

	// 4. fetch from the page, with the renewed cookie.
	var who string
	run("fetch the API from the page",
		chromedp.Evaluate(`fetch('/api/whoami').then(r => r.text())`, &who,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	var got map[string]string
	if err := json.Unmarshal([]byte(who), &got); err != nil || got["X-Clerk-User-Id"] != ada.ID {
		t.Fatalf("fetch: %q", who)
	}

	// 5. Sign out: the session is revoked and we land on sign-in.
	sessions := d.Clerk.Sessions()
	run("sign out",
		chromedp.Click("#sign-out", chromedp.ByQuery),
		chromedp.WaitVisible("#sign-in-ada", chromedp.ByQuery),
		chromedp.Location(&loc),
		shot("signed-out"))
	if !strings.HasPrefix(loc, d.Clerk.AccountsURL()+"/sign-in?") {
		t.Fatalf("after sign-out at %s", loc)
	}
	for _, s := range sessions {
		if d.Clerk.SessionStatus(s.ID) == "active" {
			t.Fatalf("session %s still active", s.ID)
		}
	}
}

// TestBrowserOrganizations: the URL names the organization
// (organization_sync in the demo). Ada signs in at /orgs/beta/ (her new
// session has acme active; the handshake switches it to beta), then opens
// /orgs/acme/ while beta is active and lands there with acme active, with
// no visible sign-in. Bob, a member of beta only, gets 403 at /orgs/acme/.
func TestBrowserOrganizations(t *testing.T) {
	d := startDemo(t, time.Minute)
	ada, bob := d.Clerk.AdminUser(), d.Clerk.MemberUser()
	actx := allocator(t)

	// signInAt opens page in a new browser, signs in as the user on the
	// emulator's Account Portal, and returns that browser's context.
	signInAt := func(page, button string) context.Context {
		t.Helper()
		ctx, cancel := chromedp.NewContext(actx)
		t.Cleanup(cancel)
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		t.Cleanup(cancel)
		var loc string
		if err := chromedp.Run(ctx,
			chromedp.Navigate(page),
			chromedp.WaitVisible(button, chromedp.ByQuery),
			chromedp.Click(button, chromedp.ByQuery),
			chromedp.WaitNotPresent(button, chromedp.ByQuery),
			chromedp.Location(&loc)); err != nil {
			t.Fatalf("sign in at %s: %v", page, err)
		}
		return ctx
	}
	// open navigates and returns the final location and the page's text.
	open := func(ctx context.Context, page string) (loc, text string) {
		t.Helper()
		if err := chromedp.Run(ctx,
			chromedp.Navigate(page),
			chromedp.WaitReady("body", chromedp.ByQuery),
			chromedp.Location(&loc),
			chromedp.Text("body", &text, chromedp.ByQuery)); err != nil {
			t.Fatalf("open %s: %v", page, err)
		}
		return loc, text
	}
	echoed := func(text string) map[string]string {
		var m map[string]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(text)), &m); err != nil {
			t.Fatalf("not the echo upstream's answer: %q", text)
		}
		return m
	}

	ctx := signInAt(d.Site+"/orgs/beta/", "#sign-in-ada")
	loc, text := open(ctx, d.Site+"/orgs/beta/")
	if m := echoed(text); loc != d.Site+"/orgs/beta/" || m["X-Clerk-Org-Slug"] != "beta" || m["X-Clerk-User-Id"] != ada.ID {
		t.Fatalf("Ada at beta: %s %s", loc, text)
	}
	before := len(d.Clerk.Handshakes())
	loc, text = open(ctx, d.Site+"/orgs/acme/")
	if m := echoed(text); loc != d.Site+"/orgs/acme/" || m["X-Clerk-Org-Slug"] != "acme" || m["X-Clerk-Org-Role"] != "org:admin" {
		t.Fatalf("Ada at acme: %s %s", loc, text)
	}
	hs := d.Clerk.Handshakes()[before:]
	if len(hs) != 1 || hs[0].Get("organization_id") != "acme" || hs[0].Get("__clerk_hs_reason") != "active-organization-mismatch" {
		t.Fatalf("Ada's switch to acme: handshakes %v", hs)
	}

	bctx := signInAt(d.Site+"/orgs/beta/", "#sign-in-bob")
	if _, text := open(bctx, d.Site+"/orgs/beta/"); echoed(text)["X-Clerk-User-Id"] != bob.ID {
		t.Fatalf("Bob at beta: %s", text)
	}
	// The refusal comes with the handshake's answer, at once: on a
	// development instance the page's URL still holds the spent nonce.
	loc, text = open(bctx, d.Site+"/orgs/acme/")
	if !strings.HasPrefix(loc, d.Site+"/orgs/acme/") || !strings.Contains(text, "403 Forbidden (active-organization-mismatch)") {
		t.Fatalf("Bob at acme: %s %q", loc, text)
	}
}
