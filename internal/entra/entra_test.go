package entra

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/review"
)

var _ graph.TokenSource = (*Source)(nil)

// fakeCred issues "cN-tM" tokens (credential N, token M) living ttl.
type fakeCred struct {
	n     int
	f     *fakeFactory
	calls atomic.Int32
}

func (c *fakeCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	m := c.calls.Add(1)
	if len(o.Scopes) != 1 || o.Scopes[0] != c.f.scope {
		return azcore.AccessToken{}, fmt.Errorf("scopes %v", o.Scopes)
	}
	if c.f.block != nil {
		<-c.f.block
	}
	if c.f.err != nil {
		return azcore.AccessToken{}, c.f.err
	}
	return azcore.AccessToken{Token: fmt.Sprintf("c%d-t%d", c.n, m), ExpiresOn: c.f.now().Add(c.f.ttl)}, nil
}

type fakeFactory struct {
	mu        sync.Mutex
	scope     string
	ttl       time.Duration
	now       func() time.Time
	builds    int
	refreshes int
	err       error
	buildErr  error
	block     chan struct{}
}

func (f *fakeFactory) new(ctx context.Context, refresh bool) (azcore.TokenCredential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buildErr != nil {
		return nil, f.buildErr
	}
	f.builds++
	if refresh {
		f.refreshes++
	}
	return &fakeCred{n: f.builds, f: f}, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFake(t *testing.T, ttl time.Duration) (*Source, *fakeFactory, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	f := &fakeFactory{scope: DefaultScope, ttl: ttl, now: clk.now}
	s, err := NewSource(f.new, DefaultScope)
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.now
	return s, f, clk
}

func mustToken(t *testing.T, s *Source, refresh bool) string {
	t.Helper()
	tok, err := s.Token(context.Background(), refresh)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokensAreCachedUntilFiveMinutesBeforeExpiry(t *testing.T) {
	s, f, clk := newFake(t, time.Hour)
	first := mustToken(t, s, false)
	clk.advance(54*time.Minute + 59*time.Second)
	if got := mustToken(t, s, false); got != first {
		t.Fatalf("token %s replaced early (want %s)", got, first)
	}
	clk.advance(time.Second) // 5 minutes before expiry
	if got := mustToken(t, s, false); got == first {
		t.Fatal("token kept past its refresh time")
	}
	if f.builds != 1 {
		t.Fatalf("credential built %d times: an expiring token needs no new credential", f.builds)
	}
}

func TestShortLivedTokensAreReplacedAtHalfLife(t *testing.T) {
	s, _, clk := newFake(t, 4*time.Minute)
	first := mustToken(t, s, false)
	clk.advance(119 * time.Second)
	if mustToken(t, s, false) != first {
		t.Fatal("replaced before half its life")
	}
	clk.advance(time.Second)
	if mustToken(t, s, false) == first {
		t.Fatal("kept past half its life")
	}
}

func TestRefreshRebuildsTheCredential(t *testing.T) {
	s, f, _ := newFake(t, time.Hour)
	first := mustToken(t, s, false)
	second := mustToken(t, s, true)
	if second == first || !strings.HasPrefix(second, "c2-") {
		t.Fatalf("refresh returned %s after %s: want a token from a new credential", second, first)
	}
	if f.builds != 2 || f.refreshes != 1 {
		t.Fatalf("builds %d refreshes %d", f.builds, f.refreshes)
	}
	if mustToken(t, s, false) != second {
		t.Fatal("the refreshed token is not cached")
	}
}

func TestConcurrentCallersShareOneFetchAndOneRefresh(t *testing.T) {
	s, f, _ := newFake(t, time.Hour)
	mustToken(t, s, false)
	for _, refresh := range []bool{false, true} {
		f.block = make(chan struct{})
		var wg, started sync.WaitGroup
		tokens := make([]string, 16)
		for i := range tokens {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				tokens[i], _ = s.Token(context.Background(), refresh)
			}()
		}
		started.Wait()
		time.Sleep(50 * time.Millisecond) // all are waiting behind the first
		close(f.block)
		wg.Wait()
		for _, tok := range tokens[1:] {
			if tok != tokens[0] || tok == "" {
				t.Fatalf("refresh=%v: callers got different tokens %v", refresh, tokens)
			}
		}
	}
	if f.refreshes != 1 || f.builds != 2 {
		t.Fatalf("builds %d refreshes %d: want one shared refresh", f.builds, f.refreshes)
	}
}

func TestWaitingForATokenRespectsTheContext(t *testing.T) {
	s, f, _ := newFake(t, time.Hour)
	f.block = make(chan struct{})
	go s.Token(context.Background(), false) // holds the fetch
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := s.Token(ctx, false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	close(f.block)
}

func TestFailuresAreTokenErrorsAndNotCached(t *testing.T) {
	s, f, _ := newFake(t, time.Hour)
	f.buildErr = errors.New("no secret")
	if _, err := s.Token(context.Background(), false); err == nil || !strings.Contains(err.Error(), "no secret") {
		t.Fatalf("err %v", err)
	}
	f.buildErr = nil
	f.err = errors.New("AADSTS70021: No matching federated identity record found")
	_, err := s.Token(context.Background(), false)
	var te *TokenError
	if !errors.As(err, &te) || review.KindOf(err) != review.Transient || !strings.Contains(err.Error(), DefaultScope) {
		t.Fatalf("err %v (kind %v)", err, review.KindOf(err))
	}
	f.err = errors.New("AADSTS7000215: Invalid client secret provided")
	if _, err := s.Token(context.Background(), false); review.KindOf(err) != review.Internal {
		t.Fatalf("kind %v", review.KindOf(err))
	}
	f.err = review.Errorf(review.Invalid, "invalid tenant id")
	if _, err := s.Token(context.Background(), false); review.KindOf(err) != review.Internal {
		t.Fatalf("a configuration error has kind %v, want internal (never reject a file for it)", review.KindOf(err))
	}
	f.err = nil
	if tok := mustToken(t, s, false); tok == "" {
		t.Fatal("no token after recovery")
	}
}

func TestNewSourceChecksScope(t *testing.T) {
	f := &fakeFactory{}
	for _, scope := range []string{"", "/.default", "https://graph.microsoft.com", "User.Read"} {
		if _, err := NewSource(f.new, scope); err == nil {
			t.Errorf("NewSource(scope %q) accepted", scope)
		}
	}
	if _, err := NewSource(nil, DefaultScope); err == nil {
		t.Error("NewSource(nil factory) accepted")
	}
}

func TestScopeForUsesTheGraphEndpointsOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://graph.microsoft.com":              "https://graph.microsoft.com/.default",
		"https://graph.microsoft.us/":              "https://graph.microsoft.us/.default",
		"https://microsoftgraph.chinacloudapi.cn":  "https://microsoftgraph.chinacloudapi.cn/.default",
		"https://127.0.0.1:8443":                   "https://127.0.0.1:8443/.default",
		"HTTPS://Graph.Microsoft.com/some/prefix/": "https://graph.microsoft.com/.default",
	} {
		got, err := ScopeFor(in)
		if err != nil || got != want {
			t.Errorf("ScopeFor(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ScopeFor("graph.microsoft.com"); err == nil || !strings.Contains(err.Error(), "GRAPH_ENDPOINT") {
		t.Errorf("ScopeFor without scheme: %v", err)
	}
}

func TestNewSecretSourceChecksItsOptions(t *testing.T) {
	good := Options{TenantID: "t", ClientID: "c", ClientSecret: "s3cr3t-value"}
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no tenant", func(o *Options) { o.TenantID = "" }, "AZURE_TENANT_ID"},
		{"no client", func(o *Options) { o.ClientID = "" }, "AZURE_CLIENT_ID"},
		{"no secret", func(o *Options) { o.ClientSecret = "" }, "AZURE_CLIENT_SECRET"},
		{"plain http authority", func(o *Options) { o.AuthorityHost = "http://login.example.com/" }, "AZURE_AUTHORITY_HOST"},
		{"plain http loopback authority", func(o *Options) { o.AuthorityHost = "http://127.0.0.1:9/" }, "https"},
		{"bad scope", func(o *Options) { o.Scope = "https://graph.microsoft.com" }, "/.default"},
	}
	for _, tc := range tests {
		o := good
		tc.mutate(&o)
		_, err := NewSecretSource(o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t-value") {
			t.Errorf("%s: the secret is in the error", tc.name)
		}
	}
	s, err := NewSecretSource(good)
	if err != nil || s.Scope() != DefaultScope {
		t.Fatalf("defaults: %v", err)
	}
}

func TestInstanceDiscoveryOnlyForPublicClouds(t *testing.T) {
	for host, disable := range map[string]bool{
		"":                                   false,
		"https://login.microsoftonline.com/": false,
		"https://login.microsoftonline.us":   false,
		"https://LOGIN.chinacloudapi.cn/":    false,
		"https://login.partner.microsoftonline.cn/":       false,
		"https://127.0.0.1:8443/":                         true,
		"https://login.microsoftonline.com.evil.example/": true,
		"https://adfs.contoso.com/":                       true,
	} {
		co, got, err := clientOptions(Options{AuthorityHost: host})
		if err != nil {
			t.Fatalf("%q: %v", host, err)
		}
		if got != disable {
			t.Errorf("%q: DisableInstanceDiscovery %v, want %v", host, got, disable)
		}
		if !strings.HasSuffix(co.Cloud.ActiveDirectoryAuthorityHost, "/") {
			t.Errorf("%q: authority %q without trailing slash", host, co.Cloud.ActiveDirectoryAuthorityHost)
		}
	}
}

func TestOptionsNeverPrintTheSecret(t *testing.T) {
	o := Options{TenantID: "t", ClientID: "c", ClientSecret: "s3cr3t-value"}
	for _, s := range []string{fmt.Sprint(o), fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), o.String()} {
		if strings.Contains(s, "s3cr3t-value") {
			t.Errorf("printed options contain the secret: %s", s)
		}
	}
}

