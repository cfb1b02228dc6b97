package reliability_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byodrop/byodrop/internal/claim"
	"github.com/byodrop/byodrop/internal/entra"
	"github.com/byodrop/byodrop/internal/finalize"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/harness"
	"github.com/byodrop/byodrop/internal/ingest"
	"github.com/byodrop/byodrop/internal/review"
	"github.com/byodrop/byodrop/internal/testenv"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Most cases spend their time waiting (Retry-After, timeouts), not
	// computing: run more of them at once than the two cores suggest,
	// unless -parallel was given.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

// rigOptions shape a rig: a harness world whose Graph client, token source
// and S3 client are built here, so that tests can watch and break them.
type rigOptions struct {
	harness.Options
	// PerTryTimeout bounds the wait for each Graph or Entra response
	// (the transport's ResponseHeaderTimeout, as in graph's default
	// client); 0: no bound but the context's.
	PerTryTimeout time.Duration
	// S3Transport wraps the S3 client's transport (nil: unchanged).
	S3Transport func(http.RoundTripper) http.RoundTripper
	// PrecheckBytes is the handler's setting (0: its default).
	PrecheckBytes int64
}

// rig is one assembled byodrop with instrumented clients.
type rig struct {
	*harness.World
	t       testing.TB
	graph   *graph.Client
	tokens  *entra.Source
	handler *ingest.Handler
	hooks   *hookTransport
	logs    *lockedBuffer
	retries atomic.Int64 // Graph client retries (OnRetry calls)
}

// fastRetry keeps the cases quick while still allowing real retries.
var fastRetry = graph.RetryPolicy{MaxAttempts: 3, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}

