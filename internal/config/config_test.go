package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/review"
)

const (
	tenant = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	client = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	cat    = "11111111-1111-4111-8111-111111111111"
	res    = "22222222-2222-4222-8222-222222222222"
	secret = "Xq8~s3cr3t.Value_that-must-never-leak"
)

// env returns a getenv over the minimal valid environment with overrides
// applied; an override of "" unsets the variable.
func env(overrides map[string]string) func(string) string {
	m := map[string]string{
		EnvTenantID:     tenant,
		EnvClientID:     client,
		EnvClientSecret: secret,
	}
	for k, v := range overrides {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestFromEnvDefaults(t *testing.T) {
	got, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		TenantID: tenant, ClientID: client, ClientSecret: secret,
		AuthorityHost:  "https://login.microsoftonline.com/",
		GraphEndpoint:  "https://graph.microsoft.com",
		GraphAPI:       "v1.0",
		StatePrefix:    "state/",
		IncomingPrefix: "incoming/",
		UploadWindow:   2 * time.Hour,
		QuietPeriod:    10 * time.Minute,
		CloseMargin:    15 * time.Minute,
		Credential:     "secret",
		StandingPrefix: "standing/",
		ReviewsAPI:     "beta",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %s\nwant %s", got, want)
	}
	if got.StateBucket != "" {
		t.Errorf("StateBucket = %q, want empty (the drop bucket)", got.StateBucket)
	}
}

func TestFromEnvReadsAndNormalizesEverySetting(t *testing.T) {
	got, err := FromEnv(env(map[string]string{
		EnvTenantID:       "  " + strings.ToUpper(tenant) + "\n",
		EnvClientID:       strings.ToUpper(client),
		EnvClientSecret:   "",
		EnvAuthorityHost:  "https://login.microsoftonline.us",
		EnvGraphEndpoint:  "https://graph.microsoft.us/",
		EnvGraphAPI:       "beta-2025",
		EnvStateBucket:    "byodrop-state.eu-1",
		EnvStatePrefix:    "byodrop/state",
		EnvIncomingPrefix: "byodrop/incoming",
		EnvRoutes:         `{"badge": {"catalogId": "` + strings.ToUpper(cat) + `", "resourceId": "` + res + `", "source": " Badge system "}, "door lock": {"catalogId": "` + cat + `", "resourceId": "` + res + `", "source": "Doors"}}`,
		EnvUploadWindow:   "90m",
		EnvQuietPeriod:    "90s",
		EnvCloseMargin:    "1h29m",
		EnvS3Endpoint:     "http://127.0.0.1:7070",
		EnvS3PathStyle:    "true",
		EnvCredential:     "secret",
		EnvSecretARN:      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph-AbCdEf",
		EnvDropBucket:     " byodrop-drop ",
		EnvStandingPrefix: "byodrop/standing",
		EnvReviewsAPI:     "v1.0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		TenantID: tenant, ClientID: client,
		AuthorityHost:  "https://login.microsoftonline.us/",
		GraphEndpoint:  "https://graph.microsoft.us",
		GraphAPI:       "beta-2025",
		StateBucket:    "byodrop-state.eu-1",
		StatePrefix:    "byodrop/state/",
		IncomingPrefix: "byodrop/incoming/",
		Routes: dropkey.Routes{
			"badge":     {CatalogID: cat, ResourceID: res, Source: "Badge system"},
			"door lock": {CatalogID: cat, ResourceID: res, Source: "Doors"},
		},
		UploadWindow:   90 * time.Minute,
		QuietPeriod:    90 * time.Second,
		CloseMargin:    89 * time.Minute,
		S3Endpoint:     "http://127.0.0.1:7070",
		S3PathStyle:    true,
		Credential:     "secret",
		SecretARN:      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:byodrop/graph-AbCdEf",
		DropBucket:     "byodrop-drop",
		StandingPrefix: "byodrop/standing/",
		ReviewsAPI:     "v1.0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %#v\nwant %#v\nroutes got %v want %v", got, want, got.Routes, want.Routes)
	}
}

func TestFromEnvAccepts(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(Settings) bool
	}{
		{"tenant as a domain name", map[string]string{EnvTenantID: "contoso.onmicrosoft.com"},
			func(s Settings) bool { return s.TenantID == "contoso.onmicrosoft.com" }},
		{"local emulator over http on loopback", map[string]string{EnvGraphEndpoint: "http://127.0.0.1:8443", EnvAuthorityHost: "http://[::1]:9000/"},
			func(s Settings) bool {
				return s.GraphEndpoint == "http://127.0.0.1:8443" && s.AuthorityHost == "http://[::1]:9000/"
			}},
		{"authority host with a path keeps it, ending with '/'", map[string]string{EnvAuthorityHost: "https://localhost:9000/entra"},
			func(s Settings) bool { return s.AuthorityHost == "https://localhost:9000/entra/" }},
		{"secret from Secrets Manager only", map[string]string{EnvClientSecret: "", EnvSecretARN: "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x"},
			func(s Settings) bool { return s.ClientSecret == "" && s.SecretARN != "" }},
		{"certificate from Secrets Manager", map[string]string{EnvClientSecret: "", EnvCredential: "certificate", EnvSecretARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cert"},
			func(s Settings) bool { return s.Credential == CredentialCertificate }},
		{"aws-federation needs no secret", map[string]string{EnvClientSecret: "", EnvCredential: "aws-federation"},
			func(s Settings) bool { return s.Credential == CredentialAWSFederation }},
		{"path style false", map[string]string{EnvS3PathStyle: "0"},
			func(s Settings) bool { return !s.S3PathStyle }},
		{"empty ROUTES object means no routes", map[string]string{EnvRoutes: " {} "},
			func(s Settings) bool { return s.Routes == nil }},
		{"source optional outside beta-2025", map[string]string{EnvRoutes: `{"badge": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`},
			func(s Settings) bool { return s.Routes["badge"].CatalogID == cat && s.Routes["badge"].Source == "" }},
		{"prefixes side by side", map[string]string{EnvStatePrefix: "incoming-state", EnvIncomingPrefix: "incoming"},
			func(s Settings) bool { return s.StatePrefix == "incoming-state/" && s.IncomingPrefix == "incoming/" }},
		{"drop bucket defaults to the state bucket", map[string]string{EnvStateBucket: "byodrop-state"},
			func(s Settings) bool { return s.DropBucket == "byodrop-state" && s.StateBucket == "byodrop-state" }},
		{"drop bucket of its own", map[string]string{EnvStateBucket: "byodrop-state", EnvDropBucket: "byodrop-drop"},
			func(s Settings) bool { return s.DropBucket == "byodrop-drop" && s.StateBucket == "byodrop-state" }},
		{"standing prefix beside incoming and state", map[string]string{EnvStandingPrefix: "incoming-standing", EnvStatePrefix: "standing-state"},
			func(s Settings) bool {
				return s.StandingPrefix == "incoming-standing/" && s.StatePrefix == "standing-state/"
			}},
		{"reviews API on v1.0", map[string]string{EnvReviewsAPI: " v1.0 "},
			func(s Settings) bool { return s.ReviewsAPI == "v1.0" }},
		{"a close margin just under the window", map[string]string{EnvUploadWindow: "2h", EnvCloseMargin: "119m59s"},
			func(s Settings) bool { return s.CloseMargin == 2*time.Hour-time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromEnv(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Errorf("unexpected settings: %v", s)
			}
		})
	}
}

func TestFromEnvRejects(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		setting string
		want    string
	}{
		{"missing tenant", map[string]string{EnvTenantID: ""}, EnvTenantID, "required"},
		{"blank tenant", map[string]string{EnvTenantID: "   "}, EnvTenantID, "required"},
		{"tenant neither GUID nor domain", map[string]string{EnvTenantID: "contoso"}, EnvTenantID, `must be a GUID or a domain name such as contoso.onmicrosoft.com, got "contoso"`},
		{"tenant with a path", map[string]string{EnvTenantID: "contoso.com/x"}, EnvTenantID, "must be a GUID or a domain name"},
		{"tenant domain label with a leading hyphen", map[string]string{EnvTenantID: "-contoso.com"}, EnvTenantID, "must be a GUID or a domain name"},
		{"missing client id", map[string]string{EnvClientID: ""}, EnvClientID, "required"},
		{"client id not a GUID", map[string]string{EnvClientID: "my-app"}, EnvClientID, `must be a GUID, got "my-app"`},
		{"authority over plain http", map[string]string{EnvAuthorityHost: "http://login.example.com/"}, EnvAuthorityHost, "plain http is allowed only to a loopback address"},
		{"graph endpoint over plain http", map[string]string{EnvGraphEndpoint: "http://graph.example.com"}, EnvGraphEndpoint, `plain http is allowed only to a loopback address (127.0.0.0/8, ::1, localhost), not "graph.example.com"`},
		{"graph endpoint with a version", map[string]string{EnvGraphEndpoint: "https://graph.microsoft.com/v1.0/"}, EnvGraphEndpoint, `must not include the API version ("/v1.0"); set GRAPH_API=v1.0 instead`},
		{"graph endpoint with beta", map[string]string{EnvGraphEndpoint: "https://graph.microsoft.com/beta"}, EnvGraphEndpoint, "set GRAPH_API=beta instead"},
		{"graph endpoint without scheme", map[string]string{EnvGraphEndpoint: "graph.microsoft.com"}, EnvGraphEndpoint, "not an http(s) URL"},
		{"graph endpoint with a query", map[string]string{EnvGraphEndpoint: "https://graph.microsoft.com?x=1"}, EnvGraphEndpoint, "query"},
		{"unknown graph api", map[string]string{EnvGraphAPI: "v2.0"}, EnvGraphAPI, `must be one of v1.0, beta, beta-2025, got "v2.0"`},
		{"graph api is case-sensitive", map[string]string{EnvGraphAPI: "Beta"}, EnvGraphAPI, "must be one of"},
		{"state bucket as an ARN", map[string]string{EnvStateBucket: "arn:aws:s3:::state"}, EnvStateBucket, "only lower-case letters, digits"},
		{"state bucket too short", map[string]string{EnvStateBucket: "ab"}, EnvStateBucket, "3 to 63 characters"},
		{"state bucket ending with a hyphen", map[string]string{EnvStateBucket: "state-"}, EnvStateBucket, "starts and ends with a letter or digit"},
		{"state under incoming", map[string]string{EnvStatePrefix: "incoming/state/"}, EnvStatePrefix, `"incoming/state/" must not be under INCOMING_PREFIX "incoming/"`},
		{"state equal to incoming", map[string]string{EnvStatePrefix: "incoming"}, EnvStatePrefix, "must not be under INCOMING_PREFIX"},
		{"incoming under state", map[string]string{EnvIncomingPrefix: "state/incoming"}, EnvIncomingPrefix, `"state/incoming/" must not be under STATE_PREFIX "state/"`},
		{"standing under incoming", map[string]string{EnvStandingPrefix: "incoming/standing/"}, EnvStandingPrefix, `"incoming/standing/" must not be under INCOMING_PREFIX "incoming/"`},
		{"standing equal to incoming", map[string]string{EnvStandingPrefix: "incoming"}, EnvStandingPrefix, "must not be under INCOMING_PREFIX"},
		{"incoming under standing", map[string]string{EnvStandingPrefix: "data", EnvIncomingPrefix: "data/incoming"}, EnvStandingPrefix, `"data/" must not contain INCOMING_PREFIX "data/incoming/"`},
		{"standing under state", map[string]string{EnvStandingPrefix: "state/standing"}, EnvStandingPrefix, `"state/standing/" must not be under STATE_PREFIX "state/"`},
		{"state under standing", map[string]string{EnvStatePrefix: "standing/state"}, EnvStandingPrefix, `"standing/" must not contain STATE_PREFIX "standing/state/"`},
		{"standing prefix with dot-dot", map[string]string{EnvStandingPrefix: "standing/../x"}, EnvStandingPrefix, `must not contain a ".." segment`},
		{"drop bucket as an ARN", map[string]string{EnvDropBucket: "arn:aws:s3:::drop"}, EnvDropBucket, "only lower-case letters, digits"},
		{"reviews API beta-2025 is an upload profile, not a reviews version", map[string]string{EnvReviewsAPI: "beta-2025"}, EnvReviewsAPI, `must be one of beta, v1.0, got "beta-2025"`},
		{"reviews API is case-sensitive", map[string]string{EnvReviewsAPI: "Beta"}, EnvReviewsAPI, "must be one of beta, v1.0"},
		{"prefix starting with a slash", map[string]string{EnvIncomingPrefix: "/incoming/"}, EnvIncomingPrefix, "must not start with '/'"},
		{"prefix with an empty segment", map[string]string{EnvStatePrefix: "a//b/"}, EnvStatePrefix, `empty segment ("//")`},
		{"prefix with dot-dot", map[string]string{EnvStatePrefix: "a/../b"}, EnvStatePrefix, `must not contain a ".." segment`},
		{"prefix with a control character", map[string]string{EnvIncomingPrefix: "in\x01coming"}, EnvIncomingPrefix, "control characters"},
		{"prefix that is only a slash", map[string]string{EnvIncomingPrefix: "/"}, EnvIncomingPrefix, "must not start with '/'"},
		{"duration without unit", map[string]string{EnvUploadWindow: "90"}, EnvUploadWindow, `"90" is not a duration: use Go syntax such as 90s, 10m or 2h`},
		{"duration in words", map[string]string{EnvQuietPeriod: "ten minutes"}, EnvQuietPeriod, "is not a duration"},
		{"zero duration", map[string]string{EnvQuietPeriod: "0s"}, EnvQuietPeriod, `must be positive, got "0s"`},
		{"negative duration", map[string]string{EnvCloseMargin: "-5m"}, EnvCloseMargin, "must be positive"},
		{"close margin equal to the window", map[string]string{EnvUploadWindow: "1h", EnvCloseMargin: "60m"}, EnvCloseMargin, "1h0m0s must be smaller than UPLOAD_WINDOW (1h0m0s)"},
		{"close margin above the default window", map[string]string{EnvCloseMargin: "3h"}, EnvCloseMargin, "must be smaller than UPLOAD_WINDOW (2h0m0s)"},
		{"path style not a bool", map[string]string{EnvS3PathStyle: "yes"}, EnvS3PathStyle, `must be true or false, got "yes"`},
		{"s3 endpoint without scheme", map[string]string{EnvS3Endpoint: "127.0.0.1:7070"}, EnvS3Endpoint, "must be an absolute http(s) URL"},
		{"unknown credential", map[string]string{EnvCredential: "password"}, EnvCredential, `must be one of secret, certificate, aws-federation, got "password"`},
		{"secret mode without a secret", map[string]string{EnvClientSecret: ""}, EnvCredential, "secret needs the client secret: set GRAPH_SECRET_ARN (in AWS) or AZURE_CLIENT_SECRET (local runs)"},
		{"secret mode with two secrets", map[string]string{EnvSecretARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"}, EnvSecretARN, "both GRAPH_SECRET_ARN and AZURE_CLIENT_SECRET are set"},
		{"certificate without the ARN", map[string]string{EnvCredential: "certificate"}, EnvSecretARN, "required with GRAPH_CREDENTIAL=certificate"},
		{"secret ARN of another service", map[string]string{EnvClientSecret: "", EnvSecretARN: "arn:aws:ssm:eu-west-1:123456789012:parameter/x"}, EnvSecretARN, "must be a Secrets Manager ARN"},
		{"secret name instead of ARN", map[string]string{EnvClientSecret: "", EnvSecretARN: "byodrop/graph"}, EnvSecretARN, "must be a Secrets Manager ARN"},
		{"routes not JSON", map[string]string{EnvRoutes: "badge=" + cat}, EnvRoutes, `must be a JSON object such as {"badge"`},
		{"routes as an array", map[string]string{EnvRoutes: `[{"catalogId": "` + cat + `"}]`}, EnvRoutes, "must be a JSON object"},
		{"routes truncated", map[string]string{EnvRoutes: `{"badge": {"catalogId": "` + cat + `"`}, EnvRoutes, "not valid JSON"},
		{"routes followed by more", map[string]string{EnvRoutes: `{} {}`}, EnvRoutes, "must be a single JSON object"},
		{"route with an unknown field", map[string]string{EnvRoutes: `{"badge": {"catalogId": "` + cat + `", "resource": "` + res + `"}}`}, EnvRoutes, `route "badge" must be {"catalogId": …, "resourceId": …, "source": …}: json: unknown field "resource"`},
		{"route id that is not a string", map[string]string{EnvRoutes: `{"badge": {"catalogId": 1, "resourceId": "` + res + `"}}`}, EnvRoutes, `route "badge": catalogId must be a string, got a JSON number`},
		{"route that is not an object", map[string]string{EnvRoutes: `{"badge": "` + cat + `"}`}, EnvRoutes, `route "badge" must be {"catalogId"`},
		{"route catalog not a GUID", map[string]string{EnvRoutes: `{"badge": {"catalogId": "cat", "resourceId": "` + res + `"}}`}, EnvRoutes, `route "badge": catalogId must be a GUID, got "cat"`},
		{"route resource missing", map[string]string{EnvRoutes: `{"badge": {"catalogId": "` + cat + `"}}`}, EnvRoutes, `route "badge": resourceId must be a GUID, got ""`},
		{"route name is a GUID", map[string]string{EnvRoutes: `{"` + strings.ToUpper(res) + `": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`}, EnvRoutes, "is a GUID: a GUID first segment is read as a catalog id"},
		{"route name with a slash", map[string]string{EnvRoutes: `{"a/b": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`}, EnvRoutes, `route name "a/b" contains '/'`},
		{"empty route name", map[string]string{EnvRoutes: `{"": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`}, EnvRoutes, "a route name must not be empty"},
		{"route name dot-dot", map[string]string{EnvRoutes: `{"..": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`}, EnvRoutes, `route name ".." is not allowed`},
		{"route name with a control character", map[string]string{EnvRoutes: `{"a\u0007": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`}, EnvRoutes, "contains a control character"},
		{"route defined twice", map[string]string{EnvRoutes: `{"badge": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}, "badge": {"catalogId": "` + res + `", "resourceId": "` + cat + `"}}`}, EnvRoutes, `route "badge" is defined twice`},
		{"route without source under beta-2025", map[string]string{EnvGraphAPI: "beta-2025", EnvRoutes: `{"badge": {"catalogId": "` + cat + `", "resourceId": "` + res + `", "source": "  "}}`}, EnvRoutes, `route "badge": source (the resource's display name) is required with GRAPH_API=beta-2025`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromEnv(env(tt.env))
			if err == nil {
				t.Fatalf("no error; settings %v", s)
			}
			if !reflect.DeepEqual(s, Settings{}) {
				t.Errorf("settings returned alongside the error: %v", s)
			}
			problems := settingErrors(t, err)
			if len(problems) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(problems), err)
			}
			p := problems[0]
			if p.Setting != tt.setting || !strings.HasPrefix(p.Error(), tt.setting+": ") || !strings.Contains(p.Problem, tt.want) {
				t.Errorf("got %q\nwant setting %s and %q", p.Error(), tt.setting, tt.want)
			}
			if review.KindOf(p) != review.Invalid {
				t.Errorf("kind = %v, want invalid", review.KindOf(p))
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the client secret leaked into %q", err)
			}
		})
	}
}

