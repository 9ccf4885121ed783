package authn

import (
	"net/http"
	"testing"
)

func TestStripCredentials(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Add("Cookie", "__session=a; a=1")
	r.Header.Add("Cookie", "__sessionx=keep; __refresh_abc=r;  ; __clerk_redirect_count=1; b=2")
	StripCredentials(r)
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "a=1; __sessionx=keep; b=2" {
		t.Fatalf("cookies %q", got)
	}
	if r.Header.Get("Authorization") != "" {
		t.Fatal("authorization kept")
	}
	r.Header.Set("Cookie", "__session=a")
	StripCredentials(r)
	if _, ok := r.Header["Cookie"]; ok {
		t.Fatal("empty Cookie header left behind")
	}
}

func TestOriginOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example/x?y": "https://a.example", "http://localhost:9080": "http://localhost:9080",
		"": "", "/relative": "", "null": "", "https://a.example:8443/": "https://a.example:8443",
	} {
		if got := OriginOf(in); got != want {
			t.Errorf("OriginOf(%q) = %q, want %q", in, got, want)
		}
	}
}
