// Package graphemu emulates the parts of Microsoft Graph and Microsoft Entra
// that byodrop talks to: the app-only token endpoint (with the discovery
// documents MSAL reads first) and the upload-session API of the three API
// profiles of graph-contract.md. Like net/http/httptest it starts a real
// server (HTTPS on a loopback port, with a generated CA) that unit tests,
// `make local` and the benchmarks share.
//
// The emulator is strict on purpose: it enforces every documented rule and
// refuses with the error shapes of the real services, so that it catches a
// client's mistakes instead of hiding them. Uploads are streamed and hashed,
// never buffered; only each file's name, size and SHA-256 are kept.
package graphemu

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. Zero fields take the values of DefaultOptions.
type Options struct {
	// TenantID, ClientID and ClientSecret are the only tenant and app the
	// token endpoint knows.
	TenantID, ClientID, ClientSecret string
	// TokenTTL is the lifetime of issued access tokens (default 1h).
	TokenTTL time.Duration
	// UploadWindow is how long a session accepts data after its creation
	// (default 2h). A session still active when it passes becomes expired,
	// evaluated lazily on every access.
	UploadWindow time.Duration
	// Now is the emulator's clock (default time.Now); Advance moves it.
	Now func() time.Time
	// AssertionCheck, when set, decides whether a client_assertion JWT
	// (already checked for shape, audience and lifetime) is accepted; its
	// error text becomes the error_description. Nil accepts any such JWT:
	// signatures are not verified unless a checker does it.
	AssertionCheck func(jwt string) error
	// Addr is the listening address (default 127.0.0.1:0). Only loopback
	// addresses are accepted.
	Addr string
	// MaxPageSize is the largest page LIST answers, whatever $top asks
	// (default 100), so that clients meet @odata.nextLink without $top.
	MaxPageSize int
	// OnRequest, when set, is called after every request with its journal
	// entry (for logging in cmd/graphemu). It must not block.
	OnRequest func(Request)
	// Refusals picks how the emulator words and codes the refusals that
	// Graph's documentation leaves open (zero: the documented-looking
	// defaults). Clients must behave the same under every RefusalModes.
	Refusals Refusals
}

// DefaultOptions returns the options Start uses for zero fields: a fixed
// tenant, app and secret that local runs can put in their environment.
func DefaultOptions() Options {
	return Options{
		TenantID:     "0e0e0e0e-0000-4000-8000-00000000aaaa",
		ClientID:     "0c0c0c0c-0000-4000-8000-00000000bbbb",
		ClientSecret: "graphemu-client-secret",
		TokenTTL:     time.Hour,
		UploadWindow: 2 * time.Hour,
		Now:          time.Now,
		Addr:         "127.0.0.1:0",
		MaxPageSize:  100,
	}
}

// Server is a running emulator. All methods are safe for concurrent use.
type Server struct {
	opts   Options
	ln     net.Listener
	srv    *http.Server
	url    string
	pool   *x509.CertPool
	caPEM  []byte
	tmpDir string
	caFile string
	client *http.Client

	closing   chan struct{}
	closeOnce sync.Once
	active    sync.WaitGroup
	activeMu  sync.Mutex
	closed    bool

	mu       sync.Mutex
	offset   time.Duration
	tokens   map[string]*token
	sessions map[string]*session // by lower-case id
	byPair   map[string]*session // by catalog/resource/instance, lower case
	seq      int64
	faults   []*faultState
	journal  []Request
	reviews  reviewsState // access reviews and catalog resources (reviews.go)
}

// Start starts an emulator serving HTTPS on opts.Addr (127.0.0.1:0 by
// default) with a freshly generated CA. Close it when done.
func Start(opts Options) (*Server, error) {
	d := DefaultOptions()
	if opts.TenantID == "" {
		opts.TenantID = d.TenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = d.ClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = d.ClientSecret
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = d.TokenTTL
	}
	if opts.UploadWindow <= 0 {
		opts.UploadWindow = d.UploadWindow
	}
	if opts.Now == nil {
		opts.Now = d.Now
	}
	if opts.Addr == "" {
		opts.Addr = d.Addr
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = d.MaxPageSize
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return nil, err
	}

	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("graphemu: listen on %s: %w", opts.Addr, err)
	}
	dir, err := os.MkdirTemp("", "graphemu-")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("graphemu: temp dir for the CA file: %w", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.certPEM, 0o644); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("graphemu: write CA file: %w", err)
	}

	s := &Server{
		opts:     opts,
		ln:       ln,
		url:      "https://" + ln.Addr().String(),
		pool:     ca.pool,
		caPEM:    ca.certPEM,
		tmpDir:   dir,
		caFile:   caFile,
		closing:  make(chan struct{}),
		tokens:   map[string]*token{},
		sessions: map[string]*session{},
		byPair:   map[string]*session{},
	}
	s.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}}
	s.srv = &http.Server{
		Handler: s,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{ca.leaf},
			MinVersion:   tls.VersionTLS12,
			// HTTP/1.1 only: injected resets hijack the connection.
			NextProtos: []string{"http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// TLS handshake errors from clients that do not trust the CA are
		// the client's to report; keep test output quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go s.srv.Serve(tls.NewListener(ln, s.srv.TLSConfig))
	return s, nil
}

// checkLoopback refuses listening addresses that are not loopback: the
// emulator accepts any well-formed client and must not be reachable.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("graphemu: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("graphemu: listen address %q is not a loopback address", addr)
}

