package entra

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/byodrop/byodrop/internal/awsfake"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/graph"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/review"
)

// world is a Graph emulator and an AWS fake, wired as the functions see
// them in AWS: the SDK reaches the fake through its endpoint settings.
type world struct {
	emu    *graphemu.Server
	aws    *awsfake.Server
	awsCfg aws.Config

	mu         sync.Mutex
	assertions []string // client assertions the token endpoint accepted
}

// newWorld starts both fakes. check, if not nil, decides on the client
// assertions the emulator's token endpoint receives.
func newWorld(t *testing.T, emuOpts graphemu.Options, awsOpts awsfake.Options, check func(w *world, jwt string) error) *world {
	t.Helper()
	w := &world{}
	fake, err := awsfake.Start(awsOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	w.aws = fake
	if check != nil {
		emuOpts.AssertionCheck = func(jwt string) error {
			if err := check(w, jwt); err != nil {
				return err
			}
			w.mu.Lock()
			w.assertions = append(w.assertions, jwt)
			w.mu.Unlock()
			return nil
		}
	}
	emu, err := graphemu.Start(emuOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	w.emu = emu

	// The SDK's own settings, as in a deployment: region from AWS_REGION,
	// endpoints from AWS_ENDPOINT_URL_<SERVICE>, no profile files.
	t.Setenv("AWS_REGION", fake.Options().Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", fake.URL())
	t.Setenv("AWS_ENDPOINT_URL_STS", fake.URL())
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.awsCfg = cfg
	return w
}

// settings reads the product settings for the emulator plus env.
func (w *world) settings(t *testing.T, env map[string]string) config.Settings {
	t.Helper()
	o := w.emu.Options()
	all := map[string]string{
		config.EnvTenantID:      o.TenantID,
		config.EnvClientID:      o.ClientID,
		config.EnvAuthorityHost: w.emu.AuthorityHost(),
		config.EnvGraphEndpoint: w.emu.URL(),
	}
	for k, v := range env {
		all[k] = v
	}
	s, err := config.FromEnv(func(k string) string { return all[k] })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// source builds the Source the way the functions do.
func (w *world) source(t *testing.T, env map[string]string) *Source {
	t.Helper()
	src, err := FromSettings(w.settings(t, env), w.awsCfg, w.emu.Client())
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// graphClient is a Graph client on src.
func (w *world) graphClient(t *testing.T, src *Source) *graph.Client {
	t.Helper()
	p, _ := graph.ProfileByName("v1.0")
	c, err := graph.New(graph.Config{Endpoint: w.emu.URL(), Profile: p, Tokens: src, HTTPClient: w.emu.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (w *world) accepted() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.assertions...)
}

// newTarget returns a review target of its own for each session.
func newTarget(i int) review.Target {
	t := emuTarget
	t.ReviewInstanceID = fmt.Sprintf("9d4cbf51-6e70-4182-bdce-%012d", i)
	return t
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jwtParts decodes a compact JWT's header and claims.
func jwtParts(jwt string) (header, claims map[string]any, signing, sig []byte, err error) {
	p := strings.Split(jwt, ".")
	if len(p) != 3 {
		return nil, nil, nil, nil, fmt.Errorf("%d parts", len(p))
	}
	dec := func(s string, v any) error {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	if err = dec(p[0], &header); err != nil {
		return
	}
	if err = dec(p[1], &claims); err != nil {
		return
	}
	sig, err = base64.RawURLEncoding.DecodeString(p[2])
	return header, claims, []byte(p[0] + "." + p[1]), sig, err
}

// certificateCheck verifies a certificate client assertion as Entra does
// for a certificate uploaded to the app registration: the header names the
// certificate by thumbprint (x5t#S256, or the older SHA-1 x5t), the
// signature verifies with its public key (PS256, or RS256), and the
// assertion's issuer and subject are the client id. x5c, when sent, must
// start with the certificate.
func certificateCheck(cert *x509.Certificate, clientID string, wantChain int) func(*world, string) error {
	return func(_ *world, jwt string) error {
		hdr, claims, signing, sig, err := jwtParts(jwt)
		if err != nil {
			return fmt.Errorf("AADSTS50027: JWT token is invalid or malformed: %v", err)
		}
		thumb := func(key string, sum []byte) bool {
			s, _ := hdr[key].(string)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				b, err = base64.RawURLEncoding.DecodeString(s)
			}
			return err == nil && string(b) == string(sum)
		}
		s256, s1 := sha256.Sum256(cert.Raw), sha1.Sum(cert.Raw)
		if !thumb("x5t#S256", s256[:]) && !thumb("x5t", s1[:]) {
			return errors.New("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")
		}
		pub := cert.PublicKey.(*rsa.PublicKey)
		switch hdr["alg"] {
		case "PS256":
			h := sha256.Sum256(signing)
			err = rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		case "RS256":
			h := sha256.Sum256(signing)
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig)
		default:
			err = fmt.Errorf("alg %v", hdr["alg"])
		}
		if err != nil {
			return fmt.Errorf("AADSTS700027: Client assertion failed signature validation: %v", err)
		}
		if claims["iss"] != clientID || claims["sub"] != clientID {
			return fmt.Errorf("AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter (iss %v, sub %v).", claims["iss"], claims["sub"])
		}
		x5c, _ := hdr["x5c"].([]any)
		if len(x5c) != wantChain {
			return fmt.Errorf("test: x5c has %d certificates, want %d", len(x5c), wantChain)
		}
		if len(x5c) > 0 && x5c[0] != base64.StdEncoding.EncodeToString(cert.Raw) {
			return errors.New("test: x5c does not start with the signing certificate")
		}
		return nil
	}
}

// federationCheck verifies a web identity token as Entra does for a
// federated identity credential with the fake account's issuer and the
// role as subject.
func federationCheck(w *world, jwt string) error {
	o := w.aws.Options()
	if err := w.aws.VerifyWebIdentityToken(jwt, FederationAudience, o.Principal); err != nil {
		return fmt.Errorf("AADSTS70021: No matching federated identity record found for presented assertion: %v", err)
	}
	if hdr, _, _, _, _ := jwtParts(jwt); hdr["alg"] != "RS256" {
		return fmt.Errorf("AADSTS5002738: Invalid JWT token. '%v' is not a supported signature algorithm.", hdr["alg"])
	}
	return nil
}

func TestSecretModeReadsSecretsManagerOncePerContainer(t *testing.T) {
	const secret = "s3cr3t~Value.from-SecretsManager_01"
	tests := []struct {
		name  string
		store func(f *awsfake.Server) string
	}{
		{"the secret itself", func(f *awsfake.Server) string { arn, _ := f.PutSecret("byodrop/graph", secret+"\n"); return arn }},
		{"JSON clientSecret", func(f *awsfake.Server) string {
			arn, _ := f.PutSecret("byodrop/graph", `{"clientId":"x","clientSecret":"`+secret+`"}`)
			return arn
		}},
		{"JSON client_secret", func(f *awsfake.Server) string {
			arn, _ := f.PutSecret("byodrop/graph", `{"client_secret":"`+secret+`"}`)
			return arn
		}},
		{"binary secret", func(f *awsfake.Server) string {
			arn, _ := f.PutSecretBinary("byodrop/graph", []byte(secret))
			return arn
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, graphemu.Options{ClientSecret: secret}, awsfake.Options{}, nil)
			arn := tc.store(w.aws)
			src := w.source(t, map[string]string{config.EnvSecretARN: arn})
			c := w.graphClient(t, src)
			ctx := testContext(t)
			for i := range 5 {
				if _, err := c.Create(ctx, newTarget(i)); err != nil {
					t.Fatalf("create %d: %v", i, err)
				}
			}
			calls := w.aws.Calls("GetSecretValue")
			if len(calls) != 1 {
				t.Fatalf("%d GetSecretValue calls for 5 Graph calls, want 1", len(calls))
			}
			if calls[0].Params["SecretId"] != arn || calls[0].Params["VersionStage"] != "AWSCURRENT" || calls[0].Region != "eu-west-1" {
				t.Fatalf("GetSecretValue %+v", calls[0])
			}
			if n := w.emu.Count("token", http.StatusOK); n != 1 {
				t.Fatalf("%d token requests, want 1", n)
			}
		})
	}
}

func TestSecretModeReadsTheRotatedSecretAfterGraphRefusesTheToken(t *testing.T) {
	w := newWorld(t, graphemu.Options{ClientSecret: "old-secret-value-1"}, awsfake.Options{}, nil)
	arn, _ := w.aws.PutSecret("byodrop/graph", "old-secret-value-1")
	src := w.source(t, map[string]string{config.EnvSecretARN: arn})
	c := w.graphClient(t, src)
	ctx := testContext(t)
	s, err := c.Create(ctx, newTarget(1))
	if err != nil {
		t.Fatal(err)
	}

	// Rotation: a new AWSCURRENT, Entra forgets the old secret, and the
	// access token issued with it stops working.
	w.aws.PutSecret("byodrop/graph", "new-secret-value-2")
	w.emu.SetClientSecret("new-secret-value-2")
	w.emu.ExpireTokens()

	if _, err := c.Get(ctx, newTarget(1), s.ID); err != nil {
		t.Fatalf("get after the rotation: %v", err)
	}
	if n := w.emu.Count("get", http.StatusUnauthorized); n != 1 {
		t.Fatalf("%d refused gets, want exactly 1 (then one refresh)", n)
	}
	calls := w.aws.Calls("GetSecretValue")
	if len(calls) != 2 || calls[1].Params["VersionStage"] != "AWSCURRENT" {
		t.Fatalf("GetSecretValue calls %+v, want a second one for AWSCURRENT", calls)
	}
	if n, bad := w.emu.Count("token", http.StatusOK), w.emu.Count("token", http.StatusUnauthorized); n != 2 || bad != 0 {
		t.Fatalf("token requests: %d accepted, %d refused; want 2 and 0 (the old secret is never tried again)", n, bad)
	}
	// Steady state again.
	for i := range 3 {
		if _, err := c.Get(ctx, newTarget(1), s.ID); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if n := len(w.aws.Calls("GetSecretValue")); n != 2 {
		t.Fatalf("%d GetSecretValue calls, want still 2", n)
	}
}

func TestSecretModeReadsTheRotatedSecretWhenTheTokenEndpointRefusesTheOldOne(t *testing.T) {
	clk := &clock{t: time.Now()}
	// Short-lived access tokens: each renewal goes to the token endpoint.
	w := newWorld(t, graphemu.Options{ClientSecret: "old-secret-value-1", TokenTTL: 2 * time.Minute, Now: clk.now}, awsfake.Options{}, nil)
	arn, _ := w.aws.PutSecret("byodrop/graph", "old-secret-value-1")
	src := w.source(t, map[string]string{config.EnvSecretARN: arn})
	src.now = clk.now
	ctx := testContext(t)
	if _, err := src.Token(ctx, false); err != nil {
		t.Fatal(err)
	}
	w.aws.PutSecret("byodrop/graph", "new-secret-value-2")
	w.emu.SetClientSecret("new-secret-value-2")
	clk.advance(90 * time.Second) // past half its life: due for renewal, not expired
	if _, err := w.graphClient(t, src).Create(ctx, newTarget(2)); err != nil {
		t.Fatalf("create after the rotation: %v", err)
	}
	if bad := w.emu.Count("token", http.StatusUnauthorized); bad != 1 {
		t.Fatalf("%d refused token requests, want 1 (the old secret, once)", bad)
	}
	if n := len(w.aws.Calls("GetSecretValue")); n != 2 {
		t.Fatalf("%d GetSecretValue calls, want 2", n)
	}
}

func TestSecretModeErrorsNameTheProblemAndNeverTheSecret(t *testing.T) {
	const stored = "wrong-but-secret-Q7x"
	tests := []struct {
		name  string
		setup func(w *world) string // returns the ARN
		fault *awsfake.Fault
		kind  review.Kind
		want  []string
	}{
		{"unknown secret", func(w *world) string {
			return "arn:aws:secretsmanager:eu-west-1:123456789012:secret:missing-AbCdEf"
		}, nil, review.Internal, []string{"secretsmanager:GetSecretValue", "missing-AbCdEf", "ResourceNotFoundException", "check GRAPH_SECRET_ARN"}},
		{"throttled", func(w *world) string { arn, _ := w.aws.PutSecret("s", stored); return arn },
			&awsfake.Fault{Action: "GetSecretValue", Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}, review.Transient, []string{"ThrottlingException"}},
		{"access denied", func(w *world) string { arn, _ := w.aws.PutSecret("s", stored); return arn },
			&awsfake.Fault{Action: "GetSecretValue", Status: 400, Code: "AccessDeniedException", Message: "not authorized"}, review.Internal, []string{"needs secretsmanager:GetSecretValue"}},
		{"a secret Entra refuses", func(w *world) string { arn, _ := w.aws.PutSecret("s", stored); return arn }, nil, review.Internal, []string{"AADSTS7000215"}},
		{"a PEM in secret mode", func(w *world) string {
			arn, _ := w.aws.PutSecret("s", "-----BEGIN CERTIFICATE-----\n"+stored+"\n-----END CERTIFICATE-----\n")
			return arn
		}, nil, review.Internal, []string{"GRAPH_CREDENTIAL=certificate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, graphemu.Options{}, awsfake.Options{}, nil)
			arn := tc.setup(w)
			if tc.fault != nil {
				w.aws.Inject(*tc.fault)
			}
			src := w.source(t, map[string]string{config.EnvSecretARN: arn})
			_, err := src.Token(testContext(t), false)
			if err == nil {
				t.Fatal("a token")
			}
			if strings.Contains(err.Error(), stored) {
				t.Fatalf("the secret is in the error: %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if k := review.KindOf(err); k != tc.kind {
				t.Errorf("kind %v, want %v", k, tc.kind)
			}
		})
	}
}
