// Package config reads byodrop's settings from the environment (the
// settings table of product.md), once at start-up. FromEnv checks every
// setting and reports every problem at once, each naming its setting, so
// that an operator fixes a deployment in one pass instead of one failed
// cold start per mistake.
//
// Normalization, beyond the defaults:
//   - Values are trimmed of surrounding white space, except
//     AZURE_CLIENT_SECRET, which is used exactly as given.
//   - INCOMING_PREFIX, STATE_PREFIX and STANDING_PREFIX end with '/'.
//   - DROP_BUCKET, when unset, is STATE_BUCKET.
//   - AZURE_AUTHORITY_HOST ends with '/'; GRAPH_ENDPOINT does not.
//   - The GUIDs of ROUTES and AZURE_CLIENT_ID are lower-cased; a GUID tenant
//     id too (a domain-like tenant name is kept as given).
//
// The client secret never appears in an error or in the log form of
// Settings (String, GoString, LogValue); a value that happens to contain it
// (a secret pasted into the wrong variable) is redacted in errors too.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/byodrop/byodrop/internal/dropkey"
	"github.com/byodrop/byodrop/internal/endpoint"
	"github.com/byodrop/byodrop/internal/review"
)

// The environment variables FromEnv reads.
const (
	EnvTenantID       = "AZURE_TENANT_ID"
	EnvClientID       = "AZURE_CLIENT_ID"
	EnvClientSecret   = "AZURE_CLIENT_SECRET"
	EnvAuthorityHost  = "AZURE_AUTHORITY_HOST"
	EnvGraphEndpoint  = "GRAPH_ENDPOINT"
	EnvGraphAPI       = "GRAPH_API"
	EnvStateBucket    = "STATE_BUCKET"
	EnvStatePrefix    = "STATE_PREFIX"
	EnvIncomingPrefix = "INCOMING_PREFIX"
	EnvRoutes         = "ROUTES"
	EnvRoutesObject   = "ROUTES_OBJECT"
	EnvUploadWindow   = "UPLOAD_WINDOW"
	EnvQuietPeriod    = "QUIET_PERIOD"
	EnvCloseMargin    = "CLOSE_MARGIN"
	EnvS3Endpoint     = "AWS_ENDPOINT_URL_S3"
	EnvS3PathStyle    = "S3_USE_PATH_STYLE"
	EnvCredential     = "GRAPH_CREDENTIAL"
	EnvSecretARN      = "GRAPH_SECRET_ARN"
	EnvDropBucket     = "DROP_BUCKET"
	EnvStandingPrefix = "STANDING_PREFIX"
	EnvReviewsAPI     = "REVIEWS_API"
)

// Defaults, as in product.md.
const (
	DefaultAuthorityHost  = "https://login.microsoftonline.com/"
	DefaultGraphEndpoint  = "https://graph.microsoft.com"
	DefaultGraphAPI       = "v1.0"
	DefaultStatePrefix    = "state/"
	DefaultIncomingPrefix = "incoming/"
	DefaultUploadWindow   = 2 * time.Hour
	DefaultQuietPeriod    = 10 * time.Minute
	DefaultCloseMargin    = 15 * time.Minute
	DefaultCredential     = CredentialSecret
	DefaultStandingPrefix = "standing/"
	DefaultReviewsAPI     = "beta"
)

// The values of GRAPH_CREDENTIAL.
const (
	// CredentialSecret: a client secret, from AZURE_CLIENT_SECRET or the
	// Secrets Manager secret GRAPH_SECRET_ARN.
	CredentialSecret = "secret"
	// CredentialCertificate: a certificate PEM in the Secrets Manager
	// secret GRAPH_SECRET_ARN.
	CredentialCertificate = "certificate"
	// CredentialAWSFederation: secretless, a web identity token from STS.
	CredentialAWSFederation = "aws-federation"
)

// GraphAPIs are the accepted values of GRAPH_API (see graph-contract.md).
var GraphAPIs = []string{"v1.0", "beta", "beta-2025"}

// ReviewsAPIs are the accepted values of REVIEWS_API: the Graph versions
// that document the access reviews unified route (graph-contract.md).
var ReviewsAPIs = []string{"beta", "v1.0"}

var credentials = []string{CredentialSecret, CredentialCertificate, CredentialAWSFederation}

