package graphemu

import (
	"net/http"
	"testing"
)

func TestSetClientSecretAcceptsOnlyTheNewSecret(t *testing.T) {
	s := startT(t, Options{ClientSecret: "old-secret"})
	before := s.IssueToken()
	s.SetClientSecret("new-secret")
	if got := s.Options().ClientSecret; got != "new-secret" {
		t.Fatalf("Options().ClientSecret = %q after rotation", got)
	}
	tests := []struct {
		name, secret string
		status       int
	}{
		{"old secret refused", "old-secret", http.StatusUnauthorized},
		{"new secret accepted", "new-secret", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := secretForm(s)
			f.Set("client_secret", tc.secret)
			if r := tokenForm(t, s, s.Options().TenantID, f); r.status != tc.status {
				t.Fatalf("token with %s: %d %s", tc.name, r.status, r.body)
			}
		})
	}
	// A token issued before the rotation lives on until it expires.
	if r := sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID), before, createBody("v1.0", defID, newGUID())); r.status != http.StatusCreated {
		t.Fatalf("create with a token issued before the rotation: %d %s", r.status, r.body)
	}
}
