package csvcheck

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/byodrop/byodrop/internal/review"
)

// guidCases are near misses of every kind for the GUID check.
var guidCases = []string{
	"6e7b768e-07e2-4810-8459-485f84f8f204", "6E7B768E-07E2-4810-8459-485F84F8F204",
	"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
	"6e7b768e-07e2-4810-8459-485f84f8f20", "6e7b768e-07e2-4810-8459-485f84f8f2044",
	"6e7b768e07e2-4810-8459-485f84f8f2044", "6e7b768e-07e2-4810-8459_485f84f8f204",
	"6e7b768g-07e2-4810-8459-485f84f8f204", "6e7b768e-07e2-4810-8459-485f84f8f20G",
	"6e7b768e-07e2-4810-8459-485f84f8f2/4", "6e7b768e-07e2-4810-8459-485f84f8f2:4",
	"6e7b768e-07e2-4810-8459-485f84f8f2@4", "6e7b768e-07e2-4810-8459-485f84f8f2`4",
	"6e7b768e-07e2-4810-8459-485f84f8f2\xe94", "-e7b768e-07e2-4810-8459-485f84f8f204",
	"6e7b768e-07-2-4810-8459-485f84f8f204", "{6e7b768e-07e2-4810-8459-485f84f8f20}",
	"6e7b768e-07e2-4810-8459-485f84f8f2 4", "", "bob",
}

func TestIsGUIDMatchesReview(t *testing.T) {
	for _, s := range guidCases {
		if got, want := isGUID([]byte(s)), review.IsGUID(s); got != want {
			t.Errorf("isGUID(%q) = %v, review.IsGUID says %v", s, got, want)
		}
	}
	// Every byte value at every position of a valid GUID.
	base := []byte(guidCases[0])
	for pos := range base {
		for c := range 256 {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			if got, want := isGUID(b), review.IsGUID(string(b)); got != want {
				t.Fatalf("isGUID(%q) = %v, review.IsGUID says %v", b, got, want)
			}
		}
	}
}

func FuzzIsGUIDMatchesReview(f *testing.F) {
	for _, s := range guidCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isGUID([]byte(s)), review.IsGUID(s); got != want {
			t.Fatalf("isGUID(%q) = %v, review.IsGUID says %v", s, got, want)
		}
	})
}

func TestIsGUIDWithManyChangedBytes(t *testing.T) {
	// isGUID skips the test for bytes from 0x80 up, whose arithmetic may
	// carry into the next byte: several such bytes at once must still
	// fail it.
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("0123456789abcdefABCDEFgG-/:@`{ \x00\x7f\x80\xb0\xb9\xba\xbf\xc0\xe0\xe6\xe7\xff")
	for range 200000 {
		b := []byte(guidCases[rng.IntN(4)])
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := isGUID(b), review.IsGUID(string(b)); got != want {
			t.Fatalf("isGUID(%q) = %v, review.IsGUID says %v", b, got, want)
		}
	}
}

func TestIsUPN(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"adele.vance@contoso.com", true},
		{"alex_fabrikam.com#EXT#@contoso.onmicrosoft.com", true},
		{"o'neil@contoso.co.uk", true},
		{"a~b^c!d@x-y.example", true},
		{"adele@contoso", false},
		{"@contoso.com", false},
		{"adele@", false},
		{"a@b@contoso.com", false},
		{".adele@contoso.com", false},
		{"adele.@contoso.com", false},
		{"adele vance@contoso.com", false},
		{"adele@-contoso.com", false},
		{"adele@contoso..com", false},
		{"adele@contoso.com.", false},
		{"adele@" + strings.Repeat("a", 64) + ".com", false},
		{"adèle@contoso.com", false},
		{"bob", false},
	} {
		if got := isUPN([]byte(tc.s)); got != tc.want {
			t.Errorf("isUPN(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestQuoteShortensLongValues(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"bob", `"bob"`},
		{strings.Repeat("é", 40), `"` + strings.Repeat("é", 40) + `"`},
		{strings.Repeat("é", 41), `"` + strings.Repeat("é", 40) + `"…`},
		{"tab\there", `"tab\there"`},
	} {
		if got := quote([]byte(tc.in)); got != tc.want {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