// Settings is byodrop's configuration, checked and normalized.
type Settings struct {
	TenantID     string // AZURE_TENANT_ID
	ClientID     string // AZURE_CLIENT_ID
	ClientSecret string `json:"-"` // AZURE_CLIENT_SECRET; never printed
	// AuthorityHost is AZURE_AUTHORITY_HOST, ending with '/'.
	AuthorityHost string
	// GraphEndpoint is GRAPH_ENDPOINT without a trailing '/' or version.
	GraphEndpoint string
	GraphAPI      string // GRAPH_API: v1.0, beta or beta-2025
	// StateBucket is STATE_BUCKET. Empty means the drop bucket, that is the
	// bucket of the event being handled: it is only known at run time.
	StateBucket    string
	StatePrefix    string         // STATE_PREFIX, ending with '/'
	IncomingPrefix string         // INCOMING_PREFIX, ending with '/'
	Routes         dropkey.Routes // ROUTES (and ROUTES_OBJECT once loaded); nil when none are configured
	// RoutesObject is ROUTES_OBJECT: the key, under StatePrefix in
	// StateBucket, of a JSON object of more routes in the ROUTES format,
	// for more than Lambda's 4 KB of environment can hold. The caller
	// reads it once at start-up and adds it with AddRoutes.
	RoutesObject string
	UploadWindow time.Duration // UPLOAD_WINDOW
	QuietPeriod  time.Duration // QUIET_PERIOD
	CloseMargin  time.Duration // CLOSE_MARGIN, smaller than UploadWindow
	// S3Endpoint is AWS_ENDPOINT_URL_S3, which the AWS SDK also reads
	// itself; "" means the real S3.
	S3Endpoint  string
	S3PathStyle bool   // S3_USE_PATH_STYLE
	Credential  string // GRAPH_CREDENTIAL: secret, certificate or aws-federation
	SecretARN   string // GRAPH_SECRET_ARN
	// DropBucket is DROP_BUCKET, the bucket whose standing data discovery
	// reads; it defaults to StateBucket (and so may be empty, meaning the
	// bucket of the event being handled, which discovery does not have).
	DropBucket     string
	StandingPrefix string // STANDING_PREFIX, ending with '/'
	ReviewsAPI     string // REVIEWS_API: beta or v1.0
}

// SettingError is one problem with one setting.
type SettingError struct {
	Setting string // the environment variable
	Problem string // what is wrong and, where it helps, what would be right
}

// Error is "SETTING: problem".
func (e *SettingError) Error() string { return e.Setting + ": " + e.Problem }

// Kind is review.Invalid: a deployment with a bad setting must be fixed,
// not retried.
func (e *SettingError) Kind() review.Kind { return review.Invalid }

// CheckEndpoint reports whether raw, the value of setting, is a URL byodrop
// may send tokens or data to: https anywhere, plain http only to a
// loopback address (127.0.0.0/8, ::1, "localhost"); no user information,
// query or fragment. The error names the setting. It is endpoint.Check,
// the single implementation shared with the Graph and token clients.
func CheckEndpoint(setting, raw string) error {
	return endpoint.Check(setting, raw)
}