func newRig(t testing.TB, opts rigOptions) *rig {
	t.Helper()
	logs := &lockedBuffer{}
	if opts.Log == nil {
		opts.Log = logs
	}
	if opts.Retry.MaxAttempts == 0 {
		opts.Retry = fastRetry
	}
	w := harness.New(t, opts.Options)
	r := &rig{World: w, t: t, logs: logs}

	base := w.Emu.Client().Transport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = opts.PerTryTimeout
	r.hooks = &hookTransport{next: base, emu: w.Emu}
	hc := &http.Client{Transport: r.hooks}

	eo := w.Emu.Options()
	var err error
	r.tokens, err = entra.NewSecretSource(entra.Options{
		TenantID: eo.TenantID, ClientID: eo.ClientID, ClientSecret: eo.ClientSecret,
		AuthorityHost: w.Emu.AuthorityHost(), HTTPClient: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.graph, err = graph.New(graph.Config{
		Endpoint: w.Emu.URL(), Profile: w.Graph.Profile(), Tokens: r.tokens, HTTPClient: hc, Retry: opts.Retry,
		OnRetry: func(string, int, error, time.Duration) { r.retries.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	s3c := w.S3Client
	if opts.S3Transport != nil {
		o := s3c.Options()
		o.HTTPClient = &http.Client{Transport: opts.S3Transport(http.DefaultTransport.(*http.Transport).Clone())}
		s3c = s3.New(o)
	}
	h := *w.Ingest
	h.Graph, h.S3, h.PrecheckBytes = r.graph, s3c, opts.PrecheckBytes
	// The instance check reads through the rig's client too, as in
	// production, so that every request is counted and faulted alike.
	rv, err := r.graph.Reviews(w.Settings.ReviewsAPI)
	if err != nil {
		t.Fatal(err)
	}
	h.Reviews = rv
	r.handler = &h
	return r
}

// ingest invokes the handler with one event of recs.
func (r *rig) ingest(ctx context.Context, recs ...eventRecord) error {
	return r.handler.Handle(ctx, harness.Payload(recs...))
}

// closer is a finalizer on the rig's Graph client whose clock reads now.
func (r *rig) closer(owner string, now func() time.Time) *finalize.Closer {
	c := r.Closer(owner)
	c.Graph, c.Now = r.graph, now
	return c
}

// finalizeLater runs the finalizer with a clock past the quiet period.
func (r *rig) finalizeLater(ctx context.Context) (finalize.Summary, error) {
	later := func() time.Time { return time.Now().Add(r.Settings.QuietPeriod + time.Minute) }
	return r.closer("finalizer", later).Run(ctx)
}

// report reads the report of key, or a zero one when there is none.
func (r *rig) report(key string) review.Report {
	rep, err := r.Ledger.Report(context.Background(), key)
	if err != nil {
		return review.Report{}
	}
	return *rep
}

// claim reads the claim on an event's object version.
func (r *rig) claim(rec eventRecord) (*claim.Claim, error) {
	return claim.New(r.Ledger).Read(context.Background(), refOf(rec))
}

// files returns every file of every emulator session.
func (r *rig) files() []graphemu.FileView {
	var out []graphemu.FileView
	for _, s := range r.Emu.Sessions() {
		out = append(out, s.Files...)
	}
	return out
}

// statuses lists the journal's answers to op, in order: the status, or
// "reset" when the connection was cut without one.
func (r *rig) statuses(op string) string {
	var out []string
	for _, j := range r.Emu.Journal() {
		if j.Op != op {
			continue
		}
		s := fmt.Sprint(j.Status)
		if j.Status == 0 {
			s = "reset"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// eventRecord is an S3 event record, as harness.Put returns it.
type eventRecord = events.S3EventRecord

// refOf is the claim reference of an event's object version.
func refOf(rec eventRecord) claim.Ref {
	return harness.RefOf(rec)
}

// hookTransport carries the Graph and Entra requests of a rig. It names
// each request's operation as the emulator does, can expire every issued
// token just before the next request of an operation (so that request
// meets a real expired token), and keeps every bearer token it carried.
type hookTransport struct {
	next http.RoundTripper
	emu  *graphemu.Server

	mu      sync.Mutex
	expire  map[string]int // op -> requests that expire the tokens first
	bearers map[string]bool
	paths   []string
}

// expireBefore makes the next n requests of op meet expired tokens.
func (h *hookTransport) expireBefore(op string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.expire == nil {
		h.expire = map[string]int{}
	}
	h.expire[op] = n
}

func (h *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := opOf(req)
	h.mu.Lock()
	fire := h.expire[op] > 0
	if fire {
		h.expire[op]--
	}
	if h.bearers == nil {
		h.bearers = map[string]bool{}
	}
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		h.bearers[tok] = true
	}
	h.paths = append(h.paths, req.URL.EscapedPath())
	h.mu.Unlock()
	if fire {
		h.emu.ExpireTokens()
	}
	return h.next.RoundTrip(req)
}

// tokensSeen returns every bearer token sent.
func (h *hookTransport) tokensSeen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.bearers))
	for t := range h.bearers {
		out = append(out, t)
	}
	return out
}

// opOf names a request's operation the way the emulator's journal does.
func opOf(req *http.Request) string {
	p := req.URL.Path
	switch {
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		return "token"
	case strings.HasSuffix(p, "/uploadFile"):
		return "upload"
	case !strings.Contains(p, "/uploadSessions"):
		return "discovery"
	case req.Method == http.MethodPatch:
		return "patch"
	case req.Method == http.MethodDelete:
		return "delete"
	case req.Method == http.MethodPost:
		return "create"
	case strings.HasSuffix(strings.TrimSuffix(p, "/"), "/uploadSessions"):
		return "list"
	default:
		return "get"
	}
}

// lockedBuffer is a log sink safe for concurrent writers and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const header = "PrincipalId,PrincipalType,PermissionId,PermissionName,PermissionDescription,PermissionType,ScopeId,ScopeDisplayName,EntitlementOwners_Users,EntitlementOwners_Groups,CustomData\r\n"

// csvRows returns a valid Entra-template CSV with n data rows; seed makes
// the content (and so the SHA-256) differ between files.
func csvRows(n, seed int) []byte {
	var b strings.Builder
	b.WriteString(header)
	for i := range n {
		fmt.Fprintf(&b, "%08x-1111-4111-8111-%012x,EntraIdUser,door-%d,Door %d,Badge access,Access,site-1,HQ,\"aaaaaaaa-1111-4111-8111-111111111111,bbbbbbbb-1111-4111-8111-111111111111\",cccccccc-1111-4111-8111-111111111111,\r\n", i, seed, i, i)
	}
	return []byte(b.String())
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// cutBody fails an HTTP response body with err after n bytes.
type cutBody struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		return n, err
	}
	return n, nil
}

func (c *cutBody) Close() error { return c.rc.Close() }

// getCutter cuts the body of the nth GetObject of bucket (1-based) after
// some bytes, with a connection-reset error, once.
type getCutter struct {
	next   http.RoundTripper
	bucket string
	nth    int64
	after  int64
	gets   atomic.Int64
	cut    atomic.Bool
}

var errCut = errors.New("read tcp 127.0.0.1: connection reset by peer (injected)")

func (g *getCutter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(req.URL.Path, "/"+g.bucket+"/") || req.URL.Query().Has("list-type") {
		return resp, err
	}
	if g.gets.Add(1) == g.nth {
		g.cut.Store(true)
		resp.Body = &cutBody{rc: resp.Body, left: g.after, err: errCut}
	}
	return resp, err
}
