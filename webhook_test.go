package caddyclerk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
)

// Every signature in these tests is made by the Svix library's own Sign,
// the function Svix's servers use: what passes here passes Clerk's
// deliveries, and what fails would fail them.

// newWebhookSecret is a fresh signing secret shaped as Svix makes them
// (whsec_ and 24 random bytes in base64). A fresh one per test keeps the
// shared replay sets apart.
func newWebhookSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// svixSign is the svix-signature value the Svix library produces.
func svixSign(t testing.TB, secret, id string, ts time.Time, body []byte) string {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// testDelivery is one Clerk webhook delivery.
type testDelivery struct {
	id   string
	ts   time.Time
	body []byte
	sig  string
}

const userCreated = `{"data":{"id":"user_2abc","email_addresses":[{"email_address":"ada@example.com"}],` +
	`"first_name":"Ada \u00e9","public_metadata":{}},"event_attributes":{"http_request":{"client_ip":"192.0.2.1"}},` +
	`"object":"event","timestamp":1716883931431,"type":"user.created"}` + "\n"

func newDelivery(t testing.TB, secret string, body string, ts time.Time) testDelivery {
	t.Helper()
	d := testDelivery{id: "msg_" + randomText(27), ts: ts, body: []byte(body)}
	d.sig = svixSign(t, secret, d.id, ts, d.body)
	return d
}

func (d testDelivery) header() http.Header {
	return http.Header{
		"Svix-Id":        {d.id},
		"Svix-Timestamp": {strconv.FormatInt(d.ts.Unix(), 10)},
		"Svix-Signature": {d.sig},
		"Content-Type":   {"application/json"},
	}
}

func (d testDelivery) request() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/clerk", bytes.NewReader(d.body))
	r.Header = d.header()
	return r
}

func mustWebhook(t *testing.T, h *WebhookHandler) *WebhookHandler {
	t.Helper()
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	return h
}

// webhookResult is what one request through the handler did.
type webhookResult struct {
	err           error
	status        int // the error's status, else the response's
	reason        string
	called        bool // downstream ran
	body          []byte
	contentLength int64
	chunked       bool
	ph            map[string]string // the webhook placeholders downstream saw (or after a refusal)
}

var webhookPlaceholders = []string{placeholderWebhookID, placeholderWebhookType, placeholderWebhookTimestamp}

