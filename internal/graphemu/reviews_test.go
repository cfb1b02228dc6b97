package graphemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func unified(s *Server, version, path string) string {
	return s.URL() + "/" + version + "/identityGovernance/accessReviews/unified" + path
}

// reviewWorld is an emulator with one catalog review definition whose
// instance starts in an hour, and a resource in the catalog.
func reviewWorld(t *testing.T) (*Server, string) {
	t.Helper()
	s := startT(t, Options{Now: fakeClock(), TokenTTL: 24 * time.Hour})
	s.AddDefinition(ReviewDefinition{ID: defID, DisplayName: "Catalog access review", CatalogIDs: []string{catalogID}})
	s.AddInstance(ReviewInstance{ID: instID, DefinitionID: defID, Start: s.Now().Add(time.Hour)})
	s.AddResource(catalogID, CatalogResource{ID: resourceID, DisplayName: "Door badges"})
	s.AddResource(catalogID, CatalogResource{DisplayName: "A group", OriginSystem: "AadGroup"})
	return s, s.IssueToken()
}

func values(t *testing.T, r resp) []map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var out struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Value
}

func TestInstanceLifecycleFollowsTheClock(t *testing.T) {
	s, tok := reviewWorld(t)
	get := func() string {
		r := send(t, s, http.MethodGet, unified(s, "beta", "/instances/"+instID), tok, "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("get instance: %d %s", r.status, r.body)
		}
		return r.json(t)["status"].(string)
	}
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{
		{0, InstanceNotStarted},
		{time.Hour, InstanceInitializing},
		{2*time.Hour - time.Second, InstanceInitializing},
		{time.Second, InstanceInProgress},
	} {
		s.Advance(step.advance)
		if got := get(); got != step.want {
			t.Errorf("after %v more: status %q, want %q", step.advance, got, step.want)
		}
		if got := s.InstanceStatus(instID); got != step.want {
			t.Errorf("InstanceStatus = %q, want %q", got, step.want)
		}
	}
	s.SetInstanceStatus(instID, InstanceCompleted)
	if got := get(); got != InstanceCompleted {
		t.Errorf("pinned status %q", got)
	}
}

func TestInstanceListsFilterOnStatusCaseInsensitively(t *testing.T) {
	s, tok := reviewWorld(t)
	other := s.AddInstance(ReviewInstance{DefinitionID: defID, Start: s.Now().Add(-time.Minute)})
	for _, path := range []string{"/instances", "/definitions/" + defID + "/instances"} {
		v := values(t, send(t, s, http.MethodGet, unified(s, "beta", path)+"?$filter=status%20eq%20'initializing'", tok, "", nil))
		if len(v) != 1 || v[0]["id"] != other {
			t.Errorf("%s: got %v, want only %s", path, v, other)
		}
		scope := v[0]["scope"].(map[string]any)["resourceScopes"].([]any)[0].(map[string]any)
		if scope["resourceId"] != catalogID || scope["scopeType"] != "catalog" {
			t.Errorf("%s: scope %v", path, scope)
		}
	}
	r := send(t, s, http.MethodGet, unified(s, "beta", "/instances")+"?$filter=startswith(status,'I')", tok, "", nil)
	if code, _ := r.graphErr(t); r.status != http.StatusBadRequest || code != "BadRequest" {
		t.Errorf("unsupported filter: %d %s", r.status, code)
	}
}

func TestListsArePaged(t *testing.T) {
	s := startT(t, Options{Now: fakeClock(), MaxPageSize: 2})
	tok := s.IssueToken()
	for i := 0; i < 5; i++ {
		d := s.AddDefinition(ReviewDefinition{CatalogIDs: []string{catalogID}})
		s.AddInstance(ReviewInstance{DefinitionID: d, Start: s.Now()})
	}
	for _, u := range []string{unified(s, "beta", "/instances"), unified(s, "beta", "/definitions") + "?$top=100"} {
		seen := map[string]bool{}
		pages := 0
		for next := u; next != ""; pages++ {
			r := send(t, s, http.MethodGet, next, tok, "", nil)
			for _, v := range values(t, r) {
				seen[v["id"].(string)] = true
			}
			next, _ = r.json(t)["@odata.nextLink"].(string)
		}
		if len(seen) != 5 || pages != 3 {
			t.Errorf("%s: %d items in %d pages, want 5 in 3", u, len(seen), pages)
		}
	}
}