// FromEnv reads and checks the settings through getenv (os.Getenv in
// production, a map in tests). An unset or empty variable takes its
// default. The error joins (errors.Join) one *SettingError per problem.
func FromEnv(getenv func(string) string) (Settings, error) {
	r := reader{getenv: getenv, secret: getenv(EnvClientSecret)}
	s := Settings{
		TenantID:       r.get(EnvTenantID, ""),
		ClientID:       r.get(EnvClientID, ""),
		ClientSecret:   r.secret,
		AuthorityHost:  r.get(EnvAuthorityHost, DefaultAuthorityHost),
		GraphEndpoint:  r.get(EnvGraphEndpoint, DefaultGraphEndpoint),
		GraphAPI:       r.get(EnvGraphAPI, DefaultGraphAPI),
		StateBucket:    r.get(EnvStateBucket, ""),
		StatePrefix:    r.prefix(EnvStatePrefix, DefaultStatePrefix),
		IncomingPrefix: r.prefix(EnvIncomingPrefix, DefaultIncomingPrefix),
		UploadWindow:   r.duration(EnvUploadWindow, DefaultUploadWindow),
		QuietPeriod:    r.duration(EnvQuietPeriod, DefaultQuietPeriod),
		CloseMargin:    r.duration(EnvCloseMargin, DefaultCloseMargin),
		S3Endpoint:     r.get(EnvS3Endpoint, ""),
		S3PathStyle:    r.bool(EnvS3PathStyle),
		Credential:     r.get(EnvCredential, DefaultCredential),
		SecretARN:      r.get(EnvSecretARN, ""),
		DropBucket:     r.get(EnvDropBucket, ""),
		StandingPrefix: r.prefix(EnvStandingPrefix, DefaultStandingPrefix),
		ReviewsAPI:     r.get(EnvReviewsAPI, DefaultReviewsAPI),
	}

	switch {
	case s.TenantID == "":
		r.fail(EnvTenantID, "required: the Entra tenant id (a GUID) or its domain name (contoso.onmicrosoft.com)")
	case review.IsGUID(s.TenantID):
		s.TenantID = strings.ToLower(s.TenantID)
	case !isDomainName(s.TenantID):
		r.fail(EnvTenantID, "must be a GUID or a domain name such as contoso.onmicrosoft.com, got %q", s.TenantID)
	}
	switch {
	case s.ClientID == "":
		r.fail(EnvClientID, "required: the application (client) id of the Entra app registration")
	case !review.IsGUID(s.ClientID):
		r.fail(EnvClientID, "the application (client) id must be a GUID, got %q", s.ClientID)
	default:
		s.ClientID = strings.ToLower(s.ClientID)
	}

	if err := CheckEndpoint(EnvAuthorityHost, s.AuthorityHost); err != nil {
		r.add(EnvAuthorityHost, err)
	} else if !strings.HasSuffix(s.AuthorityHost, "/") {
		s.AuthorityHost += "/"
	}
	if err := CheckEndpoint(EnvGraphEndpoint, s.GraphEndpoint); err != nil {
		r.add(EnvGraphEndpoint, err)
	} else {
		s.GraphEndpoint = strings.TrimRight(s.GraphEndpoint, "/")
		if u, _ := url.Parse(s.GraphEndpoint); u != nil {
			last := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
			if slices.Contains(GraphAPIs, last) {
				r.fail(EnvGraphEndpoint, "must not include the API version (%q); set %s=%s instead", "/"+last, EnvGraphAPI, last)
			}
		}
	}
	if !slices.Contains(GraphAPIs, s.GraphAPI) {
		r.fail(EnvGraphAPI, "must be one of %s, got %q", strings.Join(GraphAPIs, ", "), s.GraphAPI)
	}

	if s.StateBucket != "" {
		if problem := bucketProblem(s.StateBucket); problem != "" {
			r.fail(EnvStateBucket, "%s, got %q (leave it unset to use the drop bucket)", problem, s.StateBucket)
		}
	}
	if s.StatePrefix != "" && s.IncomingPrefix != "" {
		switch {
		case strings.HasPrefix(s.StatePrefix, s.IncomingPrefix):
			r.fail(EnvStatePrefix, "%q must not be under %s %q: the ledger and reports would look like dropped files", s.StatePrefix, EnvIncomingPrefix, s.IncomingPrefix)
		case strings.HasPrefix(s.IncomingPrefix, s.StatePrefix):
			r.fail(EnvIncomingPrefix, "%q must not be under %s %q: dropped files would mix with the ledger and reports", s.IncomingPrefix, EnvStatePrefix, s.StatePrefix)
		}
	}

	if s.DropBucket != "" {
		if problem := bucketProblem(s.DropBucket); problem != "" {
			r.fail(EnvDropBucket, "%s, got %q (leave it unset to use %s)", problem, s.DropBucket, EnvStateBucket)
		}
	} else {
		s.DropBucket = s.StateBucket
	}
	if s.StandingPrefix != "" {
		for _, other := range []struct{ name, v string }{
			{EnvIncomingPrefix, s.IncomingPrefix},
			{EnvStatePrefix, s.StatePrefix},
		} {
			if other.v == "" {
				continue
			}
			switch {
			case strings.HasPrefix(s.StandingPrefix, other.v):
				r.fail(EnvStandingPrefix, "%q must not be under %s %q: standing data would be read as something else", s.StandingPrefix, other.name, other.v)
			case strings.HasPrefix(other.v, s.StandingPrefix):
				r.fail(EnvStandingPrefix, "%q must not contain %s %q: other objects would be read as standing data", s.StandingPrefix, other.name, other.v)
			}
		}
	}
	if !slices.Contains(ReviewsAPIs, s.ReviewsAPI) {
		r.fail(EnvReviewsAPI, "must be one of %s, got %q", strings.Join(ReviewsAPIs, ", "), s.ReviewsAPI)
	}

	if s.UploadWindow > 0 && s.CloseMargin > 0 && s.CloseMargin >= s.UploadWindow {
		r.fail(EnvCloseMargin, "%v must be smaller than %s (%v): sessions would be closed before they are created", s.CloseMargin, EnvUploadWindow, s.UploadWindow)
	}

	if s.S3Endpoint != "" {
		if u, err := url.Parse(s.S3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail(EnvS3Endpoint, "must be an absolute http(s) URL such as http://127.0.0.1:7070, got %q", s.S3Endpoint)
		}
	}

	switch s.Credential {
	case CredentialSecret:
		switch {
		case s.ClientSecret == "" && s.SecretARN == "":
			r.fail(EnvCredential, "%s needs the client secret: set %s (in AWS) or %s (local runs)", CredentialSecret, EnvSecretARN, EnvClientSecret)
		case s.ClientSecret != "" && s.SecretARN != "":
			r.fail(EnvSecretARN, "both %s and %s are set: set only one, so that it is clear which secret is used", EnvSecretARN, EnvClientSecret)
		}
	case CredentialCertificate:
		if s.SecretARN == "" {
			r.fail(EnvSecretARN, "required with %s=%s: the Secrets Manager secret holding the certificate PEM", EnvCredential, CredentialCertificate)
		}
	case CredentialAWSFederation:
	default:
		r.fail(EnvCredential, "must be one of %s, got %q", strings.Join(credentials, ", "), s.Credential)
	}
	if s.SecretARN != "" && !isSecretsManagerARN(s.SecretARN) {
		r.fail(EnvSecretARN, "must be a Secrets Manager ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), got %q", s.SecretARN)
	}

	s.Routes = r.routes(EnvRoutes, r.get(EnvRoutes, ""), s.GraphAPI == "beta-2025")
	if s.RoutesObject = r.get(EnvRoutesObject, ""); s.RoutesObject != "" {
		switch {
		case s.StateBucket == "":
			r.fail(EnvRoutesObject, "needs %s: the object is read from the state bucket at start-up", EnvStateBucket)
		case !strings.HasPrefix(s.RoutesObject, s.StatePrefix) || s.RoutesObject == s.StatePrefix:
			r.fail(EnvRoutesObject, "must be a key under %s (%q), got %q", EnvStatePrefix, s.StatePrefix, s.RoutesObject)
		}
	}

	// Report in the order of the settings table, whatever order the checks
	// ran in.
	slices.SortStableFunc(r.errs, func(a, b error) int {
		return order(a) - order(b)
	})
	if err := errors.Join(r.errs...); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// tableOrder is the order of product.md's settings table.
var tableOrder = []string{
	EnvTenantID, EnvClientID, EnvClientSecret, EnvAuthorityHost, EnvGraphEndpoint,
	EnvGraphAPI, EnvStateBucket, EnvStatePrefix, EnvIncomingPrefix, EnvRoutes, EnvRoutesObject,
	EnvUploadWindow, EnvQuietPeriod, EnvCloseMargin, EnvS3Endpoint, EnvS3PathStyle,
	EnvCredential, EnvSecretARN, EnvDropBucket, EnvStandingPrefix, EnvReviewsAPI,
}

func order(err error) int {
	if se, ok := err.(*SettingError); ok {
		return slices.Index(tableOrder, se.Setting)
	}
	return len(tableOrder)
}

// reader collects problems while reading variables.
type reader struct {
	getenv func(string) string
	secret string
	errs   []error
}

func (r *reader) fail(setting, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// A secret pasted into the wrong variable would be quoted back by the
	// message about that variable. Very short "secrets" are left alone:
	// redacting them would garble every message.
	if len(r.secret) >= 4 {
		msg = strings.ReplaceAll(msg, r.secret, "[REDACTED]")
	}
	r.errs = append(r.errs, &SettingError{Setting: setting, Problem: msg})
}

// add records an error that already names setting (from CheckEndpoint).
func (r *reader) add(setting string, err error) {
	problem, _ := strings.CutPrefix(err.Error(), setting+": ")
	r.fail(setting, "%s", problem)
}

func (r *reader) get(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.get(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		r.fail(name, "%q is not a duration: use Go syntax such as 90s, 10m or 2h", v)
		return 0
	case d <= 0:
		r.fail(name, "must be positive, got %q", v)
		return 0
	}
	return d
}

func (r *reader) bool(name string) bool {
	v := r.get(name, "")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "must be true or false, got %q", v)
	}
	return b
}

