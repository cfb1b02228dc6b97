// Package dropkey turns the S3 key of a dropped object into the review it
// belongs to. The layout is part of the product (product.md, "The drop
// zone"):
//
//	<prefix><catalogId>/<resourceId>/<reviewDefinitionId>/<reviewInstanceId>/<file>.csv
//	<prefix><route>/<reviewDefinitionId>/<reviewInstanceId>/<file>.csv
//	… with manifest.json in place of <file>.csv
//
// A key that does not fit is refused with a *KeyError, never guessed: a
// wrong guess would put access data into the wrong review.
//
// What is accepted, beyond the layout:
//   - The prefix is matched case-sensitively, as S3 keys are; a prefix
//     given without a trailing '/' is treated as if it had one.
//   - A first segment that is a GUID starts the canonical form; any other
//     first segment is a route name, looked up exactly (case-sensitively) in
//     the configured routes.
//   - GUIDs are accepted in either case and lower-cased in the Target, so
//     that one review has one identity whatever the case in the key.
//   - The file extension .csv is matched case-insensitively (a.CSV is a CSV
//     file); manifest.json must be spelled exactly so.
//   - The file name may hold any Unicode letter, spaces, parentheses and
//     '+'; it may not hold '"' or '\', which would have to be escaped in the
//     multipart filename= parameter (and receivers disagree on how).
//   - Control characters and invalid UTF-8 are refused anywhere in the key,
//     as are empty, "." and ".." segments, and keys longer than S3's limit
//     of 1024 bytes.
package dropkey

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/byodrop/byodrop/internal/review"
)

// MaxKeyBytes is S3's limit on the length of an object key (UTF-8 bytes).
const MaxKeyBytes = 1024

// ManifestName is the file name of the optional manifest of a review.
const ManifestName = "manifest.json"

// Kind says what a dropped object is.
type Kind int

const (
	// CSV is a data file to upload.
	CSV Kind = iota
	// Manifest is the manifest.json listing the files that make an upload
	// complete.
	Manifest
)

// String is "csv" or "manifest", for logs.
func (k Kind) String() string {
	if k == Manifest {
		return "manifest"
	}
	return "csv"
}

// Key is a parsed drop-zone key.
type Key struct {
	// Target is the review the object belongs to; its ids are lower-case
	// GUIDs and Source is set from the route, if any.
	Target review.Target
	// File is the key's base name, used as the multipart filename of the
	// upload. It never contains '/'.
	File string
	Kind Kind // CSV, or Manifest for manifest.json
	// Route is the route name of a route-form key, "" for the canonical form.
	Route string
}

// Route supplies what a route-form key leaves out: the catalog and resource
// of the review, and the resource's display name (needed by beta-2025).
type Route struct {
	CatalogID  string `json:"catalogId"`
	ResourceID string `json:"resourceId"`
	Source     string `json:"source"`
}

// Routes maps a route name (the first key segment) to its Route.
type Routes map[string]Route

// KeyError says why a key was refused. It is review.Invalid: a key that does
// not fit the layout never will.
type KeyError struct {
	Key     string // the key as given (possibly shortened in Error, see there)
	Problem string // what is wrong, without the key
	Err     error  // the cause, if any
}

// Error names the key and the problem. A key longer than MaxKeyBytes is
// shortened, so that a hostile key cannot flood the logs.
func (e *KeyError) Error() string {
	return fmt.Sprintf("key %q: %s", shorten(e.Key), e.Problem)
}

// Unwrap returns the cause, if any.
func (e *KeyError) Unwrap() error { return e.Err }

// Kind is always review.Invalid.
func (e *KeyError) Kind() review.Kind { return review.Invalid }

// FieldError is the problem as it goes into a report's errors (line 0: the
// problem is in the key, not in the content).
func (e *KeyError) FieldError() review.FieldError {
	return review.FieldError{Message: e.Error()}
}

