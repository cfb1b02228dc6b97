package entra

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/review"
)

// FromSettings returns the Source for the credential mode GRAPH_CREDENTIAL
// names, with the scope of GRAPH_ENDPOINT:
//   - secret: AZURE_CLIENT_SECRET (local runs, NewSecretSource) or the
//     Secrets Manager secret GRAPH_SECRET_ARN (NewSecretsManagerSource);
//   - certificate: the certificate in GRAPH_SECRET_ARN (NewCertificateSource);
//   - aws-federation: no secret, STS web identity tokens
//     (NewFederationSource); GRAPH_SECRET_ARN is not used.
//
// The AWS clients are built from awsCfg, so the SDK's own settings apply,
// AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_STS included. The
// Secrets Manager client works in the secret's region (from its ARN). The
// STS client works in awsCfg's region (AWS_REGION, which Lambda sets), on
// the SDK's default regional endpoint https://sts.<region>.amazonaws.com:
// this SDK never picks the global endpoint unless the region is
// "aws-global", which is refused here, as GetWebIdentityToken does not
// exist there. httpClient, if not nil, carries the token requests to
// Entra. Nothing is fetched until the first token is asked for.
func FromSettings(s config.Settings, awsCfg aws.Config, httpClient *http.Client) (*Source, error) {
	scope, err := ScopeFor(s.GraphEndpoint)
	if err != nil {
		return nil, err
	}
	opts := Options{
		TenantID: s.TenantID, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		AuthorityHost: s.AuthorityHost, HTTPClient: httpClient, Scope: scope,
	}
	switch s.Credential {
	case config.CredentialSecret, "":
		if s.SecretARN == "" {
			return NewSecretSource(opts)
		}
		return NewSecretsManagerSource(opts, secretsClient(awsCfg, s.SecretARN), s.SecretARN)
	case config.CredentialCertificate:
		if s.SecretARN == "" {
			return nil, review.Errorf(review.Invalid, "%s: required with %s=%s", config.EnvSecretARN, config.EnvCredential, config.CredentialCertificate)
		}
		return NewCertificateSource(opts, secretsClient(awsCfg, s.SecretARN), s.SecretARN)
	case config.CredentialAWSFederation:
		if awsCfg.Region == "" || awsCfg.Region == "aws-global" {
			return nil, review.Errorf(review.Invalid,
				"AWS_REGION: %s=%s needs a region (got %q): STS GetWebIdentityToken exists on the regional endpoints only", config.EnvCredential, config.CredentialAWSFederation, awsCfg.Region)
		}
		opts.ClientSecret = "" // not used, and never to be sent
		return NewFederationSource(opts, sts.NewFromConfig(awsCfg))
	}
	return nil, review.Errorf(review.Invalid, "%s: unknown credential mode %q", config.EnvCredential, s.Credential)
}

// secretsClient returns a Secrets Manager client for the region of the
// secret's ARN, so that a secret kept in another region is found.
func secretsClient(awsCfg aws.Config, secretARN string) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
		if a, err := arn.Parse(secretARN); err == nil && a.Region != "" {
			o.Region = a.Region
		}
	})
}
