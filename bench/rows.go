package main

import (
	"fmt"
	"strings"
)

// Binaries a row runs on.
const (
	binClerk    = "caddy-clerk"      // Caddy v2.11.9 + our module (also serves plain Caddy rows)
	binSecurity = "caddy-security"   // Caddy v2.11.9 + caddy-security v1.1.31
	binForward  = "authsvc"          // caddy-clerk binary's stock forward_auth + bench/authsvc
	binBase     = "caddy-clerk-base" // caddy-clerk built from -base-ref: the code before a change
)

// How a row's load carries the credential.
const (
	loadBearer = "bearer" // one token, Authorization: Bearer
	loadCookie = "cookie" // one token, as the session cookie
	loadCycle  = "cycle"  // -cycle-tokens distinct tokens, a different one per request, round and round
	loadUnique = "unique" // a token the server has never seen on every request
	loadSpray  = "spray"  // a fresh random ak_ value on every request (wrk draws it)
)

// What the single credential of a bearer load is.
const (
	credSession = ""        // the admin user's session token (JWT)
	credAPIKey  = "api_key" // one API key (ak_…) issued by the emulator, verified at its Backend API
	credM2MJWT  = "m2m_jwt" // one M2M JWT (sub mch_…), verified locally
)

// row is one line of the table: a server configuration under one load.
type row struct {
	id      string
	name    string
	binary  string
	kind    string // site kind, see caddyfile
	load    string
	ceiling string // the row it is compared to; "" for a ceiling
	cache   int    // token_cache for kind "clerk-sized"
	accept  string // accept line for kind "clerk-machine"
	cred    string // the credential of bearer loads and of the checks
}

// machine reports whether the row's server verifies opaque machine tokens
// at the emulator's Backend API (its calls are counted).
func (r row) machine() bool { return r.kind == "clerk-machine" && r.accept == "api_key" }