func serveWebhook(h *WebhookHandler, r *http.Request, downstream caddyhttp.HandlerFunc) webhookResult {
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	var res webhookResult
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, k := range webhookPlaceholders {
			v, known := repl.GetString(k)
			if !known {
				v = "<unknown>"
			}
			m[k] = v
		}
		return m
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.called = true
		res.body, _ = io.ReadAll(r.Body)
		res.contentLength, res.chunked = r.ContentLength, len(r.TransferEncoding) > 0
		res.ph = snapshot()
		if downstream != nil {
			return downstream(w, r)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	rec := httptest.NewRecorder()
	res.err = h.ServeHTTP(rec, r, next)
	res.status = rec.Code
	var he caddyhttp.HandlerError
	if errors.As(res.err, &he) {
		res.status = he.StatusCode
	}
	res.reason, _ = repl.GetString("clerk.reason")
	if !res.called {
		res.ph = snapshot()
	}
	return res
}

// wantRefused checks a refusal: status, reason, downstream never reached,
// placeholders known and empty.
func (res webhookResult) wantRefused(t *testing.T, status int, reason string) {
	t.Helper()
	if res.called || res.status != status || res.reason != reason {
		t.Fatalf("got status %d reason %q (downstream called: %v, err %v), want %d %q",
			res.status, res.reason, res.called, res.err, status, reason)
	}
	for k, v := range res.ph {
		if v != "" {
			t.Errorf("{%s} = %q after a refusal, want empty", k, v)
		}
	}
}

func (res webhookResult) wantPassed(t *testing.T, d testDelivery) {
	t.Helper()
	if !res.called || res.err != nil || res.reason != "" {
		t.Fatalf("not passed: status %d reason %q err %v", res.status, res.reason, res.err)
	}
	if !bytes.Equal(res.body, d.body) || res.contentLength != int64(len(d.body)) || res.chunked {
		t.Fatalf("downstream body %q (Content-Length %d, chunked %v), want the %d bytes sent", res.body,
			res.contentLength, res.chunked, len(d.body))
	}
	if res.ph[placeholderWebhookID] != d.id || res.ph[placeholderWebhookTimestamp] != strconv.FormatInt(d.ts.Unix(), 10) {
		t.Fatalf("placeholders %v for delivery %s at %d", res.ph, d.id, d.ts.Unix())
	}
}

func TestWebhookVerification(t *testing.T) {
	secret := newWebhookSecret(t)
	h := mustWebhook(t, &WebhookHandler{Secrets: []string{secret}})
	now := time.Now()
	tol := defaultWebhookTolerance

	t.Run("valid delivery passes with body and placeholders", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		res := serveWebhook(h, d.request(), nil)
		res.wantPassed(t, d)
		if res.ph[placeholderWebhookType] != "user.created" {
			t.Fatalf("{clerk.webhook.type} = %q", res.ph[placeholderWebhookType])
		}
		if res.status != http.StatusNoContent {
			t.Fatalf("status %d", res.status)
		}
	})
	t.Run("chunked body: downstream gets it with a Content-Length", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		r.ContentLength, r.Body = -1, io.NopCloser(iotestOneByte(d.body))
		r.TransferEncoding = []string{"chunked"}
		serveWebhook(h, r, nil).wantPassed(t, d)
	})
	t.Run("empty body, signed", func(t *testing.T) {
		d := newDelivery(t, secret, "", now)
		res := serveWebhook(h, d.request(), nil)
		res.wantPassed(t, d)
	})
	t.Run("several signatures, one valid", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		other := newWebhookSecret(t)
		r := d.request()
		r.Header.Set("Svix-Signature", strings.Join([]string{
			svixSign(t, other, d.id, d.ts, d.body), "v1a,AAAA", "v2," + strings.TrimPrefix(d.sig, "v1,"), "garbage", "v1,", d.sig,
			svixSign(t, newWebhookSecret(t), d.id, d.ts, d.body),
		}, " "))
		serveWebhook(h, r, nil).wantPassed(t, d)
	})
	t.Run("a valid signature under another version is not v1", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		r.Header.Set("Svix-Signature", "v2,"+strings.TrimPrefix(d.sig, "v1,"))
		serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
	})
	t.Run("altered body", func(t *testing.T) {
		for name, body := range map[string]string{
			"type changed":      strings.Replace(userCreated, "user.created", "user.deleted", 1),
			"trailing newline":  userCreated + "\n",
			"one byte less":     userCreated[:len(userCreated)-1],
			"reformatted JSON":  strings.ReplaceAll(userCreated, ":", ": "),
			"empty":             "",
			"other id's body":   `{"type":"user.created"}`,
			"same bytes, no LF": strings.TrimSuffix(userCreated, "\n"),
		} {
			t.Run(name, func(t *testing.T) {
				d := newDelivery(t, secret, userCreated, now)
				r := d.request()
				r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
				serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
			})
		}
	})
	t.Run("signed for another svix-id or timestamp", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		r.Header.Set("Svix-Id", d.id+"x")
		serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
		r = d.request()
		r.Header.Set("Svix-Timestamp", strconv.FormatInt(d.ts.Unix()+1, 10))
		serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
	})
	t.Run("wrong secret", func(t *testing.T) {
		d := newDelivery(t, newWebhookSecret(t), userCreated, now)
		serveWebhook(h, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
	})
	t.Run("timestamps", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			ts    time.Time
			valid bool
		}{
			{"a second old", now.Add(-time.Second), true},
			{"just within the past tolerance", now.Add(-tol + 5*time.Second), true},
			{"just within the future tolerance", now.Add(tol - 5*time.Second), true},
			{"past the tolerance", now.Add(-tol - 2*time.Second), false},
			{"ahead of the tolerance", now.Add(tol + 2*time.Second), false},
			{"a day old", now.Add(-24 * time.Hour), false},
			{"the epoch", time.Unix(0, 0), false},
			{"year 3000", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := newDelivery(t, secret, userCreated, tc.ts)
				res := serveWebhook(h, d.request(), nil)
				if tc.valid {
					res.wantPassed(t, d)
				} else {
					res.wantRefused(t, 401, string(authn.ReasonWebhookTimestamp))
				}
			})
		}
	})
	t.Run("a shorter tolerance", func(t *testing.T) {
		s := newWebhookSecret(t)
		short := mustWebhook(t, &WebhookHandler{Secrets: []string{s}, Tolerance: caddy.Duration(time.Minute)})
		d := newDelivery(t, s, userCreated, now.Add(-2*time.Minute))
		serveWebhook(short, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookTimestamp))
		d = newDelivery(t, s, userCreated, now.Add(-30*time.Second))
		serveWebhook(short, d.request(), nil).wantPassed(t, d)
	})
	t.Run("missing headers", func(t *testing.T) {
		for _, drop := range [][]string{{"Svix-Id"}, {"Svix-Timestamp"}, {"Svix-Signature"}, {"Svix-Id", "Svix-Timestamp", "Svix-Signature"}} {
			t.Run(strings.Join(drop, "+"), func(t *testing.T) {
				d := newDelivery(t, secret, userCreated, now)
				r := d.request()
				for _, k := range drop {
					r.Header.Del(k)
				}
				serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookHeadersMissing))
				r = d.request()
				r.Header.Set(drop[0], "")
				serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookHeadersMissing))
			})
		}
	})
	t.Run("unbranded webhook-* headers are not read", func(t *testing.T) {
		// The Svix library falls back to them; this handler checks svix-* only.
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		for _, k := range []string{"Id", "Timestamp", "Signature"} {
			r.Header.Set("Webhook-"+k, r.Header.Get("Svix-"+k))
		}
		r.Header.Del("Svix-Id")
		serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookHeadersMissing))
	})
	t.Run("malformed headers", func(t *testing.T) {
		for _, tc := range []struct{ name, header, value string }{
			{"timestamp with a sign", "Svix-Timestamp", "+" + strconv.FormatInt(now.Unix(), 10)},
			{"negative timestamp", "Svix-Timestamp", "-5"},
			{"timestamp in milliseconds", "Svix-Timestamp", strconv.FormatInt(now.UnixMilli()*10, 10)},
			{"fractional timestamp", "Svix-Timestamp", strconv.FormatInt(now.Unix(), 10) + ".5"},
			{"exponent", "Svix-Timestamp", "1.7e9"},
			{"timestamp with spaces", "Svix-Timestamp", " " + strconv.FormatInt(now.Unix(), 10)},
			{"words", "Svix-Timestamp", "now"},
			{"id with a space", "Svix-Id", "msg_a b"},
			{"id with a control character", "Svix-Id", "msg_a\x01b"},
			{"id with non-ASCII", "Svix-Id", "msg_é"},
			{"id too long", "Svix-Id", "msg_" + strings.Repeat("a", maxSvixIDLen)},
			{"huge signature header", "Svix-Signature", strings.Repeat("v1,AAAA ", maxSvixSignatureLen/8+1)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := newDelivery(t, secret, userCreated, now)
				r := d.request()
				r.Header[tc.header] = []string{tc.value}
				serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookHeadersMalformed))
			})
		}
		for _, k := range []string{"Svix-Id", "Svix-Timestamp", "Svix-Signature"} {
			t.Run("two "+k+" headers", func(t *testing.T) {
				d := newDelivery(t, secret, userCreated, now)
				r := d.request()
				r.Header[k] = append(r.Header[k], r.Header.Get(k))
				serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookHeadersMalformed))
			})
		}
		for _, sig := range []string{"v1", "v1,", ",", "v1,!!!", "garbage", "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))} {
			d := newDelivery(t, secret, userCreated, now)
			r := d.request()
			r.Header.Set("Svix-Signature", sig)
			serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
		}
	})
	t.Run("unreadable body", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(d.body[:10]), errReader{}))
		serveWebhook(h, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookUnreadable))
	})
	t.Run("no Svix headers: placeholders known and empty", func(t *testing.T) {
		// Unknown placeholders would be forwarded literally by header_up;
		// these are always known, empty until verified.
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
		res := serveWebhook(h, r, nil)
		res.wantRefused(t, 401, string(authn.ReasonWebhookHeadersMissing))
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// iotestOneByte reads b one byte at a time, as a slow chunked client sends.
func iotestOneByte(b []byte) io.Reader { return &oneByte{b} }

type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], o.b = o.b[0], o.b[1:]
	return 1, nil
}

