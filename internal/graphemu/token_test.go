package graphemu

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func secretForm(s *Server) url.Values {
	o := s.Options()
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {o.ClientID},
		"client_secret": {o.ClientSecret},
		"scope":         {"https://graph.microsoft.com/.default"},
	}
}

func assertionForm(s *Server, jwt string) url.Values {
	f := secretForm(s)
	f.Del("client_secret")
	f.Set("client_assertion_type", jwtBearer)
	f.Set("client_assertion", jwt)
	return f
}

func TestTokenEndpoint(t *testing.T) {
	var checked []string
	s := startT(t, Options{AssertionCheck: func(jwt string) error {
		checked = append(checked, jwt)
		if c, _ := jwtClaims(jwt); c["sub"] == "intruder" {
			return errors.New("subject 'intruder' is not a federated identity of the app")
		}
		return nil
	}})
	o := s.Options()
	hour := time.Now().Add(time.Hour).Unix()
	with := func(f url.Values, k, v string) url.Values {
		g := url.Values{}
		for kk, vv := range f {
			g[kk] = vv
		}
		if v == "" {
			g.Del(k)
		} else {
			g.Set(k, v)
		}
		return g
	}
	tests := []struct {
		name   string
		tenant string
		form   url.Values
		status int
		err    string // "" for success
		aadsts int
	}{
		{"client secret gets a token", o.TenantID, secretForm(s), 200, "", 0},
		{"tenant id is case-insensitive", strings.ToUpper(o.TenantID), secretForm(s), 200, "", 0},
		{"MSAL's extra OpenID scopes are ignored", o.TenantID, with(secretForm(s), "scope", "https://graph.microsoft.com/.default openid offline_access profile"), 200, "", 0},
		{"unknown tenant is refused", "11111111-2222-4333-8444-555555555555", secretForm(s), 400, "invalid_request", 90002},
		{"unknown client id is refused", o.TenantID, with(secretForm(s), "client_id", "11111111-2222-4333-8444-555555555555"), 400, "unauthorized_client", 700016},
		{"missing client id is refused", o.TenantID, with(secretForm(s), "client_id", ""), 400, "invalid_request", 900144},
		{"wrong secret is refused", o.TenantID, with(secretForm(s), "client_secret", "nope"), 401, "invalid_client", 7000215},
		{"no credential at all is refused", o.TenantID, with(secretForm(s), "client_secret", ""), 401, "invalid_client", 7000218},
		{"missing grant type is refused", o.TenantID, with(secretForm(s), "grant_type", ""), 400, "invalid_request", 900144},
		{"other grant types are refused", o.TenantID, with(secretForm(s), "grant_type", "password"), 400, "unsupported_grant_type", 70003},
		{"missing scope is refused", o.TenantID, with(secretForm(s), "scope", ""), 400, "invalid_request", 900144},
		{"scope without /.default is refused", o.TenantID, with(secretForm(s), "scope", "https://graph.microsoft.com/User.Read"), 400, "invalid_scope", 1002012},
		{"two resources are refused", o.TenantID, with(secretForm(s), "scope", "https://graph.microsoft.com/.default https://management.azure.com/.default"), 400, "invalid_scope", 1002012},
		{"federated assertion gets a token", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": hour, "sub": "role"})), 200, "", 0},
		{"assertion for the token endpoint gets a token", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": s.TokenURL(), "exp": hour})), 200, "", 0},
		{"assertion with audience list gets a token", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": []string{"x", federatedAudience}, "exp": hour})), 200, "", 0},
		{"assertion for another audience is refused", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": "api://other", "exp": hour})), 401, "invalid_client", 700212},
		{"expired assertion is refused", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": time.Now().Add(-time.Hour).Unix()})), 401, "invalid_client", 700024},
		{"assertion without exp is refused", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": federatedAudience})), 401, "invalid_client", 700024},
		{"assertion not yet valid is refused", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": hour, "nbf": time.Now().Add(30 * time.Minute).Unix()})), 401, "invalid_client", 700024},
		{"malformed assertion is refused", o.TenantID, assertionForm(s, "not-a-jwt"), 401, "invalid_client", 50027},
		{"assertion the checker rejects is refused", o.TenantID, assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": hour, "sub": "intruder"})), 401, "invalid_client", 70021},
		{"assertion without its type is refused", o.TenantID, with(assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": hour})), "client_assertion_type", ""), 400, "invalid_request", 90014},
		{"assertion of another type is refused", o.TenantID, with(assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": hour})), "client_assertion_type", "saml"), 400, "invalid_request", 50027},
		{"secret and assertion together are refused", o.TenantID, with(assertionForm(s, testJWT(map[string]any{"aud": federatedAudience, "exp": hour})), "client_secret", o.ClientSecret), 400, "invalid_request", 9002313},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tokenForm(t, s, tc.tenant, tc.form)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			m := r.json(t)
			if tc.err == "" {
				if m["token_type"] != "Bearer" || m["expires_in"] != 3600.0 || m["ext_expires_in"] != 3600.0 || m["access_token"] == "" {
					t.Fatalf("token answer = %s", r.body)
				}
				if g := send(t, s, http.MethodGet, collection(s, "v1.0", catalogID, resourceID), m["access_token"].(string), "", nil); g.status != 200 {
					t.Fatalf("the token does not work against Graph: %d %s", g.status, g.body)
				}
				return
			}
			checkEntraError(t, r, tc.err, tc.aadsts)
		})
	}
	if len(checked) == 0 {
		t.Error("AssertionCheck was never called")
	}
}

// checkEntraError asserts Entra's error shape.
func checkEntraError(t *testing.T, r resp, wantErr string, aadsts int) {
	t.Helper()
	m := r.json(t)
	if m["error"] != wantErr {
		t.Errorf("error = %v, want %s: %s", m["error"], wantErr, r.body)
	}
	desc, _ := m["error_description"].(string)
	if !strings.HasPrefix(desc, "AADSTS") {
		t.Errorf("error_description does not start with AADSTS: %q", desc)
	}
	codes, _ := m["error_codes"].([]any)
	if aadsts != 0 && (len(codes) != 1 || codes[0] != float64(aadsts)) {
		t.Errorf("error_codes = %v, want [%d]: %s", m["error_codes"], aadsts, desc)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("%s missing from %s", k, r.body)
		}
	}
}

func TestTokenEndpointRefusesNonFormRequests(t *testing.T) {
	s := startT(t, Options{})
	u := s.TokenURL()
	for _, tc := range []struct {
		name, method, ct, body string
		aadsts                 int
	}{
		{"GET is refused", http.MethodGet, "", "", 900561},
		{"a JSON body is refused", http.MethodPost, "application/json", `{"grant_type":"client_credentials"}`, 900144},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, s, tc.method, u, "", tc.ct, strings.NewReader(tc.body))
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			checkEntraError(t, r, "invalid_request", tc.aadsts)
		})
	}
}

func TestTokenLifetimeFollowsTokenTTL(t *testing.T) {
	s := startT(t, Options{TokenTTL: 10 * time.Minute, Now: fakeClock()})
	r := tokenForm(t, s, s.Options().TenantID, secretForm(s))
	m := r.json(t)
	if m["expires_in"] != 600.0 {
		t.Fatalf("expires_in = %v, want 600", m["expires_in"])
	}
	tok := m["access_token"].(string)
	list := collection(s, "v1.0", catalogID, resourceID)
	s.Advance(9 * time.Minute)
	if r := send(t, s, http.MethodGet, list, tok, "", nil); r.status != 200 {
		t.Fatalf("token refused before its end: %d %s", r.status, r.body)
	}
	s.Advance(time.Minute)
	r = send(t, s, http.MethodGet, list, tok, "", nil)
	if r.status != 401 {
		t.Fatalf("token accepted after its end: %d", r.status)
	}
	if code, msg := r.graphErr(t); code != "InvalidAuthenticationToken" || !strings.Contains(msg, "expired") {
		t.Errorf("expired token answer: %s %s", code, msg)
	}
}

func TestDiscoveryDocumentsPointBackAtTheEmulator(t *testing.T) {
	s := startT(t, Options{})
	tenant := s.Options().TenantID
	r := send(t, s, http.MethodGet, s.AuthorityHost()+tenant+"/v2.0/.well-known/openid-configuration", "", "", nil)
	if r.status != 200 {
		t.Fatalf("openid-configuration: %d %s", r.status, r.body)
	}
	m := r.json(t)
	want := map[string]string{
		"token_endpoint":         s.TokenURL(),
		"authorization_endpoint": s.URL() + "/" + tenant + "/oauth2/v2.0/authorize",
		"issuer":                 s.URL() + "/" + tenant + "/v2.0",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %s", k, m[k], v)
		}
	}

	r = send(t, s, http.MethodGet, s.AuthorityHost()+"11111111-2222-4333-8444-555555555555/v2.0/.well-known/openid-configuration", "", "", nil)
	if r.status != 400 {
		t.Fatalf("openid-configuration of an unknown tenant: %d", r.status)
	}
	checkEntraError(t, r, "invalid_request", 90002)

	ae := url.QueryEscape(s.URL() + "/" + tenant + "/oauth2/v2.0/authorize")
	r = send(t, s, http.MethodGet, s.AuthorityHost()+"common/discovery/instance?api-version=1.1&authorization_endpoint="+ae, "", "", nil)
	if r.status != 200 {
		t.Fatalf("instance discovery: %d %s", r.status, r.body)
	}
	if got := r.json(t)["tenant_discovery_endpoint"]; got != s.URL()+"/"+tenant+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("tenant_discovery_endpoint = %v", got)
	}
}
