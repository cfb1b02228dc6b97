package entra

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/byodrop/byodrop/internal/review"
)

// NewSecretsManagerSource returns a Source that authenticates with a client
// secret kept in the Secrets Manager secret secretARN (GRAPH_CREDENTIAL=
// secret with GRAPH_SECRET_ARN); see ClientSecretFromValue for the value's
// forms.
//
// The secret is read (its AWSCURRENT version) when the first token is
// needed and then kept by the credential for the life of the process, one
// Lambda container: in steady state that is one GetSecretValue per
// container. When a token is refused (a Graph 401, or the token endpoint
// refusing the secret), the current version is read again before the
// credential is rebuilt, so that a rotated secret is picked up without a
// restart. opts.ClientSecret must be empty.
func NewSecretsManagerSource(opts Options, client SecretsClient, secretARN string) (*Source, error) {
	if err := checkSecretSource(opts, client, secretARN); err != nil {
		return nil, err
	}
	clientOpts, disableDiscovery, scope, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	factory := func(ctx context.Context, refresh bool) (azcore.TokenCredential, error) {
		value, err := fetchSecret(ctx, client, secretARN)
		if err != nil {
			return nil, err
		}
		secret, err := ClientSecretFromValue(value)
		if err != nil {
			return nil, fmt.Errorf("GRAPH_SECRET_ARN: secret %s: %w", secretARN, err)
		}
		return secretCredential(opts, clientOpts, disableDiscovery, secret)
	}
	return NewSource(factory, scope)
}

// NewCertificateSource returns a Source that authenticates with a client
// certificate kept in the Secrets Manager secret secretARN (GRAPH_CREDENTIAL=
// certificate); see CertificateFromValue for the value's forms. The
// certificate is read and kept like NewSecretsManagerSource's secret, and
// read again when a token is refused.
//
// azidentity signs each token request's client assertion with the key and
// names the certificate by its thumbprint (x5t#S256). When the value holds
// more than the signing certificate (a chain), the chain is sent too
// (azidentity's SendCertificateChain, the x5c header): that is what
// subject name and issuer (SNI) authentication needs, and Entra ignores it
// for a certificate uploaded to the app registration.
func NewCertificateSource(opts Options, client SecretsClient, secretARN string) (*Source, error) {
	if err := checkSecretSource(opts, client, secretARN); err != nil {
		return nil, err
	}
	clientOpts, disableDiscovery, scope, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	factory := func(ctx context.Context, refresh bool) (azcore.TokenCredential, error) {
		value, err := fetchSecret(ctx, client, secretARN)
		if err != nil {
			return nil, err
		}
		c, err := CertificateFromValue(value, time.Now())
		if err != nil {
			return nil, fmt.Errorf("GRAPH_SECRET_ARN: secret %s: %w", secretARN, err)
		}
		cred, err := azidentity.NewClientCertificateCredential(opts.TenantID, opts.ClientID, c.Chain, c.Key,
			&azidentity.ClientCertificateCredentialOptions{
				ClientOptions:            clientOpts,
				DisableInstanceDiscovery: disableDiscovery,
				SendCertificateChain:     len(c.Chain) > 1,
			})
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.Thumbprint, err)
		}
		return cred, nil
	}
	return NewSource(factory, scope)
}

func checkSecretSource(opts Options, client SecretsClient, secretARN string) error {
	switch {
	case client == nil:
		return errors.New("entra: no Secrets Manager client")
	case secretARN == "":
		return review.Errorf(review.Invalid, "entra: no secret (GRAPH_SECRET_ARN)")
	case opts.ClientSecret != "":
		return review.Errorf(review.Invalid, "entra: both a client secret (AZURE_CLIENT_SECRET) and GRAPH_SECRET_ARN: set only one")
	}
	return nil
}