// countingReader produces n bytes of a JSON-looking body and counts what was
// read from it.
type countingReader struct {
	n, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	for i := range p[:k] {
		p[i] = 'a'
	}
	c.read += k
	return int(k), nil
}

func TestWebhookBodyLimit(t *testing.T) {
	secret := newWebhookSecret(t)
	h := mustWebhook(t, &WebhookHandler{Secrets: []string{secret}, MaxBody: 1000})
	now := time.Now()

	t.Run("at the limit passes", func(t *testing.T) {
		body := `{"type":"user.updated","pad":"` + strings.Repeat("x", 1000-len(`{"type":"user.updated","pad":""}`)) + `"}`
		d := newDelivery(t, secret, body, now)
		serveWebhook(h, d.request(), nil).wantPassed(t, d)
	})
	t.Run("declared too large: refused unread", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		body := &countingReader{n: 100 << 20}
		r.Body, r.ContentLength = io.NopCloser(body), body.n
		serveWebhook(h, r, nil).wantRefused(t, 413, string(authn.ReasonWebhookTooLarge))
		if body.read != 0 {
			t.Fatalf("read %d bytes of a body declared too large", body.read)
		}
	})
	t.Run("chunked, 100 MB: stops one byte past the limit", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, now)
		r := d.request()
		body := &countingReader{n: 100 << 20}
		r.Body, r.ContentLength = io.NopCloser(body), -1
		serveWebhook(h, r, nil).wantRefused(t, 413, string(authn.ReasonWebhookTooLarge))
		if body.read > 1001+32<<10 {
			t.Fatalf("read %d bytes with max_body 1000", body.read)
		}
	})
	t.Run("the default is 1 MiB", func(t *testing.T) {
		s := newWebhookSecret(t)
		def := mustWebhook(t, &WebhookHandler{Secrets: []string{s}})
		big := `{"type":"user.updated","pad":"` + strings.Repeat("x", 1<<20) + `"}`
		d := newDelivery(t, s, big, now)
		serveWebhook(def, d.request(), nil).wantRefused(t, 413, string(authn.ReasonWebhookTooLarge))
		d = newDelivery(t, s, big[:1<<19]+`"}`, now)
		serveWebhook(def, d.request(), nil).wantPassed(t, d)
	})
}

func TestWebhookRotation(t *testing.T) {
	oldSecret, newSecret := newWebhookSecret(t), newWebhookSecret(t)
	t.Setenv("CADDY_CLERK_TEST_WEBHOOK_SECRETS", newSecret+" "+newWebhookSecret(t))
	for name, secrets := range map[string][]string{
		"two lines":              {oldSecret, newSecret},
		"one placeholder, two":   {oldSecret, "{env.CADDY_CLERK_TEST_WEBHOOK_SECRETS}"},
		"duplicates are ignored": {oldSecret, newSecret, oldSecret},
	} {
		t.Run(name, func(t *testing.T) {
			h := mustWebhook(t, &WebhookHandler{Secrets: secrets})
			for _, s := range []string{oldSecret, newSecret} {
				d := newDelivery(t, s, userCreated, time.Now())
				serveWebhook(h, d.request(), nil).wantPassed(t, d)
			}
			// During a rotation Svix signs with both secrets.
			d := newDelivery(t, oldSecret, userCreated, time.Now())
			r := d.request()
			r.Header.Set("Svix-Signature", svixSign(t, newSecret, d.id, d.ts, d.body)+" "+d.sig)
			serveWebhook(h, r, nil).wantPassed(t, d)
			d = newDelivery(t, newWebhookSecret(t), userCreated, time.Now())
			serveWebhook(h, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
		})
	}
}

func TestWebhookReplay(t *testing.T) {
	secret := newWebhookSecret(t)
	h := mustWebhook(t, &WebhookHandler{Secrets: []string{secret}})

	t.Run("a delivered svix-id is refused", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, time.Now())
		serveWebhook(h, d.request(), nil).wantPassed(t, d)
		serveWebhook(h, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
		// Re-signed with a fresh timestamp (a Svix retry after a success
		// whose answer was lost): still the same message.
		d2 := d
		d2.ts = time.Now().Add(time.Second)
		d2.sig = svixSign(t, secret, d2.id, d2.ts, d2.body)
		serveWebhook(h, d2.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
	})
	t.Run("another handler with the secret shares the set", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, time.Now())
		serveWebhook(h, d.request(), nil).wantPassed(t, d)
		other := mustWebhook(t, &WebhookHandler{Secrets: []string{newWebhookSecret(t), secret}, Tolerance: caddy.Duration(time.Minute)})
		serveWebhook(other, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
	})
	t.Run("a rotation keeps the set of the secret that stays", func(t *testing.T) {
		next := newWebhookSecret(t)
		both := mustWebhook(t, &WebhookHandler{Secrets: []string{secret, next}})
		d := newDelivery(t, secret, userCreated, time.Now())
		r := d.request()
		r.Header.Set("Svix-Signature", d.sig+" "+svixSign(t, next, d.id, d.ts, d.body))
		serveWebhook(both, r, nil).wantPassed(t, d)
		onlyNext := mustWebhook(t, &WebhookHandler{Secrets: []string{next}})
		r = d.request()
		r.Header.Set("Svix-Signature", d.sig+" "+svixSign(t, next, d.id, d.ts, d.body))
		serveWebhook(onlyNext, r, nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
	})
	t.Run("a failed delivery can be retried", func(t *testing.T) {
		for name, downstream := range map[string]caddyhttp.HandlerFunc{
			"500 from upstream": func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(http.StatusInternalServerError)
				return nil
			},
			"upstream unreachable": func(w http.ResponseWriter, r *http.Request) error {
				return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused"))
			},
			"a redirect": func(w http.ResponseWriter, r *http.Request) error {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
				return nil
			},
		} {
			t.Run(name, func(t *testing.T) {
				d := newDelivery(t, secret, userCreated, time.Now())
				if res := serveWebhook(h, d.request(), downstream); !res.called {
					t.Fatalf("first attempt not passed: %d %q", res.status, res.reason)
				}
				d.ts = time.Now()
				d.sig = svixSign(t, secret, d.id, d.ts, d.body)
				serveWebhook(h, d.request(), nil).wantPassed(t, d)
				serveWebhook(h, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
			})
		}
	})
	t.Run("a replay while the first is in flight is refused", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, time.Now())
		entered, release := make(chan struct{}), make(chan struct{})
		done := make(chan webhookResult)
		go func() {
			done <- serveWebhook(h, d.request(), func(w http.ResponseWriter, r *http.Request) error {
				close(entered)
				<-release
				return nil
			})
		}()
		<-entered
		serveWebhook(h, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
		close(release)
		if res := <-done; !res.called || res.err != nil {
			t.Fatalf("first: %+v", res)
		}
		serveWebhook(h, d.request(), nil).wantRefused(t, 401, string(authn.ReasonWebhookReplayed))
	})
	t.Run("many at once: exactly one passes", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, time.Now())
		var passed, replayed atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				res := serveWebhook(h, d.request(), nil)
				switch {
				case res.called:
					passed.Add(1)
				case res.reason == string(authn.ReasonWebhookReplayed):
					replayed.Add(1)
				}
			})
		}
		wg.Wait()
		if passed.Load() != 1 || replayed.Load() != 31 {
			t.Fatalf("%d passed, %d replayed", passed.Load(), replayed.Load())
		}
	})
	t.Run("a forged request does not burn a svix-id", func(t *testing.T) {
		d := newDelivery(t, secret, userCreated, time.Now())
		forged := d.request()
		forged.Header.Set("Svix-Signature", svixSign(t, newWebhookSecret(t), d.id, d.ts, d.body))
		serveWebhook(h, forged, nil).wantRefused(t, 401, string(authn.ReasonWebhookSignature))
		serveWebhook(h, d.request(), nil).wantPassed(t, d)
	})
}

