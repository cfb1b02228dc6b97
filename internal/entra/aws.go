package entra

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/byodrop/byodrop/internal/review"
)

// SecretsClient is what the secret and certificate modes need of Secrets
// Manager; *secretsmanager.Client implements it.
type SecretsClient interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// STSClient is what the aws-federation mode needs of STS; *sts.Client
// implements it.
type STSClient interface {
	GetWebIdentityToken(ctx context.Context, in *sts.GetWebIdentityTokenInput, optFns ...func(*sts.Options)) (*sts.GetWebIdentityTokenOutput, error)
}

// currentStage is the staging label of a secret's current version: after a
// rotation it names the new value.
const currentStage = "AWSCURRENT"

// fetchSecret reads the current version of the secret arn: its
// SecretString, or its SecretBinary when it was stored as binary.
func fetchSecret(ctx context.Context, c SecretsClient, arn string) ([]byte, error) {
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(arn),
		VersionStage: aws.String(currentStage),
	})
	if err != nil {
		return nil, &AWSError{Op: "secretsmanager:GetSecretValue", Resource: arn, Err: err}
	}
	switch {
	case out.SecretString != nil && *out.SecretString != "":
		return []byte(*out.SecretString), nil
	case len(out.SecretBinary) > 0:
		return out.SecretBinary, nil
	}
	return nil, fmt.Errorf("GRAPH_SECRET_ARN: secret %s (version %s) is empty", arn, aws.ToString(out.VersionId))
}

// AWSError is a failed call to Secrets Manager or STS. Its text names the
// call, the resource and, for the usual deployment mistakes, what to fix;
// it never holds a secret (the calls send none).
type AWSError struct {
	Op       string // e.g. secretsmanager:GetSecretValue
	Resource string // the secret ARN, or "" for STS
	Err      error
}

func (e *AWSError) Error() string {
	msg := "entra: " + e.Op
	if e.Resource != "" {
		msg += " " + e.Resource
	}
	msg += ": " + e.Err.Error()
	if h := e.hint(); h != "" {
		msg += " (" + h + ")"
	}
	return msg
}

func (e *AWSError) Unwrap() error { return e.Err }

// Kind is Transient when the SDK deems the failure retryable (throttling, a
// 5xx, a lost connection) after its own retries; otherwise Internal: a
// deployment problem (a missing permission, a wrong ARN, federation not
// enabled) that no dropped file is to blame for.
func (e *AWSError) Kind() review.Kind {
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(e.Err) == aws.TrueTernary {
		return review.Transient
	}
	return review.Internal
}

func (e *AWSError) hint() string {
	var ae smithy.APIError
	if !errors.As(e.Err, &ae) {
		return ""
	}
	switch ae.ErrorCode() {
	case "AccessDenied", "AccessDeniedException":
		if e.Op == "sts:GetWebIdentityToken" {
			return "the function's role needs sts:GetWebIdentityToken for the audience " + FederationAudience + ", signing algorithm RS256"
		}
		return "the function's role needs " + e.Op + " on this secret, and kms:Decrypt if it is encrypted with a customer managed key"
	case "ResourceNotFoundException":
		return "check GRAPH_SECRET_ARN, and that the secret has an AWSCURRENT version"
	case "DecryptionFailure":
		return "the function's role needs kms:Decrypt on the secret's KMS key"
	case "OutboundWebIdentityFederationDisabledException":
		return "enable it once for the account: aws iam enable-outbound-web-identity-federation"
	}
	return ""
}
