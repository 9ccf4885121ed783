package caddyclerk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	svix "github.com/svix/svix-webhooks/go"
	"go.uber.org/zap"

	"github.com/caddy-clerk/caddy-clerk/internal/authn"
)

func init() {
	caddy.RegisterModule(WebhookHandler{})
}

// WebhookHandler verifies Clerk webhooks (user.created, session.ended, …),
// which Clerk delivers through Svix, before they reach an upstream: the
// svix-id, svix-timestamp and svix-signature headers must carry a valid
// signature over the exact body under one of the endpoint's signing
// secrets, the timestamp must lie within the tolerance (past or future), and
// a svix-id already delivered within the tolerance is refused as a replay.
// The body is read at most once, bounded by MaxBody, and passed on intact.
//
// Verified deliveries go on with {clerk.webhook.id} (svix-id),
// {clerk.webhook.type} (the JSON body's top-level "type", e.g. user.created)
// and {clerk.webhook.timestamp} (svix-timestamp, Unix seconds); these are set
// on every request, empty when it was not verified. Refusals are 401 (413 for
// a body over MaxBody) through Caddy's error handling, with the reason in
// {clerk.reason}: webhook-headers-missing, webhook-headers-malformed,
// webhook-signature-mismatch, webhook-timestamp-out-of-tolerance,
// webhook-replayed, webhook-body-too-large, webhook-body-unreadable.
//
// Caddyfile:
//
//	clerk_webhook [<matcher>] {
//	    secret    <whsec_…>     # e.g. {env.CLERK_WEBHOOK_SECRET}; one line per secret while rotating
//	    tolerance <duration>    # default 5m
//	    max_body  <size>        # default 1MiB
//	}
type WebhookHandler struct {
	// Secrets are the endpoint's signing secrets ("Signing Secret" of the
	// webhook endpoint in the Clerk dashboard, whsec_…). A delivery passes
	// when any of its signatures matches under any of them, so a rotation
	// lists the old and the new secret until Clerk signs with the new one
	// only. Each may be a placeholder such as {env.CLERK_WEBHOOK_SECRET},
	// resolved at provisioning; a placeholder may hold several secrets
	// separated by spaces. Secrets never appear in logs, errors or %v.
	Secrets []string `json:"secrets,omitempty"`
	// Tolerance is how far svix-timestamp may lie from this server's clock,
	// in the past or the future, and how long a delivered svix-id is
	// remembered to refuse replays. Default 5m, at most 1h.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`
	// MaxBody is the largest body accepted, in bytes; a larger one is
	// refused with 413 without being read further. The body is held in
	// memory while it is verified. Default 1 MiB, at most 16 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// hooks verify signatures, one per secret; the secrets live only in them.
	hooks     []*svix.Webhook
	replay    []*replaySet // one per secret, shared through replaySets
	poolKeys  []string
	tolerance time.Duration
	maxBody   int64
	logger    *zap.Logger
}

// Limits and defaults of the webhook handler.
const (
	defaultWebhookTolerance = 5 * time.Minute
	maxWebhookTolerance     = time.Hour
	defaultWebhookMaxBody   = 1 << 20
	maxWebhookMaxBody       = 16 << 20
	maxSvixIDLen            = 256
	maxSvixSignatureLen     = 8 << 10 // about 170 v1 signatures
	maxWebhookTypeLen       = 256
)

// Placeholders set by the webhook handler.
const (
	placeholderWebhookID        = "clerk.webhook.id"
	placeholderWebhookType      = "clerk.webhook.type"
	placeholderWebhookTimestamp = "clerk.webhook.timestamp"
)

// CaddyModule returns the Caddy module information.
func (WebhookHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.clerk_webhook",
		New: func() caddy.Module { return new(WebhookHandler) },
	}
}

// Format keeps the secrets out of every fmt verb (%v, %+v, %#v, %s, %d, …):
// the struct holds them as configured, possibly pasted in clear.
func (h WebhookHandler) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, h.String())
}

