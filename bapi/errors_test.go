package bapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
)

func TestErrorDecoding(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Clerk-Trace-Id", "trace-hdr")
		w.WriteHeader(422)
		_, _ = w.Write([]byte(`{"errors":[
			{"code":"form_param_invalid","message":"is invalid","long_message":"user_id is invalid","meta":{"param_name":"user_id"}},
			{"code":"form_param_missing","message":"missing","long_message":"Enter name.","meta":{}}],
			"clerk_trace_id":"trace-body"}`))
	})
	_, err := e.c.User(context.Background(), "user_1")
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %T %v", err, err)
	}
	if apiErr.Status != 422 || apiErr.Code != "form_param_invalid" || apiErr.Message != "is invalid" ||
		apiErr.LongMessage != "user_id is invalid" || apiErr.TraceID != "trace-hdr" || apiErr.Method != "GET" ||
		apiErr.Path != "/v1/users/user_1" || len(apiErr.Errors) != 2 || apiErr.RetryAfter != 0 {
		t.Fatalf("%+v", apiErr)
	}
	var meta map[string]string
	if json.Unmarshal(apiErr.Errors[0].Meta, &meta) != nil || meta["param_name"] != "user_id" ||
		apiErr.Errors[1].Code != "form_param_missing" || apiErr.Errors[1].LongMessage != "Enter name." {
		t.Fatalf("details %+v", apiErr.Errors)
	}
	if !apiErr.HasCode("form_param_missing") || apiErr.HasCode("clerk_key_invalid") || IsNotFound(err) {
		t.Fatal("codes")
	}
	if want := "clerk api: GET /v1/users/user_1: 422 form_param_invalid: user_id is invalid (trace trace-hdr)"; err.Error() != want {
		t.Fatalf("got  %q\nwant %q", err, want)
	}
	e.clean(err)
	e.wantHits(1)

	// Without the header, the body's trace id is used.
	e2 := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		writeClerkError(w, 403, "authorization_invalid", "Unauthorized", "")
	})
	_, err = e2.c.JWKS(context.Background())
	if err == nil || err.Error() != "clerk api: GET /v1/jwks: 403 authorization_invalid: Unauthorized (trace trace-body)" {
		t.Fatalf("got %v", err)
	}
}

func TestKeyInvalid(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Clerk-Trace-Id", "1234")
		const msg = "The provided Clerk Secret Key is invalid"
		writeClerkError(w, 401, "clerk_key_invalid", msg, msg)
	})
	_, err := e.c.JWKS(context.Background())
	if !IsKeyInvalid(err) || !IsKeyInvalid(fmt.Errorf("fetch: %w", err)) || IsNotFound(err) || IsRateLimited(err) {
		t.Fatalf("got %v", err)
	}
	if want := "clerk api: GET /v1/jwks: 401 clerk_key_invalid: The provided Clerk Secret Key is invalid (trace 1234)"; err.Error() != want {
		t.Fatalf("got %q", err)
	}
	e.clean(err)
	e.wantHits(1)
	e.wantWaits()
	if IsKeyInvalid(nil) || IsKeyInvalid(errors.New("clerk_key_invalid")) || IsNotFound(nil) || IsRateLimited(nil) {
		t.Fatal("helpers match non-API errors")
	}
	if IsKeyInvalid(&Error{Status: 401, Code: "authentication_invalid"}) {
		t.Fatal("other 401 codes are not a bad key")
	}
}

