package caddyclerk

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-clerk/caddy-clerk/internal/clerktest"
)

func TestMakePrivate(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "private"},
		{[]string{"private"}, "private"},
		{[]string{"public, max-age=600"}, "private, max-age=600"},
		{[]string{"public, max-age=600, s-maxage=3600"}, "private, max-age=600"},
		{[]string{"Public", "S-MaxAge=10", "no-cache"}, "private, no-cache"},
		{[]string{`private="Set-Cookie", max-age=60`}, "private, max-age=60"},
		{[]string{`no-cache="a, b", must-revalidate`}, `private, no-cache="a, b", must-revalidate`},
		{[]string{"no-store"}, "private, no-store"},
		{[]string{"max-age=0,,immutable"}, "private, max-age=0, immutable"},
	} {
		hdr := http.Header{"Cdn-Cache-Control": {"max-age=600"}, "Surrogate-Control": {"max-age=600"}}
		if tc.in != nil {
			hdr["Cache-Control"] = tc.in
		}
		makePrivate(hdr, new([1]string))
		if got := strings.Join(hdr["Cache-Control"], " | "); got != tc.want || len(hdr["Cdn-Cache-Control"])+len(hdr["Surrogate-Control"]) != 0 {
			t.Errorf("makePrivate(%q) = %q %v, want %q", tc.in, got, hdr, tc.want)
		}
		if !isPrivate(hdr) {
			t.Errorf("isPrivate(%q) is false after makePrivate", hdr["Cache-Control"])
		}
	}
	for _, v := range []string{"public, private", "private, s-maxage=1", `private="Set-Cookie"`, "max-age=60", ""} {
		if isPrivate(http.Header{"Cache-Control": {v}}) {
			t.Errorf("isPrivate(%q)", v)
		}
	}
	if isPrivate(http.Header{"Cache-Control": {"private"}, "Cdn-Cache-Control": {"max-age=1"}}) {
		t.Error("isPrivate with CDN-Cache-Control")
	}
}

// cacheUpstream answers with Cache-Control: public, max-age=600,
// s-maxage=3600 and CDN-Cache-Control when the path contains "public";
// /stream/… flushes before writing (as a server-sent event stream does);
// /ws switches protocols and echoes one line.
func cacheUpstream(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "public") {
			w.Header().Set("Cache-Control", "public, max-age=600, s-maxage=3600")
			w.Header().Set("CDN-Cache-Control", "max-age=600")
		}
		switch {
		case r.URL.Path == "/ws":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = brw.WriteString("echo " + line)
			_ = brw.Flush()
		case strings.HasPrefix(r.URL.Path, "/stream/"):
			_ = http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, "data: 1\n\n")
		default:
			_, _ = io.WriteString(w, "content")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestSharedCacheThroughCaddy: §11.10. Every response to a request that
