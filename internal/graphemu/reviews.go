package graphemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/byodrop/byodrop/internal/review"
)

// Operations of the access review and catalog routes, as in the journal
// and Fault.Op (the same names as the graph package's).
const (
	OpListInstances           = "list-instances"
	OpGetInstance             = "get-instance"
	OpGetInstanceDefinition   = "get-instance-definition"
	OpListDefinitions         = "list-definitions"
	OpGetDefinition           = "get-definition"
	OpListDefinitionInstances = "list-definition-instances"
	OpListResources           = "list-resources"
)

// Review instance statuses (graph-contract.md).
const (
	InstanceNotStarted   = "NotStarted"
	InstanceInitializing = "Initializing"
	InstanceInProgress   = "InProgress"
	InstanceCompleted    = "Completed"
)

// ReviewsModes choose the emulator's answer where Graph's documentation is
// silent. The zero value is the most plausible reading of the docs.
type ReviewsModes struct {
	// FlatInstances is the status that refuses the flat collection
	// unified/instances (in the metadata, not documented as a method):
	// 0 serves it; 400 answers as Graph does for a segment it does not
	// know, 404 as for a missing resource, 501 as for a method it does not
	// implement.
	FlatInstances int
	// LateRefusal is the status that refuses a create or an upload for a
	// review instance past Initializing (undocumented; default 400).
	// 403 and 409 are the other plausible answers.
	LateRefusal int
	// NoV1Reviews answers the unified route on v1.0 with 400, as the
	// v1.0 metadata of late 2026 (which lacks it) would.
	NoV1Reviews bool
	// LowerCaseStatuses writes instance and definition statuses in lower
	// case, as some of Graph's examples do.
	LowerCaseStatuses bool
}

// ReviewDefinition is a review definition a test adds.
type ReviewDefinition struct {
	ID, DisplayName string
	// Status defaults to InProgress.
	Status string
	// CatalogIDs are the catalogs the review covers, rendered as a
	// principalResourceMembershipsScope with one catalog resource scope
	// each, as in the docs' example.
	CatalogIDs []string
	// Scope, when set, is sent as the scope instead (other shapes, such as
	// accessReviewCatalogScope, or a scope of groups).
	Scope json.RawMessage
}

// ReviewInstance is a review instance a test adds. Its status follows the
// emulator's clock: NotStarted before Start, Initializing from Start for
// Initializing (default: Options.UploadWindow), then InProgress; until
// SetInstanceStatus pins it.
type ReviewInstance struct {
	ID, DefinitionID string
	Start, End       time.Time
	Initializing     time.Duration
}

// CatalogResource is an access package resource of a catalog.
type CatalogResource struct {
	ID, DisplayName, OriginID string
	// OriginSystem defaults to CustomDataProvidedResource.
	OriginSystem string
}

type reviewInstance struct {
	ReviewInstance
	seq    int64
	pinned string
}

type reviewDefinition struct {
	ReviewDefinition
	seq int64
}

// reviewsState is the emulator's access reviews and catalogs; guarded by
// Server.mu.
type reviewsState struct {
	modes     ReviewsModes
	seq       int64
	defs      map[string]*reviewDefinition
	insts     map[string]*reviewInstance
	resources map[string][]CatalogResource // by lower-case catalog id
}

func (r *reviewsState) init() {
	if r.defs == nil {
		r.defs = map[string]*reviewDefinition{}
		r.insts = map[string]*reviewInstance{}
		r.resources = map[string][]CatalogResource{}
	}
}

// SetReviewsModes sets the answers where the docs are silent.
func (s *Server) SetReviewsModes(m ReviewsModes) {
	s.mu.Lock()
	s.reviews.modes = m
	s.mu.Unlock()
}