func TestReplaySet(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	mk := func(limit int) *WebhookHandler { return &WebhookHandler{replay: []*replaySet{newReplaySet(limit)}} }

	t.Run("remembered until the timestamp leaves the tolerance", func(t *testing.T) {
		h := mk(10)
		c, ok := h.claim("msg_1", now.Add(5*time.Minute), now)
		if !ok {
			t.Fatal("first claim refused")
		}
		h.settle(c, true)
		if _, ok := h.claim("msg_1", now.Add(5*time.Minute), now.Add(4*time.Minute)); ok {
			t.Fatal("replay within the window accepted")
		}
		if _, ok := h.claim("msg_1", now.Add(10*time.Minute), now.Add(5*time.Minute)); !ok {
			t.Fatal("claim after the window refused")
		}
	})
	t.Run("a refused replay keeps the entry as long as it is acceptable", func(t *testing.T) {
		h := mk(10)
		c, _ := h.claim("msg_2", now.Add(5*time.Minute), now)
		h.settle(c, true)
		// A retry signed a minute later stays acceptable a minute longer.
		if _, ok := h.claim("msg_2", now.Add(6*time.Minute), now.Add(time.Minute)); ok {
			t.Fatal("replay accepted")
		}
		if _, ok := h.claim("msg_2", now.Add(6*time.Minute), now.Add(5*time.Minute+30*time.Second)); ok {
			t.Fatal("the retry's replay accepted after the first timestamp's window")
		}
	})
	t.Run("withdrawn on failure, unless already taken over", func(t *testing.T) {
		h := mk(10)
		c, _ := h.claim("msg_3", now.Add(5*time.Minute), now)
		h.settle(c, false)
		c2, ok := h.claim("msg_3", now.Add(5*time.Minute), now)
		if !ok {
			t.Fatal("retry after a failure refused")
		}
		h.settle(c, false) // a stale claim must not remove the new one
		if _, ok := h.claim("msg_3", now.Add(5*time.Minute), now); ok {
			t.Fatal("stale settle removed the live claim")
		}
		h.settle(c2, true)
	})
	t.Run("bounded: the entry expiring first goes", func(t *testing.T) {
		h := mk(100)
		s := h.replay[0]
		for i := range 1000 {
			c, ok := h.claim(fmt.Sprintf("msg_%d", i), now.Add(time.Duration(i)*time.Second+time.Hour), now)
			if !ok {
				t.Fatalf("claim %d refused", i)
			}
			h.settle(c, true)
			if len(s.ids) > 100 {
				t.Fatalf("%d entries with a limit of 100", len(s.ids))
			}
		}
		if _, ok := h.claim("msg_999", now.Add(time.Hour), now); ok {
			t.Fatal("the newest entry was evicted")
		}
		if _, ok := h.claim("msg_0", now.Add(time.Hour), now); !ok {
			t.Fatal("the oldest entry was kept over the limit")
		}
	})
	t.Run("expired entries are swept", func(t *testing.T) {
		h := mk(100_000)
		s := h.replay[0]
		for i := range 10_000 {
			at := now.Add(time.Duration(i) * time.Millisecond)
			c, _ := h.claim(fmt.Sprintf("msg_%d", i), at.Add(time.Second), at)
			h.settle(c, true)
		}
		if len(s.ids) > 2_500 {
			t.Fatalf("%d entries kept, most of them long expired", len(s.ids))
		}
	})
}

