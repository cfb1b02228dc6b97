package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

const sessionID = "0b64df22-1a83-472c-9556-6c3dc41742b9"

// fakeTokens hands out "tok-N", N growing with each refresh.
type fakeTokens struct {
	mu        sync.Mutex
	calls     int
	refreshes int
	err       error
}

func (f *fakeTokens) Token(ctx context.Context, refresh bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return "", f.err
	}
	if refresh {
		f.refreshes++
	}
	return fmt.Sprintf("tok-%d", f.refreshes), nil
}

// recorded is what a test server saw of one request.
type recorded struct {
	Method, Path, RawQuery, Auth, ContentType string
	Query                                     map[string][]string
	Body                                      []byte
}

type testEnv struct {
	c      *Client
	srv    *httptest.Server
	tokens *fakeTokens

	mu     sync.Mutex
	reqs   []recorded
	waits  []time.Duration
	events []string // OnRetry calls
}

func (e *testEnv) requests() []recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recorded(nil), e.reqs...)
}

// newEnv starts h behind a recording wrapper and a client for profile whose
// retries do not really sleep (waits are recorded instead). A handler that
// wants to read the body itself sets readBody false.
func newEnv(t *testing.T, profile string, readBody bool, h http.HandlerFunc) *testEnv {
	t.Helper()
	e := &testEnv{tokens: &fakeTokens{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Query: r.URL.Query(),
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		if readBody {
			rec.Body, _ = io.ReadAll(r.Body)
		}
		e.mu.Lock()
		e.reqs = append(e.reqs, rec)
		e.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(e.srv.Close)
	p, err := ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{
		Endpoint: e.srv.URL, Profile: p, Tokens: e.tokens, HTTPClient: e.srv.Client(),
		Retry: RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond},
		OnRetry: func(op string, attempt int, err error, wait time.Duration) {
			e.mu.Lock()
			e.events = append(e.events, fmt.Sprintf("%s#%d", op, attempt))
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
		return ctx.Err()
	}
	e.c = c
	return e
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, fmt.Sprintf(`{"error":{"code":%q,"message":%q,"innerError":{"request-id":"rid-%d"}}}`, code, msg, status))
}

const activeSession = `{"id":"` + sessionID + `","status":"Active","isUploadDone":false,"files":[]}`

func TestEachProfileSendsItsRequests(t *testing.T) {
	for _, prof := range []string{"v1.0", "beta", "beta-2025"} {
		t.Run(prof, func(t *testing.T) {
			e := newEnv(t, prof, true, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/uploadSessions"):
					writeJSON(w, 201, activeSession)
				case r.Method == http.MethodDelete:
					w.WriteHeader(204)
				case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/uploadSessions"):
					writeJSON(w, 200, `{"value":[`+activeSession+`]}`)
				default:
					writeJSON(w, 200, activeSession)
				}
			})
			p := e.c.Profile()
			coll := "/" + p.Version + p.CollectionPath(testTarget.CatalogID, testTarget.ResourceID)
			ctx := context.Background()

			s, err := e.c.Create(ctx, testTarget)
			if err != nil || s.ID != sessionID || s.Status != StatusActive {
				t.Fatalf("Create = %+v, %v", s, err)
			}
			if _, err := e.c.Get(ctx, testTarget, sessionID); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if _, err := e.c.MarkDone(ctx, testTarget, sessionID); err != nil {
				t.Fatalf("MarkDone: %v", err)
			}
			listErr := func() error { _, err := e.c.List(ctx, testTarget, Filter{}); return err }()
			delErr := e.c.Delete(ctx, testTarget, sessionID)
			if p.CanList != (listErr == nil) || p.CanDelete != (delErr == nil) {
				t.Fatalf("List err %v, Delete err %v for CanList %v CanDelete %v", listErr, delErr, p.CanList, p.CanDelete)
			}
			if !p.CanList && (!errors.Is(listErr, ErrListUnsupported) || !errors.Is(delErr, ErrDeleteUnsupported)) {
				t.Fatalf("unsupported errors: %v / %v", listErr, delErr)
			}
			if _, err := e.c.UploadFile(ctx, testTarget, sessionID, "a.csv", 3, openString("x,y")); err != nil {
				t.Fatalf("UploadFile: %v", err)
			}

			want := []struct{ method, path, query string }{
				{"POST", coll, ""},
				{"GET", coll + "/" + sessionID, "$expand=files"},
				{"PATCH", coll + "/" + sessionID, ""},
			}
			if p.CanList {
				want = append(want,
					struct{ method, path, query string }{"GET", coll, "$expand=files"},
					struct{ method, path, query string }{"DELETE", coll + "/" + sessionID, ""})
			}
			want = append(want, struct{ method, path, query string }{"POST", coll + "/" + sessionID + "/uploadFile", ""})
			got := e.requests()
			if len(got) != len(want) {
				t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
			}
			for i, w := range want {
				if got[i].Method != w.method || got[i].Path != w.path || got[i].RawQuery != w.query {
					t.Errorf("request %d: %s %s?%s, want %s %s?%s", i, got[i].Method, got[i].Path, got[i].RawQuery, w.method, w.path, w.query)
				}
				if got[i].Auth != "Bearer tok-0" {
					t.Errorf("request %d: Authorization %q", i, got[i].Auth)
				}
			}
			body, _ := p.CreateBody(testTarget)
			if string(got[0].Body) != string(body) || got[0].ContentType != "application/json" {
				t.Errorf("create body %s (%s), want %s", got[0].Body, got[0].ContentType, body)
			}
			if string(got[2].Body) != `{"isUploadDone":true}` || got[2].ContentType != "application/json" {
				t.Errorf("patch body %s (%s)", got[2].Body, got[2].ContentType)
			}
			if up := got[len(got)-1]; !strings.HasPrefix(up.ContentType, "multipart/form-data; boundary=") {
				t.Errorf("upload Content-Type %q", up.ContentType)
			}
		})
	}
}