// AddDefinition adds a review definition and returns its id (d.ID, or a
// new GUID).
func (s *Server) AddDefinition(d ReviewDefinition) string {
	if d.ID == "" {
		d.ID = newGUID()
	}
	d.ID = strings.ToLower(d.ID)
	if d.Status == "" {
		d.Status = InstanceInProgress
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reviews.init()
	s.reviews.seq++
	s.reviews.defs[d.ID] = &reviewDefinition{ReviewDefinition: d, seq: s.reviews.seq}
	return d.ID
}

// AddInstance adds a review instance of an added definition and returns its
// id (i.ID, or a new GUID). It panics on an unknown definition.
func (s *Server) AddInstance(i ReviewInstance) string {
	if i.ID == "" {
		i.ID = newGUID()
	}
	i.ID, i.DefinitionID = strings.ToLower(i.ID), strings.ToLower(i.DefinitionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reviews.init()
	if s.reviews.defs[i.DefinitionID] == nil {
		panic("graphemu: AddInstance: unknown definition " + strconv.Quote(i.DefinitionID))
	}
	if i.Initializing <= 0 {
		i.Initializing = s.opts.UploadWindow
	}
	if i.End.IsZero() {
		i.End = i.Start.Add(14 * 24 * time.Hour)
	}
	s.reviews.seq++
	s.reviews.insts[i.ID] = &reviewInstance{ReviewInstance: i, seq: s.reviews.seq}
	return i.ID
}

// SetInstanceStatus pins an instance's status, whatever the clock says.
func (s *Server) SetInstanceStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.reviews.insts[strings.ToLower(id)]; in != nil {
		in.pinned = status
	}
}

// InstanceStatus returns an instance's status now ("" if unknown).
func (s *Server) InstanceStatus(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.reviews.insts[strings.ToLower(id)]
	if in == nil {
		return ""
	}
	return in.statusAt(s.nowLocked())
}

// AddResource adds a resource to a catalog and returns its id.
func (s *Server) AddResource(catalogID string, r CatalogResource) string {
	if r.ID == "" {
		r.ID = newGUID()
	}
	if r.OriginSystem == "" {
		r.OriginSystem = "CustomDataProvidedResource"
	}
	if r.OriginID == "" {
		r.OriginID = r.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reviews.init()
	k := strings.ToLower(catalogID)
	s.reviews.resources[k] = append(s.reviews.resources[k], r)
	return r.ID
}

func (in *reviewInstance) statusAt(now time.Time) string {
	switch {
	case in.pinned != "":
		return in.pinned
	case now.Before(in.Start):
		return InstanceNotStarted
	case now.Before(in.Start.Add(in.Initializing)):
		return InstanceInitializing
	default:
		return InstanceInProgress
	}
}

// lateLocked returns the status of a known instance that is past
// Initializing, or "" when the instance is unknown to the emulator or
// still accepts data.
func (s *Server) lateLocked(instanceID string) string {
	in := s.reviews.insts[strings.ToLower(instanceID)]
	if in == nil {
		return ""
	}
	if st := in.statusAt(s.nowLocked()); !strings.EqualFold(st, InstanceInitializing) {
		return st
	}
	return ""
}

// refuseLate answers the refusal of a create or an upload (what) for an
// instance past Initializing, and reports whether it did.
func (s *Server) refuseLate(x *exchange, instanceID, what string) bool {
	s.mu.Lock()
	st := s.lateLocked(instanceID)
	status := s.reviews.modes.LateRefusal
	s.mu.Unlock()
	if st == "" {
		return false
	}
	msg := fmt.Sprintf("The access review instance '%s' is %s, not Initializing: its upload window is over and it accepts no %s.", instanceID, st, what)
	switch status {
	case http.StatusForbidden:
		x.graphError(http.StatusForbidden, "Forbidden", msg)
	case http.StatusConflict:
		x.graphError(http.StatusConflict, "Conflict", msg)
	default:
		x.graphError(http.StatusBadRequest, "BadRequest", msg)
	}
	return true
}

// reviewsRoute is a request on the access reviews or catalog resources.
type reviewsRoute struct {
	version string
	op      string
	id      string // instance, definition or catalog id
}

// parseReviewsPath matches the access review and catalog resource routes
// (segments after the version, case-insensitively).
func parseReviewsPath(segs []string) (*reviewsRoute, bool) {
	if len(segs) < 2 {
		return nil, false
	}
	version, rest := segs[0], segs[1:]
	eq := func(i int, want string) bool { return i < len(rest) && strings.EqualFold(rest[i], want) }
	rt := &reviewsRoute{version: version}
	switch {
	case eq(0, "identityGovernance") && eq(1, "accessReviews") && eq(2, "unified"):
		r := rest[3:]
		switch {
		case len(r) == 1 && strings.EqualFold(r[0], "instances"):
			rt.op = OpListInstances
		case len(r) == 2 && strings.EqualFold(r[0], "instances"):
			rt.op, rt.id = OpGetInstance, r[1]
		case len(r) == 3 && strings.EqualFold(r[0], "instances") && strings.EqualFold(r[2], "definition"):
			rt.op, rt.id = OpGetInstanceDefinition, r[1]
		case len(r) == 1 && strings.EqualFold(r[0], "definitions"):
			rt.op = OpListDefinitions
		case len(r) == 2 && strings.EqualFold(r[0], "definitions"):
			rt.op, rt.id = OpGetDefinition, r[1]
		case len(r) == 3 && strings.EqualFold(r[0], "definitions") && strings.EqualFold(r[2], "instances"):
			rt.op, rt.id = OpListDefinitionInstances, r[1]
		default:
			return nil, false
		}
	case version == "v1.0" && len(rest) == 5 && eq(0, "identityGovernance") && eq(1, "entitlementManagement") && eq(2, "catalogs") && eq(4, "resources"):
		rt.op, rt.id = OpListResources, rest[3]
	case version == "beta" && len(rest) == 4 && eq(0, "identityGovernance") && eq(1, "catalogs") && eq(3, "accessPackageResources"):
		rt.op, rt.id = OpListResources, rest[2]
	default:
		return nil, false
	}
	return rt, true
}

// classifyReviews routes the access review and catalog resource reads.
func (s *Server) classifyReviews(segs []string) (routeKind, bool) {
	rt, ok := parseReviewsPath(segs)
	if !ok {
		return routeKind{}, false
	}
	return routeKind{op: rt.op, handler: func(x *exchange) { s.serveReviews(x, rt) }}, true
}

func (s *Server) serveReviews(x *exchange, rt *reviewsRoute) {
	if !s.authenticate(x) {
		return
	}
	if x.r.Method != http.MethodGet {
		x.w.Header().Set("Allow", http.MethodGet)
		x.graphError(http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("The HTTP method '%s' is not supported on this resource.", x.r.Method))
		return
	}
	s.mu.Lock()
	modes := s.reviews.modes
	s.mu.Unlock()
	if rt.op != OpListResources && rt.version == "v1.0" && modes.NoV1Reviews {
		x.graphError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment 'unified'.")
		return
	}
	if rt.op == OpListInstances && modes.FlatInstances != 0 {
		switch modes.FlatInstances {
		case http.StatusNotFound:
			x.graphError(http.StatusNotFound, "ResourceNotFound", "Resource not found.")
		case http.StatusNotImplemented:
			x.graphError(http.StatusNotImplemented, "NotImplemented", "The method or operation is not implemented.")
		default:
			x.graphError(modes.FlatInstances, "BadRequest", "Resource not found for the segment 'instances'.")
		}
		return
	}
	if rt.id != "" && !review.IsGUID(rt.id) {
		x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid id '%s': the id must be a GUID.", rt.id))
		return
	}
	switch rt.op {
	case OpListInstances, OpListDefinitionInstances:
		s.serveInstanceList(x, rt, modes)
	case OpGetInstance:
		s.serveInstance(x, rt, modes)
	case OpGetInstanceDefinition, OpGetDefinition:
		s.serveDefinition(x, rt, modes)
	case OpListDefinitions:
		s.serveDefinitionList(x, rt, modes)
	case OpListResources:
		s.serveResourceList(x, rt)
	}
}

// eqFilter parses "<field> eq '<value>'" (the only filter the docs give
// these lists); "" is no filter.
func eqFilter(x *exchange, field string) (string, bool) {
	f, ok := queryGet(x.r.URL.Query(), "$filter")
	if !ok || strings.TrimSpace(f) == "" {
		return "", true
	}
	parts := strings.Fields(f)
	if len(parts) != 3 || !strings.EqualFold(parts[0], field) || !strings.EqualFold(parts[1], "eq") ||
		len(parts[2]) < 2 || parts[2][0] != '\'' || parts[2][len(parts[2])-1] != '\'' {
		x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid filter clause: only %s eq '<value>' is supported, got '%s'.", field, f))
		return "", false
	}
	return parts[2][1 : len(parts[2])-1], true
}

// pageOf answers one page of items, with @odata.nextLink to the rest.
func (s *Server) pageOf(x *exchange, items []any) {
	q := x.r.URL.Query()
	size := s.opts.MaxPageSize
	if v, ok := queryGet(q, "$top"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for query option $top: a positive integer is expected.", v))
			return
		}
		size = min(size, n)
	}
	offset := 0
	if v, ok := queryGet(q, "$skiptoken"); ok {
		n, ok := decodeSkipToken(v)
		if !ok {
			x.graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid $skiptoken '%s'.", v))
			return
		}
		offset = n
	}
	page := []any{}
	for i := offset; i < len(items) && len(page) < size; i++ {
		page = append(page, items[i])
	}
	out := map[string]any{"@odata.context": x.base() + "/" + strings.SplitN(strings.TrimPrefix(x.r.URL.Path, "/"), "/", 2)[0] + "/$metadata", "value": page}
	if next := offset + len(page); next < len(items) {
		nq := url.Values{}
		for k, v := range q {
			if !strings.EqualFold(k, "$skiptoken") {
				nq[k] = v
			}
		}
		nq.Set("$skiptoken", encodeSkipToken(next))
		out["@odata.nextLink"] = x.base() + x.r.URL.Path + "?" + strings.ReplaceAll(nq.Encode(), "+", "%20")
	}
	x.writeJSON(http.StatusOK, out)
}

func statusText(st string, modes ReviewsModes) string {
	if modes.LowerCaseStatuses {
		return strings.ToLower(st)
	}
	return st
}

func (s *Server) instanceJSONLocked(in *reviewInstance, now time.Time, modes ReviewsModes) map[string]any {
	def := s.reviews.defs[in.DefinitionID]
	out := map[string]any{
		"id":            in.ID,
		"status":        statusText(in.statusAt(now), modes),
		"startDateTime": graphTime(in.Start),
		"endDateTime":   graphTime(in.End),
	}
	if def != nil {
		out["scope"] = scopeJSON(&def.ReviewDefinition)
	}
	return out
}

func scopeJSON(d *ReviewDefinition) any {
	if len(d.Scope) > 0 {
		return d.Scope
	}
	rs := []any{}
	for _, c := range d.CatalogIDs {
		rs = append(rs, map[string]any{"@odata.type": "#microsoft.graph.accessReviewResourceScope", "resourceId": c, "scopeType": "catalog"})
	}
	return map[string]any{
		"@odata.type":     "#microsoft.graph.principalResourceMembershipsScope",
		"principalScopes": []any{map[string]any{"@odata.type": "#microsoft.graph.accessReviewPrincipalScope", "scopeType": "allUsers"}},
		"resourceScopes":  rs,
	}
}

func (s *Server) definitionJSON(d *reviewDefinition, modes ReviewsModes) map[string]any {
	return map[string]any{"id": d.ID, "displayName": d.DisplayName, "status": statusText(d.Status, modes), "scope": scopeJSON(&d.ReviewDefinition)}
}

func (s *Server) serveInstanceList(x *exchange, rt *reviewsRoute, modes ReviewsModes) {
	if !checkQuery(x, "$filter", "$top", "$skiptoken") {
		return
	}
	want, ok := eqFilter(x, "status")
	if !ok {
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	if rt.op == OpListDefinitionInstances && s.reviews.defs[strings.ToLower(rt.id)] == nil {
		s.mu.Unlock()
		x.graphError(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Access review definition '%s' was not found.", rt.id))
		return
	}
	var list []*reviewInstance
	for _, in := range s.reviews.insts {
		if rt.op == OpListDefinitionInstances && in.DefinitionID != strings.ToLower(rt.id) {
			continue
		}
		if want != "" && !strings.EqualFold(in.statusAt(now), want) {
			continue
		}
		list = append(list, in)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	items := make([]any, len(list))
	for i, in := range list {
		items[i] = s.instanceJSONLocked(in, now, modes)
	}
	s.mu.Unlock()
	s.pageOf(x, items)
}

func (s *Server) serveInstance(x *exchange, rt *reviewsRoute, modes ReviewsModes) {
	if !checkQuery(x) {
		return
	}
	s.mu.Lock()
	in := s.reviews.insts[strings.ToLower(rt.id)]
	var out map[string]any
	if in != nil {
		out = s.instanceJSONLocked(in, s.nowLocked(), modes)
	}
	s.mu.Unlock()
	if in == nil {
		x.graphError(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Access review instance '%s' was not found.", rt.id))
		return
	}
	x.writeJSON(http.StatusOK, out)
}

func (s *Server) serveDefinition(x *exchange, rt *reviewsRoute, modes ReviewsModes) {
	if !checkQuery(x) {
		return
	}
	s.mu.Lock()
	var d *reviewDefinition
	if rt.op == OpGetDefinition {
		d = s.reviews.defs[strings.ToLower(rt.id)]
	} else if in := s.reviews.insts[strings.ToLower(rt.id)]; in != nil {
		d = s.reviews.defs[in.DefinitionID]
	}
	var out map[string]any
	if d != nil {
		out = s.definitionJSON(d, modes)
	}
	s.mu.Unlock()
	if out == nil {
		x.graphError(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Access review '%s' was not found.", rt.id))
		return
	}
	x.writeJSON(http.StatusOK, out)
}

func (s *Server) serveDefinitionList(x *exchange, _ *reviewsRoute, modes ReviewsModes) {
	if !checkQuery(x, "$top", "$skiptoken", "$filter") {
		return
	}
	if _, ok := queryGet(x.r.URL.Query(), "$filter"); ok {
		x.graphError(http.StatusBadRequest, "BadRequest", "Invalid filter clause: filtering definitions is not supported here.")
		return
	}
	s.mu.Lock()
	var list []*reviewDefinition
	for _, d := range s.reviews.defs {
		list = append(list, d)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	items := make([]any, len(list))
	for i, d := range list {
		items[i] = s.definitionJSON(d, modes)
	}
	s.mu.Unlock()
	s.pageOf(x, items)
}

func (s *Server) serveResourceList(x *exchange, rt *reviewsRoute) {
	if !checkQuery(x, "$filter", "$top", "$skiptoken") {
		return
	}
	want, ok := eqFilter(x, "originSystem")
	if !ok {
		return
	}
	s.mu.Lock()
	var items []any
	for _, r := range s.reviews.resources[strings.ToLower(rt.id)] {
		if want != "" && !strings.EqualFold(r.OriginSystem, want) {
			continue
		}
		items = append(items, map[string]any{"id": r.ID, "displayName": r.DisplayName, "originId": r.OriginID, "originSystem": r.OriginSystem})
	}
	s.mu.Unlock()
	s.pageOf(x, items)
}