func TestNonJSONErrorBody(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		_, _ = w.Write([]byte("<html>\r\n<body>\x1b[31mBad\tGateway\x00\xff</body>" + strings.Repeat("y", 5000)))
	}, WithMaxAttempts(1))
	_, err := e.c.JWKS(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "" || len(apiErr.Errors) != 0 {
		t.Fatalf("got %v", err)
	}
	m := apiErr.Message
	if len(m) > maxSnippet || !strings.HasPrefix(m, "<html> <body> [31mBad Gateway \uFFFD</body>yyy") {
		t.Fatalf("message %q (%d bytes)", m, len(m))
	}
	for _, r := range err.Error() {
		if !unicode.IsPrint(r) {
			t.Fatalf("unprintable %q in %q", r, err)
		}
	}

	e2 := newEnv(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, WithMaxAttempts(1))
	_, err = e2.c.JWKS(context.Background())
	if err == nil || err.Error() != "clerk api: GET /v1/jwks: 503: Service Unavailable" {
		t.Fatalf("got %v", err)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"  a \n\t b  ":          "a b",
		"x\x00\x07y":            "x y",
		"é\xffz":                "é\uFFFDz",
		strings.Repeat("a", 50): strings.Repeat("a", 10),
		"aaaaaaaa\u00e9\u00e9":  "aaaaaaaa\u00e9",
		"aaaaaaaaa bbbb":        "aaaaaaaaa",
	} {
		if got := sanitize(in, 10); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// A hostile or broken server echoing the request back must not put the key
// or the nonce into an error.
func TestEchoedSecretsRedacted(t *testing.T) {
	nonce := "nonce_Qw8Er5Ty2Ui9"
	echo := func(w http.ResponseWriter, r *http.Request) {
		auth, q := r.Header.Get("Authorization"), r.URL.RawQuery
		w.Header().Set("Clerk-Trace-Id", auth)
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
			"code": "echo_" + auth, "message": auth + " " + q, "long_message": "key " + auth + " nonce " + nonce,
			"meta": map[string]any{"authorization": auth, "nonce": nonce},
		}}})
	}
	e := newEnv(t, sequence(echo, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = fmt.Fprintf(w, "%s %s %s", strings.Repeat("p", 190), r.Header.Get("Authorization"), r.URL.RawQuery)
	}))
	e.sensitive = append(e.sensitive, nonce)
	for range 2 {
		_, err := e.c.HandshakePayload(context.Background(), nonce)
		var apiErr *Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("got %v", err)
		}
		e.clean(err)
		dump := fmt.Sprintf("%+v %s", *apiErr, apiErr.Errors)
		for _, d := range apiErr.Errors {
			dump += string(d.Meta)
		}
		for _, bad := range e.forbidden() {
			if strings.Contains(dump, bad) {
				t.Fatalf("%q in %s", bad, dump)
			}
		}
	}
}

func TestOversizedBody(t *testing.T) {
	var written atomic.Int64
	endless := func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat(`{"keys":[`, 7282)) // ~64 KiB
		for written.Load() < 64<<20 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
	e := newEnv(t, endless)
	_, err := e.c.JWKS(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exceeds 1048576 bytes") {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	e.wantHits(1) // not retried: the next answer would be as big
	e.wantWaits()
	e.srv.CloseClientConnections()
	if w := written.Load(); w >= 64<<20 {
		t.Fatalf("server wrote %d bytes: the client read it all", w)
	}

	// An oversized error body still gives a short *Error.
	e2 := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(strings.Repeat("z", 3<<20)))
	})
	_, err = e2.c.JWKS(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || len(apiErr.Message) != maxSnippet {
		t.Fatalf("got %d-byte message", len(apiErr.Message))
	}
}

// Retries of every kind are logged at debug level with structured fields,
// and no log line or error holds the key or the nonce.
func TestRetryLogsAndSecrets(t *testing.T) {
	nonce := "nonce+Zx1/Cv3=Bn6"
	// The hang-up comes first: on a reused connection net/http would retry
	// it transparently and the count would be off by one.
	e := newEnv(t, sequence(
		hangUp,
		rateLimited("1"),
		status(503),
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Clerk-Trace-Id", "trace-401")
			writeClerkError(w, 401, "clerk_key_invalid", "Invalid key", "The provided Clerk Secret Key is invalid")
		},
	), WithMaxAttempts(5))
	e.sensitive = append(e.sensitive, nonce, url.QueryEscape(nonce))
	_, err := e.c.HandshakePayload(context.Background(), nonce)
	if !IsKeyInvalid(err) {
		t.Fatalf("got %v", err)
	}
	e.clean(err)
	e.wantHits(4)
	e.wantWaits(200*time.Millisecond, time.Second, 800*time.Millisecond)

	entries := e.logs.All()
	if len(entries) != 3 {
		t.Fatalf("%d log entries", len(entries))
	}
	want := []struct {
		status  int64
		trace   string
		wait    time.Duration
		attempt int64
	}{{0, "", 200 * time.Millisecond, 1}, {429, "trace-429", time.Second, 2}, {503, "trace-503", 800 * time.Millisecond, 3}}
	for i, entry := range entries {
		m := entry.ContextMap()
		if entry.Level.String() != "debug" || m["method"] != "GET" || m["path"] != "/v1/clients/handshake_payload" ||
			m["status"] != want[i].status || m["trace_id"] != want[i].trace || m["wait"] != want[i].wait ||
			m["attempt"] != want[i].attempt {
			t.Errorf("entry %d: %s %v", i, entry.Level, m)
		}
	}
	// checkLogs (at cleanup) scans every entry for the key and the nonce.
}
