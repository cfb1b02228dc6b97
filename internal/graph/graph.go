// Package graph is byodrop's client for the Microsoft Graph upload sessions
// of custom data provided resources (graph-contract.md): create, read, list,
// close and delete sessions, and stream CSV files into them.
//
// One code path serves the three published API shapes; what differs is data
// in a Profile. Calls retry what may succeed later (throttling, 5xx, lost
// connections) with the server's Retry-After or capped, jittered backoff,
// never past the context's deadline, and refresh the token once on a 401.
// Files are streamed: the multipart body is framed around the caller's
// reader and never held in memory.
package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/endpoint"
	"github.com/byodrop/byodrop/internal/review"
)

// TokenSource supplies bearer tokens for Graph. Token(ctx, false) may return
// a cached token; Token(ctx, true) must return a new one (the client asks for
// that after a 401).
type TokenSource interface {
	Token(ctx context.Context, refresh bool) (string, error)
}

// RetryPolicy bounds the retries of one call. Zero fields take defaults.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included (default 5). The
	// one extra attempt after a token refresh on 401 is not counted.
	MaxAttempts int
	// BaseDelay is the backoff ceiling of the first retry (default 200ms);
	// it doubles with each retry up to MaxDelay (default 20s). The wait is
	// drawn uniformly below the ceiling ("full jitter") unless the server
	// sent Retry-After.
	BaseDelay, MaxDelay time.Duration
}

// Defaults of RetryPolicy.
const (
	DefaultMaxAttempts = 5
	DefaultBaseDelay   = 200 * time.Millisecond
	DefaultMaxDelay    = 20 * time.Second
)

// maxRetryAfter bounds a server's Retry-After when the context has no
// deadline, so that a wrong header cannot park a call for hours.
const maxRetryAfter = 10 * time.Minute

// maxResponseBody bounds what is read of one response: a session with its
// file list, or one list page.
const maxResponseBody = 16 << 20

// Config configures a Client.
type Config struct {
	// Endpoint is the Graph host, without version (GRAPH_ENDPOINT), e.g.
	// https://graph.microsoft.com. Plain http is accepted only to loopback.
	Endpoint string
	// Profile is the API shape (GRAPH_API); see ProfileByName.
	Profile Profile
	// Tokens supplies bearer tokens. Required.
	Tokens TokenSource
	// HTTPClient sends the requests; nil means a client with dial, TLS and
	// response-header timeouts and no overall timeout (uploads last as long
	// as the context allows).
	HTTPClient *http.Client
	// Retry bounds retries; zero fields take the defaults.
	Retry RetryPolicy
	// OnRetry, if set, is called before each retry with the operation, the
	// attempt that failed (1-based), its error and the wait before the next;
	// attempt is 0 for the immediate retry after a 401 and a token refresh.
	OnRetry func(op string, attempt int, err error, wait time.Duration)
}

// Client calls the upload-session API. It is safe for concurrent use.
type Client struct {
	base    string // endpoint, no trailing slash
	scheme  string
	host    string
	profile Profile
	tokens  TokenSource
	hc      *http.Client
	retry   RetryPolicy
	onRetry func(op string, attempt int, err error, wait time.Duration)

	// Replaceable in tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(n int64) int64 // uniform in [0, n)
}

// Filter selects sessions in List; empty fields match everything.
type Filter struct {
	// ReferenceID is the review instance id (a GUID).
	ReferenceID string
	// Status is one of the Status constants.
	Status string
}

