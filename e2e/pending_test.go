package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chrome is a headless Chromium for one test: run performs actions and
// fails the test on error, shot saves a numbered screenshot.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	shots string
	step  int
}

func newChrome(t *testing.T) *chrome {
	ctx := browser(t, 90*time.Second)
	shots, err := os.MkdirTemp("", "caddy-clerk-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	return &chrome{t: t, ctx: ctx, shots: shots}
}

func (c *chrome) run(what string, actions ...chromedp.Action) {
	c.t.Helper()
	if err := chromedp.Run(c.ctx, actions...); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func (c *chrome) shot(name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var png []byte
		if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
			return err
		}
		c.step++
		return os.WriteFile(filepath.Join(c.shots, fmt.Sprintf("%d-%s.png", c.step, name)), png, 0o644)
	})
}

// TestBrowserPendingUser: Grace, who has a task to finish, signs in, lands
// on the Account Portal's tasks page (a pending session is not signed in),
// finishes the task and is back on the page, which shows "Signed in as
// Grace Hopper" from userinfo_path.
func TestBrowserPendingUser(t *testing.T) {
	c := newChrome(t)
	d := startDemo(t, 5*time.Second)
	var loc, text string

	c.run("sign in as Grace",
		chromedp.Navigate(d.Site+"/"),
		chromedp.WaitVisible("#sign-in-grace", chromedp.ByQuery),
		chromedp.Click("#sign-in-grace", chromedp.ByQuery),
		chromedp.WaitVisible("#task-reset-password", chromedp.ByQuery),
		chromedp.Location(&loc),
		c.shot("tasks"))
	if !strings.HasPrefix(loc, d.Clerk.AccountsURL()+"/sign-in/tasks?") {
		t.Fatalf("tasks page at %s", loc)
	}

	c.run("finish the task",
		chromedp.Click("#task-reset-password", chromedp.ByQuery),
		chromedp.WaitVisible("#signed-in", chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('name').textContent === 'Grace Hopper'`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Location(&loc),
		chromedp.Text("#signed-in", &text, chromedp.ByQuery),
		c.shot("signed-in"))
	if loc != d.Site+"/" || !strings.HasPrefix(text, "Signed in as Grace Hopper") || d.Clerk.UserTask(d.PendingUser.ID) != "" {
		t.Fatalf("after the task at %s: %q", loc, text)
	}
}
