// Package entra supplies Microsoft Entra access tokens for Graph, built on
// azidentity, cached across the warm invocations of a Lambda function.
//
// Source is the general, credential-agnostic part: a cache in front of any
// azcore.TokenCredential, with a factory that builds the credential and
// builds it anew when a token must really be refreshed (azidentity's own
// cache would otherwise hand back the token Graph just refused).
// The credential modes (GRAPH_CREDENTIAL) plug into it: NewSecretSource
// (a client secret from the environment), NewSecretsManagerSource (a client
// secret from Secrets Manager), NewCertificateSource (a certificate from
// Secrets Manager) and NewFederationSource (secretless: STS web identity
// tokens as client assertions). FromSettings picks one from the settings.
package entra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/byodrop/byodrop/internal/endpoint"
	"github.com/byodrop/byodrop/internal/review"
)

// Defaults of Options.
const (
	DefaultAuthorityHost = "https://login.microsoftonline.com/"
	DefaultScope         = "https://graph.microsoft.com/.default"
)

// A token is replaced this long before it expires (or at half its life,
// if that is sooner), so that a call never starts with a token about to
// lapse.
const refreshMargin = 5 * time.Minute

// publicAuthorities are the Entra hosts of the public and national clouds.
// For any other authority (a private cloud, the local emulator) instance
// discovery is disabled, so that no request goes to a host that was not
// configured.
var publicAuthorities = map[string]bool{
	"login.microsoftonline.com":        true,
	"login.microsoftonline.us":         true,
	"login.chinacloudapi.cn":           true,
	"login.partner.microsoftonline.cn": true,
}

// Options configure a client-secret Source.
type Options struct {
	TenantID, ClientID, ClientSecret string
	// AuthorityHost is the Entra authority (AZURE_AUTHORITY_HOST); default
	// https://login.microsoftonline.com/. It must be https (azidentity
	// refuses anything else).
	AuthorityHost string
	// HTTPClient, if set, carries every token request (for a custom CA, or
	// the emulator's client).
	HTTPClient *http.Client
	// Scope is the token scope; default https://graph.microsoft.com/.default.
	// For a national cloud or the emulator use ScopeFor(GRAPH_ENDPOINT).
	Scope string
}

// String describes o without its secret, so that logging the options is safe.
func (o Options) String() string {
	secret := "unset"
	if o.ClientSecret != "" {
		secret = "set"
	}
	return fmt.Sprintf("entra.Options{TenantID: %s, ClientID: %s, ClientSecret: %s, AuthorityHost: %s, Scope: %s}",
		o.TenantID, o.ClientID, secret, o.AuthorityHost, o.Scope)
}

// GoString is String, so that %#v does not print the secret either.
func (o Options) GoString() string { return o.String() }