// prefix reads a key prefix and makes it end with '/'. A prefix is matched
// literally against S3 keys, so anything that cannot appear in a clean key
// (a leading '/', empty, "." or ".." segments, control characters) is
// refused rather than cleaned up.
func (r *reader) prefix(name, def string) string {
	v := r.get(name, def)
	if !strings.HasSuffix(v, "/") {
		v += "/"
	}
	if strings.HasPrefix(v, "/") {
		r.fail(name, "must not start with '/', got %q", v)
		return ""
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		r.fail(name, "must not contain control characters or invalid UTF-8, got %q", v)
		return ""
	}
	for _, s := range strings.Split(strings.TrimSuffix(v, "/"), "/") {
		switch s {
		case "":
			r.fail(name, "must not contain an empty segment (\"//\"), got %q", v)
			return ""
		case ".", "..":
			r.fail(name, "must not contain a %q segment, got %q", s, v)
			return ""
		}
	}
	return v
}

// routeJSON is one ROUTES entry as written by the operator.
type routeJSON struct {
	CatalogID  string `json:"catalogId"`
	ResourceID string `json:"resourceId"`
	Source     string `json:"source"`
}

// AddRoutes adds the routes of data, a JSON object in the ROUTES format
// read from ROUTES_OBJECT (source names it in errors), to s.Routes, with
// the same checks. A route defined in both is refused: which one wins
// would be a guess.
func (s *Settings) AddRoutes(source string, data []byte) error {
	r := &reader{getenv: func(string) string { return "" }}
	more := r.routes(EnvRoutesObject+" "+source, string(data), s.GraphAPI == "beta-2025")
	if len(r.errs) == 0 && len(more) == 0 {
		r.fail(EnvRoutesObject+" "+source, "holds no route")
	}
	for name := range more {
		if _, dup := s.Routes[name]; dup {
			r.fail(EnvRoutesObject+" "+source, "route %q is also in %s: define each route once", name, EnvRoutes)
		}
	}
	if err := errors.Join(r.errs...); err != nil {
		return err
	}
	if s.Routes == nil {
		s.Routes = dropkey.Routes{}
	}
	for name, rt := range more {
		s.Routes[name] = rt
	}
	return nil
}

