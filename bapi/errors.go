package bapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error is a non-2xx answer from the Backend API. Text taken from the
// response is stripped of control characters, shortened, and has the secret
// key (and the handshake nonce) redacted, so it is safe to log.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code, Message and LongMessage are from the first entry of Clerk's
	// errors array. For a body that is not Clerk's JSON, Message is a short
	// sanitized excerpt of it (or the status text).
	Code        string
	Message     string
	LongMessage string
	// Errors holds every entry of Clerk's errors array.
	Errors []ErrorDetail
	// TraceID is Clerk's Clerk-Trace-Id header, or clerk_trace_id from the
	// body; quote it to Clerk support.
	TraceID string
	// RetryAfter is the response's Retry-After, zero if absent.
	RetryAfter time.Duration
	// Method and Path name the request; Path has no query string.
	Method string
	Path   string
}

// ErrorDetail is one entry of Clerk's errors array.
type ErrorDetail struct {
	Code        string          `json:"code"`
	Message     string          `json:"message"`
	LongMessage string          `json:"long_message"`
	Meta        json.RawMessage `json:"meta,omitempty"`
}

// Error reads like
// "clerk api: GET /v1/jwks: 401 clerk_key_invalid: The provided Clerk Secret Key is invalid (trace 1234)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("clerk api: ")
	if e.Method != "" || e.Path != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	e.writeDetail(&b)
	return b.String()
}

// writeDetail writes the status and what Clerk said, without the request.
func (e *Error) writeDetail(b *strings.Builder) {
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	msg := e.LongMessage
	if msg == "" {
		msg = e.Message
	}
	if msg != "" {
		b.WriteString(": " + msg)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	if e.TraceID != "" {
		b.WriteString(" (trace " + e.TraceID + ")")
	}
}

// HasCode reports whether any entry of the errors array has code.
func (e *Error) HasCode(code string) bool {
	if e.Code == code {
		return true
	}
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// IsKeyInvalid reports whether err is Clerk rejecting the secret key
// (clerk_key_invalid), which callers report as secret-key-invalid. For the
// machine verify calls any 401 counts, as in @clerk/backend: the key
// (the machine secret key for VerifyM2MToken, if set) is what they
// authenticate.
func IsKeyInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e) &&
		(e.HasCode("clerk_key_invalid") || e.Status == http.StatusUnauthorized && isMachinePath(e.Path))
}

// IsNotFound reports whether err is a 404 (e.g. an unknown user or nonce).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusNotFound || e.HasCode("resource_not_found"))
}

// IsRateLimited reports whether err is a 429; see Error.RetryAfter.
func IsRateLimited(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusTooManyRequests
}

// IsUnavailable reports whether err means Clerk could not answer: a network
// error or attempt timeout, a 5xx or a 429. Callers may then fall back to a
// recent answer (stale-if-error). A call the caller cancelled is not
// unavailability, nor is an answer that could not be decoded.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	var ne *netError
	return errors.As(err, &ne) && ne.fatal == nil && !errors.Is(err, context.Canceled)
}

// IsTokenInvalid reports whether err is a machine token that Clerk does not
// vouch for (a *TokenInvalidError): unknown (404), revoked, expired,
// inactive, malformed, or an answer that is not the type's verified token.
// Callers report it as token-invalid.
func IsTokenInvalid(err error) bool {
	var e *TokenInvalidError
	return errors.As(err, &e)
}

// TokenInvalidError is a verify call's verdict that the token is not a
// valid token of its type. Its text holds neither the token nor a key.
type TokenInvalidError struct {
	// TokenType is "m2m_token", "api_key" or "oauth_token".
	TokenType string
	// Reason is short and fixed: "not found", "revoked", "expired",
	// "inactive", "unexpected object", "unexpected id", "malformed
	// response" or "malformed token" (refused without a request).
	Reason string
	// Method and Path name the request.
	Method, Path string
	// Err is the *Error of a 404, or what made the response malformed;
	// nil otherwise.
	Err error
}

func (e *TokenInvalidError) Error() string {
	var b strings.Builder
	b.WriteString("clerk api: " + e.Method + " " + e.Path + ": " + e.TokenType + " invalid: " + e.Reason)
	var apiErr *Error
	switch {
	case errors.As(e.Err, &apiErr):
		b.WriteString(": ")
		apiErr.writeDetail(&b)
	case e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *TokenInvalidError) Unwrap() error { return e.Err }

const (
	maxSnippet = 200 // excerpt of a non-JSON error body
	maxText    = 500 // a message from Clerk's JSON
	maxToken   = 100 // codes and trace ids
)

type errorBody struct {
	Errors  []ErrorDetail `json:"errors"`
	TraceID string        `json:"clerk_trace_id"`
}

func (c *Client) decodeError(req request, resp *http.Response, body []byte) *Error {
	e := &Error{
		Status:     resp.StatusCode,
		Method:     req.method,
		Path:       req.path,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.now()),
	}
	clean := func(s string, n int) string { return sanitize(c.redact(req, s), n) }

	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && len(eb.Errors) > 0 {
		for _, d := range eb.Errors {
			meta := d.Meta
			if len(meta) > 0 {
				meta = c.redactJSON(req, meta)
			}
			e.Errors = append(e.Errors, ErrorDetail{
				Code:        clean(d.Code, maxToken),
				Message:     clean(d.Message, maxText),
				LongMessage: clean(d.LongMessage, maxText),
				Meta:        meta,
			})
		}
		first := e.Errors[0]
		e.Code, e.Message, e.LongMessage = first.Code, first.Message, first.LongMessage
	} else {
		e.Message = clean(string(bytes.TrimSpace(body)), maxSnippet)
	}
	if e.Message == "" && e.LongMessage == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.TraceID = clean(resp.Header.Get("Clerk-Trace-Id"), maxToken)
	if e.TraceID == "" {
		e.TraceID = clean(eb.TraceID, maxToken)
	}
	return e
}

// redactJSON redacts every string (member names too) of a JSON value,
// after decoding, so no escaping a server chose (\/, \u0026, a JSON text
// inside a string…) hides a secret from redact. Undecodable input is
// dropped.
func (c *Client) redactJSON(req request, raw json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(c.redactValue(req, v)) != nil {
		return nil
	}
	return json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func (c *Client) redactValue(req request, v any) any {
	switch t := v.(type) {
	case string:
		return c.redact(req, t)
	case []any:
		for i := range t {
			t[i] = c.redactValue(req, t[i])
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[c.redact(req, k)] = c.redactValue(req, x)
		}
		return out
	}
	return v
}

// sanitize makes server-supplied text safe for one log line: valid UTF-8,
// no control characters, whitespace collapsed, at most n bytes.
func sanitize(s string, n int) string {
	if len(s) > 4*n {
		s = s[:4*n] // bound the work; the cut is redone below
	}
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = true
			continue
		}
		sep := space && b.Len() > 0
		space = false
		need := utf8.RuneLen(r)
		if sep {
			need++
		}
		if b.Len()+need > n {
			break
		}
		if sep {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