func TestIdsAreCheckedBeforeAnyRequest(t *testing.T) {
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, activeSession) })
	ctx := context.Background()
	bad := testTarget
	bad.CatalogID = "../../me"
	noDef := testTarget
	noDef.ReviewDefinitionID = "x"
	calls := map[string]func() error{
		"create bad catalog":     func() error { _, err := e.c.Create(ctx, bad); return err },
		"create bad definition":  func() error { _, err := e.c.Create(ctx, noDef); return err },
		"get bad catalog":        func() error { _, err := e.c.Get(ctx, bad, sessionID); return err },
		"list bad reference":     func() error { _, err := e.c.List(ctx, testTarget, Filter{ReferenceID: "x' or 1 eq 1"}); return err },
		"list bad status":        func() error { _, err := e.c.List(ctx, testTarget, Filter{Status: "active' or '"}); return err },
		"patch empty session":    func() error { _, err := e.c.MarkDone(ctx, testTarget, ""); return err },
		"delete dot-dot session": func() error { return e.c.Delete(ctx, testTarget, "..") },
		"upload control in id": func() error {
			_, err := e.c.UploadFile(ctx, testTarget, "a\nb", "a.csv", 1, openString("x"))
			return err
		},
		"upload control in name": func() error {
			_, err := e.c.UploadFile(ctx, testTarget, sessionID, "a\x00.csv", 1, openString("x"))
			return err
		},
		"upload empty name": func() error { _, err := e.c.UploadFile(ctx, testTarget, sessionID, "", 1, openString("x")); return err },
		"upload bad utf-8 name": func() error {
			_, err := e.c.UploadFile(ctx, testTarget, sessionID, "\xff.csv", 1, openString("x"))
			return err
		},
		"upload negative size": func() error {
			_, err := e.c.UploadFile(ctx, testTarget, sessionID, "a.csv", -1, openString("x"))
			return err
		},
		"upload bad resource id": func() error {
			bad := testTarget
			bad.ResourceID = "r"
			_, err := e.c.UploadFile(ctx, bad, sessionID, "a.csv", 1, openString("x"))
			return err
		},
	}
	for name, call := range calls {
		if err := call(); review.KindOf(err) != review.Invalid {
			t.Errorf("%s: %v (kind %v), want invalid", name, err, review.KindOf(err))
		}
	}
	if n := len(e.requests()); n != 0 {
		t.Fatalf("%d requests sent, want none", n)
	}
}

