package graphemu

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The assertion type Entra accepts for client_assertion.
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// federatedAudience is the audience of tokens that federated identity
// credentials (AWS outbound federation included) present.
const federatedAudience = "api://AzureADTokenExchange"

// assertionSkew is the clock skew tolerated on assertion lifetimes.
const assertionSkew = 5 * time.Minute

// token is an issued access token.
type token struct {
	exp time.Time
	aud string
}

// classifyEntra recognises the Entra paths: the token endpoint and the
// discovery documents MSAL reads before it.
func (s *Server) classifyEntra(segs []string) (routeKind, bool) {
	switch {
	case len(segs) == 3 && strings.EqualFold(segs[0], "common") && segs[1] == "discovery" && segs[2] == "instance":
		return routeKind{op: "discovery", handler: s.serveInstanceDiscovery}, true
	case len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		tenant := segs[0]
		return routeKind{op: "discovery", handler: func(x *exchange) { s.serveOpenIDConfig(x, tenant) }}, true
	case len(segs) == 4 && segs[1] == "discovery" && segs[2] == "v2.0" && segs[3] == "keys":
		tenant := segs[0]
		return routeKind{op: "discovery", handler: func(x *exchange) { s.serveKeys(x, tenant) }}, true
	case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		tenant := segs[0]
		return routeKind{op: "token", handler: func(x *exchange) { s.serveToken(x, tenant) }}, true
	}
	return routeKind{}, false
}

// base is the scheme and host the client used, so that documents point
// back at the same name (127.0.0.1 or localhost).
func (x *exchange) base() string { return "https://" + x.r.Host }

