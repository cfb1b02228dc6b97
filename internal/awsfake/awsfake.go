// Package awsfake is an in-process fake of the two AWS APIs byodrop's Entra
// credentials call: Secrets Manager GetSecretValue (the JSON 1.1 protocol)
// and STS GetWebIdentityToken (the Query protocol, XML answers), with the
// OIDC discovery documents of the account's token issuer. Like
// net/http/httptest it starts a real server on a loopback port; point the
// AWS SDK at it with AWS_ENDPOINT_URL_SECRETS_MANAGER and
// AWS_ENDPOINT_URL_STS (or aws.Config.BaseEndpoint).
//
// It is strict in the ways that catch a client's mistakes: a request must be
// SigV4-signed for the fake's region and the right service, parameters are
// checked as the services check them (version stages, audiences, signing
// algorithm, token lifetime), and refusals come back in each protocol's
// error shape with the services' error codes, so that the SDK turns them
// into its typed errors (types.ResourceNotFoundException and so on).
//
// Web identity tokens are real JWTs signed with keys generated at Start
// (RS256 and ES384); VerifyWebIdentityToken checks one the way a relying
// party such as Entra does.
package awsfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. Zero fields take the defaults.
type Options struct {
	// Region is the only region the fake answers for (default eu-west-1):
	// requests signed for another region are refused, as a regional
	// endpoint refuses them.
	Region string
	// Account is the AWS account id (default 123456789012).
	Account string
	// Principal is the IAM role ARN of the caller, the sub claim of web
	// identity tokens (default arn:aws:iam::<Account>:role/byodrop-ingest).
	Principal string
	// AllowedAudiences, when set, stands for an IAM policy condition on
	// sts:IdentityTokenAudience (ForAllValues:StringEquals): a request for
	// any other audience is AccessDenied.
	AllowedAudiences []string
	// MaxDurationSeconds, when positive, stands for a policy condition on
	// sts:DurationSeconds (NumericLessThanEquals).
	MaxDurationSeconds int
	// Now is the fake's clock (default time.Now); it dates tokens and
	// secret versions.
	Now func() time.Time
}

// Call is one request the fake received.
type Call struct {
	// Action is the API action: GetSecretValue, GetWebIdentityToken, or
	// the unknown action asked for.
	Action string
	// Region and Service are from the request's SigV4 credential scope.
	Region, Service string
	// Params are the request parameters: the JSON members for Secrets
	// Manager, the form fields for STS.
	Params map[string]string
	// Status is the HTTP status answered; Code the error code, if any.
	Status int
	Code   string
}

// Fault is a refusal injected on demand.
type Fault struct {
	// Action is the action it applies to (GetSecretValue,
	// GetWebIdentityToken).
	Action string
	// Status and Code are the answer, e.g. 400 ThrottlingException or 500
	// InternalFailure; Message is optional.
	Status        int
	Code, Message string
	// Times is how many requests it applies to: 0 means 1, negative means
	// every request until ClearFaults.
	Times int
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	opts  Options
	ts    *httptest.Server
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	rsaID string // kid of the RSA key
	ecID  string // kid of the EC key

	mu                 sync.Mutex
	secrets            map[string]*secret // by name
	calls              []Call
	faults             []*Fault
	federationDisabled bool
}

type secret struct {
	name, arn string
	versions  []*version // oldest first
}

type version struct {
	id      string
	str     *string
	bin     []byte
	stages  []string
	created time.Time
}