func TestSessionIdMustBeAGUID(t *testing.T) {
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, activeSession) })
	for _, id := range []string{"a/b?c#d e", "../../x", "..", "", "%2e%2e", strings.Repeat("a", 36)} {
		if _, err := e.c.Get(context.Background(), testTarget, id); review.KindOf(err) != review.Invalid {
			t.Errorf("Get(%q): %v (kind %v), want invalid", id, err, review.KindOf(err))
		}
	}
	if n := len(e.requests()); n != 0 {
		t.Fatalf("%d requests sent, want none", n)
	}
}

func TestListFiltersAndFollowsNextLinks(t *testing.T) {
	var srvURL string
	e := newEnv(t, "beta", true, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("$skiptoken") {
		case "":
			writeJSON(w, 200, fmt.Sprintf(`{"value":[{"id":"s1","status":"active"}],"@odata.nextLink":"%s%s?$skiptoken=p2"}`, srvURL, r.URL.Path))
		case "p2":
			writeJSON(w, 200, `{"value":[{"id":"s2","status":"Active"},{"id":"s3","status":"active"}]}`)
		}
	})
	srvURL = e.srv.URL
	got, err := e.c.List(context.Background(), testTarget, Filter{ReferenceID: testTarget.ReviewInstanceID, Status: "Active"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != "s1" || got[2].ID != "s3" || got[1].Status != StatusActive {
		t.Fatalf("sessions %+v", got)
	}
	reqs := e.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	wantFilter := "referenceId eq '" + testTarget.ReviewInstanceID + "' and status eq 'active'"
	if f := reqs[0].Query["$filter"]; len(f) != 1 || f[0] != wantFilter || reqs[0].Query["$expand"][0] != "files" {
		t.Errorf("query %v, want $filter=%s", reqs[0].Query, wantFilter)
	}
	if !strings.HasPrefix(reqs[0].RawQuery, "$filter=referenceId%20eq%20%27") {
		t.Errorf("raw query %s: want $filter with %%20 spaces", reqs[0].RawQuery)
	}
}

func TestListRefusesNextLinksOffTheEndpoint(t *testing.T) {
	var other sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Store("hit", r.Header.Get("Authorization"))
		writeJSON(w, 200, `{"value":[]}`)
	}))
	defer elsewhere.Close()
	for name, link := range map[string]func(self string) string{
		"other host":   func(string) string { return elsewhere.URL + "/v1.0/next" },
		"other scheme": func(self string) string { return strings.Replace(self, "http://", "https://", 1) + "/next" },
		"relative":     func(string) string { return "/v1.0/next" },
	} {
		t.Run(name, func(t *testing.T) {
			var self string
			e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, fmt.Sprintf(`{"value":[{"id":"s1"}],"@odata.nextLink":%q}`, link(self)))
			})
			self = e.srv.URL
			_, err := e.c.List(context.Background(), testTarget, Filter{})
			if err == nil || !strings.Contains(err.Error(), "not followed") {
				t.Fatalf("List = %v, want a refusal", err)
			}
			if len(e.requests()) != 1 {
				t.Fatalf("%d requests", len(e.requests()))
			}
		})
	}
	if v, hit := other.Load("hit"); hit {
		t.Fatalf("the other host got a request (Authorization %q)", v)
	}
}

func TestListStopsOnARepeatedNextLink(t *testing.T) {
	var self string
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, fmt.Sprintf(`{"value":[],"@odata.nextLink":"%s/v1.0/loop"}`, self))
	})
	self = e.srv.URL
	if _, err := e.c.List(context.Background(), testTarget, Filter{}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Fatalf("List = %v", err)
	}
}

// statusSequence answers each request with the next status of seq (the
// last repeats); 2xx answers carry an active session.
func statusSequence(seq []int, header http.Header) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st := seq[min(i, len(seq)-1)]
		i++
		mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		if st >= 200 && st < 300 {
			writeJSON(w, st, activeSession)
			return
		}
		graphError(w, st, http.StatusText(st), "try later")
	}
}