// ScopeFor returns the app-only scope for a Graph endpoint: its origin
// followed by /.default (https://graph.microsoft.us/.default for the US
// government cloud). Entra names the Graph resource by its host.
func ScopeFor(graphEndpoint string) (string, error) {
	u, err := url.Parse(graphEndpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", review.Errorf(review.Invalid, "GRAPH_ENDPOINT: cannot derive a token scope from %q", graphEndpoint)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + "/.default", nil
}

// NewCredential builds the credential behind a Source. The Source calls it
// on first use and again with refresh true when a token was refused: by
// Graph (a 401), or by the token endpoint for a credential that worked
// before. A mode that holds a secret fetched from elsewhere (Secrets
// Manager, STS) fetches it anew then, so that a rotated secret is picked up.
type NewCredential func(ctx context.Context, refresh bool) (azcore.TokenCredential, error)

// Source hands out Graph tokens (it implements graph.TokenSource). It keeps
// the token until shortly before it expires and is safe for concurrent use.
type Source struct {
	newCredential NewCredential
	scope         string
	now           func() time.Time

	sem chan struct{} // one fetch at a time; waiting respects the context
	gen atomic.Int64  // counts fetched tokens

	// Guarded by sem.
	cred      azcore.TokenCredential
	token     string
	refreshAt time.Time
	expiresAt time.Time
}

// NewSource returns a Source that gets tokens for scope from the
// credentials newCredential builds. The credential is built on first use,
// and again on every Token(ctx, true).
func NewSource(newCredential NewCredential, scope string) (*Source, error) {
	if newCredential == nil {
		return nil, errors.New("entra: no credential factory")
	}
	if !strings.HasSuffix(scope, "/.default") || scope == "/.default" {
		return nil, review.Errorf(review.Invalid, "entra: scope %q: an app-only token needs a resource followed by /.default", scope)
	}
	return &Source{newCredential: newCredential, scope: scope, now: time.Now, sem: make(chan struct{}, 1)}, nil
}

// Scope returns the scope tokens are requested for.
func (s *Source) Scope() string { return s.scope }

// Token returns a valid access token. With refresh false it may be the
// cached one; with refresh true (after Graph refused the last token) the
// credential is rebuilt and a new token fetched, unless another caller did
// exactly that while this one waited.
func (s *Source) Token(ctx context.Context, refresh bool) (string, error) {
	gen := s.gen.Load()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("entra: waiting for a token: %w", context.Cause(ctx))
	}
	defer func() { <-s.sem }()

	if s.token != "" {
		switch {
		case refresh && s.gen.Load() != gen:
			return s.token, nil // refreshed by someone else meanwhile
		case !refresh && s.now().Before(s.refreshAt):
			return s.token, nil
		}
	}
	built := refresh || s.cred == nil
	if built {
		if err := s.build(ctx, refresh); err != nil {
			return "", err
		}
	}
	start := s.now()
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil && !built && (&TokenError{Err: err}).Kind() != review.Transient {
		// The token endpoint refused a credential that worked before: a
		// secret or certificate rotated (and the old one revoked) while
		// the last token was still valid. Build it again, as after a
		// refused token, and try once more.
		if err := s.build(ctx, true); err != nil {
			return "", err
		}
		start = s.now()
		tok, err = s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	}
	if err != nil {
		return "", &TokenError{Scope: s.scope, Err: err}
	}
	if tok.Token == "" {
		return "", &TokenError{Scope: s.scope, Err: errors.New("the credential returned an empty token")}
	}
	s.token, s.expiresAt = tok.Token, tok.ExpiresOn
	s.refreshAt = refreshTime(start, tok.ExpiresOn)
	if !tok.RefreshOn.IsZero() && tok.RefreshOn.Before(s.refreshAt) {
		s.refreshAt = tok.RefreshOn
	}
	s.gen.Add(1)
	return s.token, nil
}

// build replaces the credential. The token is known bad (refresh) or there
// is none yet; a credential that fails to rebuild is not kept either, as
// it would hand back the refused token from its own cache.
func (s *Source) build(ctx context.Context, refresh bool) error {
	s.token = ""
	if refresh {
		s.cred = nil
	}
	cred, err := s.newCredential(ctx, refresh)
	if err != nil {
		return &TokenError{Scope: s.scope, Err: err}
	}
	s.cred = cred
	return nil
}

// refreshTime is when a token fetched at start and expiring at expires
// should be replaced: refreshMargin before expiry, or at half its life if
// the token lives less than twice the margin.
func refreshTime(start, expires time.Time) time.Time {
	life := expires.Sub(start)
	if life <= 0 {
		return start // already expired: use once, replace next time
	}
	return expires.Add(-min(refreshMargin, life/2))
}

// TokenError is a failure to get a token. Its text names the scope and the
// cause, never a secret.
type TokenError struct {
	Scope string
	Err   error
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("entra: getting a token for %s: %v", e.Scope, e.Err)
}

func (e *TokenError) Unwrap() error { return e.Err }