// String describes the handler without its secrets.
func (h WebhookHandler) String() string {
	return fmt.Sprintf("clerk_webhook{secrets: %d redacted, tolerance: %s, max_body: %d}",
		len(h.Secrets), time.Duration(h.Tolerance), h.MaxBody)
}

// GoString is String: %#v must not print the secrets either.
func (h WebhookHandler) GoString() string { return h.String() }

// Provision resolves the secrets' placeholders, checks every setting and
// joins the replay sets of its secrets (shared across handlers and reloads).
func (h *WebhookHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.provision(); err != nil {
		_ = h.Cleanup() // Caddy does not clean up a module that failed to provision
		return err
	}
	return nil
}

func (h *WebhookHandler) provision() error {
	switch t := time.Duration(h.Tolerance); {
	case t < 0:
		return fmt.Errorf("clerk_webhook: tolerance %s is negative: give a duration such as 5m (the default)", t)
	case t == 0:
		h.tolerance = defaultWebhookTolerance
	case t > maxWebhookTolerance:
		return fmt.Errorf("clerk_webhook: tolerance %s is over %s: a longer window accepts older deliveries; use 5m (the default) and fix the clock", t, maxWebhookTolerance)
	default:
		h.tolerance = t
	}
	switch {
	case h.MaxBody < 0:
		return fmt.Errorf("clerk_webhook: max_body %d is negative: give a size in bytes (default 1048576, 1 MiB)", h.MaxBody)
	case h.MaxBody == 0:
		h.maxBody = defaultWebhookMaxBody
	case h.MaxBody > maxWebhookMaxBody:
		return fmt.Errorf("clerk_webhook: max_body %d is over %d (16 MiB): bodies are held in memory before they are verified, and Clerk's are a few KiB", h.MaxBody, maxWebhookMaxBody)
	default:
		h.maxBody = h.MaxBody
	}

	repl := caddy.NewReplacer()
	seen := map[string]bool{}
	var keys []string
	for i, raw := range h.Secrets {
		name := fmt.Sprintf("secrets[%d]", i)
		if isPlaceholder(raw) {
			name += " (" + raw + ")" // a placeholder's name is not secret
		}
		fields := strings.Fields(repl.ReplaceKnown(raw, ""))
		if len(fields) == 0 {
			hint := ""
			if isPlaceholder(raw) {
				hint = " (is the environment variable or file set?)"
			}
			return fmt.Errorf("clerk_webhook: %s is empty%s: set it to the endpoint's Signing Secret (whsec_…) from the Clerk dashboard", name, hint)
		}
		for _, s := range fields {
			hook, err := parseWebhookSecret(s)
			if err != nil {
				return fmt.Errorf("clerk_webhook: %s %v", name, err)
			}
			if seen[s] {
				continue
			}
			seen[s] = true
			h.hooks = append(h.hooks, hook)
			keys = append(keys, replayPoolKey(s))
		}
	}
	if len(h.hooks) == 0 {
		return errors.New("clerk_webhook: no secret: set secrets (Caddyfile: secret {env.CLERK_WEBHOOK_SECRET}) " +
			"to the endpoint's Signing Secret (whsec_…) from the Clerk dashboard")
	}
	for _, key := range keys {
		val, _, err := replaySets.LoadOrNew(key, func() (caddy.Destructor, error) {
			return newReplaySet(replayLimit), nil
		})
		if err != nil {
			return fmt.Errorf("clerk_webhook: replay set: %v", err)
		}
		h.poolKeys = append(h.poolKeys, key)
		h.replay = append(h.replay, val.(*replaySet))
	}
	return nil
}

