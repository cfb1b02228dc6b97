//go:build !soak

package reliability_test

// soakSize is the short soak of `make test`; `make soak` builds with
// -tags soak for the long one.
var soakSize = soakParams{objects: 60, reviews: 4, maxAttempts: 6, kills: 1}