func TestRedactRemovesTheSecretButKeepsTheCause(t *testing.T) {
	cause := &net405{"client_secret=s3cr3t-value refused"}
	err := redact(fmt.Errorf("post: %w", cause), "s3cr3t-value")
	if strings.Contains(err.Error(), "s3cr3t-value") || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("err %q", err)
	}
	var n *net405
	if !errors.As(err, &n) {
		t.Fatal("cause lost")
	}
	if redact(nil, "x") != nil {
		t.Fatal("redact(nil) != nil")
	}
}

type net405 struct{ s string }

func (e *net405) Error() string { return e.s }

func TestARefusedCredentialThatWorkedBeforeIsRebuiltOnce(t *testing.T) {
	tests := []struct {
		name              string
		err               error
		builds, refreshes int
		kind              review.Kind
	}{
		{"refused (a revoked secret): rebuilt with refresh", errors.New("AADSTS7000215: Invalid client secret provided"), 2, 1, review.Internal},
		{"transient (AADSTS70021): not rebuilt", errors.New("AADSTS70021: No matching federated identity record found"), 1, 0, review.Transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, f, clk := newFake(t, time.Hour)
			mustToken(t, s, false)
			clk.advance(56 * time.Minute) // due for renewal
			f.err = tc.err
			_, err := s.Token(context.Background(), false)
			if review.KindOf(err) != tc.kind {
				t.Fatalf("err %v kind %v, want %v", err, review.KindOf(err), tc.kind)
			}
			if f.builds != tc.builds || f.refreshes != tc.refreshes {
				t.Fatalf("builds %d refreshes %d, want %d %d", f.builds, f.refreshes, tc.builds, tc.refreshes)
			}
		})
	}
}

func TestAFailedRebuildDropsTheRefusedCredential(t *testing.T) {
	s, f, _ := newFake(t, time.Hour)
	first := mustToken(t, s, false)
	f.buildErr = errors.New("secrets manager unavailable")
	if _, err := s.Token(context.Background(), true); err == nil {
		t.Fatal("refresh succeeded without a credential")
	}
	f.buildErr = nil
	// The next caller must not get the refused token from the old
	// credential's cache: a new credential is built.
	if tok := mustToken(t, s, false); tok == first || !strings.HasPrefix(tok, "c2-") {
		t.Fatalf("token %s after a failed refresh (first was %s)", tok, first)
	}
}
