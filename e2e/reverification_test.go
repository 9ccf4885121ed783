package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// pageFetch is what a page's script sees of a fetch: the status, the
// Content-Type and the body parsed as clerk-js's useReverification reads
// it (@clerk/shared isReverificationHint: only the parsed body counts).
const pageFetch = `(async (path) => {
	const r = await fetch(path);
	const text = await r.text();
	let body = null;
	try { body = JSON.parse(text); } catch (e) {}
	const ce = body && typeof body === 'object' && 'clerk_error' in body ? body.clerk_error : null;
	return JSON.stringify({
		status: r.status,
		contentType: r.headers.get('content-type'),
		hint: !!ce && ce.type === 'forbidden' && ce.reason === 'reverification-error',
		reverification: ce && ce.metadata ? ce.metadata.reverification : null,
		body: body,
	});
})`

type fetched struct {
	Status         int    `json:"status"`
	ContentType    string `json:"contentType"`
	Hint           bool   `json:"hint"`
	Reverification any    `json:"reverification"`
}

// TestBrowserReverification: a user whose second factor was verified 30
// minutes ago calls the demo's /api/settings (require_reverification
// strict) with fetch from the page and gets Clerk's JSON 403, which the
// page reads as clerk-js does; the page and the rest of the API keep
// working. Once the user verifies again (the emulator's factor ages) and the
// handshake renews the token, the same fetch passes: the retry
// useReverification makes after its modal.
func TestBrowserReverification(t *testing.T) {
	const lifetime = 5 * time.Second
	d := startDemo(t, lifetime)
	ada := d.Clerk.AdminUser()
	d.Clerk.SetFactorAge(ada.ID, 30, 30)

	ctx := browser(t, 90*time.Second)
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	fetch := func(path string) (f fetched, raw string) {
		t.Helper()
		run("fetch "+path+" from the page", chromedp.Evaluate(pageFetch+"('"+path+"')", &raw,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			t.Fatalf("fetch %s: %q", path, raw)
		}
		return f, raw
	}

	var loc string
	run("sign in as Ada",
		chromedp.Navigate(d.Site+"/"),
		chromedp.WaitVisible("#sign-in-ada", chromedp.ByQuery),
		chromedp.Click("#sign-in-ada", chromedp.ByQuery),
		chromedp.WaitVisible("#sign-out", chromedp.ByQuery),
		chromedp.Poll(`document.getElementById('who').textContent.includes('`+ada.ID+`')`, nil, chromedp.WithPollingTimeout(10*time.Second)))

	f, raw := fetch("/api/settings")
	if f.Status != 403 || f.ContentType != "application/json" || !f.Hint || f.Reverification != "strict" {
		t.Fatalf("stale session: %s", raw)
	}
	// Only that call is refused: the page is where it was, the API answers.
	run("the page still works", chromedp.Location(&loc), chromedp.WaitVisible("#sign-out", chromedp.ByQuery))
	if loc != d.Site+"/" {
		t.Fatalf("the page moved to %s", loc)
	}
	if f, raw := fetch("/api/whoami"); f.Status != 200 || !strings.Contains(raw, ada.ID) {
		t.Fatalf("whoami: %s", raw)
	}

	// Ada verifies again; the next token (after the handshake renews the
	// expired one on a page load) carries the fresh ages.
	d.Clerk.SetFactorAge(ada.ID, 0, 0)
	time.Sleep(lifetime + 6*time.Second)
	run("reload after the token expired",
		chromedp.Navigate(d.Site+"/"),
		chromedp.WaitVisible("#sign-out", chromedp.ByQuery),
		chromedp.Location(&loc))
	if loc != d.Site+"/" {
		t.Fatalf("after expiry at %s", loc)
	}
	if f, raw := fetch("/api/settings"); f.Status != 200 || f.Hint || !strings.Contains(raw, ada.ID) {
		t.Fatalf("after verifying again: %s", raw)
	}
}