func shorten(key string) string {
	const keep = 64
	if len(key) <= MaxKeyBytes {
		return key
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", key[:cut], len(key))
}

func keyErr(key, format string, args ...any) *KeyError {
	return &KeyError{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// DecodeEventKey decodes the object key of an S3 event record exactly as
// aws-lambda-go's events.S3Object.URLDecodedKey does (url.QueryUnescape):
// '+' is a space and %XX is the byte XX. An invalid escape is a *KeyError.
// The result is not checked further: Parse does that.
func DecodeEventKey(raw string) (string, error) {
	key, err := url.QueryUnescape(raw)
	if err != nil {
		return "", &KeyError{Key: raw, Problem: "not a valid URL-encoded event key: " + err.Error(), Err: err}
	}
	return key, nil
}

const (
	canonicalForm = "<catalogId>/<resourceId>/<reviewDefinitionId>/<reviewInstanceId>/<file>.csv"
	routeForm     = "<route>/<reviewDefinitionId>/<reviewInstanceId>/<file>.csv"
)

// Parse parses key (already URL-decoded, see DecodeEventKey) found under
// incomingPrefix, looking route names up in routes (nil: none configured).
// Every error is a *KeyError naming the problem.
func Parse(key, incomingPrefix string, routes Routes) (Key, error) {
	prefix, segs, err := split(key, incomingPrefix, "incoming")
	if err != nil {
		return Key{}, err
	}
	last := len(segs) - 1

	file := segs[last]
	kind, err := fileKind(key, file)
	if err != nil {
		return Key{}, err
	}

	var (
		t     review.Target
		route string
	)
	first := segs[0]
	switch {
	case len(segs) == 5:
		if !review.IsGUID(first) {
			if _, ok := routes[first]; ok {
				return Key{}, keyErr(key, "route %q takes 4 segments after %q (%s), got 5", first, prefix, routeForm)
			}
			return Key{}, keyErr(key, "catalogId is not a GUID: %q", first)
		}
		t.CatalogID, t.ResourceID = first, segs[1]
		t.ReviewDefinitionID, t.ReviewInstanceID = segs[2], segs[3]
	case len(segs) == 4 && !review.IsGUID(first):
		r, ok := routes[first]
		if !ok {
			if len(routes) == 0 {
				return Key{}, keyErr(key, "route %q is not configured (no ROUTES are configured)", first)
			}
			names := make([]string, 0, len(routes))
			for n := range routes {
				names = append(names, fmt.Sprintf("%q", n))
			}
			slices.Sort(names)
			return Key{}, keyErr(key, "route %q is not configured (configured routes: %s)", first, strings.Join(names, ", "))
		}
		if !review.IsGUID(r.CatalogID) || !review.IsGUID(r.ResourceID) {
			// Config validates routes at start-up; this guards callers
			// that build Routes by hand.
			return Key{}, keyErr(key, "route %q is misconfigured: catalogId %q and resourceId %q must be GUIDs", first, r.CatalogID, r.ResourceID)
		}
		route = first
		t.CatalogID, t.ResourceID, t.Source = r.CatalogID, r.ResourceID, r.Source
		t.ReviewDefinitionID, t.ReviewInstanceID = segs[1], segs[2]
	case len(segs) == 4:
		return Key{}, keyErr(key, "4 segments after %q starting with a GUID: the canonical form needs 5 (%s); a route name is never a GUID", prefix, canonicalForm)
	default:
		return Key{}, keyErr(key, "%d segment(s) after %q, expected 5 for the canonical form (%s) or 4 for the route form (%s)", len(segs), prefix, canonicalForm, routeForm)
	}

	for _, id := range []struct {
		name string
		v    *string
	}{
		{"catalogId", &t.CatalogID},
		{"resourceId", &t.ResourceID},
		{"reviewDefinitionId", &t.ReviewDefinitionID},
		{"reviewInstanceId", &t.ReviewInstanceID},
	} {
		if !review.IsGUID(*id.v) {
			return Key{}, keyErr(key, "%s is not a GUID: %q", id.name, *id.v)
		}
		*id.v = strings.ToLower(*id.v)
	}
	return Key{Target: t, File: file, Kind: kind, Route: route}, nil
}

// split applies the checks every key gets (length, encoding, control
// characters, the prefix, empty and dot segments) and returns the prefix as
// matched and the segments after it; what names the prefix in errors.
func split(key, prefix, what string) (string, []string, error) {
	if len(key) > MaxKeyBytes {
		return "", nil, keyErr(key, "longer than S3's limit of %d bytes", MaxKeyBytes)
	}
	if !utf8.ValidString(key) {
		return "", nil, keyErr(key, "not valid UTF-8")
	}
	for i, r := range key {
		if unicode.IsControl(r) {
			return "", nil, keyErr(key, "control character %U at byte %d", r, i)
		}
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", nil, keyErr(key, "outside the %s prefix %q", what, prefix)
	}
	segs := strings.Split(rest, "/")
	last := len(segs) - 1
	for i, s := range segs {
		switch {
		case s == "" && i == last:
			return "", nil, keyErr(key, "empty file name (the key ends with '/')")
		case s == "":
			return "", nil, keyErr(key, "empty segment (\"//\") after %q", prefix+strings.Join(segs[:i], "/"))
		case s == "." || s == "..":
			return "", nil, keyErr(key, "segment %q is not allowed", s)
		}
	}
	return prefix, segs, nil
}

// fileKind classifies the base name and refuses names that cannot be
// uploaded as a multipart filename.
func fileKind(key, file string) (Kind, error) {
	if file == ManifestName {
		return Manifest, nil
	}
	if i := strings.IndexAny(file, `"\`); i >= 0 {
		return 0, keyErr(key, "file name %q contains %q, which cannot be sent as a multipart filename", file, file[i])
	}
	ext := ""
	if i := strings.LastIndexByte(file, '.'); i >= 0 {
		ext = file[i:]
	}
	switch {
	case !strings.EqualFold(ext, ".csv"):
		return 0, keyErr(key, "file %q is neither a .csv file nor %s", file, ManifestName)
	case len(file) == len(ext):
		return 0, keyErr(key, "file name %q has nothing before the extension", file)
	}
	return CSV, nil
}