func TestInstanceDefinitionAndNotFound(t *testing.T) {
	s, tok := reviewWorld(t)
	r := send(t, s, http.MethodGet, unified(s, "v1.0", "/instances/"+instID+"/definition"), tok, "", nil)
	if r.status != http.StatusOK || r.json(t)["id"] != defID || r.json(t)["displayName"] != "Catalog access review" {
		t.Fatalf("definition: %d %s", r.status, r.body)
	}
	r = send(t, s, http.MethodGet, unified(s, "beta", "/instances/"+instID2), tok, "", nil)
	if code, _ := r.graphErr(t); r.status != http.StatusNotFound || code != "ResourceNotFound" {
		t.Errorf("unknown instance: %d %s", r.status, code)
	}
	r = send(t, s, http.MethodGet, unified(s, "beta", "/instances/not-a-guid"), tok, "", nil)
	if r.status != http.StatusBadRequest {
		t.Errorf("bad id: %d", r.status)
	}
	r = send(t, s, http.MethodGet, unified(s, "beta", "/instances"), "", "", nil)
	if r.status != http.StatusUnauthorized {
		t.Errorf("no token: %d", r.status)
	}
	r = sendJSON(t, s, http.MethodPost, unified(s, "beta", "/instances"), tok, "{}")
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", r.status)
	}
}

func TestCatalogResourcesOnBothPaths(t *testing.T) {
	s, tok := reviewWorld(t)
	filter := "?$filter=originSystem%20eq%20'CustomDataProvidedResource'"
	for _, u := range []string{
		s.URL() + "/v1.0/identityGovernance/entitlementManagement/catalogs/" + catalogID + "/resources" + filter,
		s.URL() + "/beta/identityGovernance/catalogs/" + catalogID + "/accessPackageResources" + filter,
	} {
		v := values(t, send(t, s, http.MethodGet, u, tok, "", nil))
		if len(v) != 1 || v[0]["id"] != resourceID || v[0]["displayName"] != "Door badges" || v[0]["originSystem"] != "CustomDataProvidedResource" {
			t.Errorf("%s: %v", u, v)
		}
	}
	// Without the filter, every resource of the catalog.
	v := values(t, send(t, s, http.MethodGet, s.URL()+"/beta/identityGovernance/catalogs/"+catalogID+"/accessPackageResources", tok, "", nil))
	if len(v) != 2 {
		t.Errorf("unfiltered: %d resources, want 2", len(v))
	}
	// The session routes under the same prefix still work.
	create(t, s, tok, "beta", instID2)
}

func TestFlatInstancesModes(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusNotImplemented} {
		s, tok := reviewWorld(t)
		s.SetReviewsModes(ReviewsModes{FlatInstances: status})
		if r := send(t, s, http.MethodGet, unified(s, "beta", "/instances"), tok, "", nil); r.status != status {
			t.Errorf("mode %d: flat list answered %d", status, r.status)
		}
		if r := send(t, s, http.MethodGet, unified(s, "beta", "/definitions/"+defID+"/instances"), tok, "", nil); r.status != http.StatusOK {
			t.Errorf("mode %d: per-definition list answered %d", status, r.status)
		}
	}
}

func TestNoV1ReviewsMode(t *testing.T) {
	s, tok := reviewWorld(t)
	s.SetReviewsModes(ReviewsModes{NoV1Reviews: true})
	if r := send(t, s, http.MethodGet, unified(s, "v1.0", "/instances/"+instID), tok, "", nil); r.status != http.StatusBadRequest {
		t.Errorf("v1.0: %d", r.status)
	}
	if r := send(t, s, http.MethodGet, unified(s, "beta", "/instances/"+instID), tok, "", nil); r.status != http.StatusOK {
		t.Errorf("beta: %d", r.status)
	}
}

