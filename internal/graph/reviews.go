package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/byodrop/byodrop/internal/review"
)

// Operation names of the access review and catalog reads (Error.Op,
// OnRetry, the emulator journal).
const (
	OpListInstances           = "list-instances"
	OpGetInstance             = "get-instance"
	OpGetInstanceDefinition   = "get-instance-definition"
	OpListDefinitions         = "list-definitions"
	OpGetDefinition           = "get-definition"
	OpListDefinitionInstances = "list-definition-instances"
	OpListResources           = "list-resources"
)

// The application permissions the reads need (graph-contract.md).
const (
	PermissionReviewsRead = "AccessReview.Read.All"
	PermissionCatalogRead = "EntitlementManagement.Read.All"
)

// ReviewsAPIs are the Graph versions that document the unified access
// reviews route (the REVIEWS_API setting).
var ReviewsAPIs = []string{"beta", "v1.0"}

// unifiedPath is the unified access reviews route, under the version.
const unifiedPath = "/identityGovernance/accessReviews/unified"

// PermissionError is a 403 on a read: the app lacks Permission. Its kind is
// Internal (a deployment problem, never the data's fault).
type PermissionError struct {
	Permission string
	Err        *Error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%v: the app needs the Graph application permission %s (or, for catalogs, to be a catalog owner)", e.Err, e.Permission)
}

// Unwrap returns the Graph error.
func (e *PermissionError) Unwrap() error { return e.Err }

// Kind is review.Internal.
func (e *PermissionError) Kind() review.Kind { return review.Internal }

// MissingPermission returns the permission a 403 says is missing, if err is
// one.
func MissingPermission(err error) (string, bool) {
	var pe *PermissionError
	if errors.As(err, &pe) {
		return pe.Permission, true
	}
	return "", false
}

// withPermission turns a 403 into a *PermissionError naming perm.
func withPermission(err error, perm string) error {
	var ge *Error
	if errors.As(err, &ge) && ge.StatusCode == http.StatusForbidden {
		return &PermissionError{Permission: perm, Err: ge}
	}
	return err
}

// Reviews reads access review instances and definitions through a Client,
// on one Graph version (REVIEWS_API). It is safe for concurrent use.
type Reviews struct {
	c       *Client
	version string
}

// Reviews returns the reads of the unified access reviews route on version
// ("beta" or "v1.0"), with c's endpoint, tokens and retries.
func (c *Client) Reviews(version string) (*Reviews, error) {
	for _, v := range ReviewsAPIs {
		if v == version {
			return &Reviews{c: c, version: version}, nil
		}
	}
	return nil, review.Errorf(review.Invalid, "REVIEWS_API: must be one of %s, got %q", strings.Join(ReviewsAPIs, ", "), version)
}

// Version returns the Graph version of the reads.
func (r *Reviews) Version() string { return r.version }

func (r *Reviews) url(path string) string { return r.c.base + "/" + r.version + unifiedPath + path }

// statusFilter returns the $filter query of status eq 'status' ("" for
// none), refusing anything but letters so that nothing else reaches OData.
func statusFilter(status string) (string, error) {
	if status == "" {
		return "", nil
	}
	for _, c := range status {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", review.Errorf(review.Invalid, "graph: not a review status: %q", status)
		}
	}
	return "$filter=" + queryEscape("status eq '"+status+"'"), nil
}

// InstanceList is what ListInstances found.
type InstanceList struct {
	Instances []Instance
	// Fallback is set when the flat instances collection was refused and
	// the instances were listed per definition instead; Definitions then
	// holds every definition read (so their scopes need no further read),
	// and each instance's DefinitionID is set.
	Fallback    bool
	Definitions []Definition
	// Refusal is the flat collection's refusal that led to the fallback.
	Refusal error
}