func TestRetriesTransientStatusesThenSucceeds(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{503, 500, 408, 200}, nil))
	e.c.jitter = func(n int64) int64 { return n - 1 } // the ceiling
	s, err := e.c.Get(context.Background(), testTarget, sessionID)
	if err != nil || s.ID != sessionID {
		t.Fatalf("Get = %+v, %v", s, err)
	}
	if n := len(e.requests()); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
	// Capped exponential: 1ms, 2ms, 4ms (cap 4ms).
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	if fmt.Sprint(e.waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", e.waits, want)
	}
	if fmt.Sprint(e.events) != "[get#1 get#2 get#3]" {
		t.Errorf("OnRetry calls %v", e.events)
	}
}

func TestBackoffIsFullJitterBelowTheCappedCeiling(t *testing.T) {
	c := &Client{retry: RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}, now: time.Now}
	var asked []int64
	c.jitter = func(n int64) int64 { asked = append(asked, n); return 0 }
	for attempt := 1; attempt <= 40; attempt++ {
		if d := c.wait(attempt, ""); d != 0 {
			t.Fatalf("attempt %d: wait %v, want the jitter's draw", attempt, d)
		}
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if asked[i] != int64(w*time.Millisecond)+1 {
			t.Errorf("attempt %d: drawn below %v, want below %v", i+1, time.Duration(asked[i]), w*time.Millisecond)
		}
	}
	for i, n := range asked {
		if n <= 0 || n > int64(time.Second)+1 {
			t.Fatalf("attempt %d: ceiling %d out of bounds (overflow?)", i+1, n)
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{"seconds", "3", 3 * time.Second},
		{"zero", "0", 0},
		{"HTTP-date", now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{"HTTP-date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"huge is capped", "86400", maxRetryAfter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "v1.0", true, statusSequence([]int{429, 200}, http.Header{"Retry-After": {tc.value}}))
			e.c.now = func() time.Time { return now }
			if _, err := e.c.Get(context.Background(), testTarget, sessionID); err != nil {
				t.Fatal(err)
			}
			if len(e.waits) != 1 || e.waits[0] != tc.want {
				t.Fatalf("waits %v, want [%v]", e.waits, tc.want)
			}
		})
	}
	// A value that is neither form falls back to backoff.
	if _, ok := parseRetryAfter("soon", now); ok {
		t.Error("parseRetryAfter(soon) accepted")
	}
	if _, ok := parseRetryAfter("-5", now); ok {
		t.Error("parseRetryAfter(-5) accepted")
	}
}

func TestRetryAfterReallyWaits(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{503, 200}, http.Header{"Retry-After": {"1"}}))
	e.c.sleep = sleepCtx
	start := time.Now()
	if _, err := e.c.Get(context.Background(), testTarget, sessionID); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("returned after %v, before the Retry-After of 1s", d)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	for _, st := range []int{400, 403, 404, 409, 413, 501} {
		e := newEnv(t, "v1.0", true, statusSequence([]int{st}, nil))
		_, err := e.c.Get(context.Background(), testTarget, sessionID)
		var ge *Error
		if !errors.As(err, &ge) || ge.StatusCode != st || ge.RequestID != fmt.Sprintf("rid-%d", st) || ge.Op != OpGet {
			t.Errorf("%d: error %v", st, err)
		}
		if n := len(e.requests()); n != 1 {
			t.Errorf("%d: %d requests, want 1", st, n)
		}
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{503}, nil))
	_, err := e.c.Get(context.Background(), testTarget, sessionID)
	if err == nil || !strings.Contains(err.Error(), "after 5 attempts") || review.KindOf(err) != review.Transient {
		t.Fatalf("error %v (kind %v)", err, review.KindOf(err))
	}
	if n := len(e.requests()); n != 5 {
		t.Fatalf("%d requests, want 5", n)
	}
}