// routes parses raw, the value of setting (ROUTES, or ROUTES_OBJECT's
// object): a JSON object of route name -> routeJSON. Duplicate names and
// unknown fields are refused: both are typos that would otherwise silently
// send data to the wrong place or drop a setting.
func (r *reader) routes(setting, raw string, needSource bool) dropkey.Routes {
	if raw == "" {
		return nil
	}
	const shape = `a JSON object such as {"badge": {"catalogId": "<GUID>", "resourceId": "<GUID>", "source": "<display name>"}}`
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		r.fail(setting, "must be %s", shape)
		return nil
	}
	routes := dropkey.Routes{}
	seen := map[string]bool{}
	valid := true
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			r.fail(setting, "not valid JSON: %v", err)
			return nil
		}
		name, _ := tok.(string) // object keys are always strings
		var rt routeJSON
		if err := dec.Decode(&rt); err != nil {
			var syn *json.SyntaxError
			if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
				r.fail(setting, "not valid JSON: %v", err)
				return nil
			}
			// The decoder has consumed the whole value: go on to the
			// next route, so that every problem is reported.
			var typ *json.UnmarshalTypeError
			switch {
			case errors.As(err, &typ) && typ.Field != "":
				r.fail(setting, "route %q: %s must be a string, got a JSON %s", name, typ.Field, typ.Value)
			default:
				r.fail(setting, "route %q must be {\"catalogId\": …, \"resourceId\": …, \"source\": …}: %v", name, err)
			}
			valid = false
			continue
		}
		if seen[name] {
			r.fail(setting, "route %q is defined twice", name)
			valid = false
			continue
		}
		seen[name] = true
		if !r.route(setting, name, rt, needSource) {
			valid = false
			continue
		}
		routes[name] = dropkey.Route{
			CatalogID:  strings.ToLower(rt.CatalogID),
			ResourceID: strings.ToLower(rt.ResourceID),
			Source:     strings.TrimSpace(rt.Source),
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		r.fail(setting, "not valid JSON: %v", err)
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		r.fail(setting, "must be a single JSON object, found more after it")
		return nil
	}
	if !valid || len(routes) == 0 {
		return nil
	}
	return routes
}

