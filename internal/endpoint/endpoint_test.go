package endpoint

import (
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/review"
)

func TestCheckAcceptsHTTPSAnywhereAndHTTPOnlyOnLoopback(t *testing.T) {
	ok := []string{
		"https://graph.microsoft.com",
		"https://graph.microsoft.us/",
		"https://10.0.0.5:8443",
		"http://127.0.0.1:8080",
		"http://127.9.8.7",
		"http://[::1]:9000/",
		"http://localhost:4000",
		"http://LOCALHOST.",
		"HTTP://127.0.0.1",
	}
	for _, raw := range ok {
		if err := Check("GRAPH_ENDPOINT", raw); err != nil {
			t.Errorf("Check(%q) = %v, want nil", raw, err)
		}
	}
}

func TestCheckRejectsWithTheSettingNamed(t *testing.T) {
	bad := []struct{ raw, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"http://graph.microsoft.com", "loopback"},
		{"http://10.0.0.1", "loopback"},
		{"http://[::2]", "loopback"},
		{"http://localhost.example.com", "loopback"},
		{"http://127.0.0.1.nip.io", "loopback"},
		{"ftp://127.0.0.1", "not an http(s) URL"},
		{"graph.microsoft.com", "not an http(s) URL"},
		{"https://", "no host"},
		{"https://graph.microsoft.com/?x=1", "query"},
		{"https://graph.microsoft.com/#frag", "query or fragment"},
		{"https://user:hunter2@graph.microsoft.com", "credentials"},
		{"https://a b", "not a valid URL"},
	}
	for _, tc := range bad {
		err := Check("GRAPH_ENDPOINT", tc.raw)
		if err == nil {
			t.Errorf("Check(%q) = nil, want an error", tc.raw)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "GRAPH_ENDPOINT: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("Check(%q) = %q, want it to name GRAPH_ENDPOINT and say %q", tc.raw, msg, tc.want)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("Check(%q) leaked the password: %q", tc.raw, msg)
		}
		if k := review.KindOf(err); k != review.Invalid {
			t.Errorf("Check(%q) kind = %v, want invalid", tc.raw, k)
		}
	}
}

func TestIsLoopbackDoesNotTrustNames(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.255.255.254": true, "::1": true,
		"0.0.0.0": false, "::": false, "128.0.0.1": false, "localhost.localdomain": false, "example.com": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