// allRows lists the table in run order. Every row gets its own server
// process, so CPU time and heap state belong to that row alone.
func allRows(o options) []row {
	sized := 2 * o.cycleTokens // per-shard bounds: leave room for uneven shards
	return []row{
		{id: "1", name: "Caddy `respond` (ceiling)", binary: binClerk, kind: "respond", load: loadBearer},
		{id: "2", name: "caddy-clerk, Bearer, token cache on (default)", binary: binClerk, kind: "clerk", load: loadBearer, ceiling: "1"},
		{id: "3", name: "caddy-clerk, Bearer, `token_cache off`", binary: binClerk, kind: "clerk-nocache", load: loadBearer, ceiling: "1"},
		{id: "4", name: "caddy-clerk, `__session` cookie, token cache on", binary: binClerk, kind: "clerk", load: loadCookie, ceiling: "1"},
		{id: "5", name: "caddy-security v1.1.31 `authorize` (JWT policy)", binary: binSecurity, kind: "security", load: loadBearer, ceiling: "1"},
		{id: "6", name: "`forward_auth` to a clerk-sdk-go v2.4.2 service", binary: binForward, kind: "forward", load: loadBearer, ceiling: "1"},
		{id: "1x", name: "Caddy `respond` on the caddy-security binary (cross-check of 1)", binary: binSecurity, kind: "respond", load: loadBearer, ceiling: "1"},
		{id: "1c", name: "Caddy `respond` (ceiling for the cycled rows)", binary: binClerk, kind: "respond", load: loadCycle},
		{id: "2c", name: "caddy-clerk, token cache on (default)", binary: binClerk, kind: "clerk", load: loadCycle, ceiling: "1c"},
		{id: "3c", name: "caddy-clerk, `token_cache off`", binary: binClerk, kind: "clerk-nocache", load: loadCycle, ceiling: "1c"},
		{id: "5c", name: "caddy-security `authorize`", binary: binSecurity, kind: "security", load: loadCycle, ceiling: "1c"},
		{id: "2cL", name: fmt.Sprintf("caddy-clerk, `token_cache %d` (holds every cycled token)", sized), binary: binClerk, kind: "clerk-sized", load: loadCycle, ceiling: "1c", cache: sized},
		{id: "1u", name: "Caddy `respond` (ceiling for the fresh-token rows)", binary: binClerk, kind: "respond", load: loadUnique},
		{id: "2u", name: "caddy-clerk, token cache on (default)", binary: binClerk, kind: "clerk", load: loadUnique, ceiling: "1u"},
		{id: "5u", name: "caddy-security `authorize`", binary: binSecurity, kind: "security", load: loadUnique, ceiling: "1u"},
		{id: "1a", name: "Caddy `respond`, a second server exactly like row 1 (A/A control: its ratio is the method's own error)", binary: binClerk, kind: "respond", load: loadBearer, ceiling: "1"},
		{id: "1h", name: "Caddy `header Cache-Control private` then `respond`: row 1 answering with row 2's response headers", binary: binClerk, kind: "respond-private", load: loadBearer, ceiling: "1"},
		{id: "2s", name: "caddy-clerk, Bearer, token cache on, `shared_cache allow`: row 2 without its private response writer and header", binary: binClerk, kind: "clerk-shared", load: loadBearer, ceiling: "1"},
		{id: "1e", name: "caddy-clerk with `exclude /*` then `respond`: the handler's plumbing on every request, no credential checked", binary: binClerk, kind: "respond-clerk-excluded", load: loadBearer, ceiling: "1"},
		{id: "1m", name: "Caddy `vars` then `respond`: row 1 with one middleware that does nothing", binary: binClerk, kind: "respond-vars", load: loadBearer, ceiling: "1"},
		{id: "1k", name: "Caddy `respond`, row 7's API key as Bearer (ignored): row 1 with row 7's shorter header", binary: binClerk, kind: "respond", load: loadBearer, ceiling: "1", cred: credAPIKey},
		{id: "7", name: "caddy-clerk, `accept api_key`, cached API key", binary: binClerk, kind: "clerk-machine", load: loadBearer, ceiling: "1", accept: "api_key", cred: credAPIKey},
		{id: "8", name: "caddy-clerk, `accept m2m_token`, M2M JWT (verified locally, token cache)", binary: binClerk, kind: "clerk-machine", load: loadBearer, ceiling: "1", accept: "m2m_token", cred: credM2MJWT},
		{id: "2b", name: "row 2 on the `-base-ref` build: the same server and load, the code before a change", binary: binBase, kind: "clerk", load: loadBearer, ceiling: "1"},
		{id: "4b", name: "row 4 on the `-base-ref` build", binary: binBase, kind: "clerk", load: loadCookie, ceiling: "1"},
		{id: "7r", name: "caddy-clerk, `accept api_key`, random-key spray (default `machine_verify_rate`)", binary: binClerk, kind: "clerk-machine", load: loadSpray, ceiling: "1", accept: "api_key", cred: credAPIKey},
	}
}

func rowIDs(rs []row) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.id
	}
	return ids
}

// selectRows parses a comma-separated list of row ids; empty means all.
// Run order is always the table's.
func selectRows(all []row, list string) ([]row, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		if !contains(all, id) {
			return nil, fmt.Errorf("unknown row %q (rows: %s)", id, strings.Join(rowIDs(all), ","))
		}
		want[id] = true
	}
	var out []row
	for _, r := range all {
		if want[r.id] {
			out = append(out, r)
		}
	}
	return out, nil
}

func contains(rs []row, id string) bool {
	for _, r := range rs {
		if r.id == id {
			return true
		}
	}
	return false
}

func (r row) authenticates() bool { return !strings.HasPrefix(r.kind, "respond") }

// tokensDesc says what credential the load sends.
func (r row) tokensDesc(cycle int) string {
	switch r.load {
	case loadCookie:
		return "1, cookie"
	case loadCycle:
		return fmt.Sprintf("%d cycled", cycle)
	case loadUnique:
		return "new each request"
	case loadSpray:
		return "random `ak_` each request"
	}
	switch r.cred {
	case credAPIKey:
		return "1 API key"
	case credM2MJWT:
		return "1 M2M JWT"
	}
	return "1"
}
