package entra

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byodrop/byodrop/internal/awsfake"
	"github.com/byodrop/byodrop/internal/config"
	"github.com/byodrop/byodrop/internal/graphemu"
	"github.com/byodrop/byodrop/internal/review"
)

var federationEnv = map[string]string{config.EnvCredential: config.CredentialAWSFederation}

func TestFederationModeGetsTokensWithoutASecret(t *testing.T) {
	w := newWorld(t, graphemu.Options{}, awsfake.Options{AllowedAudiences: []string{FederationAudience}, MaxDurationSeconds: WebIdentityTokenSeconds}, federationCheck)
	src := w.source(t, federationEnv)
	c := w.graphClient(t, src)
	ctx := testContext(t)
	for i := range 3 {
		if _, err := c.Create(ctx, newTarget(i)); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	calls := w.aws.Calls("GetWebIdentityToken")
	if len(calls) != 1 {
		t.Fatalf("%d GetWebIdentityToken calls, want 1", len(calls))
	}
	want := map[string]string{
		"Audience.member.1": FederationAudience,
		"SigningAlgorithm":  "RS256",
		"DurationSeconds":   "600",
		"Version":           "2011-06-15",
	}
	for k, v := range want {
		if calls[0].Params[k] != v {
			t.Errorf("%s = %q, want %q", k, calls[0].Params[k], v)
		}
	}
	if _, more := calls[0].Params["Audience.member.2"]; more {
		t.Error("more than one audience asked for")
	}
	if calls[0].Region != "eu-west-1" || calls[0].Service != "sts" {
		t.Errorf("signed for %s/%s, want eu-west-1/sts", calls[0].Region, calls[0].Service)
	}
	if n := len(w.accepted()); n != 1 {
		t.Errorf("%d assertions accepted, want 1", n)
	}
	if n := len(w.aws.Calls("GetSecretValue")); n != 0 {
		t.Errorf("%d secret reads in the secretless mode", n)
	}
}

func TestFederationReusesTheWebIdentityTokenUntilShortlyBeforeItExpires(t *testing.T) {
	clk := &clock{t: time.Now()}
	// Access tokens live 2 minutes, so that every renewal asks Entra, and
	// Entra asks for an assertion; the fake clock moves 90 seconds a step,
	// past each token's half life.
	w := newWorld(t, graphemu.Options{TokenTTL: 2 * time.Minute, Now: clk.now}, awsfake.Options{Now: clk.now}, federationCheck)
	o := w.emu.Options()
	scope, _ := ScopeFor(w.emu.URL())
	src, err := newFederationSource(Options{TenantID: o.TenantID, ClientID: o.ClientID, AuthorityHost: w.emu.AuthorityHost(), HTTPClient: w.emu.Client(), Scope: scope},
		sts.NewFromConfig(w.awsCfg), federation{seconds: WebIdentityTokenSeconds, now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	src.now = clk.now
	c := w.graphClient(t, src)
	ctx := testContext(t)
	const steps = 11 // 0s, 90s, … 900s
	for i := range steps {
		if _, err := c.Create(ctx, newTarget(i)); err != nil {
			t.Fatalf("create at +%ds: %v", i*90, err)
		}
		clk.advance(90 * time.Second)
	}
	if n := w.emu.Count("token", http.StatusOK); n != steps {
		t.Fatalf("%d token requests, want %d (one per renewal)", n, steps)
	}
	// A web identity token (10 minutes) serves until 2 minutes before it
	// expires: the first serves the renewals at 0s … 450s, the second the
	// ones at 540s … 900s.
	if n := len(w.aws.Calls("GetWebIdentityToken")); n != 2 {
		t.Fatalf("%d GetWebIdentityToken calls for %d token requests, want 2", n, steps)
	}
	seen := map[string]int{}
	for _, a := range w.accepted() {
		seen[a]++
	}
	if len(seen) != 2 {
		t.Fatalf("%d distinct assertions, want 2", len(seen))
	}
}

func TestFederationRetriesWhileTheFederatedCredentialPropagates(t *testing.T) {
	tests := []struct {
		name     string
		refusals int // AADSTS70021 answers before Entra accepts
		ok       bool
	}{
		{"accepted on the third try", 2, true},
		{"still refused after every try", 100, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			refused := 0
			w := newWorld(t, graphemu.Options{}, awsfake.Options{}, func(w *world, jwt string) error {
				mu.Lock()
				defer mu.Unlock()
				if refused < tc.refusals {
					refused++
					return errors.New("AADSTS70021: No matching federated identity record found for presented assertion.")
				}
				return federationCheck(w, jwt)
			})
			o := w.emu.Options()
			scope, _ := ScopeFor(w.emu.URL())
			delays := []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
			src, err := newFederationSource(Options{TenantID: o.TenantID, ClientID: o.ClientID, AuthorityHost: w.emu.AuthorityHost(), HTTPClient: w.emu.Client(), Scope: scope},
				sts.NewFromConfig(w.awsCfg), federation{seconds: WebIdentityTokenSeconds, delays: delays, now: time.Now})
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Token(testContext(t), false)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v", err)
			}
			wantRefused := min(tc.refusals, len(delays)+1)
			if n := w.emu.Count("token", http.StatusUnauthorized); n != wantRefused {
				t.Errorf("%d refused token requests, want %d", n, wantRefused)
			}
			if n := len(w.aws.Calls("GetWebIdentityToken")); n != 1 {
				t.Errorf("%d GetWebIdentityToken calls: the tries must share the web identity token", n)
			}
			if err != nil {
				if k := review.KindOf(err); k != review.Transient || !strings.Contains(err.Error(), "AADSTS70021") {
					t.Errorf("err %v (kind %v), want transient AADSTS70021", err, k)
				}
			}
		})
	}
}

func TestFederationErrorsSayWhatToFix(t *testing.T) {
	tests := []struct {
		name  string
		opts  awsfake.Options
		setup func(*awsfake.Server)
		kind  review.Kind
		want  string
	}{
		{"federation not enabled for the account", awsfake.Options{}, func(f *awsfake.Server) { f.SetFederationEnabled(false) },
			review.Internal, "aws iam enable-outbound-web-identity-federation"},
		{"no permission for the audience", awsfake.Options{AllowedAudiences: []string{"https://example.com"}}, func(*awsfake.Server) {},
			review.Internal, "needs sts:GetWebIdentityToken"},
		{"a lifetime the policy does not allow", awsfake.Options{MaxDurationSeconds: 300}, func(*awsfake.Server) {},
			review.Internal, "AccessDenied"},
		{"STS throttled", awsfake.Options{}, func(f *awsfake.Server) {
			f.Inject(awsfake.Fault{Action: "GetWebIdentityToken", Status: 400, Code: "Throttling", Message: "Rate exceeded"})
		}, review.Transient, "Throttling"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, graphemu.Options{}, tc.opts, federationCheck)
			tc.setup(w.aws)
			_, err := w.source(t, federationEnv).Token(testContext(t), false)
			if err == nil {
				t.Fatal("a token")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "sts:GetWebIdentityToken") {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if k := review.KindOf(err); k != tc.kind {
				t.Errorf("kind %v, want %v", k, tc.kind)
			}
			if n := w.emu.Count("token", http.StatusOK); n != 0 {
				t.Errorf("%d tokens issued", n)
			}
		})
	}
}