func TestNoRetryWaitsPastTheDeadline(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{429}, http.Header{"Retry-After": {"30"}}))
	e.c.sleep = sleepCtx
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.c.Get(ctx, testTarget, sessionID)
	if time.Since(start) > time.Second {
		t.Fatalf("took %v: it waited", time.Since(start))
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.StatusCode != 429 || !strings.Contains(err.Error(), "would pass the deadline") {
		t.Fatalf("error %v, want the 429 with a deadline note", err)
	}
	if review.KindOf(err) != review.Transient {
		t.Fatalf("kind %v", review.KindOf(err))
	}
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

func TestBackoffStopsBeforeTheDeadline(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{503}, nil))
	e.c.sleep = sleepCtx
	e.c.retry = RetryPolicy{MaxAttempts: 100, BaseDelay: 20 * time.Millisecond, MaxDelay: 150 * time.Millisecond}
	e.c.jitter = func(n int64) int64 { return n - 1 }
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := e.c.Get(ctx, testTarget, sessionID)
	if ctx.Err() != nil {
		t.Fatalf("returned after the deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "would pass the deadline") {
		t.Fatalf("error %v", err)
	}
	if n := len(e.requests()); n < 3 {
		t.Fatalf("only %d requests before the deadline", n)
	}
}

func TestA401RefreshesTheTokenOnce(t *testing.T) {
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			graphError(w, 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
			return
		}
		writeJSON(w, 200, activeSession)
	})
	if _, err := e.c.Get(context.Background(), testTarget, sessionID); err != nil {
		t.Fatal(err)
	}
	if e.tokens.refreshes != 1 || len(e.requests()) != 2 || len(e.waits) != 0 {
		t.Fatalf("refreshes %d, requests %d, waits %v", e.tokens.refreshes, len(e.requests()), e.waits)
	}
	if fmt.Sprint(e.events) != "[get#0]" {
		t.Errorf("OnRetry calls %v", e.events)
	}
}

func TestA401AfterTheRefreshIsReturned(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{401}, nil))
	_, err := e.c.MarkDone(context.Background(), testTarget, sessionID)
	var ge *Error
	if !errors.As(err, &ge) || ge.StatusCode != 401 {
		t.Fatalf("error %v", err)
	}
	if review.KindOf(err) != review.Internal {
		t.Errorf("kind %v: a credential problem must not reject the file", review.KindOf(err))
	}
	if e.tokens.refreshes != 1 || len(e.requests()) != 2 {
		t.Fatalf("refreshes %d, requests %d; want 1 and 2", e.tokens.refreshes, len(e.requests()))
	}
}

func TestOneRefreshPerCallAcrossListPages(t *testing.T) {
	var self string
	var mu sync.Mutex
	n := 0
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		switch {
		case i == 1: // page 1, old token
			graphError(w, 401, "InvalidAuthenticationToken", "expired")
		case i == 2: // page 1, refreshed
			writeJSON(w, 200, fmt.Sprintf(`{"value":[{"id":"a"}],"@odata.nextLink":"%s/v1.0/p2"}`, self))
		default: // page 2 refuses again: no second refresh in this call
			graphError(w, 401, "InvalidAuthenticationToken", "expired")
		}
	})
	self = e.srv.URL
	if _, err := e.c.List(context.Background(), testTarget, Filter{}); err == nil {
		t.Fatal("List succeeded")
	}
	if e.tokens.refreshes != 1 || len(e.requests()) != 3 {
		t.Fatalf("refreshes %d, requests %d; want 1 and 3", e.tokens.refreshes, len(e.requests()))
	}
}

func TestATokenFailureSendsNothing(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{200}, nil))
	e.tokens.err = review.Errorf(review.Internal, "AADSTS7000215: Invalid client secret provided")
	_, err := e.c.Create(context.Background(), testTarget)
	if err == nil || !strings.Contains(err.Error(), "getting a token") || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("error %v", err)
	}
	if len(e.requests()) != 0 {
		t.Fatal("a request was sent without a token")
	}
}

// hijackClose drops the connection without an answer.
func hijackClose(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST, as a crashing proxy would
	}
	conn.Close()
}

func TestALostConnectionIsRetried(t *testing.T) {
	var mu sync.Mutex
	n := 0
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			hijackClose(t, w)
			return
		}
		writeJSON(w, 201, activeSession)
	})
	if _, err := e.c.Create(context.Background(), testTarget); err != nil {
		t.Fatal(err)
	}
	if len(e.requests()) != 2 {
		t.Fatalf("%d requests", len(e.requests()))
	}
}