func TestWebhookPlaceholderType(t *testing.T) {
	for body, want := range map[string]string{
		`{"type":"user.created"}`:                           "user.created",
		`{"data":{"type":"nested"},"type":"session.ended"}`: "session.ended",
		`{"type":"a\r\nX-Evil: 1"}`:                         "aX-Evil: 1",
		`{"type":"user.created","type":"user.deleted"}`:     "", // which one would the upstream read?
		`{"data":{"type":"user.created"}}`:                  "",
		`{"type":1}`:                                        "",
		`{"type":null}`:                                     "",
		`{"Type":"user.created"}`:                           "",
		`["type","user.created"]`:                           "",
		`not json`:                                          "",
		``:                                                  "",
		`{"type":"user.created"`:                            "",
		`{"type":"user.created"}{"type":"x"}`:               "",
		`{"type":"user.created"} `:                          "user.created",
		`{"type":"` + strings.Repeat("x", 300) + `"}`:       strings.Repeat("x", maxWebhookTypeLen),
	} {
		if got := webhookType([]byte(body)); got != want {
			t.Errorf("webhookType(%.40q) = %q, want %q", body, got, want)
		}
	}
}

func TestWebhookCaddyfile(t *testing.T) {
	s1, s2 := newWebhookSecret(t), newWebhookSecret(t)
	cases := []struct {
		name, input string
		want        WebhookHandler
		wantErr     string
		line        int
	}{
		{name: "placeholder", input: "clerk_webhook {\n secret {env.CLERK_WEBHOOK_SECRET}\n}",
			want: WebhookHandler{Secrets: []string{"{env.CLERK_WEBHOOK_SECRET}"}}},
		{name: "everything", input: "clerk_webhook {\n secret " + s1 + "\n secret " + s2 + "\n tolerance 2m\n max_body 512KB\n}",
			want: WebhookHandler{Secrets: []string{s1, s2}, Tolerance: caddy.Duration(2 * time.Minute), MaxBody: 512_000}},
		{name: "sizes the Caddy way", input: "clerk_webhook {\n secret {env.S}\n max_body 2MiB\n}",
			want: WebhookHandler{Secrets: []string{"{env.S}"}, MaxBody: 2 << 20}},
		{name: "bare bytes", input: "clerk_webhook {\n secret {env.S}\n max_body 65536\n}",
			want: WebhookHandler{Secrets: []string{"{env.S}"}, MaxBody: 65536}},
		{name: "no secret", input: "clerk_webhook {\n tolerance 5m\n}", wantErr: "clerk_webhook needs a secret"},
		{name: "empty", input: "clerk_webhook", wantErr: "clerk_webhook needs a secret"},
		{name: "argument", input: "clerk_webhook " + s1, wantErr: "takes no arguments on its line", line: 1},
		{name: "not whsec_", input: "clerk_webhook {\n secret abc\n}", wantErr: "secret does not start with whsec_", line: 2},
		{name: "a Clerk secret key", input: "clerk_webhook {\n secret sk_live_abcdef\n}", wantErr: "is a Clerk secret key (sk_…)", line: 2},
		{name: "cut short", input: "clerk_webhook {\n secret " + s1[:20] + "\n}", wantErr: "32 to 100 base64 characters", line: 2},
		{name: "not base64", input: "clerk_webhook {\n secret whsec_" + strings.Repeat("A", 33) + "\n}", wantErr: "not valid base64", line: 2},
		{name: "two on a line", input: "clerk_webhook {\n secret " + s1 + " " + s2 + "\n}", wantErr: "its own secret line", line: 2},
		{name: "secret without value", input: "clerk_webhook {\n secret\n}", wantErr: "secret takes one value, got 0", line: 2},
		{name: "bad tolerance", input: "clerk_webhook {\n secret {env.S}\n tolerance soon\n}", wantErr: `tolerance "soon" is not a positive duration such as 5m`, line: 3},
		{name: "zero tolerance", input: "clerk_webhook {\n secret {env.S}\n tolerance 0s\n}", wantErr: "not a positive duration", line: 3},
		{name: "negative tolerance", input: "clerk_webhook {\n secret {env.S}\n tolerance -5m\n}", wantErr: "not a positive duration", line: 3},
		{name: "huge tolerance", input: "clerk_webhook {\n secret {env.S}\n tolerance 24h\n}", wantErr: "tolerance 24h0m0s is over 1h0m0s", line: 3},
		{name: "tolerance twice", input: "clerk_webhook {\n secret {env.S}\n tolerance 5m\n tolerance 6m\n}", wantErr: "tolerance is set twice", line: 4},
		{name: "max_body zero", input: "clerk_webhook {\n secret {env.S}\n max_body 0\n}", wantErr: "max_body must be more than 0 bytes", line: 3},
		{name: "max_body words", input: "clerk_webhook {\n secret {env.S}\n max_body large\n}", wantErr: `max_body "large" is not a size such as 1MiB`, line: 3},
		{name: "max_body negative", input: "clerk_webhook {\n secret {env.S}\n max_body -1\n}", wantErr: "is not a size", line: 3},
		{name: "max_body huge", input: "clerk_webhook {\n secret {env.S}\n max_body 1GiB\n}", wantErr: "max_body 1.0 GiB is over 16MiB", line: 3},
		{name: "max_body two values", input: "clerk_webhook {\n secret {env.S}\n max_body 1 MiB\n}", wantErr: "max_body takes one value, got 2", line: 3},
		{name: "unknown", input: "clerk_webhook {\n secret {env.S}\n signing_secret x\n}", wantErr: `unrecognized subdirective "signing_secret"`, line: 3},
		{name: "sub block", input: "clerk_webhook {\n secret {env.S} {\n x\n }\n}", wantErr: "secret does not take a block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h WebhookHandler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				if tc.line > 0 && !strings.HasSuffix(err.Error(), fmt.Sprintf("at Testfile:%d", tc.line)) {
					t.Fatalf("error does not name line %d: %v", tc.line, err)
				}
				for _, s := range []string{s1, s2, s1[:20], strings.TrimPrefix(s1, "whsec_")} {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("the error shows the secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestWebhookAdapt: the directive adapts without an order line, into the
// JSON the handler reads.
func TestWebhookAdapt(t *testing.T) {
	caddytest.AssertAdapt(t, `:8080 {
	clerk_webhook /webhooks/clerk {
		secret {env.CLERK_WEBHOOK_SECRET}
		tolerance 3m
		max_body 64KiB
	}
	respond "{clerk.webhook.type}"
}
`, "caddyfile", `{
	"apps": {
		"http": {
			"servers": {
				"srv0": {
					"listen": [
						":8080"
					],
					"routes": [
						{
							"match": [
								{
									"path": [
										"/webhooks/clerk"
									]
								}
							],
							"handle": [
								{
									"handler": "clerk_webhook",
									"max_body": 65536,
									"secrets": [
										"{env.CLERK_WEBHOOK_SECRET}"
									],
									"tolerance": 180000000000
								}
							]
						},
						{
							"handle": [
								{
									"body": "{clerk.webhook.type}",
									"handler": "static_response"
								}
							]
						}
					]
				}
			}
		}
	}
}`)
}

func TestWebhookConfigErrors(t *testing.T) {
	good := newWebhookSecret(t)
	t.Setenv("CADDY_CLERK_TEST_EMPTY", "")
	t.Setenv("CADDY_CLERK_TEST_SK", "sk_live_"+randomText(40))
	for _, tc := range []struct{ name, json, wantErr string }{
		{"no secrets", `{}`, "no secret: set secrets (Caddyfile: secret {env.CLERK_WEBHOOK_SECRET})"},
		{"empty list", `{"secrets":[]}`, "no secret"},
		{"empty env", `{"secrets":["{env.CADDY_CLERK_TEST_EMPTY}"]}`, "secrets[0] ({env.CADDY_CLERK_TEST_EMPTY}) is empty (is the environment variable or file set?)"},
		{"unset env", `{"secrets":["` + good + `","{env.CADDY_CLERK_TEST_UNSET_X}"]}`, "secrets[1] ({env.CADDY_CLERK_TEST_UNSET_X}) is empty"},
		{"blank", `{"secrets":["  "]}`, "secrets[0] is empty: set it to the endpoint's Signing Secret"},
		{"secret key in env", `{"secrets":["{env.CADDY_CLERK_TEST_SK}"]}`, "secrets[0] ({env.CADDY_CLERK_TEST_SK}) is a Clerk secret key (sk_…)"},
		{"not whsec_", `{"secrets":["` + strings.TrimPrefix(good, "whsec_") + `"]}`, "secrets[0] does not start with whsec_"},
		{"too short", `{"secrets":["whsec_abcd"]}`, "32 to 100 base64 characters"},
		{"bad base64", `{"secrets":["whsec_` + strings.Repeat("A", 33) + `"]}`, "not valid base64"},
		{"negative tolerance", `{"secrets":["` + good + `"],"tolerance":"-1m"}`, "tolerance -1m0s is negative"},
		{"huge tolerance", `{"secrets":["` + good + `"],"tolerance":"2h"}`, "tolerance 2h0m0s is over 1h0m0s"},
		{"negative max_body", `{"secrets":["` + good + `"],"max_body":-1}`, "max_body -1 is negative"},
		{"huge max_body", `{"secrets":["` + good + `"],"max_body":33554432}`, "max_body 33554432 is over 16777216 (16 MiB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h WebhookHandler
			if err := json.Unmarshal([]byte(tc.json), &h); err != nil {
				t.Fatal(err)
			}
			err := provision(t, &h)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
			if !strings.HasPrefix(err.Error(), "clerk_webhook: ") {
				t.Fatalf("error does not name the handler: %v", err)
			}
			for _, s := range []string{good, strings.TrimPrefix(good, "whsec_"), os.Getenv("CADDY_CLERK_TEST_SK")} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
			if len(h.poolKeys) != 0 {
				t.Fatal("a failed provisioning kept its replay sets")
			}
		})
	}
	t.Run("defaults and a JSON duration", func(t *testing.T) {
		var h WebhookHandler
		if err := json.Unmarshal([]byte(`{"secrets":["`+good+`"],"tolerance":"90s"}`), &h); err != nil {
			t.Fatal(err)
		}
		mustWebhook(t, &h)
		if h.tolerance != 90*time.Second || h.maxBody != 1<<20 {
			t.Fatalf("tolerance %s, max_body %d", h.tolerance, h.maxBody)
		}
	})
}

func TestWebhookFormattingHidesSecrets(t *testing.T) {
	secret := newWebhookSecret(t)
	h := &WebhookHandler{Secrets: []string{secret, secret}, Tolerance: caddy.Duration(time.Minute)}
	check := func(when string) {
		t.Helper()
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
			for _, arg := range []any{h, *h, []any{h}, map[string]any{"h": *h}} {
				out := fmt.Sprintf(verb, arg)
				if strings.Contains(out, "whsec_") || strings.Contains(out, secret[10:30]) ||
					strings.Contains(out, fmt.Sprintf("%x", secret[10:30])) || strings.Contains(out, fmt.Sprintf("%X", secret[10:30])) {
					t.Fatalf("%s, %s shows the secret: %s", when, verb, out)
				}
			}
		}
		if got := fmt.Sprint(h); !strings.Contains(got, "secrets: 2 redacted") || !strings.Contains(got, "tolerance: 1m0s") {
			t.Fatalf("%s: %s", when, got)
		}
	}
	check("configured")
	mustWebhook(t, h)
	check("provisioned")
}

// webhookUpstream records what reached it, and fails when asked to.
type webhookUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []upstreamRequest
}

type upstreamRequest struct {
	body          []byte
	contentLength int64
	chunked       bool
	header        http.Header
}

func newWebhookUpstream(t *testing.T) *webhookUpstream {
	u := &webhookUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, upstreamRequest{b, r.ContentLength, len(r.TransferEncoding) > 0, r.Header.Clone()})
		u.mu.Unlock()
		if r.Header.Get("X-Test-Fail") != "" {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *webhookUpstream) last(t *testing.T) upstreamRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("nothing reached the upstream")
	}
	return u.seen[len(u.seen)-1]
}

