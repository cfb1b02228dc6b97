package graphemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// The credentials byodrop builds on must get tokens from the emulator with
// nothing but the authority host and the emulator's client: this is what
// proves the discovery documents and the token answer satisfy MSAL.
func TestAzidentityCredentialsGetTokensThatGraphAccepts(t *testing.T) {
	s := startT(t, Options{})
	o := s.Options()
	client := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.AuthorityHost()},
		Transport: s.Client(),
	}
	secret, err := azidentity.NewClientSecretCredential(o.TenantID, o.ClientID, o.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: client, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := azidentity.NewClientAssertionCredential(o.TenantID, o.ClientID,
		func(context.Context) (string, error) {
			return testJWT(map[string]any{"aud": federatedAudience, "exp": time.Now().Add(time.Hour).Unix()}), nil
		},
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: client, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cred azcore.TokenCredential
	}{
		{"client secret", secret},
		{"client assertion", assertion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tok, err := tc.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			if until := time.Until(tok.ExpiresOn); until < 50*time.Minute || until > 61*time.Minute {
				t.Errorf("token expires in %v, want about the 1h TokenTTL", until)
			}
			r := sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID), tok.Token, createBody("v1.0", defID, newGUID()))
			if r.status != http.StatusCreated {
				t.Fatalf("create with the credential's token: %d %s", r.status, r.body)
			}
		})
	}
	if n := s.Count("discovery", http.StatusOK); n == 0 {
		t.Errorf("MSAL did not read the openid configuration (journal: %+v)", s.Journal())
	}
}

// testJWT builds an unsigned-looking compact JWT with the given claims.
func testJWT(claims map[string]any) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "test"})
	c, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString([]byte("signature"))
}
