package entra

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byodrop/byodrop/internal/review"
)

// FederationAudience is the audience of the web identity tokens the
// aws-federation mode asks STS for: the one Entra requires of the
// assertions of a federated identity credential.
const FederationAudience = "api://AzureADTokenExchange"

// FederationSigningAlgorithm is the signing algorithm asked of STS (it
// offers RS256 and ES384; Entra verifies RS256).
const FederationSigningAlgorithm = "RS256"

// WebIdentityTokenSeconds is the lifetime asked for each web identity token
// (DurationSeconds). The template's policy allows no longer
// (sts:DurationSeconds); a token is only a proof of identity for one token
// request, so a short life limits what a leaked one is worth.
const WebIdentityTokenSeconds = 600

// A web identity token is replaced this long before it expires (or at half
// its life, if sooner), so that Entra never gets one about to lapse.
const assertionMargin = 2 * time.Minute

// propagationDelays are the waits between the tries of a token request
// that Entra refuses with AADSTS70021: a federated identity credential just
// added to the app takes a while to reach every Entra front end. Longer
// outages are left to the caller's retries (the event's, then the failure
// queue's).
var propagationDelays = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}

// NewFederationSource returns a Source that authenticates without any
// secret (GRAPH_CREDENTIAL=aws-federation): each token request to Entra
// carries, as its client assertion, a web identity token that STS
// GetWebIdentityToken issues for the caller's IAM role, with audience
// FederationAudience, signed with RS256. Entra accepts it when the app
// registration has a federated identity credential whose issuer is the AWS
// account's issuer URL and whose subject is the role's ARN (the token's sub).
//
// The client must call a regional STS endpoint: GetWebIdentityToken does
// not exist on the global one (FromSettings sees to it). A web identity
// token is kept and reused until shortly before it expires
// (WebIdentityTokenSeconds, less a margin), and fetched anew when a token
// is refused. A token request Entra refuses with AADSTS70021 (a federated
// credential not yet propagated) is tried again a few times.
func NewFederationSource(opts Options, client STSClient) (*Source, error) {
	return newFederationSource(opts, client, federation{seconds: WebIdentityTokenSeconds, delays: propagationDelays, now: time.Now})
}

// federation holds the tunables of the aws-federation mode, for tests.
type federation struct {
	seconds int32
	delays  []time.Duration
	now     func() time.Time
}

func newFederationSource(opts Options, client STSClient, f federation) (*Source, error) {
	if client == nil {
		return nil, errors.New("entra: no STS client")
	}
	clientOpts, disableDiscovery, scope, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	tokens := &webIdentityTokens{client: client, seconds: f.seconds, now: f.now}
	factory := func(ctx context.Context, refresh bool) (azcore.TokenCredential, error) {
		if refresh {
			tokens.forget()
		}
		cred, err := azidentity.NewClientAssertionCredential(opts.TenantID, opts.ClientID, tokens.get,
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: clientOpts, DisableInstanceDiscovery: disableDiscovery})
		if err != nil {
			return nil, err
		}
		return &federatedCredential{cred: cred, tokens: tokens, delays: f.delays}, nil
	}
	return NewSource(factory, scope)
}

// webIdentityTokens fetches and keeps web identity tokens. It is
// azidentity's getAssertion callback, so it must be safe for concurrent use.
type webIdentityTokens struct {
	client  STSClient
	seconds int32
	now     func() time.Time

	mu        sync.Mutex
	jwt       string
	refreshAt time.Time
	err       error // the last fetch's, for the caller of GetToken
}

// get returns a web identity token valid for at least the margin.
func (w *webIdentityTokens) get(ctx context.Context) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = nil
	if w.jwt != "" && w.now().Before(w.refreshAt) {
		return w.jwt, nil
	}
	start := w.now()
	out, err := w.client.GetWebIdentityToken(ctx, &sts.GetWebIdentityTokenInput{
		Audience:         []string{FederationAudience},
		SigningAlgorithm: aws.String(FederationSigningAlgorithm),
		DurationSeconds:  aws.Int32(w.seconds),
	})
	if err != nil {
		w.err = &AWSError{Op: "sts:GetWebIdentityToken", Err: err}
		return "", w.err
	}
	jwt := aws.ToString(out.WebIdentityToken)
	if jwt == "" {
		w.err = errors.New("entra: sts:GetWebIdentityToken answered without a token")
		return "", w.err
	}
	expires := start.Add(time.Duration(w.seconds) * time.Second)
	if out.Expiration != nil {
		expires = *out.Expiration
	}
	w.jwt = jwt
	w.refreshAt = expires.Add(-min(assertionMargin, expires.Sub(start)/2))
	return jwt, nil
}

// forget drops the kept token, so that the next get fetches a new one.
func (w *webIdentityTokens) forget() {
	w.mu.Lock()
	w.jwt = ""
	w.mu.Unlock()
}

// clearFailure forgets the last fetch's error, so that it is not blamed
// for a later failure.
func (w *webIdentityTokens) clearFailure() {
	w.mu.Lock()
	w.err = nil
	w.mu.Unlock()
}

// failure returns the token to keep out of error messages and the last
// fetch's error.
func (w *webIdentityTokens) failure() (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.jwt, w.err
}

// federatedCredential is the assertion credential with what azidentity
// does not do: it tries again while Entra answers AADSTS70021, keeps the
// STS error reachable (its Kind tells a throttled STS from a missing
// permission), and keeps the web identity token out of error messages.
type federatedCredential struct {
	cred   azcore.TokenCredential
	tokens *webIdentityTokens
	delays []time.Duration
}

func (c *federatedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	for i := 0; ; i++ {
		c.tokens.clearFailure()
		tok, err := c.cred.GetToken(ctx, o)
		if err == nil {
			return tok, nil
		}
		jwt, stsErr := c.tokens.failure()
		if stsErr != nil {
			err = &assertionError{err: err, cause: stsErr}
		}
		err = redact(err, jwt)
		if i == len(c.delays) || !strings.Contains(err.Error(), "AADSTS70021") || !sleep(ctx, c.delays[i]) {
			return tok, err
		}
	}
}

// assertionError is a token request that failed because the assertion
// could not be had; Unwrap reaches the STS error too, and the kind is the
// STS error's.
type assertionError struct{ err, cause error }

func (e *assertionError) Error() string     { return e.err.Error() }
func (e *assertionError) Unwrap() []error   { return []error{e.cause, e.err} }
func (e *assertionError) Kind() review.Kind { return review.KindOf(e.cause) }

// sleep waits d, or returns false at once if ctx would end first.
func sleep(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