// route checks one ROUTES entry, reporting every problem with it.
func (r *reader) route(setting, name string, rt routeJSON, needSource bool) bool {
	n := len(r.errs)
	switch {
	case name == "":
		r.fail(setting, "a route name must not be empty")
	case review.IsGUID(name):
		r.fail(setting, "route name %q is a GUID: a GUID first segment is read as a catalog id", name)
	case strings.Contains(name, "/"):
		r.fail(setting, "route name %q contains '/': a route name is one key segment", name)
	case name == "." || name == "..":
		r.fail(setting, "route name %q is not allowed in a key", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		r.fail(setting, "route name %q contains a control character", name)
	}
	if !review.IsGUID(rt.CatalogID) {
		r.fail(setting, "route %q: catalogId must be a GUID, got %q", name, rt.CatalogID)
	}
	if !review.IsGUID(rt.ResourceID) {
		r.fail(setting, "route %q: resourceId must be a GUID, got %q", name, rt.ResourceID)
	}
	if needSource && strings.TrimSpace(rt.Source) == "" {
		r.fail(setting, "route %q: source (the resource's display name) is required with %s=beta-2025", name, EnvGraphAPI)
	}
	return len(r.errs) == n
}

// isDomainName reports whether s looks like a DNS name with at least two
// labels (contoso.onmicrosoft.com): letters, digits and inner hyphens. It
// keeps the tenant, which goes into the token URL's path, a clean segment.
func isDomainName(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// bucketProblem checks S3's general-purpose bucket naming rules, so that a
// typo (an ARN, a key, upper case) fails at start-up rather than on the
// first write.
func bucketProblem(b string) string {
	if len(b) < 3 || len(b) > 63 {
		return "a bucket name has 3 to 63 characters"
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return "a bucket name has only lower-case letters, digits, '.' and '-' (a name, not an ARN or URL)"
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return "a bucket name starts and ends with a letter or digit"
	}
	if strings.Contains(b, "..") {
		return "a bucket name has no two adjacent periods"
	}
	return ""
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isSecretsManagerARN(s string) bool {
	parts := strings.SplitN(s, ":", 7)
	return len(parts) == 7 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws") &&
		parts[2] == "secretsmanager" && parts[3] != "" && parts[4] != "" && parts[5] == "secret" && parts[6] != ""
}

// redacted stands for a secret that is set.
const redacted = "[REDACTED]"

func (s Settings) secretForLog() string {
	if s.ClientSecret == "" {
		return ""
	}
	return redacted
}

// LogValue is the form of s in structured logs: every setting by its
// environment name, the client secret only as "[REDACTED]" when set.
func (s Settings) LogValue() slog.Value {
	routes := make([]string, 0, len(s.Routes))
	for n := range s.Routes {
		routes = append(routes, n)
	}
	slices.Sort(routes)
	return slog.GroupValue(
		slog.String(EnvTenantID, s.TenantID),
		slog.String(EnvClientID, s.ClientID),
		slog.String(EnvClientSecret, s.secretForLog()),
		slog.String(EnvAuthorityHost, s.AuthorityHost),
		slog.String(EnvGraphEndpoint, s.GraphEndpoint),
		slog.String(EnvGraphAPI, s.GraphAPI),
		slog.String(EnvStateBucket, s.StateBucket),
		slog.String(EnvStatePrefix, s.StatePrefix),
		slog.String(EnvIncomingPrefix, s.IncomingPrefix),
		slog.Any(EnvRoutes, routes),
		slog.Duration(EnvUploadWindow, s.UploadWindow),
		slog.Duration(EnvQuietPeriod, s.QuietPeriod),
		slog.Duration(EnvCloseMargin, s.CloseMargin),
		slog.String(EnvS3Endpoint, s.S3Endpoint),
		slog.Bool(EnvS3PathStyle, s.S3PathStyle),
		slog.String(EnvCredential, s.Credential),
		slog.String(EnvSecretARN, s.SecretARN),
		slog.String(EnvDropBucket, s.DropBucket),
		slog.String(EnvStandingPrefix, s.StandingPrefix),
		slog.String(EnvReviewsAPI, s.ReviewsAPI),
	)
}

// String is s as NAME=value pairs, the client secret redacted, so that
// printing Settings with %v or %+v is safe.
func (s Settings) String() string {
	var b bytes.Buffer
	for i, a := range s.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", a.Key, a.Value)
	}
	return b.String()
}

// GoString makes %#v as safe as %v.
func (s Settings) GoString() string { return "config.Settings{" + s.String() + "}" }