func TestLowerCaseStatusesMode(t *testing.T) {
	s, tok := reviewWorld(t)
	s.SetReviewsModes(ReviewsModes{LowerCaseStatuses: true})
	r := send(t, s, http.MethodGet, unified(s, "beta", "/instances/"+instID), tok, "", nil)
	if got := r.json(t)["status"]; got != "notstarted" {
		t.Errorf("status %v", got)
	}
}

func TestCreateAndUploadRefusedPastInitializing(t *testing.T) {
	for _, mode := range []int{0, http.StatusForbidden, http.StatusConflict} {
		want := mode
		if want == 0 {
			want = http.StatusBadRequest
		}
		s, tok := reviewWorld(t)
		s.SetReviewsModes(ReviewsModes{LateRefusal: mode})
		// Before the start: not Initializing either.
		r := sendJSON(t, s, http.MethodPost, collection(s, "v1.0", catalogID, resourceID), tok, createBody("v1.0", defID, instID))
		if _, msg := r.graphErr(t); r.status != want || !strings.Contains(msg, "NotStarted") {
			t.Errorf("mode %d, not started: %d %q", mode, r.status, msg)
		}
		s.Advance(time.Hour)
		id := create(t, s, tok, "v1.0", instID)
		if r := upload(t, s, tok, "v1.0", id, "a.csv", "x"); r.status != http.StatusOK {
			t.Fatalf("mode %d: upload while Initializing: %d %s", mode, r.status, r.body)
		}
		s.SetInstanceStatus(instID, InstanceInProgress)
		r = upload(t, s, tok, "v1.0", id, "b.csv", "x")
		if _, msg := r.graphErr(t); r.status != want || !strings.Contains(msg, "upload window is over") {
			t.Errorf("mode %d, upload in progress: %d %q", mode, r.status, msg)
		}
		if v, _ := s.Session(id); len(v.Files) != 1 {
			t.Errorf("mode %d: %d files, want 1", mode, len(v.Files))
		}
		r = sendJSON(t, s, http.MethodPost, collection(s, "beta", catalogID, resourceID), tok, createBody("beta", defID, instID))
		if r.status != want {
			t.Errorf("mode %d, create in progress: %d", mode, r.status)
		}
	}
}

func TestUnknownInstancesAreNotChecked(t *testing.T) {
	// Sessions for instances the test never added behave as before.
	s, tok := reviewWorld(t)
	id := create(t, s, tok, "v1.0", instID2)
	if r := upload(t, s, tok, "v1.0", id, "a.csv", "x"); r.status != http.StatusOK {
		t.Errorf("upload: %d %s", r.status, r.body)
	}
}

func TestFaultsOnReviewRoutes(t *testing.T) {
	s, tok := reviewWorld(t)
	s.Inject(Fault{Op: OpListResources, Status: http.StatusTooManyRequests, RetryAfter: "1"})
	s.Inject(Fault{Op: OpGetInstance, Status: http.StatusForbidden})
	u := s.URL() + "/beta/identityGovernance/catalogs/" + catalogID + "/accessPackageResources"
	if r := send(t, s, http.MethodGet, u, tok, "", nil); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Errorf("fault: %d", r.status)
	}
	if r := send(t, s, http.MethodGet, u, tok, "", nil); r.status != http.StatusOK {
		t.Errorf("after the fault: %d", r.status)
	}
	if r := send(t, s, http.MethodGet, unified(s, "beta", "/instances/"+instID), tok, "", nil); r.status != http.StatusForbidden {
		t.Errorf("403 fault: %d", r.status)
	}
	if n := s.Count(OpListResources, http.StatusTooManyRequests); n != 1 {
		t.Errorf("journal has %d throttled resource lists", n)
	}
	if n := s.Count(OpGetInstance, 0); n != 1 {
		t.Errorf("journal has %d instance reads", n)
	}
}

func TestAddInstanceOfUnknownDefinitionPanics(t *testing.T) {
	s := startT(t, Options{})
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	s.AddInstance(ReviewInstance{DefinitionID: defID})
}