// URL is the Graph endpoint base, without version, e.g. https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// AuthorityHost is the Entra authority host with a trailing slash; the token
// endpoint is {AuthorityHost}{tenant}/oauth2/v2.0/token.
func (s *Server) AuthorityHost() string { return s.url + "/" }

// TokenURL is the token endpoint of the configured tenant.
func (s *Server) TokenURL() string {
	return s.url + "/" + s.opts.TenantID + "/oauth2/v2.0/token"
}

// Options returns the options in effect, defaults filled in; ClientSecret
// is the one SetClientSecret set last.
func (s *Server) Options() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// SetClientSecret replaces the app's client secret, as rotating it in Entra
// does: from now on the token endpoint accepts the new secret only. Tokens
// already issued stay valid until they expire (see ExpireTokens).
func (s *Server) SetClientSecret(secret string) {
	s.mu.Lock()
	s.opts.ClientSecret = secret
	s.mu.Unlock()
}

// CAFile is the path of a PEM file holding the CA certificate, for the
// SSL_CERT_FILE of child processes. It is removed by Close.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM returns the CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool returns a pool holding the emulator's CA.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// Client returns an HTTP client that trusts the emulator's CA.
func (s *Server) Client() *http.Client { return s.client }

// Close stops the server, drops every connection, waits for the running
// handlers to return and removes the CA file.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.activeMu.Lock()
		s.closed = true
		s.activeMu.Unlock()
		close(s.closing)
		s.srv.Close()
		s.active.Wait()
		if t, ok := s.client.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
		os.RemoveAll(s.tmpDir)
	})
}

// enter registers a running handler; false once Close has begun.
func (s *Server) enter() bool {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	if s.closed {
		return false
	}
	s.active.Add(1)
	return true
}

// Now is the emulator's current time (Options.Now plus every Advance).
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time { return s.opts.Now().Add(s.offset) }

// Advance moves the emulator's clock forward by d: tokens and sessions
// expire as if that much time had passed.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// ExpireTokens makes every token issued so far expired; requests bearing
// one get 401 InvalidAuthenticationToken.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	for _, t := range s.tokens {
		if t.exp.After(now) {
			t.exp = now
		}
	}
}

// IssueToken returns a valid access token for Graph without a round trip to
// the token endpoint, for tests of the Graph side alone.
func (s *Server) IssueToken() string {
	tok, _ := s.issueToken("https://graph.microsoft.com")
	return tok
}

// ExpireSession makes the session with this id expired, as if its window
// had passed. Unknown ids are ignored.
func (s *Server) ExpireSession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.sessions[strings.ToLower(id)]; sess != nil && sess.status == statusActive {
		sess.status = statusExpired
	}
}

// SessionView is a snapshot of one upload session, for assertions.
type SessionView struct {
	ID                 string
	Profile            string // the profile whose path created it
	CatalogID          string
	ResourceID         string
	ReviewDefinitionID string
	ReviewInstanceID   string
	Source             string // beta-2025 only
	Status             string // active, complete or expired (lower case)
	IsUploadDone       bool
	CreatedAt          time.Time
	WindowEnd          time.Time // CreatedAt + UploadWindow
	TotalBytes         int64
	Files              []FileView
}

// FileView is one file recorded in a session: only what arrived whole.
type FileView struct {
	ID         string
	Name       string // the filename= of the multipart part, as sent
	Size       int64
	SHA256     string // lower-case hex
	UploadedAt time.Time
}

// Sessions returns every session (deleted ones excluded) in creation order.
func (s *Server) Sessions() []SessionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		s.refreshLocked(sess, now)
		all = append(all, sess)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	out := make([]SessionView, len(all))
	for i, sess := range all {
		out[i] = sess.view(s.opts.UploadWindow)
	}
	return out
}

// Session returns the session with this id, if it exists.
func (s *Server) Session(id string) (SessionView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[strings.ToLower(id)]
	if sess == nil {
		return SessionView{}, false
	}
	s.refreshLocked(sess, s.nowLocked())
	return sess.view(s.opts.UploadWindow), true
}

// Request is one journal entry: a request as the emulator saw it.
type Request struct {
	Method    string
	Path      string
	Query     string // raw query
	Op        string // token, discovery, create, get, list, patch, delete, upload; "" when no route matched
	Profile   string // v1.0, beta, beta-2025 for Graph operations
	Status    int    // status sent; 0 when the connection was reset without an answer
	Code      string // Graph error code or Entra error, "" on success
	Fault     string // the injected fault that applied: status, delay, reset, drop; "" if none
	BodyBytes int64  // request body bytes read
	RequestID string // the request-id header of the answer
	At        time.Time
	Duration  time.Duration // wall time spent handling it
}

// Journal returns every request handled so far, in completion order.
func (s *Server) Journal() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.journal...)
}

// ResetJournal forgets the journal.
func (s *Server) ResetJournal() {
	s.mu.Lock()
	s.journal = nil
	s.mu.Unlock()
}

// Count returns how many journal entries have this op (and, when status is
// not 0, this status).
func (s *Server) Count(op string, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.journal {
		if r.Op == op && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	s.journal = append(s.journal, r)
	s.mu.Unlock()
	if s.opts.OnRequest != nil {
		s.opts.OnRequest(r)
	}
}

// sleep waits d, or until ctx ends or the server closes; it reports whether
// the whole delay passed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// newGUID returns a random (version 4) GUID in lower case.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(errors.New("graphemu: no randomness: " + err.Error()))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