// settingErrors unpacks FromEnv's joined error; every part must be a
// *SettingError.
func settingErrors(t *testing.T, err error) []*SettingError {
	t.Helper()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not joined: %v", err, err)
	}
	var out []*SettingError
	for _, e := range joined.Unwrap() {
		var se *SettingError
		if !errors.As(e, &se) {
			t.Fatalf("problem %T is not a *SettingError: %v", e, e)
		}
		out = append(out, se)
	}
	return out
}

func TestFromEnvReportsEveryProblemAtOnce(t *testing.T) {
	_, err := FromEnv(func(k string) string {
		return map[string]string{
			EnvGraphAPI:     "v2",
			EnvUploadWindow: "2 hours",
			EnvQuietPeriod:  "-1m",
			EnvRoutes:       `{"a": {"catalogId": "x", "resourceId": "y"}, "b/c": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`,
			EnvCredential:   "secret",
		}[k]
	})
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, p := range settingErrors(t, err) {
		got = append(got, p.Setting)
	}
	// In the order of the settings table, so that the operator can work
	// down the list.
	want := []string{EnvTenantID, EnvClientID, EnvGraphAPI, EnvRoutes, EnvRoutes, EnvRoutes, EnvUploadWindow, EnvQuietPeriod, EnvCredential}
	if !slices.Equal(got, want) {
		t.Errorf("problems for %v\nwant %v\nerror:\n%v", got, want, err)
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(want) {
		t.Errorf("error has %d lines, want one per problem:\n%v", lines, err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s, err := FromEnv(env(map[string]string{EnvRoutes: `{"badge": {"catalogId": "` + cat + `", "resourceId": "` + res + `"}}`}))
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientSecret != secret {
		t.Fatalf("ClientSecret = %q, want it kept for the credential", s.ClientSecret)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("start", "settings", s)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("start", "settings", s)
	js, _ := json.Marshal(s)
	outputs := map[string]string{
		"slog":    logs.String(),
		"String":  s.String(),
		"%v":      fmt.Sprintf("%v", s),
		"%+v":     fmt.Sprintf("%+v", s),
		"%#v":     fmt.Sprintf("%#v", s),
		"pointer": fmt.Sprint(&s),
		"json":    string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s output contains the secret: %s", name, out)
		}
	}
	for _, want := range []string{`"AZURE_CLIENT_SECRET":"[REDACTED]"`, `"AZURE_TENANT_ID":"` + tenant + `"`, `"ROUTES":["badge"]`, `"UPLOAD_WINDOW":7200000000000`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log output lacks %s:\n%s", want, logs.String())
		}
	}
	if !strings.Contains(s.String(), "AZURE_CLIENT_SECRET=[REDACTED]") || !strings.Contains(s.String(), "GRAPH_API=v1.0") {
		t.Errorf("String() = %s", s)
	}

	none, err := FromEnv(env(map[string]string{EnvClientSecret: "", EnvCredential: "aws-federation"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(none.String(), "AZURE_CLIENT_SECRET= ") {
		t.Errorf("an unset secret should print empty: %s", none)
	}
}

func TestSecretPastedIntoAnotherSettingIsRedactedInErrors(t *testing.T) {
	_, err := FromEnv(env(map[string]string{EnvClientID: secret, EnvTenantID: secret + ".x"}))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error repeats the secret: %v", err)
	}
	if !strings.Contains(err.Error(), `AZURE_CLIENT_ID: the application (client) id must be a GUID, got "[REDACTED]"`) {
		t.Errorf("error does not say which setting is wrong: %v", err)
	}
}

func TestCheckEndpoint(t *testing.T) {
	tests := []struct {
		raw  string
		want string // "" means accepted
	}{
		{"https://graph.microsoft.com", ""},
		{"https://graph.microsoft.com/", ""},
		{"https://10.1.2.3:8443", ""},
		{"http://127.0.0.1:8080", ""},
		{"http://127.42.0.1", ""},
		{"http://[::1]:8080/", ""},
		{"http://localhost:8080", ""},
		{"HTTP://LOCALHOST", ""},
		{"http://graph.example.com", `GRAPH_ENDPOINT: plain http is allowed only to a loopback address (127.0.0.0/8, ::1, localhost), not "graph.example.com": use https`},
		{"http://10.0.0.1", "plain http is allowed only to a loopback address"},
		{"http://localhost.example.com", "plain http is allowed only to a loopback address"},
		{"http://0.0.0.0:80", "plain http is allowed only to a loopback address"},
		{"ftp://127.0.0.1", "not an http(s) URL"},
		{"https://", "has no host"},
		{"https://user:pa55word@graph.microsoft.com", "credentials in the URL are not allowed"},
		{"https://graph.microsoft.com/?a=b", "must not have a query or fragment"},
		{"https://graph.microsoft.com/#x", "must not have a query or fragment"},
		{"", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			err := CheckEndpoint("GRAPH_ENDPOINT", tt.raw)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("accepted, want %q", tt.want)
			case err != nil && (!strings.HasPrefix(err.Error(), "GRAPH_ENDPOINT: ") || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %q, want it to name GRAPH_ENDPOINT and say %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "pa55word"):
				t.Errorf("error repeats the password: %v", err)
			}
		})
	}
}
