package graph

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/byodrop/byodrop/internal/review"
)

// Profile is one published shape of the upload-session API (GRAPH_API). The
// client has a single code path; everything that differs between shapes is
// data here: the version segment, the collection path, how the create body
// is built, and which optional operations exist.
type Profile struct {
	// Name is the GRAPH_API value: "v1.0", "beta" or "beta-2025".
	Name string
	// Version is the URL segment after the endpoint: "v1.0" or "beta".
	Version string
	// Collection is the path of the session collection under Version, with
	// {catalogId} and {resourceId} placeholders.
	Collection string
	// CanList and CanDelete say whether the shape documents listing and
	// deleting sessions.
	CanList, CanDelete bool
	// NeedsSource says whether the create body carries the resource's
	// display name (review.Target.Source), which only a route can give.
	NeedsSource bool

	createBody func(t review.Target) (any, error)
}

// The three profiles of graph-contract.md.
var profiles = []Profile{
	{
		Name:       "v1.0",
		Version:    "v1.0",
		Collection: "/identityGovernance/entitlementManagement/catalogs/{catalogId}/resources/{resourceId}/uploadSessions",
		CanList:    true,
		CanDelete:  true,
		createBody: contextDataBody,
	},
	{
		Name:       "beta",
		Version:    "beta",
		Collection: "/identityGovernance/catalogs/{catalogId}/accessPackageResources/{resourceId}/uploadSessions",
		CanList:    true,
		CanDelete:  true,
		createBody: contextDataBody,
	},
	{
		Name:        "beta-2025",
		Version:     "beta",
		Collection:  "/identityGovernance/entitlementManagement/accessPackageCatalogs/{catalogId}/accessPackageResources/{resourceId}/uploadSessions",
		NeedsSource: true,
		createBody:  triggerCallbackBody,
	},
}

// ProfileNames lists the accepted GRAPH_API values.
func ProfileNames() []string {
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Name
	}
	sort.Strings(names)
	return names
}

// ProfileByName returns the profile called name (the GRAPH_API setting).
func ProfileByName(name string) (Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, review.Errorf(review.Invalid, "GRAPH_API: unknown API profile %q (want one of %s)",
		name, strings.Join(ProfileNames(), ", "))
}

// CollectionPath returns the session collection path for a catalog and a
// resource, below the version segment. The ids must already be checked.
func (p Profile) CollectionPath(catalogID, resourceID string) string {
	return strings.NewReplacer("{catalogId}", catalogID, "{resourceId}", resourceID).Replace(p.Collection)
}

// CreateBody returns the JSON body that creates the session for t.
func (p Profile) CreateBody(t review.Target) ([]byte, error) {
	if p.createBody == nil {
		return nil, fmt.Errorf("graph: profile %q has no create body (use ProfileByName)", p.Name)
	}
	v, err := p.createBody(t)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// The v1.0 and 2026 beta body: a derived session type, with the review in
// accessReviewContextData.
func contextDataBody(t review.Target) (any, error) {
	type data struct {
		ODataType          string `json:"@odata.type"`
		ReviewDefinitionID string `json:"reviewDefinitionId"`
		ReviewInstanceID   string `json:"reviewInstanceId"`
	}
	return struct {
		ODataType string `json:"@odata.type"`
		Data      data   `json:"data"`
	}{
		ODataType: "#microsoft.graph.customDataProvidedResourceAccessReviewUploadSession",
		Data: data{
			ODataType:          "#microsoft.graph.customDataProvidedResourcePayloads.accessReviewContextData",
			ReviewDefinitionID: t.ReviewDefinitionID,
			ReviewInstanceID:   t.ReviewInstanceID,
		},
	}, nil
}

// The 2025 beta body: source (the resource's display name), the CSV schema
// type, and the review in accessReviewResourceDataUploadSessionContextData.
func triggerCallbackBody(t review.Target) (any, error) {
	if strings.TrimSpace(t.Source) == "" {
		return nil, review.Errorf(review.Invalid,
			"the beta-2025 API profile needs the resource's display name (the route's \"source\") for catalog %s resource %s",
			t.CatalogID, t.ResourceID)
	}
	type data struct {
		ODataType              string `json:"@odata.type"`
		AccessReviewID         string `json:"accessReviewId"`
		AccessReviewInstanceID string `json:"accessReviewInstanceId"`
	}
	return struct {
		Source string `json:"source"`
		Type   string `json:"type"`
		Data   data   `json:"data"`
	}{
		Source: t.Source,
		Type:   "#microsoft.graph.accessReviewDataUploadTriggerCallbackData",
		Data: data{
			ODataType:              "#microsoft.graph.accessReviewResourceDataUploadSessionContextData",
			AccessReviewID:         t.ReviewDefinitionID,
			AccessReviewInstanceID: t.ReviewInstanceID,
		},
	}, nil
}