// New returns a client for cfg. It checks the endpoint (naming the setting
// GRAPH_ENDPOINT in errors), the profile and the token source.
func New(cfg Config) (*Client, error) {
	if err := endpoint.Check("GRAPH_ENDPOINT", cfg.Endpoint); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Endpoint) // checked above
	path := strings.TrimRight(u.Path, "/")
	if last := path[strings.LastIndex(path, "/")+1:]; last == "v1.0" || last == "beta" {
		return nil, review.Errorf(review.Invalid,
			"GRAPH_ENDPOINT: %q ends with the API version %q; give the host only and choose the version with GRAPH_API",
			cfg.Endpoint, last)
	}
	if cfg.Profile.createBody == nil {
		return nil, review.Errorf(review.Invalid, "graph: no API profile (use ProfileByName with the GRAPH_API value)")
	}
	if cfg.Tokens == nil {
		return nil, errors.New("graph: no token source")
	}
	c := &Client{
		base:    strings.ToLower(u.Scheme) + "://" + u.Host + path,
		scheme:  strings.ToLower(u.Scheme),
		host:    strings.ToLower(u.Host),
		profile: cfg.Profile,
		tokens:  cfg.Tokens,
		hc:      cfg.HTTPClient,
		retry:   cfg.Retry,
		onRetry: cfg.OnRetry,
		now:     time.Now,
		sleep:   sleepCtx,
		jitter:  func(n int64) int64 { return rand.Int64N(n) },
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	if c.retry.MaxAttempts <= 0 {
		c.retry.MaxAttempts = DefaultMaxAttempts
	}
	if c.retry.BaseDelay <= 0 {
		c.retry.BaseDelay = DefaultBaseDelay
	}
	if c.retry.MaxDelay <= 0 {
		c.retry.MaxDelay = DefaultMaxDelay
	}
	if c.retry.MaxDelay < c.retry.BaseDelay {
		c.retry.MaxDelay = c.retry.BaseDelay
	}
	return c, nil
}

// Profile returns the client's API profile.
func (c *Client) Profile() Profile { return c.profile }

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	// Counted from the end of the request body: how long Graph may think
	// about an uploaded file before it answers.
	tr.ResponseHeaderTimeout = 2 * time.Minute
	tr.ExpectContinueTimeout = time.Second
	tr.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: tr}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Create creates the session for t (201). A second session for the same
// pair is refused by the service: the error's Kind is then Conflict (or
// Invalid, if the service answers 400), and the caller looks the existing
// one up with List.
func (c *Client) Create(ctx context.Context, t review.Target) (*Session, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("graph create: %w", err)
	}
	body, err := c.profile.CreateBody(t)
	if err != nil {
		return nil, fmt.Errorf("graph create: %w", err)
	}
	u, err := c.collectionURL(t)
	if err != nil {
		return nil, err
	}
	// A profile that cannot list sessions cannot find one that a create
	// stored before its answer was lost: such a create is never sent again
	// blind.
	data, _, err := c.do(ctx, &call{op: OpCreate, method: http.MethodPost, url: u, json: body, once: !c.profile.CanList})
	if err != nil {
		return nil, err
	}
	return parseResponse(OpCreate, data)
}

// Get reads one session with its files ($expand=files).
func (c *Client) Get(ctx context.Context, t review.Target, id string) (*Session, error) {
	u, err := c.sessionURL(t, id, "")
	if err != nil {
		return nil, err
	}
	data, _, err := c.do(ctx, &call{op: OpGet, method: http.MethodGet, url: u + "?$expand=files"})
	if err != nil {
		return nil, err
	}
	return parseResponse(OpGet, data)
}

