// Package endpoint checks the URLs of outside services given in settings
// (GRAPH_ENDPOINT, AZURE_AUTHORITY_HOST): https anywhere, plain http only to
// the local machine, so that a token or access data can never cross a
// network unencrypted because of a typo.
package endpoint

import (
	"net"
	"net/url"
	"strings"

	"github.com/byodrop/byodrop/internal/review"
)

// Check reports whether raw, the value of the setting named setting, is an
// absolute http(s) URL that byodrop may talk to: https to any host, http
// only to a loopback address (127.0.0.0/8, ::1 or "localhost"). It rejects
// user information, queries and fragments. Errors are review.Invalid, name
// the setting, and never repeat a password that raw might contain.
func Check(setting, raw string) error {
	if strings.TrimSpace(raw) == "" {
		return review.Errorf(review.Invalid, "%s: empty URL", setting)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input, which may hold a password: say less.
		return review.Errorf(review.Invalid, "%s: not a valid URL", setting)
	}
	if u.User != nil {
		return review.Errorf(review.Invalid, "%s: credentials in the URL are not allowed", setting)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return review.Errorf(review.Invalid, "%s: %q is not an http(s) URL", setting, raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return review.Errorf(review.Invalid, "%s: %q has no host", setting, raw)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return review.Errorf(review.Invalid, "%s: %q must not have a query or fragment", setting, raw)
	}
	if scheme == "http" && !IsLoopback(u.Hostname()) {
		return review.Errorf(review.Invalid,
			"%s: plain http is allowed only to a loopback address (127.0.0.0/8, ::1, localhost), not %q: use https",
			setting, u.Hostname())
	}
	return nil
}

// IsLoopback reports whether host (a URL's Hostname, without port or
// brackets) names the local machine: "localhost", an address in
// 127.0.0.0/8, or ::1. Other names are not resolved: DNS is not trusted to
// decide what is local.
func IsLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
