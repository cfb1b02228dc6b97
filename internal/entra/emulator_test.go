package entra

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/review"
)

// hostRecorder notes the host of every request it carries.
type hostRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	hosts map[string]int
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts[r.URL.Host]++
	h.mu.Unlock()
	return h.next.RoundTrip(r)
}

func startEmulator(t *testing.T) (*graphemu.Server, *http.Client, *hostRecorder) {
	t.Helper()
	s, err := graphemu.Start(graphemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	rec := &hostRecorder{next: s.Client().Transport, hosts: map[string]int{}}
	return s, &http.Client{Transport: rec}, rec
}

func emulatorSource(t *testing.T, s *graphemu.Server, hc *http.Client, secret string) *Source {
	t.Helper()
	o := s.Options()
	scope, err := ScopeFor(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSecretSource(Options{TenantID: o.TenantID, ClientID: o.ClientID, ClientSecret: secret,
		AuthorityHost: s.AuthorityHost(), HTTPClient: hc, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

var emuTarget = review.Target{
	CatalogID:          "6a1f8c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
	ResourceID:         "7b2a9d3f-4c5e-4f60-9bac-1d2e3f4a5b6c",
	ReviewDefinitionID: "8c3bae40-5d6f-4071-acbd-2e3f4a5b6c7d",
	ReviewInstanceID:   "9d4cbf51-6e70-4182-bdce-3f4a5b6c7d8e",
}

func TestSecretSourceGetsTokensFromAPrivateAuthorityOnly(t *testing.T) {
	s, hc, rec := startEmulator(t)
	src := emulatorSource(t, s, hc, s.Options().ClientSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tok, err := src.Token(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := src.Token(ctx, false); again != tok {
		t.Fatal("the cached token was not reused")
	}
	if n := s.Count("token", http.StatusOK); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	// The token works against Graph.
	p, _ := graph.ProfileByName("v1.0")
	c, err := graph.New(graph.Config{Endpoint: s.URL(), Profile: p, Tokens: src, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, emuTarget); err != nil {
		t.Fatalf("Create with the token: %v", err)
	}
	// Nothing but the emulator was contacted: no instance discovery at
	// login.microsoftonline.com.
	emu, _ := url.Parse(s.URL())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for host := range rec.hosts {
		if host != emu.Host {
			t.Errorf("a request went to %s (want only %s): %v", host, emu.Host, rec.hosts)
		}
	}
}

func TestRefreshGetsANewTokenAfterGraphRefusesTheOldOne(t *testing.T) {
	s, hc, _ := startEmulator(t)
	src := emulatorSource(t, s, hc, s.Options().ClientSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, _ := graph.ProfileByName("beta")
	c, err := graph.New(graph.Config{Endpoint: s.URL(), Profile: p, Tokens: src, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.Create(ctx, emuTarget)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := src.Token(ctx, false)
	s.ExpireTokens()
	// Graph answers 401; the client asks for a refresh, which must not be
	// MSAL's cached (expired) token.
	if _, err := c.Get(ctx, emuTarget, created.ID); err != nil {
		t.Fatalf("Get after the tokens expired: %v", err)
	}
	fresh, _ := src.Token(ctx, false)
	if fresh == old {
		t.Fatal("the refresh returned the refused token")
	}
	if n := s.Count("token", http.StatusOK); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
	if n := s.Count("get", http.StatusUnauthorized); n != 1 {
		t.Fatalf("%d refused gets, want 1", n)
	}
}

func TestAWrongSecretFailsWithoutShowingIt(t *testing.T) {
	s, hc, _ := startEmulator(t)
	const wrong = "not-the-secret-Zq9"
	src := emulatorSource(t, s, hc, wrong)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := src.Token(ctx, false)
	if err == nil {
		t.Fatal("a token with the wrong secret")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("the secret is in the error: %v", err)
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("error %v does not carry Entra's reason", err)
	}
	if k := review.KindOf(err); k != review.Internal {
		t.Errorf("kind %v, want internal", k)
	}
}
