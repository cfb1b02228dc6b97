package graphemu

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGraphRefusesRequestsWithoutAValidToken(t *testing.T) {
	s := startT(t, Options{Now: fakeClock()})
	expired := s.IssueToken()
	s.Advance(2 * time.Hour)
	revoked := s.IssueToken()
	s.ExpireTokens()
	foreign, _ := s.issueToken("https://management.azure.com")
	u := collection(s, "v1.0", catalogID, resourceID)
	for _, tc := range []struct {
		name, authz, msg string
	}{
		{"missing token", "", "empty"},
		{"empty bearer", "Bearer ", "empty"},
		{"other scheme", "Basic Zm9vOmJhcg==", "Bearer"},
		{"not a JWT", "Bearer abc", "not well formed"},
		{"unknown JWT", "Bearer " + testJWT(map[string]any{"aud": "https://graph.microsoft.com"}), "validation failure"},
		{"token past its lifetime", "Bearer " + expired, "expired"},
		{"token expired by ExpireTokens", "Bearer " + revoked, "expired"},
		{"token for another resource", "Bearer " + foreign, "audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			res, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			r := resp{status: res.StatusCode, header: res.Header}
			r.body = readAll(t, res)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", r.status, r.body)
			}
			code, msg := r.graphErr(t)
			if code != "InvalidAuthenticationToken" || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %q, want InvalidAuthenticationToken mentioning %q", code, msg, tc.msg)
			}
			if res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if r := send(t, s, http.MethodGet, u, s.IssueToken(), "", nil); r.status != http.StatusOK {
		t.Errorf("a fresh token after ExpireTokens: %d %s", r.status, r.body)
	}
}

func TestGraphPathsAreCheckedPerProfile(t *testing.T) {
	s := startT(t, Options{})
	tok := s.IssueToken()
	id := create(t, s, tok, "v1.0", instID)
	v1 := collection(s, "v1.0", catalogID, resourceID)
	beta := collection(s, "beta", catalogID, resourceID)
	b25 := collection(s, "beta-2025", catalogID, resourceID)
	tests := []struct {
		name, method, url string
		status            int
		code              string
	}{
		{"v1.0 path under v1.0 works", "GET", v1, 200, ""},
		{"beta path under beta works", "GET", beta, 200, ""},
		{"segments are case-insensitive", "GET", strings.Replace(v1, "uploadSessions", "UploadSessions", 1), 200, ""},
		{"beta-2025 path under v1.0 is not found", "GET", strings.Replace(b25, "/beta/", "/v1.0/", 1) + "/" + id, 404, "BadRequest"},
		{"beta path under v1.0 is not found", "GET", strings.Replace(beta, "/beta/", "/v1.0/", 1) + "/" + id, 404, "BadRequest"},
		{"v1.0 path under beta is not found", "GET", strings.Replace(v1, "/v1.0/", "/beta/", 1) + "/" + id, 404, "BadRequest"},
		{"unknown version is not found", "GET", strings.Replace(v1, "/v1.0/", "/v2.0/", 1), 404, "BadRequest"},
		{"unknown trailing segment is not found", "GET", v1 + "/" + id + "/files/x", 404, "BadRequest"},
		{"catalog id must be a GUID", "GET", collection(s, "v1.0", "my-catalog", resourceID), 400, "BadRequest"},
		{"resource id must be a GUID", "GET", collection(s, "beta", catalogID, "badge-system"), 400, "BadRequest"},
		{"session id must be a GUID", "GET", v1 + "/latest", 400, "BadRequest"},
		{"unknown session is not found", "GET", v1 + "/" + newGUID(), 404, "ResourceNotFound"},
		{"session under another resource is not found", "GET", collection(s, "v1.0", catalogID, newGUID()) + "/" + id, 404, "ResourceNotFound"},
		{"the same session reads through every profile", "GET", b25 + "/" + id, 200, ""},
		{"list is not in beta-2025", "GET", b25, 405, "MethodNotAllowed"},
		{"delete is not in beta-2025", "DELETE", b25 + "/" + id, 405, "MethodNotAllowed"},
		{"PUT is not allowed on a session", "PUT", v1 + "/" + id, 405, "MethodNotAllowed"},
		{"GET is not allowed on uploadFile", "GET", v1 + "/" + id + "/uploadFile", 405, "MethodNotAllowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, s, tc.method, tc.url, tok, "", nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code != "" {
				if code, _ := r.graphErr(t); code != tc.code {
					t.Errorf("code %s, want %s", code, tc.code)
				}
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

func readAll(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
