package awsfake

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

const azureAudience = "api://AzureADTokenExchange"

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

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// config is an AWS configuration whose clients talk to s, with retries
// limited to attempts.
func config(s *Server, region string, attempts int) aws.Config {
	return aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider("AKIAFAKEFAKEFAKE", "fake-secret-key", ""),
		BaseEndpoint:     aws.String(s.URL()),
		RetryMaxAttempts: attempts,
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestGetSecretValueFollowsVersionStages(t *testing.T) {
	s := start(t, Options{})
	arn, v1 := s.PutSecret("byodrop/graph", "first")
	_, v2 := s.PutSecret("byodrop/graph", "second")
	if _, err := s.SetPendingSecret("byodrop/graph", "third"); err != nil {
		t.Fatal(err)
	}
	binARN, _ := s.PutSecretBinary("byodrop/cert", []byte{0, 1, 2, 0xff})
	sm := secretsmanager.NewFromConfig(config(s, "eu-west-1", 1))
	ctx := context.Background()

	tests := []struct {
		name          string
		in            secretsmanager.GetSecretValueInput
		value         string
		version, code string
	}{
		{"no stage means AWSCURRENT", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}, "second", v2, ""},
		{"AWSCURRENT by name", secretsmanager.GetSecretValueInput{SecretId: aws.String("byodrop/graph"), VersionStage: aws.String("AWSCURRENT")}, "second", v2, ""},
		{"AWSCURRENT by partial ARN", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn[:len(arn)-7]), VersionStage: aws.String("AWSCURRENT")}, "second", v2, ""},
		{"AWSPREVIOUS is the replaced version", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPREVIOUS")}, "first", v1, ""},
		{"AWSPENDING", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("AWSPENDING")}, "third", "", ""},
		{"by version id", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(v1)}, "first", v1, ""},
		{"version id and a stage it lacks", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionId: aws.String(v1), VersionStage: aws.String("AWSCURRENT")}, "", "", "ResourceNotFoundException"},
		{"unknown stage", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String("NOPE")}, "", "", "ResourceNotFoundException"},
		{"unknown secret", secretsmanager.GetSecretValueInput{SecretId: aws.String("arn:aws:secretsmanager:eu-west-1:123456789012:secret:other-AbCdEf")}, "", "", "ResourceNotFoundException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sm.GetSecretValue(ctx, &tc.in)
			if tc.code != "" {
				if apiCode(err) != tc.code {
					t.Fatalf("err %v, want %s", err, tc.code)
				}
				var nf *smtypes.ResourceNotFoundException
				if !errors.As(err, &nf) || !strings.Contains(nf.ErrorMessage(), "can't find") {
					t.Fatalf("err %v is not the SDK's typed ResourceNotFoundException with the service's message", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.SecretString) != tc.value || aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "byodrop/graph" {
				t.Fatalf("got %q %q %q", aws.ToString(out.SecretString), aws.ToString(out.ARN), aws.ToString(out.Name))
			}
			if tc.version != "" && aws.ToString(out.VersionId) != tc.version {
				t.Fatalf("version %s, want %s", aws.ToString(out.VersionId), tc.version)
			}
		})
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(binARN)})
	if err != nil || string(out.SecretBinary) != "\x00\x01\x02\xff" || out.SecretString != nil {
		t.Fatalf("binary secret: %v %q", err, out.SecretBinary)
	}
	calls := s.Calls("GetSecretValue")
	if len(calls) != len(tests)+1 || calls[0].Region != "eu-west-1" || calls[0].Service != "secretsmanager" || calls[1].Params["VersionStage"] != "AWSCURRENT" {
		t.Fatalf("journal %+v", calls)
	}
}

func TestRequestsMustBeSignedForTheFakesRegion(t *testing.T) {
	s := start(t, Options{Region: "eu-west-1"})
	arn, _ := s.PutSecret("x", "v")
	ctx := context.Background()
	_, err := secretsmanager.NewFromConfig(config(s, "us-east-1", 1)).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if apiCode(err) != "InvalidSignatureException" {
		t.Fatalf("secrets manager signed for us-east-1: %v", err)
	}
	_, err = sts.NewFromConfig(config(s, "us-east-1", 1)).GetWebIdentityToken(ctx, &sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("RS256")})
	if apiCode(err) != "SignatureDoesNotMatch" {
		t.Fatalf("sts signed for us-east-1: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(`{"SecretId":"x"}`))
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MissingAuthenticationToken") {
		t.Fatalf("unsigned request: %d %s", resp.StatusCode, body)
	}
}

func TestInjectedFaultsAreRetriedByTheSDK(t *testing.T) {
	s := start(t, Options{})
	arn, _ := s.PutSecret("x", "v")
	s.Inject(Fault{Action: "GetSecretValue", Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"})
	sm := secretsmanager.NewFromConfig(config(s, "eu-west-1", 2), func(o *secretsmanager.Options) {
		o.Retryer = retryer(o.Retryer)
	})
	if _, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}); err != nil {
		t.Fatalf("a throttled call was not retried: %v", err)
	}
	if n, m := s.Count("GetSecretValue", 400), s.Count("GetSecretValue", 200); n != 1 || m != 1 {
		t.Fatalf("%d throttled, %d served", n, m)
	}
}

// retryer keeps the SDK's retry decisions but not its back-off sleeps.
func retryer(r aws.Retryer) aws.Retryer { return noDelay{r} }

