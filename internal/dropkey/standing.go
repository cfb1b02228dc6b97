package dropkey

import (
	"fmt"
	"slices"
	"strings"

	"github.com/byodrop/byodrop/internal/review"
)

// DefaultStandingPrefix is where standing data lives unless STANDING_PREFIX
// says otherwise.
const DefaultStandingPrefix = "standing/"

const (
	standingCanonicalForm = "<catalogId>/<resourceId>/<file>.csv"
	standingRouteForm     = "<route>/<file>.csv"
)

// Standing is a parsed standing-data key (product.md, "Standing data and
// review discovery"):
//
//	<prefix><route>/<file>.csv
//	<prefix><catalogId>/<resourceId>/<file>.csv
//
// Only the .csv files directly in a resource's folder are its data.
// Canonical folders must write their GUIDs in lower case, as Graph returns
// them: discovery looks for <prefix><catalogId>/<resourceId>/ exactly, and
// a folder in another case would silently never be found.
type Standing struct {
	// CatalogID and ResourceID are lower-case GUIDs, from the key or the
	// route.
	CatalogID, ResourceID string
	// Source is the route's display name of the resource ("" for the
	// canonical form).
	Source string
	// Route is the route name of a route-form key, "" for the canonical form.
	Route string
	// Folder is the resource's folder, the key up to and including the last
	// '/'; File is the base name after it.
	Folder, File string
}

// Target returns the catalog and resource of s as a partial review.Target
// (no review ids: standing data belongs to every review of the resource).
func (s Standing) Target() review.Target {
	return review.Target{CatalogID: s.CatalogID, ResourceID: s.ResourceID, Source: s.Source}
}

// StandingFolder is the canonical folder of a resource's standing data.
func StandingFolder(standingPrefix, catalogID, resourceID string) string {
	if standingPrefix != "" && !strings.HasSuffix(standingPrefix, "/") {
		standingPrefix += "/"
	}
	return standingPrefix + strings.ToLower(catalogID) + "/" + strings.ToLower(resourceID) + "/"
}

// ParseStanding parses key (already URL-decoded) found under standingPrefix,
// looking route names up in routes. Every error is a *KeyError naming the
// problem: a key outside the layout is never guessed.
func ParseStanding(key, standingPrefix string, routes Routes) (Standing, error) {
	prefix, segs, err := split(key, standingPrefix, "standing")
	if err != nil {
		return Standing{}, err
	}
	file := segs[len(segs)-1]
	kind, err := fileKind(key, file)
	if err != nil {
		return Standing{}, err
	}
	if kind == Manifest {
		return Standing{}, keyErr(key, "a manifest has no meaning in standing data: the .csv files of a resource's folder are all its data")
	}
	s := Standing{File: file, Folder: key[:len(key)-len(file)]}
	first := segs[0]
	switch {
	case len(segs) == 3 && review.IsGUID(first):
		if !review.IsGUID(segs[1]) {
			return Standing{}, keyErr(key, "resourceId is not a GUID: %q (%s)", segs[1], standingCanonicalForm)
		}
		for _, id := range segs[:2] {
			if id != strings.ToLower(id) {
				return Standing{}, keyErr(key, "GUID %q is not in lower case: discovery looks for the folder %q as Graph writes the ids", id, StandingFolder(prefix, segs[0], segs[1]))
			}
		}
		s.CatalogID, s.ResourceID = first, segs[1]
	case len(segs) == 2 && !review.IsGUID(first):
		r, ok := routes[first]
		if !ok {
			if len(routes) == 0 {
				return Standing{}, keyErr(key, "route %q is not configured (no ROUTES are configured)", first)
			}
			names := make([]string, 0, len(routes))
			for n := range routes {
				names = append(names, fmt.Sprintf("%q", n))
			}
			slices.Sort(names)
			return Standing{}, keyErr(key, "route %q is not configured (configured routes: %s)", first, strings.Join(names, ", "))
		}
		if !review.IsGUID(r.CatalogID) || !review.IsGUID(r.ResourceID) {
			return Standing{}, keyErr(key, "route %q is misconfigured: catalogId %q and resourceId %q must be GUIDs", first, r.CatalogID, r.ResourceID)
		}
		s.Route = first
		s.CatalogID, s.ResourceID, s.Source = strings.ToLower(r.CatalogID), strings.ToLower(r.ResourceID), r.Source
	case len(segs) == 2:
		return Standing{}, keyErr(key, "2 segments after %q starting with a GUID: the canonical form needs 3 (%s); a route name is never a GUID", prefix, standingCanonicalForm)
	case len(segs) == 3:
		if _, ok := routes[first]; ok {
			return Standing{}, keyErr(key, "route %q takes only the file after it (%s): files in subfolders are not standing data", first, standingRouteForm)
		}
		return Standing{}, keyErr(key, "catalogId is not a GUID: %q (%s)", first, standingCanonicalForm)
	default:
		return Standing{}, keyErr(key, "%d segment(s) after %q, expected 3 for the canonical form (%s) or 2 for the route form (%s); files in subfolders are not standing data",
			len(segs), prefix, standingCanonicalForm, standingRouteForm)
	}
	return s, nil
}
