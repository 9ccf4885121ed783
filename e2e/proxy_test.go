package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-clerk/caddy-clerk/internal/demo"
)

// TestBrowserProxy drives headless Chromium through `go run ./cmd/demo
// -proxy`: a production instance whose Frontend API the site serves at
// /__clerk. Signing in lands on the page with Ada's identity, and the
// handshake that brought the session went through the site's own path.
func TestBrowserProxy(t *testing.T) {
	d, err := demo.StartLoopbackWith(demo.Options{Lifetime: time.Minute, Proxy: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ada := d.Clerk.AdminUser()

	ctx := browser(t, 60*time.Second)

	var loc, text string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(d.Site+"/"),
		chromedp.WaitVisible("#sign-in-ada", chromedp.ByQuery),
		chromedp.Click("#sign-in-ada", chromedp.ByQuery),
		chromedp.WaitVisible("#sign-out", chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('who').textContent.includes('`+ada.ID+`')`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Location(&loc),
		chromedp.Text("#who", &text, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if loc != d.Site+"/" || !strings.Contains(text, ada.ID) {
		t.Fatalf("after sign-in at %s: %s", loc, text)
	}
	handshakes := 0
	for _, p := range d.Clerk.ProxiedRequests() {
		if p.Path == "/v1/client/handshake" && p.SecretKeyOK && p.ProxyURL == d.ProxyURL {
			handshakes++
		}
	}
	if handshakes == 0 || len(d.Clerk.Handshakes()) != handshakes {
		t.Fatalf("%d handshakes, %d of them through %s", len(d.Clerk.Handshakes()), handshakes, d.ProxyURL)
	}
}