func (u *webhookUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// webhookSiteConfig is the global options and the body of a config with one
// site, {{site}}.
func webhookSiteConfig(logPath, upstream, literal, tolerance string) (global, body string) {
	global = fmt.Sprintf(`log {
		level DEBUG
		output file %s
		format json
	}`, logPath)
	body = fmt.Sprintf(`http://127.0.0.1:{{site}} {
	handle /webhooks/clerk {
		clerk_webhook {
			secret %s
			secret {env.CADDY_CLERK_TEST_WEBHOOK_SECRET}
			tolerance %s
			max_body 1MiB
		}
		reverse_proxy %s {
			header_up X-Webhook-Id {clerk.webhook.id}
			header_up X-Webhook-Type {clerk.webhook.type}
			header_up X-Webhook-Timestamp {clerk.webhook.timestamp}
		}
	}
	handle /webhooks/respond {
		clerk_webhook {
			secret %s
		}
		respond "{clerk.webhook.type} {clerk.webhook.id} {clerk.webhook.timestamp}" 200
	}
	handle_errors {
		respond "{err.status_code} {clerk.reason}" {err.status_code}
	}
}
`, literal, tolerance, upstream, literal)
	return global, body
}

// TestWebhookThroughCaddy runs clerk_webhook in Caddy in front of a
// reverse-proxied upstream (as for an n8n or Zapier-like hook), with every
// log at DEBUG in a file that must never show a secret.
func TestWebhookThroughCaddy(t *testing.T) {
	literal, fromEnv := newWebhookSecret(t), newWebhookSecret(t)
	t.Setenv("CADDY_CLERK_TEST_WEBHOOK_SECRET", fromEnv)
	up := newWebhookUpstream(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	global, body := webhookSiteConfig(logPath, up.Listener.Addr().String(), literal, "5m")
	run := startCaddy(t, global, body)
	site := run.url("site")
	client := testClient(true)

	post := func(path string, hdr http.Header, body io.Reader) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, site+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	deliver := func(d testDelivery) (*http.Response, string) {
		t.Helper()
		return post("/webhooks/clerk", d.header(), bytes.NewReader(d.body))
	}
	want := func(what string, resp *http.Response, body string, status int, wantBody string) {
		t.Helper()
		if resp.StatusCode != status || (wantBody != "" && body != wantBody) {
			t.Fatalf("%s: %d %q, want %d %q", what, resp.StatusCode, body, status, wantBody)
		}
	}

	t.Run("valid delivery reaches the upstream intact, with placeholders", func(t *testing.T) {
		for _, secret := range []string{literal, fromEnv} {
			d := newDelivery(t, secret, userCreated, time.Now())
			h := d.header()
			h.Set("X-Webhook-Id", "msg_spoofed") // header_up replaces what the client sent
			h.Set("X-Webhook-Type", "user.deleted")
			resp, body := post("/webhooks/clerk", h, bytes.NewReader(d.body))
			want("delivery", resp, body, 200, "ok")
			got := up.last(t)
			if !bytes.Equal(got.body, d.body) || got.contentLength != int64(len(d.body)) {
				t.Fatalf("upstream body %q (Content-Length %d), want %q", got.body, got.contentLength, d.body)
			}
			if got.header.Get("X-Webhook-Id") != d.id || got.header.Get("X-Webhook-Type") != "user.created" ||
				got.header.Get("X-Webhook-Timestamp") != strconv.FormatInt(d.ts.Unix(), 10) {
				t.Fatalf("upstream headers %v", got.header)
			}
			if got.header.Get("Svix-Signature") != d.sig {
				t.Fatal("the upstream did not get the Svix headers to check for itself")
			}
		}
	})
	t.Run("chunked delivery reaches the upstream with a Content-Length", func(t *testing.T) {
		d := newDelivery(t, fromEnv, userCreated, time.Now())
		resp, body := post("/webhooks/clerk", d.header(), iotestOneByte(d.body))
		want("chunked", resp, body, 200, "ok")
		if got := up.last(t); !bytes.Equal(got.body, d.body) || got.chunked || got.contentLength != int64(len(d.body)) {
			t.Fatalf("upstream got %d bytes, chunked %v, Content-Length %d", len(got.body), got.chunked, got.contentLength)
		}
	})
	t.Run("placeholders in respond", func(t *testing.T) {
		d := newDelivery(t, literal, `{"type":"session.ended","data":{}}`, time.Now())
		resp, body := post("/webhooks/respond", d.header(), bytes.NewReader(d.body))
		want("respond", resp, body, 200, fmt.Sprintf("session.ended %s %d", d.id, d.ts.Unix()))
	})
	t.Run("refusals", func(t *testing.T) {
		now := time.Now()
		d := newDelivery(t, literal, userCreated, now)
		withHeader := func(k, v string) http.Header { h := d.header(); h.Set(k, v); return h }
		without := func(k string) http.Header { h := d.header(); h.Del(k); return h }
		several := withHeader("Svix-Signature", "v1,bm90IGl0 "+svixSign(t, newWebhookSecret(t), d.id, d.ts, d.body)+" "+d.sig)
		before := up.count()
		for _, tc := range []struct {
			name   string
			hdr    http.Header
			body   string
			status int
			reason string
		}{
			{"altered body", d.header(), strings.Replace(userCreated, "Ada", "Eve", 1), 401, string(authn.ReasonWebhookSignature)},
			{"wrong secret", withHeader("Svix-Signature", svixSign(t, newWebhookSecret(t), d.id, d.ts, d.body)), userCreated, 401, string(authn.ReasonWebhookSignature)},
			{"missing svix-id", without("Svix-Id"), userCreated, 401, string(authn.ReasonWebhookHeadersMissing)},
			{"missing svix-timestamp", without("Svix-Timestamp"), userCreated, 401, string(authn.ReasonWebhookHeadersMissing)},
			{"missing svix-signature", without("Svix-Signature"), userCreated, 401, string(authn.ReasonWebhookHeadersMissing)},
			{"malformed timestamp", withHeader("Svix-Timestamp", "yesterday"), userCreated, 401, string(authn.ReasonWebhookHeadersMalformed)},
			{"no headers at all", http.Header{}, userCreated, 401, string(authn.ReasonWebhookHeadersMissing)},
		} {
			resp, body := post("/webhooks/clerk", tc.hdr, strings.NewReader(tc.body))
			want(tc.name, resp, body, tc.status, fmt.Sprintf("%d %s", tc.status, tc.reason))
		}
		for _, ts := range []time.Time{now.Add(-6 * time.Minute), now.Add(6 * time.Minute)} {
			old := newDelivery(t, literal, userCreated, ts)
			resp, body := deliver(old)
			want("timestamp "+ts.Sub(now).Round(time.Minute).String(), resp, body, 401, "401 "+string(authn.ReasonWebhookTimestamp))
		}
		if up.count() != before {
			t.Fatal("a refused delivery reached the upstream")
		}
		resp, body := post("/webhooks/clerk", several, bytes.NewReader(d.body))
		want("several signatures, one valid", resp, body, 200, "ok")
	})
	t.Run("replay is refused; a failed delivery is retried", func(t *testing.T) {
		d := newDelivery(t, fromEnv, userCreated, time.Now())
		resp, body := deliver(d)
		want("first", resp, body, 200, "ok")
		n := up.count()
		resp, body = deliver(d)
		want("replay", resp, body, 401, "401 "+string(authn.ReasonWebhookReplayed))
		if up.count() != n {
			t.Fatal("the replay reached the upstream")
		}

		f := newDelivery(t, fromEnv, userCreated, time.Now())
		h := f.header()
		h.Set("X-Test-Fail", "1")
		resp, body = post("/webhooks/clerk", h, bytes.NewReader(f.body))
		want("upstream failing", resp, body, 503, "")
		f.ts = time.Now() // Svix's retry: same svix-id, signed afresh
		f.sig = svixSign(t, fromEnv, f.id, f.ts, f.body)
		resp, body = deliver(f)
		want("retry", resp, body, 200, "ok")
		resp, body = deliver(f)
		want("retry replayed", resp, body, 401, "401 "+string(authn.ReasonWebhookReplayed))
	})
	t.Run("100 MB body: 413 and the server stops reading", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			d := newDelivery(t, literal, userCreated, time.Now())
			status, written, werr := streamHugeBody(t, run.addr("site"), d, 100<<20, chunked)
			if status != 413 {
				t.Fatalf("chunked %v: status %d", chunked, status)
			}
			if werr == nil || written > 48<<20 {
				t.Fatalf("chunked %v: the client wrote %d bytes (error %v): the server read on", chunked, written, werr)
			}
			t.Logf("chunked %v: 413 after the client wrote %.1f MiB", chunked, float64(written)/(1<<20))
		}
	})
	t.Run("a reload keeps the replay sets", func(t *testing.T) {
		d := newDelivery(t, literal, userCreated, time.Now())
		resp, body := deliver(d)
		want("before reload", resp, body, 200, "ok")
		run.reload(webhookSiteConfig(logPath, up.Listener.Addr().String(), literal, "4m"))
		client.CloseIdleConnections() // the old server closes them (see reload)
		// A delivery the reset cut off may have been seen: replayed either way.
		resp = afterReload(t, func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodPost, site+"/webhooks/clerk", bytes.NewReader(d.body))
			req.Header = d.header()
			return client.Do(req)
		})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want("replay after reload", resp, string(b), 401, "401 "+string(authn.ReasonWebhookReplayed))
	})

	t.Run("no secret in the DEBUG logs", func(t *testing.T) {
		logs, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		var secrets secretSet
		for name, s := range map[string]string{"literal secret": literal, "env secret": fromEnv} {
			secrets.add(name, s, 12)
			secrets.add(name+" (key part)", strings.TrimPrefix(s, "whsec_"), 12)
		}
		if leaks := secrets.leaks(string(logs)); len(leaks) > 0 {
			t.Fatalf("secrets in the logs:\n%s", strings.Join(leaks, "\n"))
		}
		for _, reason := range []string{string(authn.ReasonWebhookSignature), string(authn.ReasonWebhookTimestamp), string(authn.ReasonWebhookReplayed),
			string(authn.ReasonWebhookHeadersMissing), string(authn.ReasonWebhookHeadersMalformed), string(authn.ReasonWebhookTooLarge)} {
			if !bytes.Contains(logs, []byte(`"reason":"`+reason+`"`)) {
				t.Errorf("no debug log line with reason %s", reason)
			}
		}
		if !bytes.Contains(logs, []byte(`"msg":"webhook verified"`)) {
			t.Error("no debug log line for a verified webhook")
		}
	})
}

// streamHugeBody sends a delivery's headers with a body of n bytes over a
// raw connection, writing as fast as the server takes it, and reads the
// answer meanwhile. It returns the status, how much the client managed to
// write, and the write error that stopped it.
func streamHugeBody(t *testing.T, addr string, d testDelivery, n int64, chunked bool) (int, int64, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var head strings.Builder
	fmt.Fprintf(&head, "POST /webhooks/clerk HTTP/1.1\r\nHost: %s\r\n", addr)
	for k, v := range d.header() {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v[0])
	}
	if chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", n)
	}
	type result struct {
		written int64
		err     error
	}
	wrote := make(chan result, 1)
	go func() {
		var written int64
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		if _, err := io.WriteString(conn, head.String()); err != nil {
			wrote <- result{0, err}
			return
		}
		for written < n {
			var err error
			if chunked {
				_, err = fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
			} else {
				_, err = conn.Write(chunk)
			}
			if err != nil {
				wrote <- result{written, err}
				return
			}
			written += int64(len(chunk))
		}
		wrote <- result{written, nil}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := <-wrote
	return resp.StatusCode, r.written, r.err
}
