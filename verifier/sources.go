package verifier

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxJWKSBytes bounds a JWKS response; Clerk's is about 1 KiB.
const maxJWKSBytes = 1 << 20

// UserAgent is sent with JWKS requests.
var UserAgent = "caddy-clerk"

type urlSource struct {
	url    string
	client *http.Client
}

// URLSource fetches a public JWKS, such as the Frontend API's
// /.well-known/jwks.json. A nil client means a client with no cookies and a
// 5 s timeout.
func URLSource(url string, client *http.Client) Source {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &urlSource{url: url, client: client}
}

func (s *urlSource) String() string { return s.url }

func (s *urlSource) Fetch(ctx context.Context) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: HTTP %d", s.url, resp.StatusCode)
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
			err = WithRetryAfter(err, time.Duration(secs)*time.Second)
		}
		return nil, 0, err
	}
	if len(body) > maxJWKSBytes {
		return nil, 0, fmt.Errorf("GET %s: the JWKS is larger than %d bytes", s.url, maxJWKSBytes)
	}
	return body, MaxAge(resp.Header.Get("Cache-Control")), nil
}

// MaxAge reads max-age from a Cache-Control header (zero if absent, or if
// no-store/no-cache forbid reuse, which we treat as "use your own schedule").
func MaxAge(cc string) time.Duration {
	for _, part := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(name, "max-age") {
			n, err := strconv.Atoi(strings.Trim(val, `"`))
			if err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 0
}

type funcSource struct {
	name string
	fn   func(context.Context) ([]byte, time.Duration, error)
}

// FuncSource adapts a fetch function, e.g. the Backend API client's JWKS
// call, to a Source. name is for logs and must not contain secrets.
func FuncSource(name string, fn func(context.Context) ([]byte, time.Duration, error)) Source {
	return funcSource{name: name, fn: fn}
}

func (s funcSource) String() string { return s.name }

func (s funcSource) Fetch(ctx context.Context) ([]byte, time.Duration, error) { return s.fn(ctx) }
