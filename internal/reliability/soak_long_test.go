//go:build soak

package reliability_test

// soakSize is the long soak of `make soak` (-tags soak).
var soakSize = soakParams{objects: 500, reviews: 20, maxAttempts: 6, kills: 4}