// parseWebhookSecret checks a secret's shape as Svix defines it (whsec_
// followed by 32 to 100 base64 characters) and makes its verifier. Errors
// never contain the secret.
func parseWebhookSecret(s string) (*svix.Webhook, error) {
	rest, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		if strings.HasPrefix(s, "sk_") {
			return nil, errors.New("is a Clerk secret key (sk_…), not a webhook signing secret: " +
				"use the endpoint's Signing Secret (whsec_…) from the dashboard's Webhooks page")
		}
		return nil, errors.New("does not start with whsec_: use the endpoint's Signing Secret " +
			"from the Clerk dashboard (Webhooks → your endpoint → Signing Secret)")
	}
	if len(rest) < 32 || len(rest) > 100 || strings.Trim(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
		return nil, errors.New("is not a Svix signing secret: whsec_ must be followed by 32 to 100 base64 characters (copy the whole secret)")
	}
	hook, err := svix.NewWebhook(s)
	if err != nil {
		return nil, errors.New("is not a Svix signing secret: the part after whsec_ is not valid base64 (copy the whole secret)")
	}
	return hook, nil
}

func isPlaceholder(s string) bool { return strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") }

// replayPoolKey names a secret's replay set by a hash of the secret, so
// every handler with that secret, in this config or the next, shares it.
func replayPoolKey(secret string) string {
	sum := sha256.Sum256([]byte("caddy-clerk webhook replay set\x00" + secret))
	return "clerk_webhook:" + hex.EncodeToString(sum[:16])
}

// Validate checks that Provision ran.
func (h *WebhookHandler) Validate() error {
	if len(h.hooks) == 0 || len(h.replay) != len(h.hooks) {
		return errors.New("clerk_webhook: not provisioned")
	}
	return nil
}

// Cleanup releases the handler's replay sets; the last user frees them.
func (h *WebhookHandler) Cleanup() error {
	var errs []error
	for _, key := range h.poolKeys {
		if _, err := replaySets.Delete(key); err != nil {
			errs = append(errs, err)
		}
	}
	h.poolKeys, h.replay = nil, nil
	return errors.Join(errs...)
}

// delivery is what a verified request says.
type delivery struct {
	id        string
	timestamp int64
	body      []byte
}

// ServeHTTP verifies the delivery, then passes it on with its body intact.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// Known and empty until verified, so header_up never forwards a
	// client's own value.
	repl.Set(placeholderWebhookID, "")
	repl.Set(placeholderWebhookType, "")
	repl.Set(placeholderWebhookTimestamp, "")

	d, reason := h.verify(r)
	if reason != "" {
		return h.refuse(r, repl, reason, d)
	}
	claim, ok := h.claim(d.id, time.Unix(d.timestamp, 0).Add(h.tolerance), time.Now())
	if !ok {
		return h.refuse(r, repl, authn.ReasonWebhookReplayed, d)
	}

	r.Body = io.NopCloser(bytes.NewReader(d.body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(d.body)), nil }
	r.ContentLength = int64(len(d.body))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(d.body)))
	typ := webhookType(d.body)
	repl.Set(placeholderWebhookID, d.id)
	repl.Set(placeholderWebhookType, typ)
	repl.Set(placeholderWebhookTimestamp, strconv.FormatInt(d.timestamp, 10))
	if ce := h.logger.Check(zap.DebugLevel, "webhook verified"); ce != nil {
		ce.Write(zap.String("svix_id", d.id), zap.String("type", typ), zap.String("uri", r.URL.Path))
	}

	// The svix-id counts as delivered only once downstream accepted it
	// (2xx): Svix retries a failed delivery with the same svix-id (the
	// first retries after 0 s and 5 s), and those retries must pass.
	sw := &webhookStatus{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	delivered := false
	defer func() { h.settle(claim, delivered) }()
	err := next.ServeHTTP(sw, r)
	delivered = err == nil && (sw.status == 0 || (sw.status >= 200 && sw.status < 300))
	return err
}