type noDelay struct{ aws.Retryer }

func (noDelay) RetryDelay(int, error) (time.Duration, error) { return 0, nil }

func TestWebIdentityTokensAreSignedAndVerifiable(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	s := start(t, Options{Now: clk.now, Principal: "arn:aws:iam::123456789012:role/byodrop-IngestFunctionRole-ABC"})
	st := sts.NewFromConfig(config(s, "eu-west-1", 1))
	ctx := context.Background()
	for _, alg := range []string{"RS256", "ES384"} {
		t.Run(alg, func(t *testing.T) {
			out, err := st.GetWebIdentityToken(ctx, &sts.GetWebIdentityTokenInput{
				Audience: []string{azureAudience}, SigningAlgorithm: aws.String(alg), DurationSeconds: aws.Int32(120),
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := clk.now().Add(120 * time.Second); !aws.ToTime(out.Expiration).Equal(want) {
				t.Fatalf("expiration %v, want %v", out.Expiration, want)
			}
			jwt := aws.ToString(out.WebIdentityToken)
			sub := s.Options().Principal
			if err := s.VerifyWebIdentityToken(jwt, azureAudience, sub); err != nil {
				t.Fatalf("the token does not verify: %v", err)
			}
			for name, check := range map[string]func() error{
				"wrong audience": func() error { return s.VerifyWebIdentityToken(jwt, "https://example.com", sub) },
				"wrong subject": func() error {
					return s.VerifyWebIdentityToken(jwt, azureAudience, "arn:aws:iam::123456789012:role/other")
				},
				"tampered":       func() error { return s.VerifyWebIdentityToken(tamper(t, jwt), azureAudience, sub) },
				"another issuer": func() error { return start(t, Options{Now: clk.now}).VerifyWebIdentityToken(jwt, azureAudience, sub) },
			} {
				if err := check(); err == nil {
					t.Errorf("%s: verified", name)
				}
			}
			clk.advance(120 * time.Second)
			if err := s.VerifyWebIdentityToken(jwt, azureAudience, sub); err == nil || !strings.Contains(err.Error(), "expired") {
				t.Errorf("verified after its expiration: %v", err)
			}
		})
	}
	call := s.Calls("GetWebIdentityToken")[0]
	if call.Params["Audience.member.1"] != azureAudience || call.Params["SigningAlgorithm"] != "RS256" || call.Params["DurationSeconds"] != "120" || call.Region != "eu-west-1" || call.Service != "sts" {
		t.Fatalf("journal %+v", call)
	}
}

// tamper changes a claim of the token, keeping its signature.
func tamper(t *testing.T, jwt string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		t.Fatal(err)
	}
	claims["jti"] = "forged"
	b, _ := json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

func TestGetWebIdentityTokenRefusals(t *testing.T) {
	s := start(t, Options{AllowedAudiences: []string{azureAudience}, MaxDurationSeconds: 900})
	st := sts.NewFromConfig(config(s, "eu-west-1", 1))
	ok := sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("RS256"), DurationSeconds: aws.Int32(600)}
	tests := []struct {
		name    string
		mutate  func(*sts.GetWebIdentityTokenInput)
		disable bool
		code    string
	}{
		{"accepted", func(*sts.GetWebIdentityTokenInput) {}, false, ""},
		{"HS256 is not a signing algorithm", func(in *sts.GetWebIdentityTokenInput) { in.SigningAlgorithm = aws.String("HS256") }, false, "ValidationError"},
		{"too short", func(in *sts.GetWebIdentityTokenInput) { in.DurationSeconds = aws.Int32(59) }, false, "ValidationError"},
		{"too long", func(in *sts.GetWebIdentityTokenInput) { in.DurationSeconds = aws.Int32(3601) }, false, "ValidationError"},
		{"longer than the policy allows", func(in *sts.GetWebIdentityTokenInput) { in.DurationSeconds = aws.Int32(901) }, false, "AccessDenied"},
		{"an audience the policy does not allow", func(in *sts.GetWebIdentityTokenInput) {
			in.Audience = []string{azureAudience, "https://example.com"}
		}, false, "AccessDenied"},
		{"federation not enabled", func(*sts.GetWebIdentityTokenInput) {}, true, "OutboundWebIdentityFederationDisabledException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ok
			tc.mutate(&in)
			s.SetFederationEnabled(!tc.disable)
			_, err := st.GetWebIdentityToken(context.Background(), &in)
			if got := apiCode(err); got != tc.code {
				t.Fatalf("err %v, want code %q", err, tc.code)
			}
			if tc.disable {
				var d *ststypes.OutboundWebIdentityFederationDisabledException
				if !errors.As(err, &d) {
					t.Fatalf("err %T is not the SDK's typed exception", err)
				}
			}
		})
	}
}

func TestIssuerPublishesItsKeys(t *testing.T) {
	s := start(t, Options{})
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, s.Issuer()+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != s.Issuer() || doc.JWKSURI != s.Issuer()+"/.well-known/jwks.json" {
		t.Fatalf("discovery %+v", doc)
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	getJSON(t, doc.JWKSURI, &jwks)
	if len(jwks.Keys) != 2 || jwks.Keys[0]["kid"] != s.rsaID || jwks.Keys[1]["crv"] != "P-384" {
		t.Fatalf("jwks %+v", jwks)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