func TestMarkDoneIsIdempotent(t *testing.T) {
	done := `{"id":"` + sessionID + `","status":"complete","isUploadDone":true}`
	t.Run("refused because already closed", func(t *testing.T) {
		e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				graphError(w, 400, "BadRequest", "Upload session is not active")
				return
			}
			writeJSON(w, 200, done)
		})
		s, err := e.c.MarkDone(context.Background(), testTarget, sessionID)
		if err != nil || !s.IsUploadDone || s.Status != StatusComplete {
			t.Fatalf("MarkDone = %+v, %v", s, err)
		}
	})
	t.Run("refused because expired", func(t *testing.T) {
		e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				graphError(w, 400, "BadRequest", "Upload session has expired")
				return
			}
			writeJSON(w, 200, `{"id":"`+sessionID+`","status":"expired","isUploadDone":false}`)
		})
		_, err := e.c.MarkDone(context.Background(), testTarget, sessionID)
		if review.KindOf(err) != review.Gone {
			t.Fatalf("MarkDone = %v (kind %v), want gone", err, review.KindOf(err))
		}
	})
	t.Run("204 reads the session back", func(t *testing.T) {
		e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				w.WriteHeader(204)
				return
			}
			writeJSON(w, 200, done)
		})
		s, err := e.c.MarkDone(context.Background(), testTarget, sessionID)
		if err != nil || !s.IsUploadDone {
			t.Fatalf("MarkDone = %+v, %v", s, err)
		}
		if r := e.requests(); len(r) != 2 || r[1].Method != "GET" {
			t.Fatalf("requests %+v", r)
		}
	})
}

func TestNewChecksItsConfiguration(t *testing.T) {
	p, _ := ProfileByName("v1.0")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"plain http off loopback", Config{Endpoint: "http://graph.microsoft.com", Profile: p, Tokens: &fakeTokens{}}, "GRAPH_ENDPOINT"},
		{"version in endpoint", Config{Endpoint: "https://graph.microsoft.com/v1.0/", Profile: p, Tokens: &fakeTokens{}}, "GRAPH_API"},
		{"beta in endpoint", Config{Endpoint: "https://graph.microsoft.com/beta", Profile: p, Tokens: &fakeTokens{}}, "GRAPH_API"},
		{"no profile", Config{Endpoint: "https://graph.microsoft.com", Tokens: &fakeTokens{}}, "profile"},
		{"no tokens", Config{Endpoint: "https://graph.microsoft.com", Profile: p}, "token"},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	for _, ok := range []string{"https://graph.microsoft.us", "http://127.0.0.1:8080/", "http://localhost:1", "https://proxy.example/graph/"} {
		c, err := New(Config{Endpoint: ok, Profile: p, Tokens: &fakeTokens{}})
		if err != nil {
			t.Errorf("New(%s): %v", ok, err)
			continue
		}
		if c.retry.MaxAttempts != DefaultMaxAttempts || c.retry.BaseDelay != DefaultBaseDelay || c.retry.MaxDelay != DefaultMaxDelay || c.hc == nil {
			t.Errorf("defaults not applied: %+v", c.retry)
		}
	}
}

func TestEndpointPathPrefixIsKept(t *testing.T) {
	e := newEnv(t, "v1.0", true, statusSequence([]int{200}, nil))
	p, _ := ProfileByName("v1.0")
	c, err := New(Config{Endpoint: e.srv.URL + "/graph/", Profile: p, Tokens: e.tokens, HTTPClient: e.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), testTarget, sessionID); err != nil {
		t.Fatal(err)
	}
	if got := e.requests()[0].Path; !strings.HasPrefix(got, "/graph/v1.0/identityGovernance/") {
		t.Fatalf("path %s", got)
	}
}

// A body that is not a session is an error, not an empty session.
func TestAnUnreadableSuccessIsAnError(t *testing.T) {
	e := newEnv(t, "v1.0", true, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 201, `{"value":[]}`) })
	_, err := e.c.Create(context.Background(), testTarget)
	if err == nil || !strings.Contains(err.Error(), "graph create") || !strings.Contains(err.Error(), "no id") {
		t.Fatalf("error %v", err)
	}
}
