// Package caddyclerk is a Caddy v2 HTTP handler (module http.handlers.clerk)
// that authenticates requests with Clerk session tokens.
package caddyclerk
