// Package client is the Go client of the CodeExec HTTP API (codeexec/client): one method
// per operation of the API description (GET /api/openapi.json, kept in the repository at
// edge/internal/apidoc/openapi.json), each taking a context first, and errors of type
// *Error that carry the API's error code and HTTP status.
//
// It is written by hand, not generated: the API is small, and hand-written types read like
// the rest of CodeExec (pointers only where null or "not sent" means something, one
// Execution type for the 200 and 202 answers of the execute routes), with no generated
// code or generator runtime for users to take in. What keeps it in line with the
// description is its tests: every operationId of the description has a method here (named
// as the operationId, capitalised), and every example of the description decodes strictly
// into the client's types and encodes back to a value its schema accepts. The integration
// tests (deploy/integration) drive a real CodeExec through this client and validate every
// request and answer against the description.
//
// Retries are off by default. WithRetry makes a call that is answered 429, or 503 with a
// Retry-After header, wait as asked and try again, within a total wait and the context.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one CodeExec edge. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	apiKey  string
	http    *http.Client
	maxWait time.Duration // total Retry-After wait per call; 0: no retries
}

// Option configures a Client.
type Option func(*Client) error

// WithAPIKey authenticates every call with key ("Authorization: Bearer <key>").
func WithAPIKey(key string) Option {
	return func(c *Client) error {
		c.apiKey = strings.TrimSpace(key)
		return nil
	}
}

// WithHTTPClient sends the calls through hc (its cookie jar keeps the session of Login).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("nil http client")
		}
		c.http = hc
		return nil
	}
}

// WithRetry makes a call answered 429, or 503 with Retry-After, wait as Retry-After asks
// and try again, as long as the waits of the call stay within maxWait and its context
// lives. A 503 about a job that was queued after all (Error.JobID set) is never retried:
// the job runs, poll it.
func WithRetry(maxWait time.Duration) Option {
	return func(c *Client) error {
		if maxWait < 0 {
			return fmt.Errorf("retry wait %s is negative", maxWait)
		}
		c.maxWait = maxWait
		return nil
	}
}

// New returns a client of the edge at baseURL (e.g. http://127.0.0.1:8080). Without
// WithHTTPClient it uses an http.Client with a cookie jar, so that Login's session
// authenticates the calls that follow.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("parse base url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("base url %q: want http(s)://host[:port]", baseURL)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("cookie jar: %w", err)
	}
	c := &Client{base: u, http: &http.Client{Jar: jar}}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Error is an answer of the API in its error shape, with its HTTP status.
type Error struct {
	Status  int
	Code    string // snake_case and stable: decide on it
	Message string // human text
	// JobID is the job the error is about (504 wait_timeout, some 503s): poll it.
	JobID string
	// RetryAfter is the wait the server asked for (429, some 503s); 0 when it did not.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("codeexec: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// call is one request: method and path, an optional JSON body, the answer decoded into out.
type call struct {
	method string
	path   string
	query  url.Values
	body   any
	bearer string // overrides the client's key (admin token)
	out    any
}

// do sends a call, retrying as WithRetry allows, and decodes a 2xx answer into c.out.
func (cl *Client) do(ctx context.Context, c call) error {
	var payload []byte
	if c.body != nil {
		var err error
		if payload, err = json.Marshal(c.body); err != nil {
			return fmt.Errorf("encode %s %s: %w", c.method, c.path, err)
		}
	}
	waited := time.Duration(0)
	for {
		err := cl.send(ctx, c, payload)
		var apiErr *Error
		if !errors.As(err, &apiErr) || !cl.retryable(apiErr) || waited+apiErr.RetryAfter > cl.maxWait {
			return err
		}
		t := time.NewTimer(apiErr.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to retry: %w)", err, ctx.Err())
		case <-t.C:
		}
		waited += apiErr.RetryAfter
	}
}

func (cl *Client) retryable(e *Error) bool {
	if cl.maxWait == 0 || e.RetryAfter <= 0 || e.JobID != "" {
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable
}

func (cl *Client) send(ctx context.Context, c call, payload []byte) error {
	u := *cl.base
	u.Path += c.path
	u.RawQuery = c.query.Encode()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if key := cmpOr(c.bearer, cl.apiKey); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", c.method, c.path, err)
	}
	if resp.StatusCode >= 300 {
		return answerError(resp, data)
	}
	if c.out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, c.out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", c.method, c.path, err)
	}
	return nil
}

// answerError reads an error answer; one that is not in the API's shape (a proxy's, say)
// becomes an *Error with code "http_<status>".
func answerError(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	var shape struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		JobID string `json:"jobId"`
	}
	if json.Unmarshal(data, &shape) == nil && shape.Error.Code != "" {
		e.Code, e.Message, e.JobID = shape.Error.Code, shape.Error.Message, shape.JobID
	} else {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func pathEscape(s string) string { return url.PathEscape(s) }