// Kind is Transient for what a later try may fix (throttling, an Entra
// outage, a lost connection, a federated credential not yet propagated:
// AADSTS70021); otherwise Internal: the deployment's credentials or
// settings are wrong, which is not the dropped file's fault either.
func (e *TokenError) Kind() review.Kind {
	var af *azidentity.AuthenticationFailedError
	if errors.As(e.Err, &af) && af.RawResponse != nil {
		if c := af.RawResponse.StatusCode; c == http.StatusTooManyRequests || c == http.StatusRequestTimeout || c >= 500 {
			return review.Transient
		}
	}
	if strings.Contains(e.Err.Error(), "AADSTS70021") {
		return review.Transient
	}
	var ne net.Error
	if errors.As(e.Err, &ne) && ne.Timeout() || errors.Is(e.Err, context.DeadlineExceeded) {
		return review.Transient
	}
	if review.KindOf(e.Err) == review.Transient {
		return review.Transient
	}
	// Never Invalid, even for a malformed tenant id: a wrong setting must
	// not get a dropped file rejected.
	return review.Internal
}

// NewSecretSource returns a Source that authenticates with a client secret
// (azidentity.ClientSecretCredential). An authority other than the public
// clouds' disables instance discovery, so that only the configured host is
// contacted.
func NewSecretSource(opts Options) (*Source, error) {
	if opts.ClientSecret == "" {
		return nil, review.Errorf(review.Invalid, "entra: no client secret (AZURE_CLIENT_SECRET, or GRAPH_SECRET_ARN in AWS)")
	}
	clientOpts, disableDiscovery, scope, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	factory := func(ctx context.Context, refresh bool) (azcore.TokenCredential, error) {
		return secretCredential(opts, clientOpts, disableDiscovery, opts.ClientSecret)
	}
	return NewSource(factory, scope)
}

// secretCredential is azidentity's client-secret credential, with the
// secret kept out of every error it returns.
func secretCredential(opts Options, clientOpts azcore.ClientOptions, disableDiscovery bool, secret string) (azcore.TokenCredential, error) {
	cred, err := azidentity.NewClientSecretCredential(opts.TenantID, opts.ClientID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOpts, DisableInstanceDiscovery: disableDiscovery})
	if err != nil {
		return nil, redact(err, secret)
	}
	return redactingCredential{cred: cred, secret: secret}, nil
}

// prepare checks what every mode needs (tenant, client, authority) and
// returns the azcore options, whether instance discovery must be disabled,
// and the scope (DefaultScope unless set).
func prepare(opts Options) (azcore.ClientOptions, bool, string, error) {
	if opts.TenantID == "" {
		return azcore.ClientOptions{}, false, "", review.Errorf(review.Invalid, "entra: no tenant id (AZURE_TENANT_ID)")
	}
	if opts.ClientID == "" {
		return azcore.ClientOptions{}, false, "", review.Errorf(review.Invalid, "entra: no client id (AZURE_CLIENT_ID)")
	}
	co, disable, err := clientOptions(opts)
	if err != nil {
		return azcore.ClientOptions{}, false, "", err
	}
	scope := opts.Scope
	if scope == "" {
		scope = DefaultScope
	}
	return co, disable, scope, nil
}

// clientOptions returns the azcore options for an authority and whether
// instance discovery must be disabled for it.
func clientOptions(opts Options) (azcore.ClientOptions, bool, error) {
	host := opts.AuthorityHost
	if host == "" {
		host = DefaultAuthorityHost
	}
	if err := endpoint.Check("AZURE_AUTHORITY_HOST", host); err != nil {
		return azcore.ClientOptions{}, false, err
	}
	u, _ := url.Parse(host)
	if !strings.EqualFold(u.Scheme, "https") {
		return azcore.ClientOptions{}, false, review.Errorf(review.Invalid,
			"AZURE_AUTHORITY_HOST: %q: token requests need https (azidentity refuses plain http, even on loopback)", host)
	}
	if !strings.HasSuffix(host, "/") {
		host += "/"
	}
	co := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: host, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}}
	if opts.HTTPClient != nil {
		co.Transport = opts.HTTPClient
	}
	return co, !publicAuthorities[strings.ToLower(u.Hostname())], nil
}

// redactingCredential makes sure a secret never reaches an error message,
// whatever the library below puts in its errors.
type redactingCredential struct {
	cred   azcore.TokenCredential
	secret string
}

func (r redactingCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := r.cred.GetToken(ctx, o)
	return tok, redact(err, r.secret)
}

// redact replaces secret in err's text; errors.As still reaches the cause.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[redacted]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