// Start starts a fake on a loopback port. Close it when done.
func Start(opts Options) (*Server, error) {
	if opts.Region == "" {
		opts.Region = "eu-west-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.Principal == "" {
		opts.Principal = "arn:aws:iam::" + opts.Account + ":role/byodrop-ingest"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("awsfake: RSA key: %w", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("awsfake: EC key: %w", err)
	}
	s := &Server{
		opts: opts, rsa: rk, ec: ek, rsaID: randomHex(8), ecID: randomHex(8),
		secrets: map[string]*secret{},
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s, nil
}

// URL is the fake's base URL, for AWS_ENDPOINT_URL_SECRETS_MANAGER and
// AWS_ENDPOINT_URL_STS.
func (s *Server) URL() string { return s.ts.URL }

// Issuer is the issuer URL of the account's web identity tokens (the iss
// claim), serving /.well-known/openid-configuration and
// /.well-known/jwks.json. The real one is
// https://<id>.tokens.sts.global.api.aws.
func (s *Server) Issuer() string { return s.ts.URL }

// Options returns the options in effect, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// PutSecret stores value as the new current version of the secret name,
// creating the secret if needed, as PutSecretValue does: the new version is
// AWSCURRENT, the one it replaces becomes AWSPREVIOUS. It returns the
// secret's ARN and the new version's id.
func (s *Server) PutSecret(name, value string) (arn, versionID string) {
	return s.put(name, &value, nil)
}

// PutSecretBinary is PutSecret for a binary secret (SecretBinary).
func (s *Server) PutSecretBinary(name string, value []byte) (arn, versionID string) {
	return s.put(name, nil, append([]byte(nil), value...))
}

func (s *Server) put(name string, str *string, bin []byte) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		// Secrets Manager appends six random characters to the name.
		sec = &secret{name: name, arn: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.opts.Region, s.opts.Account, name, randomAlnum(6))}
		s.secrets[name] = sec
	}
	for _, v := range sec.versions {
		switch {
		case slices.Contains(v.stages, "AWSCURRENT"):
			v.stages = removeStage(v.stages, "AWSCURRENT")
			v.stages = append(removeStage(v.stages, "AWSPREVIOUS"), "AWSPREVIOUS")
		case slices.Contains(v.stages, "AWSPREVIOUS"):
			v.stages = removeStage(v.stages, "AWSPREVIOUS")
		}
	}
	v := &version{id: newUUID(), str: str, bin: bin, stages: []string{"AWSCURRENT"}, created: s.opts.Now()}
	sec.versions = append(sec.versions, v)
	return sec.arn, v.id
}

// SetPendingSecret stores value as the AWSPENDING version of name, as a
// rotation function's first step does; AWSCURRENT does not change. The
// secret must exist.
func (s *Server) SetPendingSecret(name, value string) (versionID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		return "", fmt.Errorf("awsfake: no secret %q", name)
	}
	for _, v := range sec.versions {
		v.stages = removeStage(v.stages, "AWSPENDING")
	}
	v := &version{id: newUUID(), str: &value, stages: []string{"AWSPENDING"}, created: s.opts.Now()}
	sec.versions = append(sec.versions, v)
	return v.id, nil
}

// SetFederationEnabled switches the account's outbound identity federation
// (on by default); while off, GetWebIdentityToken is refused with
// OutboundWebIdentityFederationDisabledException.
func (s *Server) SetFederationEnabled(on bool) {
	s.mu.Lock()
	s.federationDisabled = !on
	s.mu.Unlock()
}

// Inject adds a fault. Faults apply in the order they were injected; a
// request gets at most one.
func (s *Server) Inject(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &f)
	s.mu.Unlock()
}

// ClearFaults removes every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Calls returns the requests received for action ("" for all), oldest first.
func (s *Server) Calls(action string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many requests for action were answered with status.
func (s *Server) Count(action string, status int) int {
	n := 0
	for _, c := range s.Calls(action) {
		if c.Status == status {
			n++
		}
	}
	return n
}

func (s *Server) takeFault(action string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Action != action {
			continue
		}
		g := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return &g
	}
	return nil
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

// serveHTTP routes by protocol: X-Amz-Target for JSON 1.1, a form body
// for Query, GET for the issuer's discovery documents.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/.well-known/openid-configuration":
		s.serveOpenIDConfig(w)
	case r.Method == http.MethodGet && r.URL.Path == "/.well-known/jwks.json":
		s.serveJWKS(w)
	case r.Header.Get("X-Amz-Target") != "":
		s.serveJSON(w, r)
	case r.Method == http.MethodPost:
		s.serveQuery(w, r)
	default:
		http.Error(w, "awsfake: unsupported request "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

// credentialScope returns the region and service of a SigV4 Authorization
// header: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, …
func credentialScope(r *http.Request) (region, service string, ok bool) {
	h := r.Header.Get("Authorization")
	rest, found := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !found {
		return "", "", false
	}
	for _, part := range strings.Split(rest, ",") {
		cred, found := strings.CutPrefix(strings.TrimSpace(part), "Credential=")
		if !found {
			continue
		}
		f := strings.Split(cred, "/")
		if len(f) != 5 || f[4] != "aws4_request" || f[0] == "" {
			return "", "", false
		}
		return f[2], f[3], true
	}
	return "", "", false
}

func removeStage(stages []string, stage string) []string {
	out := stages[:0:0]
	for _, st := range stages {
		if st != stage {
			out = append(out, st)
		}
	}
	sort.Strings(out)
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomAlnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
