package authn

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// TestHeadersAsSent: the request tests read header fields from the map by
// their canonical names (field), not with Header.Get. A client may send any
// case (HTTP/2 sends lower case); the server's parser canonicalizes them,
// as it does here.
func TestHeadersAsSent(t *testing.T) {
	read := func(raw string) *http.Request {
		t.Helper()
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.ReplaceAll(raw, "\n", "\r\n") + "\r\n\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := HeaderToken(read("GET / HTTP/1.1\nhost: a.test\nauthorization: bearer  tok ")); got != "tok" {
		t.Errorf("HeaderToken = %q", got)
	}
	if !IsPreflight(read("OPTIONS / HTTP/1.1\nhost: a.test\norigin: https://b.test\naccess-control-request-method: POST")) {
		t.Error("a lower-case preflight is not one")
	}
	if !IsPageLoad(read("GET / HTTP/1.1\nhost: a.test\nsec-fetch-dest: document")) {
		t.Error("sec-fetch-dest: document is not a page load")
	}
	if IsPageLoad(read("GET / HTTP/1.1\nhost: a.test\nSEC-FETCH-DEST: image\naccept: text/html")) {
		t.Error("sec-fetch-dest: image is a page load")
	}
	if !IsPageLoad(read("GET / HTTP/1.1\nhost: a.test\naccept: text/html,*/*")) {
		t.Error("accept: text/html is not a page load")
	}
	a := &Authenticator{}
	for raw, want := range map[string]bool{
		"POST / HTTP/1.1\nhost: a.test\nsec-fetch-site: same-origin":                       true,
		"POST / HTTP/1.1\nhost: a.test\nsec-fetch-site: cross-site\norigin: http://a.test": false,
		"POST / HTTP/1.1\nhost: a.test\norigin: http://a.test":                             true,
		"POST / HTTP/1.1\nhost: a.test\nreferer: http://a.test/form":                       true,
		"POST / HTTP/1.1\nhost: a.test\nreferer: http://evil.test/form":                    false,
		"POST / HTTP/1.1\nhost: a.test":                                                    false,
	} {
		if got := a.SameOrigin(Request{HTTP: read(raw)}); got != want {
			t.Errorf("SameOrigin(%q) = %v, want %v", raw, got, want)
		}
	}
}
