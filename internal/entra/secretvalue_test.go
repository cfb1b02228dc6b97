package entra

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

const sampleSecret = "Abc8Q~x.y_z-0123456789abcdefghijklmnop"

func TestClientSecretFromValue(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // "" when refused
		err         string
	}{
		{"the secret itself", sampleSecret, sampleSecret, ""},
		{"a trailing newline is not part of it", sampleSecret + "\r\n", sampleSecret, ""},
		{"JSON clientSecret", `{"clientSecret": "` + sampleSecret + `", "tenantId": "t"}`, sampleSecret, ""},
		{"JSON client_secret", `{"client_secret":"` + sampleSecret + `"}`, sampleSecret, ""},
		{"JSON with both, equal", `{"clientSecret":"` + sampleSecret + `","client_secret":"` + sampleSecret + `"}`, sampleSecret, ""},
		{"JSON with both, different", `{"clientSecret":"` + sampleSecret + `","client_secret":"other-secret-value"}`, "", "both"},
		{"JSON without the field", `{"password":"` + sampleSecret + `"}`, "", `"clientSecret"`},
		{"JSON field not a string", `{"clientSecret":12345678901234567890}`, "", "not a string"},
		{"JSON field empty", `{"clientSecret":"  "}`, "", "empty"},
		{"JSON field with white space inside", `{"clientSecret":"two words-` + sampleSecret + `"}`, "", "white space"},
		{"JSON that does not parse", `{"clientSecret":"` + sampleSecret, "", "not valid JSON"},
		{"an older secret with punctuation", "k8[Q=a+/b@c:d]*?x", "k8[Q=a+/b@c:d]*?x", ""},
		{"empty", "  \n", "", "empty"},
		{"a PEM document", "-----BEGIN CERTIFICATE-----\nMIIB" + sampleSecret + "\n-----END CERTIFICATE-----\n", "", "GRAPH_CREDENTIAL=certificate"},
		{"white space inside", "two " + sampleSecret, "", "white space"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ClientSecretFromValue([]byte(tc.value))
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %q, %v; want an error mentioning %q", got, err, tc.err)
			}
			if strings.Contains(err.Error(), sampleSecret) || strings.Contains(err.Error(), "other-secret-value") {
				t.Fatalf("the secret is in the error: %v", err)
			}
		})
	}
}

// FuzzClientSecretFromValue checks that any value either yields a secret
// that is a trimmed part of the input with no white space, or an error
// that quotes nothing of it.
func FuzzClientSecretFromValue(f *testing.F) {
	for _, seed := range []string{
		sampleSecret, sampleSecret + "\n", `{"clientSecret":"` + sampleSecret + `"}`, `{"client_secret":"a\u0041b"}`,
		`{"clientSecret":"` + sampleSecret, "-----BEGIN X-----", "", "{", `{"clientSecret":1}`, "\xff\xfe" + sampleSecret,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		got, err := ClientSecretFromValue(value)
		if err == nil {
			if got == "" || strings.ContainsFunc(got, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
				t.Fatalf("secret %q from %q", got, value)
			}
			if !bytes.HasPrefix(bytes.TrimSpace(value), []byte("{")) && !bytes.Contains(value, []byte(got)) {
				t.Fatalf("secret %q is not in the value %q", got, value)
			}
			return
		}
		// Any run of secret-like characters long enough to be a secret
		// must not appear in the message.
		for _, run := range secretLikeRuns(value, 20) {
			if strings.Contains(err.Error(), run) {
				t.Fatalf("error %q quotes %q from the value", err, run)
			}
		}
		if !utf8.ValidString(err.Error()) {
			t.Fatalf("error is not UTF-8: %q", err)
		}
	})
}

// secretLikeRuns returns the maximal runs of Entra secret characters
// (letters, digits, ~ . _ -) of at least n bytes in v.
func secretLikeRuns(v []byte, n int) []string {
	var runs []string
	start := -1
	for i := 0; i <= len(v); i++ {
		in := i < len(v) && (v[i] >= 'a' && v[i] <= 'z' || v[i] >= 'A' && v[i] <= 'Z' || v[i] >= '0' && v[i] <= '9' || strings.IndexByte("~._-", v[i]) >= 0)
		switch {
		case in && start < 0:
			start = i
		case !in && start >= 0:
			if i-start >= n {
				runs = append(runs, string(v[start:i]))
			}
			start = -1
		}
	}
	return runs
}