// verify checks headers, reads the bounded body and checks the signature
// and the timestamp. It returns a refusal reason, or "".
func (h *WebhookHandler) verify(r *http.Request) (delivery, authn.Reason) {
	var d delivery
	ids, stamps, sigs := r.Header.Values("Svix-Id"), r.Header.Values("Svix-Timestamp"), r.Header.Values("Svix-Signature")
	if len(ids) == 0 || len(stamps) == 0 || len(sigs) == 0 || ids[0] == "" || stamps[0] == "" || sigs[0] == "" {
		return d, authn.ReasonWebhookHeadersMissing
	}
	if len(ids) > 1 || len(stamps) > 1 || len(sigs) > 1 {
		return d, authn.ReasonWebhookHeadersMalformed // which one was signed?
	}
	id, stamp, sig := ids[0], stamps[0], sigs[0]
	if !visibleASCII(id, maxSvixIDLen) || len(sig) > maxSvixSignatureLen {
		return d, authn.ReasonWebhookHeadersMalformed
	}
	ts, ok := parseUnixSeconds(stamp)
	if !ok {
		return d, authn.ReasonWebhookHeadersMalformed
	}
	d.id, d.timestamp = id, ts

	if r.ContentLength > h.maxBody {
		return d, authn.ReasonWebhookTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if r.Body != nil {
		if _, err := buf.ReadFrom(io.LimitReader(r.Body, h.maxBody+1)); err != nil {
			return d, authn.ReasonWebhookUnreadable
		}
	}
	if int64(buf.Len()) > h.maxBody {
		return d, authn.ReasonWebhookTooLarge
	}
	d.body = buf.Bytes()

	// Only the three values checked above reach the library: it would
	// otherwise fall back to webhook-* headers we have not checked.
	hdr := http.Header{"Svix-Id": {id}, "Svix-Timestamp": {stamp}, "Svix-Signature": {sig}}
	signed := false
	for _, hook := range h.hooks {
		// The library's Verify has a fixed 5-minute tolerance; ours is
		// configurable, so the timestamp is checked below.
		if hook.VerifyIgnoringTimestamp(d.body, hdr) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return d, authn.ReasonWebhookSignature
	}
	if !withinTolerance(ts, time.Now(), h.tolerance) {
		return d, authn.ReasonWebhookTimestamp
	}
	return d, ""
}

// withinTolerance is Svix's rule with our tolerance: at most tolerance old,
// and at most tolerance ahead (whole seconds).
func withinTolerance(ts int64, now time.Time, tolerance time.Duration) bool {
	t := time.Unix(ts, 0)
	return now.Sub(t) <= tolerance && ts <= now.Add(tolerance).Unix()
}

// parseUnixSeconds reads svix-timestamp: decimal digits only (no sign, no
// exponent, no spaces).
func parseUnixSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// visibleASCII: 1 to max bytes, each printable ASCII other than space.
func visibleASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// webhookType is the JSON body's top-level "type" when the body is one JSON
// object in which "type" is a string and appears exactly once, else "". Control characters are dropped (it may end
// up in a header) and it is cut at 256 bytes.
func webhookType(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	var typ string
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ""
		}
		if key, _ := tok.(string); key == "type" {
			n++
			if json.Unmarshal(raw, &typ) != nil {
				return ""
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') || n != 1 {
		return ""
	}
	if _, err := dec.Token(); err != io.EOF {
		return "" // something after the object: not one JSON document
	}
	typ = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, typ)
	if len(typ) > maxWebhookTypeLen {
		typ = typ[:maxWebhookTypeLen]
	}
	return typ
}

// refuse answers 401 (413 for a body too large) through Caddy's error
// handling, with the reason in {clerk.reason} and the debug log.
func (h *WebhookHandler) refuse(r *http.Request, repl *caddy.Replacer, reason authn.Reason, d delivery) error {
	repl.Set("clerk.reason", string(reason)) // no clerk holder on this route necessarily
	if ce := h.logger.Check(zap.DebugLevel, "webhook refused"); ce != nil {
		fields := []zap.Field{zap.String("reason", string(reason)), zap.String("method", r.Method), zap.String("uri", r.URL.Path)}
		if d.id != "" {
			fields = append(fields, zap.String("svix_id", d.id), zap.Int64("svix_timestamp", d.timestamp))
			if reason == authn.ReasonWebhookTimestamp {
				fields = append(fields, zap.Duration("age", time.Since(time.Unix(d.timestamp, 0)).Round(time.Second)))
			}
		}
		ce.Write(fields...)
	}
	status := http.StatusUnauthorized
	if reason == authn.ReasonWebhookTooLarge {
		status = http.StatusRequestEntityTooLarge
	}
	return caddyhttp.Error(status, errors.New("clerk_webhook: "+string(reason)))
}