func (s *Server) knownTenant(x *exchange, tenant string) bool {
	if strings.EqualFold(tenant, s.opts.TenantID) {
		return true
	}
	x.entraError(http.StatusBadRequest, "invalid_request", fmt.Sprintf(
		"AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	return false
}

func (s *Server) serveOpenIDConfig(x *exchange, tenant string) {
	if x.r.Method != http.MethodGet {
		x.entraError(http.StatusMethodNotAllowed, "invalid_request", "AADSTS900561: The endpoint only accepts GET requests.")
		return
	}
	if !s.knownTenant(x, tenant) {
		return
	}
	b := x.base() + "/" + tenant
	x.writeEntraJSON(http.StatusOK, map[string]any{
		"token_endpoint":                        b + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              b + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                b + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     x.base() + "/oidc/userinfo",
		"authorization_endpoint":                b + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         b + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  b + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "tid", "nonce"},
		"kerberos_endpoint":                     b + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   x.r.Host,
		"cloud_graph_host_name":                 x.r.Host,
		"msgraph_host":                          x.r.Host,
		"rbac_url":                              x.base(),
	})
}

func (s *Server) serveKeys(x *exchange, tenant string) {
	if !s.knownTenant(x, tenant) {
		return
	}
	x.writeEntraJSON(http.StatusOK, map[string]any{"keys": []any{}})
}

// serveInstanceDiscovery answers AAD instance discovery, which MSAL calls
// unless DisableInstanceDiscovery is set.
func (s *Server) serveInstanceDiscovery(x *exchange) {
	tenant := s.opts.TenantID
	if ae := x.r.URL.Query().Get("authorization_endpoint"); ae != "" {
		if u, err := url.Parse(ae); err == nil {
			if parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/"); parts[0] != "" {
				tenant = parts[0]
			}
		}
	}
	host := x.r.Host
	x.writeEntraJSON(http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": x.base() + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

// serveToken is the client-credentials grant of the v2.0 token endpoint.
func (s *Server) serveToken(x *exchange, tenant string) {
	r := x.r
	if r.Method != http.MethodPost {
		x.entraError(http.StatusBadRequest, "invalid_request", "AADSTS900561: The endpoint only accepts POST, OPTIONS requests. Received a "+r.Method+" request.")
		return
	}
	if !s.knownTenant(x, tenant) {
		return
	}
	missing := func(name string) {
		x.entraError(http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: '"+name+"'.")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		missing("grant_type")
		return
	}
	r.Body = http.MaxBytesReader(x.w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		x.entraError(http.StatusBadRequest, "invalid_request", "AADSTS9002313: Invalid request. Request is malformed or invalid: "+err.Error())
		return
	}
	f := r.PostForm
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok { // client_secret_basic
		clientID, secret = id, sec
	}
	switch {
	case f.Get("grant_type") == "":
		missing("grant_type")
		return
	case f.Get("grant_type") != "client_credentials":
		x.entraError(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type '"+f.Get("grant_type")+"'.")
		return
	case clientID == "":
		missing("client_id")
		return
	case !strings.EqualFold(clientID, s.opts.ClientID):
		x.entraError(http.StatusBadRequest, "unauthorized_client", fmt.Sprintf(
			"AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant))
		return
	case f.Get("scope") == "":
		missing("scope")
		return
	}
	// MSAL adds the OpenID scopes to every request; Entra ignores them.
	var resources []string
	for _, sc := range strings.Fields(f.Get("scope")) {
		switch sc {
		case "openid", "offline_access", "profile", "email":
		default:
			resources = append(resources, sc)
		}
	}
	if len(resources) != 1 || !strings.HasSuffix(resources[0], "/.default") || resources[0] == "/.default" {
		x.entraError(http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope "+f.Get("scope")+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	scope := resources[0]
	assertion := f.Get("client_assertion")
	switch {
	case secret != "" && assertion != "":
		x.entraError(http.StatusBadRequest, "invalid_request", "AADSTS9002313: Invalid request. Request is malformed or invalid: both client_secret and client_assertion are present.")
		return
	case secret == "" && assertion == "":
		x.entraError(http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	case secret != "":
		s.mu.Lock()
		want := s.opts.ClientSecret
		s.mu.Unlock()
		if subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1 {
			x.entraError(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+s.opts.ClientID+"'.")
			return
		}
	default:
		if !s.checkAssertion(x, tenant, f.Get("client_assertion_type"), assertion) {
			return
		}
	}
	tok, ttl := s.issueToken(strings.TrimSuffix(scope, "/.default"))
	secs := int(ttl / time.Second)
	x.writeEntraJSON(http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

// checkAssertion checks a client_assertion the way Entra does for
// certificates and federated credentials: a JWT for the right audience,
// within its lifetime, that the configured checker accepts. Lifetimes are
// checked against the wall clock: the assertion's issuer does not know the
// emulator's clock.
func (s *Server) checkAssertion(x *exchange, tenant, typ, jwt string) bool {
	if typ == "" {
		x.entraError(http.StatusBadRequest, "invalid_request", "AADSTS90014: The required field 'client_assertion_type' is missing from the credential. Ensure that you have all the necessary parameters for the login request.")
		return false
	}
	if typ != jwtBearer {
		x.entraError(http.StatusBadRequest, "invalid_request", "AADSTS50027: Invalid client_assertion_type '"+typ+"', expected '"+jwtBearer+"'.")
		return false
	}
	claims, err := jwtClaims(jwt)
	if err != nil {
		x.entraError(http.StatusUnauthorized, "invalid_client", "AADSTS50027: JWT token is invalid or malformed: "+err.Error())
		return false
	}
	var auds []string
	switch v := claims["aud"].(type) {
	case string:
		auds = []string{v}
	case []any:
		for _, a := range v {
			if s, ok := a.(string); ok {
				auds = append(auds, s)
			}
		}
	}
	okAud := false
	accepted := []string{
		federatedAudience,
		x.base() + "/" + tenant + "/oauth2/v2.0/token",
		s.url + "/" + tenant + "/oauth2/v2.0/token",
	}
	for _, a := range auds {
		for _, want := range accepted {
			if strings.EqualFold(strings.TrimSuffix(a, "/"), want) {
				okAud = true
			}
		}
	}
	if !okAud {
		x.entraError(http.StatusUnauthorized, "invalid_client", fmt.Sprintf(
			"AADSTS700212: No matching federated identity record found for presented assertion audience '%s'. The audience must be '%s' or the token endpoint.", strings.Join(auds, ","), federatedAudience))
		return false
	}
	now := time.Now()
	exp, hasExp := numericDate(claims["exp"])
	nbf, hasNbf := numericDate(claims["nbf"])
	if !hasExp || now.After(exp.Add(assertionSkew)) || (hasNbf && now.Add(assertionSkew).Before(nbf)) {
		x.entraError(http.StatusUnauthorized, "invalid_client", fmt.Sprintf(
			"AADSTS700024: Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.",
			now.UTC().Format(time.RFC3339), fmtClaimTime(nbf, hasNbf), fmtClaimTime(exp, hasExp)))
		return false
	}
	if s.opts.AssertionCheck != nil {
		if err := s.opts.AssertionCheck(jwt); err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "AADSTS") {
				msg = "AADSTS70021: No matching federated identity record found for presented assertion. " + msg
			}
			x.entraError(http.StatusUnauthorized, "invalid_client", msg)
			return false
		}
	}
	return true
}

func fmtClaimTime(t time.Time, ok bool) string {
	if !ok {
		return "(none)"
	}
	return t.UTC().Format(time.RFC3339)
}

// jwtClaims decodes the payload of a compact JWT without verifying it.
func jwtClaims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("a JWT has 3 dot-separated parts, this one has %d", len(parts))
	}
	var header map[string]any
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if _, ok := header["alg"].(string); !ok {
		return nil, fmt.Errorf("header has no alg")
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return claims, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// issueToken mints an access token for the audience aud. Tokens look like
// Entra's (a JWT with the usual app-only claims) but are only valid for
// this emulator, which remembers every one it issued.
func (s *Server) issueToken(aud string) (string, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	ttl := s.opts.TokenTTL
	claims := map[string]any{
		"aud":   aud,
		"iss":   "https://sts.windows.net/" + s.opts.TenantID + "/",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(ttl).Unix(),
		"appid": s.opts.ClientID,
		"tid":   s.opts.TenantID,
		"idtyp": "app",
		"roles": []string{"EntitlementManagement.ReadWrite.All"},
		"uti":   newGUID(),
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	key := make([]byte, 32)
	rand.Read(key)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	tok := signing + "." + enc.EncodeToString(mac.Sum(nil))
	s.tokens[tok] = &token{exp: now.Add(ttl), aud: aud}
	return tok, ttl
}

// authenticate checks the bearer token of a Graph request and answers 401
// when it is missing, unknown, expired or not for Graph.
func (s *Server) authenticate(x *exchange) bool {
	h := x.r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if h == "" || tok == "" {
		x.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return false
	}
	if !strings.EqualFold(scheme, "Bearer") {
		x.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: the Authorization scheme must be Bearer.")
		return false
	}
	s.mu.Lock()
	t := s.tokens[tok]
	now := s.nowLocked()
	s.mu.Unlock()
	switch {
	case t == nil && strings.Count(tok, ".") != 2:
		x.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).")
	case t == nil:
		x.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid signature.")
	case !now.Before(t.exp):
		x.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
	case !graphAudience(t.aud):
		x.graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	default:
		return true
	}
	return false
}

// graphAudience reports whether a token for aud is good for Graph: the
// public and national-cloud Graph hosts, Graph's app id, or a loopback
// host (the emulator itself, as GRAPH_ENDPOINT points at it).
func graphAudience(aud string) bool {
	if aud == "00000003-0000-0000-c000-000000000000" {
		return true
	}
	u, err := url.Parse(aud)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	switch host {
	case "graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn", "localhost":
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// entraError answers the way the v2.0 endpoint refuses: error,
// error_description with its AADSTS code, error_codes, and the trace and
// correlation ids.
func (x *exchange) entraError(status int, code, desc string) {
	x.code = code
	ts := x.at.UTC().Format("2006-01-02 15:04:05Z")
	var codes []int
	if rest, ok := strings.CutPrefix(desc, "AADSTS"); ok {
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(rest)
		}
		if n, err := strconv.Atoi(rest[:end]); err == nil {
			codes = append(codes, n)
		}
	}
	if codes == nil {
		codes = []int{}
	}
	body := map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("%s Trace ID: %s Correlation ID: %s Timestamp: %s", desc, x.requestID, x.clientReq, ts),
		"error_codes":       codes,
		"timestamp":         ts,
		"trace_id":          x.requestID,
		"correlation_id":    x.clientReq,
	}
	if len(codes) > 0 {
		body["error_uri"] = x.base() + "/error?code=" + strconv.Itoa(codes[0])
	}
	x.writeEntraJSON(status, body)
}

// entraFaultCode is Entra's answer for an injected status.
func entraFaultCode(status int) (code, desc string) {
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return "temporarily_unavailable", "AADSTS90033: A transient error has occurred. Please try again."
	case status == http.StatusUnauthorized:
		return "invalid_client", "AADSTS7000215: Invalid client secret provided."
	default:
		return "invalid_request", "AADSTS9002313: Invalid request. Request is malformed or invalid."
	}
}

func (x *exchange) writeEntraJSON(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(x.w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := x.w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("x-ms-request-id", x.requestID)
	x.w.WriteHeader(status)
	x.w.Write(b)
}