// ListInstances lists the review instances in status (e.g.
// InstanceInitializing; "" for all) from the flat collection
// unified/instances, following @odata.nextLink. That collection is in the
// metadata but not documented as a method, so when it is refused as not
// supported (see flatRefused) it lists the definitions, then the instances
// of each definition that walk accepts (nil: every one; discovery passes
// one that keeps catalog reviews, saving a request per other review). The
// flat collection returns every instance whatever walk says. Each
// instance's status is checked again in the client, case-insensitively,
// whatever the server's filter did. A 403 is a *PermissionError naming
// AccessReview.Read.All.
func (r *Reviews) ListInstances(ctx context.Context, status string, walk func(*Definition) bool) (*InstanceList, error) {
	q, err := statusFilter(status)
	if err != nil {
		return nil, err
	}
	items, err := listAll(ctx, r.c, OpListInstances, withQuery(r.url("/instances"), q), parseInstancePage)
	if err == nil {
		return &InstanceList{Instances: keepStatus(items, status)}, nil
	}
	if !flatRefused(err) {
		return nil, withPermission(err, PermissionReviewsRead)
	}
	out := &InstanceList{Fallback: true, Refusal: err}
	defs, err := r.ListDefinitions(ctx)
	if err != nil {
		if r.version != "beta" && flatRefused(err) {
			return nil, fmt.Errorf("%w (the unified access reviews route may not be published on %s yet: try REVIEWS_API=beta)", err, r.version)
		}
		return nil, err
	}
	out.Definitions = defs
	for _, d := range defs {
		if walk != nil && !walk(&d) {
			continue
		}
		if !review.IsGUID(d.ID) {
			return nil, review.Errorf(review.Internal, "graph: review definition id is not a GUID: %q", d.ID)
		}
		insts, err := listAll(ctx, r.c, OpListDefinitionInstances, withQuery(r.url("/definitions/"+d.ID+"/instances"), q), parseInstancePage)
		if err != nil {
			return nil, withPermission(err, PermissionReviewsRead)
		}
		for _, i := range keepStatus(insts, status) {
			if i.DefinitionID == "" {
				i.DefinitionID = d.ID
			}
			out.Instances = append(out.Instances, i)
		}
	}
	return out, nil
}

// flatRefused reports whether the flat instances collection's error means
// "not supported here", which the definitions walk can answer instead:
// 400 (Graph's answer to a segment or a filter it does not know), 404, 405
// and 501. Throttling and server errors were already retried and stand;
// 401 and 403 stand too (a permission the walk would lack as well).
func flatRefused(err error) bool {
	var ge *Error
	if !errors.As(err, &ge) {
		return false
	}
	switch ge.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

func keepStatus(items []Instance, status string) []Instance {
	if status == "" {
		return items
	}
	out := items[:0]
	for _, i := range items {
		if EqualStatus(i.Status, status) {
			out = append(out, i)
		}
	}
	return out
}

// ListDefinitions lists every review definition ($top=100, paged).
func (r *Reviews) ListDefinitions(ctx context.Context) ([]Definition, error) {
	defs, err := listAll(ctx, r.c, OpListDefinitions, r.url("/definitions")+"?$top=100", parseDefinitionPage)
	return defs, withPermission(err, PermissionReviewsRead)
}

// GetInstance reads one review instance; a missing one is review.NotFound.
func (r *Reviews) GetInstance(ctx context.Context, instanceID string) (*Instance, error) {
	if !review.IsGUID(instanceID) {
		return nil, review.Errorf(review.Invalid, "graph: review instance id is not a GUID: %q", instanceID)
	}
	data, _, err := r.c.do(ctx, &call{op: OpGetInstance, method: http.MethodGet, url: r.url("/instances/" + instanceID)})
	if err != nil {
		return nil, withPermission(err, PermissionReviewsRead)
	}
	i, err := ParseInstance(data)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", OpGetInstance, err)
	}
	return i, nil
}