// passed on a credential is private, whatever reverse_proxy, file_server or
// a header directive set; shared_cache allow, anonymous optional passes and
// excluded paths are left alone; streaming and websockets still work. A
// header directive with deferred operations before clerk is the one thing
// clerk cannot override: it is logged.
func TestSharedCacheThroughCaddy(t *testing.T) {
	clerk := clerktest.NewT(t)
	up := cacheUpstream(t)
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "index.html"), []byte("<h1>files</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	block := func(extra string) string {
		return fmt.Sprintf("clerk {\n\t\tpublishable_key %s\n\t\tfrontend_api_url %s\n\t\texclude /open/*\n\t\t%s\n\t}",
			clerk.PublishableKey(), clerk.FrontendAPIURL(), extra)
	}
	upstream := up.Listener.Addr().String()
	body := fmt.Sprintf(`http://127.0.0.1:{{proxy}} {
	%[1]s
	reverse_proxy %[2]s {
		flush_interval -1
	}
}
http://127.0.0.1:{{files}} {
	%[1]s
	root * %[3]s
	file_server
}
http://127.0.0.1:{{hdr}} {
	header Cache-Control "public, max-age=60"
	%[1]s
	respond "ok"
}
http://127.0.0.1:{{route}} {
	route {
		%[1]s
		header >Cache-Control "public, max-age=60"
		respond "ok"
	}
}
http://127.0.0.1:{{deferred}} {
	header >Cache-Control "public, max-age=60"
	%[1]s
	respond "ok"
}
http://127.0.0.1:{{allow}} {
	%[4]s
	reverse_proxy %[2]s
}
http://127.0.0.1:{{opt}} {
	%[5]s
	reverse_proxy %[2]s
}
`, block(""), upstream, files, block("shared_cache allow"), block("optional"))
	run := startCaddy(t, "log {\n\t\toutput file "+logPath+"\n\t\tformat json\n\t}", body)
	f := &fixture{t: t, clerk: clerk, client: testClient(true), caddy: run}
	admin := clerk.AdminUser()
	tok := f.mint(clerktest.TokenOptions{User: &admin, Lifetime: time.Hour})
	upstreamCC := "public, max-age=600, s-maxage=3600"
	for _, tc := range []struct {
		name, site, path string
		header           map[string]string
		status           int
		want             string // Cache-Control
		cdn              bool   // CDN-Cache-Control kept
	}{
		{"reverse_proxy, public upstream", "proxy", "/public", bearer(tok), 200, "private, max-age=600", false},
		{"reverse_proxy, no Cache-Control", "proxy", "/plain", bearer(tok), 200, "private", false},
		{"reverse_proxy, session cookie", "proxy", "/public", map[string]string{"Cookie": "__session=" + tok + "; __client_uat=1"}, 200, "private, max-age=600", false},
		{"reverse_proxy, flushed before writing", "proxy", "/stream/public", bearer(tok), 200, "private, max-age=600", false},
		{"excluded path", "proxy", "/open/public", nil, 200, upstreamCC, true},
		{"file_server", "files", "/index.html", bearer(tok), 200, "private", false},
		{"file_server, not modified", "files", "/index.html", map[string]string{"Authorization": "Bearer " + tok,
			"If-Modified-Since": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 304, "private", false},
		{"header directive before clerk", "hdr", "/", bearer(tok), 200, "private, max-age=60", false},
		{"deferred header directive after clerk in a route", "route", "/", bearer(tok), 200, "private, max-age=60", false},
		{"shared_cache allow", "allow", "/public", bearer(tok), 200, upstreamCC, true},
		{"optional, signed in", "opt", "/public", bearer(tok), 200, "private, max-age=600", false},
		{"optional, anonymous", "opt", "/public", nil, 200, upstreamCC, true},
		{"deferred header directive before clerk: the documented limit", "deferred", "/", bearer(tok), 200, "public, max-age=60", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do("GET", run.url(tc.site)+tc.path, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := strings.Join(resp.Header.Values("Cache-Control"), " | "); got != tc.want {
				t.Fatalf("Cache-Control %q, want %q", got, tc.want)
			}
			if cdn := resp.Header.Get("CDN-Cache-Control") != ""; cdn != tc.cdn {
				t.Fatalf("CDN-Cache-Control %q", resp.Header.Get("CDN-Cache-Control"))
			}
		})
	}

	t.Run("websocket", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", run.addr("proxy"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", run.addr("proxy"), tok)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		fmt.Fprintf(conn, "hello\n")
		if line, err := br.ReadString('\n'); err != nil || line != "echo hello\n" {
			t.Fatalf("echo %q %v", line, err)
		}
	})

	run.stop()
	logs, _ := os.ReadFile(logPath)
	if n := strings.Count(string(logs), "a response to an authenticated request left with a Cache-Control"); n != 1 {
		t.Fatalf("the deferred header directive was warned about %d times, want once:\n%s", n, logs)
	}
}

// TestSharedCacheSetting: the Caddyfile names the line, a JSON config gets
// the same check from Provision.
func TestSharedCacheSetting(t *testing.T) {
	const pk = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfileDispenser("clerk {\n publishable_key " + pk + "\n shared_cache allow\n}")); err != nil || h.SharedCache != "allow" {
		t.Fatalf("%v %q", err, h.SharedCache)
	}
	h = Handler{}
	err := h.UnmarshalCaddyfile(caddyfileDispenser("clerk {\n publishable_key " + pk + "\n shared_cache yes\n}"))
	if err == nil || !strings.Contains(err.Error(), `shared_cache takes allow`) || !strings.HasSuffix(err.Error(), "Testfile:3") {
		t.Fatalf("Caddyfile: %v", err)
	}
	if err := provisionErr(Handler{PublishableKey: pk, SharedCache: "public"}); err == nil || !strings.Contains(err.Error(), `not "public"`) {
		t.Fatalf("JSON: %v", err)
	}
}

func caddyfileDispenser(input string) *caddyfile.Dispenser { return caddyfile.NewTestDispenser(input) }

// provisionErr provisions h as a JSON config would be.
func provisionErr(h Handler) error {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	_ = h.Cleanup()
	return err
}

// BenchmarkMakePrivate is what fixing the header costs once per response:
// nothing when it is private already, one small allocation when there is
// none, a rebuilt value for an upstream's own.
func BenchmarkMakePrivate(b *testing.B) {
	for _, bc := range []struct {
		name string
		cc   []string
	}{{"none", nil}, {"private", []string{"private"}}, {"public upstream", []string{"public, max-age=600, s-maxage=3600"}}} {
		b.Run(bc.name, func(b *testing.B) {
			hdr := http.Header{}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if bc.cc == nil {
					delete(hdr, "Cache-Control")
				} else {
					hdr["Cache-Control"] = bc.cc
				}
				makePrivate(hdr, new([1]string))
				if !isPrivate(hdr) {
					b.Fatal(hdr)
				}
			}
		})
	}
}