// List returns the sessions of t's catalog and resource that match f,
// following @odata.nextLink (only to the endpoint's own scheme and host).
// It returns ErrListUnsupported for a profile without a list operation.
func (c *Client) List(ctx context.Context, t review.Target, f Filter) ([]Session, error) {
	if !c.profile.CanList {
		return nil, fmt.Errorf("graph list (API profile %s): %w", c.profile.Name, ErrListUnsupported)
	}
	u, err := c.collectionURL(t)
	if err != nil {
		return nil, err
	}
	q, err := listQuery(f)
	if err != nil {
		return nil, err
	}
	next := u + "?" + q
	var out []Session
	seen := map[string]bool{}
	st := &callState{}
	for page := 1; next != ""; page++ {
		if seen[next] {
			return nil, fmt.Errorf("graph list: @odata.nextLink repeats an earlier page: %s", next)
		}
		seen[next] = true
		data, _, err := c.doWith(ctx, &call{op: OpList, method: http.MethodGet, url: next}, st)
		if err != nil {
			return nil, err
		}
		p, err := parseListPage(data)
		if err != nil {
			return nil, fmt.Errorf("graph list: page %d: %w", page, err)
		}
		out = append(out, p.Sessions...)
		if next = p.NextLink; next != "" {
			if err := c.checkNextLink(next); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// listQuery builds the OData query of a List: $filter on referenceId and
// status, and $expand=files so that the caller sees what was uploaded.
func listQuery(f Filter) (string, error) {
	var conds []string
	if f.ReferenceID != "" {
		if !review.IsGUID(f.ReferenceID) {
			return "", review.Errorf(review.Invalid, "graph list: reference id is not a GUID: %q", f.ReferenceID)
		}
		conds = append(conds, "referenceId eq '"+f.ReferenceID+"'")
	}
	if f.Status != "" {
		s := strings.ToLower(f.Status)
		for _, r := range s {
			if r < 'a' || r > 'z' {
				return "", review.Errorf(review.Invalid, "graph list: not a session status: %q", f.Status)
			}
		}
		conds = append(conds, "status eq '"+s+"'")
	}
	q := "$expand=files"
	if len(conds) > 0 {
		q = "$filter=" + queryEscape(strings.Join(conds, " and ")) + "&" + q
	}
	return q, nil
}

// queryEscape escapes an OData expression for a query string, with spaces
// as %20 (OData readers do not all accept '+').
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// checkNextLink refuses a nextLink that leaves the endpoint: the bearer
// token must not be sent anywhere else.
func (c *Client) checkNextLink(next string) error {
	u, err := url.Parse(next)
	if err != nil || !strings.EqualFold(u.Scheme, c.scheme) || !strings.EqualFold(u.Host, c.host) {
		return &Error{Op: OpList, Err: fmt.Errorf("@odata.nextLink %q is not on the endpoint %s://%s; not followed", next, c.scheme, c.host)}
	}
	return nil
}

// MarkDone sets isUploadDone to true (PATCH {"isUploadDone":true}), after
// which Entra processes the session's files. It is idempotent: if the
// service refuses because the session is already closed (for example when
// an earlier attempt's answer was lost), it reads the session and succeeds
// when isUploadDone is set. When the service answers 204 without a body,
// the session is read back.
func (c *Client) MarkDone(ctx context.Context, t review.Target, id string) (*Session, error) {
	u, err := c.sessionURL(t, id, "")
	if err != nil {
		return nil, err
	}
	data, status, err := c.do(ctx, &call{op: OpPatch, method: http.MethodPatch, url: u, json: []byte(`{"isUploadDone":true}`)})
	if err != nil {
		if k := review.KindOf(err); k == review.Gone || k == review.Invalid || k == review.Conflict {
			if s, gerr := c.Get(ctx, t, id); gerr == nil && s.IsUploadDone {
				return s, nil
			}
		}
		return nil, err
	}
	if status == http.StatusNoContent || len(bytes.TrimSpace(data)) == 0 {
		return c.Get(ctx, t, id)
	}
	return parseResponse(OpPatch, data)
}

// Delete deletes an active session (v1.0 and beta), so that a new one can be
// created for the pair. It returns ErrDeleteUnsupported for beta-2025.
func (c *Client) Delete(ctx context.Context, t review.Target, id string) error {
	if !c.profile.CanDelete {
		return fmt.Errorf("graph delete (API profile %s): %w", c.profile.Name, ErrDeleteUnsupported)
	}
	u, err := c.sessionURL(t, id, "")
	if err != nil {
		return err
	}
	_, _, err = c.do(ctx, &call{op: OpDelete, method: http.MethodDelete, url: u})
	return err
}

func parseResponse(op string, data []byte) (*Session, error) {
	s, err := ParseSession(data)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", op, err)
	}
	return s, nil
}

// collectionURL checks the ids that go into the URL and returns the
// collection's absolute URL.
func (c *Client) collectionURL(t review.Target) (string, error) {
	if !review.IsGUID(t.CatalogID) {
		return "", review.Errorf(review.Invalid, "graph: catalog id is not a GUID: %q", t.CatalogID)
	}
	if !review.IsGUID(t.ResourceID) {
		return "", review.Errorf(review.Invalid, "graph: resource id is not a GUID: %q", t.ResourceID)
	}
	return c.base + "/" + c.profile.Version + c.profile.CollectionPath(t.CatalogID, t.ResourceID), nil
}

// sessionURL returns the URL of session id (plus an action suffix).
func (c *Client) sessionURL(t review.Target, id, suffix string) (string, error) {
	u, err := c.collectionURL(t)
	if err != nil {
		return "", err
	}
	// Graph's session ids are GUIDs; anything else (a tampered ledger, a
	// bug) never reaches a URL.
	if !review.IsGUID(id) {
		return "", review.Errorf(review.Invalid, "graph: session id is not a GUID: %q", id)
	}
	return u + "/" + id + suffix, nil
}

// call is one logical request; do sends it, with retries.
type call struct {
	op     string
	method string
	url    string
	json   []byte // a JSON body, or nil
	// upload, when set, makes a fresh streamed body for each attempt.
	upload *upload
	// once: an attempt that may have been carried out although no answer
	// says so is not repeated; the call fails with ErrOutcomeUnknown.
	once bool
}

// callState is what one public call remembers across attempts and pages.
type callState struct {
	refreshed bool // the one token refresh after a 401 is used
}

// attemptResult is the outcome of one attempt that got a response.
type attemptResult struct {
	status     int
	data       []byte
	retryAfter string
	header     http.Header
}

func (c *Client) do(ctx context.Context, cl *call) ([]byte, int, error) {
	return c.doWith(ctx, cl, &callState{})
}

// doWith sends cl until it succeeds, fails for good, runs out of attempts,
// or the next wait would pass ctx's deadline.
func (c *Client) doWith(ctx context.Context, cl *call, st *callState) ([]byte, int, error) {
	started := c.now()
	for attempt := 1; ; attempt++ {
		res, err := c.attempt(ctx, cl, st)
		if err == nil {
			return res.data, res.status, nil
		}
		var stop *stopError
		if errors.As(err, &stop) {
			return nil, 0, stop.err
		}
		var retryAfter string
		if res != nil {
			retryAfter = res.retryAfter
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("%w (stopped: %v)", err, context.Cause(ctx))
		}
		if !retryable(err) {
			return nil, 0, err
		}
		if cl.once && mayHaveLanded(err) {
			return nil, 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		if attempt >= c.retry.MaxAttempts {
			return nil, 0, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		wait := c.wait(attempt, retryAfter)
		if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
			return nil, 0, fmt.Errorf("%w (no retry: waiting %s would pass the deadline)", err, wait.Round(time.Millisecond))
		}
		if c.onRetry != nil {
			c.onRetry(cl.op, attempt, err, wait)
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, 0, fmt.Errorf("%w (stopped while waiting to retry: %v)", err, serr)
		}
		if cl.upload != nil && cl.upload.ambiguous {
			// The previous attempt may have delivered the file: look
			// before sending it again, so that it is not in the session twice.
			cl.upload.ambiguous = false
			if s := cl.upload.alreadyThere(ctx, started); s != nil {
				return nil, 0, &alreadyUploaded{session: s}
			}
			if cl.upload.timedOut {
				// The whole file was sent and no answer came in time: Graph
				// may still be storing it. Sending it again could make two
				// copies; the caller's retry checks the session first.
				return nil, 0, review.Errorf(review.Transient,
					"%v (not sent again: the file was sent whole and Graph may still record it)", err)
			}
		}
	}
}

// stopError ends the retries at once with err (a 401 after a refresh is
// handled inside attempt; this carries body errors that must not be retried
// and token failures).
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// alreadyUploaded is returned by doWith when a verification found the file
// of an ambiguous upload attempt in the session.
type alreadyUploaded struct{ session *Session }

func (e *alreadyUploaded) Error() string { return "graph upload: file already in the session" }

// retryable reports whether err (from one attempt) is worth another.
func retryable(err error) bool {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Retryable()
	}
	// A failure of the upload's own reader: retry unless its kind says it
	// will never succeed (an invalid CSV).
	return review.IsRetryable(err)
}

// wait returns how long to wait after a failed attempt: the server's
// Retry-After when given, else a full-jitter draw below the capped
// exponential ceiling.
func (c *Client) wait(attempt int, retryAfter string) time.Duration {
	if d, ok := parseRetryAfter(retryAfter, c.now()); ok {
		return min(d, maxRetryAfter)
	}
	ceiling := c.retry.MaxDelay
	if shift := attempt - 1; shift < 32 {
		if d := c.retry.BaseDelay << shift; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(c.jitter(int64(ceiling) + 1))
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// attempt sends cl once. It returns the response data for a 2xx; an *Error
// for an error status or a transport failure; a *stopError when no further
// attempt may be made; or the upload reader's error.
func (c *Client) attempt(ctx context.Context, cl *call, st *callState) (*attemptResult, error) {
	for {
		tok, err := c.tokens.Token(ctx, false)
		if err != nil {
			return nil, &stopError{fmt.Errorf("graph %s: getting a token: %w", cl.op, err)}
		}
		res, err := c.send(ctx, cl, tok)
		if err != nil {
			return res, err
		}
		if res.status == http.StatusUnauthorized && !st.refreshed {
			// An expired or revoked token: one refresh, one more try.
			st.refreshed = true
			if c.onRetry != nil {
				c.onRetry(cl.op, 0, res.err(cl.op), 0)
			}
			if _, err := c.tokens.Token(ctx, true); err != nil {
				return nil, &stopError{fmt.Errorf("graph %s: refreshing the token after 401: %w", cl.op, err)}
			}
			continue
		}
		if res.status < 200 || res.status > 299 {
			return res, res.err(cl.op)
		}
		return res, nil
	}
}

// send makes one HTTP exchange.
func (c *Client) send(ctx context.Context, cl *call, token string) (*attemptResult, error) {
	var (
		body io.Reader
		ub   *uploadAttempt
		err  error
	)
	switch {
	case cl.upload != nil:
		ub, err = cl.upload.open(ctx)
		if err != nil {
			return nil, cl.upload.classify(err)
		}
		defer ub.close()
		body = ub
	case cl.json != nil:
		body = bytes.NewReader(cl.json)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.url, body)
	if err != nil {
		return nil, &stopError{fmt.Errorf("graph %s: %w", cl.op, err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "byodrop")
	switch {
	case ub != nil:
		req.ContentLength = ub.length
		req.GetBody = nil // the transport must not replay the stream on its own
		req.Header.Set("Content-Type", ub.contentType)
	case cl.json != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if ub != nil {
		if berr := ub.bodyErr(); berr != nil {
			// The reader's failure, not the transport's report of it, says
			// what to do.
			if resp != nil {
				resp.Body.Close()
			}
			return nil, cl.upload.classify(berr)
		}
	}
	if err != nil {
		if ub != nil && ub.sentAll() {
			cl.upload.ambiguous = true
			var ne net.Error
			cl.upload.timedOut = errors.As(err, &ne) && ne.Timeout()
		}
		return nil, &Error{Op: cl.op, Err: stripURL(err)}
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if rerr != nil {
		if ub != nil && resp.StatusCode < 300 {
			cl.upload.ambiguous = true
		}
		return nil, &Error{Op: cl.op, StatusCode: 0, Err: fmt.Errorf("reading the %d response: %w", resp.StatusCode, rerr)}
	}
	if len(data) > maxResponseBody {
		return nil, &Error{Op: cl.op, Err: fmt.Errorf("response larger than %d bytes", maxResponseBody)}
	}
	if ub != nil && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout) && ub.sentAll() {
		// A gateway gave up waiting; the service may still have stored it.
		cl.upload.ambiguous = true
	}
	return &attemptResult{status: resp.StatusCode, data: data, retryAfter: resp.Header.Get("Retry-After"),
		header: resp.Header}, nil
}

// err builds the *Error of a non-2xx result.
func (r *attemptResult) err(op string) error {
	return errorFromResponse(op, &http.Response{StatusCode: r.status, Header: r.header}, r.data)
}

// stripURL drops the *url.Error layer, whose text repeats the whole request
// URL; the Error already names the operation.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