// GetDefinition reads one review definition; a missing one is
// review.NotFound.
func (r *Reviews) GetDefinition(ctx context.Context, definitionID string) (*Definition, error) {
	if !review.IsGUID(definitionID) {
		return nil, review.Errorf(review.Invalid, "graph: review definition id is not a GUID: %q", definitionID)
	}
	data, _, err := r.c.do(ctx, &call{op: OpGetDefinition, method: http.MethodGet, url: r.url("/definitions/" + definitionID)})
	if err != nil {
		return nil, withPermission(err, PermissionReviewsRead)
	}
	d, err := ParseDefinition(data)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", OpGetDefinition, err)
	}
	return d, nil
}

// InstanceDefinition reads the definition of a review instance.
func (r *Reviews) InstanceDefinition(ctx context.Context, instanceID string) (*Definition, error) {
	if !review.IsGUID(instanceID) {
		return nil, review.Errorf(review.Invalid, "graph: review instance id is not a GUID: %q", instanceID)
	}
	data, _, err := r.c.do(ctx, &call{op: OpGetInstanceDefinition, method: http.MethodGet, url: r.url("/instances/" + instanceID + "/definition")})
	if err != nil {
		return nil, withPermission(err, PermissionReviewsRead)
	}
	d, err := ParseDefinition(data)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", OpGetInstanceDefinition, err)
	}
	return d, nil
}

// resourcesPath is the catalog resources collection of a profile's version
// (graph-contract.md): v1.0 has one path, beta (the beta and beta-2025
// profiles) the other.
func resourcesPath(version, catalogID string) string {
	if version == "v1.0" {
		return "/identityGovernance/entitlementManagement/catalogs/" + catalogID + "/resources"
	}
	return "/identityGovernance/catalogs/" + catalogID + "/accessPackageResources"
}

// ListCustomDataResources lists the custom data provided resources of a
// catalog ($filter=originSystem eq 'CustomDataProvidedResource', paged,
// and checked again in the client), on the version of the client's API
// profile. A 403 is a *PermissionError naming EntitlementManagement.Read.All.
func (c *Client) ListCustomDataResources(ctx context.Context, catalogID string) ([]Resource, error) {
	if !review.IsGUID(catalogID) {
		return nil, review.Errorf(review.Invalid, "graph: catalog id is not a GUID: %q", catalogID)
	}
	u := c.base + "/" + c.profile.Version + resourcesPath(c.profile.Version, catalogID) +
		"?$filter=" + queryEscape("originSystem eq '"+OriginCustomData+"'")
	all, err := listAll(ctx, c, OpListResources, u, parseResourcePage)
	if err != nil {
		return nil, withPermission(err, PermissionCatalogRead)
	}
	out := all[:0]
	for _, r := range all {
		if r.IsCustomData() {
			out = append(out, r)
		}
	}
	return out, nil
}

func withQuery(u, q string) string {
	if q == "" {
		return u
	}
	return u + "?" + q
}

// listAll reads every page of a list, following @odata.nextLink only on the
// endpoint's own scheme and host, and never the same page twice.
func listAll[T any](ctx context.Context, c *Client, op, first string, parse func([]byte) (*page[T], error)) ([]T, error) {
	var out []T
	seen := map[string]bool{}
	st := &callState{}
	next := first
	for n := 1; next != ""; n++ {
		if seen[next] {
			return nil, &Error{Op: op, Err: fmt.Errorf("@odata.nextLink repeats an earlier page: %s", next)}
		}
		seen[next] = true
		data, _, err := c.doWith(ctx, &call{op: op, method: http.MethodGet, url: next}, st)
		if err != nil {
			return nil, err
		}
		p, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("graph %s: page %d: %w", op, n, err)
		}
		out = append(out, p.Items...)
		if next = p.NextLink; next != "" {
			if err := c.checkNextLink(next); err != nil {
				var ge *Error
				if errors.As(err, &ge) {
					ge.Op = op
				}
				return nil, err
			}
		}
	}
	return out, nil
}