// recordingClient answers every AWS request with a 500 after noting its
// host and body.
type recordingClient struct {
	mu    sync.Mutex
	hosts []string
	body  []string
}

func (r *recordingClient) Do(req *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	r.body = append(r.body, string(b))
	r.mu.Unlock()
	return &http.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func TestAWSClientsUseRegionalEndpoints(t *testing.T) {
	tests := []struct {
		name, region, credential, arn string
		host, action                  string
	}{
		{"STS in the function's region", "eu-central-1", config.CredentialAWSFederation, "",
			"sts.eu-central-1.amazonaws.com", "Action=GetWebIdentityToken"},
		{"STS in us-east-1 is still regional", "us-east-1", config.CredentialAWSFederation, "",
			"sts.us-east-1.amazonaws.com", "Action=GetWebIdentityToken"},
		{"Secrets Manager in the secret's region", "eu-west-1", config.CredentialSecret, "arn:aws:secretsmanager:us-east-2:123456789012:secret:byodrop/graph-AbCdEf",
			"secretsmanager.us-east-2.amazonaws.com", `"SecretId":"arn:aws:secretsmanager:us-east-2`},
	}
	// The emulator as authority: MSAL reads its discovery documents before
	// it asks for an assertion, and must not go to the Internet for them.
	emu, err := graphemu.Start(graphemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingClient{}
			cfg := aws.Config{
				Region:           tc.region,
				Credentials:      credentials.NewStaticCredentialsProvider("AKIAFAKEFAKEFAKE", "fake", ""),
				HTTPClient:       rec,
				RetryMaxAttempts: 1,
			}
			s := config.Settings{
				TenantID: emu.Options().TenantID, ClientID: emu.Options().ClientID,
				AuthorityHost: emu.AuthorityHost(), GraphEndpoint: emu.URL(),
				Credential: tc.credential, SecretARN: tc.arn,
			}
			src, err := FromSettings(s, cfg, emu.Client())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.Token(context.Background(), false); err == nil {
				t.Fatal("a token from a server that answers 500")
			}
			if len(rec.hosts) != 1 || rec.hosts[0] != tc.host || !strings.Contains(rec.body[0], tc.action) {
				t.Fatalf("requests to %v (%v), want one to %s", rec.hosts, rec.body, tc.host)
			}
		})
	}
}

func TestFromSettingsRefusesFederationWithoutARegion(t *testing.T) {
	s := config.Settings{TenantID: "t", ClientID: "c", GraphEndpoint: "https://graph.microsoft.com", Credential: config.CredentialAWSFederation}
	for _, region := range []string{"", "aws-global"} {
		_, err := FromSettings(s, aws.Config{Region: region}, nil)
		if err == nil || !strings.Contains(err.Error(), "AWS_REGION") || !strings.Contains(err.Error(), "regional") {
			t.Errorf("region %q: %v", region, err)
		}
	}
}

func TestFromSettingsUsesTheLocalSecretWithoutAWS(t *testing.T) {
	w := newWorld(t, graphemu.Options{}, awsfake.Options{}, nil)
	src := w.source(t, map[string]string{config.EnvClientSecret: w.emu.Options().ClientSecret})
	if _, err := w.graphClient(t, src).Create(testContext(t), newTarget(1)); err != nil {
		t.Fatal(err)
	}
	if n := len(w.aws.Calls("")); n != 0 {
		t.Fatalf("%d AWS calls with AZURE_CLIENT_SECRET set", n)
	}
}
