// Package e2e holds the browser end-to-end test of the demo
// (internal/demo, what `go run ./cmd/demo` runs), driving headless
// Chromium with chromedp. It is a module of its own so that chromedp is
// never a requirement of the plugin's go.mod.
//
//	cd e2e && go test ./...
package e2e
