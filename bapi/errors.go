package bapi

import (
	"bytes"
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
	return b.String()
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
// (clerk_key_invalid), which callers report as secret-key-invalid.
func IsKeyInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.HasCode("clerk_key_invalid")
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
				meta = json.RawMessage(c.redact(req, string(meta)))
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