// webhookStatus remembers the status downstream answered with.
type webhookStatus struct {
	*caddyhttp.ResponseWriterWrapper
	status int
}

func (s *webhookStatus) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

func (s *webhookStatus) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
}

func (s *webhookStatus) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.ReadFrom(r)
}

// The replay sets: one per secret, named by its hash, shared by every
// handler with that secret and kept across reloads by the usage pool. One
// mutex guards them all (webhooks are a trickle, and a handler with two
// secrets updates both sets at once).
var (
	replaySets = caddy.NewUsagePool()
	replayMu   sync.Mutex
	replaySeq  uint64
)

// replayLimit bounds each set. Only verified deliveries are entered, so
// only Clerk can fill it; when full, the entry closest to expiry goes.
var replayLimit = 100_000

type replaySet struct {
	ids     map[string]*replayEntry
	limit   int
	inserts int // since the last sweep
}

type replayEntry struct {
	until   time.Time // refused as a replay until then
	seq     uint64    // which claim entered it
	pending bool      // downstream has not answered yet
}

func newReplaySet(limit int) *replaySet {
	return &replaySet{ids: map[string]*replayEntry{}, limit: limit}
}

// Destruct frees the set when its last handler is gone.
func (s *replaySet) Destruct() error { return nil }

// replayClaim is a claim on a svix-id in every set of a handler.
type replayClaim struct {
	id   string
	seq  uint64
	sets []*replaySet
}

// claim enters id, remembered until until, in every set of the handler,
// unless one of them already holds it (delivered or in flight): then it
// is a replay, and the entry is kept at least until until, since the
// replayed request stays acceptable that long.
func (h *WebhookHandler) claim(id string, until, now time.Time) (replayClaim, bool) {
	replayMu.Lock()
	defer replayMu.Unlock()
	replayed := false
	for _, s := range h.replay {
		if e := s.ids[id]; e != nil && now.Before(e.until) {
			replayed = true
			if until.After(e.until) {
				e.until = until
			}
		}
	}
	if replayed {
		return replayClaim{}, false
	}
	replaySeq++
	c := replayClaim{id: id, seq: replaySeq, sets: h.replay}
	for _, s := range h.replay {
		s.insert(id, &replayEntry{until: until, seq: c.seq, pending: true}, now)
	}
	return c, true
}

// settle marks the claim delivered, or withdraws it so a retry can pass.
func (h *WebhookHandler) settle(c replayClaim, delivered bool) {
	replayMu.Lock()
	defer replayMu.Unlock()
	for _, s := range c.sets {
		e := s.ids[c.id]
		if e == nil || e.seq != c.seq {
			continue // swept, or evicted and entered again
		}
		if delivered {
			e.pending = false
		} else {
			delete(s.ids, c.id)
		}
	}
}

// insert adds an entry, sweeping expired ones now and then (amortized
// O(1)) and, at the limit, evicting the entry that expires first.
func (s *replaySet) insert(id string, e *replayEntry, now time.Time) {
	s.inserts++
	if s.inserts >= len(s.ids)/2+64 || len(s.ids) >= s.limit {
		s.inserts = 0
		for k, old := range s.ids {
			if !now.Before(old.until) {
				delete(s.ids, k)
			}
		}
	}
	for len(s.ids) >= s.limit {
		var first string
		var at time.Time
		for k, old := range s.ids {
			if first == "" || old.until.Before(at) {
				first, at = k, old.until
			}
		}
		delete(s.ids, first)
	}
	s.ids[id] = e
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*WebhookHandler)(nil)
	_ caddy.Validator             = (*WebhookHandler)(nil)
	_ caddy.CleanerUpper          = (*WebhookHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*WebhookHandler)(nil)
	_ fmt.Formatter               = WebhookHandler{}
	_ fmt.Stringer                = WebhookHandler{}
	_ fmt.GoStringer              = WebhookHandler{}
	_ caddy.Destructor            = (*replaySet)(nil)
)
