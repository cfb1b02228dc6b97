package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Access review instance statuses, spelled as documented. Graph's own
// spelling varies in case; Instance.Status is normalised to these when it
// is one of them (compare with EqualStatus otherwise).
const (
	InstanceNotStarted    = "NotStarted"
	InstanceInitializing  = "Initializing"
	InstanceStarting      = "Starting"
	InstanceInProgress    = "InProgress"
	InstanceCompleting    = "Completing"
	InstanceCompleted     = "Completed"
	InstanceAutoReviewing = "AutoReviewing"
	InstanceAutoReviewed  = "AutoReviewed"
	InstanceApplying      = "Applying"
	InstanceApplied       = "Applied"
)

var instanceStatuses = []string{InstanceNotStarted, InstanceInitializing, InstanceStarting, InstanceInProgress,
	InstanceCompleting, InstanceCompleted, InstanceAutoReviewing, InstanceAutoReviewed, InstanceApplying, InstanceApplied}

// EqualStatus compares two statuses as Graph means them: ignoring case.
func EqualStatus(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// normStatus returns the documented spelling of s, or s trimmed when it is
// a value the documentation does not list.
func normStatus(s string) string {
	s = strings.TrimSpace(s)
	for _, known := range instanceStatuses {
		if strings.EqualFold(s, known) {
			return known
		}
	}
	return s
}

// OriginCustomData is the originSystem of a custom data provided resource.
const OriginCustomData = "CustomDataProvidedResource"

// Instance is one access review instance (unified route).
type Instance struct {
	ID string
	// Status is normalised to the documented spelling (InstanceInitializing…)
	// when it is a documented value.
	Status string
	// StartDateTime and EndDateTime are zero when absent.
	StartDateTime, EndDateTime time.Time
	// Scope is the instance's own scope, when the response has one.
	Scope Scope
	// DefinitionID is the definition the instance belongs to, when known:
	// from the response, or from the definition it was listed under.
	DefinitionID string
}

// IsInitializing reports whether the instance is in Initializing, the
// state in which Entra accepts uploaded data.
func (i *Instance) IsInitializing() bool { return EqualStatus(i.Status, InstanceInitializing) }

// Definition is an access review schedule definition (unified route).
type Definition struct {
	ID, DisplayName, Status string
	Scope                   Scope
}

// Scope is a review's scope, reduced to what byodrop needs: the @odata.type
// and every resource scope it names, at the top or under resourceScopes.
type Scope struct {
	ODataType      string
	ResourceScopes []ResourceScope
}

// ResourceScope is one {resourceId, scopeType} of a scope.
type ResourceScope struct {
	ODataType, ResourceID, ScopeType string
}

// CatalogIDs returns the catalog ids the scope covers: the resourceId of
// every resource scope whose scopeType is "catalog" (in any case), whatever
// its @odata.type, lower-cased and without repeats.
func (s Scope) CatalogIDs() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.ResourceScopes {
		id := strings.ToLower(strings.TrimSpace(r.ResourceID))
		if !strings.EqualFold(strings.TrimSpace(r.ScopeType), "catalog") || id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// CatalogIDs returns the catalogs the definition's scope covers.
func (d *Definition) CatalogIDs() []string { return d.Scope.CatalogIDs() }

// Resource is an access package resource of a catalog.
type Resource struct {
	ID, DisplayName, OriginID, OriginSystem string
}

// IsCustomData reports whether r is a custom data provided resource.
func (r *Resource) IsCustomData() bool { return strings.EqualFold(r.OriginSystem, OriginCustomData) }

type wireResourceScope struct {
	ODataType  flexString `json:"@odata.type"`
	ResourceID flexString `json:"resourceId"`
	ScopeType  flexString `json:"scopeType"`
}

type wireScope struct {
	ODataType  flexString `json:"@odata.type"`
	ResourceID flexString `json:"resourceId"`
	ScopeType  flexString `json:"scopeType"`
	// Scopes nest: a principalResourceMembershipsScope holds resourceScopes.
	ResourceScopes []wireResourceScope `json:"resourceScopes"`
}

func (w *wireScope) scope() Scope {
	if w == nil {
		return Scope{}
	}
	s := Scope{ODataType: string(w.ODataType)}
	if w.ScopeType != "" || w.ResourceID != "" {
		// A scope that is itself a resource scope (accessReviewCatalogScope
		// and similar shapes).
		s.ResourceScopes = append(s.ResourceScopes, ResourceScope{ODataType: string(w.ODataType), ResourceID: string(w.ResourceID), ScopeType: string(w.ScopeType)})
	}
	for _, r := range w.ResourceScopes {
		s.ResourceScopes = append(s.ResourceScopes, ResourceScope{ODataType: string(r.ODataType), ResourceID: string(r.ResourceID), ScopeType: string(r.ScopeType)})
	}
	return s
}

type wireInstance struct {
	ID            flexString `json:"id"`
	Status        flexString `json:"status"`
	StartDateTime flexTime   `json:"startDateTime"`
	EndDateTime   flexTime   `json:"endDateTime"`
	Scope         *wireScope `json:"scope"`
	Definition    *struct {
		ID flexString `json:"id"`
	} `json:"definition"`
}

func (w *wireInstance) instance() (*Instance, error) {
	if strings.TrimSpace(string(w.ID)) == "" {
		return nil, errors.New("graph: review instance has no id")
	}
	i := &Instance{
		ID:            string(w.ID),
		Status:        normStatus(string(w.Status)),
		StartDateTime: time.Time(w.StartDateTime),
		EndDateTime:   time.Time(w.EndDateTime),
		Scope:         w.Scope.scope(),
	}
	if w.Definition != nil {
		i.DefinitionID = string(w.Definition.ID)
	}
	return i, nil
}

type wireDefinition struct {
	ID          flexString `json:"id"`
	DisplayName flexString `json:"displayName"`
	Status      flexString `json:"status"`
	Scope       *wireScope `json:"scope"`
}

func (w *wireDefinition) definition() (*Definition, error) {
	if strings.TrimSpace(string(w.ID)) == "" {
		return nil, errors.New("graph: review definition has no id")
	}
	return &Definition{ID: string(w.ID), DisplayName: string(w.DisplayName), Status: normStatus(string(w.Status)), Scope: w.Scope.scope()}, nil
}

type wireResource struct {
	ID           flexString `json:"id"`
	DisplayName  flexString `json:"displayName"`
	OriginID     flexString `json:"originId"`
	OriginSystem flexString `json:"originSystem"`
}

func (w *wireResource) resource() (*Resource, error) {
	if strings.TrimSpace(string(w.ID)) == "" {
		return nil, errors.New("graph: catalog resource has no id")
	}
	return &Resource{ID: string(w.ID), DisplayName: string(w.DisplayName), OriginID: string(w.OriginID), OriginSystem: string(w.OriginSystem)}, nil
}

// ParseInstance decodes one review instance, as tolerantly as ParseSession:
// status in any case, unknown fields ignored, timestamps with or without
// fractions or zone, trailing commas. It fails when the body is not a JSON
// object, has no id, or a known field cannot mean what it says.
func ParseInstance(data []byte) (*Instance, error) {
	var w wireInstance
	if err := unmarshalTolerant(data, &w); err != nil {
		return nil, fmt.Errorf("graph: parsing review instance: %w", err)
	}
	return w.instance()
}

// ParseDefinition decodes one review definition (tolerant, like ParseInstance).
func ParseDefinition(data []byte) (*Definition, error) {
	var w wireDefinition
	if err := unmarshalTolerant(data, &w); err != nil {
		return nil, fmt.Errorf("graph: parsing review definition: %w", err)
	}
	return w.definition()
}

// page is one page of a list: its items, decoded, and the next link.
type page[T any] struct {
	Items    []T
	NextLink string
}

// parsePage decodes {"value": [...], "@odata.nextLink": "..."} with item
// decoding each element; what names the items in errors.
func parsePage[W any, T any](data []byte, what string, item func(*W) (*T, error)) (*page[T], error) {
	var w struct {
		Value    []json.RawMessage `json:"value"`
		NextLink flexString        `json:"@odata.nextLink"`
	}
	if err := unmarshalTolerant(data, &w); err != nil {
		return nil, fmt.Errorf("graph: parsing %s list: %w", what, err)
	}
	p := &page[T]{NextLink: string(w.NextLink), Items: make([]T, 0, len(w.Value))}
	for i, raw := range w.Value {
		var wi W
		if err := unmarshalTolerant(raw, &wi); err != nil {
			return nil, fmt.Errorf("graph: parsing %s list: value[%d]: %w", what, i, err)
		}
		v, err := item(&wi)
		if err != nil {
			return nil, fmt.Errorf("graph: parsing %s list: value[%d]: %w", what, i, err)
		}
		p.Items = append(p.Items, *v)
	}
	return p, nil
}

func parseInstancePage(data []byte) (*page[Instance], error) {
	return parsePage(data, "review instance", (*wireInstance).instance)
}

func parseDefinitionPage(data []byte) (*page[Definition], error) {
	return parsePage(data, "review definition", (*wireDefinition).definition)
}

func parseResourcePage(data []byte) (*page[Resource], error) {
	return parsePage(data, "catalog resource", (*wireResource).resource)
}
